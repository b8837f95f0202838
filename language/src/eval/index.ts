/**
 * The rule index: rules bucketed by (service, argument), then by the key of
 * their source token and of their target token, so a request visits only the
 * buckets that can match it, merged back into global order. It only ever
 * skips rules that cannot match (`evaluate(..., {linear: true})` is the
 * reference scan, and a property test checks that they agree).
 */
import { isDom0Token } from "../syntax/tokens.js";
import type { QubeToken } from "../syntax/tree.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import type { PyCrash } from "./py.js";
import { prepared, type PreparedSystem } from "./system.js";
import type { SystemInfo } from "./types.js";
import type { AskList, TargetSet } from "./ask.js";
import type { VerifiedTarget } from "./match.js";
import { slab } from "./slab.js";

// ---------------------------------------------------------------------------
// The rule index
// ---------------------------------------------------------------------------

const DOM0_KEY = "\0dom0";
const GENERIC = "\0g";
const ANY = "\0*";

/**
 * Rules of one (service, argument) pair, split by the key of their source
 * token: a literal qube name, `DOM0_KEY` for the dom0 spellings, or the token
 * itself for `*`, `@anyvm`, `@tag:T` and `@type:T`. A request's source
 * yields the few keys that can match it (see {@link sourceKeys}), so whole
 * groups of rules that cannot match are never looked at.
 */
interface Bucket {
  bySource: Map<string, number[]>;
  /**
   * The same groups for first-match lookups, built on first use: the ids of
   * their source keys (`Index.keyIds`) in ascending order, the groups in
   * that order, and for groups of at least `SPLIT_MIN` rules their split by
   * target key (a literal name, `DOM0_KEY`, or `GENERIC` for tokens that need
   * the system model), also built on first use. Small groups are walked
   * whole (checking a rule's target is cheaper than looking splits up);
   * `ask` collection (which ignores targets) uses `bySource`.
   */
  table: KeyTable | undefined;
}

interface KeyTable {
  ids: Int32Array;
  groups: number[][];
  splits: (Map<string, number[]> | undefined)[];
}

/** The size from which a source group is split by target for first-match lookups. */
const SPLIT_MIN = 8;

export interface Index {
  buckets: Map<string, Map<string, Bucket>>;
  /** A small number per source key that some rule has, for the sorted key tables of the buckets. */
  keyIds: Map<string, number>;
  /** The bucket of the `* *` rules. */
  star: Bucket | undefined;
  /** Per system model: expansions of target tokens and `ask` results. */
  perSystem: WeakMap<object, SystemCache>;
  /**
   * Per rule (by global index), the id of the token whose expansion `ask`
   * collection uses (`target=` of allow/ask, else the target column), and
   * whether the rule is a deny. Typed arrays, so the hot loop of `ask`
   * collection does not touch the rule objects.
   */
  askToken: Int32Array;
  deny: Uint8Array;
  /** The distinct tokens, by id. */
  tokens: QubeToken[];
}

/** The index key of a rule's source token, or null for tokens that never match a source. */
function sourceKeyOf(tok: QubeToken): string | null {
  switch (tok.kind) {
    case "name":
      return isDom0Token(tok.text) ? DOM0_KEY : tok.text;
    case "adminvm":
      return DOM0_KEY;
    case "dispvm-template":
    case "dispvm-tag":
      return null;
    default:
      return tok.text;
  }
}

/** The index key of a rule's target token. */
function targetKeyOf(tok: QubeToken): string {
  if (tok.kind === "name") return isDom0Token(tok.text) ? DOM0_KEY : tok.text;
  if (tok.kind === "adminvm") return DOM0_KEY;
  return GENERIC;
}

export interface SystemCache {
  expansions: Map<QubeToken, string[] | PyCrash>;
  /** Target sets by token id (see `Index.tokens`). */
  setsById: (TargetSet | null | undefined)[];
  /** Expansions as bitsets over the universe (`null`: an item outside it, use strings). */
  bitsets: Map<QubeToken, TargetSet | null | PyCrash>;
  asks: Map<string, string[] | PyCrash>;
  /**
   * Finished `ask` target lists by content (the offered bitset and the
   * targets outside the universe): requests whose collections end alike
   * share one array, so a stream of requests keeps one copy of each list
   * (and serialises it once).
   */
  askLists: Map<string, string[]>;
  /** Per source: the ids (`Index.keyIds`) of its source keys that some rule has, ascending. */
  sourceIds: Map<string, Int32Array>;
  universe?: Universe;
  /** The scan's finished `ask` lists by a hash of their content (`ask.ts` `collectTargetsForAskScan`). */
  scanLists: Map<number, AskList[]> | undefined;
}

/**
 * Every target an expansion can yield, in sorted order: the qube names,
 * `@dispvm:NAME` for every disposable template, `@dispvm` and `@adminvm`. Sets of targets
 * are bitsets over it, and a bitset read in index order is already sorted.
 */
export interface Universe {
  items: string[];
  index: Map<string, number>;
  words: number;
  /** Per item: whether `info[name].get("internal")` is truthy, or the crash it raises. */
  internal: (boolean | PyCrash)[];
  /** The items `@dispvm`, `@adminvm` and `dom0` (-1: not an item), which every collection's fix-ups read. */
  dispvm: number;
  adminvm: number;
  dom0: number;
}

function buildIndex(rules: readonly PolicyRule[]): Index {
  const buckets = new Map<string, Map<string, Bucket>>();
  const askToken = new Int32Array(rules.length);
  const deny = new Uint8Array(rules.length);
  const ids = new Map<QubeToken, number>();
  const tokens: QubeToken[] = [];
  const keyIds = new Map<string, number>();
  for (const r of rules) {
    const tok = r.action !== "deny" && r.redirect ? r.redirect : r.target;
    let id = ids.get(tok);
    if (id === undefined) {
      ids.set(tok, (id = tokens.length));
      tokens.push(tok);
    }
    askToken[r.index] = id;
    deny[r.index] = r.action === "deny" ? 1 : 0;
    // `@dispvm:X` and `@dispvm:@tag:T` sources never match: not indexed at all.
    const sk = sourceKeyOf(r.source);
    if (sk === null) continue;
    const s = r.service ?? ANY;
    const a = r.argument ?? ANY;
    let byArg = buckets.get(s);
    if (!byArg) buckets.set(s, (byArg = new Map()));
    let b = byArg.get(a);
    if (!b) byArg.set(a, (b = { bySource: new Map(), table: undefined }));
    const l = b.bySource.get(sk);
    if (l === undefined) {
      b.bySource.set(sk, [r.index]);
      if (!keyIds.has(sk)) keyIds.set(sk, keyIds.size);
    } else l.push(r.index);
  }
  return { buckets, keyIds, star: buckets.get(ANY)?.get(ANY), perSystem: new WeakMap(), askToken, deny, tokens };
}

export function indexOf(policy: CompiledPolicy): Index {
  const p = policy as { index: unknown };
  if (!p.index) p.index = buildIndex(policy.rules);
  return p.index as Index;
}

export function systemCache(index: Index, sys: SystemInfo): SystemCache {
  let c = index.perSystem.get(sys);
  if (!c) index.perSystem.set(sys, (c = newSystemCache(index.tokens.length)));
  return c;
}

/** An empty {@link SystemCache} for `tokens` ask tokens. */
export function newSystemCache(tokens: number): SystemCache {
  return { expansions: new Map(), setsById: new Array<undefined>(tokens).fill(undefined), bitsets: new Map(), asks: new Map(), askLists: new Map(), sourceIds: new Map(), scanLists: undefined };
}

const preparedCache = new WeakMap<SystemInfo, PreparedSystem>();
export function prep(system: SystemInfo): PreparedSystem {
  let p = preparedCache.get(system);
  if (!p) preparedCache.set(system, (p = prepared(system)));
  return p;
}

/** The literal names a name token must have to possibly match `x` (UUID equivalence included), and `DOM0_KEY` for dom0. */
function nameKeys(x: string, sys: PreparedSystem): string[] {
  const keys = [x];
  if (x.startsWith("uuid:")) {
    const names = sys.namesByUuid.get(x.slice(5));
    if (names) keys.push(...names);
  } else {
    const d = sys.domains.get(x);
    if (d && typeof d === "object" && typeof d.uuid === "string") keys.push("uuid:" + d.uuid);
  }
  if (isDom0Token(x)) keys.push(DOM0_KEY);
  return keys;
}

/**
 * The source keys whose rules can match `src`, or null for "every key" when
 * the system model is not well formed (then matching a `@type:`/`@tag:`
 * source can crash as in the engine, so every such rule must be tried).
 */
export function sourceKeys(src: string, sys: PreparedSystem): string[] | null {
  if (!sys.wellFormed) return null;
  // Memoised per system: the same key strings (with their cached hashes) are reused by every request.
  const memo = sourceKeyMemo(sys);
  let keys = memo.get(src);
  if (keys === undefined) memo.set(src, (keys = computeSourceKeys(src, sys)));
  return keys;
}

const sourceKeyMemos = new WeakMap<PreparedSystem, Map<string, string[]>>();
const targetKeyMemos = new WeakMap<PreparedSystem, Map<string, string[]>>();

function sourceKeyMemo(sys: PreparedSystem): Map<string, string[]> {
  let m = sourceKeyMemos.get(sys);
  if (m === undefined) sourceKeyMemos.set(sys, (m = new Map()));
  return m;
}

function computeSourceKeys(src: string, sys: PreparedSystem): string[] {
  const keys = nameKeys(src, sys);
  keys.push("*");
  if (!isDom0Token(src)) keys.push("@anyvm");
  const d = sys.domains.get(src);
  if (d !== undefined) {
    if (typeof d.type === "string") keys.push("@type:" + d.type);
    for (const t of d.tags as unknown[]) if (typeof t === "string") keys.push("@tag:" + t);
  }
  return keys;
}

/** All rules, in order: the reference path without the index. */
export function allRules(policy: CompiledPolicy): number[][] {
  return [policy.rules.map((r) => r.index)];
}


/** The buckets a request falls in: exact (service, argument), (service, *), (*, *). */
function bucketsFor(index: Index, service: string, argument: string): Bucket[] {
  const out: Bucket[] = [];
  const exact = index.buckets.get(service);
  if (exact) {
    const a = exact.get(argument);
    if (a) out.push(a);
    const any = exact.get(ANY);
    if (any) out.push(any);
  }
  if (index.star) out.push(index.star);
  return out;
}

/** The candidate rule lists for a request (target ignored), each sorted by global index. */
export function candidateLists(index: Index, service: string, argument: string, src: string, sys: PreparedSystem): number[][] {
  const lists: number[][] = [];
  const keys = sourceKeys(src, sys);
  if (keys === null) {
    for (const b of bucketsFor(index, service, argument)) for (const l of b.bySource.values()) lists.push(l);
    return lists;
  }
  const want = sourceIds(index, sys, src, keys);
  for (const b of bucketsFor(index, service, argument)) {
    const table = b.table ?? keyTable(index, b);
    const ids = table.ids;
    let lo = 0;
    for (let j = 0; j < want.length && lo < ids.length; j++) {
      lo = lowerBound(ids, want[j]!, lo);
      if (lo < ids.length && ids[lo] === want[j]) lists.push(table.groups[lo++]!);
    }
  }
  return lists;
}

/** The first place in `ids[from..]` (ascending) whose id is at least `id`. */
function lowerBound(ids: Int32Array, id: number, from: number): number {
  let lo = from;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index keys a rule target must have to possibly match the verified target `t`. */
const ADMIN_TARGET_KEYS = [GENERIC, DOM0_KEY];
const OTHER_TARGET_KEYS = [GENERIC];

function targetKeys(t: VerifiedTarget, sys: PreparedSystem): string[] {
  if (t.kind === "name") {
    let m = targetKeyMemos.get(sys);
    if (m === undefined) targetKeyMemos.set(sys, (m = new Map()));
    let keys = m.get(t.text);
    if (keys === undefined) m.set(t.text, (keys = [GENERIC, ...nameKeys(t.text, sys)]));
    return keys;
  }
  if (t.kind === "adminvm") return ADMIN_TARGET_KEYS;
  return OTHER_TARGET_KEYS;
}

function keyTable(index: Index, b: Bucket): KeyTable {
  const entries: { id: number; group: number[] }[] = [];
  for (const [k, group] of b.bySource) entries.push({ id: index.keyIds.get(k)!, group });
  entries.sort((x, y) => x.id - y.id);
  const ids = new Int32Array(entries.length);
  const groups: number[][] = [];
  const splits: undefined[] = [];
  for (let j = 0; j < entries.length; j++) {
    ids[j] = entries[j]!.id;
    groups.push(entries[j]!.group);
    splits.push(undefined);
  }
  return (b.table = { ids, groups, splits });
}

/** The split by target key of a large source group (see `Bucket.table`), built on first use. */
function splitOf(rules: readonly PolicyRule[], t: KeyTable, at: number): Map<string, number[]> {
  let byTarget = t.splits[at];
  if (byTarget === undefined) {
    t.splits[at] = byTarget = new Map();
    const group = t.groups[at]!;
    for (let j = 0; j < group.length; j++) {
      const i = group[j]!;
      const tk = targetKeyOf(rules[i]!.target);
      const lt = byTarget.get(tk);
      if (lt === undefined) byTarget.set(tk, [i]);
      else lt.push(i);
    }
  }
  return byTarget;
}

/** The ids of a source's keys that some rule has, ascending (memoised per system model). */
function sourceIds(index: Index, sys: PreparedSystem, src: string, keys: string[]): Int32Array {
  const cache = systemCache(index, sys);
  let ids = cache.sourceIds.get(src);
  if (ids === undefined) {
    const found: number[] = [];
    for (const k of keys) {
      const id = index.keyIds.get(k);
      if (id !== undefined && !found.includes(id)) found.push(id);
    }
    ids = Int32Array.from(found.sort((x, y) => x - y));
    // Bounded: a memo for repeated sources, not a store of every name ever seen.
    if (cache.sourceIds.size >= 65536) cache.sourceIds.clear();
    cache.sourceIds.set(src, ids);
  }
  return ids;
}

/**
 * The candidate lists for a first-match lookup: the rules whose source key
 * matches, and in large groups only those whose target key can match too.
 */
export function candidatePairLists(policy: CompiledPolicy, index: Index, service: string, argument: string, src: string, t: VerifiedTarget, sys: PreparedSystem): number[][] {
  const sk = sourceKeys(src, sys);
  // Not well formed: matching a source may crash before the target is looked at, so no rule
  // may be skipped for its target either. Every rule of the service, in order.
  if (sk === null) return candidateLists(index, service, argument, src, sys);
  const want = sourceIds(index, sys, src, sk);
  const lists: number[][] = [];
  let tk: string[] | undefined;
  const exact = index.buckets.get(service);
  for (let n = 0; n < 3; n++) {
    const b = n === 2 ? index.star : exact === undefined ? undefined : exact.get(n === 0 ? argument : ANY);
    if (b === undefined) continue;
    const table = b.table ?? keyTable(index, b);
    const ids = table.ids;
    // Both ascending: each key is searched for after the previous one's place.
    let lo = 0;
    for (let j = 0; j < want.length; j++) {
      const id = want[j]!;
      lo = lowerBound(ids, id, lo);
      if (lo === ids.length) break;
      if (ids[lo] !== id) continue;
      const group = table.groups[lo]!;
      if (group.length < SPLIT_MIN) lists.push(group);
      else {
        const byTarget = splitOf(policy.rules, table, lo);
        tk ??= targetKeys(t, sys);
        for (let m = 0; m < tk.length; m++) {
          const l = byTarget.get(tk[m]!);
          if (l !== undefined) lists.push(l);
        }
      }
      lo++;
    }
  }
  return lists;
}

/** The union of sorted index lists, sorted (each rule is in one list); valid until the next call. */
export function mergeAll(lists: number[][]): Int32Array | number[] {
  if (lists.length === 1) return lists[0]!;
  let n = 0;
  for (const l of lists) n += l.length;
  // One scratch array for every call (the result is read before the next call): no allocation per request.
  if (scratch.length < n) scratch = new Int32Array(Math.max(n, scratch.length * 2));
  const out = scratch.subarray(0, n);
  let k = 0;
  for (const l of lists) for (let j = 0; j < l.length; j++) out[k++] = l[j]!;
  return out.sort();
}

let scratch = new Int32Array(1024);

/**
 * Walks the union of sorted index lists in ascending order (duplicates
 * cannot occur: each rule is in one list). A cursor rather than a generator:
 * this is the hottest loop of the evaluator.
 */
export class Merge {
  private readonly pos: number[];
  constructor(private readonly lists: number[][]) {
    this.pos = new Array<number>(lists.length).fill(0);
  }

  /** The next rule index, or -1 at the end. */
  next(): number {
    const lists = this.lists;
    if (lists.length === 1) {
      const v = lists[0]![this.pos[0]!];
      if (v === undefined) return -1;
      this.pos[0]!++;
      return v;
    }
    let best = -1;
    let bestVal = Infinity;
    for (let k = 0; k < lists.length; k++) {
      const v = lists[k]![this.pos[k]!];
      if (v !== undefined && v < bestVal) {
        bestVal = v;
        best = k;
      }
    }
    if (best < 0) return -1;
    this.pos[best]!++;
    return bestVal;
  }
}

// ---------------------------------------------------------------------------
// The in-order scan (streams of requests)
// ---------------------------------------------------------------------------

/**
 * For deciding many requests (`fast.ts`), built in one pass over the rules
 * without the index above: per rule, the id of its source token and of its
 * target token (each column's distinct tokens numbered apart), so that
 * whether a rule matches a request is two reads from per-source and
 * per-target match vectors; and per service, its rules and the `* *` rules
 * in policy order, packed in one array to walk ({@link scanOrder}), built
 * from these typed columns alone (never reading a rule object again).
 */
export interface ScanTables {
  srcTokens: QubeToken[];
  tgtTokens: QubeToken[];
  /** The tokens `ask` collection expands (`target=` of allow/ask, else the target column). */
  askTokens: QubeToken[];
  /** The arguments rules name, numbered from 1 (an argument no rule names has none: only `*` rules apply to it). */
  argIds: Map<string, number>;
  /** Whether every token id fits in 16 bits (the packed orders need it; else the scan is not used). */
  packable: boolean;
  /** Per service with rules of its own: its id (its rules are `start[id]` to `start[id + 1]` in `members`, ascending). */
  serviceIds: Map<string, number>;
  start: Int32Array;
  /**
   * Every service's rules, one service after another, each packed as a
   * {@link ServiceOrder} packs it (four numbers a rule): a service's order
   * is its run here with the `* *` rules merged in, copied run by run.
   */
  members: Int32Array;
  /** The `* *` rules, ascending, packed likewise. */
  star: Int32Array;
  /** Per service with rules: its packed order, built on first use. */
  orders: Map<string, ServiceOrder>;
  /** The order of a service without rules of its own (the `* *` rules alone). */
  starOrder: ServiceOrder | undefined;
  /** Per system model: expansions and target sets of the `ask` tokens. */
  perSystem: WeakMap<object, SystemCache>;
}

/**
 * The rules a call to one service can match, in policy order, packed four
 * numbers a rule: its index; its source token id plus its target token id
 * times 65536; its `askInfo`; and its argument id (`ScanTables.argIds`, 0
 * for `*`). A call with argument id A (0 when no rule names its argument)
 * applies the rules whose argument id is 0 or A. Read in sequence, where
 * per-rule arrays would be read all over.
 */
export interface ServiceOrder {
  packed: Int32Array;
  /** The early-stop unions of the `ask` collection (`ask.ts` `saturation`) for the system cache it was last used with. */
  satFor: SystemCache | undefined;
  sat: Uint32Array | null;
}

const scans = new WeakMap<CompiledPolicy, ScanTables>();

/**
 * The scan tables of a policy, built on first use: one pass over the rules
 * and one over the packed rules, both in this function (a loop that runs
 * long is optimised while it runs; per-service loops, each short, would run
 * cold, and on a stream's first lines that is most of their cost).
 */
export function scanTables(policy: CompiledPolicy): ScanTables {
  let t = scans.get(policy);
  if (t) return t;
  const rules = policy.rules;
  const n = rules.length;
  const p: RulePass = {
    all: new Int32Array(4 * n),
    serviceOf: new Int32Array(n),
    srcTokens: [],
    tgtTokens: [],
    askTokens: [],
    argIds: new Map(),
    serviceIds: new Map(),
    counts: [],
  };
  const stars = passRules(rules, p);
  const { all, serviceOf, srcTokens, tgtTokens, askTokens, argIds, serviceIds, counts } = p;
  // Each service's rules, ascending (the rules are in policy order), one service after another; the `* *` rules apart.
  const start = new Int32Array(counts.length + 1);
  for (let id = 0; id < counts.length; id++) start[id + 1] = start[id]! + counts[id]!;
  const members = new Int32Array(4 * start[counts.length]!);
  const star = new Int32Array(4 * stars);
  packMembers(all, serviceOf, start.slice(0, counts.length), members);
  packStars(all, serviceOf, star);
  const packable = srcTokens.length <= 0xffff && tgtTokens.length <= 0xffff && askTokens.length < 1 << 30;
  t = { srcTokens, tgtTokens, askTokens, argIds, packable, serviceIds, start, members, star, orders: new Map(), starOrder: undefined, perSystem: new WeakMap() };
  scans.set(policy, t);
  return t;
}

/**
 * What {@link passRules} fills: per rule (by position), its index, source
 * id | target id << 16, ask info and argument id (`all`, four numbers a
 * rule) and its service's id (`serviceOf`: -1 for a `*` rule, -2 for a rule
 * no source matches); the distinct tokens of each column, the arguments'
 * and services' ids, and each service's count of rules.
 */
interface RulePass {
  all: Int32Array;
  serviceOf: Int32Array;
  srcTokens: QubeToken[];
  tgtTokens: QubeToken[];
  askTokens: QubeToken[];
  argIds: Map<string, number>;
  serviceIds: Map<string, number>;
  counts: number[];
}

/*
 * The passes of `scanTables` each run once, long, and are optimised while they
 * run: each is a function of its own that returns when its loop ends, and
 * takes one path for every rule. Code after a loop, or a path first taken
 * late (the `* *` rules come last), would not have run yet when the loop was
 * optimised, and would throw that code away.
 */

/** The pass over the rules (see {@link RulePass}); returns the number of `* *` rules. */
function passRules(rules: readonly PolicyRule[], p: RulePass): number {
  const { all, serviceOf, srcTokens, tgtTokens, askTokens, argIds, serviceIds, counts } = p;
  const srcIds = new Map<QubeToken, number>();
  const tgtIds = new Map<QubeToken, number>();
  const askIds = new Map<QubeToken, number>();
  let stars = 0;
  let last: string | null = null;
  let lastId = -1;
  for (let k = 0; k < rules.length; k++) {
    const r = rules[k]!;
    let s = srcIds.get(r.source);
    if (s === undefined) {
      srcIds.set(r.source, (s = srcTokens.length));
      srcTokens.push(r.source);
    }
    let tg = tgtIds.get(r.target);
    if (tg === undefined) {
      tgtIds.set(r.target, (tg = tgtTokens.length));
      tgtTokens.push(r.target);
    }
    const deny = r.action === "deny";
    const at = !deny && r.redirect ? r.redirect : r.target;
    let a = askIds.get(at);
    if (a === undefined) {
      askIds.set(at, (a = askTokens.length));
      askTokens.push(at);
    }
    let g = 0;
    const arg = r.argument;
    if (arg !== null) {
      const known = argIds.get(arg);
      if (known === undefined) argIds.set(arg, (g = argIds.size + 1));
      else g = known;
    }
    all[4 * k] = r.index;
    all[4 * k + 1] = s | (tg << 16);
    all[4 * k + 2] = (a << 1) | (deny ? 1 : 0);
    all[4 * k + 3] = g;
    // `@dispvm:X` and `@dispvm:@tag:T` sources never match (as in the index): left out.
    const kind = r.source.kind;
    let id = -1;
    if (kind === "dispvm-template" || kind === "dispvm-tag") id = -2;
    else if (r.service !== null) {
      if (r.service !== last) {
        let known = serviceIds.get(r.service);
        if (known === undefined) {
          serviceIds.set(r.service, (known = counts.length));
          counts.push(0);
        }
        last = r.service;
        lastId = known;
      }
      id = lastId;
      counts[lastId]!++;
    }
    serviceOf[k] = id;
    stars += id === -1 ? 1 : 0;
  }
  return stars;
}

/** Copies each service's rules from `all` to its run in `members` (`at`: where each service's next rule goes). */
function packMembers(all: Int32Array, serviceOf: Int32Array, at: Int32Array, members: Int32Array): void {
  for (let k = 0; k < serviceOf.length; k++) {
    const id = serviceOf[k]!;
    if (id < 0) continue;
    const to = 4 * at[id]!;
    at[id] = at[id]! + 1;
    members[to] = all[4 * k]!;
    members[to + 1] = all[4 * k + 1]!;
    members[to + 2] = all[4 * k + 2]!;
    members[to + 3] = all[4 * k + 3]!;
  }
}

/** Copies the `* *` rules from `all` to `star`, in order. */
function packStars(all: Int32Array, serviceOf: Int32Array, star: Int32Array): void {
  let j = 0;
  for (let k = 0; k < serviceOf.length; k++) {
    // Every rule reads and writes alike (a `*` rule's copy is kept, another's overwritten by the next), so the loop takes one path.
    const keep = serviceOf[k] === -1 ? 4 : 0;
    if (j < star.length) {
      star[j] = all[4 * k]!;
      star[j + 1] = all[4 * k + 1]!;
      star[j + 2] = all[4 * k + 2]!;
      star[j + 3] = all[4 * k + 3]!;
    }
    j += keep;
  }
}

/** The per-system cache of the scan's `ask` collection. */
export function scanSystemCache(scan: ScanTables, sys: object): SystemCache {
  let c = scan.perSystem.get(sys);
  if (!c) scan.perSystem.set(sys, (c = newSystemCache(scan.askTokens.length)));
  return c;
}

/**
 * The packed order of a service ({@link ServiceOrder}): its rules and the
 * `* *` rules merged in policy order. Only when `scan.packable`.
 */
export function scanOrder(scan: ScanTables, service: string): ServiceOrder {
  const hit = scan.orders.get(service);
  if (hit !== undefined) return hit;
  const id = scan.serviceIds.get(service);
  if (id === undefined) return (scan.starOrder ??= packOrder(scan, 0, 0));
  const o = packOrder(scan, scan.start[id]!, scan.start[id + 1]!);
  scan.orders.set(service, o);
  return o;
}

/**
 * The order of the rules `members[from, to)` (one service's, counted in
 * rules) and the `* *` rules: runs of either copied whole (a few native
 * copies, not a loop over every rule).
 */
function packOrder(scan: ScanTables, from: number, to: number): ServiceOrder {
  const { members, star } = scan;
  const packed = slab.i32(4 * (to - from) + star.length);
  let i = 4 * from;
  const end = 4 * to;
  let j = 0;
  let k = 0;
  while (i < end || j < star.length) {
    if (j >= star.length) {
      packed.set(members.subarray(i, end), k);
      break;
    }
    if (i >= end) {
      packed.set(star.subarray(j), k);
      break;
    }
    // The service's rules before the next `* *` rule (a rule's index is its first number), then that rule.
    const next = star[j]!;
    let e = i;
    while (e < end && members[e]! < next) e += 4;
    if (e > i) {
      packed.set(members.subarray(i, e), k);
      k += e - i;
      i = e;
    }
    packed[k++] = star[j++]!;
    packed[k++] = star[j++]!;
    packed[k++] = star[j++]!;
    packed[k++] = star[j++]!;
  }
  return { packed, satFor: undefined, sat: null };
}
