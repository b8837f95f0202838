/**
 * The playground's language server worker: our server's browser entry (`lsp/src/browser.ts`)
 * on the worker's port, with an in-memory host whose system model the page replaces at run
 * time.
 *
 * The page posts two kinds of messages: JSON-RPC messages (the LSP connection), and
 * `{ playground: "system", path, text }`, which replaces the text of the system model file;
 * the page then sends `workspace/didChangeWatchedFiles` for that path and the server reloads
 * it. Policy files reach the server only as open documents.
 */
import "./manual-start.js";
import { createMemoryHost, startBrowserServer } from "../../lsp/src/browser.js";
import type { ServerHost } from "../../lsp/src/host.js";
import { isSystemMessage } from "./messages.js";

declare const self: {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  addEventListener(type: string, listener: (event: unknown) => void): void;
};

/** The memory host over the files the page gave (only the system model); replaced when one changes. */
const files = new Map<string, string>();
let memory = createMemoryHost();

/** A host that always reads through the current {@link memory} host. */
const host: ServerHost = {
  fs: {
    stat: (path) => memory.fs.stat(path),
    readDir: (path) => memory.fs.readDir(path),
    readFile: (path) => memory.fs.readFile(path),
  },
  loadSystem: (settings, folder) => memory.loadSystem(settings, folder),
};

/** The LSP side of the port: messages that are not the playground's own go to the server's reader. */
let deliver: ((event: { data: unknown }) => void) | null = null;
const port = {
  postMessage: (message: unknown) => self.postMessage(message),
  addEventListener: (type: string, listener: (event: unknown) => void) => self.addEventListener(type, listener),
  set onmessage(handler: ((event: { data: unknown }) => void) | null) {
    deliver = handler;
  },
  get onmessage() {
    return deliver;
  },
};

self.onmessage = (event) => {
  const data = event.data;
  if (isSystemMessage(data)) {
    files.set(data.path, data.text);
    memory = createMemoryHost(Object.fromEntries(files));
    return;
  }
  deliver?.(event);
};

startBrowserServer(port, host);
