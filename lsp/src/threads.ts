/**
 * Two threads for `qkit-lsp --stdio`: a front that owns stdin and stdout, and the server proper
 * (analysis and every feature) in a worker thread.
 *
 * Why: completion must answer within tens of milliseconds while the policy is analysed after
 * every key. On one thread it waited for the current slice of analysis and, in a policy of
 * 100,000 rules, for the garbage collections of a 600 MiB heap (pauses of 15–60 ms). The front
 * has a heap of its own (a few MiB: the open documents' texts and completion's vocabulary), so
 * it reads every message at once, answers completion from the data the analysis last sent it,
 * and writes answers before diagnostics notifications (see `outgoing.ts`).
 *
 * What the front does with a message from the client:
 * - `textDocument/didOpen`, `didChange`, `didClose`: applies it to its own copy of the document,
 *   and hands it on;
 * - `textDocument/completion` of an open policy document (not a stack or policy test file, whose
 *   features in the worker answer them), and `completionItem/resolve` of the items it made (marked
 *   `data.f`): answers it (the same handlers as the server's, see `features/completion.ts`), a
 *   turn later, so a `$/cancelRequest` read with it gets `RequestCancelled` as on one thread;
 * - anything else: hands it on as it is.
 * The worker's messages (answers, notifications, its requests to the client) are encoded there
 * and written by the front as they are.
 *
 * INVARIANTS: the front answers a completion exactly as the server would from the same text and
 * vocabulary (`test/lsp/stdio-threads.test.ts` compares both, edits, resolve and cancellation
 * included); the front's copy of a document is the worker's (it applies the sync notifications
 * by the same rules); only the front writes to stdout (the worker's stdout goes to stderr); the
 * process exits with the worker's exit code (`exit` after `shutdown` is 0).
 */
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from "node:worker_threads";
import {
  Emitter,
  LSPErrorCodes,
  ResponseError,
  type DataCallback,
  type Disposable,
  type Event,
  type InitializeParams,
  type Message,
  type MessageReader,
  type MessageWriter,
  type PartialMessageInfo,
} from "vscode-languageserver";
import { StreamMessageReader, StreamMessageWriter } from "vscode-languageserver/node.js";
import { TextDocument } from "vscode-languageserver-textdocument";
import { URI } from "vscode-uri";
import { parseDocument, type CompletionData, type SyntaxKind } from "@qubes-kit/language";
import { encodeMessageBytes } from "./encoder.js";
import { completionRequests } from "./features/completion.js";
import { guarded, type RequestHandler } from "./features/types.js";
import { PriorityWriter } from "./outgoing.js";
import { isTemplatePath } from "./template/feature.js";
import { isPolicyTestPath } from "./features/policytest.js";
import { traceEvent } from "./trace.js";

/** Front → worker. */
type ToWorker = { t: "in"; m: Message } | { t: "end"; code: number } | { t: "written"; n: number; error?: string };

/**
 * The front's question for completion's data of a document it has none for: a notification among
 * the client's messages, so the worker answers it after the messages before it (the `didOpen`).
 */
export const WANT_COMPLETION_DATA = "$/qkit/wantCompletionData";
/**
 * Sent by the front after a message that may move documents to other projects: the worker answers
 * with the open documents as they are once it has handled the messages before it.
 */
export const SYNC_DOCUMENTS = "$/qkit/syncDocuments";
/** Worker → front. */
type ToFront =
  | { t: "out"; n: number; b: Uint8Array; method?: string; id?: number | string | null }
  | { t: "completion"; root: string; data: CompletionData }
  | { t: "docs"; docs: Array<{ uri: string; root: string; syntax: SyntaxKind }>; sync?: number }
  | { t: "have"; n: number; uri: string; root?: string; syntax?: SyntaxKind; data?: CompletionData };

/** A message already encoded by the worker, written by the front as it is. */
const RAW = Symbol("raw");
interface RawMessage {
  jsonrpc: string;
  method?: string;
  id?: number | string | null;
  [RAW]: Uint8Array;
}

/** Whether this thread is the worker of {@link startFront}. */
export function isServerWorker(): boolean {
  return !isMainThread && parentPort !== null && (workerData as { qkitLsp?: unknown } | null)?.qkitLsp === true;
}

// ---------------------------------------------------------------------------
// The worker's side: a connection over the port to the front.

/** Reads the messages the front hands on. */
class PortReader implements MessageReader {
  private readonly errors = new Emitter<Error>();
  private readonly closes = new Emitter<void>();
  private readonly partials = new Emitter<PartialMessageInfo>();
  /** Called for every message read, before it is handed on (see `incoming.ts`). */
  arrived: () => void = () => undefined;
  /** Called when the front has written message `n` to the client (or failed to). */
  written: (n: number, error?: string) => void = () => undefined;
  constructor(private readonly port: MessagePort) {}

  get onError(): Event<Error> {
    return this.errors.event;
  }
  get onClose(): Event<void> {
    return this.closes.event;
  }
  get onPartialMessage(): Event<PartialMessageInfo> {
    return this.partials.event;
  }

  listen(callback: DataCallback): Disposable {
    const on = (data: ToWorker) => {
      // The client closed its end and the answers went out: the worker ends with the front's code (its exit handlers, the trace, run).
      if (data.t === "end") {
        this.closes.fire();
        process.exit(data.code);
      }
      if (data.t === "written") return this.written(data.n, data.error);
      const m = data.m as { method?: unknown; id?: unknown };
      traceEvent("read", typeof m.method === "string" ? m.method : "response", typeof m.id === "number" || typeof m.id === "string" ? m.id : undefined);
      this.arrived();
      callback(data.m);
    };
    this.port.on("message", on);
    return { dispose: () => void this.port.off("message", on) };
  }

  dispose(): void {
    this.errors.dispose();
    this.closes.dispose();
    this.partials.dispose();
  }
}

/**
 * Encodes each message here (diagnostics from their kept bytes, see `encoder.ts`) and posts the
 * bytes to the front. A write is done when the front has written the message to the client, as on
 * one thread: the server keeps one diagnostics notification per document in the pipe and lets a
 * newer list replace one that waits, and it publishes closed files one at a time.
 */
class PortWriter implements MessageWriter {
  private readonly errors = new Emitter<[Error, Message | undefined, number | undefined]>();
  private readonly closes = new Emitter<void>();
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void; message: Message }>();
  private sent = 0;

  constructor(private readonly port: MessagePort) {}

  get onError(): Event<[Error, Message | undefined, number | undefined]> {
    return this.errors.event;
  }
  get onClose(): Event<void> {
    return this.closes.event;
  }

  write(message: Message): Promise<void> {
    try {
      const b = encodeMessageBytes(message);
      const m = message as { method?: unknown; id?: unknown };
      const n = ++this.sent;
      const out: ToFront = { t: "out", n, b };
      if (typeof m.method === "string") out.method = m.method;
      if ("id" in m) out.id = m.id as number | string | null;
      const done = new Promise<void>((resolve, reject) => this.pending.set(n, { resolve, reject, message }));
      // A buffer of its own (not a slice of Node's pool) is moved, not copied.
      const own = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer);
      this.port.postMessage(out, own ? [b.buffer as ArrayBuffer] : []);
      return done;
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      this.errors.fire([error, message, undefined]);
      return Promise.reject(error);
    }
  }

  /** The front wrote message `n` (or could not). */
  written(n: number, error?: string): void {
    const p = this.pending.get(n);
    if (!p) return;
    this.pending.delete(n);
    if (error === undefined) return p.resolve();
    const e = new Error(error);
    this.errors.fire([e, p.message, undefined]);
    p.reject(e);
  }

  post(data: ToFront): void {
    this.port.postMessage(data);
  }

  end(): void {}

  dispose(): void {
    this.errors.dispose();
    this.closes.dispose();
  }
}

/** The worker's transport: read from and write to the front. */
export function workerTransport(): { reader: PortReader; writer: PortWriter } {
  if (!parentPort) throw new Error("not a worker thread");
  const reader = new PortReader(parentPort);
  const writer = new PortWriter(parentPort);
  reader.written = (n, error) => writer.written(n, error);
  return { reader, writer };
}

/** What the worker tells the front besides messages: completion's data and the open documents. */
export function frontUpdates(writer: PortWriter): {
  completionData: (root: string, data: CompletionData) => void;
  openDocuments: (docs: Array<{ uri: string; root: string; syntax: SyntaxKind }>) => void;
} {
  return {
    completionData: (root, data) => writer.post({ t: "completion", root, data }),
    openDocuments: (docs) => writer.post({ t: "docs", docs }),
  };
}

/** Answers the front's {@link WANT_COMPLETION_DATA} and {@link SYNC_DOCUMENTS} notifications. */
export function answerFront(
  connection: { onNotification(method: string, handler: (params: unknown) => void): unknown },
  writer: PortWriter,
  dataFor: (uri: string) => { root: string; syntax: SyntaxKind; data?: CompletionData } | undefined,
  openDocuments: () => Array<{ uri: string; root: string; syntax: SyntaxKind }>,
): void {
  connection.onNotification(SYNC_DOCUMENTS, (params) => {
    const n = (params as { n?: unknown } | null)?.n;
    if (typeof n !== "number") return;
    let docs: Array<{ uri: string; root: string; syntax: SyntaxKind }> = [];
    try {
      docs = openDocuments();
    } catch {
      // The front then asks per document.
    }
    writer.post({ t: "docs", docs, sync: n });
  });
  connection.onNotification(WANT_COMPLETION_DATA, (params) => {
    const { uri, n } = (params ?? {}) as { uri?: unknown; n?: unknown };
    if (typeof uri !== "string" || typeof n !== "number") return;
    let have: Omit<Extract<ToFront, { t: "have" }>, "t" | "n" | "uri"> = {};
    try {
      have = dataFor(uri) ?? {};
    } catch {
      // Answered without data: completion then offers what needs no vocabulary.
    }
    writer.post({ t: "have", n, uri, ...have });
  });
}

// ---------------------------------------------------------------------------
// The front: the main thread.

/** The syntax a policy path is read in before the analysis says (as `PolicyProject.syntaxOf` guesses). */
function guessSyntax(uri: string): SyntaxKind {
  try {
    const p = URI.parse(uri).fsPath.replace(/\\/g, "/");
    return p.slice(0, p.lastIndexOf("/")).endsWith("/etc/qubes-rpc/policy") ? "service" : "policy";
  } catch {
    return "policy";
  }
}

/**
 * Starts the front: the server proper runs in a worker thread started from `script` (this same
 * bundle). Returns false when no worker can be started (the caller then serves on this thread).
 */
export function startFront(script: string, argv: string[]): boolean {
  let worker: Worker;
  try {
    // What the worker writes to its stdout goes to stderr: only the front writes to the client.
    worker = new Worker(script, { argv, workerData: { qkitLsp: true }, stdout: true, stderr: false });
    worker.stdout.pipe(process.stderr);
  } catch {
    return false;
  }
  const reader = new StreamMessageReader(process.stdin);
  const writer = new PriorityWriter(
    new StreamMessageWriter(process.stdout, {
      charset: "utf-8",
      contentTypeEncoder: {
        name: "application/json",
        encode: (msg: Message) => {
          try {
            const raw = (msg as Partial<RawMessage>)[RAW];
            return Promise.resolve(raw ?? encodeMessageBytes(msg));
          } catch (e) {
            return Promise.reject(e);
          }
        },
      },
    }),
  );
  const log = (message: string, type = 3) => void writer.write({ jsonrpc: "2.0", method: "window/logMessage", params: { type, message } } as Message);

  // The open documents, completion's data per project root, and each policy document's project and syntax.
  const documents = new Map<string, TextDocument>();
  const data = new Map<string, CompletionData>();
  const docInfo = new Map<string, { root: string; syntax: SyntaxKind }>();
  let clientCaps: InitializeParams["capabilities"] = {};
  let shutdown = false;
  /** The ids of the client's requests handed to the worker and not answered yet. */
  const unanswered = new Set<number | string>();
  /** The text a completion that waited for the worker was asked on (see `want`). */
  let frozen: TextDocument | undefined;
  let retriggerCommand = false;
  const handlers = new Map<string, (params: unknown, token: { isCancellationRequested: boolean; onCancellationRequested: Event<unknown> }) => Promise<unknown>>();
  const requests: RequestHandler[] = completionRequests<string | undefined>({
    get clientCaps() {
      return clientCaps;
    },
    get retriggerCommand() {
      return retriggerCommand;
    },
    featureFor: () => undefined,
    lineContext(uri, position) {
      const td = frozen?.uri === uri ? frozen : documents.get(uri);
      if (!td) return undefined;
      const info = docInfo.get(uri);
      const lineStart = td.offsetAt({ line: position.line, character: 0 });
      const lineEnd = td.offsetAt({ line: position.line + 1, character: 0 });
      const doc = parseDocument(td.getText().slice(lineStart, lineEnd), { syntax: info?.syntax ?? guessSyntax(uri) });
      return { td, project: info?.root, doc, lineStart, offset: td.offsetAt(position) - lineStart };
    },
    completionContext(root) {
      const d = root === undefined ? undefined : data.get(root);
      return d ? { data: d } : {};
    },
  });
  for (const h of requests) handlers.set(h.method, guarded(h, (m) => log(m, 1)) as never);
  const NEVER: { isCancellationRequested: boolean; onCancellationRequested: Event<unknown> } = {
    isCancellationRequested: false,
    onCancellationRequested: () => ({ dispose: () => undefined }),
  };

  const toWorker = (m: ToWorker) => worker.postMessage(m);
  /** The last {@link SYNC_DOCUMENTS} sent, while its answer has not come (lists made before it are out of date). */
  let syncs = 0;
  let awaitingSync = 0;
  /**
   * Messages after which a document may belong to another project (a new document can make a
   * project that covers open ones; settings and folders remake them): the front forgets where each
   * document is (a completion meanwhile asks the worker) and takes no list made before them.
   */
  const MOVES = new Set(["textDocument/didOpen", "workspace/didChangeConfiguration", "workspace/didChangeWorkspaceFolders", "workspace/didChangeWatchedFiles"]);
  // A document the front has no data for yet (just opened, or its project's vocabulary not built):
  // the worker is asked, and answers from its last snapshot as the one-thread server would.
  const asked = new Map<number, (have: Extract<ToFront, { t: "have" }>) => void>();
  let asks = 0;
  const want = (uri: string) =>
    new Promise<void>((resolve) => {
      // No time limit: the worker answers after the messages before it, however long they take
      // (a `$/cancelRequest` answers the completion meanwhile; a dead worker ends the process).
      const n = ++asks;
      asked.set(n, (have) => {
        asked.delete(n);
        if (have.root !== undefined && have.syntax) docInfo.set(uri, { root: have.root, syntax: have.syntax });
        if (have.root !== undefined && have.data) data.set(have.root, have.data);
        resolve();
      });
      toWorker({ t: "in", m: { jsonrpc: "2.0", method: WANT_COMPLETION_DATA, params: { uri, n } } as Message });
    });
  /**
   * The front's requests not answered yet, with whether the client cancelled them. An answer is
   * sent a turn after its request was read (a `$/cancelRequest` read with it comes first, as the
   * connection of one thread would see it), or once the worker said what to complete from.
   */
  const pendingHere = new Map<number | string, { cancel: () => void }>();
  const CANCELLED = () => new ResponseError(LSPErrorCodes.RequestCancelled, "request cancelled").toJson();
  const answer = (id: number | string, run: Promise<unknown>, method: string) => {
    let sent = false;
    const send = (m: object) => {
      if (sent) return;
      sent = true;
      pendingHere.delete(id);
      void writer.write({ jsonrpc: "2.0", id, ...m } as Message);
    };
    pendingHere.set(id, { cancel: () => send({ error: CANCELLED() }) });
    run.then(
      (result) => setImmediate(() => send({ result: method === "textDocument/completion" ? markedHere(result) : (result ?? null) })),
      (e: unknown) => setImmediate(() => send({ error: e instanceof ResponseError ? e.toJson() : { code: -32603, message: e instanceof Error ? e.message : String(e) } })),
    );
  };
  /** Marks the items the front made (`data.f`), so that their `completionItem/resolve` comes back here. */
  const markedHere = (result: unknown): unknown => {
    const items = Array.isArray(result) ? result : (result as { items?: unknown } | null)?.items;
    if (Array.isArray(items)) for (const item of items as Array<{ data?: unknown }>) if (item.data !== null && typeof item.data === "object") item.data = { ...item.data, f: 1 };
    return result ?? null;
  };
  /** Whether a completion for this URI is the front's: the worker's document features (stack files, policy test files) answer their own. */
  const answersHere = (uri: string) => documents.has(uri) && !isTemplatePath(uri) && !isPolicyTestPath(uri);
  /** True when the front answers this request itself. */
  const ownRequest = (method: string, id: unknown, params: unknown): boolean => {
    if (typeof id !== "number" && typeof id !== "string") return false;
    if (params === null || typeof params !== "object" || Array.isArray(params)) return false;
    // An item the front made (see `markedHere`); any other goes to the worker, whose numbers it carries.
    if (method === "completionItem/resolve") return ((params as { data?: { f?: unknown } }).data?.f ?? null) === 1;
    if (method !== "textDocument/completion") return false;
    const uri = (params as { textDocument?: { uri?: unknown } }).textDocument?.uri;
    return typeof uri === "string" && answersHere(uri);
  };

  /**
   * Applies a document sync notification to the front's copies exactly as the worker's
   * `TextDocuments` does (vscode-languageserver's rules, with the parameters the connection hands
   * its handler: by name, or the first positional one); what would throw there is not applied here.
   */
  const sync = (method: string, params: unknown): void => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const event: any = params === undefined ? undefined : Array.isArray(params) ? params[0] : params;
    try {
      if (method === "textDocument/didOpen") {
        const td = event.textDocument;
        documents.set(td.uri, TextDocument.create(td.uri, td.languageId, td.version, td.text));
      } else if (method === "textDocument/didChange") {
        const td = event.textDocument;
        const changes = event.contentChanges;
        if (changes.length === 0) return;
        const { version } = td;
        if (version === null || version === undefined) return;
        const doc = documents.get(td.uri);
        if (doc !== undefined) documents.set(td.uri, TextDocument.update(doc, changes, version));
      } else if (method === "textDocument/didClose") {
        documents.delete(event.textDocument.uri);
      }
    } catch {
      // Refused alike by the worker's handler (it logs it).
    }
  };

  reader.listen((message) => {
    const m = message as { method?: unknown; id?: unknown; params?: unknown };
    traceEvent("read", typeof m.method === "string" ? m.method : "response", typeof m.id === "number" || typeof m.id === "string" ? m.id : undefined);
    if (typeof m.method === "string") {
      try {
        const isRequest = typeof m.id === "number" || typeof m.id === "string";
        if (!isRequest && m.method.startsWith("textDocument/did")) sync(m.method, m.params);
        if (isRequest && m.method === "shutdown") shutdown = true;
        if (isRequest && m.method === "initialize") {
          const init = m.params as Partial<InitializeParams> | undefined;
          clientCaps = init?.capabilities ?? {};
          retriggerCommand = /code/i.test(init?.clientInfo?.name ?? "");
        }
        if (m.method === "$/cancelRequest") {
          const id = (m.params as { id?: unknown } | undefined)?.id;
          const here = typeof id === "number" || typeof id === "string" ? pendingHere.get(id) : undefined;
          if (here) {
            here.cancel();
            return;
          }
        }
        if (ownRequest(m.method, m.id, m.params)) {
          const run = handlers.get(m.method)!;
          const id = m.id as number | string;
          const uri = (m.params as { textDocument?: { uri?: string } }).textDocument?.uri;
          const info = uri === undefined ? undefined : docInfo.get(uri);
          if (m.method === "textDocument/completion" && uri !== undefined && (!info || !data.has(info.root))) {
            // Answered on the text as it is now, once the worker has said what to complete from.
            const td = documents.get(uri)!;
            const copy = TextDocument.create(uri, td.languageId, td.version, td.getText());
            const params = m.params;
            let release: (v: unknown) => void = () => undefined;
            answer(id, new Promise((resolve) => (release = resolve)), m.method);
            void want(uri).then(() => {
              frozen = copy;
              try {
                release(run(params, NEVER));
              } finally {
                frozen = undefined;
              }
            });
            return;
          }
          answer(id, run(m.params, NEVER), m.method);
          return;
        }
      } catch (e) {
        log(`qubes-policy: the front failed on ${m.method}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, 1);
      }
    }
    if (typeof m.method === "string" && (typeof m.id === "number" || typeof m.id === "string")) unanswered.add(m.id);
    toWorker({ t: "in", m: message });
    if (typeof m.method === "string" && MOVES.has(m.method)) {
      docInfo.clear();
      awaitingSync = ++syncs;
      toWorker({ t: "in", m: { jsonrpc: "2.0", method: SYNC_DOCUMENTS, params: { n: awaitingSync } } as Message });
    }
  });
  // The client closed its end: as the library does for a stream, exit (0 after `shutdown`, else 1).
  // The requests the worker has not answered yet are given a second (the answer to a `shutdown` sent just before).
  // Then the worker is told to end with that code, and the process ends with the worker (at most a second later).
  reader.onClose(() => {
    const code = shutdown ? 0 : 1;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      clearInterval(t);
      toWorker({ t: "end", code });
      setTimeout(() => exitAfterWrites(code), 1000);
    };
    const t = setInterval(() => {
      if (unanswered.size === 0 && pendingHere.size === 0) end();
    }, 5);
    setTimeout(end, 1000);
  });
  reader.onError((e) => log(`qubes-policy: could not read a message: ${e.message}`, 1));

  worker.on("message", (d: ToFront) => {
    switch (d.t) {
      case "out": {
        const raw: RawMessage = { jsonrpc: "2.0", [RAW]: d.b };
        if (d.method !== undefined) raw.method = d.method;
        if (d.id !== undefined) raw.id = d.id;
        if (d.method === undefined && d.id !== undefined && d.id !== null) unanswered.delete(d.id);
        writer.write(raw as unknown as Message).then(
          () => toWorker({ t: "written", n: d.n }),
          (e: unknown) => toWorker({ t: "written", n: d.n, error: e instanceof Error ? e.message : String(e) }),
        );
        break;
      }
      case "completion":
        data.set(d.root, d.data);
        break;
      case "docs": {
        // Made before a message that may have moved documents: out of date.
        if (awaitingSync && (d.sync ?? 0) < awaitingSync) break;
        awaitingSync = 0;
        // The open documents' projects (keys that change when a project is made again): data of a project none of them is in is dropped.
        docInfo.clear();
        for (const x of d.docs) docInfo.set(x.uri, { root: x.root, syntax: x.syntax });
        const live = new Set(d.docs.map((x) => x.root));
        for (const k of [...data.keys()]) if (!live.has(k)) data.delete(k);
        break;
      }
      case "have":
        asked.get(d.n)?.(d);
        break;
    }
  });
  worker.on("error", (e) => {
    log(`qubes-policy: the server's thread failed: ${e.stack ?? e.message}`, 1);
  });
  // The server's thread ended (`exit`, or its client process is gone): so does the process, with its code.
  worker.on("exit", (code) => exitAfterWrites(code));
  /** Exits once what is being written has gone out (the answer to `shutdown`, a last log message), at most 2 s later. */
  function exitAfterWrites(code: number): void {
    const done = () => process.exit(code);
    if (!writer.busy && writer.waiting === 0) return done();
    setInterval(() => {
      if (!writer.busy && writer.waiting === 0) done();
    }, 5);
    setTimeout(done, 2000);
  }
  return true;
}
