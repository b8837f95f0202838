/**
 * The evaluator: a request in, the engine's decision out.
 *
 * Every step follows the engine: building the request (target verification,
 * Qubes Air relays), finding the first matching rule, and the action's own
 * evaluation (`allow` target resolution, `ask` target collection, `deny`),
 * plus the daemon's answer for an allow. Where the engine would crash on the
 * data, the decision is `EngineError` (the daemon then denies).
 *
 * Rules are indexed by service and argument, and within those by the literal
 * source name, so a request looks only at rules that can match, in their
 * global order: first-match semantics are unchanged.
 */
import { pyCompare } from "../syntax/python.js";
import { isDom0Token, parseQubeToken } from "../syntax/tokens.js";
import type { QubeToken } from "../syntax/tree.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { contains, eqStr, get, item, PyCrash, pyStr } from "./py.js";
import { prepared, type PreparedSystem } from "./system.js";
import type {
  AskContribution,
  Decision,
  DomainInfo,
  ErrorDecision,
  ExecResult,
  Explanation,
  PolicyRequest,
  RuleRef,
  Stage,
  SystemInfo,
  TraceStep,
} from "./types.js";

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/** The verified intended target: its text and token kind (the engine's token class). */
export interface VerifiedTarget {
  text: string;
  kind: "name" | "adminvm" | "default" | "dispvm" | "dispvm-template";
  /** For `@dispvm:X`: X. */
  value: string;
}

/** A request as the engine builds it. */
export interface BuiltRequest {
  service: string;
  argument: string;
  source: string;
  target: VerifiedTarget;
  requestedSource: string | null;
  relayvm: string | null;
  warnings: string[];
}

class Refusal {
  constructor(
    readonly error: "AccessDenied" | "PolicySyntaxError" | "RequestError",
    readonly message: string,
    readonly code: string,
    readonly notify = true,
    readonly syntax?: { file: string; line: number; detail: string },
  ) {}
}

function domain(info: ReadonlyMap<string, DomainInfo>, name: string): DomainInfo {
  const d = info.get(name);
  if (d === undefined) throw new PyCrash("KeyError", `'${name}'`);
  return d;
}

/** Builds the request like the engine's `Request()`; throws a Refusal or PyCrash. */
function buildRequest(req: PolicyRequest, sys: PreparedSystem): BuiltRequest {
  const info = sys.domains;
  let target = req.target ?? "";
  if (target === "") target = "@default";
  const argument = req.argument ?? "+";
  if (!argument || argument[0] !== "+") throw new PyCrash("AssertionError", "");
  const warnings: string[] = [];
  const parsed = parseQubeToken(target, "intendedtarget");
  if (!parsed.token) {
    const detail = parsed.error!;
    throw new Refusal("PolicySyntaxError", `<unknown>:0: ${detail}`, parsed.code!, true, { file: "<unknown>", line: 0, detail });
  }
  const tok = parsed.token;
  let verified: VerifiedTarget;
  switch (tok.kind) {
    case "name":
      if (!info.has(tok.text)) {
        warnings.push(`qrexec: target '${tok.text}' does not exist, using @default instead`);
        verified = { text: "@default", kind: "default", value: "" };
      } else verified = { text: tok.text, kind: "name", value: tok.text };
      break;
    case "dispvm-template": {
      const d = info.get(tok.value);
      if (d === undefined || !truthy(item(d, "template_for_dispvms"))) {
        throw new Refusal("AccessDenied", `not a template for dispvm: ${tok.value}`, "not-a-dispvm-template");
      }
      verified = { text: tok.text, kind: "dispvm-template", value: tok.value };
      break;
    }
    default:
      verified = { text: tok.text, kind: tok.kind as VerifiedTarget["kind"], value: tok.value };
  }
  let source = req.source;
  let relayvm: string | null = null;
  const rs = req.requestedSource;
  if (rs) {
    const rinfo = info.has(rs) ? info.get(rs) : {};
    if (!truthy(rinfo)) throw new Refusal("RequestError", `unknown requested source qube '${rs}'`, "unknown-requested-source");
    if (!eqStr(get(rinfo, "type"), "RemoteVM")) throw new Refusal("RequestError", `${rs}: requested source is only authorized for RemoteVM`, "requested-source-not-remote");
    if (get(rinfo, "relayvm", null) !== source) throw new Refusal("RequestError", `${source} is not a relay for ${rs}`, "not-a-relay");
    relayvm = source;
    source = rs;
  }
  return { service: req.service, argument, source, target: verified, requestedSource: rs || null, relayvm, warnings };
}

function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v as object).length > 0;
  return true;
}

// ---------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------

/** `match_strings`: equality, or UUID equivalence between `uuid:U` and a name. */
function matchStrings(info: ReadonlyMap<string, DomainInfo>, self: string, other: string | null): boolean {
  if (self.startsWith("uuid:")) {
    if (other === null) throw new PyCrash("AttributeError", "'NoneType' object has no attribute 'startswith'");
    if (other.startsWith("uuid:")) return self === other;
    const d = info.get(other);
    if (d === undefined || typeof d !== "object" || d === null || !("uuid" in d)) return false;
    return self.slice(5) === d.uuid;
  }
  if (other === null) throw new PyCrash("AttributeError", "'NoneType' object has no attribute 'startswith'");
  if (other.startsWith("uuid:")) {
    const d = info.get(self);
    if (d === undefined || typeof d !== "object" || d === null || !("uuid" in d)) return false;
    return other.slice(5) === d.uuid;
  }
  return self === other;
}

/** `DispVM.get_dispvm_template(source)`: `@dispvm:<default_dispvm>` or null. */
function dispvmTemplateOf(info: ReadonlyMap<string, DomainInfo>, source: string): string | null {
  const d = info.get(source);
  if (d === undefined) return null;
  const t = get(d, "default_dispvm", null);
  if (t === null || t === undefined) return null;
  if (typeof t !== "string") throw new PyCrash("TypeError", `can only concatenate str (not "${typeof t === "number" ? "int" : typeof t}") to str`);
  return "@dispvm:" + t;
}

/** Does a rule's source token match the request source (a plain string)? */
function matchSource(tok: QubeToken, src: string, info: ReadonlyMap<string, DomainInfo>): boolean {
  switch (tok.kind) {
    case "wildcard":
      return true;
    case "adminvm":
      return isDom0Token(src);
    case "anyvm":
      return !isDom0Token(src);
    case "type": {
      const d = info.get(src);
      return d !== undefined && eqStr(item(d, "type"), tok.value);
    }
    case "tag": {
      const d = info.get(src);
      return d !== undefined && contains(item(d, "tags"), tok.value);
    }
    case "name":
      return isDom0Token(tok.text) ? isDom0Token(src) : matchStrings(info, tok.text, src);
    default:
      // `@dispvm:X` and `@dispvm:@tag:T` never match a source: it is a plain name, never a disposable token.
      return false;
  }
}

/** Does a rule's target token match the verified request target? */
function matchTarget(tok: QubeToken, t: VerifiedTarget, source: string, info: ReadonlyMap<string, DomainInfo>): boolean {
  switch (tok.kind) {
    case "wildcard":
      return true;
    case "adminvm":
      return isDom0Token(t.text);
    case "anyvm":
      return !isDom0Token(t.text);
    case "default":
      return t.text === "@default";
    case "dispvm":
      return t.text === "@dispvm";
    case "type": {
      const d = info.get(t.text);
      return d !== undefined && eqStr(item(d, "type"), tok.value);
    }
    case "tag": {
      const d = info.get(t.text);
      return d !== undefined && contains(item(d, "tags"), tok.value);
    }
    case "name":
      return isDom0Token(tok.text) ? isDom0Token(t.text) : matchStrings(info, tok.text, t.text);
    case "dispvm-template":
      if (t.kind === "dispvm") return matchStrings(info, tok.text, dispvmTemplateOf(info, source));
      if (t.kind !== "dispvm-template") return false;
      return matchStrings(info, tok.value, t.value);
    case "dispvm-tag": {
      let value: string;
      if (t.kind === "dispvm") {
        const tpl = dispvmTemplateOf(info, source);
        if (tpl === null) return false;
        value = tpl.slice(8);
      } else if (t.kind === "dispvm-template") value = t.value;
      else return false;
      const d = domain(info, value);
      if (!truthy(item(d, "template_for_dispvms"))) return false;
      return contains(item(d, "tags"), tok.value);
    }
  }
}

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
   * The same rules split again by target key (a literal name, `DOM0_KEY`,
   * or `GENERIC` for tokens that need the system model): first-match
   * lookups use these; `ask` collection (which ignores targets) uses `bySource`.
   */
  pairs: Map<string, Map<string, number[]>>;
}

interface Index {
  buckets: Map<string, Map<string, Bucket>>;
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

interface SystemCache {
  expansions: Map<QubeToken, string[] | PyCrash>;
  /** Target sets by token id (see `Index.tokens`). */
  setsById: (TargetSet | null | undefined)[];
  /** Expansions as bitsets over the universe (`null`: an item outside it, use strings). */
  bitsets: Map<QubeToken, TargetSet | null | PyCrash>;
  asks: Map<string, string[] | PyCrash>;
  universe?: Universe;
}

/**
 * Every target an expansion can yield, in sorted order: the qube names,
 * `@dispvm:NAME` for every disposable template, `@dispvm` and `@adminvm`. Sets of targets
 * are bitsets over it, and a bitset read in index order is already sorted.
 */
interface Universe {
  items: string[];
  index: Map<string, number>;
  words: number;
  /** Per item: whether `info[name].get("internal")` is truthy, or the crash it raises. */
  internal: (boolean | PyCrash)[];
}

function buildIndex(rules: readonly PolicyRule[]): Index {
  const buckets = new Map<string, Map<string, Bucket>>();
  const askToken = new Int32Array(rules.length);
  const deny = new Uint8Array(rules.length);
  const ids = new Map<QubeToken, number>();
  const tokens: QubeToken[] = [];
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
    if (!b) byArg.set(a, (b = { bySource: new Map(), pairs: new Map() }));
    let l = b.bySource.get(sk);
    if (!l) b.bySource.set(sk, (l = []));
    l.push(r.index);
    let byTarget = b.pairs.get(sk);
    if (!byTarget) b.pairs.set(sk, (byTarget = new Map()));
    const tk = targetKeyOf(r.target);
    let lt = byTarget.get(tk);
    if (!lt) byTarget.set(tk, (lt = []));
    lt.push(r.index);
  }
  return { buckets, perSystem: new WeakMap(), askToken, deny, tokens };
}

function indexOf(policy: CompiledPolicy): Index {
  const p = policy as { index: unknown };
  if (!p.index) p.index = buildIndex(policy.rules);
  return p.index as Index;
}

function systemCache(index: Index, sys: SystemInfo): SystemCache {
  let c = index.perSystem.get(sys);
  if (!c) index.perSystem.set(sys, (c = { expansions: new Map(), setsById: [], bitsets: new Map(), asks: new Map() }));
  return c;
}

const preparedCache = new WeakMap<SystemInfo, PreparedSystem>();
function prep(system: SystemInfo): PreparedSystem {
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
function sourceKeys(src: string, sys: PreparedSystem): string[] | null {
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
function allRules(policy: CompiledPolicy): number[][] {
  return [policy.rules.map((r) => r.index)];
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /**
   * Scan every rule in order instead of using the index and the `ask` cache,
   * as the engine does. Slower; it exists so tests can check that indexing
   * never changes a decision.
   */
  linear?: boolean;
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
  const star = index.buckets.get(ANY)?.get(ANY);
  if (star) out.push(star);
  return out;
}

/** The candidate rule lists for a request (target ignored), each sorted by global index. */
function candidateLists(index: Index, service: string, argument: string, src: string, sys: PreparedSystem): number[][] {
  const lists: number[][] = [];
  const keys = sourceKeys(src, sys);
  for (const b of bucketsFor(index, service, argument)) {
    if (keys === null) {
      for (const l of b.bySource.values()) lists.push(l);
      continue;
    }
    for (const k of keys) {
      const l = b.bySource.get(k);
      if (l) lists.push(l);
    }
  }
  return lists;
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

/** The candidate lists for a first-match lookup: split by source and by target. */
function candidatePairLists(index: Index, service: string, argument: string, src: string, t: VerifiedTarget, sys: PreparedSystem): number[][] {
  const sk = sourceKeys(src, sys);
  // Not well formed: matching a source may crash before the target is looked at, so no rule
  // may be skipped for its target either. Every rule of the service, in order.
  if (sk === null) return candidateLists(index, service, argument, src, sys);
  const lists: number[][] = [];
  const tk = targetKeys(t, sys);
  const add = (byTarget: Map<string, number[]> | undefined) => {
    if (byTarget === undefined) return;
    for (let j = 0; j < tk.length; j++) {
      const l = byTarget.get(tk[j]!);
      if (l !== undefined) lists.push(l);
    }
  };
  const visit = (b: Bucket | undefined) => {
    if (b === undefined) return;
    for (let j = 0; j < sk.length; j++) add(b.pairs.get(sk[j]!));
  };
  const exact = index.buckets.get(service);
  if (exact !== undefined) {
    visit(exact.get(argument));
    visit(exact.get(ANY));
  }
  visit(index.buckets.get(ANY)?.get(ANY));
  return lists;
}

/** The union of sorted index lists, sorted (each rule is in one list). */
function mergeAll(lists: number[][]): Int32Array | number[] {
  if (lists.length === 1) return lists[0]!;
  let n = 0;
  for (const l of lists) n += l.length;
  const out = new Int32Array(n);
  let k = 0;
  for (const l of lists) for (let j = 0; j < l.length; j++) out[k++] = l[j]!;
  return out.sort();
}

/**
 * Walks the union of sorted index lists in ascending order (duplicates
 * cannot occur: each rule is in one list). A cursor rather than a generator:
 * this is the hottest loop of the evaluator.
 */
class Merge {
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
// Actions
// ---------------------------------------------------------------------------

/** What `explain` records of an `ask` target collection. */
interface AskTrace {
  steps: AskContribution[];
  notes: string[];
}

function ruleRef(r: PolicyRule): RuleRef {
  return { file: r.origin.file, line: r.origin.line };
}

function where(r: PolicyRule): string {
  return `${r.origin.path}:${r.origin.line === null ? "None" : r.origin.line}`;
}

/** `allow_no_autostart`: may this target be used without starting it? */
function allowNoAutostart(target: string, info: ReadonlyMap<string, DomainInfo>): boolean {
  if (isDom0Token(target)) return true;
  if (target.startsWith("@dispvm")) return false;
  const d = info.get(target);
  if (d === undefined || typeof d !== "object" || d === null || !("power_state" in d)) throw new PyCrash("AssertionError", "");
  return d.power_state === "Running";
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
function collectTargetsForAsk(policy: CompiledPolicy, req: BuiltRequest, sys: PreparedSystem, contributions?: AskTrace, linear = false): string[] {
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
  return (cache.universe = { items: sorted, index, words: (sorted.length + 31) >>> 5, internal });
}

/**
 * The expansion of a token over the universe: a bitset, plus the item
 * indices when there are few (most tokens name one qube), so that sparse
 * sets are applied item by item rather than word by word.
 */
interface TargetSet {
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
  return out;
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

/** The daemon's answer for an allow (`AllowResolution.execute`). */
function execAllow(req: BuiltRequest, target: string, user: string | null, autostart: boolean, info: ReadonlyMap<string, DomainInfo>): ExecResult {
  try {
    if (req.source === target) return { error: "AccessDenied", message: "loopback qrexec connection not supported" };
    const u = user ? user : "DEFAULT";
    const auto = autostart ? "True" : "False";
    const requested = req.target.text;
    if (isDom0Token(target)) return { user: u, result: "allow", target: "dom0", autostart: auto, requested_target: requested };
    if (target.startsWith("@dispvm:")) {
      const ti = domain(info, target.slice(8));
      const out: Record<string, string> = { user: u, result: "allow", target, target_uuid: `@dispvm:uuid:${pyStr(item(ti, "uuid"))}`, autostart: auto, requested_target: requested };
      if (req.requestedSource) out["policy_source"] = req.source;
      return out;
    }
    const ti = domain(info, target);
    const remote = eqStr(get(ti, "type"), "RemoteVM");
    const out: Record<string, string> = { user: remote && user !== null ? "DEFAULT" : u, result: "allow" };
    if (remote) {
      if (!truthy(get(ti, "relayvm"))) return { error: "AccessDenied", message: `${target}: relayvm is not set` };
      if (!truthy(get(ti, "transport_rpc"))) return { error: "AccessDenied", message: `${target}: transport RPC is not set` };
      const relay = pyStr(item(ti, "relayvm"));
      const ri = domain(info, relay);
      out["target"] = relay;
      out["target_uuid"] = `uuid:${pyStr(item(ri, "uuid"))}`;
      out["autostart"] = auto;
      out["requested_target"] = requested;
      out["service"] = `${pyStr(item(ti, "transport_rpc"))}+${requested}+${req.service}${req.argument}`;
    } else {
      out["target"] = target;
      out["target_uuid"] = `uuid:${pyStr(item(ti, "uuid"))}`;
      out["autostart"] = auto;
      out["requested_target"] = requested;
    }
    if (req.requestedSource) out["policy_source"] = req.source;
    return out;
  } catch (err) {
    if (err instanceof PyCrash) return { error: "EngineError", message: `${err.pyClass}: ${err.pyMessage}`, crash: err.pyClass } as ExecResult;
    throw err;
  }
}

// ---------------------------------------------------------------------------
// evaluate / explain
// ---------------------------------------------------------------------------

interface Run {
  decision: Decision;
  built?: BuiltRequest;
  rule?: PolicyRule;
  resolution?: string[];
}

function errorDecision(stage: Stage, e: unknown, rule?: PolicyRule, intended?: string): ErrorDecision {
  let d: ErrorDecision;
  if (e instanceof Refusal) {
    d = { ok: false, error: e.error, message: e.message, code: e.code, stage, notify: e.notify };
    if (e.syntax) {
      d.file = e.syntax.file;
      d.line = e.syntax.line;
      d.detail = e.syntax.detail;
    }
  } else if (e instanceof PyCrash) {
    d = { ok: false, error: "EngineError", code: "engine-crash", crash: e.pyClass, message: `the real engine crashes here (${e.pyClass}: ${e.pyMessage}); the daemon denies the call`, stage };
  } else throw e;
  if (rule) d.rule = ruleRef(rule);
  if (intended !== undefined) d.intendedTarget = intended;
  return d;
}

function run(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo, onStep?: (rule: PolicyRule) => void, contributions?: AskTrace, linear = false): Run {
  const sys = prep(system);
  const info = sys.domains;
  let built: BuiltRequest;
  try {
    built = buildRequest(request, sys);
  } catch (e) {
    return { decision: errorDecision("request", e) };
  }
  const intended = built.target.text;
  let rule: PolicyRule | undefined;
  try {
    // `explain` (onStep) walks every rule that can match the source, to show why each did not decide.
    const lists = linear
      ? allRules(policy)
      : onStep
        ? candidateLists(indexOf(policy), built.service, built.argument, built.source, sys)
        : candidatePairLists(indexOf(policy), built.service, built.argument, built.source, built.target, sys);
    const cursor = new Merge(lists);
    for (let i = cursor.next(); i >= 0; i = cursor.next()) {
      const r = policy.rules[i]!;
      if (linear && ((r.service !== null && r.service !== built.service) || (r.argument !== null && r.argument !== built.argument))) continue;
      onStep?.(r);
      if (matchSource(r.source, built.source, info) && matchTarget(r.target, built.target, built.source, info)) {
        rule = r;
        break;
      }
    }
  } catch (e) {
    return { decision: errorDecision("match", e), built };
  }
  if (!rule) {
    return { decision: { ok: false, error: "AccessDenied", code: "no-matching-rule", message: "no matching rule found", stage: "match", notify: true }, built };
  }
  const ref = ruleRef(rule);
  if (rule.action === "deny") {
    return { decision: { ok: true, action: "deny", notify: rule.notify, rule: ref, message: `denied by policy ${where(rule)}`, intendedTarget: intended }, built, rule };
  }
  const resolution: string[] = [];
  try {
    if (rule.action === "allow") {
      let t: VerifiedTarget;
      if (rule.redirect) {
        const sub = buildRequest({ service: built.service, argument: built.argument, source: built.source, target: rule.redirect.text }, sys);
        t = sub.target;
        resolution.push(`redirected by \`target=${rule.redirect.text}\`` + (t.text !== rule.redirect.text ? ` (no such qube, so \`${t.text}\`)` : ""));
      } else t = built.target;
      if (t.text === "@default") {
        resolution.push("the call names no existing target and the rule has no usable `target=`");
        throw new Refusal("AccessDenied", `policy define 'allow' action at ${where(rule)} but no target is specified by caller or policy`, "no-target");
      }
      let target = t.text;
      if (t.kind === "dispvm") {
        const tpl = dispvmTemplateOf(info, built.source);
        if (tpl === null) {
          resolution.push(`\`@dispvm\` needs the default disposable template of \`${built.source}\`, and it has none`);
          throw new Refusal("AccessDenied", `policy define 'allow' action to @dispvm at ${where(rule)} but no DispVM base is set for this VM`, "no-dispvm-base");
        }
        target = tpl;
        resolution.push(`\`@dispvm\` becomes \`${tpl}\`, the default disposable template of \`${built.source}\``);
      } else if (target === "@adminvm") {
        target = "dom0";
        resolution.push("`@adminvm` becomes `dom0`");
      }
      if (!rule.autostart && !allowNoAutostart(target, info)) {
        resolution.push(`\`${target}\` is not running (or is a disposable) and the rule says \`autostart=no\``);
        throw new Refusal("AccessDenied", `target ${target} is denied because it would require autostart`, "autostart-denied", rule.notify);
      }
      return {
        decision: {
          ok: true,
          action: "allow",
          target,
          user: rule.user,
          notify: rule.notify,
          autostart: rule.autostart,
          rule: ref,
          intendedTarget: intended,
          exec: execAllow(built, target, rule.user, rule.autostart, info),
        },
        built,
        rule,
        resolution,
      };
    }
    // ask
    let targets: string[];
    if (rule.redirect) {
      targets = [isDom0Token(rule.redirect.text) ? "dom0" : rule.redirect.text];
      resolution.push(`\`target=${rule.redirect.text}\` offers only that target`);
    } else targets = collectTargetsForAsk(policy, built, sys, contributions, linear);
    if (!rule.autostart) targets = targets.filter((t) => allowNoAutostart(t, info));
    if (targets.length === 0) {
      throw new Refusal("AccessDenied", `policy define 'ask' action at ${where(rule)} but no target is available to choose from`, "ask-no-targets");
    }
    let def: string | null = null;
    if (rule.defaultTarget) {
      if (rule.defaultTarget.kind === "dispvm") def = dispvmTemplateOf(info, built.source);
      else if (isDom0Token(rule.defaultTarget.text)) def = "dom0";
      else def = rule.defaultTarget.text;
      if (def && !targets.includes(def)) {
        resolution.push(`\`default_target=${rule.defaultTarget.text}\` is not among the offered targets, so there is no default`);
        def = null;
      }
    }
    return {
      decision: {
        ok: true,
        action: "ask",
        // INVARIANT: already sorted (the collection returns sorted targets; a redirect is one target).
        targetsForAsk: [...targets],
        defaultTarget: def,
        user: rule.user,
        notify: rule.notify,
        autostart: rule.autostart,
        rule: ref,
        intendedTarget: intended,
      },
      built,
      rule,
      resolution,
    };
  } catch (e) {
    return { decision: errorDecision("evaluate", e, rule, intended), built, rule, resolution };
  }
}

/**
 * Decides a request exactly as the qrexec policy engine does. Never throws.
 * `ok: false` decisions are denials (by the engine, or where the real engine
 * would crash: `EngineError`).
 *
 * @example
 * ```ts
 * const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": "qubes.Filecopy * work vault ask default_target=vault\n" }));
 * const system = prepareSystemInfo(systemJson); // an internal.GetSystemInfo answer (`qkit system snapshot`)
 * if (loaded.ok) {
 *   const d = evaluate(loaded.policy, makeRequest("qubes.Filecopy", "work", "vault"), system);
 *   if (d.ok && d.action === "ask") console.log(d.targetsForAsk, d.defaultTarget);
 * }
 * ```
 */
export function evaluate(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo, options: EvaluateOptions = {}): Decision {
  return run(policy, request, system, undefined, undefined, options.linear ?? false).decision;
}

/** Splits `SERVICE+ARG` the way `qrexec-policy-exec` does, and fills the defaults. */
export function makeRequest(serviceAndArgument: string, source: string, target = ""): PolicyRequest {
  const plus = serviceAndArgument.indexOf("+");
  if (plus < 0) return { service: serviceAndArgument, argument: "+", source, target };
  return { service: serviceAndArgument.slice(0, plus), argument: "+" + serviceAndArgument.slice(plus + 1), source, target };
}

function describeMiss(rule: PolicyRule, built: BuiltRequest, info: ReadonlyMap<string, DomainInfo>): TraceStep {
  try {
    if (!matchSource(rule.source, built.source, info)) {
      const why =
        rule.source.kind === "dispvm-template" || rule.source.kind === "dispvm-tag"
          ? `source \`${rule.source.text}\` never matches: a source is a plain qube name, never a disposable token`
          : `source \`${rule.source.text}\` does not match \`${built.source}\``;
      return { rule, matched: false, failed: "source", reason: why };
    }
    if (!matchTarget(rule.target, built.target, built.source, info)) {
      return { rule, matched: false, failed: "target", reason: `target \`${rule.target.text}\` does not match \`${built.target.text}\`` };
    }
  } catch (e) {
    if (e instanceof PyCrash) return { rule, matched: false, reason: `the real engine crashes on this rule (${e.pyClass})` };
    throw e;
  }
  return { rule, matched: true, reason: "matches" };
}

/**
 * Decides a request and tells why: every rule considered before the deciding
 * one with the reason it did not match, the deciding rule, how the target
 * was resolved, and for `ask` where each offered target came from.
 *
 * @example
 * ```ts
 * const x = explain(policy, makeRequest("qubes.Filecopy", "work", "vault"), system);
 * for (const step of x.trace) console.log(step.rule.origin, step.reason);
 * console.log(x.decidingRule?.origin, x.decision);
 * // As text, exactly as `qkit policy explain` prints it: renderExplanation(x) from @qubes-kit/sdk/node
 * ```
 */
export function explain(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo): Explanation {
  const considered: PolicyRule[] = [];
  const contributions: AskTrace = { steps: [], notes: [] };
  const r = run(policy, request, system, (rule) => considered.push(rule), contributions);
  const sys = prep(system);
  const trace: TraceStep[] = [];
  let skipped = policy.rules.length - considered.length;
  if (r.built) {
    // Every rule of the service before the deciding one, with its reason, whatever the index
    // skipped: the explanation must not depend on the index (rules of other services are counted).
    const built = r.built;
    const last = r.rule ? policy.rules.indexOf(r.rule) : -1;
    const end = last >= 0 ? last : policy.rules.length;
    skipped = 0;
    for (let i = 0; i < policy.rules.length; i++) {
      const rule = policy.rules[i]!;
      if ((rule.service !== null && rule.service !== built.service) || (rule.argument !== null && rule.argument !== built.argument)) {
        skipped++;
        continue;
      }
      if (i >= end) continue;
      let step: TraceStep;
      try {
        step = describeMiss(rule, built, sys.domains);
      } catch (e) {
        step = { rule, matched: false, reason: `cannot be matched: ${String(e).split("\n")[0]}` };
      }
      if (step.matched) continue;
      trace.push(step);
    }
  }
  const out: Explanation = { decision: r.decision, request, trace, skipped };
  if (r.built) {
    out.intendedTarget = r.built.target.text;
    const asked = request.target ?? "";
    if (r.built.warnings.length) out.targetNote = `\`${asked}\` is not a qube of this system, so the request is treated as \`@default\` (no target)`;
    else if (asked === "") out.targetNote = "no target given: `@default`";
    if (r.built.relayvm) out.targetNote = (out.targetNote ? out.targetNote + "; " : "") + `relayed by \`${r.built.relayvm}\` for \`${r.built.source}\``;
  }
  if (r.rule) out.decidingRule = r.rule;
  if (r.resolution?.length) out.resolution = r.resolution;
  if (r.rule?.action === "ask" && !r.rule.redirect) {
    out.askContributions = contributions.steps;
    if (contributions.notes.length) out.askNotes = contributions.notes;
  }
  return out;
}
