/**
 * Replay of logged qrexec calls: the policy daemon's journal lines
 * (`journalctl -u qubes-qrexec-policy-daemon`, in the `short`, `short-iso`,
 * `short-precise`, `cat` or `json` output formats) parsed into calls with
 * their past outcome, and each call decided again by a draft policy.
 *
 * The daemon logs one line per decided call: `qrexec: SERVICE+ARG: SOURCE
 * -> TARGET: allowed to FINAL` (an allow, or an ask the user confirmed),
 * `…: denied: MESSAGE` (a deny; `denied by the user FILE:LINE` when the user
 * refused an ask), and `…: error loading policy: MESSAGE`. An allowed call
 * and a confirmed ask log the same line, so a draft that asks and offers the
 * same target could have ended the same way: it is not counted as a
 * difference (it is reported as `asks`).
 */
import { evaluate } from "../eval/evaluate.js";
import type { Decision, PolicyRequest, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy } from "../loader/types.js";
import { prepared } from "../eval/system.js";
import { isDenied } from "./query.js";

/** How a logged call ended. */
export type LoggedOutcome =
  | { kind: "allowed"; target: string }
  | { kind: "denied"; message: string; byUser: boolean }
  | {
      kind: "error";
      message: string;
      /** What failed, as the daemon logged it: `error getting system info`; absent for `error loading policy`. */
      stage?: "error getting system info";
    };

/** One call read from the journal. */
export interface LoggedCall {
  /** 1-based line in the journal text. */
  line: number;
  /** The timestamp as written (empty for `cat`). */
  time: string;
  request: PolicyRequest;
  outcome: LoggedOutcome;
}

/** A line that looks like a policy daemon call but cannot be read. */
export interface MalformedLine {
  line: number;
  reason: string;
  text: string;
}

/** The calls of a journal. */
export interface JournalCalls {
  calls: LoggedCall[];
  malformed: MalformedLine[];
  /** Lines that are not call decisions (other programs, other daemon messages, `-- Boot …` markers, blank lines). */
  ignored: number;
}

/** C0 and C1 control characters, DEL, and the invisible formatting characters (bidirectional overrides, zero-width ones). */
const CONTROL = /[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/;

const CALL = /^qrexec: (\S*): (\S*) -> (\S*): (allowed to (\S*)|denied: (.*)|error loading policy: (.*)|error getting system info: (.*))$/s;

function clip(s: string): string {
  return journalText(s);
}

/** The message and time of one journal line, or why it is not a message. */
function messageOf(line: string): { time: string; message: string } | { malformed: string } | null {
  if (line.startsWith("{")) {
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      return { malformed: "not valid JSON (journalctl -o json writes one object a line)" };
    }
    if (!o || typeof o !== "object" || Array.isArray(o)) return { malformed: "a JSON line that is not an object" };
    const m = (o as Record<string, unknown>)["MESSAGE"];
    const t = (o as Record<string, unknown>)["__REALTIME_TIMESTAMP"];
    const time = typeof t === "string" ? t : "";
    if (typeof m === "string") return { time, message: m };
    if (Array.isArray(m) && m.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) return { time, message: String.fromCharCode(...(m as number[])) };
    if (m === undefined) return null;
    return { malformed: "MESSAGE is neither a string nor bytes" };
  }
  if (line.startsWith("qrexec: ")) return { time: "", message: line };
  // `DATE HOST PROGRAM[PID]: MESSAGE`: the message starts at the first `: qrexec: `.
  const at = line.indexOf(": qrexec: ");
  if (at < 0) return null;
  const prefix = line.slice(0, at).trim().split(/\s+/);
  return { time: prefix.slice(0, Math.max(0, prefix.length - 2)).join(" "), message: line.slice(at + 2) };
}

function splitCall(serviceAndArg: string): { service: string; argument: string } {
  const plus = serviceAndArg.indexOf("+");
  return plus < 0 ? { service: serviceAndArg, argument: "+" } : { service: serviceAndArg.slice(0, plus), argument: serviceAndArg.slice(plus) };
}

/** Reads the calls of a journal text. Never throws: unreadable lines are {@link MalformedLine}s. */
export function parseQrexecJournal(text: string): JournalCalls {
  const out: JournalCalls = { calls: [], malformed: [], ignored: 0 };
  const lines = text.split(/\r\n|\n/);
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim() || raw.startsWith("-- ")) {
      out.ignored++;
      return;
    }
    const m = messageOf(raw);
    if (m === null) {
      out.ignored++;
      return;
    }
    if ("malformed" in m) {
      out.malformed.push({ line, reason: m.malformed, text: clip(raw) });
      return;
    }
    const msg = m.message.replace(/\n$/, "");
    if (!msg.startsWith("qrexec: ")) {
      out.ignored++;
      return;
    }
    const c = CALL.exec(msg);
    if (!c) {
      out.malformed.push({ line, reason: "a `qrexec:` message that is not `SERVICE: SOURCE -> TARGET: allowed to X | denied: … | error …`", text: clip(raw) });
      return;
    }
    const [, svcArg, source, target, , allowedTo, denied, loadError, infoError] = c;
    if (!svcArg || !source) {
      out.malformed.push({ line, reason: "the service or the source is empty", text: clip(raw) });
      return;
    }
    // An allowed call always went to a qube: the daemon logs its name.
    if (allowedTo === "") {
      out.malformed.push({ line, reason: "`allowed to` names no target", text: clip(raw) });
      return;
    }
    // The daemon logs names qubesd accepted: a control character (a line cut or mangled on its way) is no name.
    if (CONTROL.test(svcArg) || CONTROL.test(source) || CONTROL.test(target ?? "") || (allowedTo !== undefined && CONTROL.test(allowedTo))) {
      out.malformed.push({ line, reason: "a name of the call holds a control or invisible formatting character, which no service or qube name has", text: clip(raw) });
      return;
    }
    const { service, argument } = splitCall(svcArg);
    const request: PolicyRequest = { service, argument, source, target: target ?? "" };
    let outcome: LoggedOutcome;
    if (allowedTo !== undefined) outcome = { kind: "allowed", target: allowedTo };
    else if (denied !== undefined) outcome = { kind: "denied", message: denied, byUser: denied.startsWith("denied by the user") };
    else outcome = loadError !== undefined ? { kind: "error", message: loadError } : { kind: "error", message: infoError ?? "", stage: "error getting system info" };
    out.calls.push({ line, time: m.time, request, outcome });
  });
  return out;
}

/** How a draft decides a logged call, compared with the past. */
export type ReplayVerdict =
  /** The same outcome. */
  | "same"
  /** The draft asks and offers the target the call went to: the same outcome if the user confirms (the past may have been an ask too). */
  | "asks"
  /** A different outcome. */
  | "different";

/** One logged call decided again. */
export interface ReplayRow {
  call: LoggedCall;
  decision: Decision;
  verdict: ReplayVerdict;
  /** `was allowed to vault, now deny (30-user.policy:3)`: one printable line (text from the journal escaped and clipped). */
  text: string;
}

/**
 * The qube a logged or decided target names: the daemon logs the target it
 * resolved, which may be `uuid:UUID` (or `@dispvm:uuid:UUID`) where the draft
 * decides the qube's name, and `dom0` where the policy says `@adminvm`.
 */
function canonicalTarget(system: SystemInfo, t: string): string {
  if (t === "@adminvm") return "dom0";
  const disp = t.startsWith("@dispvm:") ? "@dispvm:" : "";
  const q = t.slice(disp.length);
  if (!q.startsWith("uuid:")) return t;
  const entry = system.domains.get(q) as { name?: unknown } | undefined;
  let name = entry && typeof entry === "object" && typeof entry.name === "string" ? entry.name : undefined;
  if (name === undefined) {
    const names = prepared(system).namesByUuid.get(q.slice(5));
    if (names && names.length === 1) name = names[0];
  }
  return name === undefined ? t : disp + name;
}

function sameTarget(system: SystemInfo, a: string, b: string): boolean {
  return a === b || canonicalTarget(system, a) === canonicalTarget(system, b);
}

/** Text from the journal as one printable, bounded line: control characters escaped, long text clipped. */
export function journalText(s: string, max = 200): string {
  const escaped = s.replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
  return escaped.length > max ? escaped.slice(0, max) + `… (${escaped.length - max} more characters)` : escaped;
}

function shortList(xs: readonly string[], max = 8): string {
  return xs.length <= max ? xs.join(", ") : `${xs.slice(0, max).join(", ")} and ${xs.length - max} more`;
}

function decisionText(d: Decision): string {
  if (!d.ok) return `refused: ${d.message}`;
  const rule = `(${d.rule.file}:${d.rule.line ?? "None"})`;
  if (d.action === "allow") return `allow to ${d.target} ${rule}`;
  if (d.action === "ask") return `ask, offering ${d.targetsForAsk.length ? shortList(d.targetsForAsk) : "nothing"}${d.defaultTarget ? ` (default ${d.defaultTarget})` : ""} ${rule}`;
  return `deny ${rule}`;
}

function pastText(o: LoggedOutcome): string {
  if (o.kind === "allowed") return `was allowed to ${journalText(o.target)}`;
  if (o.kind === "denied") return o.byUser ? "was refused by the user" : "was denied";
  // Say what the log said: the daemon denied because of this failure, not because of a rule.
  return `was denied (${o.stage ?? "error loading policy"}: ${journalText(o.message, 120)})`;
}

/** Decides every logged call with `policy` and compares with its past outcome. Never throws. */
export function replayCalls(policy: CompiledPolicy, system: SystemInfo, calls: readonly LoggedCall[]): ReplayRow[] {
  return calls.map((call) => {
    const d = evaluate(policy, call.request, system);
    const o = call.outcome;
    // A call to itself is logged twice by the daemon: "allowed to" (the policy's decision), then "denied: loopback …" (its refusal to run it).
    const denied = isDenied(d);
    let verdict: ReplayVerdict;
    if (o.kind === "allowed") {
      if (d.ok && d.action === "allow") verdict = sameTarget(system, d.target, o.target) ? "same" : "different";
      else if (d.ok && d.action === "ask") verdict = d.targetsForAsk.some((t) => sameTarget(system, t, o.target)) ? "asks" : "different";
      else verdict = "different";
    } else if (o.kind === "denied" && o.byUser) verdict = denied || (d.ok && d.action === "ask") ? "same" : "different";
    else verdict = denied ? "same" : "different";
    return { call, decision: d, verdict, text: `${pastText(o)}, now ${journalText(decisionText(d), 1000)}` };
  });
}
