/**
 * `qkit policy test | diff | who-can | what-can | table`: the auditor's
 * commands. The logic lives in `@qubes-kit/language` (`audit/`); this module
 * reads files, mounts policy directories and prints.
 *
 * Exit codes: `test` 0 all pass, 1 a failure (or a test file or policy that
 * cannot be used), 2 usage; `diff` 0 no change, 1 changes, 2 errors; the
 * queries 0, or 2 on usage errors.
 */
import { isUtf8 } from "node:buffer";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import * as path from "node:path";
import {
  CoverageCollector,
  findUtf8Problem,
  lineAtOffset,
  NOT_UTF8_HELP,
  createMemoryFileSystem,
  decisionToJson,
  cellText,
  changeItems,
  decisionGrid,
  gridDecision,
  jsonErrorAt,
  requestSpace,
  type DecisionGrid,
  diffPolicies,
  isDenied,
  execRefusal,
  whatCanRows,
  whoCanRows,
  queryCallProblem,
  queryNameProblem,
  serviceNameProblem,
  type QueryRow,
  expandedChanges,
  groupChanges,
  type ChangeGroup,
  type PolicyFileSystem,
  coverageToLcov,
  expectationCall,
  expectationText,
  isPolicyTestFile,
  loadPolicy,
  parsePolicyTestFile,
  isEntryProblem,
  prepareSystemInfo,
  runExpectation,
  POLICY_DIR,
  type CompiledPolicy,
  type ExpectationOutcome,
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
import { describeDecision, malformedQube, renderExplanation, systemModelText } from "./policy.js";
import { ChunkedWriter, formatOption, outputFile, writeOutput } from "./output.js";
import { clip, escapeControls, oneLine, osMessage } from "./text.js";
import { InputFailure, live, liveClients } from "./live.js";
import { POLICY_DOES_NOT_LOAD, policyLoadMessage } from "./policy-load.js";
import { fileSink, OUTPUT_USAGE, withOutputOption } from "./audit-output.js";
import { noteRead, noteReadDir } from "./inputs-read.js";

// ---------------------------------------------------------------------------
// Shared: policies and system models
// ---------------------------------------------------------------------------

const CONNECTION_OPTIONS = { socket: "value", qrexec: true, timeout: "value" } as const;

/** A policy directory mounted at `/etc/qubes/policy.d`. */
interface Mounted {
  dir: string;
  fs: PolicyFileSystem;
  /** A policy that is no directory here (`live`, REV:PATH): its files are shown as `SPEC/FILE` (`live`: their real paths). */
  spec?: string;
}

function mount(dir: string, cwd: string, what = "policy directory"): Mounted {
  const abs = path.resolve(cwd, dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new UsageError(`${what} \`${dir}\` is not a directory`);
  noteReadDir(abs);
  return { dir: abs, fs: createNodePolicyFileSystem({ mounts: { [POLICY_DIR]: abs }, passthrough: abs === POLICY_DIR, onRead: (p) => noteRead(p) }) };
}

/** The real path of a virtual path of a mounted policy, relative to `cwd` when below it. */
function shownPath(m: Mounted, virtual: string, cwd: string): string {
  if (m.spec !== undefined) return m.spec === "live" || !virtual.startsWith(POLICY_DIR + "/") ? virtual : `${m.spec.replace(/\/+$/, "")}/${virtual.slice(POLICY_DIR.length + 1)}`;
  const real = virtual === POLICY_DIR ? m.dir : virtual.startsWith(POLICY_DIR + "/") ? path.join(m.dir, virtual.slice(POLICY_DIR.length + 1)) : virtual;
  const rel = path.relative(cwd, real);
  return rel && !rel.startsWith("..") ? rel : real;
}

function loadDir(m: Mounted): { policy: CompiledPolicy } | { error: PolicyError } {
  const r = loadPolicy(m.fs);
  return r.ok ? { policy: r.policy } : { error: r.error };
}

function readSystemFile(file: string, cwd: string, shown = `\`${file}\``): SystemInfo {
  let raw: unknown;
  let read: ReturnType<typeof systemModelText>;
  try {
    read = systemModelText(path.resolve(cwd, file), shown);
  } catch (e) {
    throw new UsageError(`cannot read the system model ${shown}: ${osMessage(e)}`);
  }
  if ("problem" in read) throw new InputFailure(read.problem, read.code);
  const text = read.text;
  try {
    raw = JSON.parse(text);
  } catch {
    // Where, never what: the file may be anything (a secret named by mistake).
    throw new UsageError(`cannot read the system model ${shown}: not valid JSON (${jsonErrorAt(text, path.relative(cwd, path.resolve(cwd, file)) || file)})`);
  }
  return checkedSystem(raw, `the system model ${shown}`);
}

/**
 * The one check of a system model every audit command makes (a file or the
 * live answer): an internal.GetSystemInfo answer with at least one qube, each
 * an object of properties. An answer without qubes would make every answer
 * vacuous ("no decision changes", no rows), so it is refused.
 */
function checkedSystem(raw: unknown, what: string): SystemInfo {
  const domains = raw && typeof raw === "object" ? (raw as { domains?: unknown }).domains : undefined;
  if (!domains || typeof domains !== "object" || Array.isArray(domains)) {
    throw new UsageError(`${what} is not an internal.GetSystemInfo answer (no \`domains\` object); make one with \`qkit system snapshot\``);
  }
  const names = Object.keys(domains);
  if (names.length === 0) {
    throw new InputFailure(`${what} has no qubes (\`domains\` is empty), so every answer would be empty; give the model of a real system (\`qkit system snapshot\` writes one; dom0 is always there)`, "empty-system");
  }
  const bad = malformedQube(Object.entries(domains), what);
  if (bad !== undefined) throw new InputFailure(bad, "bad-system-model");
  return prepareSystemInfo(raw as { domains: Record<string, never> });
}

export { InputFailure };

/** The live system model, through the connection options (loaded on demand: the Admin API client is not needed otherwise). */
async function liveSystem(a: ParsedArgs, io: CliIO): Promise<SystemInfo> {
  const { systemInfo } = await import("../system-info.js");
  const { qubes, conn } = await liveClients(a, io);
  const raw = await live(conn, () => systemInfo(qubes));
  return checkedSystem(raw, "the live system (internal.GetSystemInfo)");
}

/**
 * Runs an audit command: a {@link InputFailure} is one line with its code and
 * exit 2 (exit 1 is an answer for these commands, never an error).
 */
async function audited(name: string, io: CliIO, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof InputFailure) {
      io.stderr.write(`qkit policy ${name}: ${oneLine(e.message)} [${e.code}]\n`);
      return 2;
    }
    throw e;
  }
}

/** Foreign text as one printable, bounded line: control characters escaped (\`oneLine\`), then clipped. */
function shownText(s: string, max = 200): string {
  return clip(oneLine(s), max);
}

/** What XML 1.0 has no character for: U+FFFE, U+FFFF and halves of a surrogate pair standing alone. */
const NOT_XML_CHARS = /[\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function xml(s: string): string {
  // Control characters shown escaped (as in every message), then XML's own escaping. What XML cannot
  // hold at all (a reader would reject the whole report) is shown escaped the same way.
  return escapeControls(s)
    .replace(NOT_XML_CHARS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
    .replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "");
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
  --policy-dir DIR|live|REV:PATH
                          use this policy for every file (overrides \`policy:\`): a directory,
                          the live policy, or a directory of a git revision (as \`qkit policy diff\`)
  --system FILE|live      use this system model for every file (overrides \`system:\`)
  --format text|junit|json  output format (default text); junit is JUnit XML, json one object
  --json                  the same as --format json
  --output FILE           write the results there instead of standard output
  --coverage              report, for every rule, the test calls it decided or (allow and ask rules)
                          added targets to the ask list of
  --coverage-format text|json|lcov   (default text; json with --format json)
  --coverage-output FILE  write the coverage there (default, or \`-\`: standard output)

Standard output carries one document: text coverage after text results, or
with --format json the coverage as the \`coverage\` member of the results.
Other pairs on standard output are a usage error: write one of them to a file
(--coverage-output or --output).

A test fails when its call gets another decision, and when it names a source
or target that is not a qube of the system (\`[unknown-qube]\`) or a service
that no rule names but one a rule names is a letter or two away
(\`[unknown-service]\`): the names \`qkit policy eval\` warns about.

${CONNECTION_USAGE.replace(/^connection:/, "connection (for `live`):")}
exit status: 0 every test passes, 1 a test fails or a file cannot be used, 2 usage error,
or the live system or policy cannot be read ([connect-failed] and the like)
(or --output/--coverage-output cannot be written: [cannot-write])
`;

interface FileRun {
  /** As shown (relative to cwd). */
  file: string;
  problems: { line: number; code: string; message: string }[];
  results: { case: PolicyTestCase; result?: ExpectationOutcome; error?: string }[];
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
    } catch (e) {
      // A directory we may not list would hide its tests (and their failures): said, never skipped.
      throw new UsageError(`cannot read the directory \`${path.relative(cwd, dir) || dir}\`: ${osMessage(e)}; check its permissions, or name the test files to run`, "cannot-read");
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
    json: true,
    output: "value",
    coverage: true,
    "coverage-format": "value",
    "coverage-output": "value",
    ...CONNECTION_OPTIONS,
  });
  const format = formatOption(a, ["text", "junit", "json"]);
  const wantCoverage = a.flags.has("coverage") || a.values.has("coverage-format") || a.values.has("coverage-output");
  // Standard output carries one document: results and coverage together only when they make one
  // (text after text; JSON coverage nested in the JSON results as `coverage`).
  const outFile = outputFile(a, "output");
  const coverageFile = outputFile(a, "coverage-output");
  const bothOnStdout = wantCoverage && outFile === undefined && coverageFile === undefined;
  const covFormat = a.values.get("coverage-format") ?? (bothOnStdout && format === "json" ? "json" : "text");
  if (!["text", "json", "lcov"].includes(covFormat)) throw new UsageError(`--coverage-format must be text, json or lcov, got \`${covFormat}\``);
  if (bothOnStdout && covFormat !== format) {
    throw new UsageError(
      `${format} results and ${covFormat} coverage would share standard output: write one of them to a file (\`--coverage-output FILE\` or \`--output FILE\`)${format === "json" ? ", or drop --coverage-format to nest the coverage in the JSON results" : ""}`,
    );
  }
  const paths = a.positionals.length ? a.positionals : ["."];
  const files = [...new Set(paths.flatMap((p) => findTestFiles(p, io.cwd)))];
  if (files.length === 0) throw new UsageError(`no policy test files (*.policytest.yaml) under ${paths.map((p) => `\`${p}\``).join(", ")}`);

  // Policies and system models are loaded once each, however many files use them.
  const policies = new Map<string, { mounted: Mounted; shown: string; loaded: { policy: CompiledPolicy } | { error: PolicyError }; coverage?: CoverageCollector }>();
  const systems = new Map<string, SystemInfo>();
  const overrideDir = a.values.get("policy-dir");
  const overrideSystem = a.values.get("system");
  const runs: FileRun[] = [];
  for (const abs of files) {
    const shown = path.relative(io.cwd, abs) || abs;
    const run: FileRun = { file: shown, problems: [], results: [] };
    runs.push(run);
    let bytes: Buffer;
    try {
      bytes = readFileSync(abs);
      noteRead(abs);
    } catch (e) {
      run.problems.push({ line: 1, code: "unreadable-test-file", message: `cannot read the test file: ${osMessage(e)}` });
      continue;
    }
    const text = bytes.toString("utf8");
    // As a stack file: bytes that are not UTF-8 make the file unusable (read as U+FFFD, a name in a call would silently change).
    if (!isUtf8(bytes)) {
      const p = findUtf8Problem(bytes)!;
      run.problems.push({ line: lineAtOffset(text, p.textOffset), code: "not-utf8", message: `the test file is not UTF-8 text: byte 0x${p.byte.toString(16).padStart(2, "0")} at offset ${p.offset} (${p.reason}); ${NOT_UTF8_HELP}` });
      continue;
    }
    const parsed = parsePolicyTestFile(text);
    run.problems.push(...parsed.problems);
    const base = path.dirname(abs);
    // --policy-dir takes what the other auditor commands take: a directory, `live`, or REV:PATH of a git revision.
    const overrideNotDir = overrideDir !== undefined && (overrideDir === "live" || (!existsSync(path.resolve(io.cwd, overrideDir)) && overrideDir.indexOf(":") > 0));
    const dirGiven = overrideNotDir ? `\0${overrideDir}` : overrideDir !== undefined ? path.resolve(io.cwd, overrideDir) : parsed.policy !== undefined ? path.resolve(base, parsed.policy) : undefined;
    // One policy however it is reached (a symbolic link, `a/../b`): its coverage is counted once.
    const dirSpec = dirGiven === undefined || overrideNotDir ? dirGiven : realOrSame(dirGiven);
    const sysSpec = overrideSystem !== undefined ? (overrideSystem === "live" ? "live" : path.resolve(io.cwd, overrideSystem)) : parsed.system !== undefined ? (parsed.system === "live" ? "live" : path.resolve(base, parsed.system)) : undefined;
    // A malformed entry is an error of its own; the file's other tests still run.
    if (fileUnusable(run)) continue;
    if (dirSpec === undefined) run.problems.push({ line: 1, code: "no-policy", message: "no policy directory: add `policy: DIR` or pass --policy-dir" });
    if (sysSpec === undefined) run.problems.push({ line: 1, code: "no-system", message: "no system model: add `system: FILE` (or `system: live`) to the test file, or pass `--system FILE` (made by `qkit system snapshot`) or `--system live` with `--socket PATH`" });
    if (fileUnusable(run) || dirSpec === undefined || sysSpec === undefined) continue;
    // Paths in messages as the user wrote them (relative to the test file, or to the current directory for options).
    const dirWritten = overrideDir !== undefined ? `\`${overrideDir}\`` : `\`${parsed.policy}\` (relative to the test file)`;
    const sysWritten = overrideSystem !== undefined ? `\`${overrideSystem}\`` : `\`${parsed.system}\` (relative to the test file)`;
    const dirLine = overrideDir !== undefined ? 1 : (parsed.policyLine ?? 1);
    const sysLine = overrideSystem !== undefined ? 1 : (parsed.systemLine ?? 1);
    let entry = policies.get(dirSpec);
    if (!entry) {
      let mounted: Mounted;
      if (overrideNotDir) {
        // Read once for every file; a failure to reach qubesd or git stops the run (exit 2).
        const input = await policyInput(overrideDir!, a, io);
        mounted = { dir: POLICY_DIR, fs: input.fs, spec: overrideDir! };
        const loaded = loadDir(mounted);
        entry = { mounted, shown: overrideDir!, loaded };
        if ("policy" in loaded && wantCoverage) entry.coverage = new CoverageCollector(loaded.policy);
        policies.set(dirSpec, entry);
      } else if (!existsSync(dirSpec) || !statSync(dirSpec).isDirectory()) {
        run.problems.push({ line: dirLine, code: "no-policy", message: `the policy directory ${dirWritten} is not a directory` });
        continue;
      }
    }
    if (!entry) {
      const mounted = mount(dirSpec, io.cwd);
      const loaded = loadDir(mounted);
      // The directory as given: an absolute path as written, a relative one from the current directory.
      const written = overrideDir ?? parsed.policy!;
      entry = { mounted, shown: path.isAbsolute(written) ? written : path.relative(io.cwd, dirGiven!) || ".", loaded };
      if ("policy" in loaded && wantCoverage) entry.coverage = new CoverageCollector(loaded.policy);
      policies.set(dirSpec, entry);
    }
    let system = systems.get(sysSpec);
    if (!system) {
      try {
        system = sysSpec === "live" ? await liveSystem(a, io) : readSystemFile(sysSpec, io.cwd, sysWritten);
      } catch (e) {
        // qubesd unreachable is not a problem of this file: the whole run stops (exit 2), as every audit command does.
        if (sysSpec === "live" && e instanceof InputFailure && !["empty-system", "bad-system-model"].includes(e.code)) throw e;
        if (e instanceof InputFailure) {
          run.problems.push({ line: sysLine, code: e.code, message: e.message });
          continue;
        }
        const why = sysSpec === "live" ? `cannot read the live system model: ${e instanceof Error ? e.message : String(e)}` : e instanceof Error ? e.message : String(e);
        const todo = sysSpec === "live" ? "or use a system file: `--system FILE` (made by `qkit system snapshot`)" : "give a file `qkit system snapshot` wrote (`--system FILE`), or use `--system live` with `--socket PATH`";
        run.problems.push({ line: sysLine, code: "no-system", message: `${why}; ${todo}` });
        continue;
      }
      systems.set(sysSpec, system);
    }
    for (const c of parsed.cases) {
      if ("error" in entry.loaded) {
        run.results.push({ case: c, error: policyLoadMessage(entry.shown, entry.loaded.error) });
        continue;
      }
      const result = runExpectation(entry.loaded.policy, system, c.expectation);
      entry.coverage?.add(result.explanation);
      run.results.push({ case: c, result });
    }
  }

  const total = runs.reduce((n, r) => n + r.results.length, 0);
  const failed = runs.reduce((n, r) => n + r.results.filter((x) => !passedCase(x)).length, 0);
  const broken = runs.filter(fileUnusable).length;
  // (A file that cannot run counts once, as not usable, whatever its entries.)
  const malformed = runs.reduce((n, r) => n + (fileUnusable(r) ? 0 : r.problems.filter(isEntryProblem).length), 0);
  const covs = wantCoverage ? [...policies.values()].filter((p) => p.coverage).map((p) => ({ mounted: p.mounted, shown: p.shown, coverage: p.coverage!.result() })) : [];
  const nested = bothOnStdout && format === "json" ? coverageJson(covs, io.cwd) : undefined;
  const report = format === "junit" ? junit(runs) : format === "json" ? jsonReport(runs, total, failed, broken + malformed, nested) : textReport(runs, total, failed, broken, malformed);
  if (!writeOutput(io, "policy test", outFile, report)) return 2;
  if (wantCoverage && nested === undefined && !writeOutput(io, "policy test", coverageFile, coverageReport(covs, covFormat, io.cwd), "--coverage-output")) return 2;
  return failed || broken || malformed ? 1 : 0;
}

function indent(text: string, by: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => by + l)
    .join("\n");
}

/** Whether a test file cannot be run at all (a problem of the file itself, not of one entry). */
function fileUnusable(r: FileRun): boolean {
  return r.problems.some((p) => !isEntryProblem(p));
}

/** The path with its symbolic links resolved, or the path as it is when that fails (it does not exist: said later). */
function realOrSame(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

function textReport(runs: FileRun[], total: number, failed: number, broken: number, malformed: number): string {
  const out: string[] = [];
  for (const r of runs) {
    // Everything quoted from a test file or a policy is shown escaped and bounded (a call may hold any character).
    const file = oneLine(r.file);
    for (const p of r.problems) out.push(`${file}:${p.line}: error[${p.code}]: ${shownText(p.message, 500)}`);
    for (const x of r.results) {
      const call = shownText(expectationCall(x.case.expectation));
      for (const p of x.result?.problems ?? []) out.push(`FAIL ${file}:${x.case.line}: ${call}: ${shownText(p.message, 500)} [${p.code}]`);
      if (x.error !== undefined) {
        out.push(`FAIL ${file}:${x.case.line}: ${call}: ${shownText(x.error, 500)} [${POLICY_DOES_NOT_LOAD}]`);
      } else if (x.result!.failure !== undefined) {
        out.push(`FAIL ${file}:${x.case.line}: ${call}: ${shownText(x.result!.failure, 500)}`);
        out.push(indent(escapeControls(renderExplanation(x.result!.explanation)), "    "));
      }
    }
  }
  const files = runs.length;
  out.push(`${total - failed} passed, ${failed} failed${malformed ? `, ${malformed} malformed` : ""}${broken ? `, ${broken} test file${broken === 1 ? "" : "s"} not usable` : ""} (${total} test${total === 1 ? "" : "s"} in ${files} file${files === 1 ? "" : "s"})`);
  return out.join("\n") + "\n";
}

/** Did a test call pass (the expected decision, and every name known)? */
function passedCase(x: FileRun["results"][number]): boolean {
  return x.error === undefined && x.result?.failure === undefined && x.result?.problems === undefined;
}

function jsonReport(runs: FileRun[], total: number, failed: number, broken: number, coverage?: unknown): string {
  return (
    JSON.stringify({
      ok: failed === 0 && broken === 0,
      tests: total,
      passed: total - failed,
      failed,
      files: runs.map((r) => ({
        file: r.file,
        problems: r.problems,
        results: r.results.map((x) => ({
          line: x.case.line,
          name: x.case.name,
          call: expectationCall(x.case.expectation),
          expected: expectationText(x.case.expectation),
          ok: passedCase(x),
          ...(x.result?.problems ? { problems: x.result.problems } : {}),
          ...(x.error !== undefined ? { error: x.error } : {}),
          ...(x.result?.failure !== undefined ? { failure: x.result.failure } : {}),
          ...(x.result ? { decision: decisionToJson(x.result.explanation.decision), rule: x.result.explanation.decidingRule ? { file: x.result.explanation.decidingRule.origin.file, line: x.result.explanation.decidingRule.origin.line } : null } : {}),
        })),
      })),
      ...(coverage !== undefined ? { coverage } : {}),
    }) + "\n"
  );
}

function junit(runs: FileRun[]): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  // A file that cannot run is one error case; each malformed entry of a file that runs is one too.
  const extra = (r: FileRun) => (fileUnusable(r) ? 1 : r.problems.length);
  const total = runs.reduce((n, r) => n + r.results.length + extra(r), 0);
  const failures = runs.reduce((n, r) => n + r.results.filter((x) => x.error === undefined && !passedCase(x)).length, 0);
  const errors = runs.reduce((n, r) => n + r.results.filter((x) => x.error !== undefined).length + extra(r), 0);
  out.push(`<testsuites name="qkit policy test" tests="${total}" failures="${failures}" errors="${errors}">`);
  for (const r of runs) {
    const f = r.results.filter((x) => x.error === undefined && !passedCase(x)).length;
    const e = r.results.filter((x) => x.error !== undefined).length + extra(r);
    out.push(`  <testsuite name="${xml(r.file)}" tests="${r.results.length + extra(r)}" failures="${f}" errors="${e}">`);
    if (!fileUnusable(r))
      for (const p of r.problems) {
        out.push(`    <testcase name="${xml(`malformed test (line ${p.line})`)}" classname="${xml(r.file)}" file="${xml(r.file)}" line="${p.line}">`);
        out.push(`      <error message="${xml(p.message)}" type="${xml(p.code)}">${xml(`${r.file}:${p.line}: ${p.message}`)}</error>`);
        out.push("    </testcase>");
      }
    else if (r.problems.length) {
      out.push(`    <testcase name="${xml(r.file)} (test file)" classname="${xml(r.file)}" file="${xml(r.file)}" line="${r.problems[0]!.line}">`);
      out.push(`      <error message="${xml(r.problems[0]!.message)}" type="${xml(r.problems[0]!.code)}">${xml(r.problems.map((p) => `${r.file}:${p.line}: ${p.message}`).join("\n"))}</error>`);
      out.push("    </testcase>");
    }
    // Test names are unique within a file (CI services merge test cases of the same name): a name that
    // two entries share (two map-form tests of the same call) gets its line, `NAME (line N)`.
    const nameOf = (x: FileRun["results"][number]) => {
      const text = expectationCall(x.case.expectation) + " => " + expectationText(x.case.expectation);
      return x.case.name === text ? text : x.case.name;
    };
    const counts = new Map<string, number>();
    for (const x of r.results) counts.set(nameOf(x), (counts.get(nameOf(x)) ?? 0) + 1);
    for (const x of r.results) {
      const name = counts.get(nameOf(x))! > 1 ? `${nameOf(x)} (line ${x.case.line})` : nameOf(x);
      out.push(`    <testcase name="${xml(name)}" classname="${xml(r.file)}" file="${xml(r.file)}" line="${x.case.line}">`);
      if (x.error !== undefined) out.push(`      <error message="${xml(x.error)}" type="${POLICY_DOES_NOT_LOAD}"/>`);
      else if (x.result!.failure !== undefined) {
        const names = (x.result!.problems ?? []).map((p) => `${p.message} [${p.code}]\n`).join("");
        out.push(`      <failure message="${xml(x.result!.failure)}" type="wrong-decision">${xml(names + renderExplanation(x.result!.explanation))}</failure>`);
      } else if (x.result!.problems) {
        const p = x.result!.problems;
        out.push(`      <failure message="${xml(p[0]!.message)}" type="${p[0]!.code}">${xml(p.map((q) => `${q.message} [${q.code}]`).join("\n"))}</failure>`);
      }
      out.push("    </testcase>");
    }
    out.push("  </testsuite>");
  }
  out.push("</testsuites>");
  return out.join("\n") + "\n";
}

type Covered = { mounted: Mounted; shown: string; coverage: PolicyCoverage }[];

/** The coverage as JSON data (`--coverage-format json`, and `coverage` of the JSON results). */
function coverageJson(covs: Covered, cwd: string): { covered: number; total: number; policies: unknown[] } {
  const policies = covs.map((c) => ({
    policy_dir: c.shown,
    covered: c.coverage.covered,
    total: c.coverage.total,
    files: c.coverage.files.map((f) => ({
      file: f.file,
      path: shownPath(c.mounted, f.path, cwd),
      covered: f.covered,
      total: f.total,
      // One entry per rule line; a line loaded more than once (its file included twice) adds `copies`, each with its include chain.
      rules: f.rules.map((r) => ({
        line: r.rule.origin.line,
        action: r.rule.action,
        decided: r.decided,
        contributed: r.contributed,
        calls: r.calls,
        covered: r.decided + r.contributed > 0,
        ...(r.copies ? { copies: r.copies.map((c) => ({ via: c.rule.via.map((v) => `${v.file}:${v.line ?? "None"}`), decided: c.decided, contributed: c.contributed, calls: c.calls })) } : {}),
      })),
    })),
  }));
  const covered = covs.reduce((n, c) => n + c.coverage.covered, 0);
  const total = covs.reduce((n, c) => n + c.coverage.total, 0);
  return { covered, total, policies };
}

function coverageReport(covs: Covered, format: string, cwd: string): string {
  if (format === "lcov") return covs.map((c) => coverageToLcov(c.coverage, (p) => shownPath(c.mounted, p, cwd))).join("");
  if (format === "json") return JSON.stringify(coverageJson(covs, cwd)) + "\n";
  const out: string[] = ["coverage (rules that decided a test call, or added targets to the ask list of one):"];
  let covered = 0;
  let total = 0;
  for (const c of covs) {
    covered += c.coverage.covered;
    total += c.coverage.total;
    for (const f of c.coverage.files) {
      const p = oneLine(shownPath(c.mounted, f.path, cwd));
      out.push(`  ${p}: ${f.covered}/${f.total} rules (${percent(f.covered, f.total)})`);
      const missed = f.rules.filter((r) => !r.decided && !r.contributed).map((r) => r.rule.origin.line ?? "None");
      if (missed.length) out.push(`    not covered: line${missed.length === 1 ? "" : "s"} ${missed.join(", ")}`);
    }
  }
  out.push(`  total: ${covered}/${total} rules (${percent(covered, total)})`);
  return out.join("\n") + "\n";
}

/** `n` of `d` to one decimal, rounded, but never 100% while a rule is missed nor 0% once one is covered. */
function percent(n: number, d: number): string {
  if (d === 0) return "100%";
  let tenths = Math.round((n * 1000) / d);
  if (n < d) tenths = Math.min(tenths, 999);
  if (n > 0) tenths = Math.max(tenths, 1);
  return `${tenths / 10}%`;
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
                      before and after are decisions as \`qkit policy eval --json\` prints them;
                      each line is a concrete request (\`qkit policy eval --requests\` replays it):
                      the \`*\` representatives are the service \`qkit.OtherService\` (a name no
                      rule matches but \`*\`) and the argument \`+\` (the empty argument, or
                      \`+qkit-other-argument\` where a rule names \`+\`)
${OUTPUT_USAGE}

${CONNECTION_USAGE}
exit status: 0 no decision changes, 1 some do, 2 errors (usage, a policy that does not load,
a system model with no qubes ([empty-system]) or a malformed qube ([bad-system-model]),
the live system or policy cannot be read ([connect-failed] and the like))
`;

interface PolicyInput {
  label: string;
  fs: PolicyFileSystem;
  /** A directory: where the files are. */
  dir?: string;
}

/** A policy given as a directory, `live`, or REV:PATH of a git revision (also used by `qkit flow`). */
export async function policyInput(spec: string, a: ParsedArgs, io: CliIO): Promise<PolicyInput> {
  if (spec === "live") {
    const { policy, conn } = await liveClients(a, io);
    return { label: "live", fs: await live(conn, () => policy.fileSystem()) };
  }
  const abs = path.resolve(io.cwd, spec);
  if (existsSync(abs)) return { label: spec, ...mount(spec, io.cwd), dir: abs };
  const colon = spec.indexOf(":");
  if (colon <= 0) throw new UsageError(`policy \`${spec}\` is not a directory, \`live\` or REV:PATH`);
  const rev = spec.slice(0, colon);
  // Trailing slashes go (`HEAD:policy.d/`), but `./` and `../` stay: git reads them as relative to the current directory.
  const stripped = spec.slice(colon + 1).replace(/\/+$/, "");
  const dir = stripped === "." || stripped === ".." || /\/\.\.?$/.test(stripped) ? stripped + "/" : stripped;
  const git = (args: string[]) => execFileSync("git", args, { cwd: io.cwd, maxBuffer: 1 << 28, stdio: ["ignore", "pipe", "pipe"] });
  // Git resolves REV:PATH itself, as `git show` does: PATH from the top of the repository,
  // `./PATH` and `../PATH` from the current directory (and refused outside the repository).
  const object = `${rev}:${dir}`;
  const entries: { id: string; name: string }[] = [];
  try {
    const type = git(["cat-file", "-t", object]).toString().trim();
    if (type !== "tree") throw Object.assign(new Error(), { stderr: `\`${dir}\` is a ${type === "blob" ? "file" : type}, not a directory, in git revision \`${rev}\`` });
    for (const line of git(["ls-tree", "-r", "-z", "--full-tree", object]).toString().split("\0")) {
      // `MODE TYPE ID\tNAME`; only files (blobs): links and submodules are not policy files.
      const m = /^\d+ blob ([0-9a-f]+)\t(.*)$/s.exec(line);
      if (m) entries.push({ id: m[1]!, name: m[2]! });
    }
  } catch (e) {
    const msg = e && typeof e === "object" && "stderr" in e ? String((e as { stderr: unknown }).stderr).trim().split("\n")[0] : String(e);
    const hint = dir.startsWith("./") || dir.startsWith("../") ? "" : " (REV:PATH is relative to the top of the repository, as in git; write REV:./PATH for a path relative to the current directory)";
    throw new UsageError(`cannot read \`${spec}\` from git: ${msg || "not a directory in that revision"}${hint}`);
  }
  if (entries.length === 0) throw new UsageError(`\`${dir || "."}\` has no files in git revision \`${rev}\``);
  const files: Record<string, string> = {};
  for (const { id, name } of entries) files[POLICY_DIR + "/" + name] = git(["cat-file", "blob", id]).toString("utf8");
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
      throw new InputFailure(policyLoadMessage(input.label, r.error), POLICY_DOES_NOT_LOAD);
    }
    loaded.push(r.policy);
  }
  const diff = diffPolicies(loaded[0]!, loaded[1]!, system);
  const json = a.flags.has("json");
  if (a.flags.has("expand")) {
    // Written as it goes, waiting for a slow reader (a pipe) rather than queueing the answer in memory.
    const out = new ChunkedWriter(io.stdout);
    for (const c of expandedChanges(diff, loaded[0]!, loaded[1]!, system)) {
      // The request as decided (never the `*` of the services or arguments no rule names): replayable with `qkit policy eval --requests`.
      if (json) out.write(JSON.stringify({ service: c.request.service, argument: c.request.argument, source: c.source, target: c.target, before: decisionToJson(c.before), after: decisionToJson(c.after) }) + "\n");
      else out.write(oneLine(`${c.call} ${c.source} -> ${c.target}: ${describeDecision(c.before)}  →  ${describeDecision(c.after)}`) + "\n");
      if (out.blocked) await out.drain();
    }
    out.end();
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
  for (const g of groups) io.stdout.write(`${g.kind === "grant" ? "grant " : g.kind === "revoke" ? "revoke" : "change"}  ${oneLine(g.statement)}\n`);
  const n = diff.requests;
  io.stdout.write(`${n} request${n === 1 ? "" : "s"} change: ${count("grant")} granted, ${count("change")} changed, ${count("revoke")} revoked\n`);
  return 1;
}

// ---------------------------------------------------------------------------
// qkit policy who-can / what-can / table
// ---------------------------------------------------------------------------

const QUERY_OPTIONS = { "policy-dir": "value", system: "value", json: true, all: true, ...CONNECTION_OPTIONS } as const;

const QUERY_COMMON = `  --policy-dir DIR      the policy.d directory (or \`live\`, or REV:PATH of a git revision)
  --system FILE|live    the system model (internal.GetSystemInfo JSON, or the live system)`;

const WHO_USAGE = `usage: qkit policy who-can SERVICE[+ARG] [--target T] --policy-dir DIR --system SYSTEM.json [--all] [--json] [--output FILE] [connection options]

Every source qube that may call SERVICE[+ARG] on T (default: on every target of
the system: qube names, @default, @adminvm, @dispvm, @dispvm:X), with the
decision, the deciding rule, and for ask the offered targets. Decided exactly
as \`qkit policy eval\` decides each call. SERVICE without +ARG is the call
with the empty argument. A SERVICE no rule names, a letter or two from one
that a rule names, is warned about ([unknown-service]): only \`*\` rules decide it.

options:
${QUERY_COMMON}
  --target T            only this target
  --all                 list denied calls too
  --json                one JSON object a line: {"service","argument","source","target","decision"}
                        (decision as \`qkit policy eval --json\` prints it)
${OUTPUT_USAGE}

${CONNECTION_USAGE}
exit status: 0, 2 usage error, a policy that does not load, a system model with no qubes
or a malformed one, or the live system or policy cannot be read ([connect-failed])
`;

const WHAT_USAGE = `usage: qkit policy what-can SOURCE --policy-dir DIR --system SYSTEM.json [--all] [--json] [--output FILE] [connection options]

Everything SOURCE may call: every service and argument the rules name (and \`*\`
for all others) on every target, with the decision, the deciding rule, and for
ask the offered targets.

options:
${QUERY_COMMON}
  --all                 list denied calls too
  --json                one JSON object a line: {"service","argument","source","target","decision"},
                        a concrete request that \`qkit policy eval --requests\` replays (\`*\` is
                        decided as the service \`qkit.OtherService\` and the argument \`+\`, or
                        \`+qkit-other-argument\` where a rule names \`+\`)
${OUTPUT_USAGE}

${CONNECTION_USAGE}
exit status: 0, 2 usage error, a policy that does not load, a system model with no qubes
or a malformed one, or the live system or policy cannot be read ([connect-failed])
`;

const TABLE_USAGE = `usage: qkit policy table SERVICE[+ARG] --policy-dir DIR --system SYSTEM.json [--format text|csv|markdown|html|json] [--json]
                         [--targets A,B,...] [--sources A,B,...] [--output FILE] [connection options]

The decision table of one call: a row per source qube, a column per target
(qube names, @default, @adminvm, @dispvm, @dispvm:X). Cells: allow, allow→X
(the call goes to X), ask, ask:X (X preselected), deny (a deny rule or a
refusal by the engine). A SERVICE no rule names, a letter or two from one that
a rule names, is warned about ([unknown-service]): only \`*\` rules decide it.

options:
${QUERY_COMMON}
  --format F            text (default), csv, markdown, html (a self-contained page,
                        qubes coloured by their label), json (compact, "version": 2: each
                        distinct decision once, as \`qkit policy eval --json\` prints it but
                        with "offer" for "targets_for_ask" and no "intended_target" where it
                        is the cell's column; cells[source][target] is an index into
                        "decisions"), or json-cells (version 1: every cell's whole decision,
                        very large on a large system)
  --json                the same as --format json
  --targets A,B,...     only these columns
  --sources A,B,...     only these rows
  --output FILE         write there instead of standard output

${CONNECTION_USAGE}
exit status: 0, 2 usage error, a policy that does not load, a system model with no qubes
or a malformed one, the live system or policy cannot be read ([connect-failed]),
or --output cannot be written ([cannot-write])
`;

async function loadQueryInputs(a: ParsedArgs, io: CliIO): Promise<{ policy: CompiledPolicy; system: SystemInfo }> {
  const dir = a.values.get("policy-dir");
  if (dir === undefined) throw new UsageError("`--policy-dir DIR` is required");
  const sysSpec = a.values.get("system");
  if (sysSpec === undefined) throw new UsageError("`--system FILE|live` is required: queries are over the qubes of a system");
  const system = sysSpec === "live" ? await liveSystem(a, io) : readSystemFile(sysSpec, io.cwd);
  const input = await policyInput(dir, a, io);
  const r = loadPolicy(input.fs);
  if (!r.ok) throw new InputFailure(policyLoadMessage(input.label, r.error), POLICY_DOES_NOT_LOAD);
  return { policy: r.policy, system };
}

function splitCall(text: string): { service: string; argument: string } {
  const plus = text.indexOf("+");
  if (plus === 0 || text === "") throw new UsageError(`expected SERVICE[+ARG], got \`${text}\``);
  const call = plus < 0 ? { service: text, argument: "+" } : { service: text.slice(0, plus), argument: text.slice(plus) };
  const problem = queryCallProblem(call.service, call.argument);
  if (problem !== undefined) throw new UsageError(problem);
  return call;
}

/** Warns (standard error, the answer unchanged) about a service no rule names that is close to one a rule names: `policy test`'s [unknown-service]. */
function warnServiceName(io: CliIO, command: string, policy: CompiledPolicy, service: string): void {
  const problem = serviceNameProblem(policy, service);
  if (problem !== undefined) io.stderr.write(`qkit policy ${command}: warning: ${oneLine(problem)} [unknown-service]\n`);
}

/** Refuses a source or target that is not one of the system model (as `what-can` refuses its source). */
function checkName(policy: CompiledPolicy, system: SystemInfo, name: string, what: "source" | "target", option?: string): void {
  const problem = queryNameProblem(policy, system, name, what);
  if (problem !== undefined) throw new UsageError(option ? `${option}: ${problem}` : problem);
}

/** A row's cells as printed (each escaped to one line): source or call, target, rule, decision. */
function rowCells(r: QueryRow, withService: boolean, texts: TextCache): string[] {
  const d = r.decision;
  const rule = d.ok ? `${d.rule.file}:${d.rule.line ?? "None"}` : d.rule ? `${d.rule.file}:${d.rule.line ?? "None"}` : "-";
  let what: string;
  // The daemon does not run what the policy allows (a call from a qube to itself, a crash there): denied, and why.
  const refused = execRefusal(d);
  if (!d.ok) what = `deny (${d.error === "EngineError" ? "engine error" : d.code})`;
  else if (refused) what = refused.error === "EngineError" ? `deny (engine error running it: ${refused.message})` : `deny (the daemon refuses: ${refused.message})`;
  else if (d.action === "allow") what = d.target === r.target ? "allow" : `allow → ${d.target}`;
  // An offer list is one array shared by many rows (a 2,000-qube list is 20 kB of text): joined and escaped once.
  else if (d.action === "ask") what = `ask${d.defaultTarget ? ` (default ${oneLine(d.defaultTarget)})` : ""}: ${texts.get(d.targetsForAsk, () => oneLine(d.targetsForAsk.join(", ")))}`;
  else what = "deny";
  const call = r.service === "*" ? "*" : r.service + (r.argument === "*" ? "+*" : r.argument === "+" ? "" : r.argument);
  return [oneLine(withService ? call : r.source), oneLine(r.target), oneLine(rule), d.ok && d.action === "ask" ? what : oneLine(what)];
}

/** Texts made from shared objects (offer lists, decisions), kept while they fit in a budget of characters. */
class TextCache {
  private map = new Map<unknown, string>();
  private chars = 0;
  constructor(private readonly budget = 1 << 22) {}
  get(key: unknown, make: () => string): string {
    let t = this.map.get(key);
    if (t === undefined) {
      t = make();
      if (this.chars + t.length > this.budget) {
        this.map.clear();
        this.chars = 0;
      }
      this.map.set(key, t);
      this.chars += t.length;
    }
    return t;
  }
}

/**
 * who-can and what-can: rows as they are decided, written as they go (never
 * the whole answer in memory). The text form reads the rows twice: once for
 * the counts of its first line and the widths of its columns, once to print.
 */
async function printRows(rows: Iterable<QueryRow>, a: ParsedArgs, io: CliIO, withService: boolean, header: string): Promise<number> {
  const all = a.flags.has("all");
  const out = new ChunkedWriter(io.stdout);
  if (a.flags.has("json")) {
    const texts = new TextCache();
    for (const r of rows) {
      if (!all && isDenied(r.decision)) continue;
      const rq = r.request;
      // As JSON.stringify({service, argument, source, target, decision}) writes it, the decision's text made once per shared decision.
      out.write(
        `{"service":${JSON.stringify(rq.service)},"argument":${JSON.stringify(rq.argument)},"source":${JSON.stringify(rq.source)},"target":${JSON.stringify(rq.target)},"decision":${texts.get(r.decision, () => JSON.stringify(decisionToJson(r.decision)))}}\n`,
      );
      if (out.blocked) await out.drain();
    }
    out.end();
    return 0;
  }
  const head = withService ? ["CALL", "TARGET", "RULE", "DECISION"] : ["SOURCE", "TARGET", "RULE", "DECISION"];
  const widths = [head[0]!.length, head[1]!.length, head[2]!.length];
  let total = 0;
  let allowed = 0;
  let asked = 0;
  const texts = new TextCache();
  for (const r of rows) {
    total++;
    const d = r.decision;
    if (isDenied(d)) {
      if (!all) continue;
    } else if (d.ok && d.action === "allow") allowed++;
    else if (d.ok && d.action === "ask") asked++;
    const c = rowCells(r, withService, texts);
    for (let i = 0; i < 3; i++) if (c[i]!.length > widths[i]!) widths[i] = c[i]!.length;
  }
  const line = (c: string[]) => `${c[0]!.padEnd(widths[0]!)}  ${c[1]!.padEnd(widths[1]!)}  ${c[2]!.padEnd(widths[2]!)}  ${c[3]!}`.trimEnd() + "\n";
  out.write(`${oneLine(header)}: ${allowed} allowed, ${asked} asked, ${total - allowed - asked} denied${all ? "" : " (not listed; --all lists them)"}\n`);
  out.write(line(head));
  for (const r of rows) {
    if (!all && isDenied(r.decision)) continue;
    out.write(line(rowCells(r, withService, texts)));
    if (out.blocked) await out.drain();
  }
  out.end();
  return 0;
}

async function runWhoCan(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, { ...QUERY_OPTIONS, target: "value" });
  if (a.positionals.length !== 1) throw new UsageError("expected one SERVICE[+ARG]");
  const call = splitCall(a.positionals[0]!);
  const { policy, system } = await loadQueryInputs(a, io);
  warnServiceName(io, "who-can", policy, call.service);
  const target = a.values.get("target");
  if (target !== undefined) checkName(policy, system, target, "target", "--target");
  const rows = whoCanRows(policy, system, { ...call, ...(target !== undefined ? { target } : {}) });
  return printRows(rows, a, io, false, `${a.positionals[0]} ${target !== undefined ? `to ${target}` : "to every target"}`);
}

async function runWhatCan(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, QUERY_OPTIONS);
  if (a.positionals.length !== 1) throw new UsageError("expected one SOURCE qube");
  const { policy, system } = await loadQueryInputs(a, io);
  const source = a.positionals[0]!;
  checkName(policy, system, source, "source");
  return printRows(whatCanRows(policy, system, source), a, io, true, `calls from ${source}`);
}

function csvCell(cell: string): string {
  const s = oneLine(cell);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * A Markdown table cell, shown as the text it is: `&`, `<`, `>` as HTML
 * entities (renderers pass raw HTML through), and every character Markdown
 * reads as markup (`\\`, `|`, `` ` ``, `*`, `_`, `[`, `]`, `~`) escaped
 * with a backslash: a name is never emphasis, code or a link.
 */
function mdCell(s: string): string {
  return oneLine(s).replace(/[&<>\\|`*_[\]~]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : "\\" + c));
}

/** How the page colours qubes: the standard label colours and the icon → label reader (shared with what-if). */
interface LabelTable {
  colours: Readonly<Record<string, string>>;
  labelOfIcon: (icon: unknown) => string | undefined;
}

/**
 * A qube's label colour as CSS: the `label` of the system model as a colour
 * (`0xcc0000`, as GetSystemInfo gives it) or a label name (`red`, one of the
 * eight standard labels), else the label of its `icon` (`appvm-red`); null
 * when none of these says it.
 */
function labelColour(system: SystemInfo, qube: string, labels: LabelTable): string | null {
  const name = qube.startsWith("@dispvm:") ? qube.slice(8) : qube;
  const d = system.domains.get(name) as { label?: unknown; icon?: unknown } | undefined;
  if (!d || typeof d !== "object") return null;
  const hex = (v: string | undefined) => (v !== undefined && /^0x[0-9a-fA-F]{6}$/.test(v) ? "#" + v.slice(2).toLowerCase() : null);
  const l = d.label;
  if (typeof l === "string") {
    const c = hex(l) ?? hex(labels.colours[l]);
    if (c) return c;
  }
  const fromIcon = labels.labelOfIcon(d.icon);
  return fromIcon !== undefined ? hex(labels.colours[fromIcon]) : null;
}

/** Is this a qube of the system (a column or row that should carry a colour)? */
function isQube(system: SystemInfo, q: string): boolean {
  const name = q.startsWith("@dispvm:") ? q.slice(8) : q;
  return !name.startsWith("@") && system.domains.has(name);
}

/** Offered targets a tooltip names; longer offer lists are listed once below the table. */
const TIP_OFFERS = 12;

async function htmlTable(out: ChunkedWriter, t: DecisionGrid, system: SystemInfo, title: string, labels: LabelTable): Promise<void> {
  const e = (s: string) => xml(s);
  const unknown = new Set<string>();
  const qubeCell = (tag: "th", q: string, scope: string) => {
    const c = labelColour(system, q, labels);
    const name = q.startsWith("@dispvm:") ? q.slice(8) : q;
    if (!c && isQube(system, q)) unknown.add(name);
    const swatch = c ? `<span class="label" style="background:${c}"></span>` : isQube(system, q) ? '<span class="label unknown" title="label colour unknown"></span>' : "";
    return `<${tag} scope="${scope}"${scope === "col" ? ' class="col"' : ""}>${swatch}<span>${e(q)}</span></${tag}>`;
  };
  // Each distinct decision's class and tooltip once (a long offer list by its number in the list below the table).
  const listed = new Set<number>();
  const attrs = new Map<number, string>();
  const attrsOf = (k: number): string => {
    let a = attrs.get(k);
    if (a !== undefined) return a;
    const d = t.decisions[k]!;
    const cls = isDenied(d) ? "deny" : d.ok ? d.action : "deny";
    const rule = d.ok ? `${d.rule.file}:${d.rule.line ?? "None"}` : d.message;
    let tip = rule;
    if (d.ok && d.action === "ask") {
      const offers = d.targetsForAsk;
      const o = t.offerOf[k]!;
      if (offers.length > TIP_OFFERS) listed.add(o);
      tip = `${rule}; offers ${offers.length > TIP_OFFERS ? `${offers.length} targets (list ${o + 1} below): ${offers.slice(0, TIP_OFFERS).join(", ")}, …` : offers.join(", ")}`;
    }
    a = `class="${cls}" title="${e(tip)}"`;
    attrs.set(k, a);
    return a;
  };
  const head = t.targets.map((q) => qubeCell("th", q, "col")).join("");
  out.write(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${e(title)}</title>
<style>
body { font: 13px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 6px; white-space: nowrap; }
th { background: #f6f6f6; text-align: left; font-weight: 600; }
th.col { writing-mode: vertical-rl; transform: rotate(180deg); vertical-align: bottom; }
.label { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px; margin: 0 4px; border: 1px solid #0003; }
.label.unknown { background: #fff; border: 1px dashed #888; }
td.allow { background: #d6f5d6; }
td.ask { background: #fff1c2; }
td.deny { background: #f2f2f2; color: #888; }
caption { caption-side: top; text-align: left; font-size: 15px; font-weight: 600; padding-bottom: 0.5em; }
</style>
</head>
<body>
<table>
<caption>${e(title)}</caption>
<thead><tr><th scope="col">source \\ target</th>${head}</tr></thead>
<tbody>
`);
  // A row at a time: the page of a 2,000-qube system is hundreds of megabytes.
  for (let i = 0; i < t.sources.length; i++) {
    const row = t.cells[i]!;
    let cells = "";
    for (let j = 0; j < t.targets.length; j++) cells += `<td ${attrsOf(row[j]!)}>${e(cellText(t.decisions[row[j]!]!, t.targets[j]!))}</td>`;
    out.write(`${i > 0 ? "\n" : ""}<tr>${qubeCell("th", t.sources[i]!, "row")}${cells}</tr>`);
    if (out.blocked) await out.drain();
  }
  const unknownNote = unknown.size
    ? `\n<p class="unknown-note">Label colour unknown (the system model gives no label colour, standard label name or icon) for: ${[...unknown].sort().map(e).join(", ")}; they are marked with an empty box.</p>`
    : "";
  out.write(`
</tbody>
</table>
<p>allow: the call goes to the target (allow→X: to X); ask: the user chooses (ask:X: X preselected); deny: refused. Hover a cell for the deciding rule.</p>${unknownNote}`);
  const offerLists = [...listed].sort((x, y) => x - y);
  if (offerLists.length) {
    out.write(`\n<h2>Offer lists</h2>\n<ol class="offers">\n`);
    for (let i = 0; i < offerLists.length; i++) {
      const o = offerLists[i]!;
      out.write(`${i > 0 ? "\n" : ""}<li value="${o + 1}">${t.offers[o]!.map(e).join(", ")}</li>`);
      if (out.blocked) await out.drain();
    }
    out.write("\n</ol>");
  }
  out.write(`
</body>
</html>
`);
}

/**
 * `--format json` (version 2): each distinct decision once, as `qkit policy
 * eval --json` prints it but with `offer` (an index into `offers`) for
 * `targets_for_ask`, and without `intended_target` where that is the cell's
 * column; `cells[i][j]` is an index into `decisions`.
 */
async function compactTableJson(out: ChunkedWriter, t: DecisionGrid): Promise<void> {
  const texts: string[] = [];
  const ids = new Map<string, number>();
  // Per grid decision: its entry when the intended target is its column (odd) or not (even).
  const memo = new Map<number, number>();
  const idOf = (k: number, j: number): number => {
    const d = t.decisions[k]!;
    const own = t.relative[k] === true || d.intendedTarget === t.targets[j]!;
    const mk = k * 2 + (own ? 1 : 0);
    let id = memo.get(mk);
    if (id === undefined) {
      const json = decisionToJson(d);
      if (own) delete json["intended_target"];
      if ("targets_for_ask" in json) {
        delete json["targets_for_ask"];
        json["offer"] = t.offerOf[k];
      }
      const text = JSON.stringify(json);
      id = ids.get(text);
      if (id === undefined) {
        ids.set(text, (id = texts.length));
        texts.push(text);
      }
      memo.set(mk, id);
    }
    return id;
  };
  // The decisions come before the cells: a first pass numbers them in the order the cells meet them, the second writes the cells.
  for (const row of t.cells) for (let j = 0; j < row.length; j++) idOf(row[j]!, j);
  const head = JSON.stringify({ version: 2, service: t.service, argument: t.argument, sources: t.sources, targets: t.targets, offers: t.offers }).slice(0, -1);
  out.write(`${head},"decisions":[`);
  texts.forEach((x, i) => out.write(i > 0 ? "," + x : x));
  out.write(`],"cells":[`);
  for (let i = 0; i < t.cells.length; i++) {
    const row = t.cells[i]!;
    const ids = new Array<number>(row.length);
    for (let j = 0; j < row.length; j++) ids[j] = idOf(row[j]!, j);
    out.write(`${i > 0 ? "," : ""}[${ids.join(",")}]`);
    if (out.blocked) await out.drain();
  }
  out.write("]}\n");
}

/** `--format json-cells` (version 1): every cell's whole decision, written a row at a time (each distinct decision encoded once per column at most, while they fit in memory). */
async function expandedTableJson(out: ChunkedWriter, t: DecisionGrid): Promise<void> {
  const texts = new TextCache();
  const head = JSON.stringify({ service: t.service, argument: t.argument, sources: t.sources, targets: t.targets }).slice(0, -1);
  out.write(`${head},"cells":[`);
  for (let i = 0; i < t.cells.length; i++) {
    const row = t.cells[i]!;
    out.write(i > 0 ? ",[" : "[");
    for (let j = 0; j < row.length; j++) {
      const k = row[j]!;
      const mk = t.relative[k] ? t.decisions.length + k * row.length + j : k;
      out.write((j > 0 ? "," : "") + texts.get(mk, () => JSON.stringify(decisionToJson(gridDecision(t, i, j)))));
      if (out.blocked) await out.drain();
    }
    out.write("]");
  }
  out.write("]}\n");
}

async function runTable(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, { ...QUERY_OPTIONS, format: "value", targets: "value", sources: "value", output: "value" });
  if (a.positionals.length !== 1) throw new UsageError("expected one SERVICE[+ARG]");
  const format = formatOption(a, ["text", "csv", "markdown", "html", "json", "json-cells"]);
  if (a.flags.has("all")) throw new UsageError("`--all` is for who-can and what-can: the table always shows every decision, denials included");
  const call = splitCall(a.positionals[0]!);
  const { policy, system } = await loadQueryInputs(a, io);
  warnServiceName(io, "table", policy, call.service);
  const list = (k: string) => {
    const v = a.values.get(k);
    if (v === undefined) return undefined;
    const names = v.split(",").filter(Boolean);
    if (names.length === 0) throw new UsageError(`--${k} names no qube (got \`${v}\`): give a comma-separated list such as \`work,vault\`, or leave --${k} out for every ${k === "sources" ? "source" : "target"}`);
    return names;
  };
  const targets = list("targets");
  const sources = list("sources");
  for (const s of sources ?? []) checkName(policy, system, s, "source", "--sources");
  for (const t of targets ?? []) checkName(policy, system, t, "target", "--targets");
  const space = requestSpace([policy], system);
  const t = decisionGrid(policy, call.service, call.argument, system, { sources: sources ?? space.qubes, targets: targets ?? space.targets });
  // Written as it is made, to standard output or --output FILE: a 2,000-qube table is never one string.
  const file = outputFile(a, "output");
  const sink = file !== undefined ? fileSink(io, "policy table", file) : undefined;
  const out = new ChunkedWriter(sink ?? io.stdout);
  const head = ["source \\ target", ...t.targets];
  const cell = (i: number, j: number) => cellText(t.decisions[t.cells[i]![j]!]!, t.targets[j]!);
  const rows = async (line: (cells: string[]) => string) => {
    for (let i = 0; i < t.sources.length; i++) {
      const r = new Array<string>(t.targets.length + 1);
      r[0] = t.sources[i]!;
      for (let j = 0; j < t.targets.length; j++) r[j + 1] = cell(i, j);
      out.write(line(r));
      if (out.blocked) await out.drain();
    }
  };
  if (format === "csv") {
    const line = (r: string[]) => r.map(csvCell).join(",") + "\r\n";
    out.write(line(head));
    await rows(line);
  } else if (format === "markdown") {
    const line = (r: string[]) => `| ${r.map(mdCell).join(" | ")} |\n`;
    out.write(line(head));
    out.write(`|${head.map(() => " --- ").join("|")}|\n`);
    await rows(line);
  } else if (format === "html") {
    const { STANDARD_LABEL_COLOURS, labelOfIcon } = await import("../apply/future.js");
    await htmlTable(out, t, system, `${a.positionals[0]}: decisions by source and target`, { colours: STANDARD_LABEL_COLOURS, labelOfIcon });
  } else if (format === "json") await compactTableJson(out, t);
  else if (format === "json-cells") await expandedTableJson(out, t);
  else {
    // Columns as wide as their widest cell (escaped to one line): measured in a first pass over the grid.
    // (The header's last name sets no width: it is the end of its line, as a data row's last cell is not.)
    const widths = head.map((h, i) => (i === head.length - 1 ? 0 : oneLine(h).length));
    for (let i = 0; i < t.sources.length; i++) {
      widths[0] = Math.max(widths[0]!, oneLine(t.sources[i]!).length);
      for (let j = 0; j < t.targets.length; j++) widths[j + 1] = Math.max(widths[j + 1]!, oneLine(cell(i, j)).length);
    }
    const line = (r: string[]) => (r.map((c, i) => oneLine(c).padEnd(widths[i]!)).join("  ") + "  ").trimEnd() + "\n";
    out.write(head.map((c, i) => (i === head.length - 1 ? oneLine(c) : oneLine(c).padEnd(widths[i]!))).join("  ").trimEnd() + "\n");
    await rows(line);
  }
  out.end();
  return sink === undefined || sink.finish() ? 0 : 2;
}

export const commands: Command[] = [
  { path: ["policy", "who-can"], summary: "which sources may call a service (on a target), and how", usage: WHO_USAGE, run: withOutputOption("policy who-can", (args, io) => audited("who-can", io, () => runWhoCan(args, io))) },
  { path: ["policy", "what-can"], summary: "every call a source qube may make, and how it is decided", usage: WHAT_USAGE, run: withOutputOption("policy what-can", (args, io) => audited("what-can", io, () => runWhatCan(args, io))) },
  { path: ["policy", "table"], summary: "the decision table of a service: sources × targets (text, csv, markdown, html)", usage: TABLE_USAGE, run: (args, io) => audited("table", io, () => runTable(args, io)) },
  { path: ["policy", "test"], summary: "run policy test files (expected decisions), with coverage", usage: TEST_USAGE, run: (args, io) => audited("test", io, () => runTest(args, io)) },
  { path: ["policy", "diff"], summary: "every request whose decision differs between two policies", usage: DIFF_USAGE, run: withOutputOption("policy diff", (args, io) => audited("diff", io, () => runDiff(args, io))) },
];
