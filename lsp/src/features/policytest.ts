/**
 * Policy tests in the editor (`*.policytest.yaml`): diagnostics on a test
 * file (its problems, and each failing call at its entry, with the rules
 * that made the actual decision as related information), and code lenses on
 * the rules of a policy that test files exercise ("decided by 2 tests",
 * "no test decides this rule"). The pure services are in
 * `language/src/audit/editor.ts`; this module only reads files, finds the
 * policy a test file names (through the server's policy projects) and
 * converts to the protocol.
 *
 * Registered from `server-core.ts`'s feature table, like the stack-file
 * feature; the server also asks it for the lenses of policy documents.
 */
import {
  DiagnosticSeverity,
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
  prepareSystemInfo,
  testFileDiagnostics,
  type PolicySnapshot,
  type PolicyTestFile,
  type RawSystemInfo,
  type RuleLens,
  type Span,
  type SystemInfo,
  type TestFileDiagnostic,
} from "@qubes-kit/language";
import { DIAGNOSTIC_SOURCE, toRange } from "../convert.js";
import type { HostFileSystem } from "../host.js";
import { normalizePath } from "../project.js";
import type { DocumentFeature } from "../template/feature.js";

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
  connection: Connection;
  documents: TextDocuments<TextDocument>;
  fs: HostFileSystem;
  /** The system model the server has loaded (for `system: live`), or `null`. */
  system(): SystemInfo | null;
  /** The analysed policy of a directory on disk (the project for it, made if needed). */
  policyAt(dir: string): PolicyAt;
  /** The workspace folders (where test files are looked for). */
  folders(): readonly string[];
  pathOf(uri: string): string;
  uriOf(path: string): string;
  /** True when the client can be asked to request code lenses again (`workspace/codeLens/refresh`). */
  canRefreshLenses(): boolean;
  log(message: string): void;
}

/** The policy test feature: a {@link DocumentFeature} for test files, plus the lenses of policy files. */
export interface PolicyTestFeature extends DocumentFeature {
  /** Code lenses "decided by N tests" for the rules of a policy document, or none when no test file uses its policy. */
  ruleLenses(policy: PolicyAt, virtualPath: string, mapper: { positionAt(offset: number): { line: number; character: number } }): CodeLens[];
}

/** How deep and how wide the search for test files on disk goes (a workspace may be a home directory). */
const WALK_DEPTH = 6;
const WALK_ENTRIES = 20_000;

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
  /** Problems of the file's `policy:`/`system:` beyond its own syntax. */
  problems: TestFileDiagnostic[];
}

/** Creates the feature. */
export function createPolicyTestFeature(ctx: PolicyTestContext): PolicyTestFeature {
  /** What was published per URI (a signature, to skip unchanged results). */
  const published = new Map<string, string>();
  /** Coverage per policy directory, for one snapshot and one generation of the test files. */
  const coverage = new Map<string, { snapshot: PolicySnapshot; generation: number; system: SystemInfo | null; lenses: RuleLens[] }>();
  /** Bumped when a test file changes (open, edited, closed, or on disk). */
  let generation = 0;
  /** Test files found on disk, per generation. */
  let found: { generation: number; paths: string[] } | undefined;
  let lastLensSignature = "";

  const readText = (path: string): string | undefined => {
    const open = ctx.documents.get(ctx.uriOf(path));
    return open ? open.getText() : ctx.fs.readFile(path);
  };

  /** The system model a test file names: a JSON file relative to it, or `live` (the server's). */
  function systemFor(spec: string, base: string): { system?: SystemInfo; error?: string } {
    if (spec === "live") {
      const s = ctx.system();
      return s ? { system: s } : { error: "`system: live` needs the live system model: set qubesPolicy.system.source to `qubesd` (or use a file)" };
    }
    const file = resolveFrom(base, spec);
    const text = readText(file);
    if (text === undefined) return { error: `cannot read the system model \`${spec}\` (relative to the test file): no such file` };
    try {
      const raw = JSON.parse(text) as unknown;
      if (!raw || typeof raw !== "object" || typeof (raw as { domains?: unknown }).domains !== "object") {
        return { error: `the system model \`${spec}\` is not an internal.GetSystemInfo answer (no \`domains\` object)` };
      }
      return { system: prepareSystemInfo(raw as RawSystemInfo) };
    } catch (e) {
      return { error: `the system model \`${spec}\` is not valid JSON: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}` };
    }
  }

  /** Reads and resolves one test file (never throws). */
  function resolve(path: string, text: string): Resolved {
    const parsed = parsePolicyTestFile(text);
    const out: Resolved = { path, text, parsed, problems: [] };
    if (parsed.problems.length) return out;
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
      if (s.system) out.system = s.system;
      else out.problems.push({ severity: "error", code: "no-system", message: s.error!, line: parsed.systemLine ?? 1, span: at(parsed.systemLine) });
    }
    return out;
  }

  /** The diagnostics of an open test file, as the protocol has them. */
  function diagnosticsOf(td: TextDocument): Diagnostic[] {
    const path = ctx.pathOf(td.uri);
    const r = resolve(path, td.getText());
    const list: TestFileDiagnostic[] = [...r.problems];
    let policy: PolicyAt | undefined;
    if (r.policyDir !== undefined && r.system && !r.problems.length) {
      policy = ctx.policyAt(r.policyDir);
      const compiled = policy.snapshot.policy;
      if (!compiled) {
        const e = policy.snapshot.load;
        const why = e.ok ? "" : `: ${e.error.message}`;
        list.push({ severity: "error", code: "policy-does-not-load", message: `the policy does not load, so the daemon denies every call${why}; fix the policy first`, line: r.parsed.policyLine ?? 1, span: lineSpan(r.text, r.parsed.policyLine ?? 1) });
      } else list.push(...testFileDiagnostics(r.parsed, compiled, r.system).diagnostics.filter((d) => d.code === "policy-test-failed"));
    }
    if (r.parsed.problems.length) list.push(...testFileDiagnostics(r.parsed).diagnostics);
    return list.map((d) => {
      const out: Diagnostic = { range: toRange(td, d.span), severity: DiagnosticSeverity.Error, code: d.code, source: DIAGNOSTIC_SOURCE, message: d.message };
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

  /** Every test file: the open ones and those on disk under the workspace folders. */
  function testFiles(): string[] {
    if (!found || found.generation !== generation) {
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
      found = { generation, paths: [...paths] };
    }
    const all = new Set(found.paths);
    for (const d of ctx.documents.all()) if (isPolicyTestPath(d.uri)) all.add(ctx.pathOf(d.uri));
    return [...all].sort();
  }

  /** The lenses of a policy: every test file that names it, run against it. */
  function lensesOf(policy: PolicyAt): RuleLens[] {
    const hit = coverage.get(policy.root);
    if (hit && hit.snapshot === policy.snapshot && hit.generation === generation && hit.system === ctx.system()) return hit.lenses;
    // The policy or the files on disk changed since: look for test files again (one may have been added).
    found = undefined;
    const compiled = policy.snapshot.policy;
    let lenses: RuleLens[] = [];
    if (compiled) {
      const collector = new CoverageCollector(compiled);
      let used = 0;
      for (const path of testFiles()) {
        const text = readText(path);
        if (text === undefined) continue;
        const r = resolve(path, text);
        if (r.policyDir !== policy.root || !r.system || r.problems.length || r.parsed.problems.length) continue;
        used++;
        testFileDiagnostics(r.parsed, compiled, r.system, collector);
      }
      if (used) lenses = coverageLenses(collector.result());
    }
    coverage.set(policy.root, { snapshot: policy.snapshot, generation, system: ctx.system(), lenses });
    return lenses;
  }

  function changedTests(): void {
    generation++;
    coverage.clear();
  }

  function publish(td: TextDocument): void {
    const diagnostics = diagnosticsOf(td);
    const sig = JSON.stringify(diagnostics);
    if (published.get(td.uri) === sig) return;
    published.set(td.uri, sig);
    void ctx.connection.sendDiagnostics({ uri: td.uri, version: td.version, diagnostics });
  }

  return {
    name: "policytest",
    handles: (uri) => isPolicyTestPath(uri),
    changed(uri) {
      changedTests();
      published.delete(uri);
    },
    closed(uri) {
      changedTests();
      if (published.has(uri)) {
        published.delete(uri);
        void ctx.connection.sendDiagnostics({ uri, diagnostics: [] });
      }
    },
    validate() {
      for (const td of ctx.documents.all()) {
        if (!isPolicyTestPath(td.uri)) continue;
        try {
          publish(td);
        } catch (e) {
          ctx.log(`qubes-policytest: diagnostics of ${td.uri} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
      }
      // Lenses shown on policy files change with the tests and the policies: ask the client to fetch them again.
      const sig = `${generation}\0${[...coverage.values()].map((c) => c.lenses.map((l) => `${l.path}:${l.line}:${l.title}`).join("\n")).join("\0")}`;
      if (sig !== lastLensSignature && ctx.canRefreshLenses()) {
        lastLensSignature = sig;
        void ctx.connection.sendRequest("workspace/codeLens/refresh").catch(() => undefined);
      }
    },
    ruleLenses(policy, virtualPath, mapper) {
      return lensesOf(policy)
        .filter((l) => l.path === virtualPath)
        .map((l) => {
          const doc = policy.snapshot.document(virtualPath);
          const line = doc?.lines.find((x) => x.line === l.line);
          const at = mapper.positionAt(line ? line.span.start : 0);
          const position = line ? at : { line: l.line - 1, character: 0 };
          return { range: { start: position, end: position }, command: { title: l.title, command: "" } };
        });
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
