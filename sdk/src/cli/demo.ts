/**
 * `qkit demo`: the bundled demo machine (`examples/demo`), end to end.
 *
 * It starts the offline Admin API simulator on a private Unix socket, seeded
 * with the demo's `system.json` and `policy.d/`; reads the system model
 * (`internal.GetSystemInfo` shape) and the policy back through the SDK client
 * (`admin.*` calls and the policy admin API), as a script would on a real
 * dom0; validates the policy and decides a table of typical qrexec calls with
 * the language engine. `--offline` skips the simulator and reads the files.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { createMemoryFileSystem, decisionToJson, evaluate, loadPolicy, makeRequest, POLICY_DIR, prepareSystemInfo } from "@qubes-kit/language";
import type { Decision, Diagnostic, LoadedFile, LoadResult, PolicyError, PolicyFileSystem, PolicyRequest, RawSystemInfo, SystemInfo } from "@qubes-kit/language";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { createNodePolicyFileSystem } from "../policy-fs.js";
import { startSimulator } from "../sim/index.js";
import { UnixSocketTransport } from "../transport.js";
import { Qubes } from "../qubes.js";
import { systemInfo } from "../system-info.js";
import { PolicyAdmin } from "../policy-admin.js";

const USAGE = `usage: qkit demo [--json] [--dir DIR] [--offline]

Starts the offline Admin API simulator on a private Unix socket, seeded with
the demo machine; reads the system model and the policy back through the SDK
(admin.* calls and the policy admin API); prints the policy's validation
results, then decides a table of typical qrexec calls (file copy, clipboard,
disposables, split-gpg, updates, Admin API ...) and shows the decision, the
resolved or offered targets and the deciding rule.

DIR holds policy.d/ (mounted as ${POLICY_DIR}), system.json (an
internal.GetSystemInfo answer) and transfers.json (the calls to decide, each
{title, service, argument?, source, target}). Default: the bundled
examples/demo.

options:
  --json       print one JSON object instead of the tables (decisions in the
               format of \`qkit policy eval --json\`)
  --dir DIR    use another demo directory
  --offline    read the files directly instead of going through the simulator

exit status: 0 shown, 1 the demo directory or one of its files is missing or
invalid, 2 usage error
`;

/** One call of `transfers.json`. */
export interface DemoTransfer {
  title: string;
  service: string;
  argument?: string;
  source: string;
  target: string;
}

/** A decided transfer (`qkit demo --json` prints `decision` in the corpus form of `decisionToJson`). */
export interface DemoRow {
  title: string;
  request: Required<Pick<PolicyRequest, "service" | "argument" | "source" | "target">>;
  decision: Decision;
}

/** The whole result of the demo (what `qkit demo --json` prints, decisions aside). */
export interface DemoReport {
  dir: string;
  /** Where the system and the policy were read from. */
  source: { kind: "simulator"; socket: string; calls: string[]; skipped: string[] } | { kind: "files" };
  policy: {
    ok: boolean;
    files: string[];
    rules: number;
    error?: PolicyError;
    diagnostics: Diagnostic[];
  };
  qubes: number;
  transfers: DemoRow[];
}

/** Finds the bundled demo directory from the source (`sdk/src/cli`) or the built file (`sdk/dist`). */
export function defaultDemoDir(): string | undefined {
  for (const rel of ["../../examples/demo", "../../../examples/demo"]) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path.join(dir, "policy.d")) && existsSync(path.join(dir, "transfers.json"))) return dir;
  }
  return undefined;
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new DemoError(`cannot read ${what} ${file} [demo-missing-file]`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new DemoError(`${file}: not valid json (${err instanceof Error ? err.message : String(err)}) [demo-invalid-json]`);
  }
}

/** A problem with the demo directory itself (exit code 1, one-line message with a code). */
class DemoError extends Error {
  override name = "DemoError";
}

function parseTransfers(value: unknown, file: string): DemoTransfer[] {
  if (!Array.isArray(value)) throw new DemoError(`${file}: expected a list of transfers [demo-invalid-transfers]`);
  return value.map((t: unknown, i) => {
    const o = t as Record<string, unknown>;
    const str = (k: string, required: boolean): string | undefined => {
      const v = o?.[k];
      if (v === undefined && !required) return undefined;
      if (typeof v !== "string") throw new DemoError(`${file}: entry ${i + 1} needs a string "${k}" [demo-invalid-transfers]`);
      return v;
    };
    const argument = str("argument", false);
    return {
      title: str("title", false) ?? `transfer ${i + 1}`,
      service: str("service", true)!,
      ...(argument !== undefined ? { argument } : {}),
      source: str("source", true)!,
      target: str("target", false) ?? "",
    };
  });
}

/** The request of a transfer; a `+` in the service splits off the argument, as `qrexec-policy-exec` does. */
function toRequest(t: DemoTransfer): DemoRow["request"] {
  const r = t.argument === undefined ? makeRequest(t.service, t.source, t.target) : { service: t.service, argument: t.argument, source: t.source, target: t.target };
  return { service: r.service, argument: r.argument ?? "+", source: r.source, target: r.target ?? "" };
}

/**
 * Runs the demo on a directory and returns the report (no output) and the
 * files that took part in loading (for diagnostic columns).
 * Throws {@link DemoError} when the directory lacks a file or holds invalid JSON.
 */
export async function runDemo(dir: string, options: { offline?: boolean } = {}): Promise<{ report: DemoReport; files: readonly LoadedFile[] }> {
  if (!existsSync(path.join(dir, "policy.d"))) throw new DemoError(`${dir}: no policy.d directory [demo-missing-file]`);
  const seed = readJson(path.join(dir, "system.json"), "system model") as RawSystemInfo;
  if (!seed || typeof seed !== "object" || typeof seed.domains !== "object" || seed.domains === null) {
    throw new DemoError(`${path.join(dir, "system.json")}: expected {"domains": {...}} [demo-invalid-system]`);
  }
  const transfersFile = path.join(dir, "transfers.json");
  const transfers = parseTransfers(readJson(transfersFile, "transfer list"), transfersFile);

  let raw: RawSystemInfo = seed;
  let fs: PolicyFileSystem;
  let source: DemoReport["source"];
  if (options.offline) {
    fs = createNodePolicyFileSystem({ mounts: { [POLICY_DIR]: path.join(dir, "policy.d") } });
    source = { kind: "files" };
  } else {
    const live = await throughSimulator(seed, path.join(dir, "policy.d"));
    raw = live.system;
    fs = createMemoryFileSystem(live.texts);
    source = { kind: "simulator", socket: live.socket, calls: live.calls, skipped: live.skipped };
  }
  const system: SystemInfo = prepareSystemInfo(raw);
  const loaded: LoadResult = loadPolicy(fs, { collectAll: true });
  const loadedFiles: readonly LoadedFile[] = loaded.ok ? loaded.policy.files : loaded.files;
  const files = [...new Set(loadedFiles.map((f) => f.file))];

  const rows: DemoRow[] = transfers.map((t) => {
    const request = toRequest(t);
    let decision: Decision;
    if (loaded.ok) decision = evaluate(loaded.policy, request, system);
    else decision = { ...loaded.error, ok: false, stage: "load" };
    return { title: t.title, request, decision };
  });
  const report: DemoReport = {
    dir,
    source,
    policy: {
      ok: loaded.ok,
      files,
      rules: loaded.ok ? loaded.policy.rules.length : 0,
      ...(loaded.ok ? {} : { error: loaded.error }),
      diagnostics: loaded.diagnostics,
    },
    qubes: Object.keys(raw.domains).length,
    transfers: rows,
  };
  return { report, files: loadedFiles };
}

/** Every file under `dir`, as `relative/path` → text. */
function readTree(dir: string, prefix = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) Object.assign(out, readTree(p, `${prefix}${name}/`));
    else if (st.isFile()) out[prefix + name] = readFileSync(p, "utf8");
  }
  return out;
}

/**
 * Seeds a simulator on a private socket (mode 0600, in a fresh temporary
 * directory), then reads the system model and the policy back through the
 * SDK, exactly as against a real qubesd and policy admin service.
 */
async function throughSimulator(seed: RawSystemInfo, policyDir: string): Promise<{ system: RawSystemInfo; texts: Record<string, string>; skipped: string[]; socket: string; calls: string[] }> {
  const tmp = mkdtempSync(path.join(tmpdir(), "qkit-demo-"));
  const socket = path.join(tmp, "qubesd.sock");
  const server = await startSimulator({ socket, system: seed, policy: readTree(policyDir) });
  try {
    const transport = new UnixSocketTransport({ path: socket, servicesOverSocket: true });
    const system = await systemInfo(new Qubes({ transport }));
    const snapshot = await new PolicyAdmin(transport).snapshot();
    return {
      system,
      texts: snapshot.texts,
      skipped: snapshot.skipped.map((f) => (f.include ? `include/${f.name}` : `${f.name}.policy`)),
      socket,
      calls: ["admin.vm.List", "admin.vm.property.Get", "admin.vm.feature.Get", "admin.label.Get", "policy.List", "policy.include.List", "policy.Get", "policy.include.Get"],
    };
  } finally {
    await server.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Plain-text rendering.

interface Style {
  bold(s: string): string;
  dim(s: string): string;
  action(kind: "allow" | "ask" | "deny", s: string): string;
}

function makeStyle(color: boolean): Style {
  const wrap = (code: string) => (s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const colors = { allow: wrap("32"), ask: wrap("33"), deny: wrap("31") };
  return { bold: wrap("1"), dim: wrap("2"), action: (kind, s) => colors[kind](s) };
}

function ruleRef(d: Decision): string {
  const rule = d.rule;
  if (rule) return `${rule.file}:${rule.line ?? "?"}`;
  if (!d.ok && d.file !== undefined) return `${d.file}:${d.line ?? "?"}`;
  return "-";
}

/** At most this many offered targets are listed in the table; the rest go to a note. */
const MAX_OFFERED = 3;

interface Outcome {
  kind: "allow" | "ask" | "deny";
  result: string;
  /** A longer text for the notes below the table. */
  note?: string;
}

function outcome(d: Decision): Outcome {
  if (!d.ok) return { kind: "deny", result: d.error === "EngineError" ? "engine error" : "denied by the engine", note: d.message };
  switch (d.action) {
    case "allow": {
      const extras = [d.user !== null ? `user=${d.user}` : "", d.autostart ? "" : "no autostart", d.notify ? "notify" : ""].filter(Boolean);
      return { kind: "allow", result: `→ ${d.target}${extras.length ? ` (${extras.join(", ")})` : ""}` };
    }
    case "ask": {
      const offered = d.targetsForAsk;
      const def = d.defaultTarget !== null ? `, default ${d.defaultTarget}` : "";
      if (offered.length <= MAX_OFFERED) return { kind: "ask", result: `choose: ${offered.join(", ")}${def}` };
      return { kind: "ask", result: `choose among ${offered.length} targets${def}`, note: `offered: ${offered.join(", ")}` };
    }
    case "deny":
      return { kind: "deny", result: d.notify ? "denied" : "denied (no notification)" };
  }
}

/** The 1-based column of a diagnostic, from the document it belongs to. */
function columnOf(d: Diagnostic, files: readonly LoadedFile[]): number {
  const text = files.find((f) => f.file === d.file)?.text;
  if (text === undefined) return 1;
  const before = text.slice(0, d.span.start);
  return d.span.start - Math.max(before.lastIndexOf("\n"), before.lastIndexOf("\r")) ;
}

/** Wraps a long note at word boundaries, indenting the continuation lines. */
function wrap(text: string, width: number, indent: string): string {
  const words = text.split(" ");
  const lines: string[] = [];
  let cur = "";
  for (const w of words) {
    if (cur && cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines.join("\n" + indent);
}

/** Renders the report as aligned plain text (ANSI colours only when `color`). */
export function renderDemo(report: DemoReport, color: boolean, files: readonly LoadedFile[] = []): string {
  const st = makeStyle(color);
  const out: string[] = [];
  const p = report.policy;
  if (report.source.kind === "simulator") {
    out.push(st.bold("source: the offline Admin API simulator, seeded with the demo machine"));
    out.push(`  read through the SDK over ${report.source.socket}: ${report.source.calls.join(", ")}`);
    if (report.source.skipped.length) out.push(`  not readable through the policy admin API: ${report.source.skipped.join(", ")}`);
  }
  out.push(st.bold(`policy: ${path.join(report.dir, "policy.d")}`));
  const errors = p.diagnostics.filter((d) => d.severity === "error");
  const warnings = p.diagnostics.length - errors.length;
  for (const d of p.diagnostics) out.push(`  ${d.file ?? "?"}:${d.line}:${columnOf(d, files)}: ${d.severity}[${d.code}]: ${d.message}`);
  if (p.ok) {
    out.push(`  ok: ${p.files.length} files, ${p.rules} rules, no errors${warnings ? `, ${warnings} warning(s)` : ""}`);
  } else {
    if (errors.length === 0 && p.error) out.push(`  error[engine]: ${p.error.message}`);
    out.push(`  ${st.action("deny", "the policy does not load: the real engine would deny every call")}`);
  }
  out.push(`system: ${report.qubes} qubes (${path.join(report.dir, "system.json")})`, "");

  const header = ["#", "transfer / call", "decision", "result", "rule"];
  const notes: string[] = [];
  const noteNumbers = new Map<string, number>();
  const rows = report.transfers.map((row, i) => {
    const r = row.request;
    const svc = r.argument === "+" ? r.service : r.service + r.argument;
    const call = `${svc}  ${r.source} → ${r.target === "" ? "@default" : r.target}`;
    const o = outcome(row.decision);
    let result = o.result;
    if (o.note !== undefined) {
      let n = noteNumbers.get(o.note);
      if (n === undefined) {
        n = notes.length + 1;
        noteNumbers.set(o.note, n);
        // Engine messages stay on one line (they are quoted verbatim); target lists are wrapped.
        notes.push(`  [${n}] ${o.note.startsWith("offered: ") ? wrap(o.note, 96, "      ") : o.note}`);
      }
      result += ` [${n}]`;
    }
    return { cells: [String(i + 1), row.title, o.kind, result, ruleRef(row.decision)], kind: o.kind, call };
  });
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r.cells[c]!.length)));
  widths[1] = Math.max(widths[1]!, ...rows.map((r) => r.call.length));
  const line = (cells: string[], styleOf?: (c: number, s: string) => string) =>
    cells
      .map((cell, c) => {
        const padded = c === cells.length - 1 ? cell : cell.padEnd(widths[c]!);
        return styleOf ? styleOf(c, padded) : padded;
      })
      .join("  ")
      .trimEnd();
  out.push(st.bold(line(header)));
  for (const r of rows) {
    out.push(line(r.cells, (c, s) => (c === 2 ? st.action(r.kind, s) : s)));
    out.push(st.dim(`${" ".repeat(widths[0]! + 2)}${r.call}`));
  }
  if (notes.length) out.push("", "notes:", ...notes);
  const counts = { allow: 0, ask: 0, deny: 0 };
  for (const r of rows) counts[r.kind]++;
  out.push("", `${report.transfers.length} calls: ${counts.allow} allowed, ${counts.ask} asked, ${counts.deny} denied`);
  return out.join("\n") + "\n";
}

function parseArgs(args: string[]): { json: boolean; offline: boolean; dir?: string } {
  let json = false;
  let offline = false;
  let dir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--json") json = true;
    else if (a === "--offline") offline = true;
    else if (a === "--dir") {
      dir = args[++i];
      if (dir === undefined) throw new UsageError("--dir needs a directory");
    } else if (a.startsWith("--dir=")) dir = a.slice("--dir=".length);
    else throw new UsageError(`unknown option \`${a}\``);
  }
  return { json, offline, ...(dir !== undefined ? { dir } : {}) };
}

async function run(args: string[], io: CliIO): Promise<number> {
  const opts = parseArgs(args);
  const dir = opts.dir !== undefined ? path.resolve(io.cwd, opts.dir) : defaultDemoDir();
  if (dir === undefined) {
    io.stderr.write("qkit demo: the bundled demo directory was not found; pass --dir DIR [demo-missing-file]\n");
    return 1;
  }
  let report: DemoReport;
  let files: readonly LoadedFile[];
  try {
    ({ report, files } = await runDemo(dir, { offline: opts.offline }));
  } catch (err) {
    if (err instanceof DemoError) {
      io.stderr.write(`qkit demo: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (opts.json) {
    // Decisions in the corpus format of `qkit policy eval --json` (the oracle's format).
    const json = { ...report, transfers: report.transfers.map((t) => ({ ...t, decision: decisionToJson(t.decision) })) };
    io.stdout.write(JSON.stringify(json, null, 2) + "\n");
  } else {
    const stream = io.stdout as { isTTY?: boolean };
    const color = stream.isTTY === true && io.env.NO_COLOR === undefined && io.env.TERM !== "dumb";
    io.stdout.write(renderDemo(report, color, files));
  }
  return report.policy.ok ? 0 : 1;
}

/** The `qkit demo` command. */
export const commands: Command[] = [
  {
    path: ["demo"],
    summary: "validate the bundled demo policy and decide typical qrexec calls with it",
    usage: USAGE,
    run,
  },
];
