/**
 * `qkit flow`, `qkit policy flip`, `qkit policy replay`: information flow
 * between qubes, what would flip a decision, and logged calls decided again
 * by a draft policy. The analyses live in `@qubes-kit/language` (`flow/`,
 * `audit/flip.ts`, `audit/replay.ts`); this module reads inputs and prints.
 *
 * Exit codes: `flow` 0 a path (or, with --from, something reachable), 1
 * none, 2 errors; `flip` 0 some edit flips the decision, 1 none, 2 errors;
 * `replay` 0 every call decided as before, 1 some differ, 2 errors.
 */
import { readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import {
  builtinCatalogue,
  callNameProblems,
  decisionToJson,
  execRefusal,
  findPaths,
  flipDecision,
  flowDot,
  flowGraph,
  flowHtml,
  flowMermaid,
  journalText,
  NETWORK_NODE,
  parseQrexecJournal,
  parseServiceCatalogue,
  pathJson,
  pathsText,
  queryCallProblem,
  reachableFrom,
  reachedText,
  replayCalls,
  type CompiledPolicy,
  type Decision,
  type FlowMachine,
  type FlowPath,
  type FlowWarning,
  type SystemInfo,
  type ServiceCatalogue,
} from "@qubes-kit/language";
import type { CliIO, Command } from "./command.js";
import { stdinToRead, UsageError } from "./command.js";
import { parseArgs, type ParsedArgs } from "./args.js";
import { CONNECTION_USAGE } from "./connect.js";
import { didYouMean, oneLine, osMessage } from "./text.js";
import { answering, CONNECTION_OPTIONS, InputError, readPolicyInput, readPolicyTexts, readSystemInput } from "./flow-inputs.js";
import { CANNOT_WRITE, cannotWriteMessage, formatOption, outputFile } from "./output.js";
import { withOutputOption } from "./audit-output.js";
import type { WhatIfSystem } from "../apply/future.js";
import { inputClash, noteRead } from "./inputs-read.js";

// ---------------------------------------------------------------------------
// qkit flow
// ---------------------------------------------------------------------------

const FLOW_USAGE = `usage: qkit flow A B --policy-dir DIR --system FILE [options]
       qkit flow --from A --policy-dir DIR --system FILE [options]

Can data move from qube A to qube B, directly or through other qubes? Lists
every path (shortest first), each hop with every way data moves over it:

  qrexec    a call allowed (or asked: "the user must confirm") by the policy,
            with its deciding rule; the service's direction of data comes
            from a catalogue (qubes.Filecopy caller → target, qubes.Gpg both
            ways, admin.* control: changes both ways, read-only calls
            target → caller, …; unknown
            services both ways; --services FILE adds entries)
  network   a qube and its netvm see each other's traffic; a qube whose
            firewall lets anything out reaches @network (the outside) through
            its netvm chain (the rules read first-match, as qubes-firewall
            applies them, then drop; DNS queries alone still carry data out;
            the evidence lists what each accepting rule lets out); qubes
            behind one netvm meet only through it
  device    the backend of a USB or block device sees its data; qubes with
            the same device assigned or attached share it

Nodes are qube names, @dispvm:X (a new disposable of X) and @network. A new
disposable of X also calls services itself, decided as for a running DispVM
with X's tags (rules with source *, @anyvm, @type:DispVM or @tag:T match it;
@dispvm:X as a source never matches), and has X's netvm, firewall and device
assignments. When paths explode, the first --max-paths are listed and the
number of shortest paths is given.
A path with an ask is a path with the user in the loop. Decisions are the
evaluator's, exactly (each caller's rules swept in order over every target at
once; qubes no rule tells apart decided once). With --from, every node
reachable from A and how.

options:
  --policy-dir DIR|live|REV:PATH
                         the policy.d directory (live: through the policy admin API;
                         REV:PATH: a directory of a git revision, e.g. HEAD~1:policy.d)
  --system FILE|live     internal.GetSystemInfo JSON whose domains may also carry
                         "netvm", "provides_network", "firewall" (rules as
                         \`qvm-firewall\` lists them) and "devices"
                         ([{"devclass","backend","port","device_id","mode"}]);
                         live reads them all through the Admin API
  --stack FILE           what-if: the flows once the stack FILE (*.qubes.yaml) is applied
                         (its policy files, qubes, netvms, firewalls and devices on
                         top of the policy and system given)
  --services FILE        service directions, one \`SERVICE DIRECTION [NOTE]\` a line
                         (forward, backward, both, none, control; SERVICE may
                         end in *), before the built-in catalogue
  --format F             text (default), json, dot, mermaid, html (self-contained page)
  --json                 the same as --format json
  --output FILE          write there instead of standard output
  --max-hops N           longest path listed, or with --from how far to look (default 6)
  --max-paths N          most paths listed (default 100)
  --avoid QUBE           no path goes through QUBE (repeatable; e.g. trusted relays)
  --no-ask               leave out hops that need the user
  --dom0-relays          dom0 administers every qube (qvm-run needs no policy): add
                         dom0 → every qube
  --all-edges            list every way over each hop (default: text shows 5, json 8, and
                         counts the others)

${CONNECTION_USAGE}
exit status: 0 a path found (--from: something reachable), 1 none, 2 errors
(usage, unreadable input, a policy that does not load)
`;

const FLOW_OPTIONS = {
  "policy-dir": "value",
  system: "value",
  services: "value",
  format: "value",
  json: true,
  output: "value",
  "max-hops": "value",
  "max-paths": "value",
  avoid: "values",
  from: "value",
  stack: "value",
  "no-ask": true,
  "dom0-relays": true,
  "all-edges": true,
  ...CONNECTION_OPTIONS,
} as const;

function count(a: ParsedArgs, name: string, dflt: number): number {
  const v = a.values.get(name);
  if (v === undefined) return dflt;
  if (!/^[1-9][0-9]{0,5}$/.test(v)) throw new UsageError(`--${name} needs a positive number, got \`${v}\``);
  return Number(v);
}

function readCatalogue(a: ParsedArgs, io: CliIO): ServiceCatalogue {
  const file = a.values.get("services");
  if (file === undefined) return builtinCatalogue();
  let text: string;
  try {
    text = readFileSync(path.resolve(io.cwd, file), "utf8");
    noteRead(path.resolve(io.cwd, file));
  } catch (e) {
    throw new InputError(`cannot read the service catalogue \`${journalText(file)}\`: ${osMessage(e)}; give the path of a catalogue file`, "cannot-read");
  }
  const r = parseServiceCatalogue(text, file);
  if (r.diagnostics.length) throw new InputError(`${r.diagnostics[0]!.message}${r.diagnostics.length > 1 ? ` (and ${r.diagnostics.length - 1} more)` : ""}`, r.diagnostics[0]!.code);
  return r.catalogue;
}

function output(a: ParsedArgs, io: CliIO, text: string): void {
  const out = outputFile(a, "output");
  if (out === undefined) {
    io.stdout.write(text);
    return;
  }
  const clash = inputClash("--output", out, io.cwd);
  if (clash !== undefined) throw new InputError(clash, "output-is-input");
  try {
    writeFileSync(path.resolve(io.cwd, out), text);
  } catch (e) {
    throw new InputError(cannotWriteMessage(out, e), CANNOT_WRITE);
  }
}

async function runFlow(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, FLOW_OPTIONS);
  const from = a.values.get("from");
  if (from !== undefined ? a.positionals.length !== 0 : a.positionals.length !== 2) throw new UsageError(from !== undefined ? "--from A takes no other qube; drop B, or drop --from" : "expected two qubes, A and B (or --from A)");
  const format = formatOption(a, ["text", "json", "dot", "mermaid", "html"]);
  const maxHops = count(a, "max-hops", 6);
  const maxPaths = count(a, "max-paths", 100);
  return answering("flow", io, async () => {
    const catalogue = readCatalogue(a, io);
    const today = await readSystemInput(a.values.get("system"), a, io, true);
    const stackFile = a.values.get("stack");
    let inputs: { system: SystemInfo; policy: CompiledPolicy; machine: FlowMachine; warnings: FlowWarning[] };
    if (stackFile !== undefined) {
      const texts = await readPolicyTexts(a.values.get("policy-dir"), a, io);
      const { futureInputs } = await import("./flow-stack.js");
      const f = futureInputs(stackFile, io, { raw: today.raw as unknown as WhatIfSystem, policy: texts, machine: today.machine });
      inputs = { ...f, warnings: [...today.warnings, ...f.warnings] };
    } else inputs = { ...today, policy: (await readPolicyInput(a.values.get("policy-dir"), a, io)).policy };
    const { system, machine, policy } = inputs;
    const warnings = inputs.warnings;
    // Every pair of qubes keeps a few qrexec ways as evidence (--all-edges: all of them); which pairs
    // are connected, and whether without the user, is exact either way.
    const graph = flowGraph(policy, system, machine, { catalogue, dom0Relays: a.flags.has("dom0-relays"), evidencePerHop: a.flags.has("all-edges") ? Infinity : 8 });
    const nodes = new Set(graph.nodes);
    // The outside network is an end of every machine, joined to nothing when no qube reaches it (the
    // answer is then "no path", after the warning that says why when the model has no wiring).
    nodes.add(NETWORK_NODE);
    const ends = from !== undefined ? [from] : a.positionals;
    // A typo is refused with the names it is close to (as eval and who-can say them), [unknown-qube].
    for (const q of ends) if (!nodes.has(q)) throw new UsageError(`\`${q}\` is not a qube of the system model (nor @network, nor @dispvm:X of a disposable template)${didYouMean(q, nodes)}`, "unknown-qube");
    if (from === undefined && a.positionals[0] === a.positionals[1]) {
      throw new UsageError(`\`${a.positionals[0]}\` is both the source and the destination: its data is already there; name two different qubes, or use \`--from ${a.positionals[0]}\` for everything it reaches`, "same-qube");
    }
    const avoid = a.lists.get("avoid") ?? [];
    for (const q of avoid) if (!nodes.has(q)) throw new UsageError(`--avoid: \`${q}\` is not a qube of the system model${didYouMean(q, nodes)}`, "unknown-qube");
    for (const q of avoid) {
      const end = q === ends[0] ? (from !== undefined ? "the start" : "the source") : q === ends[1] ? "the destination" : undefined;
      if (end !== undefined) throw new UsageError(`--avoid: \`${q}\` is ${end} of the flow, and every path goes through its own ends; avoid other qubes`, "avoid-end");
    }
    // Said once the question stands (a refused one is the one line of its error).
    for (const w of [...warnings, ...graph.warnings]) io.stderr.write(`warning: ${oneLine(w.message)} [${w.code}]\n`);
    const noAsk = a.flags.has("no-ask");
    const textOptions = { edgesPerHop: a.flags.has("all-edges") ? 0 : 5, maxHops };
    if (from !== undefined) {
      const reached = reachableFrom(graph, from, { avoid, noAsk, maxHops });
      const title = `information flow from ${from}`;
      const paths = reached.map((r) => r.automatic ?? r.path);
      let out: string;
      if (format === "json")
        // One line: the document runs to megabytes on large machines (indenting made it half as big
        // again and three times as slow to write); `jq .` shows it indented.
        out = JSON.stringify({ from, max_hops: maxHops, reachable: reached.map((r) => ({ node: r.node, automatic: !!r.automatic, path: pathJson(r.path), ...(r.automatic ? { automatic_path: pathJson(r.automatic) } : {}) })), warnings: [...warnings, ...graph.warnings] }) + "\n";
      else if (format === "dot") out = flowDot(title, paths, from);
      else if (format === "mermaid") out = flowMermaid(title, paths, from);
      else if (format === "html")
        out = flowHtml(
          title,
          `${reached.length} reachable, ${reached.filter((r) => r.automatic).length} without the user.`,
          reached.map((r) => ({ heading: r.node, path: r.automatic ?? r.path })),
        );
      else out = reachedText(from, reached, textOptions);
      output(a, io, out);
      return reached.length ? 0 : 1;
    }
    const [src, dst] = a.positionals as [string, string];
    const r = findPaths(graph, src, dst, { maxHops, maxPaths, avoid, noAsk });
    const title = `information flow from ${src} to ${dst}`;
    let out: string;
    if (format === "json")
      out = JSON.stringify({ from: src, to: dst, max_hops: maxHops, shortest: r.shortest, shortest_paths: r.count?.paths ?? 0, truncated: r.truncated, paths: r.paths.map(pathJson), warnings: [...warnings, ...graph.warnings] }) + "\n";
    else if (format === "dot") out = flowDot(title, r.paths, src);
    else if (format === "mermaid") out = flowMermaid(title, r.paths, src);
    else if (format === "html") out = flowHtml(title, pathsText(r, { ...textOptions, edgesPerHop: 1 }).split("\n")[0]!, r.paths.map((p: FlowPath, i) => ({ heading: `path ${i + 1}`, path: p })));
    else out = pathsText(r, textOptions);
    output(a, io, out);
    return r.paths.length ? 0 : 1;
  });
}

// ---------------------------------------------------------------------------
// qkit policy flip
// ---------------------------------------------------------------------------

const FLIP_USAGE = `usage: qkit policy flip SERVICE[+ARG] SOURCE [TARGET] --policy-dir DIR --system FILE [--json] [--rejected] [--output FILE] [connection options]

What would flip the decision of one call: the one-line edits of the policy
that change it (remove a rule, change a rule's action, add a rule before a
line), each applied to a copy of the policy, loaded and decided again by
the evaluator; only edits that load and change the decision (the action,
the allow target or the offered targets) are listed, with the new decision
(its rule lines are those of the edited files). TARGET defaults to @default.

options:
  --policy-dir DIR|live  the policy.d directory (live: through the policy admin API)
  --system FILE|live     the system model (internal.GetSystemInfo JSON, or the live system)
  --json                 one document: {"request","before","suggestions":[{"edit","text","after"}],"tried"}
                         (decisions as \`qkit policy eval --json\` prints them)
  --rejected             also list the candidates that did not flip it, and why
  --output FILE          write the answer there instead of standard output

${CONNECTION_USAGE}
exit status: 0 some edit flips the decision, 1 none does, 2 errors
`;

function shortDecision(d: Decision, where?: string): string {
  if (!d.ok) return `refused (${d.message})`;
  const rule = where ?? `${d.rule.file}:${d.rule.line ?? "None"}`;
  // The daemon refuses to run what the policy allows (a call from a qube to itself).
  const refused = execRefusal(d);
  if (refused) return `deny: the daemon refuses what the policy allows (${refused.message}) (${rule})`;
  if (d.action === "allow") return `allow to ${d.target} (${rule})`;
  if (d.action === "ask") {
    const t = d.targetsForAsk;
    return `ask, offering ${t.length > 8 ? `${t.slice(0, 8).join(", ")} and ${t.length - 8} more` : t.join(", ") || "nothing"}${d.defaultTarget ? ` (default ${d.defaultTarget})` : ""} (${rule})`;
  }
  return `deny (${rule})`;
}

function splitCall(text: string): { service: string; argument: string } {
  const plus = text.indexOf("+");
  if (plus === 0 || text === "") throw new UsageError(`expected SERVICE[+ARG], got \`${text}\``);
  return plus < 0 ? { service: text, argument: "+" } : { service: text.slice(0, plus), argument: text.slice(plus) };
}

async function runFlip(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, { "policy-dir": "value", system: "value", json: true, rejected: true, ...CONNECTION_OPTIONS });
  if (a.positionals.length < 2 || a.positionals.length > 3) throw new UsageError("expected SERVICE[+ARG] SOURCE [TARGET]");
  const call = splitCall(a.positionals[0]!);
  // An edit is a policy line: a service or argument no rule can name has no edit to suggest (as who-can refuses it).
  const callProblem = queryCallProblem(call.service, call.argument);
  if (callProblem !== undefined) throw new UsageError(callProblem);
  const source = a.positionals[1]!;
  const target = a.positionals[2] ?? "@default";
  return answering("policy flip", io, async () => {
    const { system } = await readSystemInput(a.values.get("system"), a, io);
    const input = await readPolicyInput(a.values.get("policy-dir"), a, io);
    const request = { ...call, source, target };
    // Names the daemon would not see as written (a typo of a qube or service): warned as eval warns, the answer still given.
    for (const p of callNameProblems(input.policy, system, request)) io.stderr.write(`qkit policy flip: warning: ${oneLine(p.message)} [${p.code}]\n`);
    const found = flipDecision(input.policy, { fs: input.fs, loadOptions: input.loadOptions }, request, system);
    // A call from a qube to itself is denied by the daemon whatever the policy says: no edit changes that.
    const r = source === target ? { ...found, suggestions: [] } : found;
    if (a.flags.has("json")) {
      io.stdout.write(
        JSON.stringify(
          {
            request,
            before: decisionToJson(r.before),
            suggestions: r.suggestions.map((s) => ({ edit: s.edit, text: s.text, after: decisionToJson(s.afterInUserLines), after_rule: s.afterRule })),
            tried: r.tried,
            ...(a.flags.has("rejected") ? { rejected: r.rejected } : {}),
          },
        ) + "\n",
      );
    } else {
      const callText = `${call.service}${call.argument === "+" ? "" : call.argument} ${source} -> ${target}`;
      io.stdout.write(`${callText}: ${shortDecision(r.before)}\n`);
      if (source === target) io.stdout.write("no policy edit changes it: the daemon refuses a call from a qube to itself, whatever the policy says\n");
      else if (!r.suggestions.length) io.stdout.write(`no one-line edit changes it (${r.tried} tried)\n`);
      else io.stdout.write(`${r.suggestions.length} one-line edit${r.suggestions.length === 1 ? "" : "s"} change${r.suggestions.length === 1 ? "s" : ""} it (each re-decided with the edited policy; ${r.tried} tried):\n`);
      for (const s of r.suggestions) io.stdout.write(`  ${s.text}\n      → ${shortDecision(s.afterInUserLines, s.afterRule)}\n`);
      if (a.flags.has("rejected")) for (const x of r.rejected) io.stdout.write(`  not: ${x.text}\n      (${x.why})\n`);
    }
    return r.suggestions.length ? 0 : 1;
  });
}

// ---------------------------------------------------------------------------
// qkit policy replay
// ---------------------------------------------------------------------------

const REPLAY_USAGE = `usage: qkit policy replay JOURNAL --policy-dir DRAFT --system FILE [--json] [--all] [--output FILE] [connection options]

Reads the qrexec policy daemon's log lines from JOURNAL (\`-\` for standard
input), as \`journalctl -u qubes-qrexec-policy-daemon\` writes them (the
default short format, short-iso, short-precise, cat or json), and decides
every logged call again with the DRAFT policy. Lists the calls it decides
differently: a call that was allowed and would be denied, allowed to another
qube, or asked without offering the qube it went to; a denied call that
would be allowed or asked. A logged allow and a confirmed ask look the same,
so a draft that asks and offers the same qube counts as the same (listed as
"asks" with --all). Lines that look like the daemon's but cannot be read are
counted and reported (never fatal); other lines are ignored.

options:
  --policy-dir DRAFT|live  the policy to replay against
  --system FILE|live       the system model (qubes that no longer exist are refused,
                           as the daemon would)
  --json                   one document: {"calls","different":[...],"asks","same","malformed":[...],"ignored"}
  --all                    list every call, not only the different ones
  --output FILE            write the answer there instead of standard output

${CONNECTION_USAGE}
An empty journal (no lines, or only journalctl's \`-- No entries --\`) is
an answer: nothing to replay, exit 0. A journal with lines but no logged call
(another unit's log, or not a journal) is an error: [no-logged-calls], exit 2.

exit status: 0 every call decided as before (or an empty journal), 1 some differ,
2 errors (no logged call in a journal with lines: [no-logged-calls])
`;

async function readJournal(file: string, io: CliIO): Promise<string> {
  if (file === "-") {
    const chunks: Buffer[] = [];
    for await (const c of stdinToRead(io, "the journal")) chunks.push(typeof c === "string" ? Buffer.from(c) : (c as Buffer));
    return Buffer.concat(chunks).toString("utf8");
  }
  try {
    const text = readFileSync(path.resolve(io.cwd, file), "utf8");
    noteRead(path.resolve(io.cwd, file));
    return text;
  } catch (e) {
    throw new InputError(`cannot read the journal \`${journalText(file)}\`: ${osMessage(e)}; give the path of a file of journal lines (or - for standard input)`, "cannot-read");
  }
}

/**
 * A journal from which no logged call was read is an error (`no-logged-calls`,
 * exit 2: a wrong file, a wrong unit, or bytes that are no journal would
 * otherwise pass as "every call decided as before"), unless it is empty: no
 * lines but blank ones and journalctl's own \`-- ...\` markers (\`-- No entries --\`),
 * which is an answer (nothing was logged; exit 0).
 */
function noCallsRead(file: string, text: string, parsed: ReturnType<typeof parseQrexecJournal>): void {
  if (parsed.calls.length > 0) return;
  const lines = text.split(/\r\n|\n|\r/).filter((l) => l.trim() !== "" && !l.startsWith("-- "));
  if (lines.length === 0) return;
  const m = parsed.malformed.length;
  const why = m ? `${m} line${m === 1 ? " looks" : "s look"} like the policy daemon's but cannot be read (line ${parsed.malformed[0]!.line}: ${parsed.malformed[0]!.reason})` : `none of its ${lines.length} line${lines.length === 1 ? " is" : "s is"} a line of the qrexec policy daemon`;
  throw new InputError(
    `no logged call in \`${journalText(file)}\`: ${why}; give what \`journalctl -u qubes-qrexec-policy-daemon\` prints (short, short-iso, short-precise, cat or json)`,
    "no-logged-calls",
  );
}

async function runReplay(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, { "policy-dir": "value", system: "value", json: true, all: true, ...CONNECTION_OPTIONS });
  if (a.positionals.length !== 1) throw new UsageError("expected one JOURNAL file (or - for standard input)");
  return answering("policy replay", io, async () => {
    const text = await readJournal(a.positionals[0]!, io);
    const parsed = parseQrexecJournal(text);
    noCallsRead(a.positionals[0]!, text, parsed);
    const { system } = await readSystemInput(a.values.get("system"), a, io);
    const { policy, label } = await readPolicyInput(a.values.get("policy-dir"), a, io);
    const rows = replayCalls(policy, system, parsed.calls);
    const different = rows.filter((r) => r.verdict === "different");
    const asks = rows.filter((r) => r.verdict === "asks").length;
    const rowJson = (r: (typeof rows)[number]) => ({
      line: r.call.line,
      time: r.call.time,
      service: r.call.request.service,
      argument: r.call.request.argument,
      source: r.call.request.source,
      target: r.call.request.target,
      logged: r.call.outcome,
      verdict: r.verdict,
      decision: decisionToJson(r.decision),
      text: r.text,
    });
    if (a.flags.has("json")) {
      io.stdout.write(
        JSON.stringify(
          {
            calls: rows.length,
            different: different.map(rowJson),
            asks,
            same: rows.length - different.length - asks,
            ...(a.flags.has("all") ? { rows: rows.map(rowJson) } : {}),
            malformed: parsed.malformed,
            ignored: parsed.ignored,
          },
        ) + "\n",
      );
    } else {
      io.stdout.write(
        `${rows.length} logged call${rows.length === 1 ? "" : "s"} replayed against ${label}: ${different.length} decided differently, ${rows.length - different.length - asks} the same, ${asks} would ask and offer the same qube; ${parsed.malformed.length} malformed line${parsed.malformed.length === 1 ? "" : "s"}, ${parsed.ignored} other line${parsed.ignored === 1 ? "" : "s"} ignored\n`,
      );
      for (const r of a.flags.has("all") ? rows : different) {
        const q = r.call.request;
        io.stdout.write(`${a.flags.has("all") ? `${r.verdict.padEnd(9)} ` : ""}line ${r.call.line}: ${journalText(`${q.service}${q.argument === "+" ? "" : q.argument}`)} ${journalText(q.source)} -> ${journalText(q.target || "@default")}: ${r.text}\n`);
      }
      for (const m of parsed.malformed.slice(0, 20)) io.stdout.write(`malformed line ${m.line}: ${m.reason}: ${m.text}\n`);
      if (parsed.malformed.length > 20) io.stdout.write(`… and ${parsed.malformed.length - 20} more malformed lines (--json lists them all)\n`);
    }
    return different.length ? 1 : 0;
  });
}

/** The commands of this module. */
export const commands: Command[] = [
  { path: ["flow"], summary: "can data move from one qube to another (qrexec, network, devices)? every path, with its rules", usage: FLOW_USAGE, run: runFlow },
  { path: ["policy", "flip"], summary: "the one-line policy edits that would change a call's decision, each re-decided", usage: FLIP_USAGE, run: withOutputOption("policy flip", runFlip) },
  { path: ["policy", "replay"], summary: "logged qrexec calls (the policy daemon's journal) a draft policy decides differently", usage: REPLAY_USAGE, run: withOutputOption("policy replay", runReplay) },
];

