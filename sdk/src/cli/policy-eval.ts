/**
 * `qkit policy eval | explain`: decide qrexec calls as the policy daemon does.
 *
 * Output contract (other tools depend on it): `eval --json`, `eval --requests`
 * and `eval --cases` print one JSON object a line, in the format of the
 * conformance corpus (`decisionToJson`).
 */
import { decisionToJson, evaluate, execRefusal, explain, makeRequest, type Decision, type Explanation, type PolicyRequest, type PolicyRule } from "@qubes-kit/language/engine";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { parseArgs, type ParsedArgs } from "./args.js";
import { EXIT, oneLine } from "./text.js";
import { describeDecision, renderExplanation, ruleText } from "../node-render.js";
import { mountPolicy, readSystem, type PolicySource } from "./policy.js";
import { loadErrorJson, loadForEval, requestWarnings } from "./eval-requests.js";
import { runCases, runRequestStream } from "./eval-stream.js";

const EVAL_OPTIONS = {
  "policy-dir": "value",
  "runtime-dir": "value",
  "legacy-dir": "value",
  system: "value",
  requests: "value",
  cases: "value",
  json: true,
  echo: true,
} as const;

const EVAL_USAGE = `usage: qkit policy eval --policy-dir DIR [--runtime-dir DIR] [--legacy-dir DIR] --system SYSTEM.json
                        SERVICE[+ARG] SOURCE [TARGET] [--json] [--echo]
       qkit policy eval --policy-dir DIR ... --system SYSTEM.json --requests REQUESTS.jsonl|- [--echo]
       qkit policy eval --cases CASES.jsonl|- [--echo]

Decides qrexec calls exactly as the qrexec policy daemon (qubes-core-qrexec 4.4.2) does.
TARGET omitted or "" means @default. SYSTEM.json is an internal.GetSystemInfo answer
(qkit system snapshot); without --system the system has no qubes.

options:
  --policy-dir DIR    the policy.d directory (seen as /etc/qubes/policy.d)
  --runtime-dir DIR   runtime policy directory (/run/qubes/policy.d)
  --legacy-dir DIR    legacy R4.0 directory for !compat-4.0 (/etc/qubes-rpc/policy)
  --system FILE       the system model
  --requests FILE     one request a line ({"service","argument","source","target"}); one decision a line out
                      (a blank line has none: --echo pairs them)
  --cases FILE|-      conformance cases (shared corpus format); one output line per case
  --json              print the decision as JSON (corpus format)
  --echo              each output carries the request it answers (JSON: a
                      "request" member; text: the request before the decision)

Warnings (standard error, the decision is still printed): a SOURCE or TARGET
that is not a qube of SYSTEM.json (the daemon never sees such a source; a
target that does not exist becomes @default), an argument without its
leading \`+\` in a --requests line, and no --system at all.

exit status:
  0  allowed
  1  denied (by a rule, by no rule, the policy does not load, or the daemon
     refuses what the policy allows: a call from a qube to itself)
  2  usage error; with --requests/--cases: a line was malformed (its output
     line says which; the other lines are decided)
  3  asked (the user would be prompted)
  with --requests/--cases: 0 when every line was read, whatever the decisions
`;

const EXPLAIN_USAGE = `usage: qkit policy explain --policy-dir DIR [--runtime-dir DIR] [--legacy-dir DIR] --system SYSTEM.json
                           SERVICE[+ARG] SOURCE [TARGET] [--json] [--echo]

Decides one qrexec call and explains it: every rule considered before the
deciding one and why it did not match, the deciding rule, how the target was
resolved, and for ask where each offered target came from.

options: as for \`qkit policy eval\` (--policy-dir, --runtime-dir, --legacy-dir,
--system, --json, --echo)

exit status: as for \`qkit policy eval\`: 0 allowed, 1 denied, 2 usage error, 3 asked
`;

/** The policy directories the arguments name (usage errors first, before anything is read). */
function sourceOf(a: ParsedArgs, io: CliIO): PolicySource {
  const dir = a.values.get("policy-dir");
  if (dir === undefined) throw new UsageError("`--policy-dir` is required");
  return mountPolicy(dir, a.values.get("runtime-dir"), a.values.get("legacy-dir"), io.cwd);
}

function requestFromArgs(pos: string[]): PolicyRequest {
  if (pos.length === 4 && !pos[0]!.includes("+")) {
    throw new UsageError(`expected SERVICE[+ARG] SOURCE [TARGET]; did you mean \`${pos[0]}+${pos[1]!.replace(/^\+/, "")} ${pos[2]} ${pos[3]}\`?`);
  }
  if (pos.length < 2 || pos.length > 3) throw new UsageError("expected SERVICE[+ARG] SOURCE [TARGET]");
  return makeRequest(pos[0]!, pos[1]!, pos[2] ?? "");
}

const NO_SYSTEM_WARNING =
  "no --system: the system has no qubes, so the engine fails on any source qube (the daemon always knows its qubes); pass --system SYSTEM.json, made by `qkit system snapshot --socket PATH` (e.g. examples/demo/system.json) [no-system]";

function exitFor(d: Decision): number {
  if (!d.ok || d.action === "deny" || execRefusal(d) !== undefined) return EXIT.failure;
  return d.action === "ask" ? EXIT.ask : EXIT.ok;
}

function requestText(r: PolicyRequest): string {
  return `${r.service}${r.argument && r.argument !== "+" ? r.argument : ""} ${r.source} ${r.target || "@default"}`.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

async function runEval(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, EVAL_OPTIONS);
  const echo = a.flags.has("echo");
  const warn = (w: string) => io.stderr.write(`qkit policy eval: warning: ${oneLine(w)}\n`);
  const cases = a.values.get("cases");
  if (cases !== undefined) {
    if (a.positionals.length) throw new UsageError("`--cases` takes no positional arguments");
    // Each case carries its own policy and system: options that would say otherwise are refused, not ignored.
    const ignored = ["requests", "policy-dir", "runtime-dir", "legacy-dir", "system"].filter((o) => a.values.has(o));
    if (ignored.length) throw new UsageError(`\`--cases\` runs conformance cases, each with its own policy and system: \`--${ignored[0]}\` does not go with it; drop one of them`);
    return runCases(cases, echo, io);
  }
  const systemFile = a.values.get("system");
  if (systemFile === undefined) warn(NO_SYSTEM_WARNING);
  const system = readSystem(systemFile, io);
  const src = sourceOf(a, io);
  const requests = a.values.get("requests");
  if (requests !== undefined) {
    if (a.positionals.length) throw new UsageError("`--requests` takes no positional arguments");
    return runRequestStream(requests, src, system, systemFile, echo, io);
  }
  const req = requestFromArgs(a.positionals);
  const loaded = loadForEval(src, req.service);
  for (const w of requestWarnings(req, system, systemFile)) warn(w);
  const prefix = echo && !a.flags.has("json") ? `${requestText(req)}: ` : "";
  if ("error" in loaded) {
    const e = loaded.error.error;
    if (a.flags.has("json")) io.stdout.write(JSON.stringify(echo ? { ...loadErrorJson(e), request: req } : loadErrorJson(e)) + "\n");
    else io.stdout.write(`${prefix}deny (the policy does not load, so every call is denied): ${e.message}\n`);
    return EXIT.failure;
  }
  const d = evaluate(loaded.policy, req, system);
  io.stdout.write((a.flags.has("json") ? JSON.stringify(echo ? { ...decisionToJson(d), request: req } : decisionToJson(d)) : prefix + describeDecision(d)) + "\n");
  return exitFor(d);
}

/** An explanation as `qkit policy explain --json` prints it (also `qkit template whatif --call --json`). */
export function explanationJson(x: Explanation): unknown {
  const rule = (r: PolicyRule) => ({ file: r.origin.file, line: r.origin.line, text: ruleText(r) });
  return {
    decision: decisionToJson(x.decision),
    request: x.request,
    intended_target: x.intendedTarget,
    target_note: x.targetNote,
    trace: x.trace.map((s) => ({ rule: rule(s.rule), failed: s.failed, reason: s.reason })),
    skipped: x.skipped,
    deciding_rule: x.decidingRule ? { ...rule(x.decidingRule), via: x.decidingRule.via } : null,
    resolution: x.resolution ?? [],
    ask_contributions: x.askContributions?.map((c) => ({ rule: rule(c.rule), effect: c.effect, targets: c.targets })) ?? null,
    ask_notes: x.askNotes ?? [],
  };
}

async function runExplain(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, { ...EVAL_OPTIONS });
  if (a.values.has("cases") || a.values.has("requests")) throw new UsageError("`explain` decides one request; use `qkit policy eval` for many");
  const systemFile = a.values.get("system");
  const warn = (w: string) => io.stderr.write(`qkit policy explain: warning: ${oneLine(w)}\n`);
  if (systemFile === undefined) warn(NO_SYSTEM_WARNING);
  const system = readSystem(systemFile, io);
  const src = sourceOf(a, io);
  const req = requestFromArgs(a.positionals);
  const loaded = loadForEval(src, req.service);
  for (const w of requestWarnings(req, system, systemFile)) warn(w);
  if ("error" in loaded) {
    const e = loaded.error.error;
    io.stdout.write(a.flags.has("json") ? JSON.stringify({ decision: loadErrorJson(e) }) + "\n" : `the policy does not load, so the daemon denies every call:\n  ${e.message}\n`);
    return 1;
  }
  const x = explain(loaded.policy, req, system);
  io.stdout.write(a.flags.has("json") ? JSON.stringify(explanationJson(x)) + "\n" : renderExplanation(x));
  return exitFor(x.decision);
}

export const commands: Command[] = [
  { path: ["policy", "eval"], summary: "decide qrexec calls as the policy daemon does", usage: EVAL_USAGE, run: runEval },
  { path: ["policy", "explain"], summary: "decide one call and explain which rule decided it and why", usage: EXPLAIN_USAGE, run: runExplain },
];
