/**
 * `qkit template check|schema|whatif|export`: thin adapters over the
 * language core's stack front end (`checkStack`, `stackJsonSchema`) and
 * `sdk/src/apply/` (what-if, export).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { checkStack, closest, jsonErrorAt, parseExpectation, prepareSystemInfo, stackJsonSchema, stackSystemOf as languageStackSystemOf, storageOf, type RawSystemInfo, type StackModel, type StackSystem, type TemplateDiagnostic, type Utf8Problem } from "@qubes-kit/language";
import { exportStack } from "../apply/export.js";
import type { PolicyTexts, WhatIfSystem } from "../apply/future.js";
import { readWhatIfSystem } from "../apply/future-live.js";
import type { Qubes } from "../qubes.js";
import { renderWhatIf, whatIf, whatIfJson, type DiffStats } from "../apply/whatif.js";
import { labelOfIcon } from "../apply/future.js";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { CONNECTION_BOOLEAN_FLAGS, CONNECTION_USAGE, CONNECTION_VALUE_FLAGS, connect, parseArgs, takeRepeated, type ConnectionInfo, type ParsedArgs } from "./connect.js";
import { describeFailure } from "./failure.js";
import { QubesDaemonAccessError } from "../errors.js";
import { malformedQube, renderExplanation } from "./policy.js";
import { explanationJson } from "./policy-eval.js";
import { osMessage, placeShown } from "./text.js";
import { inputsOf, MAX_INPUT_BYTES, readBounded, type InputFiles, type ReadOutcome } from "./input-files.js";

/**
 * A failure with a stable code, printed as one line: exit 2 for an input the
 * command cannot use (a file that cannot be read, a directory, bad JSON, not a
 * system model or stack model: as in the other commands), exit 1 otherwise.
 */
class ToolFailure extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly input = false,
  ) {
    super(message);
  }
}

/**
 * An input file that cannot be read: a directory, one too large, or the OS's reason. `outcome`
 * is what reading it gave (read again here when not given).
 */
export function unreadable(file: string, abs: string, what: string, outcome?: ReadOutcome): ToolFailure {
  const r = outcome ?? readBounded(abs);
  if ("text" in r) return new ToolFailure(`cannot read ${file}; ${readFailure(undefined).advice}`, "cannot-read", true);
  if (r.tooLarge) return new ToolFailure(`cannot read ${file}: it holds more than ${MAX_INPUT_BYTES / (1024 * 1024)} MiB (or never ends); give ${what}`, "file-too-large", true);
  if (r.error.code === "EISDIR") return new ToolFailure(`${file} is a directory; give ${what}`, "is-a-directory", true);
  const f = readFailure(r.error.code);
  return new ToolFailure(`cannot read ${file}: ${osMessage(r.error)}; ${f.advice}`, f.code, true);
}

/**
 * The code and the advice for a file that cannot be read, by the read's errno: `file-not-found`
 * only when there is no such file (ENOENT, ENOTDIR: a path that does not lead to one);
 * `cannot-read` when it exists and the read fails (EACCES, EPERM: permissions; others as the OS says).
 */
export function readFailure(errno: string | undefined): { code: "file-not-found" | "cannot-read"; advice: string } {
  switch (errno) {
    case "ENOENT":
    case "ENOTDIR":
      return { code: "file-not-found", advice: "check the path" };
    case "EACCES":
    case "EPERM":
      return { code: "cannot-read", advice: "check the permissions of the file and of its directories (or run qkit as a user who may read it)" };
    case "ELOOP":
      return { code: "cannot-read", advice: "the symbolic links on its path loop; check them" };
    default:
      return { code: "cannot-read", advice: "the file exists but reading it failed; check the file and the disk" };
  }
}

/** Where each command's connection went (for the failure line's way out, as `plan` says it: `failure.ts`). */
const connections = new WeakMap<CliIO, ConnectionInfo>();

async function guarded(io: CliIO, name: string, f: () => Promise<number>): Promise<number> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (e instanceof ToolFailure) {
      io.stderr.write(`qkit template ${name}: ${e.message} [${e.code}]\n`);
      return e.input ? 2 : 1;
    }
    // qubesd unreachable or gone: the wording of plan and apply, with what to do.
    const info = connections.get(io);
    if (e instanceof QubesDaemonAccessError && info?.via !== undefined) {
      const f = describeFailure(e, info);
      if (f) {
        io.stderr.write(`qkit template ${name}: ${f.message} [${f.code}]\n`);
        return 1;
      }
    }
    const err = e as { qubesType?: string; code?: string; message?: string };
    const what = err.qubesType ? `${err.qubesType}: ${err.message}` : (err.message ?? String(e));
    io.stderr.write(`qkit template ${name}: ${what} [${typeof err.code === "string" ? err.code : "error"}]\n`);
    return 1;
  }
}

/**
 * How the checker reads the stack's files: each once per run and bounded (`input-files.ts`);
 * for one that cannot be read, the OS's reason and what to do (`include:`/`use:` diagnostics).
 */
export function stackReader(files: InputFiles): { readFile(p: string): string | undefined; readProblem(p: string): { reason: string; help: string } | undefined; notUtf8(p: string): Utf8Problem | undefined } {
  return {
    readFile: (p) => files.text(p),
    notUtf8(p) {
      const r = files.outcome(p);
      return "text" in r ? r.notUtf8 : undefined;
    },
    readProblem(p) {
      const r = files.outcome(p);
      if ("text" in r) return undefined;
      if (r.tooLarge) return { reason: `it holds more than ${MAX_INPUT_BYTES / (1024 * 1024)} MiB (or never ends)`, help: "name a *.qubes.yaml file" };
      if (r.error.code === "EISDIR") return { reason: "it is a directory", help: "name a *.qubes.yaml file" };
      const f = readFailure(r.error.code);
      return { reason: osMessage(r.error), help: f.code === "file-not-found" ? "paths are relative to the file that names it" : f.advice };
    },
  };
}

/** {@link connect}, remembering where the connection went for {@link guarded}'s failure line. */
function connectFor(flags: Map<string, string | true>, io: CliIO): ReturnType<typeof connect> {
  const info = {} as ConnectionInfo;
  connections.set(io, info);
  return connect(flags, io.env, info);
}

/** Reads a GetSystemInfo JSON file (`qkit system snapshot`), optionally with the extension keys of what-if. */
function readSystemFile(file: string, io: CliIO): WhatIfSystem {
  const abs = path.resolve(io.cwd, file);
  const read = inputsOf(io).outcome(abs);
  if (!("text" in read)) throw unreadable(file, abs, "--system a `qkit system snapshot` JSON file", read);
  if (read.notUtf8) {
    const p = read.notUtf8;
    throw new ToolFailure(`${file} is not UTF-8 text: byte 0x${p.byte.toString(16).padStart(2, "0")} at offset ${p.offset} (${p.reason}); qubesd writes the system model in UTF-8: make it again with \`qkit system snapshot\`, or save it as UTF-8`, "not-utf8", true);
  }
  const text = read.text;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ToolFailure(`${file} is not valid JSON (${jsonErrorAt(text, file)}); make the model with \`qkit system snapshot\``, "invalid-json", true);
  }
  const d = data as { domains?: unknown };
  if (!d || typeof d !== "object" || !d.domains || typeof d.domains !== "object" || Array.isArray(d.domains))
    throw new ToolFailure(`${file} is not a system model: expected {"domains": {...}} as \`qkit system snapshot\` writes it`, "invalid-system", true);
  for (const [name, q] of Object.entries(d.domains as Record<string, unknown>))
    if (!q || typeof q !== "object" || Array.isArray(q)) throw new ToolFailure(`${file}: domain ${name} is not an object`, "invalid-system", true);
  const bad = malformedQube(Object.entries(d.domains as Record<string, unknown>), `the system model \`${file}\``);
  if (bad !== undefined) throw new ToolFailure(bad, "invalid-system", true);
  for (const key of ["kernels", "pools"]) {
    const v = (data as Record<string, unknown>)[key];
    if (v !== undefined && !(Array.isArray(v) && v.every((x) => typeof x === "string")))
      throw new ToolFailure(`${file}: \`${key}\` is not a list of names; remove it or make the model again with \`qkit system snapshot\``, "invalid-system", true);
  }
  return data as WhatIfSystem;
}

/**
 * The checker's view of a system model file: the language core's
 * {@link languageStackSystemOf} (a bare GetSystemInfo answer does not say which
 * qubes provide network: that stays unknown, never guessed), plus the labels
 * the qubes' icons show.
 */
export function stackSystemOf(sys: WhatIfSystem): StackSystem {
  const labels = new Set<string>();
  for (const d of Object.values(sys.domains ?? {})) {
    const label = d ? labelOfIcon(d.icon) : undefined;
    if (label) labels.add(label);
  }
  return languageStackSystemOf(prepareSystemInfo(sys as unknown as RawSystemInfo), [...labels].sort(), storageOf(sys));
}

/**
 * The storage pools and installed kernels (the `linux-kernel` pool's volumes)
 * of a live system, for the checks of `kernel:`, `default_kernel:` and pool
 * names; what cannot be read stays unchecked.
 */
export async function liveStorage(qubes: Qubes): Promise<Pick<StackSystem, "pools" | "kernels">> {
  let pools: string[];
  try {
    pools = await qubes.pools();
  } catch {
    return {};
  }
  const out: Pick<StackSystem, "pools" | "kernels"> = { pools: [...pools].sort() };
  if (pools.includes("linux-kernel")) {
    try {
      out.kernels = [...(await qubes.pool("linux-kernel").volumes())].sort();
    } catch {
      // unknown: kernels stay unchecked
    }
  }
  return out;
}

/** The 1-based column of `offset` in `text`. */
export function columnAt(text: string, offset: number): number {
  return offset - (text.lastIndexOf("\n", offset - 1) + 1) + 1;
}

/** Prints diagnostics as `FILE:LINE:COL: severity[code]: message` (+ help). */
function printDiagnostics(diags: TemplateDiagnostic[], io: CliIO, to: NodeJS.WritableStream = io.stdout): void {
  const texts = new Map<string, string>();
  for (const d of diags) {
    let src = texts.get(d.file);
    if (src === undefined) texts.set(d.file, (src = inputsOf(io).text(d.file) ?? ""));
    const col = columnAt(src, d.span.start);
    to.write(`${placeShown(io.cwd, d.file)}:${d.line}:${col}: ${d.severity}[${d.code}]: ${d.message}\n`);
    if (d.help) to.write(`  help: ${d.help}\n`);
    // Where else it comes from: for a bundle's line, the use: of the instance it was read for.
    for (const r of relatedJson(d, io)) to.write(`  note: ${r.message}: ${r.file}:${r.line}:${r.column}\n`);
  }
}

/** A diagnostic's related places (a bundle instance's use: site) as FILE, LINE and COLUMN. */
function relatedJson(d: TemplateDiagnostic, io: CliIO): { file: string; line: number; column: number; message: string }[] {
  return (d.related ?? []).map((r) => {
    const src = inputsOf(io).text(r.file) ?? "";
    let line = 1;
    for (let i = src.indexOf("\n"); i >= 0 && i < r.span.start; i = src.indexOf("\n", i + 1)) line++;
    // The bundle's path in the message as the other paths are shown: relative to the current directory.
    const message = r.message.replace(/\((\/[^()]*)\)$/, (_m, p: string) => `(${placeShown(io.cwd, p)})`);
    return { file: placeShown(io.cwd, r.file), line, column: columnAt(src, r.span.start), message };
  });
}

function diagnosticJson(d: TemplateDiagnostic, io: CliIO): unknown {
  const src = inputsOf(io).text(d.file) ?? "";
  const col = columnAt(src, d.span.start);
  const related = relatedJson(d, io);
  return { file: placeShown(io.cwd, d.file), line: d.line, column: col, severity: d.severity, code: d.code, message: d.message, help: d.help ?? null, start: d.span.start, end: d.span.end, ...(related.length ? { related } : {}) };
}

function isModel(x: unknown): x is StackModel {
  const m = x as StackModel;
  return !!m && typeof m === "object" && m.format === 1 && typeof m.stack === "string" && Array.isArray(m.qubes) && Array.isArray(m.policy) && Array.isArray(m.expect);
}

/** Reads a stack: a `*.qubes.yaml` (checked) or a stack model as JSON (what `defineStack` returns). */
function loadStack(file: string, io: CliIO, system: StackSystem | undefined): { model?: StackModel; diagnostics: TemplateDiagnostic[] } {
  const abs = path.resolve(io.cwd, file);
  const read = inputsOf(io).outcome(abs);
  if (!("text" in read)) throw unreadable(file, abs, "a stack file (*.qubes.yaml) or a stack model (*.json)", read);
  if (abs.endsWith(".json")) {
    let data: unknown;
    try {
      data = JSON.parse(read.text);
    } catch {
      throw new ToolFailure(`${file} is not valid JSON (${jsonErrorAt(read.text, file)}); fix it or write a *.qubes.yaml file`, "invalid-json", true);
    }
    if (!isModel(data)) throw new ToolFailure(`${file} is not a stack model (expected "format": 1, "stack", "qubes", "policy", "expect"); write a *.qubes.yaml file or use defineStack`, "not-a-stack", true);
    return { model: data, diagnostics: [] };
  }
  const r = checkStack(stackReader(inputsOf(io)), abs, system ? { system } : {});
  return r.model ? { model: r.model, diagnostics: r.diagnostics } : { diagnostics: r.diagnostics };
}

/** Reads a policy directory (`NAME.policy`, `include/NAME`) as {@link PolicyTexts}. */
function readPolicyDir(dir: string): PolicyTexts {
  const out: PolicyTexts = {};
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    const f = readFailure((e as NodeJS.ErrnoException).code);
    throw new ToolFailure(`cannot read policy directory ${dir}: ${osMessage(e)}; ${f.advice}`, f.code, true);
  }
  for (const n of names) {
    const p = path.join(dir, n);
    if (!n.endsWith(".policy")) continue;
    try {
      if (fs.statSync(p).isFile()) out[n] = fs.readFileSync(p, "utf8");
    } catch (e) {
      const f = readFailure((e as NodeJS.ErrnoException).code);
      throw new ToolFailure(`cannot read policy file ${p}: ${osMessage(e)}; ${f.advice}`, f.code, true);
    }
  }
  const inc = path.join(dir, "include");
  // The same reads for the include directory, each failure one line with the OS's wording.
  const read = (p: string, what: string, f: () => void) => {
    try {
      f();
    } catch (e) {
      const r = readFailure((e as NodeJS.ErrnoException).code);
      throw new ToolFailure(`cannot read ${what} ${p}: ${osMessage(e)}; ${r.advice}`, r.code, true);
    }
  };
  let isDir = false;
  read(inc, "policy directory", () => {
    isDir = fs.existsSync(inc) && fs.statSync(inc).isDirectory();
  });
  if (isDir) {
    let inner: string[] = [];
    read(inc, "policy directory", () => {
      inner = fs.readdirSync(inc);
    });
    for (const n of inner) {
      const p = path.join(inc, n);
      read(p, "policy file", () => {
        if (fs.statSync(p).isFile()) out[`include/${n}`] = fs.readFileSync(p, "utf8");
      });
    }
  }
  return out;
}

const CHECK_USAGE = `usage: qkit template check FILE... [--json] [--system FILE | connection options]

Checks stack files (*.qubes.yaml, with their include: files and bundles):
unknown or misplaced keys, types and ranges per qube class, references to
qubes, netvm loops, embedded policy, expectations. Without a system model a
qube the stack does not declare is assumed to exist (an info note); with
--system FILE (a \`qkit system snapshot\` JSON) or a connection option it
must exist there. Kernels and storage pools are checked against the
installed ones with a connection, or with a system model that lists them
(\`qkit system snapshot\` does); otherwise each is noted as unchecked.

options:
  --json          print {"files": [{"file", "ok", "diagnostics": [...]}]}
  --system FILE   check references against this system model

exit status: 0 no errors, 1 errors, 2 usage or an input that cannot be read
(the other files are still checked).

${CONNECTION_USAGE}
`;

const WHATIF_USAGE = `usage: qkit template whatif FILE [--json] [--no-changes] [--call CALL]... [--policy-dir DIR] [--system FILE | connection options]

Computes what the qrexec policy will decide once the stack in FILE is
applied, without changing anything: the future system model (new qubes
with the tags qubesd adds, changed tags, default_dispvm, removed qubes) and
the future policy directory (the stack's generated files). Then checks
every expect: entry of the stack (a failure shows the deciding rule) and
lists every decision that changes, as grants and revocations, by service.

options:
  --json            print the report as JSON
  --policy-dir DIR  read today's policy from DIR instead of the policy admin api
  --system FILE     read today's system from a \`qkit system snapshot\` JSON
                    instead of the connection
  --applier NAME    the qube that will apply (qubesd tags new qubes
                    created-by-NAME; default dom0)
  --no-changes      check the expectations only
  --call 'SERVICE[+ARG] SOURCE -> TARGET'
                    decide this call today and once applied, with how the
                    future policy decides it (repeatable; qubes the stack
                    creates can be named)

exit status: 0 every expectation holds, 1 one fails (or an error), 2 usage.

${CONNECTION_USAGE}
`;

const EXPORT_USAGE = `usage: qkit template export [QUBE...] [--stack NAME] [--out FILE] [connection options]

Writes a stack file from the live system: per qube its class, label,
template and every other property that is not at its default, its features
(except those the qube reports about itself), services, tags (except the
automatic ones), firewall and device assignments; global properties not at
their default; custom labels. Without QUBE, every qube but dom0 and
auto-cleanup disposables. Review it, then \`qkit template plan --adopt\` it.
The output is a stack file (YAML, which is what \`template check\` and \`plan\`
read): there is no --json.

options:
  --stack NAME   the stack name written (default: exported)
  --out FILE     write to FILE instead of standard output (never over an existing file)

${CONNECTION_USAGE}
exit status: 0 written, 1 the Admin API refused or failed, or --out exists or cannot be
written ([file-exists], [cannot-write]), 2 usage error
`;

function hasConnection(a: ParsedArgs): boolean {
  return a.flags.has("--socket") || a.flags.has("--qrexec");
}

async function runCheck(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, [...CONNECTION_VALUE_FLAGS, "--system"], [...CONNECTION_BOOLEAN_FLAGS, "--json"]);
  if (a.positionals.length === 0) throw new UsageError("at least one FILE is required");
  const sysFile = a.flags.get("--system");
  if (typeof sysFile === "string" && hasConnection(a)) throw new UsageError("--system and a connection option exclude each other");
  let system: StackSystem | undefined;
  if (typeof sysFile === "string") system = stackSystemOf(readSystemFile(sysFile, io));
  else if (hasConnection(a) || (io.env["QUBESD_SOCKET"] ?? "") !== "") {
    const { qubes } = connectFor(a.flags, io);
    system = { ...stackSystemOf(await readWhatIfSystem(qubes)), ...(await liveStorage(qubes)) };
  }
  let errors = 0;
  let inputFailures = 0;
  const files: unknown[] = [];
  for (const file of a.positionals) {
    let r: ReturnType<typeof loadStack>;
    try {
      r = loadStack(file, io, system);
    } catch (e) {
      // A file that cannot be read is this file's input failure (exit 2): the other files are
      // still checked, and `--json` still prints one document.
      if (!(e instanceof ToolFailure)) throw e;
      if (e.input) inputFailures++;
      else errors++;
      if (a.flags.has("--json")) files.push({ file, ok: false, stack: null, diagnostics: [], error: { code: e.code, message: e.message } });
      else io.stderr.write(`qkit template check: ${e.message} [${e.code}]\n`);
      continue;
    }
    const n = r.diagnostics.filter((d) => d.severity === "error").length;
    errors += n;
    if (a.flags.has("--json")) files.push({ file, ok: n === 0, stack: r.model?.stack ?? null, diagnostics: r.diagnostics.map((d) => diagnosticJson(d, io)) });
    else {
      printDiagnostics(r.diagnostics, io);
      if (n === 0) io.stdout.write(`${file}: ok${r.model ? ` (stack ${r.model.stack}: ${r.model.qubes.length} qube${r.model.qubes.length === 1 ? "" : "s"}, ${r.model.policy.length} policy file${r.model.policy.length === 1 ? "" : "s"}, ${r.model.expect.length} expectation${r.model.expect.length === 1 ? "" : "s"})` : ""}\n`);
    }
  }
  if (a.flags.has("--json")) io.stdout.write(JSON.stringify({ ok: errors === 0 && inputFailures === 0, files }, null, 1) + "\n");
  else if (errors) io.stdout.write(`${errors} error${errors === 1 ? "" : "s"}\n`);
  return inputFailures ? 2 : errors ? 1 : 0;
}

async function runWhatIf(argv: string[], io: CliIO): Promise<number> {
  // `--call` may be given several times (the parser keeps the last of an option): taken out first.
  const { values: callTexts, rest: args } = takeRepeated(argv, "--call", "option --call needs a value: `SERVICE[+ARG] SOURCE -> TARGET`");
  const calls = callTexts.map((t) => {
    const r = parseExpectation({ call: t, decision: "deny" });
    if (!r.ok) throw new UsageError(`--call \`${t}\`: ${r.message}${r.help ? ` (${r.help})` : ""}`);
    const { service, argument, source, target } = r.expectation;
    return { service, argument, source, target };
  });
  const a = parseArgs(args, [...CONNECTION_VALUE_FLAGS, "--system", "--policy-dir", "--applier"], [...CONNECTION_BOOLEAN_FLAGS, "--json", "--no-changes"]);
  if (a.positionals.length !== 1) throw new UsageError(a.positionals.length ? "exactly one FILE is expected" : "FILE is required");
  // The stack file first: an unreadable one is said as such (exit 2), before anything connects.
  const fileAbs = path.resolve(io.cwd, a.positionals[0]!);
  const stackRead = inputsOf(io).outcome(fileAbs);
  if (!("text" in stackRead)) throw unreadable(a.positionals[0]!, fileAbs, "a stack file (*.qubes.yaml) or a stack model (*.json)", stackRead);
  const sysFile = a.flags.get("--system");
  const dir = a.flags.get("--policy-dir");
  if (typeof sysFile === "string" && hasConnection(a)) throw new UsageError("--system and a connection option exclude each other");
  const applier = a.flags.get("--applier");
  let conn: ReturnType<typeof connect> | undefined;
  const connection = () => (conn ??= connectFor(a.flags, io));
  const system = typeof sysFile === "string" ? readSystemFile(sysFile, io) : await readWhatIfSystem(connection().qubes);
  let policy: PolicyTexts;
  if (typeof dir === "string") policy = readPolicyDir(path.resolve(io.cwd, dir));
  else {
    const snap = await connection().policy.snapshot();
    for (const f of snap.skipped) io.stderr.write(`note: ${f.include ? "include/" : ""}${f.name} is left out: ${f.reason}\n`);
    policy = snap.texts;
  }
  const r = loadStack(a.positionals[0]!, io, stackSystemOf(system));
  if (!r.model) {
    printDiagnostics(r.diagnostics, io, a.flags.has("--json") ? io.stderr : io.stdout);
    throw new ToolFailure(`the stack has errors; fix them first (\`qkit template check ${a.positionals[0]}\`)`, "invalid-stack");
  }
  const stats: DiffStats = { services: 0, requests: 0, evaluated: 0, classes: 0 };
  const report = whatIf({ system, policy, stack: r.model, ...(typeof applier === "string" ? { applier } : {}), skipChanges: a.flags.has("--no-changes"), calls }, stats);
  // A call naming a qube that neither exists nor is created decides as the engine would (a missing
  // source is denied, a missing target is @default), which is rarely what was meant: said, with a guess.
  const after = Object.keys(report.future.system.domains ?? {});
  for (const c of calls)
    for (const [role, name] of [["source", c.source], ["target", c.target]] as const) {
      if (name.startsWith("@") || name.startsWith("uuid:") || after.includes(name)) continue;
      const near = closest(name, after, 1)[0];
      io.stderr.write(`qkit template whatif: warning: --call \`${c.service}${c.argument} ${c.source} -> ${c.target}\`: ${role} \`${name}\` is not a qube of the system after apply${near ? `; did you mean \`${near}\`?` : ""} [unknown-qube]\n`);
    }
  if (a.flags.has("--json")) {
    const doc = whatIfJson(report) as { calls?: Array<Record<string, unknown>> };
    // Each call with the whole explanation of the future decision, as `qkit policy explain --json` gives it.
    if (doc.calls) doc.calls = doc.calls.map((c, i) => ({ ...c, explanation: report.calls[i]?.explanation ? explanationJson(report.calls[i]!.explanation!) : null }));
    io.stdout.write(JSON.stringify({ ...doc, requests: stats.requests }, null, 1) + "\n");
  }
  else io.stdout.write(renderWhatIf(report, renderExplanation));
  return report.ok ? 0 : 1;
}

async function runExport(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, [...CONNECTION_VALUE_FLAGS, "--stack", "--out"], [...CONNECTION_BOOLEAN_FLAGS]);
  const stack = a.flags.get("--stack");
  if (typeof stack === "string" && !/^[a-z0-9][a-z0-9_-]*$/.test(stack)) throw new UsageError(`--stack must be lowercase letters, digits, _ and - (it names policy files), got \`${stack}\``);
  const { qubes } = connectFor(a.flags, io);
  const r = await exportStack(qubes, { ...(typeof stack === "string" ? { stack } : {}), ...(a.positionals.length ? { qubes: a.positionals } : {}) });
  const out = a.flags.get("--out");
  if (typeof out === "string") {
    // A stack file is the user's work: never overwrite one.
    try {
      fs.writeFileSync(path.resolve(io.cwd, out), r.yaml, { flag: "wx" });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EEXIST") throw new ToolFailure(`${out} already exists; choose another --out file or remove it first`, "file-exists");
      throw new ToolFailure(`cannot write ${out}: ${osMessage(e)}; check that its directory exists and is writable`, "cannot-write");
    }
    io.stderr.write(`wrote ${r.qubes.length} qube${r.qubes.length === 1 ? "" : "s"} to ${out}\n`);
  } else io.stdout.write(r.yaml);
  for (const n of r.notes) io.stderr.write(`note: ${n}\n`);
  return 0;
}

/** The `qkit template` check/schema/whatif/export commands. */
export const commands: Command[] = [
  { path: ["template", "check"], summary: "check stack files (*.qubes.yaml) without touching the system", usage: CHECK_USAGE, run: (args, io) => guarded(io, "check", () => runCheck(args, io)) },
  {
    path: ["template", "schema"],
    summary: "print the JSON Schema of stack files, for editors without qkit-lsp",
    usage: "usage: qkit template schema\n\nPrints a JSON Schema (draft 2020-12) of *.qubes.yaml files. Save it and point your editor's YAML support at it. The output is JSON already: there is no --json.\n\nexit status: 0, 2 usage error\n",
    run: (args, io) => guarded(io, "schema", async () => {
      const a = parseArgs(args, [], []);
      if (a.positionals.length) throw new UsageError(`unexpected argument \`${a.positionals[0]}\``);
      io.stdout.write(JSON.stringify(stackJsonSchema(), null, 2) + "\n");
      return 0;
    }),
  },
  { path: ["template", "whatif"], summary: "decide qrexec calls as they will be once a stack is applied", usage: WHATIF_USAGE, run: (args, io) => guarded(io, "whatif", () => runWhatIf(args, io)) },
  { path: ["template", "export"], summary: "write a stack file from the live system", usage: EXPORT_USAGE, run: (args, io) => guarded(io, "export", () => runExport(args, io)) },
];
