/**
 * `qkit template plan|apply|drift`: thin adapters over `sdk/src/apply/`.
 *
 * The stack file is a `*.qubes.yaml` (checked by the language core's
 * `checkStack`, with the live system as its model of existing qubes) or a
 * stack model as JSON (what the SDK builder produces, `"format": 1`).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline";
import * as language from "@qubes-kit/language";
import type { StackModel } from "@qubes-kit/language";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { CONNECTION_BOOLEAN_FLAGS, CONNECTION_USAGE, CONNECTION_VALUE_FLAGS, connect, parseArgs, type ConnectionInfo, type ParsedArgs } from "./connect.js";
import { describeFailure } from "./failure.js";
import { QubesDaemonAccessError, QubesTransportError } from "../errors.js";
import { columnAt, stackReader, unreadable } from "./template-tools.js";
import { inputsOf, readBounded } from "./input-files.js";
import { osMessage, placeShown } from "./text.js";
import { shadowedStackRules } from "../apply/shadowed.js";
import {
  adminPolicyTarget,
  applyPlan,
  checkStackModel,
  computePlan,
  defaultJournalPath,
  dirPolicyTarget,
  driftStack,
  fileJournal,
  checkJournalFile,
  JournalRefused,
  planWhatIf,
  changesTags,
  movesQube,
  effectOptions,
  policyDigests,
  readWhatIfInputs,
  writesPolicy,
  planFocus,
  planScope,
  readDeep,
  readFeatures,
  readDeviceClassesFor,
  readLight,
  rehearse,
  renderSideEffects,
  undoneWarnings,
  lineDiff,
  oneLine,
  renderPlan,
  type LiveSystem,
  type Plan,
  type PlanError,
  type PlanStep,
  type SideEffect,
  type StaleChange,
  type ApplyFailure,
  type StepProgress,
  describeChanges,
  fingerprintView,
  scopeOfPlan,
  type PolicyTarget,
  type StackConnection,
} from "../apply/index.js";

const COMMON = `  --policy-dir DIR   read and write the policy in DIR instead of through the
                     policy admin api (dom0 as root, and tests)
  --adopt            take over existing qubes (and same-named policy files)
                     that no stack owns yet
  --take-over        take over qubes and global properties that another
                     stack owns (that stack then refuses to plan them)
  --allow-replace    replace a qube whose class changes: remove it, then
                     create it as declared (its volumes and data are lost;
                     never a protected qube)
  --prune            remove qubes this stack owns that the file no longer declares
  --ignore-expect    go on when the stack's expect: entries fail after apply
                     (they are still checked and listed)
  --restart=never|if-needed
                     stop running qubes for changes that need a halt
                     (default never: those changes are deferred and listed)`;

const PLAN_USAGE = `usage: qkit template plan FILE [--json] [--detailed-exitcode] [--out PLAN] [options]

Reads the live system, compares it with the stack in FILE (a *.qubes.yaml
file, or a stack model as JSON), and prints the steps that would make the
system match: + create, ~ change, - destroy, with before → after and when
each change takes effect. Nothing is changed.

options:
  --json               print the plan as JSON
  --detailed-exitcode  exit 0 no changes, 2 changes, 1 error
  --out PLAN           save the plan (with a fingerprint of what was read)
                       for \`qkit template apply PLAN\`
${COMMON}

exit status: 0 the plan can be applied (with --detailed-exitcode: 0 no
changes, 2 changes), 1 the stack has errors, the plan has errors, an
expect: entry fails on the planned machine, or the rehearsal refuses a
step; 2 a usage error or a FILE that cannot be read (the message says
which).

${CONNECTION_USAGE}
`;

const APPLY_USAGE = `usage: qkit template apply FILE|PLAN [--yes] [--journal PATH] [--json | --progress=ndjson] [options]

Plans FILE (or takes a plan saved by \`qkit template plan --out\`, refusing it
when the system changed since, with what changed), rehearses the steps on a
simulated copy of the system, asks for confirmation on a terminal, then
applies the steps one by one. Every call and reply goes to a journal
(ndjson). The first failure stops the apply; running it again resumes from
the live state.

options:
  --yes              do not ask (required without a terminal, and with
                     --json or --progress=ndjson, which do not show the plan)
  --journal PATH     where the journal goes (default:
                     $XDG_STATE_HOME/qkit/apply-TIME.ndjson or
                     ~/.local/state/qkit/apply-TIME.ndjson)
  --json             print one JSON document at the end instead of the plan
                     and the progress lines, whatever stopped the apply:
                     {"qkitApply": 1, "ok", "matches", "stack", "error":
                     {code, message} | null, "failed": the step with the
                     call and qubesd's exception and message | null,
                     "resume": the command to resume | null, "journal",
                     "steps": [{index, id, kind, target, key, status:
                     ok|failed|deferred|skipped, ms, error?}], ...}
  --progress=ndjson  as --json, and before it one line per step as it ends
                     ({"qkitApplyStep": 1, index, total, id, ..., status, ms})
${COMMON}

Ctrl-C (SIGINT) or SIGTERM stops the apply after the step in flight; the
journal records it, and running apply again resumes from the live state.
So does standard output closing (\`| head\`: SIGPIPE, exit 141) or failing
(a full disk: exit 2), said on standard error.
Before the first step (reading, planning, the rehearsal, the question) it
stops at once: nothing was changed.

exit status: 0 everything applied, 1 error (also: no terminal to ask on
and no --yes, [confirmation-required]; nothing was changed), 2 applied what could be but
the system does not match the stack: some steps are deferred (listed; stop
the qubes named, or use --restart=if-needed, and apply again) or qubesd
changes a setting of the stack again as a consequence of another
(warning[undone-by-qubesd]); also 2 for a usage error, --json or
--progress=ndjson without --yes ([confirmation-required]; nothing was
changed) or a FILE that cannot be read (the message says which), 130/143
interrupted by SIGINT/SIGTERM (141 standard output closed, 2 it failed).
With --json the same; the document's "ok"
is false exactly when "error" says what stopped the apply (exit 1, 2 for a
usage error, a missing --yes or an unreadable FILE, 130/143), and
"matches" is true exactly for exit 0.

${CONNECTION_USAGE}
`;

const DRIFT_USAGE = `usage: qkit template drift FILE [--json] [--policy-dir DIR]

Lists the managed settings (those an apply recorded on the system) whose
live value differs from the stack in FILE: changed by hand, or changed in
FILE and not applied yet (the live system is the only state, so the two
look alike; \`qkit template plan\` shows what an apply would do). Files and
firewalls are shown as the lines that differ (- live, + stack).

exit status: 0 no drift, 2 drift (listed), 1 error.

${CONNECTION_USAGE}
`;

const VALUE_FLAGS = [...CONNECTION_VALUE_FLAGS, "--policy-dir", "--restart", "--out", "--journal"];
const BOOL_FLAGS = [...CONNECTION_BOOLEAN_FLAGS, "--json", "--detailed-exitcode", "--adopt", "--take-over", "--allow-replace", "--prune", "--yes", "--ignore-expect"];

/** An error with a stable code, printed as one line. */
class CliFailure extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** Input that cannot be read (exit 2, not 1). */
    readonly input = false,
  ) {
    super(message);
  }
}

function parse(args: string[], allowed: { values: string[]; booleans: string[] }): ParsedArgs & { file: string } {
  const p = parseArgs(args, allowed.values, allowed.booleans);
  if (p.positionals.length !== 1) throw new UsageError(p.positionals.length ? "exactly one FILE is expected" : "FILE is required");
  const restart = p.flags.get("--restart");
  if (restart !== undefined && restart !== "never" && restart !== "if-needed") throw new UsageError(`--restart must be never or if-needed, got \`${String(restart)}\``);
  return { ...p, file: p.positionals[0]! };
}

/** Adds `FILE:LINE:COLUMN` to the errors and warnings that carry a place in a stack file. */
function locate(list: PlanError[], io: CliIO): void {
  const texts = new Map<string, string | undefined>();
  for (const e of list) {
    const p = e.provenance;
    if (!p && e.at && path.isAbsolute(e.at)) {
      // A place given as an absolute FILE:LINE:COLUMN: shown relative to the working directory.
      const m = /^(.*):(\d+):(\d+)$/.exec(e.at);
      if (m) e.at = `${placeShown(io.cwd, m[1]!)}:${m[2]}:${m[3]}`;
      continue;
    }
    if (!p || typeof p.file !== "string" || typeof p.start !== "number") continue;
    if (!texts.has(p.file)) texts.set(p.file, inputsOf(io).text(path.resolve(io.cwd, p.file)));
    const text = texts.get(p.file);
    if (text === undefined) continue;
    const start = Math.max(0, p.start);
    const line = text.slice(0, start).split("\n").length;
    e.at = `${placeShown(io.cwd, p.file)}:${line}:${columnAt(text, start)}`;
  }
}

/** Refuses a FILE that cannot be read before anything connects (the OS's wording; exit 2, as `check`). */
function mustRead(file: string, io: CliIO): void {
  const abs = path.resolve(io.cwd, file);
  const read = inputsOf(io).outcome(abs);
  if (!("text" in read)) {
    const f = unreadable(file, abs, "a stack file (*.qubes.yaml) or a saved plan", read);
    throw new CliFailure(f.message, f.code, true);
  }
}

function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** Where each command's connection went (for the failure line's way out, see `failure.ts`). */
const connections = new WeakMap<CliIO, ConnectionInfo>();

function openConnection(p: ParsedArgs, io: CliIO, policyDir?: string): StackConnection & { policyDir?: string } {
  const info = {} as ConnectionInfo;
  connections.set(io, info);
  const { qubes, policy } = connect(p.flags, io.env, info);
  const dir = typeof p.flags.get("--policy-dir") === "string" ? path.resolve(io.cwd, p.flags.get("--policy-dir") as string) : policyDir;
  // A mistyped directory must not read as an empty policy (every file would look new).
  if (dir !== undefined && !isDirectory(dir)) throw new CliFailure(`--policy-dir ${dir} is not a directory; give the policy directory (in dom0 /etc/qubes/policy.d)`, "not-a-directory");
  const target: PolicyTarget = dir !== undefined ? dirPolicyTarget(dir) : adminPolicyTarget(policy);
  return dir !== undefined ? { qubes, policy: target, policyDir: dir } : { qubes, policy: target };
}

/** The checker's view of the live system. */
function stackSystem(live: LiveSystem): unknown {
  const qubes: Record<string, unknown> = {};
  for (const q of Object.values(live.qubes)) {
    const v = (n: string) => q.properties[n]?.value;
    qubes[q.name] = {
      class: q.class,
      provides_network: v("provides_network") === true,
      template_for_dispvms: v("template_for_dispvms") === true,
      ...(typeof v("template") === "string" ? { template: v("template") } : {}),
      ...(typeof v("label") === "string" ? { label: v("label") } : {}),
      ...(q.properties["netvm"] ? { netvm: typeof v("netvm") === "string" && v("netvm") !== "" ? v("netvm") : null } : {}),
      tags: q.tags,
    };
  }
  return { qubes, labels: Object.keys(live.labels), pools: live.pools };
}

function isModel(x: unknown): x is StackModel {
  const m = x as StackModel;
  return !!m && typeof m === "object" && m.format === 1 && typeof m.stack === "string" && Array.isArray(m.qubes);
}

/** The diagnostics of a stack that does not check, as a `--json` document lists them. */
type Listed = Array<{ severity: string; code: string; message: string; at: string }>;

/**
 * Reads and checks the stack file (with the live system as the model of existing qubes).
 * `refused`: the `--json` document of a stack that does not check (its diagnostics then go to
 * standard error); without it they are printed on standard output.
 */
function loadStack(file: string, io: CliIO, live: LiveSystem | undefined, refused?: (stack: unknown, listed: Listed) => void): StackModel {
  const json = refused !== undefined;
  const abs = path.resolve(io.cwd, file);
  const read = inputsOf(io).outcome(abs);
  if (!("text" in read)) {
    // The OS's wording, a directory said as such; input that cannot be read exits 2, as check does.
    const f = unreadable(file, abs, "the stack file (*.qubes.yaml)", read);
    throw new CliFailure(f.message, f.code, true);
  }
  const text = read.text;
  if (abs.endsWith(".json")) {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new CliFailure(`${file} is not valid JSON (${language.jsonErrorAt(text, file)}); fix it or write a *.qubes.yaml file`, "invalid-json");
    }
    if (!isModel(data)) throw new CliFailure(`${file} is not a stack model (expected "format": 1, "stack" and "qubes"); write a *.qubes.yaml file or use the SDK builder`, "not-a-stack");
    const checked = checkStackModel(data);
    if (!checked.model) {
      for (const e of checked.errors) (json ? io.stderr : io.stdout).write(`${file}: error[${e.code}]: ${e.message}\n`);
      refused?.((data as StackModel).stack, checked.errors.map((e) => ({ severity: "error", code: e.code, message: e.message, at: file })));
      throw new CliFailure(`${checked.errors.length} error${checked.errors.length === 1 ? "" : "s"} in the stack model; nothing was changed`, "invalid-stack");
    }
    return checked.model;
  }
  const check = (language as unknown as Record<string, unknown>)["checkStack"] as
    | ((fs: { readFile(p: string): string | undefined }, entry: string, options?: { system?: unknown }) => { model?: StackModel; diagnostics: Array<{ code: string; severity: string; message: string; file: string; line: number; span: { start: number; end: number }; help?: string }> })
    | undefined;
  if (typeof check !== "function") throw new CliFailure(`this build of qkit cannot read stack files yet; pass a stack model as JSON`, "unsupported-format");
  // Each file once (a pipe has its text only the first time), bounded; an unreadable include in the OS's words.
  const reader = stackReader(inputsOf(io));
  const r = check(reader, abs, live ? { system: stackSystem(live) } : {});
  const errors = r.diagnostics.filter((d) => d.severity === "error");
  if (errors.length || !r.model) {
    const listed: Listed = [];
    for (const d of r.diagnostics) {
      // plan, apply and drift read the machine: "must exist on the machine" is checked there, and
      // those notes would bury the errors that stop the plan.
      if (d.code === "undeclared-qube") continue;
      const src = reader.readFile(d.file) ?? "";
      const at = `${placeShown(io.cwd, d.file)}:${d.line}:${columnAt(src, d.span.start)}`;
      listed.push({ severity: d.severity, code: d.code, message: d.message, at });
      const out = json ? io.stderr : io.stdout;
      out.write(`${at}: ${d.severity}[${d.code}]: ${d.message}\n`);
      if (d.help) out.write(`  help: ${d.help}\n`);
    }
    // The stack's name, when the model did not come out (read from the text: `stack: NAME`).
    refused?.(r.model?.stack ?? /^stack:[ \t]*["']?([a-z0-9][a-z0-9_-]*)["']?[ \t]*(?:#.*)?$/m.exec(text)?.[1], listed);
    throw new CliFailure(`${errors.length || 1} error${errors.length === 1 ? "" : "s"} in the stack; nothing was changed`, "invalid-stack");
  }
  return r.model;
}

/**
 * `--json` of a stack that does not check: a document on standard output all the same (CI reads
 * it), with the stack's diagnostics as the plan's errors and warnings, and no steps.
 */
function writeRefusedJson(io: CliIO, stack: unknown, listed: Listed): void {
  const pick = (sev: string) => listed.filter((d) => d.severity === sev).map(({ code, message, at }) => ({ code, message, at }));
  io.stdout.write(JSON.stringify({ qkitPlan: 1, ok: false, stack: typeof stack === "string" ? stack : null, errors: pick("error"), warnings: listed.filter((d) => d.severity !== "error").map(({ code, message, at }) => ({ code, message, at })), steps: [], sideEffects: null }) + "\n");
}

function planOptions(p: ParsedArgs, model?: StackModel) {
  const restart = (p.flags.get("--restart") as "never" | "if-needed" | undefined) ?? model?.options?.restart ?? "never";
  return { adopt: p.flags.has("--adopt") || !!model?.options?.adopt, takeOver: p.flags.has("--take-over"), allowReplace: p.flags.has("--allow-replace"), prune: p.flags.has("--prune") || !!model?.options?.prune, restart };
}

async function makePlan(
  p: ParsedArgs & { file: string },
  io: CliIO,
  refused?: (stack: unknown, listed: Listed) => void,
): Promise<{ plan: Plan; live: LiveSystem; conn: StackConnection & { policyDir?: string } }> {
  mustRead(p.file, io);
  // The stack's own errors first, before anything connects: a broken file is said as such even where qubesd cannot be reached.
  loadStack(p.file, io, undefined, refused);
  const conn = openConnection(p, io);
  // The checker needs the live names first; the full features of the declared qubes (and clock qubes, see planFocus) are read after.
  const live = await readLight(conn.qubes, conn.policy, { focus: [] });
  const model = loadStack(p.file, io, live, refused);
  await readFeatures(conn.qubes, live, planFocus(model, live));
  await readDeviceClassesFor(conn.qubes, live, model);
  const scope = planScope(model, live);
  await readDeep(conn.qubes, conn.policy, live, scope);
  // What-if's inputs, when the stack has expectations or writes policy (a write is ordered by its decision changes).
  const inputs = model.expect.length || writesPolicy(model, live) ? await readWhatIfInputs(conn) : undefined;
  const options = { ...planOptions(p, model), ...(conn.policyDir !== undefined ? { policyDir: conn.policyDir } : {}) };
  let plan = computePlan(model, live, scope, { ...options, ...(inputs ? effectOptions(inputs, model) : {}) });
  let read = inputs;
  // A tag added or removed is marked by what it does to the decisions: what-if's inputs are read for it too.
  if (!read && (changesTags(plan) || movesQube(plan))) {
    read = await readWhatIfInputs(conn);
    plan = computePlan(model, live, scope, { ...options, ...effectOptions(read, model) });
  }
  if (read) plan.whatifPolicy = policyDigests(read.policy);
  // The stack's own expectations, and the count of decisions that change, on the system and policy
  // after apply (what-if); only when its inputs were read for the policy or the expectations.
  if (inputs) {
    const w = await planWhatIf(model, conn, plan, inputs, { changes: true });
    if (w.expectations) plan.expectations = w.expectations;
    if (w.decisionChanges) plan.decisionChanges = w.decisionChanges;
    if (w.policyNotLoading) plan.policyNotLoading = w.policyNotLoading;
  }
  // The stack's rules that never decide once applied (design: shadowed stack rules are said at plan time).
  if (inputs && !plan.errors.length) {
    const shadowed = shadowedStackRules(model, inputs.policy);
    if (shadowed.length) plan.warnings = [...(plan.warnings ?? []), ...shadowed];
  }
  locate([...plan.errors, ...(plan.warnings ?? [])], io);
  return { plan, live, conn };
}

function runningOf(live: LiveSystem): string[] {
  return Object.values(live.qubes)
    .filter((q) => q.state === "Running" || q.state === "Paused" || q.state === "Suspended")
    .map((q) => q.name);
}

/** A word for a shell command line: as it is when nothing in it needs quoting, else single-quoted. */
function shellWord(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that lists a plan's decision changes (`qkit template whatif FILE`), with the
 * connection options and the policy directory the plan was given (whatif reads the same system).
 */
function whatifCommand(p: ParsedArgs & { file: string }): string {
  const words = ["qkit", "template", "whatif", p.file];
  for (const flag of ["--socket", "--qrexec", "--timeout", "--policy-dir"]) {
    const v = p.flags.get(flag);
    if (v === true) words.push(flag);
    else if (typeof v === "string") words.push(flag, v);
  }
  return words.map(shellWord).join(" ");
}

/**
 * The command that resumes an apply: the same arguments, with FILE and the paths of options
 * (--journal, --policy-dir, --socket) made absolute, so that it runs from any directory.
 */
function resumeCommand(args: readonly string[], io: CliIO, valueFlags: readonly string[]): string {
  const abs = (v: string) => path.resolve(io.cwd, v);
  const paths = ["--journal", "--policy-dir", "--socket"];
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      out.push(a, ...args.slice(i + 1).map(abs));
      break;
    }
    if (a.startsWith("-") && a !== "-" && !/^-[0-9]/.test(a)) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a : a.slice(0, eq);
      if (valueFlags.includes(name) && eq >= 0) out.push(paths.includes(name) ? `${name}=${abs(a.slice(eq + 1))}` : a);
      else if (valueFlags.includes(name)) {
        out.push(a);
        const v = args[++i];
        if (v !== undefined) out.push(paths.includes(name) ? abs(v) : v);
      } else out.push(a);
      continue;
    }
    out.push(abs(a));
  }
  return ["qkit", "template", "apply", ...out].map(shellWord).join(" ");
}

function header(live: LiveSystem, conn: StackConnection): string {
  const qubes = Object.keys(live.qubes).length;
  return `Read ${qubes} qube${qubes === 1 ? "" : "s"} and ${live.policyNames.length} policy file${live.policyNames.length === 1 ? "" : "s"} (${conn.policy.description})`;
}

/**
 * Runs a command body; a failure is one line on standard error with its code (exit 1, or 2 for
 * input that cannot be read), also told to `failed` (apply's JSON document). Usage errors are rethrown.
 */
async function withFailures(io: CliIO, name: string, f: () => Promise<number>, failed?: (code: string, message: string) => void): Promise<number> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const said = failureLine(e, io);
    io.stderr.write(`qkit template ${name}: ${said.message} [${said.code}]\n`);
    failed?.(said.code, said.message);
    return said.exit;
  }
}

/** A failure as its one line's message and code, and the exit status. */
function failureLine(e: unknown, io: CliIO): { message: string; code: string; exit: number } {
  if (e instanceof CliFailure) return { message: e.message, code: e.code, exit: e.input ? 2 : 1 };
  // qubesd unreachable or gone: the commands' one wording, with what to do (check --socket, start qubesd, ...).
  const info = connections.get(io);
  if (e instanceof QubesTransportError && e.code === "spawn-failed")
    return { message: `${e.message}; outside dom0 give --socket PATH (or QUBESD_SOCKET) and --policy-dir DIR, or run it in dom0`, code: e.code, exit: 1 };
  if (e instanceof QubesDaemonAccessError && info?.via !== undefined) {
    const f = describeFailure(e, info);
    if (f) return { message: f.message, code: f.code, exit: 1 };
  }
  const err = e as { qubesType?: string; code?: string; message?: string };
  const what = err.qubesType ? `${err.qubesType}: ${err.message}` : (err.message ?? String(e));
  return { message: what, code: err.code ?? "error", exit: 1 };
}

/**
 * The failed step's line: qubesd's refusal as it said it; qubesd gone or the connection lost in
 * the commands' one wording (the OS's words, what to do), with whether the call was sent; and the
 * calls of the step that went through before it (a step is several calls: a creation is done
 * when its ownership mark fails).
 */
function failureSummary(f: ApplyFailure, index: number, total: number, io: CliIO): string {
  let line = f.summary;
  const info = connections.get(io);
  if (f.error instanceof QubesDaemonAccessError && info?.via !== undefined) {
    const d = describeFailure(f.error, info);
    if (d) {
      const sent = f.error instanceof QubesTransportError && f.error.code === "connect-failed" ? "it was not sent" : "whether qubesd made it is not known (`qkit template plan` shows what is left)";
      line = `step ${index}/${total} ${f.step.id} failed: ${oneLine(`${f.call.method} ${f.call.arg ? `${f.call.arg} ` : ""}on ${f.call.dest}`)}: ${d.message}; ${sent}`;
    }
  }
  const done = f.callsDone ?? 0;
  if (done > 0) line += `; ${done} of the step's ${f.step.calls.length} calls went through before it (${f.step.calls.slice(0, done).map((c) => c.method).join(", ")})`;
  return line;
}

/** Saves a plan for `apply PLAN`; only a previous saved plan is ever overwritten (never a stack file). */
function writePlanFile(file: string, io: CliIO, plan: Plan): void {
  const out = path.resolve(io.cwd, file);
  let previous: string | undefined;
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(out);
  } catch {
    st = undefined;
  }
  if (st?.isDirectory()) throw new CliFailure(`${file} is a directory; give --out a file name`, "cannot-write");
  // Only a regular file can hold an earlier plan; a device or a pipe (/dev/stdout, /dev/full) is
  // written to, never read (reading /dev/zero or a pipe would not end).
  if (st?.isFile()) {
    const r = readBounded(out);
    // One that cannot be read, or too large to be a plan, is not shown to be an earlier plan: kept.
    previous = "text" in r ? r.text : "";
  }
  if (previous !== undefined) {
    let old: unknown;
    try {
      old = JSON.parse(previous);
    } catch {
      old = undefined;
    }
    if (!old || typeof old !== "object" || (old as Plan).qkitPlan !== 1) throw new CliFailure(`${file} exists and is not a saved plan; choose another --out file`, "file-exists");
  }
  try {
    fs.writeFileSync(out, JSON.stringify(plan, null, 1) + "\n", { mode: 0o600 });
  } catch (e) {
    throw new CliFailure(`cannot write ${file}: ${osMessage(e)}; check that its directory exists and is writable`, "cannot-write");
  }
}

/** Asks `question` on the terminal; true for `yes`. A signal ends the question (false). */
async function confirm(io: CliIO, question: string, signal?: AbortSignal): Promise<boolean> {
  const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: false });
  const close = () => rl.close();
  signal?.addEventListener("abort", close, { once: true });
  try {
    const answer = await new Promise<string>((resolve) => {
      if (signal?.aborted) return resolve("");
      rl.question(question, resolve);
      rl.once("close", () => resolve(""));
    });
    return answer.trim() === "yes";
  } finally {
    signal?.removeEventListener("abort", close);
    rl.close();
  }
}

function progressLine(index: number, total: number, s: PlanStep, status: string, ms: number): string {
  const w = String(total).length;
  // As the plan shows it: a multi-line value (firewall rules, a policy file) as its count of rules, never its first line alone.
  // Bookkeeping (an ownership record) is named, not dumped (a record lists every key the stack set).
  const change = s.kind === "record-keys" ? "ownership record" : s.before === null ? oneLine(s.after) : `${oneLine(s.before)} → ${s.after === null ? "(removed)" : oneLine(s.after)}`;
  return `[${String(index).padStart(w)}/${total}] ${s.id}${change ? ` ${change}` : ""} … ${status}${status === "ok" ? ` ${ms} ms` : ""}\n`;
}

function sameFile(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    const x = fs.statSync(a);
    const y = fs.statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

function journalRefusal(shown: string): CliFailure {
  return new CliFailure(`--journal ${shown} exists and is not a qkit journal; nothing was changed; give --journal a new file name or an earlier journal`, "not-a-journal");
}

/** Refuses a `--journal` that is the stack (or plan) file, or an existing file that is not a qkit journal: it would be appended to. */
function refuseJournal(shown: string, file: string, stackFile: string, saved: boolean): void {
  if (sameFile(file, stackFile)) throw new CliFailure(`--journal ${shown} is ${saved ? "the file being applied" : "the stack file"}; nothing was changed; give --journal a new file name`, "not-a-journal");
  try {
    checkJournalFile(file);
  } catch (e) {
    if (e instanceof JournalRefused) throw journalRefusal(shown);
    // Unreadable: opening it for the journal reports it.
  }
}

/** The one line for failing expectations (`undefined` when they all hold or there are none). */
function expectationFailure(plan: Plan, verb: "plan" | "apply"): string | undefined {
  const e = plan.expectations;
  if (!e?.failed.length) return undefined;
  const n = e.failed.length;
  return `${n} of ${e.total} expectation${e.total === 1 ? "" : "s"} fail${n === 1 ? "s" : ""} after apply (${e.failed[0]!.expect}${n > 1 ? ", …" : ""}); ${verb === "plan" ? "apply would refuse this plan" : "nothing was changed"}; fix the stack or its expect: entries, or pass --ignore-expect`;
}

/** Removes a journal nothing was written to (an apply declined at the question, or stopped before any step); true when it is gone. */
function removeIfEmpty(file: string): boolean {
  try {
    if (fs.statSync(file).size !== 0) return false;
    fs.unlinkSync(file);
    return true;
  } catch {
    // Nothing to tidy.
    return !fs.existsSync(file);
  }
}

/** A signal before any step started: nothing was changed (exit 130/143). */
class Interrupted extends Error {
  constructor(readonly signal: string) {
    super(signal.startsWith("SIG") ? "interrupted before any change; nothing was changed" : `stopped before any change, as ${signal}; nothing was changed`);
  }
}

/**
 * The exit status of an apply stopped by `reason`: 130/143 for SIGINT/SIGTERM, 141 when
 * standard output was closed (as SIGPIPE would), 2 when writing to it failed otherwise.
 */
function interruptedExit(reason: string): number {
  if (reason === "SIGTERM") return 143;
  if (reason === "SIGINT") return 130;
  return reason.includes("(Broken pipe)") ? 141 : 2;
}

/**
 * What is wrong with a saved plan's shape (what apply reads of it), or `undefined`: a plan that
 * was edited or cut short is refused with where, before anything uses it.
 */
function savedPlanProblem(plan: Record<string, unknown>): string | undefined {
  const isObject = (x: unknown): x is Record<string, unknown> => !!x && typeof x === "object" && !Array.isArray(x);
  const strings = (x: unknown) => Array.isArray(x) && x.every((v) => typeof v === "string");
  const steps = plan["steps"];
  if (!Array.isArray(steps)) return "`steps` is not a list";
  for (const [i, st] of steps.entries()) {
    const at = `step ${i + 1}`;
    if (!isObject(st)) return `${at} is not an object`;
    for (const k of ["id", "kind", "target", "object", "key"]) if (typeof st[k] !== "string") return `${at}: \`${k}\` is not a string`;
    for (const k of ["before", "after"]) if (st[k] !== null && typeof st[k] !== "string") return `${at} (${st["id"]}): \`${k}\` is neither a string nor null`;
    if (!strings(st["requires"])) return `${at} (${st["id"]}): \`requires\` is not a list of step ids`;
    if (st["deferred"] !== undefined && typeof st["deferred"] !== "string") return `${at} (${st["id"]}): \`deferred\` is not a string`;
    if (!Array.isArray(st["calls"])) return `${at} (${st["id"]}): \`calls\` is not a list`;
    for (const [j, c] of (st["calls"] as unknown[]).entries())
      if (!isObject(c) || !["method", "dest", "arg", "payload"].every((k) => typeof c[k] === "string")) return `${at} (${st["id"]}): call ${j + 1} is not an object with string method, dest, arg and payload`;
  }
  if (typeof plan["stack"] !== "string") return "`stack` is not a string";
  if (typeof plan["fingerprint"] !== "string") return "`fingerprint` is not a string";
  const scope = plan["scope"];
  if (!isObject(scope)) return "`scope` is not an object";
  for (const k of ["qubes", "policy", "available"]) if (!strings(scope[k])) return `\`scope.${k}\` is not a list of names`;
  if (scope["focus"] !== undefined && !strings(scope["focus"])) return "`scope.focus` is not a list of names";
  if (scope["deep"] !== undefined && !isObject(scope["deep"])) return "`scope.deep` is not an object";
  for (const k of ["errors", "warnings"]) {
    const list = plan[k];
    if (list === undefined && k === "warnings") continue;
    if (!Array.isArray(list)) return `\`${k}\` is not a list`;
    for (const [i, e] of list.entries()) if (!isObject(e) || typeof e["code"] !== "string" || typeof e["message"] !== "string") return `${k.slice(0, -1)} ${i + 1} is not an object with a code and a message`;
  }
  if (!isObject(plan["summary"])) return "`summary` is not an object";
  for (const k of ["restartToTakeEffect", "orphans"]) if (!strings(plan[k])) return `\`${k}\` is not a list of names`;
  for (const k of ["options", "view", "decisionChanges"]) if (plan[k] !== undefined && !isObject(plan[k])) return `\`${k}\` is not an object`;
  // The view (what the plan read, part by part) says what changed in a stale plan: its shape too.
  const view = plan["view"];
  if (isObject(view)) {
    const digests = (x: unknown) => isObject(x) && Object.values(x).every((v) => typeof v === "string");
    if (!isObject(view["qubes"]) || !Object.values(view["qubes"]).every(digests)) return "`view.qubes` is not an object of qubes' digests";
    for (const k of ["globals", "labels", "policy", "available"]) if (!digests(view[k])) return `\`view.${k}\` is not an object of digests`;
    for (const k of ["pools", "policyNames"]) if (!strings(view[k])) return `\`view.${k}\` is not a list of names`;
  }
  const options = plan["options"];
  if (isObject(options) && options["policyDir"] !== undefined && typeof options["policyDir"] !== "string") return "`options.policyDir` is not a path";
  const notLoading = plan["policyNotLoading"];
  if (notLoading !== undefined && (!Array.isArray(notLoading) || !notLoading.every((l) => isObject(l) && (l["when"] === "today" || l["when"] === "future") && typeof l["message"] === "string")))
    return "`policyNotLoading` is not a list of objects with `when` (today or future) and a message";
  const ex = plan["expectations"];
  if (ex !== undefined && (!isObject(ex) || typeof ex["total"] !== "number" || !Array.isArray(ex["failed"]) || !ex["failed"].every((f) => isObject(f) && typeof f["expect"] === "string")))
    return "`expectations` is not an object with a total and the failed entries";
  return undefined;
}

/** How apply reports: human lines, one JSON document at the end, or also a JSON line per step as it ends. */
type OutputMode = "text" | "json" | "ndjson";

/** Read from the arguments before they are parsed, so that even a usage error gives the document. */
function outputMode(args: readonly string[]): OutputMode {
  let mode: OutputMode = "text";
  for (const [i, a] of args.entries()) {
    if (a === "--") break;
    if (a === "--progress=ndjson" || (a === "--progress" && args[i + 1] === "ndjson")) return "ndjson";
    if (a === "--json") mode = "json";
  }
  return mode;
}

/** A step as apply's JSON names it (as `plan --json` does; `index` from 1 in the plan's order). */
interface StepId {
  index: number;
  id: string;
  kind: PlanStep["kind"];
  target: string;
  key: string;
}

/** A step with how it went (`skipped`: not run, the apply stopped before it). */
interface StepStatus extends StepId {
  status: "ok" | "failed" | "deferred" | "skipped";
  ms: number;
  error?: { type: string; message: string; call: { method: string; dest: string; arg: string } };
}

/**
 * `qkit template apply --json` and `--progress=ndjson`: the steps as they end, and one document
 * at the end (`{"qkitApply": 1, …}`), whatever stopped the apply; nothing is written in text mode.
 */
class ApplyReport {
  stack: string | null = null;
  plan: Plan | undefined;
  journal: string | null = null;
  resume: string | null = null;
  sideEffects: SideEffect[] | null = null;
  /** The diagnostics of a stack that does not check (the plan's errors and warnings otherwise). */
  diagnostics: Listed | undefined;
  /** What differs since a stale plan was made. */
  stale: StaleChange[] | undefined;
  /** Warnings seen in the rehearsal (`undone-by-qubesd`), after the plan's. */
  rehearsalWarnings: Array<{ code: string; message: string }> = [];
  /** The step that failed: on the system, or in the rehearsal (nothing was sent then). */
  failed: (StepId & NonNullable<StepStatus["error"]> & { rehearsal: boolean }) | null = null;
  private error: { code: string; message: string } | null = null;
  private readonly done = new Map<number, StepStatus>();
  private emitted = false;
  /** Standard output failed or was closed: nothing more is written to it. */
  private gone = false;

  constructor(
    private readonly io: CliIO,
    readonly mode: OutputMode,
  ) {}

  get json(): boolean {
    return this.mode !== "text";
  }

  /** Human text (standard output), left out with --json. */
  say(text: string): void {
    if (!this.json && !this.gone) this.io.stdout.write(text);
  }

  /** Standard output can no longer be written: what is left to say goes nowhere. */
  outputGone(): void {
    this.gone = true;
  }

  setPlan(plan: Plan): void {
    this.plan = plan;
    this.stack = typeof plan.stack === "string" ? plan.stack : null;
  }

  static stepOf(s: PlanStep, index: number): StepId {
    return { index, id: s.id, kind: s.kind, target: s.target, key: s.key };
  }

  /** A step that ended (executePlan's progress); one line of its own with --progress=ndjson. */
  step(p: StepProgress, error?: StepStatus["error"]): void {
    const entry: StepStatus = { ...ApplyReport.stepOf(p.step, p.index), status: p.status, ms: p.ms, ...(error ? { error } : {}) };
    this.done.set(p.index, entry);
    if (this.mode === "ndjson" && !this.gone) this.io.stdout.write(JSON.stringify({ qkitApplyStep: 1, total: p.total, ...entry }) + "\n");
  }

  /**
   * The step that failed: in the rehearsal (nothing was sent), or on the system, where its
   * progress (`p`, from executePlan) is reported with the error.
   */
  failedStep(f: ApplyFailure, index: number, p?: StepProgress): void {
    const error = { type: f.type, message: f.message, call: { method: f.call.method, dest: f.call.dest, arg: f.call.arg } };
    this.failed = { ...ApplyReport.stepOf(f.step, index), ...error, rehearsal: p === undefined };
    if (p) this.step(p, error);
  }

  /** What stopped the apply: the code and message of its one line on standard error. */
  fail(code: string, message: string): this {
    this.error ??= { code, message };
    return this;
  }

  /** The document, once, as the last line of standard output (JSON modes only); never throws. */
  emit(exit: number): void {
    if (!this.json || this.emitted || this.gone) return;
    this.emitted = true;
    let text: string;
    try {
      text = this.document(exit);
    } catch (e) {
      // A plan of an unexpected shape: the document all the same, with what stopped the apply.
      const error = this.error ?? { code: "error", message: `cannot report the apply: ${e instanceof Error ? e.message : String(e)}` };
      text = JSON.stringify({ qkitApply: 1, ok: false, matches: false, stack: typeof this.stack === "string" ? this.stack : null, error, failed: null, resume: this.resume, journal: this.journal, applied: 0, deferred: 0, total: 0, steps: [], sideEffects: null, errors: [], warnings: [], expectations: null });
    }
    try {
      this.io.stdout.write(text + "\n");
    } catch {
      // Standard output is gone: nothing more to say.
    }
  }

  private document(exit: number): string {
    const steps: StepStatus[] = (this.plan?.steps ?? []).map((s, i) => this.done.get(i + 1) ?? { ...ApplyReport.stepOf(s, i + 1), status: "skipped", ms: 0 });
    const count = (st: StepStatus["status"]) => steps.filter((x) => x.status === st).length;
    const pick = (sev: "error" | "warning") =>
      this.diagnostics
        ? this.diagnostics.filter((d) => (sev === "error") === (d.severity === "error")).map(({ code, message, at }) => ({ code, message, at }))
        : ((sev === "error" ? this.plan?.errors : this.plan?.warnings) ?? []).map((e) => ({ code: e.code, message: e.message, ...(e.at ? { at: e.at } : {}) }));
    const ok = this.error === null;
    const doc = {
      qkitApply: 1,
      ok,
      // The system matches the stack now (exit 0): nothing deferred, nothing qubesd changed back.
      matches: ok && exit === 0,
      stack: this.stack,
      error: this.error,
      failed: this.failed,
      resume: this.resume,
      journal: this.journal,
      applied: count("ok"),
      deferred: count("deferred"),
      total: steps.length,
      steps,
      ...(this.stale ? { staleChanges: this.stale } : {}),
      sideEffects: this.sideEffects,
      errors: pick("error"),
      warnings: [...pick("warning"), ...this.rehearsalWarnings],
      expectations: this.plan?.expectations ?? null,
    };
    return JSON.stringify(doc);
  }
}

async function runApply(args: string[], io: CliIO, report: ApplyReport): Promise<number> {
  // Ctrl-C or a TERM from the start: before any step it stops the read, the plan, the rehearsal or
  // the question at once (nothing was changed); once the steps run, after the step in flight,
  // journaled and reported. Exit 130/143 either way.
  const stop = new AbortController();
  /** Set once the steps start (the question, if any, was answered yes). */
  let stepsStarted = false;
  let interrupt: (e: Interrupted) => void = () => {};
  const interrupted = new Promise<never>((_, reject) => (interrupt = reject));
  interrupted.catch(() => {});
  const onSignal = (sig: string) => {
    if (stop.signal.aborted) return;
    if (stepsStarted) io.stderr.write(`qkit template apply: ${sig}: stopping after the step in flight…\n`);
    stop.abort(sig);
    if (!stepsStarted) interrupt(new Interrupted(sig));
  };
  /** `p`, unless a signal comes first (before the steps). */
  const until = <T>(p: Promise<T>): Promise<T> => Promise.race([p, interrupted]);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // Standard output closed (\`| head\`) or failing (a full disk): nothing more is written there, and
  // the apply stops as on a signal (after the step in flight, journaled and reported on standard
  // error), never killed half-way by the write's error with a status that says all went well.
  const onOutputError = (err: unknown) => {
    report.outputGone();
    onSignal(`standard output ${(err as NodeJS.ErrnoException)?.code === "EPIPE" ? "was closed" : "failed"} (${osMessage(err)})`);
  };
  io.stdout.on("error", onOutputError);
  try {
    return await applyRun(args, io, report, { stop, until, started: () => (stepsStarted = true) });
  } catch (e) {
    if (!(e instanceof Interrupted)) throw e;
    report.fail("interrupted", e.message);
    io.stderr.write(`qkit template apply: ${e.message} [interrupted]\n`);
    return interruptedExit(e.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    // Left on the stream: a write that fails after the run ends is not a crash either.
  }
}

async function applyRun(
  args: string[],
  io: CliIO,
  report: ApplyReport,
  interruption: { stop: AbortController; until: <T>(p: Promise<T>) => Promise<T>; started: () => void },
): Promise<number> {
  const { stop, until } = interruption;
  const valueFlags = [...VALUE_FLAGS.filter((f) => f !== "--out"), "--progress"];
  const p = parse(args, { values: valueFlags, booleans: BOOL_FLAGS.filter((f) => f !== "--detailed-exitcode") });
  const progress = p.flags.get("--progress");
  if (progress !== undefined && progress !== "ndjson") throw new UsageError(`--progress must be ndjson, got \`${String(progress)}\``);
  let plan: Plan;
  let conn: StackConnection & { policyDir?: string };
  let running: string[] = [];
  let saved: unknown;
  /** What the plan was made from (a plan made now): a stale plan then says what changed. */
  let planned: LiveSystem | undefined;
  mustRead(p.file, io);
  try {
    const text = inputsOf(io).text(path.resolve(io.cwd, p.file)) ?? "";
    // A saved plan is recognised by its content, whatever its name (`--out PLAN` takes any name).
    saved = text.trimStart().startsWith("{") ? JSON.parse(text) : undefined;
  } catch {
    saved = undefined;
  }
  const fromSaved = !!saved && typeof saved === "object" && (saved as Plan).qkitPlan === 1;
  if (fromSaved) {
    // Its shape first: an edited or truncated plan is said as such, never a crash halfway.
    const problem = savedPlanProblem(saved as Record<string, unknown>);
    if (problem) throw new CliFailure(`${p.file}: ${problem}; make the plan again with \`qkit template plan --out\``, "invalid-plan");
    plan = saved as Plan;
    report.setPlan(plan);
    for (const flag of ["--adopt", "--take-over", "--allow-replace", "--prune", "--restart"]) if (p.flags.has(flag)) throw new UsageError(`${flag} is fixed when the plan is made; pass it to \`qkit template plan\``);
    conn = openConnection(p, io, plan.options?.policyDir);
    // Shown as `plan` showed it: which changes wait for a running qube's next start.
    const now = await until(readLight(conn.qubes, conn.policy, plan.scope.focus ? { focus: plan.scope.focus } : {}));
    running = runningOf(now);
    report.say(renderPlan(plan, { running, header: header(now, conn) }));
  } else {
    const made = await until(makePlan(p, io, report.json ? (stack, listed) => ((report.stack = typeof stack === "string" ? stack : null), (report.diagnostics = listed)) : undefined));
    plan = made.plan;
    report.setPlan(plan);
    conn = made.conn;
    planned = made.live;
    running = runningOf(made.live);
    report.say(renderPlan(plan, { running, header: header(made.live, conn), whatif: whatifCommand(p) }));
  }
  if (plan.errors.length) throw new CliFailure(`the plan has ${plan.errors.length} error${plan.errors.length === 1 ? "" : "s"}; fix the stack and try again`, "plan-errors");
  const failedExpect = expectationFailure(plan, "apply");
  if (failedExpect && !p.flags.has("--ignore-expect")) throw new CliFailure(failedExpect, "expectation-failed");
  const todo = plan.steps.filter((s) => !s.deferred);
  if (!todo.length) {
    const deferred = plan.steps.length - todo.length;
    // Nothing runs: the deferred steps are said as such.
    plan.steps.forEach((s, i) => s.deferred && report.step({ index: i + 1, total: plan.steps.length, step: s, status: "deferred", ms: 0 }));
    report.say(deferred ? `Nothing to apply now: ${deferred} step${deferred === 1 ? "" : "s"} deferred; the system does not match the stack yet.\n` : "Nothing to apply.\n");
    return deferred ? 2 : 0;
  }
  // The journal is checked before anything is asked or changed: never the stack file, never a file that is not a journal.
  const journalFlag = p.flags.get("--journal");
  const journalPath = typeof journalFlag === "string" ? path.resolve(io.cwd, journalFlag) : defaultJournalPath(io.env);
  if (typeof journalFlag === "string") refuseJournal(journalFlag, journalPath, path.resolve(io.cwd, p.file), fromSaved);
  const ask = !p.flags.has("--yes");
  // JSON modes do not show the plan: a question there would be about steps nobody saw.
  if (ask && report.json)
    throw new CliFailure(`${report.mode === "ndjson" ? "--progress=ndjson" : "--json"} needs --yes: the plan is not shown in JSON modes; review it with \`qkit template plan ${fromSaved ? "STACK" : shellWord(p.file)}\` first`, "confirmation-required", true);
  if (ask && (io.stdin as { isTTY?: boolean }).isTTY !== true) throw new CliFailure("refusing to change the system without a terminal to ask on; pass --yes to apply without asking", "confirmation-required");
  const journalExisted = fs.existsSync(journalPath);
  let journal: ReturnType<typeof fileJournal>;
  try {
    journal = fileJournal(journalPath);
  } catch (e) {
    if (e instanceof JournalRefused) throw journalRefusal(typeof journalFlag === "string" ? journalFlag : journalPath);
    throw new CliFailure(`cannot write the journal ${journalPath}: ${osMessage(e)}; nothing was changed; pass --journal FILE in a writable directory`, "cannot-write");
  }
  report.journal = journalPath;
  try {
    return await applyOpened();
  } finally {
    journal.close?.();
    // However the apply ended (a failure before any call included: qubesd gone, an interruption),
    // a journal it created and left empty is removed, and the document names none.
    if (!journalExisted && removeIfEmpty(journalPath)) report.journal = null;
  }

  async function applyOpened(): Promise<number> {
    let outcome: Awaited<ReturnType<typeof applyPlan>>;
    /** Settings of the plan that qubesd changes again afterwards (seen in the rehearsal). */
    let undone = 0;
    let failedProgress: StepProgress | undefined;
    outcome = await until(
      applyPlan(plan, conn, {
        journal,
        signal: stop.signal,
        ignoreExpect: p.flags.has("--ignore-expect"),
        ...(planned ? { planned } : {}),
        // Asked once the rehearsal passed: the answer is about steps the simulator accepted.
        // Always given: the steps start here, unless a signal came first.
        confirm: async () => {
          const yes = !ask || (await confirm(io, `Apply ${todo.length} step${todo.length === 1 ? "" : "s"}? Only 'yes' is accepted: `, stop.signal));
          if (stop.signal.aborted) return false;
          if (yes) {
            interruption.started();
            // Named once steps are about to be written to it: a plan refused before (stale, failed
            // rehearsal, declined) leaves no journal, so none is named.
            report.say(`Journal: ${journalPath}\n`);
          }
          return yes;
        },
        onRehearsed: (r, effects) => {
          undone = effects.filter((e) => e.managed).length;
          if (!r.failure) {
            report.sideEffects = effects;
            report.rehearsalWarnings = undoneWarnings(effects);
            report.say(`Rehearsal on a simulated copy of the system: ${r.applied} step${r.applied === 1 ? "" : "s"} ok.\n${renderSideEffects(effects)}`);
          }
        },
        onStep: (s) => {
          // A failed step is reported with its failure, below (the failure comes with the result).
          if (s.status === "failed") {
            failedProgress = s;
            return;
          }
          report.step(s);
          report.say(progressLine(s.index, s.total, s.step, s.status, s.ms));
        },
      }),
    );
    if (outcome.status !== "applied") {
      // Nothing was sent: a journal this apply created is left empty (removed on the way out).
      report.journal = null;
    }
    if (outcome.status === "declined") {
      report.fail("declined", "not applied: the answer was not 'yes'");
      io.stderr.write("qkit template apply: not applied.\n");
      return 1;
    }
    if (outcome.status === "stale") {
      report.stale = outcome.changes;
      const what = describeChanges(outcome.changes);
      throw new CliFailure(`the plan is stale: the system changed since it was made${what ? ` (${what})` : ""}; run \`qkit template plan\` again`, "stale-plan");
    }
    if (outcome.status === "errors") throw new CliFailure("the plan has errors", "plan-errors");
    if (outcome.status === "expectations-failed") throw new CliFailure(expectationFailure(plan, "apply")!, "expectation-failed");
    if (outcome.status === "rehearsal-failed") {
      const f = outcome.rehearsal.failure!;
      report.failedStep(f, plan.steps.indexOf(f.step) + 1);
      throw new CliFailure(`the rehearsal on a simulated copy of the system refused ${f.summary.replace(/ failed: /, ": ")}; nothing was changed`, "rehearsal-failed");
    }
    const r = outcome.result;
    // Run again, the same command resumes from the live state (from any directory: its paths made absolute); a saved plan is made again first.
    const resume = fromSaved ? undefined : resumeCommand(args, io, valueFlags);
    const again = fromSaved ? "make a new plan (`qkit template plan STACK --out PLAN`) and apply it to resume from the live state" : "run apply again to resume from the live state";
    if (r.interrupted) {
      const left = r.total - r.applied - r.deferred;
      const message = `${r.interrupted.reason.startsWith("SIG") ? "interrupted by" : "stopped, as"} ${r.interrupted.reason}: applied ${r.applied} of ${r.total} steps, ${left} not applied (next: ${r.interrupted.next.id}); ${again} (journal ${journalPath})`;
      if (resume) report.resume = resume;
      report.fail("interrupted", message);
      io.stderr.write(`qkit template apply: ${message} [interrupted]\n`);
      return interruptedExit(r.interrupted.reason);
    }
    if (r.failure) {
      const index = plan.steps.indexOf(r.failure.step) + 1;
      report.failedStep(r.failure, index, failedProgress ?? { index, total: r.total, step: r.failure.step, status: "failed", ms: 0 });
      if (resume) report.resume = resume;
      throw new CliFailure(`${failureSummary(r.failure, index, r.total, io)}; applied ${r.applied} of ${r.total} steps; ${again} (journal ${journalPath})`, "apply-failed");
    }
    report.say(`Applied ${r.applied} step${r.applied === 1 ? "" : "s"}${r.deferred ? `; ${r.deferred} deferred, so the system does not match the stack yet (stop the qubes named, or use --restart=if-needed, and apply again)` : ""}.\n`);
    if (undone) report.say(`qubesd changed ${undone} setting${undone === 1 ? "" : "s"} of the stack again (warning[undone-by-qubesd] above): the system does not match the stack.\n`);
    return r.deferred || undone ? 2 : 0;
  }
}

/** The `qkit template` plan/apply/drift commands. */
export const commands: Command[] = [
  {
    path: ["template", "plan"],
    summary: "show what applying a stack would change on the system",
    usage: PLAN_USAGE,
    run: (args, io) =>
      withFailures(io, "plan", async () => {
        const p = parse(args, { values: VALUE_FLAGS.filter((f) => f !== "--journal"), booleans: BOOL_FLAGS.filter((f) => f !== "--yes") });
        const { plan, live, conn } = await makePlan(p, io, p.flags.has("--json") ? (stack, listed) => writeRefusedJson(io, stack, listed) : undefined);
        // The rehearsal: the steps on a simulated copy of what was read (nothing reaches the system).
        let rehearsal: { ok: boolean; steps: number; failure?: string } | undefined;
        // null: no rehearsal ran (nothing to apply now, or plan errors), or it refused the plan.
        let sideEffects: SideEffect[] | null = null;
        if (!plan.errors.length && plan.steps.some((s) => !s.deferred)) {
          const done = await rehearse(plan, live);
          const r = done.result;
          rehearsal = r.failure ? { ok: false, steps: r.applied, failure: r.failure.summary } : { ok: true, steps: r.applied };
          if (!r.failure) sideEffects = done.sideEffects;
        }
        if (typeof p.flags.get("--out") === "string") {
          // With what was read part by part (digests), so that a stale plan can say what changed.
          writePlanFile(p.flags.get("--out") as string, io, { ...plan, view: fingerprintView(live, scopeOfPlan(plan)) });
        }
        if (p.flags.has("--json")) io.stdout.write(JSON.stringify({ ...plan, ...(rehearsal ? { rehearsal } : {}), sideEffects }) + "\n");
        else {
          io.stdout.write(renderPlan(plan, { running: runningOf(live), header: header(live, conn), whatif: whatifCommand(p) }));
          if (rehearsal?.ok) io.stdout.write(`Rehearsal on a simulated copy of the system: ${rehearsal.steps} step${rehearsal.steps === 1 ? "" : "s"} ok.\n${renderSideEffects(sideEffects ?? [])}`);
        }
        if (rehearsal && !rehearsal.ok) {
          io.stderr.write(`qkit template plan: the rehearsal on a simulated copy of the system refused ${rehearsal.failure!.replace(/ failed: /, ": ")}; apply would refuse this plan [rehearsal-failed]\n`);
          return 1;
        }
        const failedExpect = expectationFailure(plan, "plan");
        if (failedExpect && !p.flags.has("--ignore-expect")) {
          io.stderr.write(`qkit template plan: ${failedExpect} [expectation-failed]\n`);
          return 1;
        }
        if (plan.errors.length) return 1;
        const changes = plan.steps.length > 0;
        return p.flags.has("--detailed-exitcode") && changes ? 2 : 0;
      }),
  },
  {
    path: ["template", "apply"],
    summary: "apply a stack (or a saved plan) to the system, after a rehearsal",
    usage: APPLY_USAGE,
    run: async (args, io) => {
      const report = new ApplyReport(io, outputMode(args));
      let code: number;
      try {
        code = await withFailures(io, "apply", () => runApply(args, io, report), (c, message) => report.fail(c, message));
      } catch (e) {
        // A usage error is said by the command line (exit 2); with --json, in the document too.
        if (e instanceof UsageError) report.fail(e.code, e.message).emit(2);
        throw e;
      }
      report.emit(code);
      return code;
    },
  },
  {
    path: ["template", "drift"],
    summary: "list managed settings whose live value differs from the stack",
    usage: DRIFT_USAGE,
    run: (args, io) =>
      withFailures(io, "drift", async () => {
        const p = parse(args, { values: [...CONNECTION_VALUE_FLAGS, "--policy-dir"], booleans: [...CONNECTION_BOOLEAN_FLAGS, "--json"] });
        mustRead(p.file, io);
        const conn = openConnection(p, io);
        const live = await readLight(conn.qubes, conn.policy);
        const model = loadStack(p.file, io, live, p.flags.has("--json") ? (stack, listed) => writeRefusedJson(io, stack, listed) : undefined);
        const report = await driftStack(model, conn);
        if (p.flags.has("--json")) io.stdout.write(JSON.stringify(report) + "\n");
        else {
          for (const e of report.errors) io.stdout.write(`error[${e.code}]: ${e.message}\n`);
          for (const s of report.drift) {
            const multi = (s.before ?? "").includes("\n") || (s.after ?? "").includes("\n") || s.kind === "write-policy" || s.kind === "set-firewall";
            io.stdout.write(`drift: ${s.target}${s.key ? ` ${s.key}` : ""}: ${s.before === null ? "absent" : multi ? oneLine(s.before) : s.before} (stack: ${s.after === null ? "absent" : multi ? oneLine(s.after) : s.after})\n`);
            // What differs, line by line: the policy file's own diff, else the two values'.
            const diff = s.diff ?? (multi && s.before !== null && s.after !== null ? lineDiff(s.before, s.after) : []);
            for (const l of diff) io.stdout.write(`    ${l}\n`);
          }
          if (report.pending.length) io.stdout.write(`not applied yet: ${report.pending.length} step${report.pending.length === 1 ? "" : "s"} (run \`qkit template plan\`)\n`);
          if (report.orphans.length) io.stdout.write(`owned but no longer declared: ${report.orphans.join(", ")}\n`);
          // With errors the comparison did not run: no verdict on drift.
          if (report.errors.length) io.stdout.write("Drift not computed: fix the errors above.\n");
          else io.stdout.write(report.drift.length ? `Drift: ${report.drift.length} managed setting${report.drift.length === 1 ? " differs" : "s differ"} from the stack.\n` : "No drift.\n");
        }
        if (report.errors.length) return 1;
        return report.drift.length ? 2 : 0;
      }),
  },
];
