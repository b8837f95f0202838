/**
 * `qkit policy check`: the policy language from the command line (`eval` and
 * `explain` are in `policy-eval.ts`).
 *
 * Output contracts (other tools depend on them):
 * - `check` prints `FILE:LINE:COL: SEVERITY[CODE]: MESSAGE` lines and exits 0
 *   (clean), 1 (an error diagnostic) or 2 (usage); `--json` prints one object.
 * - `eval --json`, `eval --requests` and `eval --cases` print one JSON object a
 *   line, in the format of the conformance corpus (`decisionToJson`).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import {
  checkPolicy,
  lintText,
  parseDocument,
  prepareSystemInfo,
  printRule,
  pyStrip,
  LEGACY_POLICY_DIR,
  POLICY_DIR,
  RUNTIME_POLICY_DIR,
  type Diagnostic,
  type SystemInfo,
} from "@qubes-kit/language";
import { createNodePolicyFileSystem } from "../policy-fs.js";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { parseArgs, type ParsedArgs } from "./args.js";
import { EXIT, osMessage } from "./text.js";
import { describeDecision, renderExplanation } from "../node-render.js";

export { describeDecision, renderExplanation };

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/** 1-based line and column of an offset (line ends as the engine counts them). */
export function position(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

function columnOf(text: string | undefined, d: Diagnostic): number {
  if (text === undefined) return 1;
  let i = d.span.start;
  while (i > 0) {
    const c = text.charCodeAt(i - 1);
    if (c === 10 || c === 13) break;
    i--;
  }
  return d.span.start - i + 1;
}

export interface PolicySource {
  /** What the user named, for messages. */
  label: string;
  fs: ReturnType<typeof createNodePolicyFileSystem>;
  /** Real directory of each virtual standard directory (for printing real paths). */
  mounts: Record<string, string>;
}

/** Mounts a real policy directory (and optional runtime/legacy dirs) at the engine's standard paths. */
export function mountPolicy(policyDir: string, runtimeDir: string | undefined, legacyDir: string | undefined, cwd: string): PolicySource {
  const abs = path.resolve(cwd, policyDir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new UsageError(`not a directory: \`${policyDir}\` (${existsSync(abs) ? "Not a directory" : "No such file or directory"})`);
  const mounts: Record<string, string> = { [POLICY_DIR]: abs };
  for (const [option, dir, virtual] of [
    ["--runtime-dir", runtimeDir, RUNTIME_POLICY_DIR],
    ["--legacy-dir", legacyDir, LEGACY_POLICY_DIR],
  ] as const) {
    if (dir === undefined) continue;
    const real = path.resolve(cwd, dir);
    if (!existsSync(real) || !statSync(real).isDirectory()) throw new UsageError(`${option}: not a directory: \`${dir}\``);
    mounts[virtual] = real;
  }
  // On a real dom0 (the standard directory itself), absolute includes reach the real disk too.
  const passthrough = abs === POLICY_DIR;
  return { label: policyDir, fs: createNodePolicyFileSystem({ mounts, passthrough }), mounts };
}

/** A virtual path printed as the real path the user knows. */
function realPathOf(src: PolicySource, virtual: string): string {
  for (const [virt, real] of Object.entries(src.mounts)) {
    if (virtual === virt) return real;
    if (virtual.startsWith(virt + "/")) return path.join(real, virtual.slice(virt.length + 1));
  }
  return virtual;
}

export function readSystem(file: string | undefined, io: CliIO): SystemInfo {
  if (file === undefined) return prepareSystemInfo({ domains: {} });
  let text: string;
  try {
    text = readFileSync(path.resolve(io.cwd, file), "utf8");
  } catch (e) {
    throw new UsageError(`cannot read the system model \`${file}\`: ${osMessage(e)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`the system model \`${file}\` is not valid JSON (${e instanceof Error ? e.message.split("\n")[0] : String(e)}); make one with \`qkit system snapshot\``);
  }
  if (!raw || typeof raw !== "object" || typeof (raw as { domains?: unknown }).domains !== "object") {
    throw new UsageError(`the system model \`${file}\` is not an internal.GetSystemInfo answer (no \`domains\` object)`);
  }
  return prepareSystemInfo(raw as { domains: Record<string, never> });
}

function sev(d: Diagnostic): string {
  return d.severity;
}

// ---------------------------------------------------------------------------
// qkit policy check
// ---------------------------------------------------------------------------

const CHECK_USAGE = `usage: qkit policy check [--runtime-dir DIR] [--legacy-dir DIR] [--include-service|-i] [--json] PATH...|-
       qkit policy check --lint-compat [--show-line|-s] [--include-service|-i] [--json] FILE...|-

Validates qrexec policy. PATH is a policy.d directory (loaded as the daemon
loads /etc/qubes/policy.d: file order, includes, !compat-4.0) or single files
(each checked on its own, includes not followed).

Prints FILE:LINE:COL: SEVERITY[CODE]: MESSAGE for every problem; the first
error is the one the real engine stops at (and then denies every call).

options:
  --runtime-dir DIR   runtime policy directory, loaded with the main one (/run/qubes/policy.d)
  --legacy-dir DIR    legacy R4.0 directory read by !compat-4.0 (/etc/qubes-rpc/policy)
  --include-service, -i
                      single files are in legacy service syntax (!include-service targets)
  --lint-compat       behave exactly like upstream qubes-policy-lint: each line on
                      its own, files in the order given, the first file with errors
                      ends the run
  --show-line, -s     with --lint-compat: append the line that caused each error
  --json              print one JSON object

A PATH of \`-\` reads one file from standard input.

exit status: 0 no error, 1 errors, 2 usage error
`;

interface CheckEntry {
  file: string;
  line: number;
  column: number;
  endColumn: number;
  severity: string;
  code: string;
  message: string;
  help?: string;
}

async function runCheck(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, { json: true, "runtime-dir": "value", "legacy-dir": "value", "lint-compat": true, "include-service": true, "show-line": true }, { "-s": "show-line", "-i": "include-service" });
  if (a.positionals.length === 0) throw new UsageError("no PATH given");
  if (a.flags.has("lint-compat")) return runLintCompat(a, io);
  if (a.flags.has("show-line")) throw new UsageError("`--show-line` goes with `--lint-compat`");
  const entries: CheckEntry[] = [];
  let rules = 0;
  let engineError: string | undefined;
  for (const p of a.positionals) {
    const abs = path.resolve(io.cwd, p);
    if (p !== "-" && !existsSync(abs)) throw new UsageError(`\`${p}\`: No such file or directory`);
    const isDir = p !== "-" && statSync(abs).isDirectory();
    if (isDir) {
      const src = mountPolicy(p, a.values.get("runtime-dir"), a.values.get("legacy-dir"), io.cwd);
      const result = checkPolicy(src.fs);
      rules += result.rules;
      if (result.files.length === 0 && result.diagnostics.length === 0) {
        io.stderr.write(`note: no policy files (*.policy) in \`${p}\`: with this policy every call is denied (no matching rule)\n`);
      }
      if (result.error && (result.error.error === "EngineError" || result.error.error === "AccessDenied")) engineError ??= result.error.message;
      const texts = new Map(result.files.map((f) => [f.file, f.text] as const));
      for (const d of result.diagnostics) {
        const file = d.file ?? "";
        const shown = realPathOf(src, file.startsWith("/") ? file : path.posix.join(POLICY_DIR, file));
        const text = texts.get(file);
        const column = columnOf(text, d);
        entries.push({ file: path.relative(io.cwd, shown) || shown, line: d.line, column, endColumn: column + (d.span.end - d.span.start), severity: sev(d), code: d.code, message: d.message, ...(d.help ? { help: d.help } : {}) });
      }
    } else {
      const text = p === "-" ? await readAll(io) : readFileSync(abs, "utf8");
      const doc = parseDocument(text, { syntax: a.flags.has("include-service") ? "service" : "policy" });
      rules += doc.lines.filter((l) => l.kind === "rule" && l.rule).length;
      for (const d of doc.diagnostics) {
        const column = columnOf(text, d);
        entries.push({ file: p, line: d.line, column, endColumn: column + (d.span.end - d.span.start), severity: sev(d), code: d.code, message: d.message, ...(d.help ? { help: d.help } : {}) });
      }
    }
  }
  const errors = entries.filter((e) => e.severity === "error").length;
  const ok = errors === 0 && engineError === undefined;
  if (a.flags.has("json")) {
    io.stdout.write(JSON.stringify({ ok, rules, errors, warnings: entries.length - errors, diagnostics: entries }) + "\n");
  } else {
    for (const e of entries) io.stdout.write(`${e.file}:${e.line}:${e.column}: ${e.severity}[${e.code}]: ${e.message}\n`);
    if (engineError && !entries.some((e) => e.severity === "error")) io.stdout.write(`error[engine]: ${engineError}\n`);
    const summary = ok ? `ok: ${rules} rules, no errors` : `${errors || 1} error${(errors || 1) === 1 ? "" : "s"}: the real engine would deny every call`;
    (ok ? io.stdout : io.stderr).write(`${summary}${entries.length - errors ? `, ${entries.length - errors} warning(s)` : ""}\n`);
  }
  return ok ? 0 : 1;
}

/** Standard input as text. */
async function readAll(io: CliIO): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of io.stdin) chunks.push(typeof c === "string" ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * \`--lint-compat\`: upstream \`qubes-policy-lint\`, file by file in the order
 * given (a directory stands for its \`*.policy\` files): each line on its own,
 * \`-\` for standard input, \`-s\`/\`--show-line\` appends the line, and the
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

export const commands: Command[] = [
  { path: ["policy", "check"], summary: "validate a policy.d directory or policy files", usage: CHECK_USAGE, run: runCheck },
];
