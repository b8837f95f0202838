/**
 * `qkit-lsp`: the qrexec policy language server over stdio (`--stdio`),
 * Node IPC (`--node-ipc`) or a socket (`--socket=PORT`), as
 * `vscode-languageserver` decides from the command line.
 *
 * Over stdio the server proper runs in a worker thread and the main thread is its front
 * (`threads.ts`): it answers completion at once, whatever the analysis is doing.
 * `QKIT_LSP_THREADS=0` serves on one thread.
 */
// First: it keeps the command line before the library reads it (see front-argv.ts).
import { frontAndWorker, givenArgv } from "./front-argv.js";
import { createConnection, ProposedFeatures, StreamMessageReader, StreamMessageWriter, type Connection } from "vscode-languageserver/node.js";
import { cachingJsonEncoder } from "./encoder.js";
import { CountingReader } from "./incoming.js";
import { PriorityWriter } from "./outgoing.js";
import { createNodeHost } from "./node-host.js";
import { startServer } from "./server-core.js";
import { answerFront, frontUpdates, isServerWorker, startFront, workerTransport } from "./threads.js";
import { startTraceFile } from "./trace-file.js";

/** Sends the console and uncaught errors to the client's log. INVARIANT: nothing else writes to stdout. */
function logThroughClient(connection: Connection): void {
  console.log = (...args: unknown[]) => connection.console.log(args.map(String).join(" "));
  console.info = console.log;
  console.warn = (...args: unknown[]) => connection.console.warn(args.map(String).join(" "));
  console.error = (...args: unknown[]) => connection.console.error(args.map(String).join(" "));
  process.on("uncaughtException", (e) => connection.console.error(`qubes-policy: uncaught exception: ${e.stack ?? e.message}`));
  process.on("unhandledRejection", (e) => connection.console.error(`qubes-policy: unhandled rejection: ${String(e)}`));
}

function main(): void {
  if (process.argv.includes("--version")) {
    process.stdout.write("qkit-lsp 0.1.0\n");
    process.exit(0);
  }
  if (process.argv.includes("--help")) {
    process.stdout.write("usage: qkit-lsp --stdio\n\nthe qrexec policy language server (LSP over stdio, --node-ipc or --socket=PORT)\n");
    process.exit(0);
  }

  const TRANSPORTS = ["--stdio", "--node-ipc", "--socket", "--pipe", "--clientProcessId"];
  if (!givenArgv.some((a) => TRANSPORTS.some((t) => a === t || a.startsWith(t + "=")))) {
    process.stderr.write("qkit-lsp: no transport given: start it as `qkit-lsp --stdio` (or --node-ipc, --socket=PORT) [usage]\n");
    process.exit(2);
  }

  const stdio = process.argv.includes("--stdio");
  // Where messages wait (bench/lsp.mjs --trace): an event log written at exit (the worker's beside it).
  if (process.env.QKIT_LSP_TRACE) startTraceFile(process.env.QKIT_LSP_TRACE);
  if (frontAndWorker && startFront(__filename, [...givenArgv])) return;

  // Over stdio the server reads through a counting reader (see incoming.ts): messages are
  // dispatched before more analysis runs. The other transports are set up by the library.
  const reader = stdio ? new CountingReader(new StreamMessageReader(process.stdin)) : undefined;
  // The writer keeps each published diagnostic's JSON text (see encoder.ts) and writes answers
  // before diagnostics notifications that wait (see outgoing.ts).
  const writer = reader ? new PriorityWriter(new StreamMessageWriter(process.stdout, { charset: "utf-8", contentTypeEncoder: cachingJsonEncoder })) : undefined;
  const connection = reader && writer ? createConnection(ProposedFeatures.all, reader, writer) : createConnection(ProposedFeatures.all);
  logThroughClient(connection);
  const server = startServer(connection, createNodeHost(), writer ? { outputBusy: () => writer.busy } : {});
  if (reader && writer) {
    reader.arrived = server.messageArrived;
    // The client closed its end: exit as the two-thread server does (0 after `shutdown`, else 1), once
    // the requests read are answered and the answers went out (at most a second later).
    let shutdown = false;
    const unanswered = new Set<number | string>();
    reader.seen = (m) => {
      const msg = m as { method?: unknown; id?: unknown };
      if (typeof msg.method !== "string" || (typeof msg.id !== "number" && typeof msg.id !== "string")) return;
      unanswered.add(msg.id);
      if (msg.method === "shutdown") shutdown = true;
    };
    const write = writer.write.bind(writer);
    writer.write = (message) => {
      const m = message as { method?: unknown; id?: unknown };
      if (m.method === undefined && (typeof m.id === "number" || typeof m.id === "string")) unanswered.delete(m.id);
      return write(message);
    };
    reader.onClose(() => {
      const code = shutdown ? 0 : 1;
      const done = () => process.exit(code);
      setInterval(() => {
        if (unanswered.size === 0 && !writer.busy && writer.waiting === 0) done();
      }, 5);
      setTimeout(done, 1000);
    });
  }
  connection.listen();
}

/** The server proper, in the worker thread of the stdio front. */
function worker(): void {
  if (process.env.QKIT_LSP_TRACE) startTraceFile(`${process.env.QKIT_LSP_TRACE}.worker`);
  const { reader, writer } = workerTransport();
  const connection = createConnection(ProposedFeatures.all, reader, writer);
  logThroughClient(connection);
  const server = startServer(connection, createNodeHost(), frontUpdates(writer));
  reader.arrived = server.messageArrived;
  answerFront(connection, writer, (uri) => server.completionDataFor(uri), () => server.openDocumentInfo());
  connection.listen();
}

if (isServerWorker()) worker();
else main();
