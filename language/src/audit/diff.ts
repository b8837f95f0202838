/**
 * The exact semantic diff of two policies over the request space of a system
 * (see `space.ts`): every request whose decision changes. A change is a
 * different action, a different allow target, or a different set of ask
 * targets; a refusal by the engine counts as deny, and a changed default
 * target alone is not a change.
 *
 * Computed per equivalence class of qubes: one representative request per
 * orbit (source class × target class, with "the source itself" and "another
 * qube of the same class" kept apart) is decided by both policies; only the
 * orbits of changed representatives are expanded, and their requests are
 * decided one by one so every reported decision is a real one. Services
 * whose applicable rules are the same in both policies (same rules in the
 * same order, positions aside) cannot change and are skipped.
 */
import { run } from "../eval/decide.js";
import { collectTargetsForAsk } from "../eval/ask.js";
import { buildRequest } from "../eval/match.js";
import type { AllowDecision, AskDecision, Decision, PolicyRequest, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { prepared, type PreparedSystem } from "../eval/system.js";
import { isDom0Token } from "../syntax/tokens.js";
import type { QubeToken } from "../syntax/tree.js";
import { printRule } from "../syntax/print.js";
import { pyCompare } from "../syntax/python.js";
import { qubeClasses, requestSpace, rulesFor, type RequestSpace } from "./space.js";

/** One request whose decision changes. */
export interface DecisionChange {
  /** As shown: `*` for the representative of the services (or arguments) no rule names. */
  service: string;
  argument: string;
  source: string;
  target: string;
  /** The service and argument as text: `qubes.Filecopy`, `qubes.StartApp+firefox`, `qubes.StartApp (other arguments)`, `every other service`. */
  call: string;
  /** The request as evaluated. */
  request: PolicyRequest;
  before: Decision;
  after: Decision;
}

/** Requests that change alike: a representative and every request obtained from it by permuting the qubes of classes. */
export interface ChangedOrbit {
  service: string;
  argument: string;
  call: string;
  /** The representative request, as evaluated. */
  request: PolicyRequest;
  before: Decision;
  after: Decision;
  /** Every (source, target) of the orbit, the representative included. */
  members: [string, string][];
}

/** The result of {@link diffPolicies}. */
export interface PolicyDiff {
  space: RequestSpace;
  /** The classes of qubes used. */
  classes: string[][];
  /** The orbits whose decision changes. */
  orbits: ChangedOrbit[];
  /** The number of requests that change (the members of all orbits). */
  requests: number;
  /** Representative requests decided (by each policy). */
  evaluated: number;
}

/** What counts for a difference: the action, the allow target, the set of ask targets. */
export function decisionKey(d: Decision): string {
  if (!d.ok || d.action === "deny") return "deny";
  if (d.action === "allow") return "allow\0" + d.target;
  return "ask\0" + d.targetsForAsk.join("\0");
}

/** Do two decisions differ in what the diff compares (as {@link decisionKey}, without building keys)? */
export function decisionsDiffer(a: Decision, b: Decision): boolean {
  const aa = !a.ok ? "deny" : a.action;
  const ba = !b.ok ? "deny" : b.action;
  if (aa !== ba) return true;
  if (aa === "allow") return (a as AllowDecision).target !== (b as AllowDecision).target;
  if (aa === "ask") {
    const x = (a as AskDecision).targetsForAsk;
    const y = (b as AskDecision).targetsForAsk;
    if (x.length !== y.length) return true;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return true;
  }
  return false;
}

/** Options of {@link diffPolicies}. */
export interface DiffOptions {
  /** Decide every request of the space instead of one per class orbit (the reference; slow). */
  bruteForce?: boolean;
}

/**
 * Every request of the space of `system` whose decision differs between
 * `before` and `after`. Never throws.
 */
export function diffPolicies(before: CompiledPolicy, after: CompiledPolicy, system: SystemInfo, options: DiffOptions = {}): PolicyDiff {
  const space = requestSpace([before, after], system);
  const classes = options.bruteForce ? space.qubes.map((q) => [q]) : qubeClasses([before, after], system);
  const classOf = new Map<string, string[]>();
  for (const c of classes) for (const q of c) classOf.set(q, c);
  const templates = new Set(space.dispvmTemplates);
  const sys = prepared(system);
  const orbits: ChangedOrbit[] = [];
  let evaluated = 0;
  let requests = 0;
  for (const svc of space.services) {
    for (const arg of svc.arguments) {
      const same = sameRules(before, after, svc.service, arg.argument);
      if (same && !options.bruteForce) continue;
      const call =
        svc.display === "*" ? "every other service" : arg.display !== "*" ? svc.service + (arg.argument === "+" ? "+" : arg.argument) : svc.arguments.length === 1 ? svc.service : `${svc.service} (other arguments)`;
      /** Decides the representative (s, t); when it changes, records its orbit. */
      /** Decides the representative (s, t); when it changes, records its orbit. Returns both decisions. */
      const orbit = (s: string, t: string, members: () => Iterable<[string, string]>): [Decision, Decision] => {
        evaluated++;
        const request: PolicyRequest = { service: svc.service, argument: arg.argument, source: s, target: t };
        const b = decide(before, request, system);
        const a = decide(after, request, system);
        if (decisionsDiffer(b, a)) {
          const m = [...members()];
          requests += m.length;
          orbits.push({ service: svc.display, argument: arg.display, call, request, before: shareOffers(b, offers), after: shareOffers(a, offers), members: m });
        }
        return [b, a];
      };
      // The offer lists of the orbits kept, one array per distinct list of a source (see shareOffers).
      const offers = new Map<string, string[][]>();
      const ra = rulesFor(before, svc.service, arg.argument);
      const rb = rulesFor(after, svc.service, arg.argument);
      for (const cs of classes) {
        const s = cs[0]!;
        // Only rules whose source matches decide a request from s (first match and ask collection alike).
        const lb = ra.filter((r) => mayMatchSource(r.source, s, sys));
        const la = rb.filter((r) => mayMatchSource(r.source, s, sys));
        if (!options.bruteForce && sameRuleTexts(lb, la)) continue;
        const reps: [string, () => Iterable<[string, string]>][] = [];
        for (const special of ["@default", "@adminvm", "@dispvm"]) reps.push([special, () => cs.map((q) => [q, special] as [string, string])]);
        for (const ct of classes) {
          const kinds: ((q: string) => string)[] = [(q) => q];
          if (templates.has(ct[0]!)) kinds.push((q) => "@dispvm:" + q);
          for (const f of kinds) {
            if (ct !== cs) {
              reps.push([
                f(ct[0]!),
                function* () {
                  for (const a of cs) for (const b of ct) yield [a, f(b)];
                },
              ]);
              continue;
            }
            reps.push([f(s), () => cs.map((q) => [q, f(q)] as [string, string])]);
            if (cs.length > 1) {
              reps.push([
                f(cs[1]!),
                function* () {
                  for (const a of cs) for (const b of cs) if (a !== b) yield [a, f(b)];
                },
              ]);
            }
          }
        }
        if (options.bruteForce) {
          for (const [t, m] of reps) orbit(s, t, m);
          continue;
        }
        // Target pruning. The lists differ only between a common prefix and a common suffix;
        // when no rule of that middle part can match a target, the first matching rule is the
        // same rule in both, and so is the decision, unless it is an `ask` without `target=`,
        // whose offered targets come from every rule (then they must be known to be equal).
        let p = 0;
        while (p < lb.length && p < la.length && ruleText(lb[p]!) === ruleText(la[p]!)) p++;
        let q = 0;
        while (q < lb.length - p && q < la.length - p && ruleText(lb[lb.length - 1 - q]!) === ruleText(la[la.length - 1 - q]!)) q++;
        const middle = [...lb.slice(p, lb.length - q), ...la.slice(p, la.length - q)];
        const common = lb.slice(0, p).concat(lb.slice(lb.length - q));
        const deferred: [string, () => Iterable<[string, string]>][] = [];
        let askSame: boolean | undefined;
        const observe = ([b, a]: [Decision, Decision]) => {
          if (askSame !== undefined) return;
          const rb2 = plainAsk(b, before);
          const ra2 = plainAsk(a, after);
          if (rb2 && ra2) askSame = !decisionsDiffer(b, a);
        };
        for (const [t, m] of reps) {
          if (middle.some((r) => mayMatchTarget(r.target, t, sys))) observe(orbit(s, t, m));
          else deferred.push([t, m]);
        }
        let direct: boolean | undefined | null = null;
        for (const [t, m] of deferred) {
          const askMayDecide = common.some((r) => r.action === "ask" && !r.redirect && mayMatchTarget(r.target, t, sys));
          if (!askMayDecide || askSame === true) continue;
          // Before deciding every deferred target of the class (thousands on a large system), compare the offered targets themselves.
          if (direct === null) direct = sameAskTargets(before, after, svc.service, arg.argument, s, sys);
          if (direct === true) continue;
          observe(orbit(s, t, m));
        }
      }
    }
  }
  return { space, classes, orbits, requests, evaluated };
}

/**
 * Every changed request of a diff, each decided by both policies (so every
 * decision reported is a real one), by service, argument, source, target.
 * An array of {@link expandedChanges}.
 */
export function expandChanges(diff: PolicyDiff, before: CompiledPolicy, after: CompiledPolicy, system: SystemInfo): DecisionChange[] {
  return [...expandedChanges(diff, before, after, system)];
}

/**
 * {@link expandChanges} one change at a time: the changed requests are put
 * in order first (two numbers each), and each is decided only when it is
 * taken, so a diff of millions of requests is written with the memory of
 * its orbits, not of every decision (a decision can carry a list of every
 * qube).
 */
export function* expandedChanges(diff: PolicyDiff, before: CompiledPolicy, after: CompiledPolicy, system: SystemInfo): Generator<DecisionChange, void, undefined> {
  const orbits = diff.orbits;
  const targetOrder = new Map(diff.space.targets.map((t, i) => [t, i] as const));
  const svcOrder = new Map<string, number>();
  diff.space.services.forEach((s, i) => s.arguments.forEach((a, j) => svcOrder.set(s.service + "\0" + a.argument, i * 1e6 + j)));
  const rank = orbits.map((o) => svcOrder.get(o.request.service + "\0" + o.request.argument)!);
  let n = 0;
  for (const o of orbits) n += o.members.length;
  // Change k is member memberOf[k] of orbit orbitOf[k].
  const orbitOf = new Int32Array(n);
  const memberOf = new Int32Array(n);
  let k = 0;
  for (let i = 0; i < orbits.length; i++) {
    for (let j = 0; j < orbits[i]!.members.length; j++) {
      orbitOf[k] = i;
      memberOf[k++] = j;
    }
  }
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  ids.sort((x, y) => {
    const ox = orbitOf[x]!;
    const oy = orbitOf[y]!;
    const mx = orbits[ox]!.members[memberOf[x]!]!;
    const my = orbits[oy]!.members[memberOf[y]!]!;
    return rank[ox]! - rank[oy]! || pyCompare(mx[0], my[0]) || targetOrder.get(mx[1])! - targetOrder.get(my[1])!;
  });
  for (const id of ids) {
    const o = orbits[orbitOf[id]!]!;
    const [source, target] = o.members[memberOf[id]!]!;
    const request: PolicyRequest = { service: o.request.service, argument: o.request.argument, source, target };
    const rep = source === o.request.source && target === o.request.target;
    yield { service: o.service, argument: o.argument, call: o.call, source, target, request, before: rep ? o.before : decide(before, request, system), after: rep ? o.after : decide(after, request, system) };
  }
}

/**
 * An ask decision with its offer list replaced by an equal one kept before
 * for the same source, if any. Each decision of an orbit otherwise holds a
 * list of its own: on a 2,000-qube system with a thousand classes that is
 * over a hundred thousand lists of 2,000 names (gigabytes, and most of the
 * time spent collecting garbage). Equal lists then also share their
 * renamed deltas in {@link changeItems}.
 */
function shareOffers(d: Decision, offers: Map<string, string[][]>): Decision {
  if (!d.ok || d.action !== "ask") return d;
  const list = d.targetsForAsk;
  const key = String(list.length);
  let known = offers.get(key);
  if (!known) offers.set(key, (known = []));
  for (const k of known) {
    if (k === list) return d;
    let same = true;
    for (let i = 0; i < k.length && same; i++) if (k[i] !== list[i]) same = false;
    if (same) return { ...d, targetsForAsk: k };
  }
  // A bounded search: a list that matches none of the last few is kept as it is.
  if (known.length >= 8) known.shift();
  known.push(list);
  return d;
}

/**
 * `evaluate`'s decision, with an ask's offer list the evaluator's own
 * (shared by every request from the same source: not to be modified) rather
 * than a copy per request; the diff decides hundreds of thousands of requests
 * whose lists are thousands of names.
 */
function decide(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo): Decision {
  return run(policy, request, system, undefined, undefined, false, true).decision;
}

function sameRules(a: CompiledPolicy, b: CompiledPolicy, service: string, argument: string): boolean {
  return sameRuleTexts(rulesFor(a, service, argument), rulesFor(b, service, argument));
}

function sameRuleTexts(ra: readonly PolicyRule[], rb: readonly PolicyRule[]): boolean {
  if (ra.length !== rb.length) return false;
  for (let i = 0; i < ra.length; i++) if (ruleText(ra[i]!) !== ruleText(rb[i]!)) return false;
  return true;
}

/** A rule as one line ({@link printRule}), made once per rule: the diff compares rule lists per class of sources. */
const ruleTexts = new WeakMap<PolicyRule, string>();
function ruleText(r: PolicyRule): string {
  let t = ruleTexts.get(r);
  if (t === undefined) ruleTexts.set(r, (t = printRule(r)));
  return t;
}

/**
 * Do both policies offer the same targets for an `ask` from `source`
 * (`collect_targets_for_ask`, which reads the service, the argument and
 * the source, never the target)? Undefined when either cannot be said
 * without the engine failing on the way.
 */
function sameAskTargets(before: CompiledPolicy, after: CompiledPolicy, service: string, argument: string, source: string, sys: PreparedSystem): boolean | undefined {
  try {
    const req = buildRequest({ service, argument, source, target: "@default" }, sys);
    const b = collectTargetsForAsk(before, req, sys);
    const a = collectTargetsForAsk(after, req, sys);
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  } catch {
    return undefined;
  }
}

/**
 * An `ask` decision whose offered targets are the whole collection: decided
 * by an `ask` rule without `target=` and with autostart (so nothing is
 * filtered out). Looked up by the rule's position.
 */
function plainAsk(d: Decision, policy: CompiledPolicy): boolean {
  if (!d.ok || d.action !== "ask" || !d.autostart) return false;
  const rule = ruleAt(policy, d.rule.file, d.rule.line);
  return rule !== undefined && rule.action === "ask" && rule.redirect === null && rule.autostart;
}

const ruleMaps = new WeakMap<CompiledPolicy, Map<string, PolicyRule>>();
function ruleAt(policy: CompiledPolicy, file: string, line: number | null): PolicyRule | undefined {
  let m = ruleMaps.get(policy);
  if (!m) {
    m = new Map();
    for (const r of policy.rules) m.set(`${r.origin.file}\0${r.origin.line}`, r);
    ruleMaps.set(policy, m);
  }
  return m.get(`${file}\0${line}`);
}

/**
 * Can a rule's target token match the intended target `t` (a qube name,
 * `@default`, `@adminvm`, `@dispvm` or `@dispvm:X` of the space)? False only
 * when it certainly cannot, without crashing; with a system model that is not
 * well formed every rule may.
 */
function mayMatchTarget(tok: QubeToken, t: string, sys: PreparedSystem): boolean {
  if (!sys.wellFormed) return true;
  const dispX = t.startsWith("@dispvm:") ? t.slice(8) : null;
  const d = t.startsWith("@") ? undefined : (sys.domains.get(t) as { type?: unknown; tags?: unknown } | undefined);
  switch (tok.kind) {
    case "wildcard":
      return true;
    case "adminvm":
      return isDom0Token(t);
    case "anyvm":
      return !isDom0Token(t);
    case "default":
      return t === "@default";
    case "dispvm":
      return t === "@dispvm";
    case "type":
      return d !== undefined && (d.type === tok.value || typeof d.type !== "string");
    case "tag":
      return d !== undefined && (!Array.isArray(d.tags) || d.tags.includes(tok.value));
    case "name":
      if (isDom0Token(tok.text)) return isDom0Token(t);
      if (tok.text.startsWith("uuid:") || t.startsWith("uuid:")) return true;
      return tok.text === t;
    case "dispvm-template":
      return t === "@dispvm" || (dispX !== null && (tok.value === dispX || tok.value.startsWith("uuid:")));
    case "dispvm-tag":
      return t === "@dispvm" || dispX !== null;
  }
}

/**
 * Can a rule's source token match the qube `src`? False only when it
 * certainly cannot (the engine's `match` for a plain qube name); with a
 * system model that is not well formed every rule may (matching can crash).
 */
function mayMatchSource(tok: QubeToken, src: string, sys: PreparedSystem): boolean {
  if (!sys.wellFormed) return true;
  const d = sys.domains.get(src) as { type?: unknown; tags?: unknown; uuid?: unknown } | undefined;
  switch (tok.kind) {
    case "wildcard":
      return true;
    case "adminvm":
      return isDom0Token(src);
    case "anyvm":
      return !isDom0Token(src);
    case "type":
      return d === undefined || d.type === tok.value || typeof d.type !== "string";
    case "tag":
      return d === undefined || !Array.isArray(d.tags) || d.tags.includes(tok.value);
    case "name":
      if (isDom0Token(tok.text)) return isDom0Token(src);
      if (tok.text.startsWith("uuid:")) return d === undefined || typeof d.uuid !== "string" || tok.text === "uuid:" + d.uuid;
      return tok.text === src;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// Grouping into statements
// ---------------------------------------------------------------------------

/** The side of a grouped change: the action, and what is the same for every request of the group. */
export interface GroupSide {
  action: "allow" | "ask" | "deny";
  /** allow: the resolved target when it is not simply the requested one. */
  target?: string;
  /** The deciding rule (`file:line`), or the engine's refusal message. */
  rule?: string;
  refusal?: string;
}

/** Changes of one kind, for a set of sources and targets. */
export interface ChangeGroup {
  kind: "grant" | "change" | "revoke";
  service: string;
  argument: string;
  call: string;
  sources: string[];
  targets: string[];
  before: GroupSide;
  after: GroupSide;
  /** For ask → ask: targets offered now and not before, and the reverse. */
  added?: string[];
  removed?: string[];
  /** The number of concrete requests. */
  requests: number;
  /** One line (`qubes.Filecopy from work: to vault: deny → allow (30-user.policy:4)`). */
  statement: string;
}

const RANK = { deny: 0, ask: 1, allow: 2 } as const;

/** One changed request as the statements see it (what stays the same under renaming within classes). */
export interface ChangeItem {
  kind: ChangeGroup["kind"];
  service: string;
  argument: string;
  call: string;
  source: string;
  target: string;
  before: GroupSide;
  after: GroupSide;
  added?: string[];
  removed?: string[];
}

function side(d: Decision, requested: string, m: (x: string) => string): GroupSide {
  if (!d.ok) return { action: "deny", refusal: d.code, ...(d.rule ? { rule: `${d.rule.file}:${d.rule.line ?? "None"}` } : {}) };
  const rule = `${d.rule.file}:${d.rule.line ?? "None"}`;
  if (d.action === "allow") {
    const target = m(d.target);
    return target === requested ? { action: "allow", rule } : { action: "allow", target, rule };
  }
  return { action: d.action, rule };
}

/** For ask → ask: the targets offered only after, and only before (unsorted, unrenamed). */
function askDelta(b: Decision, a: Decision): { added: string[]; removed: string[] } | undefined {
  if (!(b.ok && a.ok && b.action === "ask" && a.action === "ask")) return undefined;
  const was = new Set(b.targetsForAsk);
  const now = new Set(a.targetsForAsk);
  return { added: a.targetsForAsk.filter((t) => !was.has(t)), removed: b.targetsForAsk.filter((t) => !now.has(t)) };
}

/** An ask delta as sorted lists, with sets for membership tests. */
interface SortedDelta {
  added: string[];
  removed: string[];
  members: Set<string>;
  addedSet: Set<string>;
  removedSet: Set<string>;
}

function sortedDelta(b: Decision, a: Decision): SortedDelta | undefined {
  const d = askDelta(b, a);
  if (!d) return undefined;
  const added = d.added.sort(pyCompare);
  const removed = d.removed.sort(pyCompare);
  return { added, removed, members: new Set([...added, ...removed]), addedSet: new Set(added), removedSet: new Set(removed) };
}

/**
 * The renamed ask deltas of one orbit, made once per distinct effect.
 * A renaming is a permutation, so it changes a list only by moving qubes in
 * or out of it: its image is the list with the membership of
 * {m(x) : x moved, x and m(x) not both in or both out} flipped. That set is
 * the key: a 2,000-qube orbit has as many distinct renamed lists as
 * sources, not as requests.
 */
type DeltaMemo = Map<string, { added: string[]; removed: string[] }>;

function flipKey(list: Set<string>, m: Renaming): string {
  let key = "";
  for (const x of m.moved) {
    for (const y of [x, "@dispvm:" + x]) {
      const my = m.map(y);
      if (list.has(y) !== list.has(my)) key += my + "\0";
    }
  }
  return key;
}

function item(o: { service: string; argument: string; call: string }, source: string, target: string, b: Decision, a: Decision, m: Renaming, delta = sortedDelta(b, a), memo?: DeltaMemo): ChangeItem {
  const before = side(b, target, m.map);
  const after = side(a, target, m.map);
  let kind: ChangeGroup["kind"];
  let added: string[] | undefined;
  let removed: string[] | undefined;
  if (RANK[after.action] > RANK[before.action]) kind = "grant";
  else if (RANK[after.action] < RANK[before.action]) kind = "revoke";
  else if (delta) {
    // Renaming touches at most two qubes: when neither is in the lists, the lists are the representative's.
    let touched = false;
    for (const x of m.moved) if (delta.members.has(x) || delta.members.has("@dispvm:" + x)) touched = true;
    if (touched && memo) {
      const key = flipKey(delta.addedSet, m) + "\u0001" + flipKey(delta.removedSet, m);
      let r = memo.get(key);
      if (r === undefined) memo.set(key, (r = key === "\u0001" ? { added: delta.added, removed: delta.removed } : { added: delta.added.map(m.map).sort(pyCompare), removed: delta.removed.map(m.map).sort(pyCompare) }));
      added = r.added;
      removed = r.removed;
    } else {
      added = touched ? delta.added.map(m.map).sort(pyCompare) : delta.added;
      removed = touched ? delta.removed.map(m.map).sort(pyCompare) : delta.removed;
    }
    kind = removed.length === 0 ? "grant" : added.length === 0 ? "revoke" : "change";
  } else kind = "change";
  return { kind, service: o.service, argument: o.argument, call: o.call, source, target, before, after, ...(added ? { added, removed: removed! } : {}) };
}

/** A renaming of qubes (a permutation within classes) and the qubes it moves. */
interface Renaming {
  map: (x: string) => string;
  moved: readonly string[];
}

const IDENTITY: Renaming = { map: (x: string) => x, moved: [] };

/** The qube a target names (`vault`, `@dispvm:X` → X), or null for `@default`, `@adminvm`, `@dispvm`. */
function qubeOf(t: string): string | null {
  if (t.startsWith("@dispvm:")) return t.slice(8);
  return t.startsWith("@") ? null : t;
}

/**
 * The renaming that takes the representative (s, t) of an orbit to (s2, t2):
 * a permutation of qubes within their classes (s → s2, the target's qube → t2's),
 * applied to names and to `@dispvm:NAME`.
 */
function renaming(s: string, t: string, s2: string, t2: string): Renaming {
  if (s === s2 && t === t2) return IDENTITY;
  const fwd = new Map<string, string>([[s, s2]]);
  const tq = qubeOf(t);
  const tq2 = qubeOf(t2);
  if (tq !== null && tq2 !== null) fwd.set(tq, tq2);
  const image = new Set(fwd.values());
  const freeDomain = [...fwd.keys()].filter((x) => !image.has(x));
  const freeImage = [...fwd.values()].filter((x) => !fwd.has(x));
  // Close the map into a permutation: what is taken by the image goes to what the domain freed, in order.
  freeImage.forEach((x, i) => fwd.set(x, freeDomain[i]!));
  for (const [k, v] of [...fwd]) if (k === v) fwd.delete(k);
  const one = (x: string) => fwd.get(x) ?? x;
  return { map: (x) => (x.startsWith("@dispvm:") ? "@dispvm:" + one(x.slice(8)) : one(x)), moved: [...fwd.keys()] };
}

/**
 * The changed requests of a diff as {@link ChangeItem}s, without deciding
 * them again: each member's decisions are the representative's, renamed by
 * the permutation that takes one to the other (exact, as the classes are
 * automorphisms; a property test compares with {@link concreteChangeItems}).
 */
export function changeItems(diff: PolicyDiff): ChangeItem[] {
  const out: ChangeItem[] = [];
  // Orbits whose decisions share their offer lists share their delta and its renamings.
  const deltas = new WeakMap<string[], WeakMap<string[], SortedDelta | undefined>>();
  const deltaMemos = new WeakMap<SortedDelta, DeltaMemo>();
  const sharedDelta = (b: Decision, a: Decision): SortedDelta | undefined => {
    if (!(b.ok && a.ok && b.action === "ask" && a.action === "ask")) return undefined;
    let inner = deltas.get(b.targetsForAsk);
    if (!inner) deltas.set(b.targetsForAsk, (inner = new WeakMap()));
    if (inner.has(a.targetsForAsk)) return inner.get(a.targetsForAsk);
    const d = sortedDelta(b, a);
    inner.set(a.targetsForAsk, d);
    return d;
  };
  for (const o of diff.orbits) {
    const delta = sharedDelta(o.before, o.after);
    let memo = delta ? deltaMemos.get(delta) : undefined;
    if (delta && !memo) deltaMemos.set(delta, (memo = new Map()));
    for (const [source, target] of o.members) out.push(item(o, source, target, o.before, o.after, renaming(o.request.source, o.request.target!, source, target), delta, memo));
  }
  return out;
}

/** The same items computed from concretely decided changes ({@link expandChanges}). */
export function concreteChangeItems(changes: readonly DecisionChange[]): ChangeItem[] {
  return changes.map((c) => item(c, c.source, c.target, c.before, c.after, IDENTITY));
}

const joined = new WeakMap<string[], string>();
function joinedList(l: string[] | undefined): string {
  if (l === undefined) return "\u0001";
  let j = joined.get(l);
  if (j === undefined) joined.set(l, (j = l.join(" ")));
  return j;
}

function sideText(s: GroupSide): string {
  return s.action + (s.target !== undefined ? ` to ${s.target}` : "") + (s.refusal !== undefined ? ` (refused: ${s.refusal})` : "");
}

function listText(items: string[], max = 8): string {
  return items.length <= max ? items.join(", ") : `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

/**
 * Groups changes into statements: per service and argument, the requests
 * that change the same way (same actions, allow target, deciding rules, and
 * for ask → ask the same added and removed targets); sources with the same
 * changed targets are merged. Grants come first, then other changes, then
 * revocations. With the space, long lists are said as "every qube except …".
 */
export function groupChanges(items: readonly ChangeItem[], space?: RequestSpace): ChangeGroup[] {
  /** A list of qubes or targets, or "every … except" when that is shorter. */
  const phrase = (list: string[], all: readonly string[] | undefined, what: string) => {
    if (all && list.length > 8) {
      const have = new Set(list);
      const rest = all.filter((x) => !have.has(x));
      if (rest.length === 0) return `every ${what}`;
      if (rest.length <= 8 && rest.length < list.length) return `every ${what} except ${rest.join(", ")}`;
    }
    return listText(list);
  };
  let sorted: readonly ChangeItem[] = items;
  if (space) {
    const order = new Map(space.targets.map((t, i) => [t, i] as const));
    const svc = new Map<string, number>();
    space.services.forEach((x, i) => x.arguments.forEach((a, j) => svc.set(x.display + "\0" + a.display + "\0" + x.service, i * 1e6 + j)));
    const key = (c: ChangeItem) => svc.get(c.service + "\0" + c.argument + "\0" + (c.service === "*" ? space.services[space.services.length - 1]!.service : c.service)) ?? 0;
    // By service and argument, source (pyCompare, as the space's qubes are sorted), target: the keys computed once per
    // item, not per comparison (a diff on a 2,000-qube system has hundreds of thousands of items).
    const rank = new Map(space.qubes.map((q, i) => [q, i] as const));
    const n = items.length;
    const ks = new Float64Array(n);
    const sr = new Float64Array(n);
    const tr = new Float64Array(n);
    let ranked = true;
    for (let i = 0; i < n; i++) {
      const c = items[i]!;
      ks[i] = key(c);
      const r = rank.get(c.source);
      if (r === undefined) ranked = false;
      sr[i] = r ?? 0;
      tr[i] = order.get(c.target) ?? 0;
    }
    const idx = Array.from({ length: n }, (_, i) => i);
    idx.sort((a, b) => ks[a]! - ks[b]! || (ranked ? sr[a]! - sr[b]! : pyCompare(items[a]!.source, items[b]!.source)) || tr[a]! - tr[b]! || a - b);
    sorted = idx.map((i) => items[i]!);
  }
  const bySig = new Map<string, { g: Omit<ChangeGroup, "sources" | "targets" | "requests" | "statement">; bySource: Map<string, string[]> }>();
  // An ask delta in the key by a number per distinct list: the lists can be thousands of names, and a key made with
  // their text is hashed again for every item.
  const listIds = new Map<string, number>();
  const listId = (l: string[] | undefined): number => {
    const text = joinedList(l);
    let id = listIds.get(text);
    if (id === undefined) listIds.set(text, (id = listIds.size));
    return id;
  };
  for (const c of sorted) {
    const { before, after } = c;
    const key = [c.kind, c.call, c.argument, before.action, before.target, before.rule, before.refusal, after.action, after.target, after.rule, after.refusal, listId(c.added), listId(c.removed)].join("\0");
    let e = bySig.get(key);
    if (!e) {
      const g = { kind: c.kind, service: c.service, argument: c.argument, call: c.call, before, after, ...(c.added ? { added: c.added, removed: c.removed! } : {}) };
      bySig.set(key, (e = { g, bySource: new Map() }));
    }
    let l = e.bySource.get(c.source);
    if (!l) e.bySource.set(c.source, (l = []));
    l.push(c.target);
  }
  const out: ChangeGroup[] = [];
  for (const { g, bySource } of bySig.values()) {
    const byTargets = new Map<string, { sources: string[]; targets: string[] }>();
    for (const [source, targets] of bySource) {
      targets.sort(pyCompare);
      const k = targets.join("\0");
      let m = byTargets.get(k);
      if (!m) byTargets.set(k, (m = { sources: [], targets }));
      m.sources.push(source);
    }
    for (const { sources, targets } of byTargets.values()) {
      sources.sort(pyCompare);
      const where = g.after.rule ?? "no rule";
      const ask = g.added ? ` (${[g.added.length ? `now offers ${listText(g.added)}` : "", g.removed!.length ? `no longer ${listText(g.removed!)}` : ""].filter(Boolean).join("; ")})` : "";
      const statement = `${g.call} from ${phrase(sources, space?.qubes, "qube")}: to ${phrase(targets, space?.targets, "target")}: ${sideText(g.before)} → ${sideText(g.after)}${ask} (${where})`;
      out.push({ ...g, sources, targets, requests: sources.length * targets.length, statement });
    }
  }
  const kindOrder = { grant: 0, change: 1, revoke: 2 } as const;
  // Stable: within a kind, the order of the changes (service, argument, source, target).
  return out.map((g, i) => [g, i] as const).sort((a, b) => kindOrder[a[0].kind] - kindOrder[b[0].kind] || a[1] - b[1]).map(([g]) => g);
}
