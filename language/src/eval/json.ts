/**
 * Decisions as JSON text, for streams of requests (`qkit policy eval
 * --requests`): `evaluateJson` is `JSON.stringify(decisionToJson(evaluate(…)))`
 * byte for byte, written by hand for the three fixed shapes (allow, ask,
 * deny) with what repeats cached: the fragments of each rule (`{"rule":…`,
 * the tail of a deny, the middle of an allow, the tail of an ask), names as
 * JSON, the daemon's answer for an allow, and each `ask` target list, which
 * the collection shares between requests whose lists are alike (serialised
 * once per list). Decided by the stream's scan (`fast.ts`); what it hands
 * over, and errors, take the general path (`run`).
 */
import { decisionToJson } from "../conformance.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { denyMessage, run } from "./decide.js";
import { scanDecide } from "./fast.js";
import type { PolicyRequest, SystemInfo } from "./types.js";

/** Per policy: the JSON fragments of its rules, by rule index. */
interface RuleFragments {
  /** `{"rule":{"file":…,"line":…},"intended_target":` */
  head: (string | undefined)[];
  /** `,"ok":true,"action":"deny","notify":…,"message":…}` */
  denyTail: (string | undefined)[];
  /** `,"user":…,"notify":…,"autostart":…,"exec":` of an allow rule. */
  allowMid: (string | undefined)[];
  /** `,"target":null,"user":…,"notify":…,"autostart":…}` of an ask rule. */
  askTail: (string | undefined)[];
}

const fragments = new WeakMap<CompiledPolicy, RuleFragments>();
/** The serialised `ask` lists, by the (shared) array the collection returned. */
const listJson = new WeakMap<readonly string[], string>();

const str = JSON.stringify as (s: string | null) => string;

function fragmentsOf(policy: CompiledPolicy): RuleFragments {
  let f = fragments.get(policy);
  if (f === undefined) {
    // Filled (not holey beyond V8's limit), so a rule's slot is an array read, not a dictionary lookup.
    const n = policy.rules.length;
    const filled = (): undefined[] => new Array<undefined>(n).fill(undefined);
    fragments.set(policy, (f = { head: filled(), denyTail: filled(), allowMid: filled(), askTail: filled() }));
  }
  return f;
}

function head(f: RuleFragments, rule: PolicyRule): string {
  let h = f.head[rule.index];
  if (h === undefined) h = f.head[rule.index] = `{"rule":${JSON.stringify({ file: rule.origin.file, line: rule.origin.line })},"intended_target":`;
  return h;
}

function allowMid(f: RuleFragments, rule: PolicyRule): string {
  let m = f.allowMid[rule.index];
  if (m === undefined) m = f.allowMid[rule.index] = `,"user":${str(rule.user)},"notify":${rule.notify},"autostart":${rule.autostart},"exec":`;
  return m;
}

function askTail(f: RuleFragments, rule: PolicyRule): string {
  let t = f.askTail[rule.index];
  if (t === undefined) t = f.askTail[rule.index] = `,"target":null,"user":${str(rule.user)},"notify":${rule.notify},"autostart":${rule.autostart}}`;
  return t;
}

/** Names as JSON strings, memoised (they repeat from line to line). */
const quotedNames = new Map<string, string>();

function quoted(name: string): string {
  let q = quotedNames.get(name);
  if (q === undefined) {
    q = str(name);
    // Bounded: a memo for repeated names, not a store of every name ever seen.
    if (quotedNames.size >= 16384) quotedNames.clear();
    quotedNames.set(name, q);
  }
  return q;
}

/** The JSON of the engine's "no matching rule found" (the same for every request). */
let noMatchJson: string | undefined;

/** `,"ok":true,"action":"deny","notify":…,"message":…}` of a deny rule (as `run` words its message). */
function denyTail(f: RuleFragments, rule: PolicyRule): string {
  let tail = f.denyTail[rule.index];
  if (tail === undefined) tail = f.denyTail[rule.index] = `,"ok":true,"action":"deny","notify":${rule.notify},"message":${str(denyMessage(rule))}}`;
  return tail;
}

function targetsJson(list: readonly string[]): string {
  // Short lists are cheaper to write again than to look up (and are often a fresh array: a redirect).
  if (list.length < 16) return JSON.stringify(list);
  let s = listJson.get(list);
  if (s === undefined) listJson.set(list, (s = JSON.stringify(list)));
  return s;
}

/**
 * Decides a request as {@link evaluate} does and returns its decision as one
 * line of JSON (no line ending): exactly
 * `JSON.stringify(decisionToJson(evaluate(policy, request, system)))`, the
 * format of the conformance corpus and of `qkit policy eval --json`. Cheaper
 * than that for many requests on the same policy and system model (what
 * repeats is serialised once). Never throws.
 */
export function evaluateJson(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo): string {
  const pieces: string[] = [];
  evaluateJsonPieces(policy, request, system, pieces);
  return pieces.length === 1 ? pieces[0]! : pieces.join("");
}

/**
 * {@link evaluateJson} as pieces appended to `out`, whose concatenation is
 * the JSON text; the last piece ends with the object's closing `}`. An `ask`
 * target list (most of the text when lists are long) is a piece of its own,
 * the same string for every request that offers the same list: a writer
 * that copies pieces straight into its output never builds (or flattens) a
 * string of the whole line.
 */
export function evaluateJsonPieces(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo, out: string[]): void {
  const s = scanDecide(policy, request, system);
  if (s !== null) {
    const rule = s.rule;
    if (s.error) {
      out.push(JSON.stringify(decisionToJson(s.error)));
      return;
    }
    if (rule === null) {
      out.push((noMatchJson ??= JSON.stringify(decisionToJson({ ok: false, error: "AccessDenied", code: "no-matching-rule", message: "no matching rule found", stage: "match", notify: true }))));
      return;
    }
    // Pieces, not one string: each is cached (or a name's memoised JSON), so a line allocates nothing.
    const f = fragmentsOf(policy);
    out.push(head(f, rule), quoted(s.intended));
    switch (rule.action) {
      case "deny":
        out.push(denyTail(f, rule));
        return;
      case "allow":
        out.push(',"ok":true,"action":"allow","target":', quoted(s.target!), allowMid(f, rule), s.execJson!, "}");
        return;
      case "ask":
        out.push(',"ok":true,"action":"ask","targets_for_ask":', s.askList ? s.askList.json : JSON.stringify(s.targets!), ',"default_target":', s.defaultTarget === null || s.defaultTarget === undefined ? "null" : quoted(s.defaultTarget), askTail(f, rule));
        return;
    }
  }
  const r = run(policy, request, system, undefined, undefined, false, true);
  const d = r.decision;
  const rule = r.rule;
  if (!d.ok || rule === undefined) {
    out.push(JSON.stringify(decisionToJson(d)));
    return;
  }
  const f = fragmentsOf(policy);
  const h = head(f, rule) + str(d.intendedTarget);
  switch (d.action) {
    case "deny":
      out.push(h + denyTail(f, rule));
      return;
    case "allow":
      out.push(`${h},"ok":true,"action":"allow","target":${str(d.target)},"user":${str(d.user)},"notify":${d.notify},"autostart":${d.autostart},"exec":${JSON.stringify(d.exec)}}`);
      return;
    case "ask":
      out.push(
        `${h},"ok":true,"action":"ask","targets_for_ask":`,
        targetsJson(d.targetsForAsk),
        `,"default_target":${str(d.defaultTarget)},"target":null,"user":${str(d.user)},"notify":${d.notify},"autostart":${d.autostart}}`,
      );
      return;
  }
}
