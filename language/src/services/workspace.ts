/**
 * The editor's view of a whole policy: load it as the daemon does, collect
 * every diagnostic by file, recover the rules even when some lines are wrong,
 * and run the analysis rules. Pure: files are read through a {@link PolicyFileSystem}.
 */
import type { Diagnostic } from "../diagnostics.js";
import type { SystemInfo } from "../eval/types.js";
import { loadPolicy } from "../loader/load.js";
import {
  LEGACY_POLICY_DIR,
  POLICY_DIR,
  RUNTIME_POLICY_DIR,
  type CompiledPolicy,
  type LoadedFile,
  type LoadOptions,
  type LoadResult,
  type PolicyFileSystem,
  type PolicyRule,
} from "../loader/types.js";
import { isLeanDocument } from "../syntax/nodes.js";
import { parseDocument } from "../syntax/parse.js";
import { newTokenCache } from "../syntax/rule.js";
import type { NewlineMode, PolicyDocument, SyntaxKind } from "../syntax/tree.js";
import { flattenPolicySteps, type FlatPolicy, type LineRuleCache, type RuleCache, type RunCache } from "./flatten.js";
import { ServiceAnalysisCache } from "./incremental.js";
import { reparseDocumentSteps } from "./reparse.js";
import { runAnalysisSteps, type AnalysisCache, type AnalysisConfig, type AnalysisDiagnostic, type AnalyzedDocument } from "./analysis.js";
import { basename, dirname, normalize } from "./util.js";

/** Options of {@link analyzeWorkspace}. */
export interface WorkspaceOptions {
  /** Main policy directory (default `/etc/qubes/policy.d`). */
  policyDir?: string;
  /** Runtime policy directory (default `/run/qubes/policy.d`; `null` to skip it). */
  runtimeDir?: string | null;
  /** Legacy R4.0 directory (default `/etc/qubes-rpc/policy`). */
  legacyDir?: string;
  /** The system model, or `null`: then the checks of qube, tag and type names are off. */
  system?: SystemInfo | null;
  /** Severity overrides of the analysis rules. */
  analysis?: AnalysisConfig;
  /** Documents open in the editor that should be checked even when no policy file includes them (absolute paths). */
  extraDocuments?: readonly string[];
  /** The previous snapshot: documents whose text did not change are not parsed again. */
  previous?: PolicySnapshot;
  /**
   * One analysis, no edits to follow (`qkit policy check`): the whole-policy analyses run in one
   * linear pass without building the per-edit caches (same diagnostics; a later snapshot given
   * this one as `previous` reuses its parses only).
   */
  oneShot?: boolean;
}

/** An analysed policy: what the editor services work on. Immutable. */
export interface PolicySnapshot {
  readonly fs: PolicyFileSystem;
  readonly policyDir: string;
  readonly runtimeDir: string | null;
  readonly legacyDir: string;
  readonly system: SystemInfo | null;
  /** The strict load result, as the daemon would see the policy (computed on first use). */
  readonly load: LoadResult;
  /** The compiled policy when it loads without errors, else `null` (computed on first use; then nothing can be evaluated). */
  readonly policy: CompiledPolicy | null;
  /** The rules in first-match order; when the policy has errors, the rules of the lines without errors. */
  readonly rules: readonly PolicyRule[];
  /** Every file that took part, by absolute path. */
  readonly files: ReadonlyMap<string, LoadedFile>;
  /** Diagnostics (engine and analysis) by absolute path. */
  readonly diagnostics: ReadonlyMap<string, readonly AnalysisDiagnostic[]>;
  /** Diagnostics that belong to no file (for example a missing policy directory). */
  readonly policyDiagnostics: readonly Diagnostic[];
  /** Services seen in the policy, with the arguments seen for each. */
  readonly services: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * {@link PolicySnapshot.services} in short steps (a few thousand rules or arguments each), for a
   * caller that spreads the work over several turns; the same map as `services`, cached alike.
   */
  servicesSteps?(): Generator<void, ReadonlyMap<string, ReadonlySet<string>>, void>;
  /** The parsed document at a path (a loaded file, or any file parsed on demand); cached. */
  document(path: string): PolicyDocument | undefined;
  /** @internal The parse cache, handed to the next snapshot. */
  readonly parseCache: ReadonlyMap<string, ParsedEntry>;
  /** @internal Per-document analysis findings, handed to the next snapshot. */
  readonly analysisCache: AnalysisCache;
  /** @internal Rule objects reused by the next snapshot. */
  readonly ruleCache: RuleCache;
  /** @internal Rule objects by parsed rule, reused by the next snapshot. */
  readonly lineRuleCache?: LineRuleCache;
  /** @internal The last run of rules of each place of a document (see `flatten.ts`). */
  readonly runCache?: RunCache;
  /** @internal `rules` cut into runs of one file (see `FlatPolicy.segments`), when the fast loader made them. */
  readonly segments?: ReadonlyArray<readonly PolicyRule[]>;
  /** @internal The per-service analyses, handed to the next snapshot (see `incremental.ts`). */
  readonly serviceCache: ServiceAnalysisCache;
  /** The syntax a file is read in (service syntax for legacy and `!include-service` files). */
  syntaxOf(path: string): SyntaxKind;
}

/** @internal A cached parse. */
export interface ParsedEntry {
  text: string;
  syntax: SyntaxKind;
  doc: PolicyDocument;
}

/** Findings sorted (or looked at) per step of the end of {@link analyzeWorkspaceSteps}. */
const SORT_STEP = 8192;

/** Rules (or service arguments) per step of {@link PolicySnapshot.servicesSteps}. */
const SERVICE_STEP = 2048;

/** Splits text into physical lines the way the daemon's file loader does (universal newlines), keeping terminators. */
function splitLinesKeep(text: string): string[] {
  return text.match(/[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$/g) ?? [];
}

/** A file system that blanks the given lines (same length, so offsets stay) and hides the given files. */
function repairedFs(base: PolicyFileSystem, blank: Map<string, Set<number>>, hidden: Set<string>): PolicyFileSystem {
  const fs: PolicyFileSystem = {
    stat: (p) => (hidden.has(normalize(p)) ? undefined : base.stat(p)),
    readDir: (p) => {
      const names = base.readDir(p);
      const dir = normalize(p);
      return names?.filter((n) => !hidden.has(`${dir === "/" ? "" : dir}/${n}`));
    },
    readFile: (p) => {
      const text = base.readFile(p);
      const lines = text === undefined ? undefined : blank.get(normalize(p));
      if (text === undefined || !lines) return text;
      return splitLinesKeep(text)
        .map((l, i) => {
          if (!lines.has(i + 1)) return l;
          const m = /(\r\n|\r|\n)$/.exec(l);
          const body = m ? l.slice(0, -m[0].length) : l;
          return (body.length ? "#" + " ".repeat(body.length - 1) : "") + (m ? m[0] : "");
        })
        .join("");
    },
  };
  if (base.realPath) fs.realPath = (p) => base.realPath!(p);
  return fs;
}

/**
 * Loads and analyses a whole policy. Never throws: a failure of the loader
 * or of an analysis rule becomes a diagnostic. With `previous`, only what
 * changed is parsed and analysed again (documents by text, the whole-policy
 * analyses by service).
 */
export function analyzeWorkspace(fs: PolicyFileSystem, options: WorkspaceOptions = {}): PolicySnapshot {
  const steps = analyzeWorkspaceSteps(fs, options);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

/**
 * {@link analyzeWorkspace} as a sequence of steps: the generator yields
 * between units of work (a document parsed or checked, a service analysed),
 * so that a server can run it in slices between requests, and drop it
 * (cancellation) when a newer edit arrives. Work finished before a drop is
 * kept in the caches of `previous` and is not repeated by the next run.
 * The files are read once, at the first step.
 */
export function* analyzeWorkspaceSteps(fs: PolicyFileSystem, options: WorkspaceOptions = {}): Generator<void, PolicySnapshot, void> {
  const policyDir = normalize(options.policyDir ?? POLICY_DIR);
  const runtimeDir = options.runtimeDir === null ? null : normalize(options.runtimeDir ?? RUNTIME_POLICY_DIR);
  const legacyDir = normalize(options.legacyDir ?? LEGACY_POLICY_DIR);
  const system = options.system ?? null;
  const loadOptions = { policyDir, runtimeDir, legacyDir, collectAll: true } as const;
  // INVARIANT: one snapshot sees one state of the files, even when the strict load runs later.
  const frozen = memoFileSystem(fs);

  // Parses, cached by path and text across snapshots.
  const parseCache = new Map<string, ParsedEntry>();
  // One analysis: its documents share one token cache (one token object per text in the whole policy).
  const oneShotTokens = options.oneShot ? newTokenCache() : undefined;
  const previousCache = options.previous?.parseCache;
  function* parseSteps(path: string, text: string, syntax: SyntaxKind, newlines: NewlineMode = "universal"): Generator<void, PolicyDocument, void> {
    let hit = parseCache.get(path) ?? previousCache?.get(path);
    // A lean document (a one-shot snapshot's) is reused only as it is, by a one-shot snapshot: an
    // editor's caches compare nodes by identity, and a reparse would mix lean and plain nodes.
    if (hit && isLeanDocument(hit.doc) && (!options.oneShot || hit.text !== text)) hit = undefined;
    if (hit && hit.text === text && hit.syntax === syntax) {
      parseCache.set(path, hit);
      return hit.doc;
    }
    // An edited document: only the lines the edit touched are parsed again.
    const doc = hit && hit.syntax === syntax ? yield* reparseDocumentSteps(hit.doc, text, { syntax, newlines, file: path }) : parseDocument(text, { syntax, newlines, file: path, ...(oneShotTokens ? { lean: true, tokens: oneShotTokens } : {}) });
    parseCache.set(path, { text, syntax, doc });
    parsedFresh++;
    return doc;
  }
  const parse = (path: string, text: string, syntax: SyntaxKind, newlines: NewlineMode = "universal"): PolicyDocument => {
    const steps = parseSteps(path, text, syntax, newlines);
    for (;;) {
      const s = steps.next();
      if (s.done) return s.value;
    }
  };
  let parsedFresh = 0;

  const files = new Map<string, LoadedFile>();
  const fileToPath = new Map<string, string>();
  const addFiles = (list: readonly LoadedFile[]) => {
    for (const f of list) {
      const p = normalize(f.path);
      if (!files.has(p)) files.set(p, f);
      if (!fileToPath.has(f.file)) fileToPath.set(f.file, p);
    }
  };

  const ruleCache: RuleCache = options.previous?.ruleCache ?? new WeakMap();
  const lineRuleCache: LineRuleCache = options.previous?.lineRuleCache ?? new WeakMap();
  const runCache: RunCache = options.previous?.runCache ?? new Map();
  let strict: LoadResult | undefined;
  const strictLoad = (): LoadResult => {
    if (strict) return strict;
    try {
      strict = loadPolicy(frozen, loadOptions);
    } catch (e) {
      const message = `internal error while loading the policy: ${String(e).split("\n")[0]}`;
      strict = {
        ok: false,
        error: { error: "EngineError", message, code: "internal-error" },
        diagnostics: [{ code: "internal-error", severity: "error", message, span: { start: 0, end: 0 }, line: 1 }],
        files: [],
      };
    }
    return strict;
  };

  // Files of the previous snapshot whose text changed are parsed first, one step each, so that the
  // load below (one step) finds them in the cache.
  if (options.previous) {
    for (const [path, f] of options.previous.files) {
      const text = frozen.readFile(path);
      if (text === undefined || text === f.text) continue;
      yield* parseSteps(path, text, f.syntax, "universal");
      yield;
    }
  }

  // The fast path: the daemon's load order over cached parses. `!compat-4.0` policies take the strict loader.
  let flat: FlatPolicy | undefined;
  try {
    const previous = options.previous?.segments ? { segments: options.previous.segments, rules: options.previous.rules } : undefined;
    // One analysis and no edits to follow: nothing is kept for the next snapshot to reuse (a cache
    // entry per rule is work for every garbage collection of a large policy).
    const caches = options.oneShot ? { untracked: true } : { ruleCache, lineRules: lineRuleCache, runs: runCache };
    const steps = flattenPolicySteps(frozen, { policyDir, runtimeDir, ...caches, ...(previous ? { previous } : {}) }, parse);
    for (;;) {
      const s = steps.next();
      if (s.done) {
        flat = s.value;
        break;
      }
      yield;
    }
  } catch {
    flat = undefined;
  }
  if (parsedFresh > 0) yield;
  let rules: readonly PolicyRule[];
  let segments: ReadonlyArray<readonly PolicyRule[]> | undefined;
  let engineDiagnostics: readonly Diagnostic[];
  if (flat) {
    addFiles(flat.files);
    // The same runs as the previous snapshot (an edit that changed no rule) give the same list, so
    // that everything computed per rule list (the per-service findings, the services) is reused.
    segments = flat.segments;
    rules = flat.rules;
    engineDiagnostics = flat.diagnostics;
  } else {
    const load = strictLoad();
    addFiles(load.ok ? load.policy.files : load.files);
    engineDiagnostics = load.diagnostics;
    rules = load.ok ? load.policy.rules : recoverRules(frozen, load, loadOptions, (d) => pathOf(d), addFiles);
  }

  function pathOf(d: Diagnostic): string | undefined {
    if (!d.file) return undefined;
    const known = fileToPath.get(d.file);
    if (known) return known;
    if (d.file.startsWith("/")) return normalize(d.file);
    return `${policyDir}/${d.file}`;
  }

  // Engine diagnostics by file.
  const diagnostics = new Map<string, AnalysisDiagnostic[]>();
  const policyDiagnostics: Diagnostic[] = [];
  const seen = new Set<string>();
  const push = (path: string, d: AnalysisDiagnostic, dedupe = true) => {
    if (dedupe) {
      // A file included twice reports its line errors twice; keep one.
      const key = `${path}\0${d.code}\0${d.span.start}\0${d.span.end}`;
      if (seen.has(key)) return;
      seen.add(key);
    }
    let list = diagnostics.get(path);
    if (!list) diagnostics.set(path, (list = []));
    list.push(d);
  };
  for (const d of engineDiagnostics) {
    const p = pathOf(d);
    if (p) push(p, d);
    else policyDiagnostics.push(d);
  }

  const syntaxOf = (path: string): SyntaxKind => {
    const p = normalize(path);
    const f = files.get(p);
    if (f) return f.syntax;
    return dirname(p) === legacyDir ? "service" : "policy";
  };
  const document = (path: string): PolicyDocument | undefined => {
    const p = normalize(path);
    const f = files.get(p);
    const text = f ? f.text : frozen.readFile(p);
    if (text === undefined) return undefined;
    return parse(p, text, syntaxOf(p), f?.newlines ?? "universal");
  };

  const analyzed: AnalyzedDocument[] = [];
  for (const path of files.keys()) {
    const doc = document(path);
    if (doc) analyzed.push({ path, document: doc });
  }
  for (const extra of options.extraDocuments ?? []) {
    const p = normalize(extra);
    if (files.has(p)) continue;
    const doc = document(p);
    if (!doc) continue;
    analyzed.push({ path: p, document: doc });
    for (const d of doc.diagnostics) push(p, d);
  }

  const listedDirs = runtimeDir ? [policyDir, runtimeDir] : [policyDir];
  const analysisCache: AnalysisCache = options.previous?.analysisCache ?? new WeakMap();
  const serviceCache = options.previous?.serviceCache ?? new ServiceAnalysisCache();
  // A renumbered run has the shapes, per-service positions and services of the run it came from.
  for (const [run, from] of flat?.moved ?? []) {
    const info = serviceCache.segmentInfo.get(from);
    if (info && !serviceCache.segmentInfo.has(run)) serviceCache.segmentInfo.set(run, info);
    const services = serviceCache.segmentServices.get(from);
    if (services && !serviceCache.segmentServices.has(run)) serviceCache.segmentServices.set(run, services);
  }
  const found = options.oneShot
    ? yield* runAnalysisSteps({ rules, documents: analyzed, system, listedDirs }, options.analysis)
    : yield* runAnalysisSteps({ rules, ...(segments ? { segments } : {}), documents: analyzed, system, listedDirs, serviceCache }, options.analysis, analysisCache);
  const previousDiagnostics = options.previous?.diagnostics;
  // A path with no engine diagnostics whose analysis list is the same array as last time has the
  // same (sorted) list as last time: unchanged files cost nothing here.
  const ready = new Set<string>();
  // Findings sorted since the last step: a server answers requests in between.
  let sortedNow = 0;
  for (const [p, list] of found) {
    if (sortedNow >= SORT_STEP) {
      sortedNow = 0;
      yield;
    }
    if (!invalidFilename.has(list)) sortedNow += list.length;
    if (hasInvalidFilename(list)) {
      for (const d of list) {
        // The analysis repeats the engine's invalid-filename error on the first line of the open
        // file, with a rename fix: keep that one.
        if (d.code !== "invalid-filename") continue;
        const own = diagnostics.get(p);
        if (own) {
          const i = own.findIndex((x) => x.code === "invalid-filename");
          if (i >= 0) own.splice(i, 1);
        }
        const dup = policyDiagnostics.findIndex((x) => x.code === "invalid-filename" && x.message.endsWith(p));
        if (dup >= 0) policyDiagnostics.splice(dup, 1);
      }
    }
    const own = diagnostics.get(p);
    if (!own?.length) {
      // Only the analysis's findings: the list sorted by place, made once per analysis list.
      let sorted = sortedLists.get(list);
      if (!sorted) {
        const before = previousDiagnostics?.get(p);
        sorted = sortByPlace(list, before);
        sortedNow += list.length;
        if (before && before.length === sorted.length && sameElements(before, sorted)) sorted = before as AnalysisDiagnostic[];
        sortedLists.set(list, sorted);
      }
      diagnostics.set(p, sorted);
      ready.add(p);
      continue;
    }
    // INVARIANT: every analysis rule reports a place at most once.
    for (const d of list) push(p, d, false);
  }
  for (const [path, list] of diagnostics) {
    if (ready.has(path)) continue;
    // Most lists arrive in order already (the analysis reports line by line): check before sorting.
    let sorted = true;
    for (let i = 1; i < list.length && sorted; i++) {
      const a = list[i - 1]!.span;
      const b = list[i]!.span;
      sorted = a.start < b.start || (a.start === b.start && a.end <= b.end);
    }
    if (!sorted) list.sort((a, b) => a.span.start - b.span.start || a.span.end - b.span.end);
    // An unchanged list is the previous snapshot's array, so consumers can skip it by identity.
    const before = previousDiagnostics?.get(path);
    if (before && before.length === list.length && sameElements(before, list)) diagnostics.set(path, before as AnalysisDiagnostic[]);
  }

  /** Adds the services and arguments of rules; yields every {@link SERVICE_STEP} rules. */
  function* addServices(services: Map<string, Set<string>>, list: readonly PolicyRule[]): Generator<void, void, void> {
    for (let i = 0; i < list.length; i++) {
      if (i % SERVICE_STEP === SERVICE_STEP - 1) yield;
      const r = list[i]!;
      if (r.service === null) continue;
      let set = services.get(r.service);
      if (!set) services.set(r.service, (set = new Set()));
      if (r.argument !== null) set.add(r.argument);
    }
  }
  // The services are made when first asked for (completion asks when typing pauses): a new rule
  // list costs a merge over every run of rules, which typing need not wait for. Snapshots with the
  // same rule list share them (through the service cache, not through each other). A step
  // is at most a few thousand rules or arguments, so a caller can cut the work into short turns.
  function* servicesSteps(): Generator<void, Map<string, Set<string>>, void> {
    let services = serviceCache.servicesByRules.get(rules);
    if (services) return services;
    services = new Map<string, Set<string>>();
    if (segments) {
      // Per run of one file, cached: unchanged files cost a merge of their few services.
      for (const seg of segments) {
        let own = serviceCache.segmentServices.get(seg);
        if (!own) {
          own = new Map();
          yield* addServices(own, seg);
          // Made meanwhile by another caller (a synchronous read of `services`): the first one stays.
          own = serviceCache.segmentServices.get(seg) ?? own;
          serviceCache.segmentServices.set(seg, own);
        }
        let n = 0;
        for (const [service, args] of own) {
          let set = services.get(service);
          if (!set) services.set(service, (set = new Set()));
          for (const a of args) set.add(a);
          n += 1 + args.size;
          if (n >= SERVICE_STEP) {
            n = 0;
            yield;
          }
        }
      }
    } else yield* addServices(services, rules);
    const made = serviceCache.servicesByRules.get(rules);
    if (made) return made;
    serviceCache.servicesByRules.set(rules, services);
    return services;
  }
  const servicesOf = (): Map<string, Set<string>> => {
    const steps = servicesSteps();
    for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
  };

  return {
    fs: frozen,
    policyDir,
    runtimeDir,
    legacyDir,
    system,
    get load() {
      return strictLoad();
    },
    get policy() {
      const l = strictLoad();
      return l.ok ? l.policy : null;
    },
    rules,
    files,
    diagnostics,
    policyDiagnostics,
    get services() {
      return servicesOf();
    },
    servicesSteps,
    document,
    syntaxOf,
    parseCache,
    analysisCache,
    ruleCache,
    lineRuleCache,
    runCache,
    ...(segments ? { segments } : {}),
    serviceCache,
  };
}


/** The sorted diagnostics list made from an analysis list alone (no engine diagnostics on the path), by that list. */
const sortedLists = new WeakMap<readonly AnalysisDiagnostic[], AnalysisDiagnostic[]>();
/**
 * How a sorted list was made from its analysis list: the places of that list's findings, in its
 * order, and the order that sorts them (`null`: the list was in order already, the common case).
 */
const sortOrders = new WeakMap<readonly AnalysisDiagnostic[], { spans: Int32Array; order: Int32Array | null }>();

/**
 * The findings sorted by place (start, then end; a stable sort). When `before` (the path's previous
 * list) was made from findings at the same places in the same order (a file whose warnings only
 * changed their related places), its order is applied again without sorting. A list already in
 * order is copied without making an order.
 */
function sortByPlace(list: readonly AnalysisDiagnostic[], before: readonly AnalysisDiagnostic[] | undefined): AnalysisDiagnostic[] {
  const n = list.length;
  const known = before ? sortOrders.get(before) : undefined;
  let spans: Int32Array | undefined;
  let order: Int32Array | null = null;
  if (known && known.spans.length === 2 * n) {
    let same = true;
    for (let i = 0; i < n && same; i++) {
      const sp = list[i]!.span;
      same = sp.start === known.spans[2 * i] && sp.end === known.spans[2 * i + 1];
    }
    if (same) ({ spans, order } = known);
  }
  if (!spans) {
    const sp = (spans = new Int32Array(2 * n));
    let sorted = true;
    for (let i = 0; i < n; i++) {
      const x = list[i]!.span;
      sp[2 * i] = x.start;
      sp[2 * i + 1] = x.end;
      if (i > 0 && !(sp[2 * i - 2]! < x.start || (sp[2 * i - 2] === x.start && sp[2 * i - 1]! <= x.end))) sorted = false;
    }
    if (!sorted) {
      order = new Int32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
      order.sort((a, b) => sp[2 * a]! - sp[2 * b]! || sp[2 * a + 1]! - sp[2 * b + 1]! || a - b);
    }
  }
  let out: AnalysisDiagnostic[];
  if (order) {
    out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = list[order[i]!]! as AnalysisDiagnostic;
  } else out = list.slice() as AnalysisDiagnostic[];
  sortOrders.set(out, { spans, order });
  return out;
}
/** Whether an analysis list holds an `invalid-filename` finding, by list. */
const invalidFilename = new WeakMap<readonly AnalysisDiagnostic[], boolean>();
function hasInvalidFilename(list: readonly AnalysisDiagnostic[]): boolean {
  let v = invalidFilename.get(list);
  if (v === undefined) invalidFilename.set(list, (v = list.some((d) => d.code === "invalid-filename")));
  return v;
}
function sameElements<T>(a: readonly T[], b: readonly T[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A file system that remembers every answer, so that later reads see the same state. */
function memoFileSystem(fs: PolicyFileSystem): PolicyFileSystem {
  const stats = new Map<string, ReturnType<PolicyFileSystem["stat"]>>();
  const dirs = new Map<string, string[] | undefined>();
  const texts = new Map<string, string | undefined>();
  const out: PolicyFileSystem = {
    stat(p) {
      if (!stats.has(p)) stats.set(p, fs.stat(p));
      return stats.get(p);
    },
    readDir(p) {
      if (!dirs.has(p)) dirs.set(p, fs.readDir(p));
      const d = dirs.get(p);
      return d ? [...d] : undefined;
    },
    readFile(p) {
      if (!texts.has(p)) texts.set(p, fs.readFile(p));
      return texts.get(p);
    },
  };
  if (fs.realPath) out.realPath = (p) => fs.realPath!(p);
  if (fs.notUtf8) out.notUtf8 = (p) => fs.notUtf8!(p);
  return out;
}

/** The rules of the valid lines of a policy that does not load: blank the bad lines and load again. */
function recoverRules(
  fs: PolicyFileSystem,
  load: LoadResult,
  loadOptions: LoadOptions,
  pathOf: (d: Diagnostic) => string | undefined,
  addFiles: (files: readonly LoadedFile[]) => void,
): readonly PolicyRule[] {
  const blank = new Map<string, Set<number>>();
  const hidden = new Set<string>();
  let diags: Diagnostic[] = load.diagnostics;
  for (let round = 0; round < 4; round++) {
    let added = false;
    for (const d of diags) {
      if (d.severity !== "error") continue;
      const p = pathOf(d);
      if (d.code === "invalid-filename") {
        const m = /invalid filename: (.*)$/.exec(d.message);
        const target = m ? normalize(m[1]!) : p;
        if (target && !hidden.has(target)) {
          hidden.add(target);
          added = true;
        }
        continue;
      }
      if (!p) continue;
      let set = blank.get(p);
      if (!set) blank.set(p, (set = new Set()));
      if (!set.has(d.line)) {
        set.add(d.line);
        added = true;
      }
    }
    if (!added) break;
    try {
      const r = loadPolicy(repairedFs(fs, blank, hidden), loadOptions);
      if (r.ok) {
        addFiles(r.policy.files);
        return r.policy.rules;
      }
      addFiles(r.files);
      diags = r.diagnostics;
    } catch {
      break;
    }
  }
  return [];
}

/** True when a path is a `.policy` file the engine lists from one of the snapshot's directories. */
export function isListedPolicyFile(snapshot: PolicySnapshot, path: string): boolean {
  const p = normalize(path);
  const dir = dirname(p);
  const name = basename(p);
  return (dir === snapshot.policyDir || dir === snapshot.runtimeDir) && name.endsWith(".policy") && !name.startsWith(".");
}
