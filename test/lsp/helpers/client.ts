/**
 * An in-process LSP client for protocol tests: the server runs in this
 * process on a pair of streams, and the test speaks JSON-RPC to it.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { pathToFileURL } from "node:url";
import { createConnection, createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from "vscode-languageserver/node.js";
import type { InitializeResult, PublishDiagnosticsParams } from "vscode-languageserver";
import { createNodeHost, startServer, type PolicyServer, type QubesPolicySettings, type StartOptions } from "@qubes-kit/lsp";

export interface TestClient {
  rpc: MessageConnection;
  server: PolicyServer;
  init: InitializeResult;
  root: string;
  uri(rel: string): string;
  /** The latest diagnostics published for a URI. */
  diagnostics: Map<string, PublishDiagnosticsParams["diagnostics"]>;
  open(rel: string, text?: string): Promise<void>;
  change(rel: string, text: string): Promise<void>;
  /** Re-validates now and waits until pending notifications are delivered. */
  settle(): Promise<void>;
  request<R>(method: string, params: unknown): Promise<R>;
  close(): void;
}

/** Writes files into a fresh temporary workspace; returns its path. */
export function makeWorkspace(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "qkit-lsp-"));
  for (const [rel, text] of Object.entries(files)) {
    const p = join(root, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  }
  return root;
}

/** Starts a server on in-memory streams and initializes it for a workspace folder. */
export async function startClient(files: Record<string, string>, settings?: QubesPolicySettings, options: StartOptions = {}): Promise<TestClient> {
  const root = makeWorkspace(files);
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  const connection = createConnection(new StreamMessageReader(toServer), new StreamMessageWriter(toClient));
  const server = startServer(connection, createNodeHost(), { debounceMs: 5, ...options });
  connection.listen();
  const rpc = createMessageConnection(new StreamMessageReader(toClient), new StreamMessageWriter(toServer));
  const diagnostics = new Map<string, PublishDiagnosticsParams["diagnostics"]>();
  rpc.onNotification("textDocument/publishDiagnostics", (p: PublishDiagnosticsParams) => diagnostics.set(p.uri, p.diagnostics));
  rpc.onNotification("window/logMessage", () => undefined);
  rpc.onRequest("client/registerCapability", () => null);
  rpc.onRequest("workspace/configuration", () => [settings ?? {}]);
  rpc.listen();
  const uri = (rel: string) => pathToFileURL(join(root, rel)).toString();
  const init = (await rpc.sendRequest("initialize", {
    processId: null,
    rootUri: pathToFileURL(root).toString(),
    workspaceFolders: [{ uri: pathToFileURL(root).toString(), name: "ws" }],
    capabilities: {
      workspace: { configuration: true, workspaceEdit: { resourceOperations: ["rename"] } },
      textDocument: { publishDiagnostics: { relatedInformation: true } },
    },
    initializationOptions: settings ? { qubesPolicy: settings } : undefined,
  })) as InitializeResult;
  await rpc.sendNotification("initialized", {});
  const versions = new Map<string, number>();
  const settle = async () => {
    // Let queued notifications reach the server, validate, and let the diagnostics come back.
    for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 15));
    server.validateNow();
    for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 15));
  };
  await settle();
  return {
    rpc,
    server,
    init,
    root,
    uri,
    diagnostics,
    async open(rel, text) {
      versions.set(rel, 1);
      await rpc.sendNotification("textDocument/didOpen", { textDocument: { uri: uri(rel), languageId: "qrexecpolicy", version: 1, text: text ?? files[rel] ?? "" } });
      await settle();
    },
    async change(rel, text) {
      const v = (versions.get(rel) ?? 1) + 1;
      versions.set(rel, v);
      await rpc.sendNotification("textDocument/didChange", { textDocument: { uri: uri(rel), version: v }, contentChanges: [{ text }] });
      await settle();
    },
    settle,
    request: <R>(method: string, params: unknown) => rpc.sendRequest(method, params) as Promise<R>,
    close() {
      rpc.dispose();
      connection.dispose();
    },
  };
}
