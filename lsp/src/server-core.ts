/**
 * The language server: wires an LSP connection to the editor services of
 * `@qubes-kit/language`. Each handler converts the params, calls a service
 * and converts the result; every handler is guarded, so a failure is logged
 * and answered with an empty result instead of taking the server down.
 */
import {
  CodeActionKind,
  ErrorCodes,
  ResponseError,
  CompletionItemKind,
  DidChangeConfigurationNotification,
  DidChangeWatchedFilesNotification,
  FoldingRangeKind,
  LSPErrorCodes,
  InsertTextFormat,
  MarkupKind,
  SemanticTokensBuilder,
  SymbolKind,
  TextDocuments,
  TextDocumentSyncKind,
  type CancellationToken,
  type CodeAction as LspCodeAction,
  type CodeLens,
  type Hover,
  type SemanticTokens,
  type TextEdit,
  type CompletionItem as LspCompletionItem,
  type Connection,
  type Diagnostic as LspDiagnostic,
  type DocumentSymbol as LspDocumentSymbol,
  type InitializeParams,
  type InitializeResult,
  type Location,
  type WorkspaceEdit,
} from "vscode-languageserver";
import { TextDocument } from "vscode-languageserver-textdocument";
import { URI } from "vscode-uri";
import {
  makeRequest,
  codeActions,
  codeLenses,
  complete,
  decisionTable,
  definition,
  documentSymbols,
  evaluateRequest,
  explainRequest,
  foldingRanges,
  formatDocument,
  hover,
  parseDocument,
  prepareSystemInfo,
  references,
  SEMANTIC_TOKEN_MODIFIERS,
  SEMANTIC_TOKEN_TYPES,
  semanticTokens,
  STANDARD_SERVICES,
  summarizeSystem,
  symbolAt,
  describeRule,
  vocabulary,
  type CompletionKind,
  type AnalysisDiagnostic,
  type DocumentSymbol,
  type PolicyDocument,
  type PolicyRequest,
  type PolicySnapshot,
  type RawSystemInfo,
  type SystemInfo,
} from "@qubes-kit/language";
import { COMPLETION_KIND, mapperFor, toLspDiagnostic, toRange, toSpan, type PositionMapper } from "./convert.js";
import type { ServerHost } from "./host.js";
import { findPolicyDirIn, guessPolicyRoot, normalizePath, PolicyProject, type DocumentOverlay } from "./project.js";
import {
  DecisionTableRequest,
  EvaluateRequest,
  ExplainRequest,
  SIMULATE_RULE_COMMAND,
  SystemModelRequest,
  type DecisionTableParams,
  type DecisionTableResult,
  type EvaluateParams,
  type EvaluateResult,
  type ExplainResult,
  type QubesPolicySettings,
  type SystemModelParams,
  type SystemModelResult,
  type SystemSource,
  DocumentSyntaxNotification,
  type DocumentSyntaxParams,
  TemplatePlanRequest,
  TemplateWhatifRequest,
  type TemplateParams,
  type TemplatePlanResult,
  type TemplateWhatifResult,
} from "./protocol.js";
import type { TemplateRun } from "./template/machine.js";
import { createTemplateFeature, isTemplatePath, type DocumentFeature } from "./template/feature.js";

/** The keys of {@link QubesPolicySettings}: an `initializationOptions` object with one of them is the settings itself. */
const SETTING_KEYS = ["system", "policyDir", "runtimeDir", "legacyDir", "analysis", "codeLens"];

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
}

/** Options of {@link startServer}. */
export interface StartOptions {
  /** Debounce of re-validation after an edit, in milliseconds (default 50). */
  debounceMs?: number;
}

/** Starts serving on a connection. Returns the server state; the caller calls `connection.listen()`. */
export function startServer(connection: Connection, host: ServerHost, options: StartOptions = {}): PolicyServer {
  const documents = new TextDocuments(TextDocument);
  const projects = new Map<string, PolicyProject>();
  const published = new Map<string, LspDiagnostic[]>();
  const uriOfPath = new Map<string, string>();
  let settings: QubesPolicySettings = {};
  let folders: string[] = [];
  let system: SystemInfo | null = null;
  let systemSource: SystemSource = "none";
  let systemError: string | undefined;
  let clientCaps: InitializeParams["capabilities"] = {};
  let retriggerCommand = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const debounceMs = options.debounceMs ?? 50;

  const log = (msg: string) => {
    try {
      connection.console.error(msg);
    } catch {
      // The connection may be gone; nothing else to do.
    }
  };

  /** Runs a handler; on failure logs and answers `fallback`. A request cancelled before it runs answers `RequestCancelled`. */
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

  /** Answers `RequestCancelled` when the client cancelled the request (`$/cancelRequest`). */
  function throwIfCancelled(token: unknown): void {
    if (typeof token === "object" && token !== null && (token as Partial<CancellationToken>).isCancellationRequested === true) {
      throw new ResponseError(LSPErrorCodes.RequestCancelled, "request cancelled");
    }
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
  const policyDocuments = () => documents.all().filter((d) => !isTemplatePath(d.uri));

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

  function makeProject(root: string): PolicyProject {
    const r = normalizePath(root);
    let p = projects.get(r);
    if (!p) {
      p = configureProject(new PolicyProject(r, host.fs, overlay, { runtimeDir: settings.runtimeDir, legacyDir: settings.legacyDir }));
      projects.set(r, p);
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

  const features: DocumentFeature[] = [
    createTemplateFeature({
      connection,
      documents,
      fs: host.fs,
      system: () => system,
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
      if ((x.related?.length ?? 0) !== (y.related?.length ?? 0)) return false;
    }
    return true;
  };

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

  /** The language id last announced per document (see `qubes/documentSyntax`). */
  const announcedSyntax = new Map<string, string>();

  function validateProject(project: PolicyProject, snapshot: PolicySnapshot = project.snapshot()): void {
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
          return list.map((d) => lspDiagnosticOf(d, () => toLspDiagnostic(mapper, d, related)));
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
    for (const [uri, { sig, build }] of next) {
      const prev = publishedSig.get(uri);
      // The version of the open document's text these diagnostics belong to.
      const open = documents.get(uri);
      const version = open ? versions.get(pathOfUri(uri)) : undefined;
      // An open document this analysis did not read (opened while it ran): the next run, already due, publishes it.
      if (open && version === undefined && project.busy) continue;
      // An open document gets its diagnostics again for every new version, so the client knows they are current.
      const newVersion = version !== undefined && publishedVersion.get(uri) !== version;
      if (prev !== undefined && sameDiagnostics(prev, sig) && published.has(uri) === (sig.length > 0) && !newVersion) continue;
      if (prev === undefined && sig.length === 0 && !open) continue;
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
      void connection.sendDiagnostics({ uri, ...(version !== undefined ? { version } : {}), diagnostics: list });
    }
  }

  // ---------------------------------------------------------------------------
  // Scheduling: the analysis runs in slices between messages, off the request path.
  // Completion and hover answer from the last finished snapshot at once; requests
  // that need the current analysis wait for it (and can be cancelled meanwhile).

  /** How long one slice of analysis may keep the event loop (ms). */
  const SLICE_MS = 8;
  const clock = () => performance.now();
  let running = false;
  const waiters = new Map<PolicyProject, Array<() => void>>();
  /** The snapshot completion uses, per project (one whose vocabulary is built), and when it was last renewed. */
  const completionSnapshots = new WeakMap<PolicyProject, PolicySnapshot>();
  const vocabularyAt = new WeakMap<PolicyProject, number>();
  const VOCABULARY_MS = 1000;

  /** Publishes a finished snapshot and wakes the requests that waited for it. */
  function finished(project: PolicyProject, snapshot: PolicySnapshot): void {
    try {
      validateProject(project, snapshot);
    } catch (e) {
      log(`qubes-policy: validate failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
    // Completion's vocabulary (services, arguments and names seen in the policy) costs a pass over
    // every line: it is built in a turn of its own, at most once a second while typing, and
    // completion uses the newest snapshot that has one.
    if (clock() - (vocabularyAt.get(project) ?? -Infinity) >= VOCABULARY_MS || !project.busy) {
      vocabularyAt.set(project, clock());
      setImmediate(() => {
        try {
          if (project.lastSnapshot() !== snapshot) return;
          vocabulary(snapshot);
          completionSnapshots.set(project, snapshot);
        } catch {
          // Completion builds it again (and reports) if it fails.
        }
      });
    }
    if (!project.busy) {
      const list = waiters.get(project);
      waiters.delete(project);
      for (const w of list ?? []) w();
    }
  }

  /** Runs one slice of every busy project; goes on in the next turn of the event loop while work remains. */
  function runSlice(): void {
    timer = undefined;
    const start = clock();
    let more = false;
    for (const p of projects.values()) {
      if (!p.busy) continue;
      const left = SLICE_MS - (clock() - start);
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
      if (snap) finished(p, snap);
      if (p.busy) more = true;
    }
    if (more) setImmediate(runSlice);
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
    for (const p of projects.values()) finished(p, p.snapshot());
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
    if (s && typeof s === "object") settings = s as QubesPolicySettings;
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
    if (raw) {
      try {
        system = prepareSystemInfo(raw);
      } catch (e) {
        systemError = `invalid system model: ${String(e)}`;
      }
    }
    if (systemError) log(`qubes-policy: ${systemError}`);
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
      // Re-triggering completion after `@tag:` uses a VS Code command; other editors would try to run it on the server.
      retriggerCommand = /code/i.test(params.clientInfo?.name ?? "");
      folders = (params.workspaceFolders ?? []).map((f) => pathOfUri(f.uri));
      if (!folders.length && params.rootUri) folders = [pathOfUri(params.rootUri)];
      // Settings for clients that never answer `workspace/configuration` (Neovim before 0.8):
      // `{ qubesPolicy: {...} }`, `{ settings: {...} }`, `{ settings: { qubesPolicy: {...} } }`, or the settings themselves.
      const init = params.initializationOptions as { settings?: QubesPolicySettings & { qubesPolicy?: QubesPolicySettings }; qubesPolicy?: QubesPolicySettings } | undefined;
      const bare = init && typeof init === "object" && SETTING_KEYS.some((k) => k in init) ? (init as QubesPolicySettings) : undefined;
      const initial = init?.qubesPolicy ?? init?.settings?.qubesPolicy ?? init?.settings ?? bare;
      if (initial && typeof initial === "object") settings = initial;
      return {
        capabilities: {
          textDocumentSync: TextDocumentSyncKind.Incremental,
          completionProvider: { triggerCharacters: ["@", ":", "=", "!", "."], resolveProvider: false },
          hoverProvider: true,
          definitionProvider: true,
          referencesProvider: true,
          documentSymbolProvider: true,
          foldingRangeProvider: true,
          documentFormattingProvider: true,
          documentRangeFormattingProvider: true,
          semanticTokensProvider: {
            legend: { tokenTypes: [...SEMANTIC_TOKEN_TYPES], tokenModifiers: [...SEMANTIC_TOKEN_MODIFIERS] },
            full: true,
          },
          codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix, CodeActionKind.RefactorRewrite] },
          codeLensProvider: { resolveProvider: false },
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
            watchers: [{ globPattern: "**/policy.d/**" }, { globPattern: "**/*.policy" }, { globPattern: "**/*.json" }, { globPattern: "**/*.qubes.{yaml,yml}" }],
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

  connection.onCompletion(
    guard("completion", [] as LspCompletionItem[], (params) => {
      const f = featureFor(params.textDocument.uri);
      if (f) return f.completion(params);
      const c = lineContext(params.textDocument.uri, params.position);
      if (!c) return [];
      const snapshot = completionSnapshots.get(c.project) ?? c.project.lastSnapshot();
      const shift = (span: { start: number; end: number }) => ({ start: span.start + c.lineStart, end: span.end + c.lineStart });
      return complete(c.doc, c.offset, snapshot ? { snapshot } : {}).map((item): LspCompletionItem => {
        item = { ...item, span: shift(item.span) };
        const out: LspCompletionItem = {
          label: item.label,
          kind: COMPLETION_KIND[item.kind],
          textEdit: { range: toRange(c.td, item.span), newText: item.insertText ?? item.label },
          insertTextFormat: InsertTextFormat.PlainText,
        };
        if (item.detail) out.detail = item.detail;
        if (item.documentation) out.documentation = { kind: MarkupKind.Markdown, value: item.documentation };
        if (item.filterText) out.filterText = item.filterText;
        if (item.sortText) out.sortText = item.sortText;
        if (item.retrigger && retriggerCommand) out.command = { title: "suggest", command: "editor.action.triggerSuggest" };
        return out;
      });
    }),
  );

  connection.onHover(
    guard("hover", null as Hover | null, (params) => {
      const f = featureFor(params.textDocument.uri);
      if (f) return f.hover(params);
      const c = context(params.textDocument.uri);
      if (!c) return null;
      // The last finished snapshot, at once: hover never waits for an analysis.
      const snapshot = c.project.lastSnapshot();
      const h = hover(c.doc, c.td.offsetAt(params.position), { ...(snapshot ? { snapshot } : {}), path: c.path });
      if (!h) return null;
      // Diagnostics' help text is shown with the hover of their span.
      const offset = c.td.offsetAt(params.position);
      const helps = (snapshot?.diagnostics.get(c.path) ?? []).filter((d) => d.help && d.span.start <= offset && offset <= d.span.end).map((d) => `*${d.code}*: ${d.help}`);
      return { contents: { kind: MarkupKind.Markdown, value: [h.markdown, ...helps].join("\n\n") }, range: toRange(c.td, h.span) };
    }),
  );

  connection.onDefinition(
    guardAsync("definition", [] as Location[], async (params, token): Promise<Location[]> => {
      const f = featureFor(params.textDocument.uri);
      if (f) return f.definition(params);
      if (!documents.get(params.textDocument.uri)) return [];
      const snapshot = await analysed(projectFor(params.textDocument.uri), token);
      const c = context(params.textDocument.uri);
      if (!c) return [];
      const offset = c.td.offsetAt(params.position);
      const found = definition(c.doc, offset, { snapshot, path: c.path })
        .map((l) => locationOf(c.project, snapshot, l.path, l.span))
        .filter((l): l is Location => l !== undefined);
      if (found.length) return found;
      // A qube name goes to its entry in the system model snapshot file, when that is the source.
      const at = symbolAt(c.doc, offset, { snapshot, path: c.path });
      if (at?.ref.kind !== "qube" || settings.system?.source !== "file" || !systemFilePath) return [];
      const text = host.fs.readFile(systemFilePath);
      const key = text?.indexOf(JSON.stringify(at.ref.name) + ":") ?? -1;
      const i = key >= 0 ? key : (text?.indexOf(JSON.stringify(at.ref.name) + " :") ?? -1);
      if (!text || i < 0) return [];
      const m = mapperFor(text);
      return [{ uri: URI.file(systemFilePath).toString(), range: toRange(m, { start: i, end: i + JSON.stringify(at.ref.name).length }) }];
    }),
  );

  connection.onReferences(
    guardAsync("references", [] as Location[], async (params, token): Promise<Location[]> => {
      const f = featureFor(params.textDocument.uri);
      if (f) return f.references(params);
      if (!documents.get(params.textDocument.uri)) return [];
      const snapshot = await analysed(projectFor(params.textDocument.uri), token);
      const c = context(params.textDocument.uri);
      if (!c) return [];
      const offset = c.td.offsetAt(params.position);
      return references(c.doc, offset, { snapshot, path: c.path })
        .map((l) => (l.path === c.path ? { uri: c.td.uri, range: toRange(c.td, l.span) } : locationOf(c.project, snapshot, l.path, l.span)))
        .filter((l): l is Location => l !== undefined);
    }),
  );

  connection.onDocumentSymbol(
    guard("documentSymbol", [] as LspDocumentSymbol[], (params) => {
      const c = context(params.textDocument.uri);
      if (!c) return [];
      const conv = (s: DocumentSymbol): LspDocumentSymbol => ({
        name: s.name,
        detail: s.detail,
        kind: s.kind === "rule" ? SymbolKind.Function : s.kind === "directive" ? SymbolKind.Module : SymbolKind.Namespace,
        range: toRange(c.td, s.span),
        selectionRange: toRange(c.td, s.selectionSpan),
        ...(s.children ? { children: s.children.map(conv) } : {}),
      });
      return documentSymbols(c.doc).map(conv);
    }),
  );

  connection.onFoldingRanges(
    guard("foldingRanges", [], (params) => {
      const c = context(params.textDocument.uri);
      if (!c) return [];
      return foldingRanges(c.doc).map((f) => ({
        startLine: c.td.positionAt(f.span.start).line,
        endLine: c.td.positionAt(f.span.end).line,
        kind: f.kind === "comment" ? FoldingRangeKind.Comment : FoldingRangeKind.Region,
      }));
    }),
  );

  connection.onDocumentFormatting(
    guard("formatting", [] as TextEdit[], (params) => {
      const f = featureFor(params.textDocument.uri);
      if (f) return f.format(params.textDocument.uri);
      const c = context(params.textDocument.uri);
      if (!c) return [];
      return formatDocument(c.doc).map((e) => ({ range: toRange(c.td, e.span), newText: e.newText }));
    }),
  );

  connection.onDocumentRangeFormatting(
    guard("rangeFormatting", [] as TextEdit[], (params) => {
      const f = featureFor(params.textDocument.uri);
      if (f) return f.format(params.textDocument.uri, params.range);
      const c = context(params.textDocument.uri);
      if (!c) return [];
      return formatDocument(c.doc, { range: toSpan(c.td, params.range) }).map((e) => ({ range: toRange(c.td, e.span), newText: e.newText }));
    }),
  );

  connection.languages.semanticTokens.on(
    guard("semanticTokens", { data: [] } as SemanticTokens, (params) => {
      const f = featureFor(params.textDocument.uri);
      if (f) return f.semanticTokens(params.textDocument.uri);
      const c = context(params.textDocument.uri);
      if (!c) return { data: [] };
      const builder = new SemanticTokensBuilder();
      for (const t of semanticTokens(c.doc)) {
        const start = c.td.positionAt(t.span.start);
        const end = c.td.positionAt(t.span.end);
        if (end.line !== start.line) continue;
        let mods = 0;
        for (const m of t.modifiers) mods |= 1 << SEMANTIC_TOKEN_MODIFIERS.indexOf(m);
        builder.push(start.line, start.character, end.character - start.character, SEMANTIC_TOKEN_TYPES.indexOf(t.type), mods);
      }
      return builder.build();
    }),
  );

  connection.onCodeAction(
    guardAsync("codeAction", [] as LspCodeAction[], async (params, token): Promise<LspCodeAction[]> => {
      const f = featureFor(params.textDocument.uri);
      if (f) return f.codeActions(params.textDocument.uri, params.range);
      if (!documents.get(params.textDocument.uri)) return [];
      const snapshot = await analysed(projectFor(params.textDocument.uri), token);
      const c = context(params.textDocument.uri);
      if (!c) return [];
      const diags = snapshot.diagnostics.get(c.path) ?? [];
      const span = toSpan(c.td, params.range);
      const canRename = clientCaps.workspace?.workspaceEdit?.resourceOperations?.includes("rename") === true;
      const out: LspCodeAction[] = [];
      for (const a of codeActions(c.doc, c.path, span, diags, { snapshot })) {
        let edit: WorkspaceEdit | undefined;
        if (a.rename) {
          if (!canRename) continue;
          const from = c.project.toDisk(a.rename.from);
          const to = c.project.toDisk(a.rename.to);
          if (from === null || to === null) continue;
          edit = { documentChanges: [{ kind: "rename", oldUri: uriOf(from), newUri: URI.file(to).toString() }] };
        } else if (a.edits) {
          const changes: NonNullable<WorkspaceEdit["changes"]> = {};
          for (const [path, edits] of Object.entries(a.edits)) {
            const disk = c.project.toDisk(path);
            if (disk === null) continue;
            const mapper = path === c.path ? c.td : mapperForPath(c.project, snapshot, disk);
            if (!mapper) continue;
            changes[path === c.path ? c.td.uri : uriOf(disk)] = edits.map((e) => ({ range: toRange(mapper, e.span), newText: e.newText }));
          }
          edit = { changes };
        }
        if (!edit) continue;
        out.push({
          title: a.title,
          kind: a.kind === "quickfix" ? CodeActionKind.QuickFix : CodeActionKind.RefactorRewrite,
          diagnostics: a.diagnostics.map((d) => toLspDiagnostic(c.td, d)),
          edit,
          ...(a.isPreferred ? { isPreferred: true } : {}),
        });
      }
      return out;
    }),
  );

  connection.onCodeLens(
    guardAsync("codeLens", [] as CodeLens[], async (params, token): Promise<CodeLens[]> => {
      if (settings.codeLens === false) return [];
      const f = featureFor(params.textDocument.uri);
      if (f) return f.codeLens(params.textDocument.uri);
      if (!documents.get(params.textDocument.uri)) return [];
      const project = projectFor(params.textDocument.uri);
      // Lenses follow the last snapshot (they only name lines); the first one is waited for.
      const snapshot = project.lastSnapshot() ?? (await analysed(project, token));
      const c = context(params.textDocument.uri);
      if (!c) return [];
      return codeLenses(c.doc, { snapshot, path: c.path }).map((l) => ({
        range: toRange(c.td, { start: l.span.start, end: l.span.start }),
        command: { title: l.title, command: SIMULATE_RULE_COMMAND, arguments: [c.td.uri, l.line] },
      }));
    }),
  );

  // ---------------------------------------------------------------------------
  // Custom requests.

  function scopeProject(uri: string | undefined): PolicyProject | undefined {
    if (uri) return projectFor(uri);
    const first = projects.values().next();
    return first.done ? undefined : first.value;
  }

  /** Refuses a custom request whose parameters are missing or of the wrong type. */
  function requireStrings(params: unknown, keys: string[], optional: string[] = []): void {
    if (typeof params !== "object" || params === null) throw new ResponseError(ErrorCodes.InvalidParams, "parameters must be an object");
    const p = params as Record<string, unknown>;
    for (const k of keys) if (typeof p[k] !== "string" || p[k] === "") throw new ResponseError(ErrorCodes.InvalidParams, `\`${k}\` must be a non-empty string`);
    for (const k of optional) if (p[k] !== undefined && p[k] !== null && typeof p[k] !== "string") throw new ResponseError(ErrorCodes.InvalidParams, `\`${k}\` must be a string`);
  }

  function requestOf(params: EvaluateParams): PolicyRequest {
    requireStrings(params, ["service", "source"], ["argument", "target", "requestedSource", "uri"]);
    const source = String(params.source ?? "");
    const target = params.target ?? "";
    const service = String(params.service ?? "");
    // A `+` in the service splits off the argument, as `qrexec-policy-exec` does.
    const r: PolicyRequest = params.argument === undefined ? makeRequest(service, source, target) : { service, argument: params.argument, source, target };
    if (params.requestedSource) r.requestedSource = params.requestedSource;
    return r;
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

  connection.onRequest(
    EvaluateRequest.method,
    guardAsync("qubes/evaluate", null as EvaluateResult | null, async (params: EvaluateParams, token?: CancellationToken): Promise<EvaluateResult | null> => {
      const request = requestOf(params);
      const project = scopeProject(params?.uri);
      if (!project) return null;
      const snapshot = await analysed(project, token);
      const decision = evaluateRequest(snapshot, request, system ?? EMPTY_SYSTEM());
      const location = ruleLocation(project, snapshot, "rule" in decision ? decision.rule : undefined);
      const note = noSystemNote();
      return { decision, request, systemSource, ...(location ? { location } : {}), ...(note ? { note } : {}) };
    }),
  );

  connection.onRequest(
    ExplainRequest.method,
    guardAsync("qubes/explain", null as ExplainResult | null, async (params: EvaluateParams, token?: CancellationToken): Promise<ExplainResult | null> => {
      const request = requestOf(params);
      const project = scopeProject(params?.uri);
      if (!project) return null;
      const snapshot = await analysed(project, token);
      const explanation = explainRequest(snapshot, request, system ?? EMPTY_SYSTEM());
      const steps = explanation.trace.map((s) => {
        const loc = ruleLocation(project, snapshot, s.rule.origin);
        const ruleText = describeRuleText(snapshot, s.rule.origin.path, s.rule.origin.line);
        return {
          rule: ruleText,
          file: s.rule.origin.file,
          line: s.rule.origin.line,
          matched: s.matched,
          reason: s.reason,
          ...(s.failed ? { failed: s.failed } : {}),
          ...(loc ? { location: loc } : {}),
        };
      });
      const decision = explanation.decision;
      const location = ruleLocation(project, snapshot, "rule" in decision ? decision.rule : undefined);
      const note = noSystemNote();
      return {
        decision,
        request,
        systemSource,
        explanation,
        steps,
        ...(explanation.decidingRule ? { summary: describeRule(explanation.decidingRule) } : {}),
        ...(location ? { location } : {}),
        ...(note ? { note } : {}),
      };
    }),
  );

  function describeRuleText(snapshot: PolicySnapshot, path: string, line: number | null): string {
    if (line === null) return "(implicit rule)";
    const doc: PolicyDocument | undefined = snapshot.document(path);
    const l = doc?.lines[line - 1];
    return l ? doc!.text.slice(l.span.start, l.span.end) : "";
  }

  connection.onRequest(
    SystemModelRequest.method,
    guard("qubes/systemModel", null as SystemModelResult | null, (params: SystemModelParams): SystemModelResult => {
      const project = scopeProject(params?.uri);
      const services = new Set(STANDARD_SERVICES.map((s) => s.name));
      if (project) for (const s of project.lastSnapshot()?.services.keys() ?? []) services.add(s);
      return { source: systemSource, ...(systemError ? { error: systemError } : {}), ...summarizeSystem(system), services: [...services].sort() };
    }),
  );

  connection.onRequest(
    DecisionTableRequest.method,
    guardAsync("qubes/decisionTable", null as DecisionTableResult | null, async (params: DecisionTableParams, token?: CancellationToken): Promise<DecisionTableResult | null> => {
      requireStrings(params, ["service"], ["argument", "uri"]);
      const sourcesParam = nameList(params, "sources");
      const targetsParam = nameList(params, "targets");
      const project = scopeProject(params?.uri);
      if (!project) return null;
      const snapshot = await analysed(project, token);
      // Without `argument`, a `+` in the service splits it off, as `qrexec-policy-exec` does (`qubes.StartApp+firefox`).
      const split = makeRequest(String(params.service), "", "");
      const service = params.argument == null ? split.service : String(params.service);
      const argument: string = params.argument ?? split.argument ?? "+";
      const sys = system ?? EMPTY_SYSTEM();
      // The rows and columns (the defaults resolved without deciding anything).
      const sources = decisionTable(snapshot, service, argument, sys, { ...(sourcesParam ? { sources: sourcesParam } : {}), targets: [] }).sources;
      const targets = decisionTable(snapshot, service, argument, sys, { sources: [], ...(targetsParam ? { targets: targetsParam } : {}) }).targets;
      const locations = new Map<string, Location | undefined>();
      const locate = (rule: { file: string; line: number | null }) => {
        const key = `${rule.file}\0${rule.line}`;
        if (!locations.has(key)) locations.set(key, ruleLocation(project, snapshot, rule));
        return locations.get(key);
      };
      // Row by row, yielding between slices: a large table never blocks other messages, and a cancel stops it.
      const cells: DecisionTableResult["cells"] = [];
      let sliceStart = clock();
      for (const source of sources) {
        if (clock() - sliceStart > SLICE_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          throwIfCancelled(token);
          sliceStart = clock();
        }
        const row = decisionTable(snapshot, service, argument, sys, { sources: [source], targets }).cells[0] ?? [];
        cells.push(
          row.map((cell) => {
            const { rule, ...rest } = cell;
            if (!rule) return rest;
            const location = locate(rule);
            return { ...rest, rule: { file: rule.file, line: rule.line, ...(location ? { location } : {}) } };
          }),
        );
      }
      throwIfCancelled(token);
      const note = noSystemNote();
      return { service, argument, sources, targets, systemSource, ...(note ? { note } : {}), cells };
    }),
  );

  /** A list parameter of qube names: absent, or an array of non-empty strings (else `InvalidParams`). */
  function nameList(params: unknown, key: string): string[] | undefined {
    const v = (params as Record<string, unknown>)[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string" && x !== "")) {
      throw new ResponseError(ErrorCodes.InvalidParams, `\`${key}\` must be an array of qube names (non-empty strings)`);
    }
    return v as string[];
  }

  // ---------------------------------------------------------------------------
  // Stack files: plan and what-if against the configured machine (through the SDK, in the host).

  function templateRun(params: unknown): TemplateRun {
    requireStrings(params, ["uri"]);
    const uri = (params as TemplateParams).uri;
    if (!isTemplatePath(uri)) throw new ResponseError(ErrorCodes.InvalidParams, "`uri` must be a stack file (*.qubes.yaml)");
    const file = pathOfUri(uri);
    return {
      settings,
      folder: folders[0],
      file,
      readFile: (p) => {
        const open = documents.get(uriOf(p));
        return open ? open.getText() : host.fs.readFile(p);
      },
      policyDir: workspacePolicyFor(file)?.root,
    };
  }

  const unavailable = (run: TemplateRun, what: string) => ({ file: run.file, connection: "none", error: `${what} is not available in this editor host (it needs the Node.js server)` });

  connection.onRequest(TemplatePlanRequest.method, async (params: TemplateParams): Promise<TemplatePlanResult> => {
    const run = templateRun(params);
    if (!host.template) return unavailable(run, "plan");
    try {
      return await host.template.plan(run);
    } catch (e) {
      log(`qubes-template: plan failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return { file: run.file, connection: "none", error: `cannot plan: ${e instanceof Error ? e.message : String(e)}` };
    }
  });

  connection.onRequest(TemplateWhatifRequest.method, async (params: TemplateParams): Promise<TemplateWhatifResult> => {
    const run = templateRun(params);
    if (!host.template?.whatif) return unavailable(run, "what-if");
    try {
      return await host.template.whatif(run);
    } catch (e) {
      log(`qubes-template: what-if failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return { file: run.file, connection: "none", error: `cannot run what-if: ${e instanceof Error ? e.message : String(e)}` };
    }
  });

  documents.listen(connection);

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
  };
}
