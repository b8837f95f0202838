/**
 * `qkit-lsp`: the qrexec policy language server over stdio (`--stdio`),
 * Node IPC (`--node-ipc`) or a socket (`--socket=PORT`), as
 * `vscode-languageserver` decides from the command line.
 */
import { createConnection, ProposedFeatures, StreamMessageReader, StreamMessageWriter, type MessageWriter } from "vscode-languageserver/node.js";
import { cachingJsonEncoder } from "./encoder.js";
import { CountingReader } from "./incoming.js";
import { createNodeHost } from "./node-host.js";
import { startServer } from "./server-core.js";
import { isMainThread, Worker } from "node:worker_threads";

if (process.argv.includes("--version")) {
  process.stdout.write("qkit-lsp 0.1.0\n");
  process.exit(0);
}
if (process.argv.includes("--help")) {
  process.stdout.write("usage: qkit-lsp --stdio\n\nthe qrexec policy language server (LSP over stdio, --node-ipc or --socket=PORT)\n");
  process.exit(0);
}

const TRANSPORTS = ["--stdio", "--node-ipc", "--socket", "--pipe", "--clientProcessId"];
if (!process.argv.slice(2).some((a) => TRANSPORTS.some((t) => a === t || a.startsWith(t + "=")))) {
  process.stderr.write("qkit-lsp: no transport given: start it as `qkit-lsp --stdio` (or --node-ipc, --socket=PORT) [usage]\n");
  process.exit(2);
}

/**
 * Over stdio the server runs in a worker thread of this process, with a young generation larger
 * than Node's default (96 MB instead of 16 to 48): every edit of a large policy makes many
 * short-lived objects, and with the default most of them are copied to the old generation, whose
 * collections then take a fifth of the CPU time while typing (a measured 15 to 20% less CPU per
 * key). The main thread only passes the bytes on, both ways, with backpressure (a slow client
 * still slows the writes that wait for it). `QKIT_LSP_WORKER=0` runs everything on the main thread.
 */
const YOUNG_GENERATION_MB = 96;

function runInWorker(): void {
  const worker = new Worker(__filename, {
    argv: process.argv.slice(2),
    stdin: true,
    stdout: true,
    stderr: true,
    resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
  });
  process.stdin.pipe(worker.stdin!);
  worker.stdout.pipe(process.stdout);
  worker.stderr.pipe(process.stderr);
  // The process ends with the server's exit code once what it wrote has been passed on.
  let code: number | undefined;
  let ended = false;
  const finish = () => {
    if (code === undefined || !ended) return;
    const exitCode = code;
    process.stdout.write("", () => process.exit(exitCode));
  };
  worker.on("error", (e) => {
    process.stderr.write(`qkit-lsp: the server thread failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
  worker.on("exit", (c) => {
    code = c;
    finish();
  });
  worker.stdout.on("end", () => {
    ended = true;
    finish();
  });
}

if (isMainThread && process.argv.includes("--stdio") && process.env.QKIT_LSP_WORKER !== "0") runInWorker();
else {
  // Messages the writer has not finished writing (see below).
  let writing = 0;
  if (!isMainThread) {
    // In the worker a write completes when the main thread has read it, so answers can still be
    // queued in the writer when `exit` arrives (the answer to `shutdown` just before it), and a
    // worker's `process.exit` drops them: the thread ends once they are written and passed on.
    const exit = process.exit.bind(process);
    process.exit = ((code?: number) => {
      const drain = () => (writing > 0 ? setTimeout(drain, 5) : process.stdout.write("", () => exit(code)));
      drain();
    }) as typeof process.exit;
  }
  // Over stdio the server reads through a counting reader (see incoming.ts): messages are
  // dispatched before more analysis runs. The other transports are set up by the library.
  const reader = process.argv.includes("--stdio") ? new CountingReader(new StreamMessageReader(process.stdin)) : undefined;
  // The writer keeps each published diagnostic's JSON text (see encoder.ts).
  let writer: MessageWriter | undefined;
  if (reader) {
    const inner = new StreamMessageWriter(process.stdout, { charset: "utf-8", contentTypeEncoder: cachingJsonEncoder });
    writer = {
      onError: inner.onError,
      onClose: inner.onClose,
      write(msg) {
        writing++;
        return inner.write(msg).finally(() => writing--);
      },
      end: () => inner.end(),
      dispose: () => inner.dispose(),
    };
  }
  const connection = reader && writer ? createConnection(ProposedFeatures.all, reader, writer) : createConnection(ProposedFeatures.all);
  // INVARIANT: nothing may write to stdout except the connection in --stdio mode.
  console.log = (...args: unknown[]) => connection.console.log(args.map(String).join(" "));
  console.info = console.log;
  console.warn = (...args: unknown[]) => connection.console.warn(args.map(String).join(" "));
  console.error = (...args: unknown[]) => connection.console.error(args.map(String).join(" "));
  process.on("uncaughtException", (e) => connection.console.error(`qubes-policy: uncaught exception: ${e.stack ?? e.message}`));
  process.on("unhandledRejection", (e) => connection.console.error(`qubes-policy: unhandled rejection: ${String(e)}`));

  const server = startServer(connection, createNodeHost());
  if (reader) reader.arrived = server.messageArrived;
  connection.listen();
}
