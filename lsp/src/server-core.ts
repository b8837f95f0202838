/**
 * The language server's core: the connection's lifecycle, the policy projects,
 * document sync, settings, the system model and the scheduling of analysis.
 * Requests are answered by the feature modules of `features/` (one per
 * feature, listed in `features/index.ts`), registered here through one guard
 * that applies cancellation, the parameter check and the fallback on failure.
 */
import {
  LSPErrorCodes,
  ResponseError,
  DidChangeConfigurationNotification,
  DidChangeWatchedFilesNotification,
  TextDocuments,
  TextDocumentSyncKind,
  type CancellationToken,
  type Connection,
  type Diagnostic as LspDiagnostic,
  type InitializeParams,
  type InitializeResult,
  type Location,
  type PublishDiagnosticsParams,
} from "vscode-languageserver";
import { TextDocument } from "vscode-languageserver-textdocument";
import { URI } from "vscode-uri";
import {
  completionData,
  parseDocument,
  prepareSystemInfo,
  storageOf,
  vocabularySteps,
  type AnalysisDiagnostic,
  type CompletionData,
  type PolicyDocument,
  type PolicySnapshot,
  type RawSystemInfo,
  type SyntaxKind,
  type SystemInfo,
} from "@qubes-kit/language";
import { mapperFor, matchesLspDiagnostic, sameLspDiagnostic, toLspDiagnostic, toRange, type PositionMapper } from "./convert.js";
import type { ServerHost } from "./host.js";
import { findPolicyDirIn, guessPolicyRoot, normalizePath, PolicyProject, type DocumentOverlay } from "./project.js";
import { DocumentSyntaxNotification, type DocumentSyntaxParams, SystemModelStatusNotification, type SystemModelStatusParams, type QubesPolicySettings, type SystemSource } from "./protocol.js";
import { createTemplateFeature, isTemplatePath, type DocumentFeature } from "./template/feature.js";
import { FEATURES, registerFeatures, throwIfCancelled, type ServerContext } from "./features/index.js";
import { createPolicyTestFeature, isPolicyTestPath } from "./features/policytest.js";
import { createPushRouter } from "./features/pushes.js";
import { readSettings } from "./settings.js";
import { traceEvent } from "./trace.js";

/** The keys of {@link QubesPolicySettings}: an `initializationOptions` object with one of them is the settings itself. */
const SETTING_KEYS = ["system", "policyDir", "runtimeDir", "legacyDir", "analysis", "codeLens", "template"];

/** The language id the server registers for. */
export const LANGUAGE_ID = "qrexecpolicy";


/** The server's state, exposed for in-process tests and benchmarks. */
export interface PolicyServer {
  readonly documents: TextDocuments<TextDocument>;
  /** The project a document URI belongs to. */
  projectFor(uri: string): PolicyProject;
  /** Re-analyses every project now and publishes the diagnostics (normally debounced). */
  validateNow(): void;
  /** The diagnostics last published, by URI. */
  readonly published: ReadonlyMap<string, LspDiagnostic[]>;
  /** Settings in effect. */
  readonly settings: QubesPolicySettings;
  /**
   * What completion answers from for an open policy document now: its project root and syntax,
   * and the data of the newest snapshot with a vocabulary, else of the last one (none before the
   * first analysis). Undefined for a document that is not open or not a policy.
   */
  completionDataFor(uri: string): { root: string; syntax: SyntaxKind; data?: CompletionData } | undefined;
  /** Every open policy document's project key and syntax, now (see `StartOptions.openDocuments`). */
  openDocumentInfo(): Array<{ uri: string; root: string; syntax: SyntaxKind }>;
  /**
   * To be called by the connection's reader for every message it reads (see `incoming.ts`): the
   * analysis then leaves a turn of the event loop to each waiting message before its next slice.
   */
  readonly messageArrived: () => void;
}

/** Options of {@link startServer}. */
export interface StartOptions {
  /** Debounce of re-validation after an edit, in milliseconds (default 15). */
  debounceMs?: number;
  /**
   * True while the connection is still writing a message out (the client has not read it all).
   * The analysis then runs in short slices: the stream hands the rest to the pipe only between
   * turns of the event loop, one pipe buffer (64 KiB) a turn, and an answer waits behind it.
   */
  outputBusy?: () => boolean;
  /**
   * Called with the data completion answers from each time a project's vocabulary is built
   * (the stdio front answers completion on its own thread from it, see `threads.ts`).
   */
  completionData?: (root: string, data: CompletionData) => void;
  /** Called with every open policy document's project root and syntax when that list changes. */
  openDocuments?: (docs: Array<{ uri: string; root: string; syntax: SyntaxKind }>) => void;
}

/** Starts serving on a connection. Returns the server state; the caller calls `connection.listen()`. */
export function startServer(rawConnection: Connection, host: ServerHost, options: StartOptions = {}): PolicyServer {
  // Diagnostics are sent through the router: a client that pulls a document's diagnostics gets no pushes for it.
  const pushes = createPushRouter(rawConnection);
  const connection = pushes.connection;
  const documents = new TextDocuments(TextDocument);
  const projects = new Map<string, PolicyProject>();
  const published = new Map<string, LspDiagnostic[]>();
  const uriOfPath = new Map<string, string>();
  let settings: QubesPolicySettings = {};
  let folders: string[] = [];
  let system: SystemInfo | null = null;
  /** The installed kernels and storage pools the system model file lists (for stack checks), when it does. */
  let storage: { kernels?: string[]; pools?: string[] } = {};
  let systemSource: SystemSource = "none";
  let systemError: string | undefined;
  let clientCaps: InitializeParams["capabilities"] = {};
  let retriggerCommand = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const debounceMs = options.debounceMs ?? 15;

  const log = (msg: string) => {
    try {
      connection.console.error(msg);
    } catch {
      // The connection may be gone; nothing else to do.
    }
  };

  /** Runs a lifecycle or notification handler; on failure logs and answers `fallback`. A request cancelled before it runs answers `RequestCancelled`. */
  function guard<A extends unknown[], R>(name: string, fallback: R, fn: (...args: A) => R): (...args: A) => R {
    return (...args: A) => {
      throwIfCancelled(args[1]);
      try {
        return fn(...args);
      } catch (e) {
        // A refusal meant for the client (bad parameters) goes back as a JSON-RPC error.
        if (e instanceof ResponseError) throw e;
        log(`qubes-policy: ${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        return fallback;
      }
    };
  }
  function guardAsync<A extends unknown[], R>(name: string, fallback: R, fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args: A) => {
      throwIfCancelled(args[1]);
      try {
        return await fn(...args);
      } catch (e) {
        if (e instanceof ResponseError) throw e;
        log(`qubes-policy: ${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        return fallback;
      }
    };
  }

  const pathOfUri = (uri: string): string => {
    try {
      const u = URI.parse(uri);
      if (u.scheme === "file") return normalizePath(u.fsPath.replace(/\\/g, "/"));
      // Unsaved and virtual documents get a private folder of their own: they never read the disk.
      return normalizePath(`/.qkit-${u.scheme}/${u.authority}/${u.path}`);
    } catch {
      return normalizePath(uri);
    }
  };
  const uriOf = (disk: string): string => uriOfPath.get(disk) ?? URI.file(disk).toString();

  /** The open documents the policy projects own (stack files belong to their feature). */
  const policyDocuments = () => documents.all().filter((d) => !isTemplatePath(d.uri) && !isPolicyTestPath(d.uri));

  const overlay: DocumentOverlay = {
    get(disk) {
      const uri = uriOfPath.get(disk);
      const doc = uri ? documents.get(uri) : undefined;
      return doc ? { text: doc.getText(), version: doc.version } : undefined;
    },
    paths() {
      return policyDocuments().map((d) => {
        const disk = pathOfUri(d.uri);
        if (!uriOfPath.has(disk)) uriOfPath.set(disk, d.uri);
        return disk;
      });
    },
  };

  function configureProject(p: PolicyProject): PolicyProject {
    p.system = system;
    p.analysis = (settings.analysis ?? {}) as PolicyProject["analysis"];
    p.invalidate();
    return p;
  }

  /**
   * A project's key for the stdio front (`StartOptions.completionData`, `openDocuments`): its root
   * and a serial, so that a project made again (settings changed) starts without the old one's data.
   */
  const projectSerials = new WeakMap<PolicyProject, number>();
  let projectsMade = 0;
  const projectKey = (p: PolicyProject) => `${p.root}#${projectSerials.get(p) ?? 0}`;
  /** The front is told the open documents' projects at once when the projects change (a document may have moved). */
  let announceQueued = false;
  function announceSoon(): void {
    const to = options.openDocuments;
    if (!to || announceQueued) return;
    announceQueued = true;
    setImmediate(() => {
      announceQueued = false;
      announceDocuments(to);
    });
  }

  function makeProject(root: string): PolicyProject {
    const r = normalizePath(root);
    let p = projects.get(r);
    if (!p) {
      p = configureProject(new PolicyProject(r, host.fs, overlay, { runtimeDir: settings.runtimeDir, legacyDir: settings.legacyDir }));
      projectSerials.set(p, ++projectsMade);
      projects.set(r, p);
      announceSoon();
    }
    return p;
  }

  function projectForPath(disk: string): PolicyProject {
    let best: PolicyProject | undefined;
    for (const p of projects.values()) if (p.covers(disk) && (!best || p.root.length > best.root.length)) best = p;
    if (best) return best;
    if (settings.policyDir) {
      const explicit = makeProject(settings.policyDir);
      if (explicit.covers(disk)) return explicit;
    }
    return makeProject(guessPolicyRoot(disk, host.fs));
  }

  function projectFor(uri: string): PolicyProject {
    const disk = pathOfUri(uri);
    if (!uriOfPath.has(disk)) uriOfPath.set(disk, uri);
    return projectForPath(disk);
  }

  function rebuildProjects(): void {
    projects.clear();
    if (settings.policyDir) makeProject(settings.policyDir);
    for (const f of folders) {
      const dir = findPolicyDirIn(f, host.fs);
      if (dir) makeProject(dir);
    }
    for (const d of policyDocuments()) projectFor(d.uri);
  }

  const mappers = new WeakMap<PolicyDocument, PositionMapper>();
  /** A position mapper for a path: the open document, or the file's text (cached per parsed document). */
  function mapperForPath(project: PolicyProject, snapshot: PolicySnapshot, disk: string): PositionMapper | undefined {
    const uri = uriOfPath.get(disk);
    const open = uri ? documents.get(uri) : undefined;
    if (open) return open;
    const doc = snapshot.document(project.toVirtual(disk));
    if (!doc) return undefined;
    let m = mappers.get(doc);
    if (!m) mappers.set(doc, (m = mapperFor(doc.text)));
    return m;
  }

  function locationOf(project: PolicyProject, snapshot: PolicySnapshot, virtual: string, span: { start: number; end: number }): Location | undefined {
    const disk = project.toDisk(virtual);
    if (disk === null) return undefined;
    const mapper = mapperForPath(project, snapshot, disk);
    if (!mapper) return undefined;
    return { uri: uriOf(disk), range: toRange(mapper, span) };
  }

  // ---------------------------------------------------------------------------
  // Document features: file kinds other than policy files, each in its own module.
  // A handler below hands a request to the first feature that handles the URI.

  /** The workspace policy a file outside it (a stack file) refers to: the configured or first found `policy.d`. */
  function workspacePolicyFor(disk: string): PolicyProject | undefined {
    if (settings.policyDir) return makeProject(settings.policyDir);
    let best: PolicyProject | undefined;
    for (const p of projects.values()) {
      const base = p.root.replace(/\/etc\/qubes\/policy\.d$|\/policy\.d$/, "");
      if (disk.startsWith(base + "/") && (!best || p.root.length > best.root.length)) best = p;
    }
    return best;
  }

  const policyTests = createPolicyTestFeature({
    connection,
    documents,
    fs: host.fs,
    system: () => system,
    policyReady(dir) {
      const project = makeProject(dir);
      if (project.busy) {
        kick();
        return undefined;
      }
      const snapshot = project.snapshot();
      return { root: project.root, snapshot, locate: (virtual, span) => locationOf(project, snapshot, virtual, span) };
    },
    waitPolicy: async (dir, token) => void (await analysed(makeProject(dir), token)),
    folders: () => folders,
    pathOf: pathOfUri,
    uriOf,
    canRefreshLenses: () => clientCaps.workspace?.codeLens?.refreshSupport === true,
    log,
  });
  const features: DocumentFeature[] = [
    policyTests,
    createTemplateFeature({
      connection,
      documents,
      fs: host.fs,
      system: () => system,
      storage: () => storage,
      loadDevices: async (backend, devclass) => {
        if (!host.template?.devices) return [];
        return host.template.devices({ settings, folder: folders[0], file: "", readFile: (p) => host.fs.readFile(p), policyDir: undefined }, backend, devclass);
      },
      pathOf: pathOfUri,
      uriOf,
      policyFor(disk) {
        const project = workspacePolicyFor(disk);
        if (!project) return undefined;
        const snapshot = project.snapshot();
        return { snapshot, locate: (virtual, span) => locationOf(project, snapshot, virtual, span) };
      },
      log,
    }),
  ];
  const featureFor = (uri: string): DocumentFeature | undefined => features.find((f) => f.handles(uri));

  /** The diagnostics last published, by URI, as the core gave them (to skip unchanged files cheaply). */
  const publishedSig = new Map<string, readonly AnalysisDiagnostic[]>();
  /** The document version last published with, by URI. */
  const publishedVersion = new Map<string, number>();
  /** True when two lists would publish the same (a snapshot hands on the same objects for unchanged findings). */
  const sameDiagnostics = (a: readonly AnalysisDiagnostic[], b: readonly AnalysisDiagnostic[]): boolean => {
    if (a === b) return true;
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!;
      const y = b[i]!;
      if (x === y) continue;
      if (x.code !== y.code || x.severity !== y.severity || x.line !== y.line || x.span.start !== y.span.start || x.span.end !== y.span.end || x.message !== y.message) return false;
      const xr = x.related ?? [];
      const yr = y.related ?? [];
      if (xr.length !== yr.length) return false;
      for (let k = 0; k < xr.length; k++) {
        const u = xr[k]!;
        const v = yr[k]!;
        if (u.path !== v.path || u.line !== v.line || u.span.start !== v.span.start || u.span.end !== v.span.end || u.message !== v.message) return false;
      }
    }
    return true;
  };

  // Interactive first: while the user types, the edited documents' diagnostics are published at
  // once and the other files' wait until the edits pause (a policy of 100k rules can have tens of
  // thousands of warnings in closed files, and the notifications that carry them share the pipe
  // with every answer to the client).
  /** When the last edit of an open document arrived (ms, `clock`). */
  let lastEditAt = -Infinity;
  /** Documents just opened, whose first content event is the open, not an edit. */
  const opening = new Set<string>();
  /** How long the edits must pause before closed files' diagnostics are published (ms). */
  const CLOSED_FILES_AFTER_MS = 400;
  /** Closed files' diagnostics waiting to be published, oldest first (see {@link pumpClosed}). */
  const closedQueue = new Map<string, { project: PolicyProject; publish: () => Promise<void> }>();
  let pumping = false;
  let pumpTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Publishes the waiting closed files one at a time, each when the last one has been written
   * and the edits have paused: answers to the client never queue behind them for long.
   */
  function pumpClosed(): void {
    if (pumping || pumpTimer) return;
    const wait = lastEditAt + CLOSED_FILES_AFTER_MS - clock();
    if (wait > 0) {
      pumpTimer = setTimeout(() => {
        pumpTimer = undefined;
        pumpClosed();
      }, wait);
      return;
    }
    const first = closedQueue.entries().next();
    if (first.done) return;
    const [uri, entry] = first.value;
    closedQueue.delete(uri);
    pumping = true;
    const done = () => {
      pumping = false;
      setImmediate(pumpClosed);
    };
    entry.publish().then(done, done);
  }

  // One notification per document in the pipe at a time: while one is being written (the client
  // reads slowly), a newer list for the same document replaces any that waits, so a slow client
  // gets the latest diagnostics rather than every intermediate list.
  const inFlight = new Map<string, PublishDiagnosticsParams | null>();
  function sendDiagnostics(params: PublishDiagnosticsParams): Promise<void> {
    if (inFlight.has(params.uri)) {
      inFlight.set(params.uri, params);
      return Promise.resolve();
    }
    inFlight.set(params.uri, null);
    const done = (): Promise<void> | undefined => {
      const next = inFlight.get(params.uri);
      inFlight.delete(params.uri);
      return next ? sendDiagnostics(next) : undefined;
    };
    return connection.sendDiagnostics(params).then(done, done);
  }

  /** Converted diagnostics by the core's diagnostic object (see {@link lspDiagnosticOf}). */
  const lspDiagnostics = new WeakMap<AnalysisDiagnostic, LspDiagnostic>();
  /**
   * A core diagnostic the analysis handed on unchanged is the same object, and so is its place in
   * the text (the core makes a new one when its span or related places move): converted once.
   */
  const lspDiagnosticOf = (d: AnalysisDiagnostic, convert: () => LspDiagnostic): LspDiagnostic => {
    let out = lspDiagnostics.get(d);
    if (!out) lspDiagnostics.set(d, (out = convert()));
    return out;
  };

  /**
   * The converted list, where each diagnostic that equals the one at its place in the last
   * published list (aligned from the start and from the end) is that object: typing in a large
   * file moves every later warning in the text but not in LSP positions (a line and a character),
   * and the same object keeps its encoded JSON (see encoder.ts). A core diagnostic seen before is
   * converted once (see {@link lspDiagnosticOf}); a new one at an aligned place is compared with
   * the published one without being converted (`matchesLspDiagnostic`).
   */
  function convertReusing(
    before: readonly LspDiagnostic[] | undefined,
    core: readonly AnalysisDiagnostic[],
    convert: (d: AnalysisDiagnostic) => LspDiagnostic,
    matches: (old: LspDiagnostic, d: AnalysisDiagnostic) => boolean,
  ): LspDiagnostic[] {
    const n = core.length;
    const m = before?.length ?? 0;
    const out: LspDiagnostic[] = new Array(n);
    const take = (i: number, old: LspDiagnostic): boolean => {
      const d = core[i]!;
      const known = lspDiagnostics.get(d);
      if (known === old) {
        out[i] = old;
        return true;
      }
      if (known ? !sameLspDiagnostic(known, old) : !matches(old, d)) return false;
      out[i] = old;
      lspDiagnostics.set(d, old);
      return true;
    };
    let head = 0;
    while (head < n && head < m && take(head, before![head]!)) head++;
    let tail = 0;
    while (tail < n - head && tail < m - head && take(n - 1 - tail, before![m - 1 - tail]!)) tail++;
    for (let i = head; i < n - tail; i++) {
      const d = core[i]!;
      out[i] = lspDiagnosticOf(d, () => convert(d));
    }
    return out;
  }

  /** The language id last announced per document (see `qubes/documentSyntax`). */
  const announcedSyntax = new Map<string, string>();

  function validateProject(project: PolicyProject, snapshot: PolicySnapshot = project.snapshot(), deferClosed = true): void {
    const versions = project.snapshotVersions;
    const supportsRelated = clientCaps.textDocument?.publishDiagnostics?.relatedInformation === true;
    const next = new Map<string, { sig: readonly AnalysisDiagnostic[]; build: () => LspDiagnostic[] }>();
    for (const [virtual, list] of snapshot.diagnostics) {
      const disk = project.toDisk(virtual);
      if (disk === null) continue;
      const uri = uriOf(disk);
      next.set(uri, {
        sig: list,
        build: () => {
          const mapper = mapperForPath(project, snapshot, disk);
          if (!mapper) return [];
          const related = supportsRelated
            ? (path: string) => {
                const d = project.toDisk(path);
                const m = d === null ? undefined : mapperForPath(project, snapshot, d);
                return d !== null && m ? { uri: uriOf(d), mapper: m } : undefined;
              }
            : undefined;
          return convertReusing(
            published.get(uri),
            list,
            (d) => toLspDiagnostic(mapper, d, related),
            (old, d) => matchesLspDiagnostic(old, mapper, d, related),
          );
        },
      });
    }
    // Problems of the whole policy go on every open document of it.
    if (snapshot.policyDiagnostics.length) {
      for (const doc of policyDocuments()) {
        if (projectFor(doc.uri) !== project) continue;
        const prev = next.get(doc.uri);
        const extra = snapshot.policyDiagnostics.map((d) => ({ ...d, span: { start: 0, end: 0 } }));
        next.set(doc.uri, {
          sig: [...(prev?.sig ?? []), ...extra],
          build: () => [...(prev ? prev.build() : []), ...extra.map((d) => toLspDiagnostic(doc, d))],
        });
      }
    }
    // Open documents read in another grammar than their language id says get a notification once.
    for (const doc of policyDocuments()) {
      if (projectFor(doc.uri) !== project) continue;
      const disk = pathOfUri(doc.uri);
      const syntax = snapshot.syntaxOf(project.toVirtual(disk));
      const languageId = syntax === "service" ? "qrexecpolicy-service" : "qrexecpolicy";
      if (doc.languageId === languageId || announcedSyntax.get(doc.uri) === languageId) continue;
      announcedSyntax.set(doc.uri, languageId);
      void connection.sendNotification(DocumentSyntaxNotification.method, { uri: doc.uri, syntax, languageId } satisfies DocumentSyntaxParams);
    }
    // Files of this project that lost their diagnostics are cleared.
    for (const uri of publishedSig.keys()) {
      if (!next.has(uri) && projectForPath(pathOfUri(uri)) === project) next.set(uri, { sig: [], build: () => [] });
    }
    for (const doc of policyDocuments()) {
      if (!next.has(doc.uri) && !publishedSig.has(doc.uri) && projectFor(doc.uri) === project) next.set(doc.uri, { sig: [], build: () => [] });
    }
    // Closed files are published through the queue (see pumpClosed); what this run finds replaces what waits.
    for (const [uri, e] of closedQueue) if (e.project === project) closedQueue.delete(uri);
    for (const [uri, { sig, build }] of next) {
      const prev = publishedSig.get(uri);
      // The version of the open document's text these diagnostics belong to.
      const open = documents.get(uri);
      const version = open ? versions.get(pathOfUri(uri)) : undefined;
      // A document opened while this analysis ran was not read by it: the next run (already due) publishes it, with its version.
      if (open && version === undefined && project.busy) continue;
      // An open document gets its diagnostics again for every new version, so the client knows they are current.
      const newVersion = version !== undefined && publishedVersion.get(uri) !== version;
      if (prev !== undefined && sameDiagnostics(prev, sig) && published.has(uri) === (sig.length > 0) && !newVersion) continue;
      if (prev === undefined && sig.length === 0 && !open) continue;
      const publish = (): Promise<void> => {
        const list = build();
        if (list.length === 0) {
          published.delete(uri);
          publishedSig.set(uri, []);
        } else {
          published.set(uri, list);
          publishedSig.set(uri, sig);
        }
        if (version !== undefined) publishedVersion.set(uri, version);
        else publishedVersion.delete(uri);
        return sendDiagnostics({ uri, ...(version !== undefined ? { version } : {}), diagnostics: list });
      };
      if (open || !deferClosed) void publish();
      else closedQueue.set(uri, { project, publish });
    }
    pumpClosed();
  }

  // ---------------------------------------------------------------------------
  // Scheduling: the analysis runs in slices between messages, off the request path.
  // Completion and hover answer from the last finished snapshot at once; requests
  // that need the current analysis wait for it (and can be cancelled meanwhile).

  /** How long one slice of analysis may keep the event loop (ms). */
  const SLICE_MS = 8;
  /** How long one slice may keep the event loop while a message is being written (see {@link StartOptions.outputBusy}). */
  const BUSY_SLICE_MS = 1;
  const clock = () => performance.now();
  let running = false;
  const waiters = new Map<PolicyProject, Array<() => void>>();
  /** The snapshot completion uses, per project (one whose vocabulary is built), and when it was last renewed. */
  const completionSnapshots = new WeakMap<PolicyProject, PolicySnapshot>();
  const vocabularyAt = new WeakMap<PolicyProject, number>();
  /** While typing goes on, completion's vocabulary is renewed at most this often (ms). */
  const VOCABULARY_MS = 5000;
  /** The longest turn of building a vocabulary (ms). */
  const VOCABULARY_SLICE_MS = 4;
  const vocabularyTimers = new WeakMap<PolicyProject, ReturnType<typeof setTimeout>>();
  function vocabularyLater(project: PolicyProject): void {
    if (vocabularyTimers.has(project)) return;
    const typing = clock() - lastEditAt < CLOSED_FILES_AFTER_MS;
    const stale = clock() - (vocabularyAt.get(project) ?? -Infinity) >= VOCABULARY_MS;
    const wait = !completionSnapshots.has(project) || stale || !typing ? 0 : lastEditAt + CLOSED_FILES_AFTER_MS - clock();
    const run = () => {
      vocabularyTimers.delete(project);
      const snapshot = project.lastSnapshot();
      if (!snapshot || completionSnapshots.get(project) === snapshot) return;
      // Typing resumed meanwhile: wait for the next pause (or the staleness bound).
      if (wait > 0 && clock() - lastEditAt < CLOSED_FILES_AFTER_MS && clock() - (vocabularyAt.get(project) ?? -Infinity) < VOCABULARY_MS) return vocabularyLater(project);
      vocabularyAt.set(project, clock());
      // Built in turns of at most VOCABULARY_SLICE_MS, so a completion or a key arriving meanwhile
      // waits for one short turn, never for the whole pass; no second build starts meanwhile.
      const steps = vocabularySteps(snapshot);
      const slice = () => {
        const start = clock();
        try {
          for (;;) {
            const r = steps.next();
            if (r.done) break;
            if (clock() - start >= VOCABULARY_SLICE_MS) {
              vocabularyTimers.set(project, setImmediate(slice) as unknown as ReturnType<typeof setTimeout>);
              return;
            }
          }
          // No other build of this project ran meanwhile (the timer entry stayed): this is the newest.
          completionSnapshots.set(project, snapshot);
          if (options.completionData) {
            try {
              options.completionData(projectKey(project), completionData(snapshot));
            } catch (e) {
              log(`qubes-policy: completion data failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
            }
          }
        } catch {
          // Completion builds it again (and reports) if it fails.
        }
        vocabularyTimers.delete(project);
        // The policy changed while this one was built: renew (at once when typing has paused).
        if (project.lastSnapshot() !== snapshot) vocabularyLater(project);
      };
      slice();
    };
    vocabularyTimers.set(project, wait > 0 ? setTimeout(run, wait) : (setImmediate(run) as unknown as ReturnType<typeof setTimeout>));
  }

  /** The open policy documents as last announced (`StartOptions.openDocuments`). */
  let announced = "";
  /** An open policy document's project key and syntax (for the front). */
  function documentInfo(uri: string): { root: string; syntax: SyntaxKind } {
    const project = projectFor(uri);
    return { root: projectKey(project), syntax: project.syntaxOf(pathOfUri(uri)) };
  }
  function openDocumentInfo(): Array<{ uri: string; root: string; syntax: SyntaxKind }> {
    return documents
      .all()
      .filter((td) => !featureFor(td.uri))
      .map((td) => ({ uri: td.uri, ...documentInfo(td.uri) }));
  }
  function announceDocuments(to: NonNullable<StartOptions["openDocuments"]>): void {
    const docs = openDocumentInfo();
    const key = JSON.stringify(docs);
    if (key === announced) return;
    announced = key;
    to(docs);
  }

  /** Publishes a finished snapshot and wakes the requests that waited for it. */
  function finished(project: PolicyProject, snapshot: PolicySnapshot, deferClosed = true): void {
    try {
      validateProject(project, snapshot, deferClosed);
    } catch (e) {
      log(`qubes-policy: validate failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
    // Completion's vocabulary (services, arguments and names seen in the policy) costs a pass over
    // every line: it is built in a turn of its own when the edits pause (at most every few seconds
    // while typing goes on), and completion uses the newest snapshot that has one.
    vocabularyLater(project);
    if (options.openDocuments) announceDocuments(options.openDocuments);
    if (!project.busy) {
      const list = waiters.get(project);
      waiters.delete(project);
      for (const w of list ?? []) w();
    }
  }

  /** Messages read but perhaps not dispatched yet (the connection dispatches one per turn of the event loop). */
  let incoming = 0;

  /** Analyses finished in a slice, published in the next turn (see {@link runSlice}). */
  const finishedRuns: Array<{ project: PolicyProject; snapshot: PolicySnapshot }> = [];

  /** Runs one slice of every busy project; goes on in the next turn of the event loop while work remains. */
  function runSlice(): void {
    traceEvent("slice");
    try {
      sliceTurn();
    } finally {
      traceEvent("sliced");
    }
  }

  /** The work of one turn of {@link runSlice}. */
  function sliceTurn(): void {
    timer = undefined;
    // INVARIANT: messages before analysis. A turn with a message waiting is left to the connection.
    if (incoming > 0) {
      incoming--;
      setImmediate(runSlice);
      return;
    }
    // A finished analysis is published in a turn of its own (converting and writing thousands of
    // diagnostics is a task of its own size), so a request that arrived meanwhile goes first. When a
    // newer analysis finished meanwhile (a request that needed it now), that one is published.
    if (finishedRuns.length) {
      traceEvent("publish");
      for (const { project, snapshot } of finishedRuns.splice(0)) finished(project, project.lastSnapshot() ?? snapshot);
      traceEvent("published");
      setImmediate(runSlice);
      return;
    }
    const start = clock();
    let more = false;
    for (const p of projects.values()) {
      if (!p.busy) continue;
      const left = (options.outputBusy?.() ? BUSY_SLICE_MS : SLICE_MS) - (clock() - start);
      if (left <= 0) {
        more = true;
        break;
      }
      let snap: PolicySnapshot | undefined;
      try {
        snap = p.step(left, clock);
      } catch (e) {
        // The analysis never throws; if it did, drop this run rather than spin.
        log(`qubes-policy: analysis failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        p.cancel();
        p.snapshot();
      }
      if (snap) finishedRuns.push({ project: p, snapshot: snap });
      if (p.busy) more = true;
    }
    if (more || finishedRuns.length) setImmediate(runSlice);
    else {
      running = false;
      // Other document kinds (stack files) validate once the policies they refer to are current.
      for (const f of features) {
        try {
          f.validate();
        } catch (e) {
          log(`qubes-policy: validate failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
      }
    }
  }

  function kick(): void {
    if (running) return;
    running = true;
    if (timer) clearTimeout(timer);
    timer = undefined;
    setImmediate(runSlice);
  }

  /**
   * After an edit: analyse again after the debounce. A run that has started goes on to the end
   * (what it finishes is reused, and typing cannot starve it); the next run then takes every
   * edit made meanwhile at once. A run that has not started is dropped.
   */
  function schedule(): void {
    for (const p of projects.values()) if (p.jobUnstarted) p.cancel();
    if (running && timer === undefined) return;
    running = true;
    if (timer) clearTimeout(timer);
    timer = setTimeout(runSlice, debounceMs);
  }

  /** Analyses every project to the end now and publishes (tests, benchmarks, configuration changes). */
  const validateAll = guard("validate", undefined, () => {
    lastEditAt = -Infinity;
    // Everything now, closed files included (nothing waits in the queue afterwards).
    for (const p of projects.values()) finished(p, p.snapshot(), false);
    for (const f of features) f.validate();
  });

  /** The project's current analysis, waited for without blocking other messages; `RequestCancelled` when the client gives up. */
  function analysed(project: PolicyProject, token: CancellationToken | undefined): Promise<PolicySnapshot> {
    if (!project.busy) return Promise.resolve(project.snapshot());
    return new Promise<PolicySnapshot>((resolve, reject) => {
      let list = waiters.get(project);
      if (!list) waiters.set(project, (list = []));
      const sub = token?.onCancellationRequested(() => reject(new ResponseError(LSPErrorCodes.RequestCancelled, "request cancelled")));
      list.push(() => {
        sub?.dispose();
        if (token?.isCancellationRequested) reject(new ResponseError(LSPErrorCodes.RequestCancelled, "request cancelled"));
        else resolve(project.snapshot());
      });
      kick();
    });
  }

  async function loadSettings(fromInit?: unknown): Promise<void> {
    let s: unknown = fromInit;
    if (s === undefined && clientCaps.workspace?.configuration) {
      try {
        s = await connection.workspace.getConfiguration("qubesPolicy");
      } catch {
        s = undefined;
      }
    }
    if (s && typeof s === "object") settings = checkedSettings(s);
  }

  /** The usable part of settings sent by the client; every unusable value is said once, in one line. */
  let settingsProblems = "";
  function checkedSettings(raw: unknown): QubesPolicySettings {
    const { settings: ok, problems } = readSettings(raw);
    const said = problems.join("\n");
    if (said !== settingsProblems) {
      settingsProblems = said;
      for (const p of problems) {
        log(`qubes-policy: ${p}`);
        try {
          void connection.window.showWarningMessage(p);
        } catch {
          // The connection is closing: nobody is left to tell.
        }
      }
    }
    return ok;
  }

  let systemFilePath: string | undefined;
  async function loadSystem(): Promise<void> {
    systemSource = settings.system?.source ?? "none";
    const file = settings.system?.file;
    systemFilePath = file ? (file.startsWith("/") ? normalizePath(file) : normalizePath(`${folders[0] ?? ""}/${file}`)) : undefined;
    systemError = undefined;
    let raw: RawSystemInfo | null = null;
    try {
      const r = await host.loadSystem(settings, folders[0]);
      raw = r.raw;
      systemError = r.error;
    } catch (e) {
      systemError = `cannot load the system model: ${String(e)}`;
    }
    system = null;
    storage = {};
    if (raw) {
      try {
        system = prepareSystemInfo(raw);
        storage = storageOf(raw);
        // As `qkit template check --system` refuses it: said, and the list left unchecked (the qubes still load).
        for (const key of ["kernels", "pools"] as const)
          if ((raw as unknown as Record<string, unknown>)[key] !== undefined && storage[key] === undefined)
            systemError = `invalid system model: \`${key}\` is not a list of names; remove it or make the model again with \`qkit system snapshot\``;
        // The analysis reads every qube's properties: an entry that is not an object is refused with the model
        for (const [name, d] of system.domains) {
          if (!d || typeof d !== "object" || Array.isArray(d)) {
            systemError = `invalid system model: qube \`${name}\` is ${String(JSON.stringify(d) ?? d).slice(0, 60)}, not an object of properties; fix the entry or make the model again with \`qkit system snapshot\``;
            system = null;
            break;
          }
        }
      } catch (e) {
        systemError = `invalid system model: ${String(e)}`;
      }
    }
    if (systemError) log(`qubes-policy: ${systemError}`);
    const status: SystemModelStatusParams = { source: String(systemSource), ...(systemError ? { error: systemError } : {}) };
    try {
      void connection.sendNotification(SystemModelStatusNotification.method, status).catch(() => undefined);
    } catch {
      // The connection is closing: nobody is left to tell.
    }
    for (const p of projects.values()) configureProject(p);
  }

  const reconfigure = guardAsync("configuration", undefined, async (fromPush?: unknown) => {
    await loadSettings(fromPush);
    rebuildProjects();
    await loadSystem();
    kick();
  });

  connection.onInitialize(
    guard("initialize", { capabilities: {} } as InitializeResult, (params: InitializeParams): InitializeResult => {
      clientCaps = params.capabilities ?? {};
      pushes.configure({ clientPulls: clientCaps.textDocument?.diagnostic !== undefined, refreshSupport: clientCaps.workspace?.diagnostics?.refreshSupport === true });
      // Re-triggering completion after `@tag:` uses a VS Code command; other editors would try to run it on the server.
      retriggerCommand = /code/i.test(params.clientInfo?.name ?? "");
      folders = (params.workspaceFolders ?? []).map((f) => pathOfUri(f.uri));
      if (!folders.length && params.rootUri) folders = [pathOfUri(params.rootUri)];
      // Settings for clients that never answer `workspace/configuration` (Neovim before 0.8):
      // `{ qubesPolicy: {...} }`, `{ settings: {...} }`, `{ settings: { qubesPolicy: {...} } }`, or the settings themselves.
      const init = params.initializationOptions as { settings?: QubesPolicySettings & { qubesPolicy?: QubesPolicySettings }; qubesPolicy?: QubesPolicySettings } | undefined;
      const bare = init && typeof init === "object" && SETTING_KEYS.some((k) => k in init) ? (init as QubesPolicySettings) : undefined;
      const initial = init?.qubesPolicy ?? init?.settings?.qubesPolicy ?? init?.settings ?? bare;
      if (initial && typeof initial === "object") settings = checkedSettings(initial);
      return {
        capabilities: {
          textDocumentSync: TextDocumentSyncKind.Incremental,
          ...registered.capabilities(),
          workspace: { workspaceFolders: { supported: true, changeNotifications: true } },
        },
        serverInfo: { name: "qkit-lsp", version: "0.1.0" },
      };
    }),
  );

  connection.onInitialized(
    guardAsync("initialized", undefined, async () => {
      if (clientCaps.workspace?.didChangeConfiguration?.dynamicRegistration) {
        void connection.client.register(DidChangeConfigurationNotification.type, { section: "qubesPolicy" }).catch(() => undefined);
      }
      if (clientCaps.workspace?.didChangeWatchedFiles?.dynamicRegistration) {
        void connection.client
          .register(DidChangeWatchedFilesNotification.type, {
            watchers: [{ globPattern: "**/policy.d/**" }, { globPattern: "**/*.policy" }, { globPattern: "**/*.json" }, { globPattern: "**/*.qubes.{yaml,yml}" }, { globPattern: "**/*.policytest.{yaml,yml}" }],
          })
          .catch(() => undefined);
      }
      if (clientCaps.workspace?.workspaceFolders) onFolders();
      await reconfigure(settings && Object.keys(settings).length ? settings : undefined);
    }),
  );

  connection.onDidChangeConfiguration(
    guard("didChangeConfiguration", undefined, (params) => {
      const pushed = (params.settings as { qubesPolicy?: QubesPolicySettings } | undefined)?.qubesPolicy;
      void reconfigure(clientCaps.workspace?.configuration ? undefined : pushed);
    }),
  );

  connection.onDidChangeWatchedFiles(
    guard("didChangeWatchedFiles", undefined, (params) => {
      const paths = params.changes.map((c) => pathOfUri(c.uri));
      host.fs.invalidate?.(paths);
      policyTests.filesChanged(paths);
      const systemFile = settings.system?.source === "file" ? settings.system.file : undefined;
      if (systemFile && paths.some((p) => p.endsWith(systemFile.replace(/^\.\//, "")))) {
        void loadSystem().then(kick);
        return;
      }
      for (const p of projects.values()) p.invalidate();
      for (const f of features) for (const d of documents.all()) if (f.handles(d.uri)) f.changed(d.uri);
      schedule();
    }),
  );

  /** Follows workspace folder changes (registered once the client says it supports them). */
  const onFolders = () =>
    connection.workspace.onDidChangeWorkspaceFolders(
      guard("didChangeWorkspaceFolders", undefined, (e: { added: Array<{ uri: string }>; removed: Array<{ uri: string }> }) => {
        const removed = new Set(e.removed.map((f) => pathOfUri(f.uri)));
        folders = folders.filter((f) => !removed.has(f)).concat(e.added.map((f) => pathOfUri(f.uri)));
        rebuildProjects();
        schedule();
      }),
    );

  documents.onDidOpen(
    guard("didOpen", undefined, (e) => {
      // The library reports an open as a change of content too: that one is not an edit.
      opening.add(e.document.uri);
      const f = featureFor(e.document.uri);
      if (f) {
        f.changed(e.document.uri);
        schedule();
        return;
      }
      const p = projectFor(e.document.uri);
      p.invalidate();
      schedule();
    }),
  );
  documents.onDidChangeContent(
    guard("didChange", undefined, (e) => {
      if (!opening.delete(e.document.uri)) lastEditAt = clock();
      const f = featureFor(e.document.uri);
      if (f) {
        f.changed(e.document.uri);
        schedule();
        return;
      }
      projectFor(e.document.uri).invalidate();
      schedule();
    }),
  );
  documents.onDidClose(
    guard("didClose", undefined, (e) => {
      const f = featureFor(e.document.uri);
      if (f) {
        f.closed(e.document.uri);
        return;
      }
      announcedSyntax.delete(e.document.uri);
      const disk = pathOfUri(e.document.uri);
      const p = projectFor(e.document.uri);
      p.forget(disk);
      p.invalidate();
      schedule();
    }),
  );

  /** The open document, its project, parse and snapshot. */
  function context(uri: string) {
    const td = documents.get(uri);
    if (!td || featureFor(uri)) return undefined;
    const project = projectFor(uri);
    const disk = pathOfUri(uri);
    const doc = project.document(disk, td.getText(), td.version);
    return { td, project, disk, path: project.toVirtual(disk), doc };
  }

  /**
   * The cursor's line alone, parsed as a document of its own: completion looks at one line only,
   * so typing in a large file never waits for a parse of the whole file.
   */
  function lineContext(uri: string, position: { line: number; character: number }) {
    const td = documents.get(uri);
    if (!td) return undefined;
    const project = projectFor(uri);
    const lineStart = td.offsetAt({ line: position.line, character: 0 });
    const lineEnd = td.offsetAt({ line: position.line + 1, character: 0 });
    const text = td.getText().slice(lineStart, lineEnd);
    const doc = parseDocument(text, { syntax: project.syntaxOf(pathOfUri(uri)) });
    return { td, project, doc, lineStart, offset: td.offsetAt(position) - lineStart };
  }


  // ---------------------------------------------------------------------------
  // Requests: one module per feature (`features/`), registered from a table through one guard.

  function scopeProject(uri: string | undefined): PolicyProject | undefined {
    if (uri) return projectFor(uri);
    const first = projects.values().next();
    return first.done ? undefined : first.value;
  }

  const EMPTY_SYSTEM = (): SystemInfo => prepareSystemInfo({ domains: {} });
  const noSystemNote = () =>
    system ? undefined : systemError ?? "no system model (qubesPolicy.system.source is none): every qube name is unknown, so names fall back to @default";

  function ruleLocation(project: PolicyProject, snapshot: PolicySnapshot, ref: { file: string; line: number | null } | undefined): Location | undefined {
    if (!ref || ref.line === null) return undefined;
    const loaded = [...snapshot.files.entries()].find(([, f]) => f.file === ref.file);
    if (!loaded) return undefined;
    const doc = snapshot.document(loaded[0]);
    const line = doc?.lines[ref.line - 1];
    return line ? locationOf(project, snapshot, loaded[0], line.span) : undefined;
  }

  const ctx: ServerContext = {
    connection,
    documents,
    host,
    get settings() {
      return settings;
    },
    get system() {
      return system;
    },
    get systemSource() {
      return systemSource;
    },
    get systemError() {
      return systemError;
    },
    get systemFilePath() {
      return systemFilePath;
    },
    get clientCaps() {
      return clientCaps;
    },
    get retriggerCommand() {
      return retriggerCommand;
    },
    get folders() {
      return folders;
    },
    log,
    pathOfUri,
    uriOf,
    projectFor,
    projects: () => projects.values(),
    scopeProject,
    workspacePolicyFor,
    featureFor,
    testLenses: (project, snapshot, virtualPath, current) => policyTests.ruleLenses({ root: project.root, snapshot }, virtualPath, current),
    pushes,
    context,
    lineContext,
    analysed,
    completionContext(project) {
      const snapshot = completionSnapshots.get(project) ?? project.lastSnapshot();
      return snapshot ? { snapshot } : {};
    },
    mapperForPath,
    locationOf,
    ruleLocation,
    systemOrEmpty: () => system ?? EMPTY_SYSTEM(),
    noSystemNote,
    slicer(token) {
      let sliceStart = clock();
      return async () => {
        if (clock() - sliceStart <= SLICE_MS) return;
        await new Promise((resolve) => setImmediate(resolve));
        throwIfCancelled(token);
        sliceStart = clock();
      };
    },
  };
  const registered = registerFeatures(ctx, FEATURES);

  documents.listen(connection);
  pushes.follow(documents);

  return {
    documents,
    projectFor,
    validateNow: () => {
      validateAll();
    },
    published,
    get settings() {
      return settings;
    },
    messageArrived: () => {
      if (running) incoming++;
    },
    openDocumentInfo,
    completionDataFor(uri) {
      if (!documents.get(uri) || featureFor(uri)) return undefined;
      const project = projectFor(uri);
      const snapshot = completionSnapshots.get(project) ?? project.lastSnapshot();
      const out: { root: string; syntax: SyntaxKind; data?: CompletionData } = documentInfo(uri);
      if (snapshot) out.data = completionData(snapshot);
      return out;
    },
  };
}
