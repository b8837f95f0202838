/**
 * `qkit-lsp`: the qrexec policy language server over stdio (`--stdio`),
 * Node IPC (`--node-ipc`) or a socket (`--socket=PORT`), as
 * `vscode-languageserver` decides from the command line.
 */
import { createConnection, ProposedFeatures, StreamMessageReader, StreamMessageWriter } from "vscode-languageserver/node.js";
import { cachingJsonEncoder } from "./encoder.js";
import { CountingReader } from "./incoming.js";
import { PriorityWriter } from "./outgoing.js";
import { createNodeHost } from "./node-host.js";
import { startServer } from "./server-core.js";
import { startTraceFile } from "./trace-file.js";

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

// Over stdio the server reads through a counting reader (see incoming.ts): messages are
// dispatched before more analysis runs. The other transports are set up by the library.
const reader = process.argv.includes("--stdio") ? new CountingReader(new StreamMessageReader(process.stdin)) : undefined;
// The writer keeps each published diagnostic's JSON text (see encoder.ts) and writes answers
// before diagnostics notifications that wait (see outgoing.ts).
const writer = reader ? new PriorityWriter(new StreamMessageWriter(process.stdout, { charset: "utf-8", contentTypeEncoder: cachingJsonEncoder })) : undefined;
const connection = reader && writer ? createConnection(ProposedFeatures.all, reader, writer) : createConnection(ProposedFeatures.all);
// INVARIANT: nothing may write to stdout except the connection in --stdio mode.
console.log = (...args: unknown[]) => connection.console.log(args.map(String).join(" "));
console.info = console.log;
console.warn = (...args: unknown[]) => connection.console.warn(args.map(String).join(" "));
console.error = (...args: unknown[]) => connection.console.error(args.map(String).join(" "));
process.on("uncaughtException", (e) => connection.console.error(`qubes-policy: uncaught exception: ${e.stack ?? e.message}`));
process.on("unhandledRejection", (e) => connection.console.error(`qubes-policy: unhandled rejection: ${String(e)}`));

// Where messages wait (bench/lsp.mjs --trace): an event log written at exit.
if (process.env.QKIT_LSP_TRACE) startTraceFile(process.env.QKIT_LSP_TRACE);
const server = startServer(connection, createNodeHost(), writer ? { outputBusy: () => writer.busy } : {});
if (reader) reader.arrived = server.messageArrived;
connection.listen();
