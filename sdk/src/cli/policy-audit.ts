/**
 * `qkit policy test | diff | who-can | what-can | table`: the auditor's
 * commands. The logic lives in `@qubes-kit/language` (`audit/`); this module
 * reads files, mounts policy directories and prints.
 *
 * Exit codes: `test` 0 all pass, 1 a failure (or a test file or policy that
 * cannot be used), 2 usage; `diff` 0 no change, 1 changes, 2 errors; the
 * queries 0, or 2 on usage errors.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import {
  CoverageCollector,
  createMemoryFileSystem,
  decisionToJson,
  changeItems,
  diffPolicies,
  expandChanges,
  groupChanges,
  type ChangeGroup,
  type PolicyFileSystem,
  coverageToLcov,
  expectationCall,
  expectationText,
  isPolicyTestFile,
  loadPolicy,
  parsePolicyTestFile,
  prepareSystemInfo,
  runExpectation,
  POLICY_DIR,
  type CompiledPolicy,
  type ExpectationResult,
  type PolicyCoverage,
  type PolicyError,
  type PolicyTestCase,
  type SystemInfo,
} from "@qubes-kit/language";
import { createNodePolicyFileSystem } from "../policy-fs.js";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { parseArgs, type ParsedArgs } from "./args.js";
import { CONNECTION_USAGE } from "./connect.js";
import { describeDecision, renderExplanation } from "./policy.js";

// ---------------------------------------------------------------------------
// Shared: policies and system models
// ---------------------------------------------------------------------------

const CONNECTION_OPTIONS = { socket: "value", qrexec: true, timeout: "value" } as const;

/** A policy directory mounted at `/etc/qubes/policy.d`. */
interface Mounted {
  dir: string;
  fs: ReturnType<typeof createNodePolicyFileSystem>;
}

function mount(dir: string, cwd: string, what = "policy directory"): Mounted {
  const abs = path.resolve(cwd, dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new UsageError(`${what} \`${dir}\` is not a directory`);
  return { dir: abs, fs: createNodePolicyFileSystem({ mounts: { [POLICY_DIR]: abs }, passthrough: abs === POLICY_DIR }) };
}

/** The real path of a virtual path of a mounted policy, relative to `cwd` when below it. */
function shownPath(m: Mounted, virtual: string, cwd: string): string {
  const real = virtual === POLICY_DIR ? m.dir : virtual.startsWith(POLICY_DIR + "/") ? path.join(m.dir, virtual.slice(POLICY_DIR.length + 1)) : virtual;
  const rel = path.relative(cwd, real);
  return rel && !rel.startsWith("..") ? rel : real;
}

function loadDir(m: Mounted): { policy: CompiledPolicy } | { error: PolicyError } {
  const r = loadPolicy(m.fs);
  return r.ok ? { policy: r.policy } : { error: r.error };
}

function readSystemFile(file: string, cwd: string): SystemInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path.resolve(cwd, file), "utf8"));
  } catch (e) {
    throw new UsageError(`cannot read the system model \`${file}\`: ${e instanceof Error ? e.message.split("\n")[0]!.toLowerCase() : String(e)}`);
  }
  if (!raw || typeof raw !== "object" || typeof (raw as { domains?: unknown }).domains !== "object") {
    throw new UsageError(`the system model \`${file}\` is not an internal.GetSystemInfo answer (no \`domains\` object)`);
  }
  return prepareSystemInfo(raw as { domains: Record<string, never> });
}

/** The live system model, through the connection options (loaded on demand: the Admin API client is not needed otherwise). */
async function liveSystem(a: ParsedArgs, io: CliIO): Promise<SystemInfo> {
  const { connect } = await import("./connect.js");
  const { systemInfo } = await import("../system-info.js");
  const flags = new Map<string, string | true>();
  for (const k of ["socket", "timeout"]) if (a.values.has(k)) flags.set(`--${k}`, a.values.get(k)!);
  if (a.flags.has("qrexec")) flags.set("--qrexec", true);
  const { qubes } = connect(flags, io.env);
  return prepareSystemInfo(await systemInfo(qubes));
}

function xml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "");
}

// ---------------------------------------------------------------------------
// qkit policy test
// ---------------------------------------------------------------------------

const TEST_USAGE = `usage: qkit policy test [options] [PATH...]

Runs policy test files: every *.policytest.yaml (or .yml) file under each PATH
(default: the current directory). A test file names its policy and system model
and lists calls with the decisions they must get:

  policy: policy.d        # policy.d directory, relative to the test file
  system: system.json     # internal.GetSystemInfo JSON, relative; or \`live\`
  tests:
    - qubes.Filecopy work vault => deny
    - qubes.OpenURL work @default => allow @dispvm:work-dvm
    - qubes.Gpg work @default => ask vault        # ask, default target vault
    - call: qubes.Filecopy work -> personal
      decision: ask                               # allow | ask | deny
      targets_include: [personal]                 # or targets_exact: [...]

A refusal by the engine counts as deny. Failures are printed with the
explanation of the actual decision (as \`qkit policy explain\` prints it).

options:
  --policy-dir DIR        use this policy directory for every file (overrides \`policy:\`)
  --system FILE|live      use this system model for every file (overrides \`system:\`)
  --format text|junit     output format (default text); junit is JUnit XML
  --output FILE           write the results there instead of standard output
  --coverage              report, for every rule, the test calls it decided or contributed ask targets to
  --coverage-format text|json|lcov   (default text)
  --coverage-output FILE  write the coverage there (default: standard output, after the results)

${CONNECTION_USAGE.replace(/--socket/, "--socket").replace(/^connection:/, "connection (for `live`):")}
exit status: 0 every test passes, 1 a test fails or a file cannot be used, 2 usage error
`;

interface FileRun {
  /** As shown (relative to cwd). */
  file: string;
  problems: { line: number; code: string; message: string }[];
  results: { case: PolicyTestCase; result?: ExpectationResult; error?: string }[];
}

function findTestFiles(p: string, cwd: string): string[] {
  const abs = path.resolve(cwd, p);
  if (!existsSync(abs)) throw new UsageError(`no such file or directory: \`${p}\``);
  if (!statSync(abs).isDirectory()) return [abs];
  const out: string[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const n of names) {
      if (n === "node_modules" || n.startsWith(".")) continue;
      const full = path.join(dir, n);
      let st;
      try {
        st = statSync(full);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(full);
      else if (isPolicyTestFile(n)) out.push(full);
    }
  };
  walk(abs);
  return out;
}

async function runTest(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, {
    "policy-dir": "value",
    system: "value",
    format: "value",
    output: "value",
    coverage: true,
    "coverage-format": "value",
    "coverage-output": "value",
    ...CONNECTION_OPTIONS,
  });
  const format = a.values.get("format") ?? "text";
  if (format !== "text" && format !== "junit") throw new UsageError(`--format must be text or junit, got \`${format}\``);
  const covFormat = a.values.get("coverage-format") ?? "text";
  if (!["text", "json", "lcov"].includes(covFormat)) throw new UsageError(`--coverage-format must be text, json or lcov, got \`${covFormat}\``);
  const wantCoverage = a.flags.has("coverage") || a.values.has("coverage-format") || a.values.has("coverage-output");
  const paths = a.positionals.length ? a.positionals : ["."];
  const files = [...new Set(paths.flatMap((p) => findTestFiles(p, io.cwd)))];
  if (files.length === 0) throw new UsageError(`no policy test files (*.policytest.yaml) under ${paths.map((p) => `\`${p}\``).join(", ")}`);

  // Policies and system models are loaded once each, however many files use them.
  const policies = new Map<string, { mounted: Mounted; loaded: { policy: CompiledPolicy } | { error: PolicyError }; coverage?: CoverageCollector }>();
  const systems = new Map<string, SystemInfo>();
  const overrideDir = a.values.get("policy-dir");
  const overrideSystem = a.values.get("system");
  const runs: FileRun[] = [];
  for (const abs of files) {
    const shown = path.relative(io.cwd, abs) || abs;
    const run: FileRun = { file: shown, problems: [], results: [] };
    runs.push(run);
    let text: string;
    try {
      text = readFileSync(abs, "utf8");
    } catch (e) {
      run.problems.push({ line: 1, code: "unreadable-test-file", message: `cannot read: ${e instanceof Error ? e.message : String(e)}` });
      continue;
    }
    const parsed = parsePolicyTestFile(text);
    run.problems.push(...parsed.problems);
    const base = path.dirname(abs);
    const dirSpec = overrideDir !== undefined ? path.resolve(io.cwd, overrideDir) : parsed.policy !== undefined ? path.resolve(base, parsed.policy) : undefined;
    const sysSpec = overrideSystem !== undefined ? (overrideSystem === "live" ? "live" : path.resolve(io.cwd, overrideSystem)) : parsed.system !== undefined ? (parsed.system === "live" ? "live" : path.resolve(base, parsed.system)) : undefined;
    if (dirSpec === undefined) run.problems.push({ line: 1, code: "no-policy", message: "no policy directory: add `policy: DIR` or pass --policy-dir" });
    if (sysSpec === undefined) run.problems.push({ line: 1, code: "no-system", message: "no system model: add `system: FILE` (or `live`) or pass --system" });
    if (run.problems.length || dirSpec === undefined || sysSpec === undefined) continue;
    let entry = policies.get(dirSpec);
    if (!entry) {
      let mounted: Mounted;
      try {
        mounted = mount(dirSpec, io.cwd);
      } catch (e) {
        run.problems.push({ line: 1, code: "no-policy", message: e instanceof Error ? e.message : String(e) });
        continue;
      }
      const loaded = loadDir(mounted);
      entry = { mounted, loaded };
      if ("policy" in loaded && wantCoverage) entry.coverage = new CoverageCollector(loaded.policy);
      policies.set(dirSpec, entry);
    }
    let system = systems.get(sysSpec);
    if (!system) {
      try {
        system = sysSpec === "live" ? await liveSystem(a, io) : readSystemFile(sysSpec, io.cwd);
      } catch (e) {
        run.problems.push({ line: 1, code: "no-system", message: e instanceof Error ? e.message : String(e) });
        continue;
      }
      systems.set(sysSpec, system);
    }
    for (const c of parsed.cases) {
      if ("error" in entry.loaded) {
        run.results.push({ case: c, error: `the policy does not load, so the daemon denies every call: ${entry.loaded.error.message}` });
        continue;
      }
      const result = runExpectation(entry.loaded.policy, system, c.expectation);
      entry.coverage?.add(result.explanation);
      run.results.push({ case: c, result });
    }
  }

  const total = runs.reduce((n, r) => n + r.results.length, 0);
  const failed = runs.reduce((n, r) => n + r.results.filter((x) => x.error !== undefined || x.result?.failure !== undefined).length, 0);
  const broken = runs.filter((r) => r.problems.length).length;
  const report = format === "junit" ? junit(runs) : textReport(runs, total, failed, broken);
  const output = a.values.get("output");
  if (output !== undefined) writeFileSync(path.resolve(io.cwd, output), report);
  else io.stdout.write(report);

  if (wantCoverage) {
    const covs = [...policies.values()].filter((p) => p.coverage).map((p) => ({ mounted: p.mounted, coverage: p.coverage!.result() }));
    const text = coverageReport(covs, covFormat, io.cwd);
    const covOut = a.values.get("coverage-output");
    if (covOut !== undefined) writeFileSync(path.resolve(io.cwd, covOut), text);
    else io.stdout.write(text);
  }
  return failed || broken ? 1 : 0;
}

function indent(text: string, by: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => by + l)
    .join("\n");
}

function textReport(runs: FileRun[], total: number, failed: number, broken: number): string {
  const out: string[] = [];
  for (const r of runs) {
    for (const p of r.problems) out.push(`${r.file}:${p.line}: error[${p.code}]: ${p.message}`);
    for (const x of r.results) {
      const call = expectationCall(x.case.expectation);
      if (x.error !== undefined) {
        out.push(`FAIL ${r.file}:${x.case.line}: ${call}: ${x.error}`);
      } else if (x.result!.failure !== undefined) {
        out.push(`FAIL ${r.file}:${x.case.line}: ${call}: ${x.result!.failure}`);
        out.push(indent(renderExplanation(x.result!.explanation), "    "));
      }
    }
  }
  const files = runs.length;
  out.push(`${total - failed} passed, ${failed} failed${broken ? `, ${broken} test file${broken === 1 ? "" : "s"} not usable` : ""} (${total} test${total === 1 ? "" : "s"} in ${files} file${files === 1 ? "" : "s"})`);
  return out.join("\n") + "\n";
}

function junit(runs: FileRun[]): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  const total = runs.reduce((n, r) => n + r.results.length + (r.problems.length ? 1 : 0), 0);
  const failures = runs.reduce((n, r) => n + r.results.filter((x) => x.result?.failure !== undefined).length, 0);
  const errors = runs.reduce((n, r) => n + r.results.filter((x) => x.error !== undefined).length + (r.problems.length ? 1 : 0), 0);
  out.push(`<testsuites name="qkit policy test" tests="${total}" failures="${failures}" errors="${errors}">`);
  for (const r of runs) {
    const f = r.results.filter((x) => x.result?.failure !== undefined).length;
    const e = r.results.filter((x) => x.error !== undefined).length + (r.problems.length ? 1 : 0);
    out.push(`  <testsuite name="${xml(r.file)}" tests="${r.results.length + (r.problems.length ? 1 : 0)}" failures="${f}" errors="${e}">`);
    if (r.problems.length) {
      out.push(`    <testcase name="${xml(r.file)} (test file)" classname="${xml(r.file)}" file="${xml(r.file)}" line="${r.problems[0]!.line}">`);
      out.push(`      <error message="${xml(r.problems[0]!.message)}" type="${xml(r.problems[0]!.code)}">${xml(r.problems.map((p) => `${r.file}:${p.line}: ${p.message}`).join("\n"))}</error>`);
      out.push("    </testcase>");
    }
    for (const x of r.results) {
      const name = expectationCall(x.case.expectation) + " => " + expectationText(x.case.expectation);
      out.push(`    <testcase name="${xml(x.case.name === name ? name : x.case.name)}" classname="${xml(r.file)}" file="${xml(r.file)}" line="${x.case.line}">`);
      if (x.error !== undefined) out.push(`      <error message="${xml(x.error)}" type="policy-load-error"/>`);
      else if (x.result!.failure !== undefined) {
        out.push(`      <failure message="${xml(x.result!.failure)}" type="wrong-decision">${xml(renderExplanation(x.result!.explanation))}</failure>`);
      }
      out.push("    </testcase>");
    }
    out.push("  </testsuite>");
  }
  out.push("</testsuites>");
  return out.join("\n") + "\n";
}

function coverageReport(covs: { mounted: Mounted; coverage: PolicyCoverage }[], format: string, cwd: string): string {
  if (format === "lcov") return covs.map((c) => coverageToLcov(c.coverage, (p) => shownPath(c.mounted, p, cwd))).join("");
  if (format === "json") {
    const policies = covs.map((c) => ({
      policy_dir: path.relative(cwd, c.mounted.dir) || ".",
      covered: c.coverage.covered,
      total: c.coverage.total,
      files: c.coverage.files.map((f) => ({
        file: f.file,
        path: shownPath(c.mounted, f.path, cwd),
        covered: f.covered,
        total: f.total,
        rules: f.rules.map((r) => ({ line: r.rule.origin.line, action: r.rule.action, decided: r.decided, contributed: r.contributed, covered: r.decided + r.contributed > 0 })),
      })),
    }));
    const covered = covs.reduce((n, c) => n + c.coverage.covered, 0);
    const total = covs.reduce((n, c) => n + c.coverage.total, 0);
    return JSON.stringify({ covered, total, policies }) + "\n";
  }
  const out: string[] = ["coverage (rules that decided a test call or contributed ask targets):"];
  let covered = 0;
  let total = 0;
  for (const c of covs) {
    covered += c.coverage.covered;
    total += c.coverage.total;
    for (const f of c.coverage.files) {
      const p = shownPath(c.mounted, f.path, cwd);
      out.push(`  ${p}: ${f.covered}/${f.total} rules (${percent(f.covered, f.total)})`);
      const missed = f.rules.filter((r) => !r.decided && !r.contributed).map((r) => r.rule.origin.line ?? "None");
      if (missed.length) out.push(`    not covered: line${missed.length === 1 ? "" : "s"} ${missed.join(", ")}`);
    }
  }
  out.push(`  total: ${covered}/${total} rules (${percent(covered, total)})`);
  return out.join("\n") + "\n";
}

function percent(n: number, d: number): string {
  return d === 0 ? "100%" : `${Math.floor((n * 1000) / d) / 10}%`;
}

// ---------------------------------------------------------------------------
// qkit policy diff
// ---------------------------------------------------------------------------

const DIFF_USAGE = `usage: qkit policy diff [options] OLD NEW --system SYSTEM.json|live

Every qrexec request whose decision differs between two policies, over the
request space of a system: the services and arguments that the rules name
(plus one representative, \`*\`, for all others), every qube as the source, and
as the target every qube, @default, @adminvm, @dispvm and @dispvm:X for each
disposable template. A change is a different action, a different allow
target or a different set of ask targets; an engine refusal counts as deny and
a changed default target alone is not a change. Exact: each reported decision
is the evaluator's, and qubes that no rule of either policy tells apart are
decided once per class.

OLD and NEW are each a policy.d directory, \`live\` (the policy of the
connected system, through the policy admin API), or REV:PATH (a git revision of
a directory of the repository the current directory is in, e.g. HEAD:policy.d).

output: statements grouped by service, grants first, then other changes, then
revocations ("qubes.Filecopy from work: to vault: deny → allow (30-user.policy:4)").

options:
  --system FILE|live  the system model (internal.GetSystemInfo JSON, or the live system)
  --json              the grouped statements as one JSON object
  --expand            one line per changed request; with --json, one JSON object a line:
                      {"service","argument","source","target","before","after"} where
                      before and after are decisions as \`qkit policy eval --json\` prints them

${CONNECTION_USAGE}
exit status: 0 no decision changes, 1 some do, 2 errors (usage, a policy that does not load)
`;

interface PolicyInput {
  label: string;
  fs: PolicyFileSystem;
  /** A directory: where the files are. */
  dir?: string;
}

async function policyInput(spec: string, a: ParsedArgs, io: CliIO): Promise<PolicyInput> {
  if (spec === "live") {
    const { connect } = await import("./connect.js");
    const flags = new Map<string, string | true>();
    for (const k of ["socket", "timeout"]) if (a.values.has(k)) flags.set(`--${k}`, a.values.get(k)!);
    if (a.flags.has("qrexec")) flags.set("--qrexec", true);
    const { policy } = connect(flags, io.env);
    return { label: "live", fs: await policy.fileSystem() };
  }
  const abs = path.resolve(io.cwd, spec);
  if (existsSync(abs)) return { label: spec, ...mount(spec, io.cwd), dir: abs };
  const colon = spec.indexOf(":");
  if (colon <= 0) throw new UsageError(`policy \`${spec}\` is not a directory, \`live\` or REV:PATH`);
  const rev = spec.slice(0, colon);
  const dir = spec.slice(colon + 1).replace(/\/+$/, "") || ".";
  const git = (args: string[]) => execFileSync("git", args, { cwd: io.cwd, maxBuffer: 1 << 28, stdio: ["ignore", "pipe", "pipe"] });
  let names: string[];
  let prefix: string;
  try {
    prefix = git(["rev-parse", "--show-prefix"]).toString().trim();
    names = git(["ls-tree", "-r", "-z", "--name-only", "--full-tree", rev, "--", path.posix.normalize(prefix + dir)])
      .toString()
      .split("\0")
      .filter(Boolean);
  } catch (e) {
    const msg = e && typeof e === "object" && "stderr" in e ? String((e as { stderr: unknown }).stderr).trim().split("\n")[0] : String(e);
    throw new UsageError(`cannot read \`${spec}\` from git: ${msg}`);
  }
  const base = path.posix.normalize(prefix + dir);
  if (names.length === 0) throw new UsageError(`\`${dir}\` has no files in git revision \`${rev}\``);
  const files: Record<string, string> = {};
  for (const n of names) {
    const rel = base === "." ? n : n.slice(base.length + 1);
    files[POLICY_DIR + "/" + rel] = git(["show", `${rev}:${n}`]).toString("utf8");
  }
  return { label: spec, fs: createMemoryFileSystem(files, [POLICY_DIR]) };
}

function sideJson(g: ChangeGroup["before"]): Record<string, unknown> {
  return { action: g.action, ...(g.target !== undefined ? { target: g.target } : {}), rule: g.rule ?? null, ...(g.refusal !== undefined ? { refusal: g.refusal } : {}) };
}

async function runDiff(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, { system: "value", json: true, expand: true, ...CONNECTION_OPTIONS });
  if (a.positionals.length !== 2) throw new UsageError("expected OLD and NEW (directories, `live` or REV:PATH)");
  const sysSpec = a.values.get("system");
  if (sysSpec === undefined) throw new UsageError("`--system FILE|live` is required: the diff is over the requests of a system");
  const system = sysSpec === "live" ? await liveSystem(a, io) : readSystemFile(sysSpec, io.cwd);
  const loaded: CompiledPolicy[] = [];
  for (const spec of a.positionals) {
    const input = await policyInput(spec, a, io);
    const r = loadPolicy(input.fs);
    if (!r.ok) {
      io.stderr.write(`qkit policy diff: the policy \`${input.label}\` does not load (the daemon would deny every call): ${r.error.message} [policy-does-not-load]\n`);
      return 2;
    }
    loaded.push(r.policy);
  }
  const diff = diffPolicies(loaded[0]!, loaded[1]!, system);
  const json = a.flags.has("json");
  if (a.flags.has("expand")) {
    for (const c of expandChanges(diff, loaded[0]!, loaded[1]!, system)) {
      if (json) io.stdout.write(JSON.stringify({ service: c.service, argument: c.argument, source: c.source, target: c.target, before: decisionToJson(c.before), after: decisionToJson(c.after) }) + "\n");
      else io.stdout.write(`${c.call} ${c.source} -> ${c.target}: ${describeDecision(c.before)}  →  ${describeDecision(c.after)}\n`);
    }
    return diff.requests ? 1 : 0;
  }
  const groups = groupChanges(changeItems(diff), diff.space);
  const count = (k: ChangeGroup["kind"]) => groups.filter((g) => g.kind === k).reduce((n, g) => n + g.requests, 0);
  if (json) {
    io.stdout.write(
      JSON.stringify({
        changed: diff.requests > 0,
        requests: diff.requests,
        grants: count("grant"),
        changes: count("change"),
        revocations: count("revoke"),
        groups: groups.map((g) => ({
          kind: g.kind,
          service: g.service,
          argument: g.argument,
          sources: g.sources,
          targets: g.targets,
          before: sideJson(g.before),
          after: sideJson(g.after),
          ...(g.added ? { added: g.added, removed: g.removed } : {}),
          requests: g.requests,
          statement: g.statement,
        })),
      }) + "\n",
    );
    return diff.requests ? 1 : 0;
  }
  if (!diff.requests) {
    io.stdout.write(`no decision changes (${diff.space.qubes.length} qubes, ${diff.space.services.length - 1} services named by the rules)\n`);
    return 0;
  }
  for (const g of groups) io.stdout.write(`${g.kind === "grant" ? "grant " : g.kind === "revoke" ? "revoke" : "change"}  ${g.statement}\n`);
  const n = diff.requests;
  io.stdout.write(`${n} request${n === 1 ? "" : "s"} change: ${count("grant")} granted, ${count("change")} changed, ${count("revoke")} revoked\n`);
  return 1;
}

export const commands: Command[] = [
  { path: ["policy", "test"], summary: "run policy test files (expected decisions), with coverage", usage: TEST_USAGE, run: runTest },
  { path: ["policy", "diff"], summary: "every request whose decision differs between two policies", usage: DIFF_USAGE, run: runDiff },
];
