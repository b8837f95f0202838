/**
 * Policy tests in the editor (`*.policytest.yaml`): diagnostics on every
 * test file of the workspace, open or not (its problems, and each failing
 * call at its entry, with the rules that made the actual decision as related
 * information), and code lenses on the rules of a policy that test files
 * exercise ("decided by 2 tests", "no test decides this rule"). The pure
 * services are in `language/src/audit/editor.ts`; this module finds the test
 * files, runs them and converts to the protocol.
 *
 * Test files run off the request path: when the server's analysis is idle it
 * calls {@link DocumentFeature.validate}, which queues the test files whose
 * inputs changed (their text, the analysed policy they name, their system
 * model); the queue runs after a short debounce (coalescing the runs of a
 * burst of edits, but never waiting more than {@link MAX_WAIT_MS}) in slices
 * of {@link SLICE_MS} between messages, and stops when a policy is analysed
 * again (the next idle turn queues what is stale). Each file's calls are kept
 * for the coverage lenses, so a lens request never runs a test; a lens whose
 * rule line moved in an edit made since its coverage was computed is placed
 * on the rule's new line, or left out (until the client asks again, which it
 * is told to do with `workspace/codeLens/refresh` once coverage is current).
 *
 * Registered from `server-core.ts`'s feature table, like the stack-file
 * feature; the server also asks it for the lenses of policy documents.
 */
import {
  DiagnosticSeverity,
  type CancellationToken,
  type CodeLens,
  type Connection,
  type Diagnostic,
  type DiagnosticRelatedInformation,
  type Location,
  type TextDocuments,
} from "vscode-languageserver";
import type { TextDocument } from "vscode-languageserver-textdocument";
import {
  CoverageCollector,
  coverageLenses,
  isPolicyTestFile,
  parsePolicyTestFile,
  isEntryProblem,
  prepareSystemInfo,
  jsonErrorAt,
  testFileDiagnostics,
  type Explanation,
  type PolicyDocument,
  type PolicySnapshot,
  type PolicyTestFile,
  type RawSystemInfo,
  type RuleLens,
  type Span,
  type SystemInfo,
  type TestFileDiagnostic,
} from "@qubes-kit/language";
import { DIAGNOSTIC_SOURCE, mapperFor, toRange, type PositionMapper } from "../convert.js";
import type { HostFileSystem } from "../host.js";
import { normalizePath } from "../project.js";
import type { DocumentFeature } from "../template/feature.js";
import type { PullableFeature } from "./diagnostics.js";

/** True for a policy test file's URI or path (`*.policytest.yaml`, `*.policytest.yml`). */
export function isPolicyTestPath(uriOrPath: string): boolean {
  const p = uriOrPath.replace(/[?#].*$/, "");
  return isPolicyTestFile(p.slice(p.lastIndexOf("/") + 1));
}

/** A policy directory as the server analyses it (one of its policy projects). */
export interface PolicyAt {
  /** The policy directory on disk. */
  root: string;
  snapshot: PolicySnapshot;
  /** The location of a span of a (virtual) policy path, when the file can be shown. */
  locate(virtual: string, span: Span): Location | undefined;
}

/** What the server shares with the feature. */
export interface PolicyTestContext {
  /** The connection (its pushes are routed: see `pushes.ts`). */
  connection: Connection;
  documents: TextDocuments<TextDocument>;
  fs: HostFileSystem;
  /** The system model the server has loaded (for `system: live`), or `null`. */
  system(): SystemInfo | null;
  /**
   * The analysed policy of a directory on disk (the project for it, made if needed), or
   * `undefined` while its analysis is stale or running (the analysis is then started).
   */
  policyReady(dir: string): PolicyAt | undefined;
  /** Waits for the analysis of a directory's policy (`RequestCancelled` when the client gives up). */
  waitPolicy(dir: string, token: CancellationToken | undefined): Promise<void>;
  /** The workspace folders (where test files are looked for). */
  folders(): readonly string[];
  pathOf(uri: string): string;
  uriOf(path: string): string;
  /** True when the client can be asked to request code lenses again (`workspace/codeLens/refresh`). */
  canRefreshLenses(): boolean;
  log(message: string): void;
}

/** An open policy document as it is now: its parse and its positions. */
export interface CurrentDocument {
  doc: PolicyDocument;
  mapper: PositionMapper;
}

/** The policy test feature: a {@link DocumentFeature} for test files, plus the lenses of policy files. */
export interface PolicyTestFeature extends PullableFeature {
  /** Code lenses "decided by N tests" for the rules of a policy document, or none when no test file uses its policy. */
  ruleLenses(policy: { root: string; snapshot: PolicySnapshot }, virtualPath: string, current: CurrentDocument): CodeLens[];
  /** Files changed on disk (`workspace/didChangeWatchedFiles`): test files are looked for again. */
  filesChanged(paths: readonly string[]): void;
}

/** How deep and how wide the search for test files on disk goes (a workspace may be a home directory). */
const WALK_DEPTH = 6;
const WALK_ENTRIES = 20_000;
/** How long a burst of changes is gathered before the tests run again (ms)... */
const DEBOUNCE_MS = 100;
/** ...but never longer than this after the first change (ms): tests follow continuous typing too. */
const MAX_WAIT_MS = 1000;
/** How long one slice of test runs may keep the event loop (ms). */
const SLICE_MS = 8;

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** A path relative to a directory (`policy.d`, `../x`), or absolute. */
function resolveFrom(dir: string, rel: string): string {
  return normalizePath(rel.startsWith("/") ? rel : `${dir}/${rel}`);
}

/** One test file, read and resolved. */
interface Resolved {
  path: string;
  text: string;
  parsed: PolicyTestFile;
  /** The policy directory it names, resolved, when it exists. */
  policyDir?: string;
  system?: SystemInfo;
  /** What the system model was read from: the model file's text, or the live model. */
  systemKey?: unknown;
  systemFile?: string;
  /** Problems of the file's `policy:`/`system:` beyond its own syntax. */
  problems: TestFileDiagnostic[];
}

/** The outcome of the last run of one test file, with what it ran against. */
interface Result {
  uri: string;
  text: string;
  version: number | undefined;
  /** The policy directory and its analysis, when the file ran against one. */
  root?: string;
  snapshot?: PolicySnapshot;
  systemKey?: unknown;
  systemFile?: string;
  /** True when the named directory did not exist (it may appear). */
  noPolicy: boolean;
  diagnostics: Diagnostic[];
  /** Every call's explanation (for coverage), when the calls ran. */
  calls: Explanation[] | undefined;
}

/** A coverage collector that keeps the explanations, so coverage can be summed over test files later. */
class CallRecorder extends CoverageCollector {
  readonly calls: Explanation[] = [];
  override add(x: Explanation): void {
    this.calls.push(x);
  }
}

/** Creates the feature. */
export function createPolicyTestFeature(ctx: PolicyTestContext): PolicyTestFeature {
  const results = new Map<string, Result>();
  /** What was pushed per URI (a signature, to skip unchanged results). */
  const published = new Map<string, string>();
  /** Coverage lenses per policy directory, with the analysis they were computed on. */
  const lensCache = new Map<string, { snapshot: PolicySnapshot; lenses: RuleLens[] }>();
  /** Parsed system model files, by path (with the text they were parsed from). */
  const systems = new Map<string, { text: string; system?: SystemInfo; error?: string }>();
  /** Test files found on disk (`undefined`: look again). */
  let found: string[] | undefined;
  const queue = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = false;
  let firstPending: number | undefined;
  let lastLensSignature = "";
  /** A lens request was answered with lenses of an older analysis or text: refresh once coverage is current. */
  let servedStale = false;
  const clock = () => performance.now();

  const openDoc = (path: string) => ctx.documents.get(ctx.uriOf(path));
  const readText = (path: string): string | undefined => {
    const open = openDoc(path);
    return open ? open.getText() : ctx.fs.readFile(path);
  };

  /** The system model a test file names: a JSON file relative to it, or `live` (the server's). */
  function systemFor(spec: string, base: string): { system?: SystemInfo; error?: string; key?: unknown; file?: string } {
    if (spec === "live") {
      const s = ctx.system();
      return s ? { system: s, key: s } : { error: "`system: live` needs the live system model: set qubesPolicy.system.source to `qubesd` (or use a file)", key: null };
    }
    const file = resolveFrom(base, spec);
    const text = readText(file);
    if (text === undefined) return { error: `cannot read the system model \`${spec}\` (relative to the test file): no such file`, file };
    let hit = systems.get(file);
    if (!hit || hit.text !== text) {
      hit = { text };
      try {
        const raw = JSON.parse(text) as unknown;
        if (!raw || typeof raw !== "object" || typeof (raw as { domains?: unknown }).domains !== "object") {
          hit.error = `the system model \`${spec}\` is not an internal.GetSystemInfo answer (no \`domains\` object)`;
        } else hit.system = prepareSystemInfo(raw as RawSystemInfo);
      } catch {
        hit.error = `the system model \`${spec}\` is not valid JSON (${jsonErrorAt(text, spec)})`;
      }
      systems.set(file, hit);
    }
    return { ...(hit.system ? { system: hit.system } : { error: hit.error }), key: text, file };
  }

  /** Reads and resolves one test file (never throws). */
  function resolve(path: string, text: string): Resolved {
    const parsed = parsePolicyTestFile(text);
    const out: Resolved = { path, text, parsed, problems: [] };
    // A malformed entry is its own error; the file's other tests still run (as `qkit policy test` runs them).
    if (parsed.problems.some((p) => !isEntryProblem(p))) return out;
    const base = dirOf(path);
    const at = (line: number | undefined) => lineSpan(text, line ?? 1);
    if (parsed.policy === undefined) out.problems.push({ severity: "error", code: "no-policy", message: "no policy directory: add `policy: DIR` (relative to this file)", line: 1, span: at(1) });
    else {
      const dir = resolveFrom(base, parsed.policy);
      if (ctx.fs.stat(dir) !== "dir") out.problems.push({ severity: "error", code: "no-policy", message: `the policy directory \`${parsed.policy}\` (relative to the test file) is not a directory`, line: parsed.policyLine ?? 1, span: at(parsed.policyLine) });
      else out.policyDir = dir;
    }
    if (parsed.system === undefined) out.problems.push({ severity: "error", code: "no-system", message: "no system model: add `system: FILE` (or `live`)", line: 1, span: at(1) });
    else {
      const s = systemFor(parsed.system, base);
      out.systemKey = s.key;
      if (s.file) out.systemFile = s.file;
      if (s.system) out.system = s.system;
      else out.problems.push({ severity: "error", code: "no-system", message: s.error!, line: parsed.systemLine ?? 1, span: at(parsed.systemLine) });
    }
    return out;
  }

  /** Every test file: those on disk under the workspace folders and the open ones. */
  function testFiles(): string[] {
    if (!found) {
      const paths = new Set<string>();
      let budget = WALK_ENTRIES;
      const walk = (dir: string, depth: number) => {
        if (depth > WALK_DEPTH || budget <= 0) return;
        const names = ctx.fs.readDir(dir);
        if (!names) return;
        for (const n of [...names].sort()) {
          if (--budget <= 0) return;
          if (n.startsWith(".") || n === "node_modules") continue;
          const p = dir === "/" ? `/${n}` : `${dir}/${n}`;
          if (isPolicyTestFile(n)) {
            if (ctx.fs.stat(p) === "file") paths.add(p);
          } else if (ctx.fs.stat(p) === "dir") walk(p, depth + 1);
        }
      };
      for (const f of ctx.folders()) walk(normalizePath(f), 0);
      found = [...paths];
    }
    const all = new Set(found);
    for (const d of ctx.documents.all()) if (isPolicyTestPath(d.uri)) all.add(ctx.pathOf(d.uri));
    return [...all].sort();
  }

  /** Whether a test file's last result still holds: `busy` while the policy it ran against is being analysed again. */
  function freshness(path: string): { state: "fresh" | "stale" | "gone" } | { state: "busy"; root: string } {
    const text = readText(path);
    if (text === undefined) return { state: "gone" };
    const r = results.get(path);
    if (!r || r.text !== text || r.version !== openDoc(path)?.version || r.noPolicy) return { state: "stale" };
    if (r.systemFile !== undefined && readText(r.systemFile) !== r.systemKey) return { state: "stale" };
    if (r.systemKey !== undefined && r.systemFile === undefined && r.systemKey !== ctx.system()) return { state: "stale" };
    if (r.root !== undefined) {
      const policy = ctx.policyReady(r.root);
      if (!policy) return { state: "busy", root: r.root };
      if (policy.snapshot !== r.snapshot) return { state: "stale" };
    }
    return { state: "fresh" };
  }

  /** The protocol's form of a test file's diagnostics. */
  function convert(mapper: PositionMapper, list: readonly TestFileDiagnostic[], policy: PolicyAt | undefined): Diagnostic[] {
    return list.map((d) => {
      const out: Diagnostic = { range: toRange(mapper, d.span), severity: DiagnosticSeverity.Error, code: d.code, source: DIAGNOSTIC_SOURCE, message: d.message };
      if (d.related?.length && policy) {
        const info: DiagnosticRelatedInformation[] = [];
        for (const rel of d.related) {
          const doc = policy.snapshot.document(rel.path);
          const line = doc?.lines.find((l) => l.line === rel.line);
          const loc = line ? policy.locate(rel.path, line.span) : undefined;
          if (loc) info.push({ location: loc, message: rel.message });
        }
        if (info.length) out.relatedInformation = info;
      }
      return out;
    });
  }

  function push(uri: string, version: number | undefined, diagnostics: Diagnostic[]): void {
    const sig = `${version ?? ""}\0${JSON.stringify(diagnostics)}`;
    if (published.get(uri) === sig) return;
    if (!diagnostics.length && !published.has(uri) && version === undefined) return;
    published.set(uri, sig);
    void ctx.connection.sendDiagnostics({ uri, ...(version !== undefined ? { version } : {}), diagnostics });
  }

  /** A test file is gone (deleted, or an unsaved one closed): its diagnostics go with it. */
  function forget(path: string): void {
    const uri = results.get(path)?.uri ?? ctx.uriOf(path);
    results.delete(path);
    if (published.has(uri)) {
      published.delete(uri);
      void ctx.connection.sendDiagnostics({ uri, diagnostics: [] });
    }
  }

  /** Runs one test file against the current analysis of its policy and publishes; `busy` when that analysis is not ready. */
  function runOne(path: string): "done" | { busy: string } {
    const text = readText(path);
    if (text === undefined) {
      forget(path);
      return "done";
    }
    const td = openDoc(path);
    const uri = td?.uri ?? ctx.uriOf(path);
    const r = resolve(path, text);
    const list: TestFileDiagnostic[] = [...r.problems];
    let policy: PolicyAt | undefined;
    let calls: Explanation[] | undefined;
    if (r.policyDir !== undefined && r.system && !r.problems.length) {
      policy = ctx.policyReady(r.policyDir);
      if (!policy) return { busy: r.policyDir };
      const compiled = policy.snapshot.policy;
      if (!compiled) {
        const e = policy.snapshot.load;
        const why = e.ok ? "" : `: ${e.error.message}`;
        list.push({ severity: "error", code: "policy-does-not-load", message: `the policy does not load, so the daemon denies every call${why}; fix the policy first`, line: r.parsed.policyLine ?? 1, span: lineSpan(text, r.parsed.policyLine ?? 1) });
      } else {
        const recorder = new CallRecorder(compiled);
        // A call whose names are wrong shows the CLI's code for it (`unknown-qube`, `unknown-service`).
        list.push(...testFileDiagnostics(r.parsed, compiled, r.system, recorder).diagnostics.filter((d) => d.code === "policy-test-failed").map((d) => (d.reason ? { ...d, code: d.reason } : d)));
        calls = recorder.calls;
      }
    }
    if (r.parsed.problems.length) list.push(...testFileDiagnostics(r.parsed).diagnostics);
    const diagnostics = convert(td ?? mapperFor(text), list, policy);
    results.set(path, {
      uri,
      text,
      version: td?.version,
      ...(policy ? { root: policy.root, snapshot: policy.snapshot } : {}),
      ...(r.systemKey !== undefined ? { systemKey: r.systemKey } : {}),
      ...(r.systemFile !== undefined ? { systemFile: r.systemFile } : {}),
      noPolicy: !r.parsed.problems.length && r.policyDir === undefined,
      diagnostics,
      calls,
    });
    push(uri, td?.version, diagnostics);
    return "done";
  }

  /** Sums the calls of every test file of each policy into its lenses (when every one ran on the current analysis); asks the client to fetch lenses again when they changed. */
  function updateLenses(): void {
    const roots = new Set<string>();
    for (const r of results.values()) if (r.root !== undefined) roots.add(r.root);
    for (const root of [...lensCache.keys()]) if (!roots.has(root)) lensCache.delete(root);
    for (const root of roots) {
      const policy = ctx.policyReady(root);
      const compiled = policy?.snapshot.policy;
      if (!policy) continue;
      const mine = [...results.values()].filter((r) => r.root === root && r.calls);
      if (mine.some((r) => r.snapshot !== policy.snapshot)) continue;
      if (!compiled || !mine.length) {
        lensCache.delete(root);
        continue;
      }
      const collector = new CoverageCollector(compiled);
      for (const r of mine) for (const x of r.calls!) collector.add(x);
      lensCache.set(root, { snapshot: policy.snapshot, lenses: coverageLenses(collector.result()) });
    }
    const sig = [...lensCache].map(([root, c]) => `${root}\n${c.lenses.map((l) => `${l.path}:${l.line}:${l.title}`).join("\n")}`).join("\0");
    if ((sig !== lastLensSignature || servedStale) && ctx.canRefreshLenses()) {
      servedStale = false;
      void ctx.connection.sendRequest("workspace/codeLens/refresh").catch(() => undefined);
    }
    lastLensSignature = sig;
  }

  /** Runs queued test files for a slice; goes on in the next turn while some are left. */
  function runSlice(): void {
    timer = undefined;
    running = true;
    const start = clock();
    try {
      for (const path of queue) {
        if (clock() - start >= SLICE_MS) {
          setImmediate(runSlice);
          return;
        }
        queue.delete(path);
        try {
          // A policy analysed again meanwhile: the server's next idle turn queues the file again.
          runOne(path);
        } catch (e) {
          ctx.log(`qubes-policytest: running ${path} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
      }
    } catch (e) {
      ctx.log(`qubes-policytest: test run failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      queue.clear();
    }
    running = false;
    firstPending = undefined;
    try {
      updateLenses();
    } catch (e) {
      ctx.log(`qubes-policytest: coverage failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  }

  /** Runs the queue after the debounce (at once when changes kept coming for {@link MAX_WAIT_MS}). */
  function scheduleRun(): void {
    if (running) return;
    const now = clock();
    firstPending ??= now;
    if (timer) clearTimeout(timer);
    timer = setTimeout(runSlice, now - firstPending >= MAX_WAIT_MS ? 0 : DEBOUNCE_MS);
  }

  /** Queues every test file whose result no longer holds, and drops those that are gone. */
  function queueStale(): void {
    const paths = testFiles();
    const keep = new Set(paths);
    for (const path of [...results.keys()]) if (!keep.has(path)) forget(path);
    for (const path of paths) {
      const f = freshness(path);
      if (f.state === "gone") forget(path);
      else if (f.state === "stale") queue.add(path);
    }
    if (queue.size) scheduleRun();
    else if (!running && servedStale) updateLenses();
  }

  /** Places lenses computed on an older text of a document on the rules' lines in the current text. */
  function lineMap(before: PolicyDocument, now: PolicyDocument): (line: number) => number | undefined {
    if (before === now || before.text === now.text) return (line) => line;
    const textOf = (d: PolicyDocument, i: number) => d.text.slice(d.lines[i]!.lineSpan.start, d.lines[i]!.lineSpan.end);
    const n = before.lines.length;
    const m = now.lines.length;
    let head = 0;
    while (head < n && head < m && textOf(before, head) === textOf(now, head)) head++;
    let tail = 0;
    while (tail < n - head && tail < m - head && textOf(before, n - 1 - tail) === textOf(now, m - 1 - tail)) tail++;
    // Lines before the edit keep their number, lines after it move with it, edited lines have no lens.
    return (line) => (line <= head ? line : line > n - tail ? line + (m - n) : undefined);
  }

  return {
    name: "policytest",
    handles: (uri) => isPolicyTestPath(uri),
    changed(uri) {
      queue.add(ctx.pathOf(uri));
    },
    closed(uri) {
      // Still on disk: it keeps its diagnostics (run again from the disk's text); an unsaved one goes.
      queue.add(ctx.pathOf(uri));
      scheduleRun();
    },
    filesChanged(paths) {
      found = undefined;
      for (const p of paths) if (isPolicyTestFile(p.slice(p.lastIndexOf("/") + 1))) queue.add(p);
    },
    validate() {
      queueStale();
    },
    async pullDiagnostics(uri, token) {
      const path = ctx.pathOf(uri);
      for (let attempt = 0; attempt < 5; attempt++) {
        const f = freshness(path);
        if (f.state === "gone") return [];
        if (f.state === "fresh") return results.get(path)!.diagnostics;
        if (f.state === "busy") {
          await ctx.waitPolicy(f.root, token);
          continue;
        }
        const out = runOne(path);
        if (out !== "done") await ctx.waitPolicy(out.busy, token);
      }
      return results.get(path)?.diagnostics ?? [];
    },
    ruleLenses(policy, virtualPath, current) {
      const entry = lensCache.get(policy.root);
      if (!entry) {
        if ([...results.values()].some((r) => r.root === policy.root)) servedStale = true;
        return [];
      }
      const before = entry.snapshot.document(virtualPath);
      if (!before) return [];
      if (entry.snapshot !== policy.snapshot || before.text !== current.doc.text) servedStale = true;
      const map = lineMap(before, current.doc);
      const out: CodeLens[] = [];
      for (const l of entry.lenses) {
        if (l.path !== virtualPath) continue;
        const line = map(l.line);
        const node = line === undefined ? undefined : current.doc.lines[line - 1];
        if (!node) continue;
        const at = current.mapper.positionAt(node.span.start);
        out.push({ range: { start: at, end: at }, command: { title: l.title, command: "" } });
      }
      return out;
    },
    // Test files are YAML: no completion, hover, navigation, formatting or tokens of their own.
    async completion() {
      return [];
    },
    hover: () => null,
    definition: () => [],
    references: () => [],
    codeLens: () => [],
    semanticTokens: () => ({ data: [] }),
    codeActions: () => [],
    format: () => [],
    analysis: () => undefined,
  };
}

/** The span of a 1-based line of a text (without its line ending). */
function lineSpan(text: string, line: number): Span {
  let start = 0;
  for (let n = 1; n < line; n++) {
    const i = text.indexOf("\n", start);
    if (i < 0) return { start: text.length, end: text.length };
    start = i + 1;
  }
  let end = text.indexOf("\n", start);
  if (end < 0) end = text.length;
  if (end > start && text.charCodeAt(end - 1) === 13) end--;
  return { start, end };
}
