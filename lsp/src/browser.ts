/**
 * The language server in a browser or web worker (for example VS Code for
 * the Web): messages over the worker's port, files only from open documents,
 * and a system model only from settings that the host provides.
 */
import { BrowserMessageReader, BrowserMessageWriter, createConnection } from "vscode-languageserver/browser.js";
import { createMemoryHost } from "./host.js";
import { startServer } from "./server-core.js";

declare const self: { postMessage: unknown; onmessage: unknown } & object;

/** Starts the server on a worker's message port (`self` by default). */
export function startBrowserServer(port: object = self) {
  const reader = new BrowserMessageReader(port as never);
  const writer = new BrowserMessageWriter(port as never);
  const connection = createConnection(reader, writer);
  const server = startServer(connection, createMemoryHost());
  connection.listen();
  return server;
}

// Started automatically when loaded as a worker script.
if (typeof self !== "undefined" && typeof (self as { importScripts?: unknown }).importScripts === "function") {
  startBrowserServer();
}

export { startServer, createMemoryHost };
export * from "./protocol.js";
