/**
 * `qkit policy check`: validate a policy the way the daemon loads it, and
 * report everything the language server shows in the editor (the engine's
 * errors and the analysis warnings of `language/src/services/analysis.ts`:
 * shadowed rules, unknown qubes/tags/types with a system model, legacy
 * tokens, disabled files …), from the same `analyzeWorkspace`.
 *
 * Output contracts (other tools depend on them):
 * - text: a `FILE:LINE:COL: SEVERITY[CODE]: MESSAGE` line per diagnostic,
 *   then the source line with a caret and the help (colour on a terminal);
 * - `--json` (= `--format json`): one object `{ok, rules, errors, warnings, diagnostics}`;
 * - `--format sarif`: SARIF 2.1.0; `--format github`: workflow commands;
 * - exit 0 (no error), 1 (an error; or a warning with `--strict`), 2 (usage),
 *   the same in every format.
 * The formats are pure functions of `@qubes-kit/language` (`report/`).
 */
import { isUtf8 } from "node:buffer";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync, writeSync } from "node:fs";
import * as path from "node:path";
// The engine entry only (no Chevrotain, no analysis services): `--engine-only` on a
// directory, the common case of large policies, starts without the rest. The
// editor's analysis (and SARIF's rule table) loads on demand from the full entry.
import {
  checkPolicy,
  ChunkWriter,
  findUtf8Problem,
  lineAtOffset,
  NOT_UTF8_HELP,
  notUtf8Message,
  countSeverities,
  lintText,
  mergeReportStreams,
  prepareSystemInfo,
  pyStrip,
  reportDiagnostic,
  invalidFilenameAsGiven,
  wantsColor,
  writeCheckJson,
  writeCheckText,
  writeGithub,
  LEGACY_POLICY_DIR,
  POLICY_DIR,
  type CheckReport,
  type ReportDiagnostic,
  type ReportStream,
  type SystemInfo,
  type Utf8Problem,
} from "@qubes-kit/language/engine";
import type { CliIO, Command } from "./command.js";
import { stdinToRead, UsageError } from "./command.js";
import { parseArgs, type ParsedArgs } from "./args.js";
import { EXIT, didYouMean, oneLine, osMessage } from "./text.js";
import { malformedQube, mountPolicy, readSystem, realPathOf } from "./policy.js";
import { CANNOT_WRITE, cannotWriteMessage, outputFile } from "./output.js";
import { inputClash } from "./inputs-read.js";

const FORMATS = ["text", "json", "sarif", "github"] as const;
type Format = (typeof FORMATS)[number];

const CHECK_USAGE = `usage: qkit policy check [options] PATH...|-
       qkit policy check --lint-compat [--show-line|-s] [--include-service|-i] [--json] FILE...|-

Validates qrexec policy. PATH is a policy.d directory (loaded as the daemon
loads /etc/qubes/policy.d: file order, includes, !compat-4.0) or single files
(each checked on its own, includes not followed).

Reports what the language server shows in the editor: the engine's errors
(the first is the one the real engine stops at, and then denies every call)
and the analysis warnings (shadowed rules, ask rules that can offer nothing,
legacy \`$\` tokens, file names that disable the policy, …; with a system
model also unknown qubes, tags, types and disposable templates).

options:
  --format text|json|sarif|github
                      text (default): FILE:LINE:COL: SEVERITY[CODE]: MESSAGE, then
                      the line with a caret and the help, in colour on a terminal
                      (never with NO_COLOR, always with FORCE_COLOR);
                      json: one object; sarif: SARIF 2.1.0 (code scanning);
                      github: GitHub Actions workflow commands (annotations)
  --json              the same as --format json
  --output FILE       write the report there instead of standard output
  --strict            warnings fail the check too (exit 1); notes (information) never do
  --engine-only       only what the real engine reports (no analysis warnings):
                      the loader's fast path, for very large policies
  --system FILE|live  the system model (internal.GetSystemInfo JSON, from
                      \`qkit system snapshot\`, or the live system): turns on the
                      checks of qube, tag and type names (and, with the services each
                      qube advertises: \`snapshot --services\` or live, of services
                      that no qube a rule can call provides)
  --runtime-dir DIR   runtime policy directory, loaded with the main one (/run/qubes/policy.d)
  --legacy-dir DIR    legacy R4.0 directory read by !compat-4.0 (/etc/qubes-rpc/policy)
  --include-service, -i
                      single files are in legacy service syntax (!include-service targets)
  --service SERVICE[+ARG]
                      with -i: the service (and argument) the file is included for, as
                      \`!include-service SERVICE ARG FILE\` names them; with --system,
                      turns on service-not-provided for the file's rules (a single file
                      checked alone reports it for allow rules and ask rules with
                      target=, never for ask offers, which come from the whole policy)
  --lint-compat       behave exactly like upstream qubes-policy-lint: each line on
                      its own, files in the order given, the first file with errors
                      ends the run
  --show-line, -s     with --lint-compat: append the line that caused each error

connection (for \`--system live\`):
  --socket PATH       qubesd socket (default $QUBESD_SOCKET or /var/run/qubesd.sock)
  --qrexec            call the Admin API through qrexec-client-vm (from a management qube)
  --timeout MS        give up on a call after this many milliseconds (default 120000, 0 = none)

A PATH of \`-\` reads one file from standard input.

exit status (the same in every format): 0 no error, 1 errors (or warnings
with --strict), 2 usage error
`;

/** The live system model (the Admin API client loads only here). */
async function liveSystem(a: ParsedArgs, io: CliIO): Promise<SystemInfo> {
  // The audit commands' reader: a failure is one line with its code ([connect-failed], [timeout]), exit 2.
  const { live, liveClients } = await import("./live.js");
  const { systemInfo } = await import("../system-info.js");
  const { qubes, conn } = await liveClients(a, io);
  return prepareSystemInfo(await live(conn, () => systemInfo(qubes, { services: true })));
}

/** Standard input's bytes. */
async function readAllBytes(io: CliIO): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stdinToRead(io, "the policy")) chunks.push(typeof c === "string" ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

/** Standard input as text. */
async function readAll(io: CliIO): Promise<string> {
  return (await readAllBytes(io)).toString("utf8");
}

/**
 * A file's report with the error of bytes that are not UTF-8 first: the daemon reads a policy
 * file as UTF-8 and fails on it (the check of one file reads its text, as an editor would).
 */
function withNotUtf8(report: CheckReport, name: string, text: string, bad: Utf8Problem | undefined): CheckReport {
  if (!bad) return report;
  const d = reportDiagnostic(
    { code: "not-utf8", severity: "error", message: notUtf8Message(name, bad), span: { start: bad.textOffset, end: bad.textOffset + 1 }, line: lineAtOffset(text, bad.textOffset), help: NOT_UTF8_HELP },
    name,
    text,
  );
  return { ...report, ok: false, errors: report.errors + 1, diagnostics: [d, ...report.diagnostics] };
}

/** A path as printed: relative to the working directory (as it always was), `/`-separated. */
function shown(cwd: string, real: string): string {
  return (path.relative(cwd, real) || real).split(path.sep).join("/");
}

/**
 * The files of a policy directory that the engine does not load (it reads
 * `*.policy` files only; other files are for `!include`), unless the policy
 * includes them: one note (`not-a-policy-file`) per file, a finding in every
 * format. Hidden files (editors' and version control's) are not named.
 */
function ignoredFiles(p: string, io: CliIO, loaded: (virtualPath: string) => boolean): ReportDiagnostic[] {
  let names: string[];
  try {
    names = readdirSync(path.resolve(io.cwd, p), { withFileTypes: true })
      .filter((e) => !e.isDirectory() && !e.name.startsWith(".") && !e.name.endsWith(".policy") && !loaded(`${POLICY_DIR}/${e.name}`))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
  return names.map((n) => ({
    file: shown(io.cwd, path.resolve(io.cwd, p, n)),
    line: 1,
    column: 1,
    endLine: 1,
    endColumn: 1,
    severity: "info" as const,
    code: NOT_A_POLICY_FILE,
    message: `\`${oneLine(n)}\` is not a \`*.policy\` file: the engine does not load it (only \`!include\` reads such files)`,
    help: `rename it to ${oneLine(policyNameFor(n))} to load it, or \`!include\` it from a policy file`,
  }));
}

/**
 * The name the engine would load a file as: its last extension replaced by
 * \`.policy\` (\`40-x.policy.bak\` is \`40-x.policy\`, not \`40-x.policy.policy\`),
 * lower-cased, and the characters the engine refuses in a policy file name
 * (outside [0-9a-z_.-]) as \`-\`, as the fix of [invalid-filename] renames.
 */
function policyNameFor(name: string): string {
  const dot = name.lastIndexOf(".");
  let stem = dot > 0 ? name.slice(0, dot) : name;
  if (stem.endsWith(".policy")) stem = stem.slice(0, -".policy".length);
  return stem.toLowerCase().replace(/[^0-9a-z_.-]/g, "-") + ".policy";
}

/** The code of a file of a policy directory that the engine does not load. */
const NOT_A_POLICY_FILE = "not-a-policy-file";

/** `report` with the notes of {@link ignoredFiles} added (after its diagnostics, which are not copied). */
function withIgnored(report: ReportStream, notes: ReportDiagnostic[]): ReportStream {
  return notes.length ? mergeReportStreams([report, { ok: true, rules: 0, errors: 0, warnings: 0, notes: notes.length, diagnostics: notes }]) : report;
}

/** The whole language core: the editor's parser and analysis (loaded only when a check needs them). */
type Full = typeof import("@qubes-kit/language");
type PolicySnapshot = import("@qubes-kit/language").PolicySnapshot;
let fullModule: Full | undefined;
async function full(): Promise<Full> {
  return (fullModule ??= await import("@qubes-kit/language"));
}

/** Checks a policy directory: the analysis of the whole policy, as the editor sees it. */
async function checkDirectory(p: string, a: ParsedArgs, system: SystemInfo | null, io: CliIO): Promise<ReportStream> {
  const src = mountPolicy(p, a.values.get("runtime-dir"), a.values.get("legacy-dir"), io.cwd);
  const { analyzeWorkspace, streamFromSnapshot } = await full();
  const snapshot = analyzeWorkspace(src.fs, { system, oneShot: true });
  const ignored = ignoredFiles(p, io, (v) => snapshot.files.has(v));
  if (snapshot.files.size === 0 && snapshot.diagnostics.size === 0 && snapshot.policyDiagnostics.length === 0) {
    io.stderr.write(`note: no policy files (*.policy) in \`${p}\`: with this policy every call is denied (no matching rule)\n`);
  }
  // Located as the output is written: the report of a huge policy is never held whole.
  const report = streamFromSnapshot(snapshot, {
    shownPath: (virtual) => shown(io.cwd, realPathOf(src, virtual)),
    policyLabel: shown(io.cwd, path.resolve(io.cwd, p)),
  });
  return withIgnored(report, ignored);
}

/** The service (and argument) an include-service file is checked for: `--service SERVICE[+ARG]`. */
interface ServiceFor {
  /** As given, for messages. */
  given: string;
  service: string;
  /** `*`, or `+ARG` (`+` alone: the empty argument), as `!include-service` takes it. */
  argument: string;
}

/** Reads `--service SERVICE[+ARG]` as `qrexec-policy-graph --service` and qrexec calls name a service. */
function serviceFor(given: string): ServiceFor {
  const plus = given.indexOf("+");
  const service = plus < 0 ? given : given.slice(0, plus);
  const argument = plus < 0 ? "*" : given.slice(plus);
  if (service === "" || /\s/.test(given) || service === "*") throw new UsageError(`\`--service ${given}\`: give one service name, with an argument after \`+\` if the include names one (\`--service qubes.Gpg\`, \`--service qubes.Gpg+key\`)`);
  return { given, service, argument };
}

/**
 * Checks one file on its own, as the editor checks a file that no policy
 * includes: its own lines and the analysis rules that look at one file. With a
 * system model that says what each qube advertises, also `service-not-provided`
 * for the rules whose calls do not depend on the rest of the policy (see
 * `serviceNotProvidedAlone`): a policy file's rules name their service; an
 * include-service file's (`-i`) service is the one `--service` gives, as the
 * `!include-service SERVICE ARGUMENT FILE` that includes it would.
 */
async function checkFile(name: string, text: string, serviceSyntax: boolean, system: SystemInfo | null, forService: ServiceFor | undefined, io: CliIO): Promise<CheckReport> {
  const { analyzeWorkspace, createMemoryFileSystem, reportFromSnapshot, hasSupportedRpc, serviceNotProvidedAlone, ANALYSIS_RULES } = await full();
  // The editor reads files of the legacy directory in service syntax.
  const virtual = serviceSyntax ? `${LEGACY_POLICY_DIR}/file` : "/qkit-check/file";
  const fs = createMemoryFileSystem({ [virtual]: text }, [POLICY_DIR]);
  const snapshot = analyzeWorkspace(fs, { system, runtimeDir: null, extraDocuments: [virtual], oneShot: true });
  const doc = snapshot.document(virtual);
  const rules = doc ? doc.lines.filter((l) => l.kind === "rule" && l.rule).length : 0;
  let view: PolicySnapshot = snapshot;
  if (system && hasSupportedRpc(system)) {
    if (serviceSyntax && !forService) {
      io.stderr.write(`note: \`${name}\` is read as an include-service file, whose rules get their service from the \`!include-service\` that includes it: give \`--service SERVICE[+ARG]\` to check the services its rules call (service-not-provided)\n`);
    } else {
      // The file as a policy that includes it would load it: its rules with their service.
      const included = "/qkit-check/include/file";
      const wrapper = `${POLICY_DIR}/30-qkit-check.policy`;
      const directive = forService ? `!include-service ${forService.service} ${forService.argument} ${included}` : `!include ${included}`;
      const off = Object.fromEntries(ANALYSIS_RULES.map((r) => [r.meta.name, "off" as const]));
      const loaded = analyzeWorkspace(createMemoryFileSystem({ [wrapper]: directive + "\n", [included]: text }, [POLICY_DIR]), { system, runtimeDir: null, oneShot: true, analysis: off });
      const refused = (loaded.diagnostics.get(wrapper) ?? []).find((d) => d.severity === "error");
      if (refused && forService) throw new UsageError(`\`--service ${forService.given}\`: ${refused.message}`);
      const inc = loaded.document(included);
      const found = inc ? serviceNotProvidedAlone(loaded.rules, { path: included, document: inc }, system) : [];
      if (found.length) {
        // After the file's other findings on the same place, as in a whole-policy check (a stable sort by place).
        const list = [...(snapshot.diagnostics.get(virtual) ?? []), ...found].map((d, i) => ({ d, i }));
        list.sort((x, y) => x.d.span.start - y.d.span.start || x.d.span.end - y.d.span.end || x.i - y.i);
        const diagnostics = new Map(snapshot.diagnostics);
        diagnostics.set(
          virtual,
          list.map((x) => x.d),
        );
        view = { ...snapshot, diagnostics };
      }
    }
  }
  return reportFromSnapshot(view, { shownPath: (v) => (v === virtual ? name : v), policyLabel: name, paths: [virtual], rules });
}

/**
 * `--engine-only`: only what the real engine reports, without building the
 * editor's analysis (the loader's fast validation path; for very large
 * policies where only "does it load" matters).
 */
function checkDirectoryEngineOnly(p: string, a: ParsedArgs, io: CliIO): ReportStream {
  const src = mountPolicy(p, a.values.get("runtime-dir"), a.values.get("legacy-dir"), io.cwd);
  const result = checkPolicy(src.fs);
  const loadedFiles = new Set(result.files.map((f) => f.path));
  const ignored = ignoredFiles(p, io, (v) => loadedFiles.has(v));
  if (result.files.length === 0 && result.diagnostics.length === 0) {
    io.stderr.write(`note: no policy files (*.policy) in \`${p}\`: with this policy every call is denied (no matching rule)\n`);
  }
  const texts = new Map(result.files.map((f) => [f.file, f.text] as const));
  // The order of the full check: files in load order, then the others by path, each by position;
  // problems of the whole policy last.
  const rank = new Map<string, number>();
  for (const f of result.files) if (!rank.has(f.file)) rank.set(f.file, rank.size);
  const virtualOf = (file: string) => (file.startsWith("/") ? file : path.posix.join(POLICY_DIR, file));
  const ordered = result.diagnostics
    .map((d, i) => ({ d, i }))
    .sort((x, y) => {
      const fx = x.d.file;
      const fy = y.d.file;
      if (fx !== fy) {
        if (fx === undefined || fy === undefined) return fx === undefined ? 1 : -1;
        const rx = rank.get(fx);
        const ry = rank.get(fy);
        if (rx !== undefined || ry !== undefined) return rx === undefined ? 1 : ry === undefined ? -1 : rx - ry;
        const vx = virtualOf(fx);
        const vy = virtualOf(fy);
        if (vx !== vy) return vx < vy ? -1 : 1;
      } else if (fx !== undefined) {
        const by = x.d.span.start - y.d.span.start || x.d.span.end - y.d.span.end;
        if (by) return by;
      }
      return x.i - y.i;
    });
  const diagnostics: ReportDiagnostic[] = ordered.map(({ d }) => {
    const file = d.file ?? "";
    const real = realPathOf(src, virtualOf(file));
    return reportDiagnostic(invalidFilenameAsGiven(d, (v) => shown(io.cwd, realPathOf(src, v))), shown(io.cwd, real), texts.get(file));
  });
  const { errors, warnings, notes } = countSeverities(diagnostics);
  const engineError = result.error && (result.error.error === "EngineError" || result.error.error === "AccessDenied") ? result.error.message : undefined;
  return withIgnored({ ok: errors === 0 && engineError === undefined, rules: result.rules, errors, warnings, notes, diagnostics, ...(engineError !== undefined ? { engineError } : {}) }, ignored);
}

/** `--engine-only` for a single file: its own lines, as the engine reads them. */
async function checkFileEngineOnly(name: string, text: string, serviceSyntax: boolean): Promise<CheckReport> {
  const { parseDocument } = await full();
  const doc = parseDocument(text, { syntax: serviceSyntax ? "service" : "policy" });
  const diagnostics = doc.diagnostics.map((d) => reportDiagnostic(d, name, text));
  const { errors, warnings, notes } = countSeverities(diagnostics);
  return { ok: errors === 0, rules: doc.lines.filter((l) => l.kind === "rule" && l.rule).length, errors, warnings, notes, diagnostics };
}

/**
 * The analysis reads every qube's properties: a qube entry that is not an
 * object (`"vault": null`) is refused as the audit commands refuse it, rather
 * than reported as internal errors of the rules that read it.
 */
function wellFormed(system: SystemInfo, file: string): SystemInfo {
  // (Also each qube's tags: the name checks read them as names.)
  const bad = malformedQube(system.domains, `the system model \`${file}\``);
  if (bad !== undefined) throw new UsageError(bad, "bad-system-model");
  return system;
}

async function runCheck(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(
    args,
    {
      json: true,
      format: "value",
      output: "value",
      strict: true,
      "engine-only": true,
      system: "value",
      "runtime-dir": "value",
      "legacy-dir": "value",
      "lint-compat": true,
      "include-service": true,
      service: "value",
      "show-line": true,
      socket: "value",
      qrexec: true,
      timeout: "value",
    },
    { "-s": "show-line", "-i": "include-service" },
  );
  if (a.positionals.length === 0) throw new UsageError("no PATH given");
  if (a.flags.has("lint-compat")) {
    for (const o of ["format", "output", "system", "service"]) if (a.values.has(o)) throw new UsageError(`\`--${o}\` does not go with \`--lint-compat\` (it prints exactly what qubes-policy-lint prints)`);
    if (a.flags.has("strict")) throw new UsageError("`--strict` does not go with `--lint-compat` (it prints exactly what qubes-policy-lint prints)");
    return runLintCompat(a, io);
  }
  if (a.flags.has("show-line")) throw new UsageError("`--show-line` goes with `--lint-compat`");
  const given = a.values.get("format");
  if (given !== undefined && !(FORMATS as readonly string[]).includes(given)) throw new UsageError(`unknown format \`${given}\`${didYouMean(given, FORMATS)}; --format is text, json, sarif or github`);
  if (a.flags.has("json") && given !== undefined && given !== "json") throw new UsageError(`\`--json\` means \`--format json\`; it does not go with \`--format ${given}\``);
  const format: Format = a.flags.has("json") ? "json" : ((given ?? "text") as Format);
  for (const o of ["socket", "timeout"]) if (a.values.has(o) && a.values.get("system") !== "live") throw new UsageError(`\`--${o}\` is for \`--system live\``);
  const engineOnly = a.flags.has("engine-only");
  if (engineOnly && a.values.has("system")) throw new UsageError("`--system` turns on analysis checks, which `--engine-only` leaves out");

  const givenService = a.values.get("service");
  if (givenService !== undefined) {
    if (!a.flags.has("include-service")) throw new UsageError("`--service` goes with `--include-service`/`-i` (a policy file's rules name their own service)");
    if (engineOnly) throw new UsageError("`--service` turns on analysis checks, which `--engine-only` leaves out");
    if (a.values.get("system") === undefined) throw new UsageError("`--service` is for the checks that need a system model: give `--system FILE|live` too");
  }
  const forService = givenService === undefined ? undefined : serviceFor(givenService);

  // Every PATH must exist before anything is read (a usage error, exit 2).
  for (const p of a.positionals) {
    if (p !== "-" && !existsSync(path.resolve(io.cwd, p))) throw new UsageError(`\`${p}\`: No such file or directory`);
  }
  const systemSpec = a.values.get("system");
  const system = systemSpec === undefined ? null : systemSpec === "live" ? await liveSystem(a, io) : wellFormed(readSystem(systemSpec, io), systemSpec);

  const reports: ReportStream[] = [];
  for (const p of a.positionals) {
    const abs = path.resolve(io.cwd, p);
    if (p !== "-" && statSync(abs).isDirectory()) reports.push(engineOnly ? checkDirectoryEngineOnly(p, a, io) : await checkDirectory(p, a, system, io));
    else {
      let bytes: Buffer;
      try {
        bytes = p === "-" ? await readAllBytes(io) : readFileSync(abs);
      } catch (e) {
        if (e instanceof UsageError) throw e;
        throw new UsageError(`cannot read \`${p}\`: ${osMessage(e)}; check the path and its permissions`, "cannot-read");
      }
      const text = bytes.toString("utf8");
      const bad = isUtf8(bytes) ? undefined : findUtf8Problem(bytes);
      const report = await (engineOnly ? checkFileEngineOnly(p, text, a.flags.has("include-service")) : checkFile(p, text, a.flags.has("include-service"), system, forService, io));
      reports.push(withNotUtf8(report, p, text, bad));
    }
  }
  const report = mergeReportStreams(reports);
  const strict = a.flags.has("strict");
  const failed = !report.ok || (strict && report.warnings > 0);

  const output = outputFile(a, "output");
  // The report is streamed in large chunks (a huge policy's report is never one string).
  let fd: number | undefined;
  const target = output === undefined ? undefined : path.resolve(io.cwd, output);
  // One behaviour for every command (see output.ts): the OS wording, `cannot-write`, exit 2.
  class CannotWrite {
    constructor(readonly cause: unknown) {}
  }
  const cannotWrite = (e: unknown): number => {
    io.stderr.write(`qkit policy check: ${cannotWriteMessage(output!, e)} [${CANNOT_WRITE}]\n`);
    return EXIT.usage;
  };
  if (target !== undefined) {
    const clash = inputClash("--output", output!, io.cwd);
    if (clash !== undefined) {
      io.stderr.write(`qkit policy check: ${clash} [output-is-input]\n`);
      return EXIT.usage;
    }
    try {
      fd = openSync(target, "w");
    } catch (e) {
      return cannotWrite(e);
    }
  }
  const out = new ChunkWriter(
    fd === undefined
      ? io.stdout === process.stdout
        ? stdoutSink()
        : (chunk) => void io.stdout.write(chunk)
      : (chunk) => {
          try {
            writeSync(fd!, chunk);
          } catch (e) {
            throw new CannotWrite(e);
          }
        },
  );
  let note = "";
  try {
    switch (format) {
      case "json":
        writeCheckJson(report, out);
        out.write("\n");
        break;
      case "sarif": {
        const { version } = await import("./main.js");
        const { writeSarif } = await full();
        const baseUri = `file://${io.cwd.split(path.sep).map(encodeURIComponent).join("/").replace(/\/?$/, "/")}`;
        writeSarif(report, { tool: { name: "qkit", version: version(), informationUri: "https://github.com/qubes-kit/qubes-kit" }, baseUri, stdinFile: "-" }, out);
        out.write("\n");
        break;
      }
      case "github":
        writeGithub(report, out);
        break;
      default: {
        const stream = output === undefined ? (io.stdout as { isTTY?: boolean }) : {};
        note = writeCheckText(report, { color: output === undefined && wantsColor(io.env, stream.isTTY === true), strict }, out);
      }
    }
    out.flush();
  } catch (e) {
    if (e instanceof CannotWrite) return cannotWrite(e.cause);
    throw e;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (note) io.stderr.write(note);
  return failed ? EXIT.failure : EXIT.ok;
}

/**
 * The process's standard output, written synchronously. `process.stdout`
 * queues what a pipe does not take at once (a report of 100 MB would wait in
 * memory); this waits for the reader instead. A reader that went away
 * (`EPIPE`, as with `| head`) gets nothing more, and the exit status stays
 * the check's.
 */
function stdoutSink(): (chunk: string) => void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  let closed = false;
  return (chunk) => {
    if (closed) return;
    // The chunk is written as a string (encoding it into a Buffer first cost more than the rest of
    // the write); only a partial write (a non-blocking pipe) needs its bytes, to go on from there.
    let bytes: Buffer | undefined;
    let done = 0;
    while (bytes === undefined || done < bytes.length) {
      try {
        if (bytes === undefined) {
          const n = writeSync(1, chunk);
          if (n >= Buffer.byteLength(chunk, "utf8")) return;
          bytes = Buffer.from(chunk, "utf8");
          done = n;
        } else done += writeSync(1, bytes, done, bytes.length - done);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // A non-blocking pipe that is full: wait a little for the reader.
        if (code === "EAGAIN") Atomics.wait(pause, 0, 0, 2);
        else if (code === "EPIPE") {
          closed = true;
          return;
        } else throw e;
      }
    }
  };
}

/**
 * `--lint-compat`: upstream `qubes-policy-lint`, file by file in the order
 * given (a directory stands for its `*.policy` files): each line on its own,
 * `-` for standard input, `-s`/`--show-line` appends the line, and the
 * first file with errors (or that does not exist) ends the run with exit 1.
 */
async function runLintCompat(a: ParsedArgs, io: CliIO): Promise<number> {
  const errors: string[] = [];
  const json = a.flags.has("json");
  const done = (code: number) => {
    if (json) io.stdout.write(JSON.stringify({ ok: code === 0, errors }) + "\n");
    return code;
  };
  for (const p of a.positionals) {
    const abs = path.resolve(io.cwd, p);
    const files = p !== "-" && existsSync(abs) && statSync(abs).isDirectory() ? listPolicyFiles(abs).map((n) => path.join(p, n)) : [p];
    for (const f of files) {
      let text: string;
      if (f === "-") text = await readAll(io);
      else {
        try {
          text = readFileSync(path.resolve(io.cwd, f), "utf8");
        } catch {
          // The linter's own words (it then stops with a traceback).
          errors.push(`${f}:0: error: File does not exist.`);
          if (!json) io.stdout.write(errors[errors.length - 1] + "\n");
          return done(EXIT.failure);
        }
      }
      const r = lintText(text, { name: f, includeService: a.flags.has("include-service") });
      if (r.errors.length === 0) continue;
      const lines = text === "" ? [] : text.split(/\r\n|\r|\n/);
      for (const e of r.errors) {
        let out = e;
        if (a.flags.has("show-line")) {
          const m = /^.*?:(\d+): error:/.exec(e.slice(f.length));
          const n = m ? Number(m[1]) : 0;
          out += `: ${pyStrip(lines[n - 1] ?? "")}`;
        }
        errors.push(out);
        if (!json) io.stdout.write(out + "\n");
      }
      return done(EXIT.failure);
    }
  }
  return done(EXIT.ok);
}

function listPolicyFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith(".policy") && !n.startsWith("."))
    .sort();
}

export const commands: Command[] = [{ path: ["policy", "check"], summary: "validate a policy.d directory or policy files, with the editor's warnings", usage: CHECK_USAGE, run: runCheck }];
