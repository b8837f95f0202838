/**
 * `collect_targets_for_ask`: the targets an `ask` rule offers. The fast path
 * works on bitsets over the sorted universe of possible targets, over the
 * index's candidates, memoised per (service, argument, source) and system
 * model; `computeAskReference` is the engine's algorithm, literally.
 */
import { pyCompare } from "../syntax/python.js";
import { isDom0Token } from "../syntax/tokens.js";
import type { QubeToken } from "../syntax/tree.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { contains, eqStr, get, item, PyCrash, pyStr } from "./py.js";
import type { PreparedSystem } from "./system.js";
import type { AskContribution, DomainInfo } from "./types.js";
import { allRules, candidateLists, indexOf, Merge, mergeAll, sourceKeys, systemCache, type Index, type ServiceOrder, type SystemCache, type Universe } from "./index.js";
import { dispvmTemplateOf, domain, matchSource, truthy, type BuiltRequest } from "./match.js";
import { slab } from "./slab.js";
import { allowNoAutostart } from "./exec.js";
import { utf8Encode } from "./utf8.js";
import type { ByteOutput } from "./bytes.js";

/** What `explain` records of an `ask` target collection. */
export interface AskTrace {
  steps: AskContribution[];
  notes: string[];
}


/** `uuid_to_name`. */
function uuidToName(info: ReadonlyMap<string, DomainInfo>, x: string): string {
  if (x.startsWith("uuid:")) return pyStr(item(domain(info, x), "name"));
  if (x.startsWith("@dispvm:uuid:")) return "@dispvm:" + pyStr(item(domain(info, x.slice(8)), "name"));
  return x;
}


/** `token.expand()` for `ask` target collection. */
function expand(tok: QubeToken, sys: PreparedSystem): string[] {
  const info = sys.domains;
  const out: string[] = [];
  switch (tok.kind) {
    case "wildcard":
    case "anyvm":
      for (const name of sys.names) {
        const d = info.get(name)!;
        if (tok.kind === "wildcard" || !isDom0Token(name)) out.push(name);
        if (truthy(item(d, "template_for_dispvms"))) out.push("@dispvm:" + name);
      }
      out.push("@dispvm");
      return out;
    case "adminvm":
      return ["@adminvm"];
    case "default":
      return [];
    case "dispvm":
      return ["@dispvm"];
    case "type":
      for (const name of sys.names) if (eqStr(item(info.get(name), "type"), tok.value)) out.push(name);
      return out;
    case "tag":
      for (const name of sys.names) if (contains(item(info.get(name), "tags"), tok.value)) out.push(name);
      return out;
    case "name":
      return info.has(tok.text) ? [uuidToName(info, tok.text)] : [];
    case "dispvm-template":
      return truthy(item(domain(info, tok.value), "template_for_dispvms")) ? [uuidToName(info, tok.text)] : [];
    case "dispvm-tag":
      for (const name of sys.names) {
        const d = info.get(name);
        if (contains(item(d, "tags"), tok.value) && truthy(item(d, "template_for_dispvms"))) out.push("@dispvm:" + name);
      }
      return out;
  }
}

function cachedExpand(tok: QubeToken, sys: PreparedSystem, cache: SystemCache): string[] {
  return memoized(cache.expansions, tok, () => expand(tok, sys));
}

/**
 * `compute()` once per key. A crash of the real engine is remembered too and
 * thrown again on every later call, as the engine would crash every time.
 */
function memoized<K, V>(map: Map<K, V | PyCrash>, key: K, compute: () => V): V {
  let v = map.get(key);
  if (v === undefined && !map.has(key)) {
    try {
      v = compute();
    } catch (err) {
      if (!(err instanceof PyCrash)) throw err;
      v = err;
    }
    map.set(key, v);
  }
  if (v instanceof PyCrash) throw v;
  return v as V;
}

/**
 * `collect_targets_for_ask`. The engine scans the whole policy backwards,
 * adding the targets of allow/ask rules and removing those of deny rules; so
 * a target is offered exactly when the *first* matching rule (in policy
 * order) whose targets include it is not a deny. That is computed forwards
 * here, over the indexed candidates only, and memoised per
 * (service, argument, source) and system model.
 */
export function collectTargetsForAsk(policy: CompiledPolicy, req: BuiltRequest, sys: PreparedSystem, contributions?: AskTrace, linear = false): string[] {
  // The reference path: the engine's own algorithm, literally (what the fast versions are checked against).
  if (linear) return computeAskReference(policy, req, sys);
  const index = indexOf(policy);
  const cache = systemCache(index, sys);
  const key = req.service + "\0" + req.argument + "\0" + req.source;
  const hit = contributions ? undefined : cache.asks.get(key);
  if (hit !== undefined) {
    if (hit instanceof PyCrash) throw hit;
    return hit;
  }
  let result: string[] | PyCrash;
  try {
    result = computeAsk(policy, index, req, sys, cache, contributions);
  } catch (err) {
    if (!(err instanceof PyCrash)) throw err;
    result = err;
  }
  if (!contributions) {
    // Bounded: a memo for repeated calls, not a store of every source ever seen.
    if (cache.asks.size >= 4096) cache.asks.clear();
    cache.asks.set(key, result);
  }
  if (result instanceof PyCrash) throw result;
  return result;
}

function universeOf(sys: PreparedSystem, cache: SystemCache): Universe {
  if (cache.universe) return cache.universe;
  const items = ["@adminvm", "@dispvm"];
  for (const n of sys.names) {
    items.push(n);
    const d = sys.domains.get(n);
    let template = false;
    try {
      template = truthy(item(d, "template_for_dispvms"));
    } catch {
      // Not well formed: expansions over it crash, which `bitsetOf` reports.
    }
    if (template) items.push("@dispvm:" + n);
  }
  const sorted = [...new Set(items)].sort(pyCompare);
  const index = new Map(sorted.map((t, i) => [t, i] as const));
  const internal = sorted.map((t): boolean | PyCrash => {
    if (t === "@adminvm" || t === "@dispvm") return false;
    const name = t.startsWith("@dispvm:") ? t.slice(8) : t;
    try {
      return truthy(get(domain(sys.domains, name), "internal", false));
    } catch (e) {
      if (e instanceof PyCrash) return e;
      throw e;
    }
  });
  const at = (t: string): number => index.get(t) ?? -1;
  return (cache.universe = { items: sorted, index, words: (sorted.length + 31) >>> 5, internal, dispvm: at("@dispvm"), adminvm: at("@adminvm"), dom0: at("dom0") });
}

/**
 * The expansion of a token over the universe: a bitset, plus the item
 * indices when there are few (most tokens name one qube), so that sparse
 * sets are applied item by item rather than word by word.
 */
export interface TargetSet {
  bits: Uint32Array;
  /** The item indices when there are at most 8, else null. */
  few: number[] | null;
}

/** The expansion of a token as a {@link TargetSet}, with `uuid_to_name` applied to each item. */
function bitsetOf(tok: QubeToken, sys: PreparedSystem, cache: SystemCache, u: Universe): TargetSet | null {
  return memoized(cache.bitsets, tok, () => {
    const bits = new Uint32Array(u.words);
    for (const raw of cachedExpand(tok, sys, cache)) {
      let t: string;
      try {
        t = uuidToName(sys.domains, raw);
      } catch (err) {
        if (err instanceof PyCrash && err.pyClass === "KeyError") continue;
        throw err;
      }
      const i = u.index.get(t);
      // An item outside the universe: the caller falls back to string sets.
      if (i === undefined) return null;
      bits[i >>> 5]! |= 1 << (i & 31);
    }
    const few: number[] = [];
    for (let i = 0; i < u.items.length && few.length <= 8; i++) if (bits[i >>> 5]! & (1 << (i & 31))) few.push(i);
    return { bits, few: few.length <= 8 ? few : null };
  });
}

/**
 * The source's name and `uuid:` spelling, looked up as the engine does at the
 * start of `collect_targets_for_ask` (a KeyError for an unknown source).
 */
function sourceIdentity(info: ReadonlyMap<string, DomainInfo>, source: string): { sourceName: string; sourceUuid: string } {
  if (source.startsWith("uuid:")) return { sourceUuid: source, sourceName: pyStr(item(domain(info, source), "name")) };
  return { sourceUuid: "uuid:" + pyStr(item(domain(info, source), "uuid")), sourceName: source };
}

/** {@link sourceIdentity}'s `sourceName`, crashing where it crashes, without building the `uuid:` spelling. */
function sourceNameOf(info: ReadonlyMap<string, DomainInfo>, source: string): string {
  if (source.startsWith("uuid:")) return pyStr(item(domain(info, source), "name"));
  item(domain(info, source), "uuid");
  return source;
}

/**
 * `collect_targets_for_ask` over bitsets (see {@link collectTargetsForAsk});
 * falls back to the string version when a target lies outside the universe
 * (only with unusual system models).
 */
function computeAsk(policy: CompiledPolicy, index: Index | null, req: BuiltRequest, sys: PreparedSystem, cache: SystemCache, contributions?: AskTrace): string[] {
  const info = sys.domains;
  const source = req.source;
  const { sourceName } = sourceIdentity(info, source);
  const u = universeOf(sys, cache);
  const W = u.words;
  const decided = new Uint32Array(W);
  const offered = new Uint32Array(W);
  // With a well-formed system, every rule in the source-key lists matches
  // the source (the keys are exact), so the loop below works on the index's
  // typed arrays alone. Otherwise (or without an index) each rule is checked
  // in full, as the engine does, crashes included.
  const keys = index ? sourceKeys(source, sys) : null;
  const fast = index !== null && keys !== null && !contributions;
  const lists = index ? candidateLists(index, req.service, req.argument, source, sys) : allRules(policy);
  // Every candidate is visited, so one sorted array beats a k-way merge.
  const order = mergeAll(lists);
  const sets = cache.setsById;
  for (let n = 0; n < order.length; n++) {
    const i = order[n]!;
    let set: TargetSet | null;
    let deny: boolean;
    let rule: PolicyRule | undefined;
    if (fast) {
      const id = index.askToken[i]!;
      // By token id: an array read in the hot loop (bitsetOf rethrows a remembered crash).
      let s = sets[id];
      if (s === undefined) sets[id] = s = bitsetOf(index.tokens[id]!, sys, cache, u);
      set = s;
      deny = index.deny[i] === 1;
    } else {
      rule = policy.rules[i]!;
      if (rule.service !== null && rule.service !== req.service) continue;
      if (rule.argument !== null && rule.argument !== req.argument) continue;
      if (!matchSource(rule.source, source, info)) continue;
      set = bitsetOf(rule.action !== "deny" && rule.redirect ? rule.redirect : rule.target, sys, cache, u);
      deny = rule.action === "deny";
    }
    if (set === null) return computeAskStrings(policy, index, req, sys, cache, contributions);
    let changed: string[] | undefined;
    const few = set.few;
    if (few !== null) {
      for (let k = 0; k < few.length; k++) {
        const i = few[k]!;
        const w = i >>> 5;
        const b = 1 << (i & 31);
        if (decided[w]! & b) continue;
        decided[w]! |= b;
        if (!deny) offered[w]! |= b;
        if (contributions) (changed ??= []).push(u.items[i]!);
      }
    } else {
      const bits = set.bits;
      for (let w = 0; w < W; w++) {
        const nb = bits[w]! & ~decided[w]!;
        if (nb === 0) continue;
        decided[w]! |= nb;
        if (!deny) offered[w]! |= nb;
        if (contributions) for (let k = 0; k < 32; k++) if (nb & (1 << k)) (changed ??= []).push(u.items[w * 32 + k]!);
      }
    }
    if (changed) contributions!.steps.push({ rule: rule!, effect: deny ? "remove" : "add", targets: changed });
  }
  const has = (t: string) => {
    const i = u.index.get(t);
    return i !== undefined && (offered[i >>> 5]! & (1 << (i & 31))) !== 0;
  };
  // Targets added afterwards that no expansion yields (`@dispvm:X` of a
  // non-template default, `dom0` when absent from the model).
  const extra: string[] = [];
  const set = (t: string, on: boolean) => {
    const i = u.index.get(t);
    if (i === undefined) {
      if (on) extra.push(t);
      else extra.splice(0, extra.length, ...extra.filter((x) => x !== t));
      return;
    }
    if (on) offered[i >>> 5]! |= 1 << (i & 31);
    else offered[i >>> 5]! &= ~(1 << (i & 31));
  };
  const note = (text: string) => contributions?.notes.push(text);
  if (has("@dispvm")) {
    set("@dispvm", false);
    const d = dispvmTemplateOf(info, source);
    if (d !== null) set(d, true);
    note(d !== null ? `\`@dispvm\` is offered as \`${d}\`, the default disposable template of \`${source}\`` : `\`@dispvm\` is dropped: \`${source}\` has no default disposable template`);
  }
  if (has("@adminvm")) {
    set("@adminvm", false);
    set("dom0", true);
    note("`@adminvm` is offered as `dom0`");
  }
  if (has(sourceName) || extra.includes(sourceName)) {
    set(sourceName, false);
    note(`the source \`${sourceName}\` itself is never offered`);
  }
  // The same final set gives the same list (or the same crash): one shared array per content.
  let key: string | undefined;
  if (!contributions) {
    key = bitsKey(offered) + (extra.length ? "\0" + extra.join("\0") : "");
    const hit = cache.askLists.get(key);
    if (hit !== undefined) return hit;
  }
  const out: string[] = [];
  const hidden: string[] = [];
  for (let w = 0; w < W; w++) {
    const word = offered[w]!;
    if (word === 0) continue;
    for (let k = 0; k < 32; k++) {
      if (!(word & (1 << k))) continue;
      const i = w * 32 + k;
      const internal = u.internal[i]!;
      if (internal instanceof PyCrash) throw internal;
      if (internal) hidden.push(u.items[i]!);
      else out.push(u.items[i]!);
    }
  }
  for (const t of extra) {
    const name = t.startsWith("@dispvm:") ? t.slice(8) : t;
    if (truthy(get(domain(info, name), "internal", false))) hidden.push(t);
    else out.push(t);
  }
  if (extra.length) out.sort(pyCompare);
  if (hidden.length) note(`internal qubes are never offered: ${hidden.map((h) => `\`${h}\``).join(", ")}`);
  if (key !== undefined) {
    // Bounded: a memo for repeated lists, not a store of every list ever offered.
    if (cache.askLists.size >= 4096) cache.askLists.clear();
    cache.askLists.set(key, out);
  }
  return out;
}

/** A bitset as a string (two UTF-16 units a word), to key a map by its content. */
function bitsKey(bits: Uint32Array): string {
  const units = new Uint16Array(bits.buffer, bits.byteOffset, bits.length * 2);
  // One flat string (no chain of concatenations), in slices that stay within any argument limit.
  if (units.length <= 4096) return String.fromCharCode.apply(null, units as unknown as number[]);
  let s = "";
  for (let i = 0; i < units.length; i += 4096) s += String.fromCharCode.apply(null, units.subarray(i, i + 4096) as unknown as number[]);
  return s;
}

/**
 * `collect_targets_for_ask` exactly as the engine writes it: every rule of
 * the policy from last to first, adding the targets of allow/ask rules and
 * removing those of deny rules, then the fix-ups. Slow; the reference that
 * the indexed, forward versions are tested against (`evaluate(…, {linear})`).
 */
function computeAskReference(policy: CompiledPolicy, req: BuiltRequest, sys: PreparedSystem): string[] {
  const info = sys.domains;
  const source = req.source;
  const { sourceName, sourceUuid } = sourceIdentity(info, source);
  const targets = new Set<string>();
  for (let i = policy.rules.length - 1; i >= 0; i--) {
    const rule = policy.rules[i]!;
    if (rule.service !== null && rule.service !== req.service) continue;
    if (rule.argument !== null && rule.argument !== req.argument) continue;
    if (!matchSource(rule.source, source, info)) continue;
    const tok = rule.action !== "deny" && rule.redirect ? rule.redirect : rule.target;
    const expansion = new Set<string>();
    for (const raw of expand(tok, sys)) {
      try {
        expansion.add(uuidToName(info, raw));
      } catch (err) {
        if (!(err instanceof PyCrash && err.pyClass === "KeyError")) throw err;
      }
    }
    for (const t of expansion) {
      if (rule.action === "deny") targets.delete(t);
      else targets.add(t);
    }
  }
  if (targets.delete("@dispvm")) {
    const d = dispvmTemplateOf(info, source);
    if (d !== null) targets.add(d);
  }
  if (targets.delete("@adminvm")) targets.add("dom0");
  targets.delete(sourceName);
  targets.delete(sourceUuid);
  for (const t of [...targets]) {
    const name = t.startsWith("@dispvm:") ? t.slice(8) : t;
    if (truthy(get(domain(info, name), "internal", false))) targets.delete(t);
  }
  return [...targets].sort(pyCompare);
}

/** `collect_targets_for_ask` over string sets: the general version. */
function computeAskStrings(policy: CompiledPolicy, index: Index | null, req: BuiltRequest, sys: PreparedSystem, cache: SystemCache, contributions?: AskTrace): string[] {
  if (contributions) {
    contributions.steps.length = 0;
    contributions.notes.length = 0;
  }
  const info = sys.domains;
  const source = req.source;
  const { sourceName, sourceUuid } = sourceIdentity(info, source);
  const decided = new Set<string>();
  const offered = new Set<string>();
  const cursor = new Merge(index ? candidateLists(index, req.service, req.argument, source, sys) : allRules(policy));
  for (let i = cursor.next(); i >= 0; i = cursor.next()) {
    const rule = policy.rules[i]!;
    if (rule.service !== null && rule.service !== req.service) continue;
    if (rule.argument !== null && rule.argument !== req.argument) continue;
    if (!matchSource(rule.source, source, info)) continue;
    const tok = rule.action !== "deny" && rule.redirect ? rule.redirect : rule.target;
    const expansion = cachedExpand(tok, sys, cache);
    const changed: string[] = [];
    for (const raw of expansion) {
      let t: string;
      try {
        t = uuidToName(info, raw);
      } catch (err) {
        if (err instanceof PyCrash && err.pyClass === "KeyError") continue;
        throw err;
      }
      if (decided.has(t)) continue;
      decided.add(t);
      if (rule.action !== "deny") offered.add(t);
      if (contributions) changed.push(t);
    }
    if (contributions && changed.length) contributions.steps.push({ rule, effect: rule.action === "deny" ? "remove" : "add", targets: changed });
  }
  const note = (text: string) => contributions?.notes.push(text);
  if (offered.has("@dispvm")) {
    offered.delete("@dispvm");
    const d = dispvmTemplateOf(info, source);
    if (d !== null) offered.add(d);
    note(d !== null ? `\`@dispvm\` is offered as \`${d}\`, the default disposable template of \`${source}\`` : `\`@dispvm\` is dropped: \`${source}\` has no default disposable template`);
  }
  if (offered.has("@adminvm")) {
    offered.delete("@adminvm");
    offered.add("dom0");
    note("`@adminvm` is offered as `dom0`");
  }
  if (offered.delete(sourceName) || offered.delete(sourceUuid)) note(`the source \`${sourceName}\` itself is never offered`);
  offered.delete(sourceUuid);
  const hidden: string[] = [];
  for (const t of [...offered]) {
    const name = t.startsWith("@dispvm:") ? t.slice(8) : t;
    if (truthy(get(domain(info, name), "internal", false))) {
      offered.delete(t);
      hidden.push(t);
    }
  }
  if (hidden.length) note(`internal qubes are never offered: ${hidden.map((h) => `\`${h}\``).join(", ")}`);
  return [...offered].sort(pyCompare);
}


// ---------------------------------------------------------------------------
// The in-order scan (streams of requests)
// ---------------------------------------------------------------------------

/**
 * A finished `ask` list of the scan, shared by every request whose
 * collection ends alike: its offered bitset (internal qubes included) and
 * the targets outside the universe, and how many targets it lists. Its
 * JSON is written from the bitset when it is output
 * ({@link writeAskList}: no copy of each list's text is kept, which on a
 * long stream is most of the memory touched), and the list itself is
 * rebuilt on demand ({@link askListTargets}).
 */
export interface AskList {
  bits: Uint32Array;
  extra: string[];
  /** The number of targets listed (internal qubes are not). */
  size: number;
  /** With targets outside the universe (rare): the list's JSON, UTF-8. */
  bytes: Uint8Array | null;
  universe: Universe;
  /** The list an `autostart=no` ask offers (the targets that are running); see {@link askListRunning}. */
  running: AskList | null | undefined;
}

/**
 * What the scan keeps of a call's source (per source, see `fast.ts`): its
 * match vector over the source tokens, and what an `ask` collection reads
 * of it, found on the first collection: whether matching it can crash the
 * engine, its name and that name's item in the universe.
 */
export interface ScanSource {
  /** An entry per source token: 1 matches, 0 not, 2 the engine crashes there, 255 not computed yet. */
  sv: Uint8Array;
  /** Whether it is a qube of the system model (a key of its domains). */
  known: boolean;
  /** {@link matchesWithoutCrash}: 1 or 0, -1 not known yet. */
  crashFree: number;
  /** The item of `name` in the universe, -1 none, -2 not known yet (nor `name`). */
  self: number;
  name: string | undefined;
}

/**
 * Whether matching any source token against `source` is sure not to crash
 * the engine: names, `*`, `@anyvm` and `@adminvm` never do, and `@type:`
 * and `@tag:` read the source's `type` and `tags`, which are there and of
 * a type `==` and `in` take (or the source is not a qube at all: no match).
 */
function matchesWithoutCrash(info: ReadonlyMap<string, DomainInfo>, source: string): boolean {
  const d = info.get(source) as unknown;
  if (d === undefined) return true;
  if (typeof d !== "object" || d === null || Array.isArray(d)) return false;
  const o = d as Record<string, unknown>;
  if (!Object.prototype.hasOwnProperty.call(o, "type") || !Object.prototype.hasOwnProperty.call(o, "tags")) return false;
  const tags = o["tags"];
  return Array.isArray(tags) || typeof tags === "string" || (typeof tags === "object" && tags !== null);
}

let scanDecided = new Uint32Array(16);
let scanOffered = new Uint32Array(16);
const NO_EXTRA: string[] = [];

/**
 * `collect_targets_for_ask` over an in-order scan: `packed` is every rule
 * of the call's service in policy order (`index.ts` `scanOrder`), of which
 * the rules of argument id 0 (`*`) and `argId` apply; `srcVec` says per source token
 * whether it matches the call's source (1), not (0), or crashes the engine
 * (2), or 255 for not known yet (then it is computed from `srcTokens`). The same
 * forward computation as {@link computeAsk}'s, with no allocation but for a
 * list not seen before. Returns null where the general path must decide (a
 * crash, a target outside the universe); throws a PyCrash where the engine
 * would crash (the caller then takes the general path, which reports it).
 */
export function collectTargetsForAskScan(
  askTokens: QubeToken[],
  cache: SystemCache,
  order: ServiceOrder,
  argId: number,
  src: ScanSource,
  srcTokens: QubeToken[],
  source: string,
  sys: PreparedSystem,
): AskList | null {
  const info = sys.domains;
  const u = universeOf(sys, cache);
  // What the source's list needs of it, found once per source: its name (which reads its uuid, as the engine does) and that name's item.
  if (src.self === -2) {
    src.name = sourceNameOf(info, source);
    src.self = bitOf(u, src.name);
  }
  const sourceName = src.name!;
  const srcVec = src.sv;
  const packed = order.packed;
  const W = u.words;
  if (scanDecided.length < W) {
    scanDecided = new Uint32Array(W);
    scanOffered = new Uint32Array(W);
  }
  const decided = scanDecided;
  const offered = scanOffered;
  decided.fill(0, 0, W);
  offered.fill(0, 0, W);
  const sets = cache.setsById;
  // Once every target that the rest of the order could decide is decided, the rest changes nothing (see `saturation`).
  if (src.crashFree === -1) src.crashFree = matchesWithoutCrash(info, source) ? 1 : 0;
  const sat = src.crashFree === 1 ? saturation(askTokens, cache, order, sys, u) : null;
  for (let n = 0; n < packed.length; n += 4) {
    if (sat !== null && (n & 63) === 0) {
      const base = (n >>> 6) * W;
      let w = 0;
      while (w < W && (sat[base + w]! & ~decided[w]!) === 0) w++;
      if (w === W) break;
    }
    const a = packed[n + 3]!;
    if (a !== 0 && a !== argId) continue;
    const sid = packed[n + 1]! & 0xffff;
    let m = srcVec[sid]!;
    if (m === 255) m = fillSource(srcVec, sid, srcTokens[sid]!, source, info);
    if (m === 0) continue;
    if (m !== 1) return null;
    const ai = packed[n + 2]!;
    const id = ai >>> 1;
    let set = sets[id];
    if (set === undefined) sets[id] = set = bitsetOf(askTokens[id]!, sys, cache, u);
    if (set === null) return null;
    const isDeny = (ai & 1) === 1;
    const few = set.few;
    if (few !== null) {
      for (let k = 0; k < few.length; k++) {
        const j = few[k]!;
        const w = j >>> 5;
        const b = 1 << (j & 31);
        if (decided[w]! & b) continue;
        decided[w]! |= b;
        if (!isDeny) offered[w]! |= b;
      }
    } else {
      const bits = set.bits;
      for (let w = 0; w < W; w++) {
        const nb = bits[w]! & ~decided[w]!;
        if (nb === 0) continue;
        decided[w]! |= nb;
        if (!isDeny) offered[w]! |= nb;
      }
    }
  }
  // The fix-ups, as computeAsk does them.
  let extra: string[] | undefined;
  const dispvm = u.dispvm;
  if (hasBit(offered, dispvm)) {
    offered[dispvm >>> 5]! &= ~(1 << (dispvm & 31));
    const d = dispvmTemplateOf(info, source);
    if (d !== null) {
      const j = bitOf(u, d);
      if (j < 0) (extra ??= []).push(d);
      else offered[j >>> 5]! |= 1 << (j & 31);
    }
  }
  const adminvm = u.adminvm;
  if (hasBit(offered, adminvm)) {
    offered[adminvm >>> 5]! &= ~(1 << (adminvm & 31));
    const j = u.dom0;
    if (j < 0) (extra ??= []).push("dom0");
    else offered[j >>> 5]! |= 1 << (j & 31);
  }
  const self = src.self;
  if (self >= 0) offered[self >>> 5]! &= ~(1 << (self & 31));
  else if (extra) {
    // A loop, not `filter`: a closure over `sourceName` would cost an allocation on every call.
    const kept: string[] = [];
    for (const x of extra) if (x !== sourceName) kept.push(x);
    extra = kept;
  }
  const ex = extra ?? NO_EXTRA;
  // One shared list per content, found by a hash (a small integer: no heap number to allocate).
  let h = ex.length;
  for (let w = 0; w < W; w++) h = (Math.imul(h, 0x9e3779b1) ^ offered[w]!) | 0;
  h &= 0x3fffffff;
  return sharedAskList((cache.scanLists ??= new Map()), h, offered, W, ex, u, info);
}

/**
 * The list of {@link collectTargetsForAskScan} with the bits `offered[0, W)`
 * and the targets `ex` outside the universe: the one kept under its hash,
 * or a new one, kept. A function of its own, apart from the collection's
 * loop: the lists live long, so V8 soon allocates them where old objects
 * go and throws away the code that allocates them when it decides so, and
 * the first list found again takes a path the first lists never took;
 * either threw the optimised collection away (compiling it again was
 * 5–10 % of a stream's warm-up).
 */
function sharedAskList(byHash: Map<number, AskList[]>, h: number, offered: Uint32Array, W: number, ex: string[], u: Universe, info: ReadonlyMap<string, DomainInfo>): AskList {
  const bucket = byHash.get(h);
  if (bucket !== undefined) {
    for (let i = 0; i < bucket.length; i++) {
      const e = bucket[i]!;
      if (e.universe !== u || e.extra.length !== ex.length) continue;
      let same = true;
      for (let w = 0; w < W && same; w++) same = e.bits[w] === offered[w];
      for (let k = 0; k < ex.length && same; k++) same = e.extra[k] === ex[k];
      if (same) return e;
    }
  }
  const bits = offered.slice(0, W);
  // Both throw where the engine crashes reading whether a target is internal (before anything is written).
  const list = ex.length ? listOf(bits, ex, u, info) : null;
  const entry: AskList = { bits, extra: ex, size: list ? list.length : countListed(bits, u), bytes: list ? utf8Encode(JSON.stringify(list)) : null, universe: u, running: undefined };
  // Bounded: a memo for repeated lists, not a store of every list ever offered.
  if (byHash.size >= 8192) byHash.clear();
  if (bucket !== undefined && byHash.has(h)) bucket.push(entry);
  else byHash.set(h, [entry]);
  return entry;
}

/** Per system cache and order: its suffix unions (see {@link saturation}), for an order used with several system models in turn (the last one's are kept with the order). */
const saturations = new WeakMap<SystemCache, WeakMap<ServiceOrder, Uint32Array | null>>();

/**
 * For an order (every 16th rule from its first): the union of the target
 * sets of that rule and of every rule after it, whatever their source and
 * argument. When a collection has decided all of them, no later rule can
 * change it, and it stops there. Only when nothing later could crash
 * either: the caller vouches for the source tokens (`crashFree`), and here
 * every rule's target set must be a bitset over the universe (else null:
 * no early stop, each rule is visited as the engine visits it).
 */
function saturation(askTokens: QubeToken[], cache: SystemCache, order: ServiceOrder, sys: PreparedSystem, u: Universe): Uint32Array | null {
  // The unions made, else made now: apart, so that the loop that makes them (optimised while it runs, the first
  // times) does not hold the path of the calls that find them made (taken only later, it would throw that code away).
  return order.satFor === cache ? order.sat : makeSaturation(askTokens, cache, order, sys, u);
}

/** {@link saturation} when the order's unions are not made for this cache: found by cache, or made. */
function makeSaturation(askTokens: QubeToken[], cache: SystemCache, order: ServiceOrder, sys: PreparedSystem, u: Universe): Uint32Array | null {
  let byOrder = saturations.get(cache);
  if (byOrder === undefined) saturations.set(cache, (byOrder = new WeakMap()));
  const hit = byOrder.get(order);
  if (hit !== undefined) {
    order.satFor = cache;
    order.sat = hit;
    return hit;
  }
  const packed = order.packed;
  const W = u.words;
  const rules = packed.length >>> 2;
  const out = slab.u32(((rules + 15) >>> 4) * W);
  const acc = new Uint32Array(W);
  const sets = cache.setsById;
  let ok = true;
  for (let r = rules - 1; r >= 0 && ok; r--) {
    const id = packed[4 * r + 2]! >>> 1;
    let set = sets[id];
    if (set === undefined) {
      try {
        sets[id] = set = bitsetOf(askTokens[id]!, sys, cache, u);
      } catch (e) {
        if (!(e instanceof PyCrash)) throw e;
        set = null;
      }
    }
    if (set === null) ok = false;
    else {
      const bits = set.bits;
      for (let w = 0; w < W; w++) acc[w]! |= bits[w]!;
      if ((r & 15) === 0) out.set(acc, (r >>> 4) * W);
    }
  }
  const result = ok ? out : null;
  // Kept with the order for the system cache it was made for (a stream's one model: no lookup), and by cache.
  byOrder.set(order, result);
  order.satFor = cache;
  order.sat = result;
  return result;
}

/** A source vector's entry (see {@link collectTargetsForAskScan}), computed and stored. */
function fillSource(srcVec: Uint8Array, id: number, tok: QubeToken, source: string, info: ReadonlyMap<string, DomainInfo>): number {
  let v: number;
  try {
    v = matchSource(tok, source, info) ? 1 : 0;
  } catch (e) {
    if (!(e instanceof PyCrash)) throw e;
    v = 2;
  }
  return (srcVec[id] = v);
}

function bitOf(u: Universe, t: string): number {
  const j = u.index.get(t);
  return j === undefined ? -1 : j;
}

function hasBit(bits: Uint32Array, j: number): boolean {
  return j >= 0 && (bits[j >>> 5]! & (1 << (j & 31))) !== 0;
}

/** How many items of the set {@link listOf} lists (it throws where `listOf` throws). */
function countListed(bits: Uint32Array, u: Universe): number {
  const internal = u.internal;
  let n = 0;
  for (let w = 0; w < bits.length; w++) {
    let word = bits[w]!;
    while (word !== 0) {
      const j = (w << 5) + 31 - Math.clz32(word & -word);
      word &= word - 1;
      const x = internal[j]!;
      if (x === false) n++;
      else if (x !== true) throw x;
    }
  }
  return n;
}

/** The offered list: the universe's items in the set that are not internal qubes, then the extra targets, sorted. */
function listOf(bits: Uint32Array, ex: string[], u: Universe, info: ReadonlyMap<string, DomainInfo>): string[] {
  const out: string[] = [];
  for (let w = 0; w < bits.length; w++) {
    const word = bits[w]!;
    if (word === 0) continue;
    for (let k = 0; k < 32; k++) {
      if (!(word & (1 << k))) continue;
      const j = w * 32 + k;
      const internal = u.internal[j]!;
      if (internal instanceof PyCrash) throw internal;
      if (!internal) out.push(u.items[j]!);
    }
  }
  for (const t of ex) {
    const name = t.startsWith("@dispvm:") ? t.slice(8) : t;
    if (!truthy(get(domain(info, name), "internal", false))) out.push(t);
  }
  if (ex.length) out.sort(pyCompare);
  return out;
}

/**
 * The universe's items as JSON strings, UTF-8, each followed by a comma, in
 * one array (`at[j]` to `at[j + 1]` is item `j`'s), so that a list's bytes
 * are copied run by run from one place; and the bits of the items a list
 * never shows (internal qubes, and items whose `internal` crashes, which a
 * finished list never holds).
 */
interface QuotedItems {
  bytes: Uint8Array;
  at: Int32Array;
  hidden: Uint32Array;
}

const quotedItems = new WeakMap<Universe, QuotedItems>();

function quotedOf(u: Universe): QuotedItems {
  let q = quotedItems.get(u);
  if (q === undefined) {
    const parts = u.items.map((t) => utf8Encode(JSON.stringify(t) + ","));
    const at = new Int32Array(parts.length + 1);
    for (let j = 0; j < parts.length; j++) at[j + 1] = at[j]! + parts[j]!.length;
    const bytes = new Uint8Array(at[parts.length]!);
    for (let j = 0; j < parts.length; j++) bytes.set(parts[j]!, at[j]!);
    const hidden = new Uint32Array(u.words);
    for (let j = 0; j < parts.length; j++) if (u.internal[j] !== false) hidden[j >>> 5]! |= 1 << (j & 31);
    quotedItems.set(u, (q = { bytes, at, hidden }));
  }
  return q;
}

/**
 * Writes a scan's list as JSON (UTF-8): exactly `JSON.stringify` of
 * {@link askListTargets}. From the bitset (the universe is sorted, so it is
 * read in order), a run of consecutive listed items at a time, each run one
 * range of the items' bytes. Never throws (the collection checked every
 * item's `internal`). Written anew every time: keeping a list's text from
 * its second write saved 1.5 % of a stream's instructions but cost 9 % more
 * CPU time (the copies were fresh memory: about 1,600–3,400 more page
 * faults on the bench's stream, and 10 MiB of peak RSS).
 */
export function writeAskList(out: ByteOutput, e: AskList): void {
  const whole = e.bytes;
  if (whole !== null) {
    out.bytes(whole);
    return;
  }
  if (e.size === 0) {
    out.byte(91);
    out.byte(93);
    return;
  }
  const { bytes, at, hidden } = quotedOf(e.universe);
  // Room for every item at once: the runs are then copied with no check.
  out.room(bytes.length + 1);
  const buf = out.buf;
  const start = out.off;
  let off = start;
  buf[off++] = 91;
  const bits = e.bits;
  // The run being gathered: items [from, to).
  let from = -1;
  let to = -1;
  for (let w = 0; w < bits.length; w++) {
    let x = bits[w]! & ~hidden[w]!;
    const base = w << 5;
    while (x !== 0) {
      const lo = 31 - Math.clz32(x & -x);
      // The length of the run of ones from bit `lo` (to the end of the word at most).
      const ones = ~(x >>> lo);
      const len = ones === 0 ? 32 - lo : 31 - Math.clz32(ones & -ones);
      const a = base + lo;
      if (a === to) to = a + len;
      else {
        if (from >= 0) off = copyRange(bytes, at[from]!, at[to]!, buf, off);
        from = a;
        to = a + len;
      }
      x = len + lo >= 32 ? 0 : x & ~(((1 << len) - 1) << lo);
    }
  }
  off = copyRange(bytes, at[from]!, at[to]!, buf, off);
  // The last comma becomes the closing bracket.
  buf[off - 1] = 93;
  out.off = off;
}

/** Copies `src[a, b)` to `dst` at `off`; a run shorter than 16 bytes by hand, a longer one natively (through a `subarray` view: fewer instructions all the same). */
function copyRange(src: Uint8Array, a: number, b: number, dst: Uint8Array, off: number): number {
  if (b - a < 16) {
    for (let i = a; i < b; i++) dst[off++] = src[i]!;
    return off;
  }
  dst.set(src.subarray(a, b), off);
  return off + (b - a);
}

/**
 * Per universe: the items an `autostart=no` ask keeps (`allowNoAutostart`:
 * dom0, and qubes whose power state is Running), and the items where the
 * engine crashes asking that.
 */
interface RunningItems {
  keep: Uint32Array;
  crash: Uint32Array;
}

const runningItems = new WeakMap<Universe, RunningItems>();

function runningOf(u: Universe, info: ReadonlyMap<string, DomainInfo>): RunningItems {
  let r = runningItems.get(u);
  if (r === undefined) {
    const keep = new Uint32Array(u.words);
    const crash = new Uint32Array(u.words);
    for (let j = 0; j < u.items.length; j++) {
      try {
        if (allowNoAutostart(u.items[j]!, info)) keep[j >>> 5]! |= 1 << (j & 31);
      } catch (e) {
        if (!(e instanceof PyCrash)) throw e;
        crash[j >>> 5]! |= 1 << (j & 31);
      }
    }
    runningItems.set(u, (r = { keep, crash }));
  }
  return r;
}

/**
 * The list an `ask` rule with `autostart=no` offers from a scan's list: its
 * targets that `allowNoAutostart` keeps, in order, as a list of its own
 * (kept with the list, so written from its bitset like any other). Null
 * where the caller must filter the strings itself: targets outside the
 * universe, or a listed target where the engine crashes asking (the string
 * path raises it again). `info` is the system model the list was made on.
 */
export function askListRunning(e: AskList, info: ReadonlyMap<string, DomainInfo>): AskList | null {
  if (e.running !== undefined) return e.running;
  if (e.extra.length > 0) return (e.running = null);
  const u = e.universe;
  const { keep, crash } = runningOf(u, info);
  const hidden = quotedOf(u).hidden;
  const bits = new Uint32Array(u.words);
  for (let w = 0; w < bits.length; w++) {
    if ((e.bits[w]! & ~hidden[w]! & crash[w]!) !== 0) return (e.running = null);
    bits[w] = e.bits[w]! & keep[w]!;
  }
  const r: AskList = { bits, extra: NO_EXTRA, size: countListed(bits, u), bytes: null, universe: u, running: undefined };
  r.running = r;
  return (e.running = r);
}

/** The targets of a scan's list (a new array; the same as when it was first built). */
export function askListTargets(e: AskList, info: ReadonlyMap<string, DomainInfo>): string[] {
  return listOf(e.bits, e.extra, e.universe, info);
}

/** Is `t` in a scan's list (internal qubes are not)? Cheaper than `list.includes` for long lists. */
export function askListHas(e: AskList, t: string, info: ReadonlyMap<string, DomainInfo>): boolean {
  const j = e.universe.index.get(t);
  if (j === undefined) return e.extra.length > 0 && askListTargets(e, info).includes(t);
  return (e.bits[j >>> 5]! & (1 << (j & 31))) !== 0 && e.universe.internal[j] === false;
}
