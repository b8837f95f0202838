/**
 * Decisions as JSON text, for streams of requests (`qkit policy eval
 * --requests`): {@link evaluateJsonBytes} writes
 * `JSON.stringify(decisionToJson(evaluate(…)))` byte for byte as UTF-8 into a
 * {@link ByteOutput}, by hand for the three fixed shapes (allow, ask, deny),
 * from pieces encoded once: the constant parts, each file's `{"rule":…`
 * prefix and deny message prefix (a rule's line number is written as
 * digits), names as JSON, the user/notify/autostart parts, the daemon's
 * answer for an allow, and each `ask` target list, which the collection
 * shares between requests whose lists are alike (encoded once per list). No
 * string of a line is built. Decided by the stream's scan (`fast.ts`); what
 * it hands over, and errors, take the general path (`run`), serialised as
 * they are.
 */
import { decisionToJson } from "../conformance.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { run } from "./decide.js";
import { scanDecide } from "./fast.js";
import { writeAskList } from "./ask.js";
import type { PolicyRequest, SystemInfo } from "./types.js";
import { ByteOutput } from "./bytes.js";
import { utf8Decode, utf8Encode } from "./utf8.js";

export { ByteOutput, type HandOver } from "./bytes.js";

const enc = utf8Encode;
const OPEN_RULE = enc('{"rule":{"file":');
const LINE = enc(',"line":');
const INTENDED = enc('},"intended_target":');
const DENY_TRUE = enc(',"ok":true,"action":"deny","notify":true,"message":');
const DENY_FALSE = enc(',"ok":true,"action":"deny","notify":false,"message":');
const ALLOW = enc(',"ok":true,"action":"allow","target":');
const ASK = enc(',"ok":true,"action":"ask","targets_for_ask":');
const DEFAULT = enc(',"default_target":');
const NULL = enc("null");
const NONE_END = enc('None"}');
const END_MESSAGE = enc('"}');

/** Bounded memos: reset when this large (for repeated values, not a store of every value ever seen). */
const MEMO_MAX = 16384;

function memo(m: Map<string, Uint8Array>, k: string, make: (k: string) => string): Uint8Array {
  let b = m.get(k);
  if (b === undefined) {
    if (m.size >= MEMO_MAX) m.clear();
    m.set(k, (b = enc(make(k))));
  }
  return b;
}

const str = JSON.stringify as (s: string | null) => string;

/** Names (and files) as JSON strings, encoded. */
const quotedNames = new Map<string, Uint8Array>();
/** Per rule file path: `"denied by policy PATH:` (the message up to the line number). */
const denyPrefixes = new Map<string, Uint8Array>();

function denyPrefix(path: string): string {
  const s = JSON.stringify(`denied by policy ${path}:`);
  return s.slice(0, -1);
}

/**
 * Per `user=` value: the parts after the target of an allow
 * (`,"user":…,"notify":…,"autostart":…,"exec":`) and after the default
 * target of an ask (`,"target":null,"user":…,"notify":…,"autostart":…}`),
 * four each (notify × autostart).
 */
const userParts = new Map<string | null, { allow: Uint8Array[]; ask: Uint8Array[] }>();

function partsOf(user: string | null): { allow: Uint8Array[]; ask: Uint8Array[] } {
  let p = userParts.get(user);
  if (p === undefined) {
    if (userParts.size >= MEMO_MAX) userParts.clear();
    const allow: Uint8Array[] = [];
    const ask: Uint8Array[] = [];
    for (const notify of [false, true]) {
      for (const autostart of [false, true]) {
        allow.push(enc(`,"user":${str(user)},"notify":${notify},"autostart":${autostart},"exec":`));
        ask.push(enc(`,"target":null,"user":${str(user)},"notify":${notify},"autostart":${autostart}}`));
      }
    }
    userParts.set(user, (p = { allow, ask }));
  }
  return p;
}

/** `{"rule":{"file":…,"line":…},"intended_target":` of a rule. */
function writeHead(out: ByteOutput, rule: PolicyRule): void {
  out.bytes(OPEN_RULE);
  out.bytes(memo(quotedNames, rule.origin.file, str));
  out.bytes(LINE);
  const line = rule.origin.line;
  if (line === null) out.bytes(NULL);
  else out.uint(line);
  out.bytes(INTENDED);
}

/**
 * Per rule of the policy last seen, the bytes of its head ({@link writeHead})
 * and, for a deny rule, of what follows the intended target: made once into
 * one growing arena, so that a decision copies a run instead of putting
 * five pieces together. `at[4i]` to `at[4i + 1]` is rule `i`'s head and
 * `at[4i + 2]` to `at[4i + 3]` its deny part (an end of 0: not made yet).
 */
interface RuleArena {
  rules: readonly PolicyRule[];
  bytes: ByteOutput;
  at: Int32Array;
}

const arenas = new WeakMap<readonly PolicyRule[], RuleArena>();
/** The arena used last: a stream asks for the same one on every line. */
let lastArena: RuleArena | undefined;

function arenaOf(policy: CompiledPolicy): RuleArena {
  const rules = policy.rules;
  if (lastArena !== undefined && lastArena.rules === rules) return lastArena;
  let a = arenas.get(rules);
  if (a === undefined) arenas.set(rules, (a = { rules, bytes: new ByteOutput(1 << 12), at: new Int32Array(4 * rules.length) }));
  return (lastArena = a);
}

/** Writes the head of `rule` (`policy.rules[rule.index]`) from the arena, making it first. */
function writeRuleHead(out: ByteOutput, a: RuleArena, rule: PolicyRule): void {
  const i = 4 * rule.index;
  const at = a.at;
  if (at[i + 1] === 0) {
    at[i] = a.bytes.off;
    writeHead(a.bytes, rule);
    at[i + 1] = a.bytes.off;
  }
  out.range(a.bytes.buf, at[i]!, at[i + 1]!);
}

/** Writes what follows a deny decision's intended target (the action, notify, the message) from the arena, making it first. */
function writeDenyTail(out: ByteOutput, a: RuleArena, rule: PolicyRule): void {
  const i = 4 * rule.index + 2;
  const at = a.at;
  if (at[i + 1] === 0) {
    const b = a.bytes;
    at[i] = b.off;
    b.bytes(rule.notify ? DENY_TRUE : DENY_FALSE);
    b.bytes(memo(denyPrefixes, rule.origin.path, denyPrefix));
    const line = rule.origin.line;
    if (line === null) b.bytes(NONE_END);
    else {
      b.uint(line);
      b.bytes(END_MESSAGE);
    }
    at[i + 1] = b.off;
  }
  out.range(a.bytes.buf, at[i]!, at[i + 1]!);
}

/** The user/notify/autostart parts of a rule with no `user=` (the common case, without a lookup). */
let noUserParts: { allow: Uint8Array[]; ask: Uint8Array[] } | undefined;

function userPartsOf(rule: PolicyRule): { allow: Uint8Array[]; ask: Uint8Array[] } {
  return rule.user === null ? (noUserParts ??= partsOf(null)) : partsOf(rule.user);
}

/** The JSON of the engine's "no matching rule found" (the same for every request). */
let noMatch: Uint8Array | undefined;

/**
 * Decides a request as {@link evaluate} does and appends its decision as one
 * line of JSON (no line ending), as UTF-8, to `out`: exactly the bytes of
 * `JSON.stringify(decisionToJson(evaluate(policy, request, system)))`, the
 * format of the conformance corpus and of `qkit policy eval --json`; the
 * last byte written is the object's closing `}`. Much cheaper than that for
 * many requests on the same policy and system model (what repeats is
 * encoded once). Never throws.
 */
export function evaluateJsonBytes(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo, out: ByteOutput): void {
  const s = scanDecide(policy, request, system);
  if (s !== null) {
    const rule = s.rule;
    if (s.error) {
      out.text(JSON.stringify(decisionToJson(s.error)));
      return;
    }
    if (rule === null) {
      out.bytes((noMatch ??= enc(JSON.stringify(decisionToJson({ ok: false, error: "AccessDenied", code: "no-matching-rule", message: "no matching rule found", stage: "match", notify: true })))));
      return;
    }
    // Every rule the scan decides by is one of `policy.rules` (its `index` is its place there).
    const a = arenaOf(policy);
    writeRuleHead(out, a, rule);
    out.bytes(s.intendedJson ?? memo(quotedNames, s.intended, str));
    switch (rule.action) {
      case "deny":
        writeDenyTail(out, a, rule);
        return;
      case "allow":
        out.bytes(ALLOW);
        out.bytes(s.targetJson ?? memo(quotedNames, s.target!, str));
        out.bytes(userPartsOf(rule).allow[(rule.notify ? 2 : 0) + (rule.autostart ? 1 : 0)]!);
        out.bytes(s.exec!);
        out.byte(125);
        return;
      case "ask":
        out.bytes(ASK);
        if (s.askList) writeAskList(out, s.askList);
        else out.text(JSON.stringify(s.targets!));
        out.bytes(DEFAULT);
        out.bytes(s.defaultTarget === null || s.defaultTarget === undefined ? NULL : memo(quotedNames, s.defaultTarget, str));
        out.bytes(userPartsOf(rule).ask[(rule.notify ? 2 : 0) + (rule.autostart ? 1 : 0)]!);
        return;
    }
  }
  out.text(JSON.stringify(decisionToJson(run(policy, request, system, undefined, undefined, false, true).decision)));
}

/** The scratch output of {@link evaluateJson} (grown to the longest line seen). */
const scratch = new ByteOutput(1 << 12);

/**
 * {@link evaluateJsonBytes} as a string: exactly
 * `JSON.stringify(decisionToJson(evaluate(policy, request, system)))`.
 * Never throws.
 */
export function evaluateJson(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo): string {
  scratch.off = 0;
  evaluateJsonBytes(policy, request, system, scratch);
  return utf8Decode(scratch.buf, 0, scratch.off);
}

/**
 * {@link evaluateJson} appended to `out` as pieces whose concatenation is
 * the JSON text (here one piece). Kept for callers of earlier versions;
 * {@link evaluateJsonBytes} is what a writer of many lines wants.
 */
export function evaluateJsonPieces(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo, out: string[]): void {
  out.push(evaluateJson(policy, request, system));
}
