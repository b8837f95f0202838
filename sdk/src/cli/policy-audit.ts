/**
 * `qkit policy test | diff | who-can | what-can | table`: the auditor's
 * commands. The logic lives in `@qubes-kit/language` (`audit/`); this module
 * reads files, mounts policy directories and prints.
 *
 * Exit codes: `test` 0 all pass, 1 a failure (or a test file or policy that
 * cannot be used), 2 usage; `diff` 0 no change, 1 changes, 2 errors; the
 * queries 0, or 2 on usage errors.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import {
  CoverageCollector,
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
import { renderExplanation } from "./policy.js";

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

export const commands: Command[] = [{ path: ["policy", "test"], summary: "run policy test files (expected decisions), with coverage", usage: TEST_USAGE, run: runTest }];
