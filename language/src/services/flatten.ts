/**
 * The editor's incremental view of loading: the daemon's file order and
 * include resolution, applied to documents that are parsed once per text and
 * cached. It yields the rules of every valid line in first-match order and
 * the loader's own diagnostics (bad file names, missing includes, cycles), so
 * that an edit costs one parse instead of a whole reload.
 *
 * INVARIANT: for every policy it supports, the rules and error diagnostics
 * equal those of `loadPolicy(fs, { collectAll: true })` (a differential test
 * checks this on the conformance corpus). It does not support `!compat-4.0`
 * and returns `undefined` for such policies; callers then use `loadPolicy`.
 */
import { Diagnostic, type Span } from "../diagnostics.js";
import { basename, dirname, joinPath, normalizePath, purePosix } from "../loader/memfs.js";
import { RUNTIME_POLICY_DIR, type LoadedFile, type PolicyFileSystem, type PolicyRule, type RuleOrigin } from "../loader/types.js";
import { lineAtOffset, NOT_UTF8_HELP, notUtf8Message } from "../loader/utf8.js";
import { pyCompare, pyRepr } from "../syntax/python.js";
import { claimRule, isLeanDocument } from "../syntax/nodes.js";
import type { NewlineMode, PolicyDocument, RuleNode, SyntaxKind } from "../syntax/tree.js";

const FILENAME_CHARS = /^[0-9a-z_.-]*$/;

/** Python's `PurePath.suffix`. */
function suffix(name: string): string {
  const i = name.lastIndexOf(".");
  return i > 0 && i < name.length - 1 ? name.slice(i) : "";
}

/** Parses a file (the caller caches by path and text). */
export type DocumentParser = (path: string, text: string, syntax: SyntaxKind, newlines: NewlineMode) => PolicyDocument;

/** The outcome of {@link flattenPolicy}. */
export interface FlatPolicy {
  /** The rules of the valid lines, in global first-match order. */
  rules: PolicyRule[];
  /** Every file read, in load order (a file included twice appears twice). */
  files: LoadedFile[];
  /** The loader's diagnostics and every document's line diagnostics, each with its `file`; `ok` when none is an error. */
  diagnostics: Diagnostic[];
  ok: boolean;
  /**
   * `rules` cut into runs of consecutive rules of one file (their concatenation is `rules`).
   * A run of an unchanged document is the same array as in the previous call with the same
   * caches, so that later stages can cache their work per run.
   */
  segments: PolicyRule[][];
  /**
   * Runs made by renumbering the run of the same file found at another place (an edit above it
   * added or removed rules), each with that run: their rules differ from it only by `index`.
   */
  moved?: ReadonlyMap<readonly PolicyRule[], readonly PolicyRule[]>;
}

class Unsupported {}

/** Lines of documents looked at between two steps of {@link flattenPolicySteps}. */
const LINES_PER_STEP = 2000;

/** The parsed rule each rule object was built from (not renumbered copies: see {@link parsedRuleOf}). */
const parsedRules = new WeakMap<PolicyRule, RuleNode>();

/**
 * The parsed rule (of its document's line) a rule object of {@link flattenPolicy} was built from:
 * two rule objects with the same parsed rule, path and file stand for the same line of the same
 * document, perhaps moved by an edit above it (`reparse.ts` shares a moved line's rule).
 * `undefined` for a renumbered copy (see {@link FlatPolicy.moved}), which shares its original's
 * `origin` object instead (rules with the same `origin` object stand for the same line of the same
 * document), and for rules not made here: callers then treat the rule as unknown, which is always
 * correct, only slower.
 */
export function parsedRuleOf(rule: PolicyRule): RuleNode | undefined {
  return parsedRules.get(rule);
}

/** A rule object: an explicit literal (not a spread), so every rule has one object shape, built fast. */
function policyRule(r: RuleNode, service: string | null, argument: string | null, index: number, origin: RuleOrigin, via: RuleOrigin[]): PolicyRule {
  return {
    service,
    argument,
    source: r.source,
    target: r.target,
    action: r.action,
    redirect: r.redirect,
    defaultTarget: r.defaultTarget,
    user: r.user,
    notify: r.notify,
    autostart: r.autostart,
    rawParams: r.rawParams,
    index,
    origin,
    via,
  };
}

/**
 * Rule objects of documents without directives, reused across snapshots when
 * a document's rules keep their place in the global list (fewer allocations
 * per edit). Keyed by the document, then by start index, file and context.
 */
export type RuleCache = WeakMap<PolicyDocument, Map<string, PolicyRule[]>>;

/**
 * Rule objects by the parsed rule they were built from, reused when the rule
 * keeps its place (index, file, line, includes): an edited document whose
 * other lines did not move keeps their rule objects.
 */
export type LineRuleCache = WeakMap<RuleNode, PolicyRule>;

/**
 * The last run of rules built at each place (start index, file, length): when
 * an edited document's run has the same rule objects as before (an edit that
 * changed no rule, such as typing an incomplete line), the previous array is
 * used, so that what later stages cached per run still applies.
 */
export type RunCache = Map<string, PolicyRule[]>;

function sameRules(a: readonly PolicyRule[], b: readonly PolicyRule[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameVia(a: readonly RuleOrigin[], b: readonly RuleOrigin[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.path !== b[i]!.path || a[i]!.file !== b[i]!.file || a[i]!.line !== b[i]!.line) return false;
  return true;
}

/** Whether a document has a directive line, remembered per document (a pass over its lines). */
const directives = new WeakMap<PolicyDocument, boolean>();
function hasDirective(doc: PolicyDocument): boolean {
  let v = directives.get(doc);
  if (v === undefined) directives.set(doc, (v = doc.lines.some((l) => l.kind === "directive")));
  return v;
}

/**
 * Loads a policy the way the daemon's file loader does, from cached parses.
 * Returns `undefined` when the policy uses `!compat-4.0` (not supported here).
 */
export function flattenPolicy(fs: PolicyFileSystem, options: FlattenOptions, parse: DocumentParser): FlatPolicy | undefined {
  const steps = flattenPolicySteps(fs, options, parse);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

/** The options of {@link flattenPolicy}. */
export interface FlattenOptions {
  policyDir: string;
  runtimeDir: string | null;
  ruleCache?: RuleCache;
  lineRules?: LineRuleCache;
  runs?: RunCache;
  /** No {@link parsedRuleOf} for the rules made (a one-shot analysis, which never compares them with an earlier list). */
  untracked?: boolean;
  /** The previous result's runs and rules: with the same runs, its rule list is returned as is. */
  previous?: { segments: ReadonlyArray<readonly PolicyRule[]>; rules: readonly PolicyRule[] };
}

/**
 * {@link flattenPolicy} in steps: it yields after each file whose rules it had to build (not after
 * files it found in the caches) and every {@link LINES_PER_STEP} lines inside long files, so that a
 * server answers requests in between. A run dropped at a step leaves only complete cache entries.
 */
export function* flattenPolicySteps(fs: PolicyFileSystem, options: FlattenOptions, parse: DocumentParser): Generator<void, FlatPolicy | undefined, void> {
  const ruleCache = options.ruleCache;
  const lineRules = options.lineRules;
  const segments: PolicyRule[][] = [];
  /** The number of rules so far (the index of the next rule). */
  let total = 0;
  /** The run of rules not yet cut into a segment. */
  let pending: PolicyRule[] = [];
  const cut = () => {
    if (pending.length) segments.push(reuseRun(pending));
    pending = [];
  };
  /** The previous array of a run with the same rule objects at the same place (see {@link RunCache}). */
  const reuseRun = (run: PolicyRule[]): PolicyRule[] => {
    if (!options.runs) return run;
    const key = `${run[0]!.index}\0${run[0]!.origin.path}\0${run.length}`;
    const before = options.runs.get(key);
    if (before && sameRules(before, run)) return before;
    options.runs.set(key, run);
    return run;
  };
  const policyDir = normalizePath(options.policyDir);
  const files: LoadedFile[] = [];
  const diagnostics: Diagnostic[] = [];
  const stack: string[] = [];
  let policyPath: string | null = null;
  let ok = true;
  /** Whether the current top-level file (or a file it includes) had rules built, not found in the caches. */
  let built = false;
  /** Runs renumbered from a run of the same file at another place (see {@link FlatPolicy.moved}). */
  const moved = new Map<readonly PolicyRule[], readonly PolicyRule[]>();

  const display = (path: string): string => {
    const prefix = policyDir === "/" ? "/" : policyDir + "/";
    return path.startsWith(prefix) ? path.slice(prefix.length) : path;
  };
  const fail = (d?: Diagnostic) => {
    ok = false;
    if (d) diagnostics.push(d);
  };
  const diag = (code: Diagnostic["code"], message: string, file: string, span: Span, line: number, help?: string) => {
    const d = Diagnostic.create(code, message, span, line);
    d.file = file;
    if (help) d.help = help;
    return d;
  };
  // The engine reports this without a file; the diagnostic has none either.
  const failedToLoad = (path: string) =>
    fail(Diagnostic.create("failed-to-load", `failed to load ${path} file: [Errno 2] No such file or directory: ${pyRepr(path)}`, { start: 0, end: 0 }, 1));

  const filterPolicyFiles = (dir: string): string[] | undefined => {
    const names = fs.readDir(dir);
    if (names === undefined) {
      failedToLoad(dir);
      return undefined;
    }
    const kept = names.filter((n) => suffix(n) === ".policy" && !n.startsWith(".") && fs.stat(joinPath(dir, n)) === "file").sort(pyCompare);
    const out: string[] = [];
    for (const n of kept) {
      const path = joinPath(dir, n);
      if (!FILENAME_CHARS.test(n)) {
        fail(diag("invalid-filename", `invalid filename: ${path}`, display(path), { start: 0, end: 0 }, 1));
        continue;
      }
      out.push(path);
    }
    return out;
  };

  const canonical = (p: string) => (fs.realPath ? fs.realPath(p) : normalizePath(p));

  /** Lines looked at since the last step (a long file is cut into steps). */
  let work = 0;
  function* loadFile(
    path: string,
    text: string,
    syntax: SyntaxKind,
    sa: { service: string | null; argument: string | null } | null,
    via: RuleOrigin[],
    includedFrom: { path: string; line: number; span: Span } | null,
  ): Generator<void, void, void> {
    const canon = canonical(path);
    if (stack.includes(canon)) {
      const chain = [...stack.slice(stack.indexOf(canon)), canon].map(display);
      const at = includedFrom!;
      fail(diag("include-cycle", `include cycle: ${chain.join(" -> ")} (the engine recurses until it crashes, so every call is denied)`, display(at.path), at.span, at.line));
      return;
    }
    const file = display(path);
    files.push({ path, file, syntax, text, newlines: "universal" });
    // Bytes that are not UTF-8: the engine's read fails before it parses a line of the file.
    const bad = fs.notUtf8?.(path);
    if (bad) {
      fail(diag("not-utf8", notUtf8Message(file, bad), file, { start: bad.textOffset, end: bad.textOffset + 1 }, lineAtOffset(text, bad.textOffset), NOT_UTF8_HELP));
      return;
    }
    const doc = parse(path, text, syntax, "universal");
    const lean = isLeanDocument(doc);
    for (const d of doc.diagnostics) {
      if (d.severity === "error") ok = false;
      diagnostics.push({ ...d, file });
    }
    stack.push(canon);
    try {
      const inner = includedFrom ? [...via, { file: display(includedFrom.path), path: includedFrom.path, line: includedFrom.line }] : via;
      const cacheable = ruleCache !== undefined && !hasDirective(doc);
      const cacheKey = cacheable ? `${total}\0${file}\0${path}\0${sa ? `${sa.service}\0${sa.argument}` : ""}\0${JSON.stringify(inner)}` : "";
      if (cacheable) {
        const known = ruleCache!.get(doc);
        const hit = known?.get(cacheKey);
        if (hit) {
          cut();
          if (hit.length) segments.push(hit);
          total += hit.length;
          return;
        }
        // The same file, included the same way, at another place in the list (an edit above it added
        // or removed a rule): its rules renumbered, every other field as the loop below builds it.
        const rest = cacheKey.slice(cacheKey.indexOf("\0"));
        for (const [key, run] of known ?? []) {
          if (!run.length || key.slice(key.indexOf("\0")) !== rest) continue;
          const delta = total - run[0]!.index;
          // A copy shares its original's `origin` object: the same line of the same document (a
          // million WeakMap entries a minute of typing would cost more than the copies).
          const renumbered: PolicyRule[] = new Array(run.length);
          for (let i = 0; i < run.length; i++) {
            const r = run[i]!;
            renumbered[i] = policyRule(r, r.service, r.argument, r.index + delta, r.origin, r.via);
          }
          cut();
          if (known!.size >= 4) known!.clear();
          const out = reuseRun(renumbered);
          known!.set(cacheKey, out);
          segments.push(out);
          moved.set(out, run);
          total += out.length;
          built = true;
          return;
        }
      }
      cut();
      built = true;
      for (const line of doc.lines) {
        if (++work >= LINES_PER_STEP) {
          work = 0;
          yield;
        }
        if (line.kind === "rule") {
          if (!line.rule) continue;
          const r = line.rule;
          const service = sa ? sa.service : r.service;
          const argument = sa ? sa.argument : r.argument;
          const known = lineRules?.get(r);
          if (
            known !== undefined &&
            known.index === total &&
            known.origin.line === line.line &&
            known.origin.path === path &&
            known.origin.file === file &&
            known.service === service &&
            known.argument === argument &&
            sameVia(known.via, inner)
          ) {
            pending.push(known);
            total++;
            continue;
          }
          const origin = { file, path, line: line.line };
          // A lean document's rule is the loaded rule itself the first time it is placed (see `claimRule`).
          const built = (lean ? (claimRule(r, service, argument, total, origin, inner) as PolicyRule | undefined) : undefined) ?? policyRule(r, service, argument, total, origin, inner);
          lineRules?.set(r, built);
          if (!options.untracked) parsedRules.set(built, r);
          pending.push(built);
          total++;
        } else if (line.kind === "directive") {
          if (line.directive === null) continue;
          if (doc.diagnostics.some((d) => d.line === line.line && d.severity === "error")) continue;
          const params = line.params;
          const paramSpan = params.length ? { start: params[0]!.span.start, end: params[params.length - 1]!.span.end } : line.span;
          const at = { path, line: line.line, span: paramSpan };
          if (syntax === "service") {
            const f = open(params[0]!.text, at);
            if (f) yield* loadFile(f.path, f.text, "service", sa, inner, at);
            continue;
          }
          switch (line.directive) {
            case "include": {
              const f = open(params[0]!.text, at);
              if (f) yield* loadFile(f.path, f.text, "policy", null, inner, at);
              break;
            }
            case "include-service": {
              const f = open(params[2]!.text, at);
              if (f) yield* loadFile(f.path, f.text, "service", { service: line.service ?? null, argument: line.argument ?? null }, inner, at);
              break;
            }
            case "include-dir": {
              const dir = resolve(params[0]!.text);
              if (fs.stat(dir) !== "dir") {
                fail(diag("not-a-directory", `not a directory: ${dir}`, display(at.path), at.span, at.line));
                break;
              }
              const paths = filterPolicyFiles(dir);
              if (!paths) break;
              const dirVia = [...inner, { file: display(at.path), path: at.path, line: at.line }];
              for (const p of paths) {
                const t = fs.readFile(p);
                if (t === undefined) failedToLoad(p);
                else yield* loadFile(p, t, "policy", null, dirVia, null);
              }
              break;
            }
            case "compat-4.0":
              throw new Unsupported();
          }
        }
      }
      if (cacheable) {
        let m = ruleCache!.get(doc);
        if (!m) ruleCache!.set(doc, (m = new Map()));
        if (m.size >= 4) m.clear();
        // No directive, so no other file's rules came in between: the run is this document's rules.
        if (pending.length) pending = reuseRun(pending);
        m.set(cacheKey, pending);
        if (pending.length) segments.push(pending);
        pending = [];
      } else cut();
    } finally {
      stack.pop();
    }
  }

  const resolve = (raw: string): string => {
    const joined = joinPath(policyPath ?? policyDir, purePosix(raw));
    return canonical(joined);
  };

  /** The included file's path and text, or `undefined` (reported) when it cannot be read. */
  const open = (raw: string, at: { path: string; line: number; span: Span }): { path: string; text: string } | undefined => {
    const path = resolve(raw);
    if (fs.stat(path) !== "file") {
      fail(diag("not-a-file", `not a file: ${path}`, display(at.path), at.span, at.line, "include paths resolve against the policy directory"));
      return undefined;
    }
    const text = fs.readFile(path);
    if (text === undefined) {
      failedToLoad(path);
      return undefined;
    }
    return { path, text };
  };

  try {
    const dirs = options.runtimeDir === null ? [policyDir] : [normalizePath(options.runtimeDir ?? RUNTIME_POLICY_DIR), policyDir];
    const seen = new Set<string>();
    const finalList: string[] = [];
    for (const dir of dirs) {
      const paths = filterPolicyFiles(dir);
      if (paths === undefined) return { rules: [], files, diagnostics, ok: false, segments: [] };
      for (const p of paths) {
        if (seen.has(basename(p))) continue;
        seen.add(basename(p));
        finalList.push(p);
      }
    }
    finalList.sort((a, b) => pyCompare(basename(a), basename(b)));
    for (const path of finalList) {
      const text = fs.readFile(path);
      if (text === undefined) {
        failedToLoad(path);
        continue;
      }
      policyPath = dirname(path);
      built = false;
      yield* loadFile(path, text, "policy", null, [], null);
      policyPath = null;
      if (built) yield;
    }
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
  cut();
  if (options.runs && options.runs.size > 4 * files.length + 16) {
    // Places that no longer exist (files renamed, rules moved): keep only this run's.
    const live = new Set(segments);
    for (const [k, v] of options.runs) if (!live.has(v)) options.runs.delete(k);
  }
  const before = options.previous;
  if (before && before.segments.length === segments.length && before.segments.every((seg, i) => seg === segments[i])) {
    return { rules: before.rules as PolicyRule[], files, diagnostics, ok, segments: before.segments as PolicyRule[][], moved };
  }
  const rules: PolicyRule[] = ([] as PolicyRule[]).concat(...segments);
  return { rules, files, diagnostics, ok, segments, moved };
}
