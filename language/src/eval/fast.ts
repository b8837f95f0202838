/**
 * Streams of requests: a decision by an in-order scan over match vectors.
 *
 * For a call to a service, every rule it can match is one packed array in
 * policy order (`index.ts` `scanOrder`: the service's rules and the `* *`
 * rules, built without the rule index), each rule with its argument's id:
 * the scans skip the rules of other arguments. Whether a rule matches is
 * two reads: the source's vector over the distinct source tokens and the
 * verified target's vector over the distinct target tokens, each entry
 * filled on first use by `matchSource`/`matchTarget` themselves (1 match, 0
 * not, 2 the engine crashes there), and kept per source and per target for
 * the next requests. The `ask` collection walks the same array
 * (`collectTargetsForAskScan`) and stops once nothing after can change it;
 * equal lists are one shared entry, written as JSON from its bitset
 * (`json.ts`). Tables are typed arrays carved from shared slabs
 * (`slab.ts`): on a long stream, fresh memory and typed-array allocations
 * cost more than deciding.
 *
 * The refusals of the evaluation stage and crashes while matching are
 * decided here as `run` decides them (the same rules are tried in the same
 * order). Whatever else is unusual (a crash elsewhere, a refused target, a
 * Qubes Air relay, a policy loaded for one service) makes {@link scanDecide}
 * return null before anything is written, and the caller decides the
 * request by `run` (`decide.ts`). So this path changes no decision; property
 * tests compare it with `evaluate` request by request
 * (test/language/eval-scan-stream.test.ts, test/cli/eval-stream-json.test.ts).
 *
 * No closures in the scans: one that captures a loop's or a call's names
 * costs an allocation every turn (and most of the stream's GC).
 */
import { isDom0Token } from "../syntax/tokens.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import type { QubeToken } from "../syntax/tree.js";
import { PyCrash } from "./py.js";
import type { PreparedSystem } from "./system.js";
import type { ErrorDecision, ExecResult, PolicyRequest, SystemInfo } from "./types.js";
import { errorDecision, refuse } from "./decide.js";
import { askListHas, askListRunning, askListTargets, collectTargetsForAskScan, type AskList, type ScanSource } from "./ask.js";
import { allowNoAutostart, execAllow } from "./exec.js";
import { slab } from "./slab.js";
import { utf8Encode } from "./utf8.js";
import { prep, scanOrder, scanSystemCache, scanTables, type ScanTables, type ServiceOrder, type SystemCache } from "./index.js";
import { buildRequest, dispvmTemplateOf, matchSource, matchTarget, type BuiltRequest, type Refusal, type VerifiedTarget } from "./match.js";

/** Per (policy, system model): the match vectors and the verified targets. */
interface ScanState {
  scan: ScanTables;
  cache: SystemCache;
  sys: PreparedSystem;
  /** Per source: its match vector and what `ask` collections read of it ({@link ScanSource}). */
  sources: Map<string, ScanSource>;
  /** Per verified target (and, for `@dispvm`, the source's default disposable template): an entry per target token. */
  tgtVecs: Map<string, Uint8Array>;
  /** The source and target columns' name tokens (see {@link nameVector}). */
  srcNames: NameTokens;
  tgtNames: NameTokens;
  /** Per requested target: as the engine verifies it, with what its requests share, or null when that refuses or crashes. */
  verified: Map<string, ScanTarget | null>;
  /** The daemon's answer for an allow, as JSON (UTF-8), by target, requested target, user, autostart and loopback (never for a Qubes Air relay target). */
  execJson: Map<string, Map<string, Map<string, (Uint8Array | undefined)[]>>>;
  /** The last argument met and its id (a stream's arguments are mostly one, `+`). */
  lastArgument: string;
  lastArgId: number;
}

const states = new WeakMap<CompiledPolicy, WeakMap<PreparedSystem, ScanState>>();

/** Bounded memos: reset when this large (a memo for repeated names, not a store of every name ever seen). */
const MEMO_MAX = 16384;

/**
 * The last state used: a stream asks for the same one on every line (two
 * weak-map lookups saved a line). It holds the last policy and system model
 * until the next call with others.
 */
let lastPolicy: CompiledPolicy | undefined;
let lastSystem: SystemInfo | undefined;
let lastState: ScanState | undefined;

function stateOf(policy: CompiledPolicy, sys: PreparedSystem): ScanState {
  let bySys = states.get(policy);
  if (bySys === undefined) states.set(policy, (bySys = new WeakMap()));
  let s = bySys.get(sys);
  if (s === undefined) {
    const scan = scanTables(policy);
    s = {
      scan,
      cache: scanSystemCache(scan, sys),
      sys,
      sources: new Map(),
      tgtVecs: new Map(),
      srcNames: nameTokens(scan.srcTokens, SRC_BY_NAME),
      tgtNames: nameTokens(scan.tgtTokens, TGT_BY_NAME),
      verified: new Map(),
      execJson: new Map(),
      lastArgument: "+",
      lastArgId: scan.argIds.get("+") ?? 0,
    };
    bySys.set(sys, s);
  }
  return s;
}

function remember<V>(m: Map<string, V>, k: string, v: V): V {
  if (m.size >= MEMO_MAX) m.clear();
  m.set(k, v);
  return v;
}

/**
 * A requested target as the scan uses it: verified once, and what every
 * request to it shares, kept with it (one lookup a request, where each was
 * a lookup of its own).
 */
export interface ScanTarget {
  t: VerifiedTarget;
  /** `t.text` as JSON (UTF-8): the decision's `intended_target`. */
  quoted: Uint8Array;
  /** Whether it is a qube of the system model (a key of its domains). */
  known: boolean;
  /** Its match vector over the target tokens, once made (never for `@dispvm`, whose vector depends on the source: `tgtVecs`). */
  tv: Uint8Array | undefined;
  /** The daemon's answers for an allow to this very target with no `user=`, by slot (see {@link execJsonOf}). */
  execSame: (Uint8Array | undefined)[] | undefined;
}

/** The requested target as `buildRequest` verifies it (null: it refuses or crashes; `run` says how). */
function verify(st: ScanState, target: string): ScanTarget | null {
  const hit = st.verified.get(target);
  if (hit !== undefined) return hit;
  let v: ScanTarget | null;
  try {
    const t = buildRequest({ service: "", argument: "+", source: "", target }, st.sys).target;
    v = { t, known: st.sys.domains.has(target), quoted: utf8Encode(JSON.stringify(t.text)), tv: undefined, execSame: undefined };
  } catch {
    v = null;
  }
  return remember(st.verified, target, v);
}

/**
 * The name tokens of one column (source or target), by what they match: a
 * name matches itself, `uuid:U` the qube whose `uuid` is U, and the dom0
 * names (`dom0`, dom0's uuid) dom0. Whether a plain qube name (not
 * `uuid:…`) matches each of them is then known without calling the
 * matcher: the vector starts from `blank` (0 for these tokens, and for the
 * kinds that never match such a name; 255, to be computed, for the rest)
 * and only the few tokens that match are set to 1.
 */
interface NameTokens {
  blank: Uint8Array;
  plain: Map<string, number[]>;
  uuid: Map<string, number[]>;
  dom0: number[];
}

/** Kinds no plain source name matches but by its name: set from {@link NameTokens}, never by the matcher. */
const SRC_BY_NAME = new Set(["name", "dispvm-template", "dispvm-tag"]);
/** Likewise for a verified target of kind `name` (not `@default`, `@dispvm`, or a disposable). */
const TGT_BY_NAME = new Set(["name", "dispvm-template", "dispvm-tag", "default", "dispvm"]);

function nameTokens(tokens: QubeToken[], byName: Set<string>): NameTokens {
  const blank = new Uint8Array(tokens.length).fill(255);
  const plain = new Map<string, number[]>();
  const uuid = new Map<string, number[]>();
  const dom0: number[] = [];
  for (let id = 0; id < tokens.length; id++) {
    const tok = tokens[id]!;
    if (!byName.has(tok.kind)) continue;
    blank[id] = 0;
    if (tok.kind !== "name") continue;
    const text = tok.text;
    if (isDom0Token(text)) dom0.push(id);
    else {
      const m = text.startsWith("uuid:") ? uuid : plain;
      const k = text.startsWith("uuid:") ? text.slice(5) : text;
      const ids = m.get(k);
      if (ids === undefined) m.set(k, [id]);
      else ids.push(id);
    }
  }
  return { blank, plain, uuid, dom0 };
}

/**
 * A fresh match vector for the qube `name` (a source, or a verified target
 * of kind `name`): the name tokens' entries are set as the matcher would
 * set them (see {@link NameTokens}), the others are 255. A `uuid:` name, or
 * anything else unusual, gets all 255 (each entry then computed by the
 * matcher on first use).
 */
function nameVector(nt: NameTokens, name: string | null, info: PreparedSystem["domains"]): Uint8Array {
  const v = slab.u8(nt.blank.length);
  if (name === null || name.startsWith("uuid:")) return v.fill(255);
  v.set(nt.blank);
  if (isDom0Token(name)) {
    for (const id of nt.dom0) v[id] = 1;
    return v;
  }
  const ids = nt.plain.get(name);
  if (ids !== undefined) for (const id of ids) v[id] = 1;
  if (nt.uuid.size > 0) {
    const d = info.get(name) as unknown;
    if (typeof d === "object" && d !== null && "uuid" in d) {
      const u = (d as { uuid: unknown }).uuid;
      const us = typeof u === "string" ? nt.uuid.get(u) : undefined;
      if (us !== undefined) for (const id of us) v[id] = 1;
    }
  }
  return v;
}

function fillSource(scan: ScanTables, sv: Uint8Array, id: number, source: string, info: PreparedSystem["domains"]): number {
  let v: number;
  try {
    v = matchSource(scan.srcTokens[id]!, source, info) ? 1 : 0;
  } catch (e) {
    if (!(e instanceof PyCrash)) throw e;
    v = 2;
  }
  return (sv[id] = v);
}

function fillTarget(scan: ScanTables, tv: Uint8Array, id: number, t: VerifiedTarget, source: string, info: PreparedSystem["domains"]): number {
  let v: number;
  try {
    v = matchTarget(scan.tgtTokens[id]!, t, source, info) ? 1 : 0;
  } catch (e) {
    if (!(e instanceof PyCrash)) throw e;
    v = 2;
  }
  return (tv[id] = v);
}

/** What {@link scanDecide} found: the deciding rule and what the answer needs. */
export interface ScanDecision {
  /** Null: no rule matches (the engine's "no matching rule found"). */
  rule: PolicyRule | null;
  intended: string;
  /** allow: the final target and the daemon's answer as JSON (UTF-8). */
  target?: string;
  exec?: Uint8Array;
  /** The intended target as JSON (UTF-8), when the scan has it. */
  intendedJson?: Uint8Array;
  /** allow: the final target as JSON (UTF-8), when it is the intended one. */
  targetJson?: Uint8Array;
  /** ask: the offered targets, or (empty here) the shared list they are, with its JSON. */
  targets?: string[];
  askList?: AskList;
  defaultTarget?: string | null;
  /** A refusal of the evaluation stage, as `run` decides it. */
  error?: ErrorDecision;
}

/** The source and target {@link scanDecide} last found the records of, the system model they were looked up in, and whether they are qubes of it (1, 2). */
let lastSource: string | undefined;
let lastTarget: string | undefined;
let lastKnownIn: SystemInfo | undefined;
let lastKnown = 0;

/**
 * Whether the source (bit 1) and the target (bit 2) of `request` are qubes
 * of `system` (keys of its domains): for a stream's warnings, asked right
 * after the request is decided, when the scan has just looked both up (no
 * lookup of its own then). As for decisions, a system model is not to be
 * changed once used.
 */
export function requestNamesKnown(request: PolicyRequest, system: SystemInfo): number {
  const target = request.target ?? "";
  if (system === lastKnownIn && request.source === lastSource && target === lastTarget) return lastKnown;
  // The model as the evaluator reads it (its copy, for a model that was not prepared).
  const d = prep(system).domains;
  return (d.has(request.source) ? 1 : 0) | (d.has(target) ? 2 : 0);
}

/**
 * Decides a request by the in-order scan; null when the request leaves the
 * ordinary path (then `run` decides it). Never throws for the engine's
 * crashes.
 */
export function scanDecide(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo): ScanDecision | null {
  if (policy.service !== undefined || request.requestedSource) return null;
  const argument = request.argument ?? "+";
  if (!argument || argument.charCodeAt(0) !== 43) return null;
  let st: ScanState;
  if (policy === lastPolicy && system === lastSystem) st = lastState!;
  else {
    st = stateOf(policy, prep(system));
    lastPolicy = policy;
    lastSystem = system;
    lastState = st;
  }
  const sys = st.sys;
  if (!st.scan.packable) return null;
  const at = verify(st, request.target ?? "");
  if (at === null) return null;
  const t = at.t;
  const source = request.source;
  const info = sys.domains;
  const scan = st.scan;
  try {
    let src = st.sources.get(source);
    if (src === undefined) src = newSource(st, source, info);
    const sv = src.sv;
    // What the caller's warnings ask next (see `requestNamesKnown`), found with the records.
    lastSource = source;
    lastTarget = request.target ?? "";
    lastKnownIn = system;
    lastKnown = (src.known ? 1 : 0) | (at.known ? 2 : 0);
    let tv: Uint8Array | undefined;
    if (t.kind === "dispvm") {
      // A new disposable's vector depends on the source's default disposable template.
      const tkey = t.text + "\0" + (dispvmTemplateOf(info, source) ?? "\u0001");
      tv = st.tgtVecs.get(tkey);
      if (tv === undefined) tv = remember(st.tgtVecs, tkey, nameVector(st.tgtNames, null, info));
    } else tv = at.tv ??= nameVector(st.tgtNames, t.kind === "name" ? t.text : null, info);
    const order = scanOrder(scan, request.service);
    const packed = order.packed;
    // The rules of another argument are skipped (an argument no rule names: id 0, the `*` rules only).
    let aid: number;
    if (argument === st.lastArgument) aid = st.lastArgId;
    else {
      aid = scan.argIds.get(argument) ?? 0;
      st.lastArgument = argument;
      st.lastArgId = aid;
    }
    let found = -1;
    for (let k = 0; k < packed.length; k += 4) {
      const a = packed[k + 3]!;
      if (a !== 0 && a !== aid) continue;
      const key = packed[k + 1]!;
      const sid = key & 0xffff;
      let m = sv[sid]!;
      if (m === 255) m = fillSource(scan, sv, sid, source, info);
      if (m === 0) continue;
      // The engine crashes on this rule (`run` tries the same rules in the same order, so it crashes here too).
      if (m !== 1) return crashed(scan.srcTokens[sid]!, null, source, t, info);
      const tid = key >>> 16;
      let n = tv[tid]!;
      if (n === 255) n = fillTarget(scan, tv, tid, t, source, info);
      if (n === 0) continue;
      if (n !== 1) return crashed(null, scan.tgtTokens[tid]!, source, t, info);
      found = packed[k]!;
      break;
    }
    // No match and deny take the same path (one object literal, the same reads): a path first taken once the scan is
    // optimised (the first request no rule matches) would throw that code away.
    const intended = t.text;
    const rule = found < 0 ? null : policy.rules[found]!;
    if (rule === null || rule.action === "deny") return { rule, intended, intendedJson: at.quoted };
    // Each action's evaluation is a function of its own: smaller units to optimise (and re-optimise when a rare path first runs).
    if (rule.action === "allow") return allowDecision(st, rule, request.service, argument, source, at);
    return askDecision(st, rule, order, aid, src, source, at);
  } catch (e) {
    // The engine crashes or refuses somewhere on the way: `run` says how.
    if (e instanceof PyCrash) return null;
    throw e;
  }
}

/**
 * The record of a source met for the first time, kept. A function of its
 * own, as each allocation of what lives long: V8 soon allocates such
 * objects where old objects go, and throws away the code that allocates
 * them when it decides so (then {@link scanDecide} would be compiled again).
 */
function newSource(st: ScanState, source: string, info: PreparedSystem["domains"]): ScanSource {
  return remember(st.sources, source, { sv: nameVector(st.srcNames, source, info), known: info.has(source), crashFree: -1, self: -2, name: undefined });
}

const NO_TARGETS: string[] = [];

/** An allow rule's decision (see {@link scanDecide}; a PyCrash is the caller's to catch). */
function allowDecision(st: ScanState, rule: PolicyRule, service: string, argument: string, source: string, at: ScanTarget): ScanDecision | null {
  const info = st.sys.domains;
  const t = at.t;
  const intended = t.text;
  let to = t;
  if (rule.redirect) {
    const r = verify(st, rule.redirect.text);
    if (r === null) return null;
    to = r.t;
  }
  if (to.text === "@default") return refused(refuse.noTarget(rule), rule, intended);
  let target = to.text;
  if (to.kind === "dispvm") {
    const tpl = dispvmTemplateOf(info, source);
    if (tpl === null) return refused(refuse.noDispvmBase(rule), rule, intended);
    target = tpl;
  } else if (target === "@adminvm") target = "dom0";
  if (!rule.autostart && !allowNoAutostart(target, info)) return refused(refuse.autostart(rule, target), rule, intended);
  const exec = execJsonOf(st, service, argument, source, at, target, rule.user, rule.autostart);
  return target === intended ? { rule, intended, intendedJson: at.quoted, target, targetJson: at.quoted, exec } : { rule, intended, intendedJson: at.quoted, target, exec };
}

/** An ask rule's decision (see {@link scanDecide}; a PyCrash is the caller's to catch). */
function askDecision(st: ScanState, rule: PolicyRule, order: ServiceOrder, aid: number, src: ScanSource, source: string, at: ScanTarget): ScanDecision | null {
  const t = at.t;
  const sys = st.sys;
  const info = sys.domains;
  const scan = st.scan;
  const intended = t.text;
  let targets: string[];
  let askList: AskList | undefined;
  if (rule.redirect) targets = [isDom0Token(rule.redirect.text) ? "dom0" : rule.redirect.text];
  else {
    const e = collectTargetsForAskScan(scan.askTokens, st.cache, order, aid, src, scan.srcTokens, source, sys);
    if (e === null) return null;
    // autostart=no offers the running targets only: a list of its own, kept with `e` (or, when that cannot be, the strings filtered below).
    askList = rule.autostart ? e : (askListRunning(e, info) ?? undefined);
    targets = askList !== undefined ? NO_TARGETS : askListTargets(e, info);
  }
  if (!rule.autostart && askList === undefined) {
    // A loop, not `filter` with a closure: a closure over this function's names would cost an allocation every call.
    const kept: string[] = [];
    for (const x of targets) if (allowNoAutostart(x, info)) kept.push(x);
    targets = kept;
  }
  if (askList ? askList.size === 0 : targets.length === 0) return refused(refuse.askNoTargets(rule), rule, intended);
  const def = rule.defaultTarget ? askDefault(rule.defaultTarget, info, source, askList, targets) : null;
  return { rule, intended, intendedJson: at.quoted, targets, askList, defaultTarget: def };
}

/**
 * An ask rule's `default_target=` as offered: its qube, or null when the
 * offered targets do not hold it. A function of its own: an optimised
 * {@link askDecision} that met no default target yet would otherwise be
 * thrown away at the first one.
 */
function askDefault(tok: QubeToken, info: PreparedSystem["domains"], source: string, askList: AskList | undefined, targets: string[]): string | null {
  let def: string | null;
  if (tok.kind === "dispvm") def = dispvmTemplateOf(info, source);
  else if (isDom0Token(tok.text)) def = "dom0";
  else def = tok.text;
  if (def && !(askList ? askListHas(askList, def, info) : targets.includes(def))) def = null;
  return def;
}

/**
 * The decision of a crash while matching a source token (or else a target
 * token): matching raises it again (it raised it when its vector entry was
 * filled). No closure here: one made in the scan's loop would cost an
 * allocation every turn.
 */
function crashed(src: QubeToken | null, tgt: QubeToken | null, source: string, t: VerifiedTarget, info: PreparedSystem["domains"]): ScanDecision | null {
  try {
    if (src !== null) matchSource(src, source, info);
    else matchTarget(tgt!, t, source, info);
  } catch (e) {
    if (e instanceof PyCrash) return { rule: null, intended: t.text, error: errorDecision("match", e) };
    throw e;
  }
  return null;
}

function refused(e: Refusal, rule: PolicyRule, intended: string): ScanDecision {
  return { rule, intended, error: errorDecision("evaluate", e, rule, intended) };
}

/** The daemon's answer for an allow, as JSON (UTF-8), memoised by everything it depends on (not for Qubes Air relay targets). */
function execJsonOf(st: ScanState, service: string, argument: string, source: string, at: ScanTarget, target: string, user: string | null, autostart: boolean): Uint8Array {
  const t = at.t;
  // The answer reads the source only to compare it with the target, and the service only for a relay target (not memoised).
  const slot = (autostart ? 2 : 0) + (source === target ? 1 : 0);
  // The common case, kept with the requested target: the call goes where it was asked to, as the default user.
  if (user === null && target === t.text) {
    const same = (at.execSame ??= [undefined, undefined, undefined, undefined]);
    const hit = same[slot];
    if (hit !== undefined) return hit;
    const made = execBytes(st, service, argument, source, t, target, user, autostart);
    if (made.memo) same[slot] = made.bytes;
    return made.bytes;
  }
  let byRequested = st.execJson.get(target);
  if (byRequested === undefined) byRequested = remember(st.execJson, target, new Map());
  let byUser = byRequested.get(t.text);
  if (byUser === undefined) byRequested.set(t.text, (byUser = new Map()));
  const u = user === null ? "\u0001" : user;
  let slots = byUser.get(u);
  if (slots === undefined) byUser.set(u, (slots = [undefined, undefined, undefined, undefined]));
  const s = slots[slot];
  if (s !== undefined) return s;
  const made = execBytes(st, service, argument, source, t, target, user, autostart);
  if (made.memo) slots[slot] = made.bytes;
  return made.bytes;
}

/** The daemon's answer for an allow as JSON (UTF-8), and whether it may be kept (not for a Qubes Air relay target, which names the service). */
function execBytes(st: ScanState, service: string, argument: string, source: string, t: VerifiedTarget, target: string, user: string | null, autostart: boolean): { bytes: Uint8Array; memo: boolean } {
  const req: BuiltRequest = { service, argument, source, target: t, requestedSource: null, relayvm: null, warnings: [] };
  const exec: ExecResult = execAllow(req, target, user, autostart, st.sys.domains);
  return { bytes: utf8Encode(JSON.stringify(exec)), memo: !("service" in exec) };
}
