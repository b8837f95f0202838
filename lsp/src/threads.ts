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
 * - `textDocument/completion` of an open policy document, and `completionItem/resolve`: answers
 *   it (the same handlers as the server's, see `features/completion.ts`);
 * - anything else: hands it on as it is.
 * The worker's messages (answers, notifications, its requests to the client) are encoded there
 * and written by the front as they are.
 *
 * INVARIANTS: the front answers a completion exactly as the server would from the same text and
 * vocabulary (`test/lsp/threads.test.ts` compares both); only the front writes to stdout; the
 * process exits with the worker's exit code (`exit` after `shutdown` is 0).
 */
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from "node:worker_threads";
import {
  Emitter,
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
import { traceEvent } from "./trace.js";

/** Front → worker. */
type ToWorker = { t: "in"; m: Message } | { t: "end" } | { t: "written"; n: number; error?: string };

/**
 * The front's question for completion's data of a document it has none for: a notification among
 * the client's messages, so the worker answers it after the messages before it (the `didOpen`).
 */
export const WANT_COMPLETION_DATA = "$/qkit/wantCompletionData";
/** Worker → front. */
type ToFront =
  | { t: "out"; n: number; b: Uint8Array; method?: string; id?: number | string | null }
  | { t: "completion"; root: string; data: CompletionData }
  | { t: "docs"; docs: Array<{ uri: string; root: string; syntax: SyntaxKind }> }
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
      if (data.t === "end") return this.closes.fire();
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

/** Answers the front's {@link WANT_COMPLETION_DATA} notifications. */
export function answerFront(
  connection: { onNotification(method: string, handler: (params: unknown) => void): unknown },
  writer: PortWriter,
  dataFor: (uri: string) => { root: string; syntax: SyntaxKind; data?: CompletionData } | undefined,
): void {
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
    worker = new Worker(script, { argv, workerData: { qkitLsp: true }, stdout: false, stderr: false });
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
  // A document the front has no data for yet (just opened, or its project's vocabulary not built):
  // the worker is asked, and answers from its last snapshot as the one-thread server would.
  const asked = new Map<number, (have: Extract<ToFront, { t: "have" }>) => void>();
  let asks = 0;
  const want = (uri: string) =>
    new Promise<void>((resolve) => {
      const n = ++asks;
      const timer = setTimeout(() => {
        asked.delete(n);
        resolve();
      }, 5000);
      asked.set(n, (have) => {
        clearTimeout(timer);
        asked.delete(n);
        if (have.root !== undefined && have.syntax) docInfo.set(uri, { root: have.root, syntax: have.syntax });
        if (have.root !== undefined && have.data) data.set(have.root, have.data);
        resolve();
      });
      toWorker({ t: "in", m: { jsonrpc: "2.0", method: WANT_COMPLETION_DATA, params: { uri, n } } as Message });
    });
  const answer = (id: number | string, run: Promise<unknown>) => {
    run.then(
      (result) => void writer.write({ jsonrpc: "2.0", id, result: result ?? null } as Message),
      (e: unknown) => {
        const error = e instanceof ResponseError ? e.toJson() : { code: -32603, message: e instanceof Error ? e.message : String(e) };
        void writer.write({ jsonrpc: "2.0", id, error } as Message);
      },
    );
  };
  /** True when the front answers this request itself. */
  const ownRequest = (method: string, id: unknown, params: unknown): boolean => {
    if (typeof id !== "number" && typeof id !== "string") return false;
    if (method === "completionItem/resolve") return params !== null && typeof params === "object" && !Array.isArray(params);
    if (method !== "textDocument/completion") return false;
    const uri = (params as { textDocument?: { uri?: unknown } } | null)?.textDocument?.uri;
    // Stack files (and any parameters the handler would refuse) go to the server.
    return typeof uri === "string" && !Array.isArray(params) && documents.has(uri) && !isTemplatePath(uri);
  };

  reader.listen((message) => {
    const m = message as { method?: unknown; id?: unknown; params?: unknown };
    traceEvent("read", typeof m.method === "string" ? m.method : "response", typeof m.id === "number" || typeof m.id === "string" ? m.id : undefined);
    if (typeof m.method === "string") {
      try {
        const p = m.params as Record<string, unknown> | undefined;
        switch (m.method) {
          case "shutdown":
            shutdown = true;
            break;
          case "initialize": {
            const init = p as Partial<InitializeParams> | undefined;
            clientCaps = init?.capabilities ?? {};
            retriggerCommand = /code/i.test(init?.clientInfo?.name ?? "");
            break;
          }
          case "textDocument/didOpen": {
            const d = p?.textDocument as { uri?: unknown; languageId?: unknown; version?: unknown; text?: unknown } | undefined;
            if (d && typeof d.uri === "string" && typeof d.text === "string") {
              documents.set(d.uri, TextDocument.create(d.uri, String(d.languageId ?? ""), typeof d.version === "number" ? d.version : 0, d.text));
            }
            break;
          }
          case "textDocument/didChange": {
            const d = p?.textDocument as { uri?: unknown; version?: unknown } | undefined;
            const td = d && typeof d.uri === "string" ? documents.get(d.uri) : undefined;
            if (td && Array.isArray(p?.contentChanges)) TextDocument.update(td, p.contentChanges as never, typeof d!.version === "number" ? d!.version : td.version + 1);
            break;
          }
          case "textDocument/didClose": {
            const d = p?.textDocument as { uri?: unknown } | undefined;
            if (d && typeof d.uri === "string") documents.delete(d.uri);
            break;
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
            void want(uri).then(() => {
              frozen = copy;
              try {
                answer(id, run(params, NEVER));
              } finally {
                frozen = undefined;
              }
            });
            return;
          }
          answer(id, run(m.params, NEVER));
          return;
        }
      } catch (e) {
        log(`qubes-policy: the front failed on ${m.method}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, 1);
      }
    }
    if (typeof m.method === "string" && (typeof m.id === "number" || typeof m.id === "string")) unanswered.add(m.id);
    toWorker({ t: "in", m: message });
  });
  // The client closed its end: as the library does for a stream, exit (0 after `shutdown`, else 1).
  // The requests the worker has not answered yet are given a second (the answer to a `shutdown` sent just before).
  reader.onClose(() => {
    toWorker({ t: "end" });
    const code = shutdown ? 0 : 1;
    if (unanswered.size === 0) return exitAfterWrites(code);
    const t = setInterval(() => {
      if (unanswered.size === 0) exitAfterWrites(code);
    }, 5);
    setTimeout(() => {
      clearInterval(t);
      exitAfterWrites(code);
    }, 1000);
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
      case "docs":
        docInfo.clear();
        for (const x of d.docs) docInfo.set(x.uri, { root: x.root, syntax: x.syntax });
        break;
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
