/**
 * Support for the end-to-end tests of the language server: spawns the built
 * `lsp/dist/server.cjs --stdio` as a user's editor would and drives it with the real
 * `vscode-languageserver-protocol` client connection.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  ConfigurationRequest,
  createProtocolConnection,
  DidCloseTextDocumentNotification,
  DidOpenTextDocumentNotification,
  InitializedNotification,
  InitializeRequest,
  LogMessageNotification,
  PublishDiagnosticsNotification,
  RegistrationRequest,
  ShutdownRequest,
  ExitNotification,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgressCreateRequest,
  type ClientCapabilities,
  type Diagnostic,
  type InitializeResult,
  type ProtocolConnection,
} from "vscode-languageserver-protocol/node.js";

/** An absolute path inside the repository. */
export const repoPath = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

/** The server bundle under test. */
export const SERVER = repoPath("lsp/dist/server.cjs");

/** The policy workspace of the end-to-end tests (a copy of the dom0 tree). */
export const WORKSPACE = repoPath("test/fixtures/e2e/workspace");
export const POLICY_DIR = `${WORKSPACE}/etc/qubes/policy.d`;
/** A policy directory that exists only in the editor (for unsaved scratch documents). */
export const SCRATCH_DIR = repoPath("test/fixtures/e2e/unsaved/policy.d");

/** Fails with a clear message when the server has not been built. */
export function requireServerBuild(): void {
  if (!existsSync(SERVER)) {
    throw new Error(`${SERVER} is missing: run \`npm run build -w lsp\` first (\`npm test\` builds it in pretest)`);
  }
}

/** The settings the tests give the server: the workspace's system model from a file. */
export const TEST_SETTINGS = {
  system: { source: "file", file: `${WORKSPACE}/system-info.json` },
};

/** A client capability set close to VS Code's, restricted to what the tests use. */
const CAPABILITIES: ClientCapabilities = {
  workspace: { configuration: true, workspaceFolders: true, didChangeConfiguration: { dynamicRegistration: true } },
  textDocument: {
    synchronization: { didSave: true, dynamicRegistration: false },
    publishDiagnostics: { relatedInformation: true, codeDescriptionSupport: true },
    completion: { completionItem: { snippetSupport: false, documentationFormat: ["markdown", "plaintext"] } },
    hover: { contentFormat: ["markdown", "plaintext"] },
    formatting: {},
  },
};

/** A running server and its client connection. */
export interface ServerSession {
  connection: ProtocolConnection;
  process: ChildProcessWithoutNullStreams;
  initializeResult: InitializeResult;
  /** The last diagnostics published per URI. */
  diagnostics: Map<string, Diagnostic[]>;
  /** Every `publishDiagnostics` notification, in the order received. */
  publishes: Array<{ uri: string; version?: number | undefined; diagnostics: Diagnostic[] }>;
  /** The methods of the refresh requests the server sent (`workspace/codeLens/refresh`, `workspace/diagnostic/refresh`), in order. */
  refreshes: string[];
  /** Everything the server wrote to stderr and logged through `window/logMessage`. */
  log: string[];
  /** Resolves with the diagnostics of `uri` once `predicate` holds for a publication. */
  waitForDiagnostics(uri: string, predicate?: (d: Diagnostic[]) => boolean, timeoutMs?: number): Promise<Diagnostic[]>;
  /** Opens a file of the workspace (read from disk unless `text` is given); returns its URI. */
  open(path: string, text?: string, languageId?: string): string;
  /** Closes a document opened with {@link ServerSession.open}. */
  closeDocument(uri: string): Promise<void>;
  /** Whether the server process has exited. */
  exited(): boolean;
  /** Shuts the server down politely (then kills it if needed). */
  close(): Promise<void>;
}

/** What a test can change of the client the server sees. */
export interface ClientOptions {
  /** Capabilities added to the default set (merged one level into `textDocument` and `workspace`). */
  capabilities?: ClientCapabilities;
  /** The client's name in `clientInfo` (VS Code's is `Visual Studio Code`). */
  name?: string;
  /** False: the server serves on one thread (`QKIT_LSP_THREADS=0`) instead of its front and worker. */
  threads?: boolean;
  /** More environment variables for the server process. */
  env?: Record<string, string>;
}

/** Spawns the server, initializes it on `rootPath` with {@link TEST_SETTINGS}, and returns the session. */
export async function startServer(rootPath = WORKSPACE, settings: object = TEST_SETTINGS, client: ClientOptions = {}): Promise<ServerSession> {
  requireServerBuild();
  const env = { ...process.env, ...(client.threads === false ? { QKIT_LSP_THREADS: "0" } : {}), ...client.env };
  const child = spawn(process.execPath, [SERVER, "--stdio"], { stdio: "pipe", env });
  const log: string[] = [];
  let exitedFlag = false;
  child.on("exit", () => (exitedFlag = true));
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => log.push(chunk));
  const connection = createProtocolConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  const diagnostics = new Map<string, Diagnostic[]>();
  const publishes: ServerSession["publishes"] = [];
  const refreshes: string[] = [];
  const waiters: Array<{ uri: string; predicate: (d: Diagnostic[]) => boolean; resolve: (d: Diagnostic[]) => void }> = [];
  connection.onNotification(PublishDiagnosticsNotification.type, (params) => {
    diagnostics.set(params.uri, params.diagnostics);
    publishes.push({ uri: params.uri, version: params.version, diagnostics: params.diagnostics });
    for (const w of [...waiters]) {
      if (w.uri === params.uri && w.predicate(params.diagnostics)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(params.diagnostics);
      }
    }
  });
  connection.onNotification(LogMessageNotification.type, (params) => log.push(params.message));
  connection.onRequest(ConfigurationRequest.type, (params) =>
    params.items.map((item) => (item.section === "qubesPolicy" || item.section === undefined ? settings : null)),
  );
  connection.onRequest(RegistrationRequest.type, () => undefined);
  connection.onRequest(WorkDoneProgressCreateRequest.type, () => undefined);
  for (const method of ["workspace/codeLens/refresh", "workspace/diagnostic/refresh"]) {
    connection.onRequest(method, () => {
      refreshes.push(method);
      return null;
    });
  }
  connection.onError(([error]) => log.push(`client connection error: ${error.message}`));
  connection.listen();

  const rootUri = pathToFileURL(rootPath).href;
  const initializeResult = await connection.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri,
    capabilities: {
      ...CAPABILITIES,
      ...client.capabilities,
      textDocument: { ...CAPABILITIES.textDocument, ...client.capabilities?.textDocument },
      workspace: { ...CAPABILITIES.workspace, ...client.capabilities?.workspace },
    },
    ...(client.name ? { clientInfo: { name: client.name } } : {}),
    workspaceFolders: [{ uri: rootUri, name: "e2e" }],
    initializationOptions: { settings },
  });
  await connection.sendNotification(InitializedNotification.type, {});

  const session: ServerSession = {
    connection,
    process: child,
    initializeResult,
    diagnostics,
    publishes,
    refreshes,
    log,
    waitForDiagnostics(uri, predicate = () => true, timeoutMs = 15_000) {
      const known = diagnostics.get(uri);
      if (known && predicate(known)) return Promise.resolve(known);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`no matching diagnostics for ${uri} within ${timeoutMs} ms; last: ${JSON.stringify(diagnostics.get(uri))}; log: ${log.join("").slice(-2000)}`));
        }, timeoutMs);
        waiters.push({
          uri,
          predicate,
          resolve: (d) => {
            clearTimeout(timer);
            resolve(d);
          },
        });
      });
    },
    open(path, text, languageId = "qrexecpolicy") {
      const uri = pathToFileURL(path).href;
      void connection.sendNotification(DidOpenTextDocumentNotification.type, {
        textDocument: { uri, languageId, version: 1, text: text ?? readFileSync(path, "utf8") },
      });
      return uri;
    },
    async closeDocument(uri) {
      await connection.sendNotification(DidCloseTextDocumentNotification.type, { textDocument: { uri } });
    },
    exited: () => exitedFlag,
    async close() {
      if (!exitedFlag) {
        try {
          await Promise.race([connection.sendRequest(ShutdownRequest.type), new Promise((r) => setTimeout(r, 3000))]);
          await connection.sendNotification(ExitNotification.type);
        } catch {
          // The server may already be gone; killing it below is enough.
        }
      }
      await new Promise<void>((resolve) => {
        if (exitedFlag) return resolve();
        const timer = setTimeout(() => {
          child.kill("SIGKILL");
          resolve();
        }, 3000);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      connection.dispose();
    },
  };
  return session;
}

/** The 0-based position just after the first occurrence of `needle` in `text` (plus `delta`). */
export function positionAfter(text: string, needle: string, delta = 0): { line: number; character: number } {
  const at = text.indexOf(needle);
  if (at < 0) throw new Error(`\`${needle}\` is not in the text`);
  const offset = at + needle.length + delta;
  const before = text.slice(0, offset);
  const line = before.split("\n").length - 1;
  return { line, character: offset - (before.lastIndexOf("\n") + 1) };
}

/** A fresh temporary workspace (`prefix` names it) holding `files` (relative path → text); returns its path. */
export function writeWorkspace(prefix: string, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

/** A qube as qubesd's `internal.GetSystemInfo` describes it (a running AppVM unless `extra` says otherwise). */
export function systemDomain(type: string, uuid: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    internal: null,
    tags: [],
    type,
    template_for_dispvms: false,
    default_dispvm: "default-dvm",
    icon: "x",
    label: "0xcc0000",
    guivm: "dom0",
    relayvm: null,
    transport_rpc: null,
    power_state: "Running",
    uuid: `00000000-0000-0000-0000-00000000000${uuid}`,
    ...extra,
  };
}

/** Polls until `fn` gives what `ok` accepts (or `ms` pass), and returns the last value. */
export async function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  let last = await fn();
  while (!ok(last) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 30));
    last = await fn();
  }
  return last;
}
