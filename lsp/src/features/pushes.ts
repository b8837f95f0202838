/**
 * Where diagnostics go: pushed (`textDocument/publishDiagnostics`) or pulled
 * (`textDocument/diagnostic`, `workspace/diagnostic`), never both for one
 * document in one client (LSP 3.17: a client that pulls a document's
 * diagnostics would show pushed ones beside them).
 *
 * Every part of the server that has diagnostics (the policy analysis, stack
 * files, policy tests) sends them through the connection as before; this
 * module wraps the connection's `sendDiagnostics`, keeps the latest list of
 * every URI (pull answers read it), and forwards a list to the client only
 * when the client does not pull that document:
 *
 * - a client that does not announce `textDocument.diagnostic` gets every push;
 * - a client that does pulls its open documents (every client library pulls
 *   the documents it syncs), so those get no pushes; once it has asked
 *   `workspace/diagnostic`, it pulls every document and gets no pushes at all;
 * - a document that stops being pushed loses what was pushed before (an empty
 *   push), and a document that starts being pushed again (closed in a client
 *   that pulls open documents only) gets its latest list.
 *
 * The router also remembers what each pull answered. When the latest list of
 * a document the client pulls differs from what the client last got for it (a
 * policy edit makes a closed test fail, the system model is reloaded, or a
 * pull was cancelled or failed and the client kept an empty list), the client
 * is asked to pull again (`workspace/diagnostic/refresh`) when it supports that.
 */
import type { Connection, Diagnostic, PublishDiagnosticsParams, TextDocuments } from "vscode-languageserver";
import type { TextDocument } from "vscode-languageserver-textdocument";
import { sameLspDiagnostic } from "../convert.js";

/** One URI's latest diagnostics, as the server computed them. */
export interface LatestDiagnostics {
  readonly diagnostics: readonly Diagnostic[];
  /** The document version they belong to (open documents). */
  readonly version?: number;
  /** Bumped when the list changes (a cheap result id). */
  readonly serial: number;
}

/** The router of {@link createPushRouter}. */
export interface PushRouter {
  /** The connection to hand to the rest of the server: its `sendDiagnostics` is routed. */
  readonly connection: Connection;
  /** Set once the client's capabilities are known. */
  configure(options: { clientPulls: boolean; refreshSupport: boolean }): void;
  /** Starts following open and closed documents (call once the documents exist). */
  follow(documents: TextDocuments<TextDocument>): void;
  /** True when the client pulls the diagnostics of this URI (so it gets no pushes). */
  pulled(uri: string): boolean;
  /** The client pulled a document (`textDocument/diagnostic`): clears what was pushed for it. */
  documentPulled(uri: string): void;
  /** The client pulled the workspace (`workspace/diagnostic`): from now on it gets no pushes. */
  workspacePulled(): void;
  /** What a pull answered for a URI (the client shows that list now). */
  answered(uri: string, items: readonly Diagnostic[]): void;
  /** A pull of a URI was cancelled or failed: the client may show an empty list. */
  unanswered(uri: string): void;
  /** The latest diagnostics of a URI, pushed or not. */
  latest(uri: string): LatestDiagnostics | undefined;
  /** Every URI diagnostics were computed for (an empty list included: a file that lost its diagnostics). */
  known(): string[];
}

/** How long changes of pulled documents are gathered before one refresh request (ms). */
const REFRESH_MS = 100;

/**
 * True when two lists say the same. The server hands on the same diagnostic objects for what did
 * not change (`convertReusing` in `server-core.ts`), so this is mostly identity checks; stringifying
 * both lists (megabytes for a large file, after every publication) cost more than the analysis.
 */
function sameList(a: readonly Diagnostic[], b: readonly Diagnostic[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameLspDiagnostic(a[i]!, b[i]!)) return false;
  return true;
}

/** Wraps a connection so that its pushes follow the client's pulls. */
export function createPushRouter(raw: Connection): PushRouter {
  const latest = new Map<string, LatestDiagnostics>();
  /** What the client was last sent per URI (non-empty lists only). */
  const forwarded = new Set<string>();
  let serial = 0;
  let clientPulls = false;
  let refreshSupport = false;
  let workspace = false;
  let documents: TextDocuments<TextDocument> | undefined;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** What the client got from its last pull of each URI (a signature of the list). */
  const shown = new Map<string, string>();
  const signatures = new WeakMap<LatestDiagnostics, string>();
  /** What a client shows of a list: places, codes, severities and messages. */
  const signature = (list: readonly Diagnostic[]) =>
    list.map((d) => `${d.range.start.line}:${d.range.start.character}-${d.range.end.line}:${d.range.end.character} ${String(d.code)} ${d.severity} ${d.message}`).join("\n");

  const isOpen = (uri: string) => documents?.get(uri) !== undefined;
  const pulled = (uri: string) => clientPulls && (workspace || isOpen(uri));

  const send = (params: PublishDiagnosticsParams): Promise<void> => {
    if (params.diagnostics.length) forwarded.add(params.uri);
    else forwarded.delete(params.uri);
    try {
      return raw.sendDiagnostics(params).catch(() => undefined);
    } catch {
      // The connection is closing: nobody is left to tell.
      return Promise.resolve();
    }
  };
  /** Takes back what was pushed for a URI the client now pulls. */
  const unpush = (uri: string) => {
    if (forwarded.has(uri)) void send({ uri, diagnostics: [] });
  };
  /** True when the client shows, for some document it pulls, another list than the latest. */
  const behind = (): boolean => {
    for (const [uri, l] of latest) {
      if (!pulled(uri)) continue;
      let sig = signatures.get(l);
      if (sig === undefined) signatures.set(l, (sig = signature(l.diagnostics)));
      if ((shown.get(uri) ?? "") !== sig) return true;
    }
    return false;
  };
  /** Asks the client to pull again if, once the pulls under way have answered, it is still behind. */
  const askRefresh = () => {
    if (!refreshSupport || refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = undefined;
      if (!behind()) return;
      try {
        void raw.sendRequest("workspace/diagnostic/refresh").catch(() => undefined);
      } catch {
        // The connection is closing.
      }
    }, REFRESH_MS);
  };

  const sendDiagnostics = (params: PublishDiagnosticsParams): Promise<void> => {
    const prev = latest.get(params.uri);
    const same = prev !== undefined && prev.version === params.version && sameList(prev.diagnostics, params.diagnostics);
    if (!same) latest.set(params.uri, { diagnostics: params.diagnostics, ...(params.version !== undefined ? { version: params.version } : {}), serial: ++serial });
    if (!pulled(params.uri)) return send(params);
    unpush(params.uri);
    if (!same) askRefresh();
    return Promise.resolve();
  };

  const connection = new Proxy(raw, {
    get(target, key, receiver) {
      if (key === "sendDiagnostics") return sendDiagnostics;
      return Reflect.get(target, key, receiver) as unknown;
    },
  });

  return {
    connection,
    configure(options) {
      clientPulls = options.clientPulls;
      refreshSupport = options.refreshSupport;
    },
    follow(docs) {
      documents = docs;
      docs.onDidOpen((e) => {
        if (!pulled(e.document.uri)) return;
        unpush(e.document.uri);
        // The client pulls what it opens; if that pull never reaches the server, it is asked again.
        askRefresh();
      });
      docs.onDidClose((e) => {
        // A client that pulls open documents only drops a closed one's pulled list: push the latest instead.
        const uri = e.document.uri;
        if (!clientPulls || workspace) return;
        shown.delete(uri);
        setImmediate(() => {
          const l = latest.get(uri);
          if (!isOpen(uri) && l && l.diagnostics.length && !forwarded.has(uri)) void send({ uri, diagnostics: [...l.diagnostics] });
        });
      });
    },
    pulled,
    documentPulled(uri) {
      if (clientPulls) unpush(uri);
    },
    workspacePulled() {
      if (!clientPulls || workspace) return;
      workspace = true;
      for (const uri of [...forwarded]) unpush(uri);
    },
    answered(uri, items) {
      shown.set(uri, signature(items));
    },
    unanswered(uri) {
      shown.delete(uri);
      askRefresh();
    },
    latest: (uri) => latest.get(uri),
    known: () => [...latest.keys()],
  };
}
