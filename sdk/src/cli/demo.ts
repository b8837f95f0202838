/**
 * `qkit demo`: loads the bundled demo policy (`examples/demo`), validates it
 * and decides a table of typical qrexec calls with the language engine.
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { evaluate, loadPolicy, POLICY_DIR, prepareSystemInfo } from "@qubes-kit/language";
import type { Decision, Diagnostic, LoadedFile, LoadResult, PolicyError, PolicyRequest, RawSystemInfo, SystemInfo } from "@qubes-kit/language";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { createNodePolicyFileSystem } from "../policy-fs.js";

const USAGE = `usage: qkit demo [--json] [--dir DIR]

Loads the demo policy, prints its validation results, then decides a table of
typical qrexec calls (file copy, clipboard, disposables, split-gpg, updates,
Admin API ...) and shows the decision, the resolved or offered targets and the
deciding rule.

DIR holds policy.d/ (mounted as ${POLICY_DIR}), system.json (an
internal.GetSystemInfo answer) and transfers.json (the calls to decide, each
{title, service, argument?, source, target}). Default: the bundled
examples/demo.

options:
  --json       print one JSON object instead of the tables
  --dir DIR    use another demo directory
`;

/** One call of `transfers.json`. */
export interface DemoTransfer {
  title: string;
  service: string;
  argument?: string;
  source: string;
  target: string;
}

/** A decided transfer, as `qkit demo --json` prints it. */
export interface DemoRow {
  title: string;
  request: Required<Pick<PolicyRequest, "service" | "argument" | "source" | "target">>;
  decision: Decision;
}

/** The whole result of the demo, as `qkit demo --json` prints it. */
export interface DemoReport {
  dir: string;
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
  let service = t.service;
  let argument = t.argument;
  if (argument === undefined) {
    const plus = service.indexOf("+");
    if (plus >= 0) {
      argument = service.slice(plus);
      service = service.slice(0, plus);
    } else argument = "+";
  }
  return { service, argument, source: t.source, target: t.target };
}

/**
 * Runs the demo on a directory and returns the report (no output).
 * Throws {@link DemoError} when the directory lacks a file or holds invalid JSON.
 */
export function runDemo(dir: string): DemoReport {
  if (!existsSync(path.join(dir, "policy.d"))) throw new DemoError(`${dir}: no policy.d directory [demo-missing-file]`);
  const raw = readJson(path.join(dir, "system.json"), "system model") as RawSystemInfo;
  if (!raw || typeof raw !== "object" || typeof raw.domains !== "object" || raw.domains === null) {
    throw new DemoError(`${path.join(dir, "system.json")}: expected {"domains": {...}} [demo-invalid-system]`);
  }
  const transfersFile = path.join(dir, "transfers.json");
  const transfers = parseTransfers(readJson(transfersFile, "transfer list"), transfersFile);
  const system: SystemInfo = prepareSystemInfo(raw);

  const fs = createNodePolicyFileSystem({ mounts: { [POLICY_DIR]: path.join(dir, "policy.d") } });
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
  return {
    dir,
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

/** Pads to a visible width (ANSI escapes do not count). */
function pad(s: string, width: number): string {
  const visible = s.replace(/\x1b\[[0-9;]*m/g, "").length;
  return visible >= width ? s : s + " ".repeat(width - visible);
}

function ruleRef(d: Decision): string {
  const rule = d.rule;
  if (rule) return `${rule.file}:${rule.line ?? "?"}`;
  if (!d.ok && d.file !== undefined) return `${d.file}:${d.line ?? "?"}`;
  return "-";
}

const MAX_OFFERED = 4;

function outcome(d: Decision): { kind: "allow" | "ask" | "deny"; result: string; note?: string } {
  if (!d.ok) return { kind: "deny", result: d.error === "EngineError" ? "engine error" : "refused", note: d.message };
  switch (d.action) {
    case "allow": {
      const extras = [d.user !== null ? `user=${d.user}` : "", d.autostart ? "" : "no autostart", d.notify ? "notify" : ""].filter(Boolean);
      return { kind: "allow", result: `→ ${d.target}${extras.length ? ` (${extras.join(", ")})` : ""}` };
    }
    case "ask": {
      const offered = d.targetsForAsk;
      const shown = offered.slice(0, MAX_OFFERED).join(", ");
      const more = offered.length > MAX_OFFERED ? `, … (${offered.length} in all)` : "";
      const def = d.defaultTarget !== null ? `; default ${d.defaultTarget}` : "";
      return { kind: "ask", result: `offer ${shown}${more}${def}` };
    }
    case "deny":
      return { kind: "deny", result: d.notify ? "denied" : "denied silently" };
  }
}

function diagnosticLine(d: Diagnostic): string {
  return `${d.file ?? "?"}:${d.line}: ${d.severity}: ${d.message} [${d.code}]`;
}

/** Renders the report as aligned plain text. */
export function renderDemo(report: DemoReport, color: boolean): string {
  const st = makeStyle(color);
  const out: string[] = [];
  const p = report.policy;
  out.push(st.bold(`policy ${path.join(report.dir, "policy.d")}`));
  const errors = p.diagnostics.filter((d) => d.severity === "error");
  const others = p.diagnostics.filter((d) => d.severity !== "error");
  if (p.ok) {
    out.push(`  ok: ${p.files.length} files, ${p.rules} rules${others.length ? `, ${others.length} warning(s)` : ", no problems found"}`);
  } else {
    out.push(`  ${st.action("deny", "error")}: the policy does not load, so the engine denies every call`);
    if (errors.length === 0 && p.error) out.push(`  ${p.error.message} [${p.error.code}]`);
  }
  for (const d of p.diagnostics) out.push(`  ${diagnosticLine(d)}`);
  out.push(`system: ${report.qubes} qubes`, "");

  const header = ["#", "transfer", "call", "decision", "result", "rule"];
  const notes: string[] = [];
  const rows = report.transfers.map((row, i) => {
    const r = row.request;
    const svc = r.argument === "+" ? r.service : r.service + r.argument;
    const call = `${svc}: ${r.source} → ${r.target === "" ? "@default" : r.target}`;
    const o = outcome(row.decision);
    let result = o.result;
    if (o.note !== undefined) {
      notes.push(`  [${notes.length + 1}] ${o.note}`);
      result += ` [${notes.length}]`;
    }
    return [String(i + 1), row.title, call, st.action(o.kind, o.kind), result, ruleRef(row.decision)];
  });
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.replace(/\x1b\[[0-9;]*m/g, "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === cells.length - 1 ? cell : pad(cell, widths[c]!)))
      .join("  ")
      .trimEnd();
  out.push(st.bold(line(header)));
  for (const r of rows) out.push(line(r));
  if (notes.length) out.push("", "notes (the engine's messages):", ...notes);
  const counts = { allow: 0, ask: 0, deny: 0 };
  for (const r of report.transfers) counts[outcome(r.decision).kind]++;
  out.push("", `${report.transfers.length} calls: ${counts.allow} allowed, ${counts.ask} asked, ${counts.deny} denied`);
  return out.join("\n") + "\n";
}

function parseArgs(args: string[]): { json: boolean; dir?: string } {
  let json = false;
  let dir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--json") json = true;
    else if (a === "--dir") {
      dir = args[++i];
      if (dir === undefined) throw new UsageError("--dir needs a directory");
    } else if (a.startsWith("--dir=")) dir = a.slice("--dir=".length);
    else throw new UsageError(`unknown option \`${a}\``);
  }
  return { json, ...(dir !== undefined ? { dir } : {}) };
}

async function run(args: string[], io: CliIO): Promise<number> {
  const opts = parseArgs(args);
  const dir = opts.dir !== undefined ? path.resolve(io.cwd, opts.dir) : defaultDemoDir();
  if (dir === undefined) {
    io.stderr.write("qkit demo: the bundled demo directory was not found; pass --dir DIR [demo-missing-file]\n");
    return 1;
  }
  let report: DemoReport;
  try {
    report = runDemo(dir);
  } catch (err) {
    if (err instanceof DemoError) {
      io.stderr.write(`qkit demo: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (opts.json) {
    io.stdout.write(JSON.stringify(report, null, 2) + "\n");
  } else {
    const stream = io.stdout as { isTTY?: boolean };
    const color = stream.isTTY === true && io.env.NO_COLOR === undefined && io.env.TERM !== "dumb";
    io.stdout.write(renderDemo(report, color));
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
