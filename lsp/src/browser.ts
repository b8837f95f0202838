/**
 * The language server in a browser or web worker (for example VS Code for
 * the Web): messages over the worker's port, files only from open documents,
 * and a system model only from settings that the host provides.
 */
import { BrowserMessageReader, BrowserMessageWriter, createConnection } from "vscode-languageserver/browser.js";
import { createMemoryHost, type ServerHost } from "./host.js";
import { CountingReader } from "./incoming.js";
import { startServer } from "./server-core.js";

declare const self: { postMessage: unknown; onmessage: unknown } & object;

// The server yields between analysis slices with `setImmediate`, which browsers lack: a
// MessageChannel task does the same (a macrotask that is not clamped like `setTimeout(0)`).
if (typeof (globalThis as { setImmediate?: unknown }).setImmediate !== "function") {
  const channel = new MessageChannel();
  const queue: Array<() => void> = [];
  // `onmessage` (not addEventListener) starts the port; Node's MessagePort type lacks it.
  (channel.port1 as unknown as { onmessage: () => void }).onmessage = () => queue.shift()?.();
  (globalThis as { setImmediate?: unknown }).setImmediate = (fn: (...args: unknown[]) => void, ...args: unknown[]) => {
    queue.push(() => fn(...args));
    channel.port2.postMessage(null);
  };
}

/** Starts the server on a worker's message port (`self` by default), over a host (open documents only by default). */
export function startBrowserServer(port: object = self, host: ServerHost = createMemoryHost()) {
  const reader = new CountingReader(new BrowserMessageReader(port as never));
  const writer = new BrowserMessageWriter(port as never);
  const connection = createConnection(reader, writer);
  const server = startServer(connection, host);
  reader.arrived = server.messageArrived;
  connection.listen();
  return server;
}

// Started automatically when loaded as a worker script, unless a worker script that imports
// this module starts it itself (it sets `globalThis.qkitLspManualStart` before this module runs).
const manual = (globalThis as { qkitLspManualStart?: unknown }).qkitLspManualStart === true;
if (!manual && typeof self !== "undefined" && typeof (self as { importScripts?: unknown }).importScripts === "function") {
  startBrowserServer();
}

export { startServer, createMemoryHost };
export * from "./protocol.js";
