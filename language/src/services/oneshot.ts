/**
 * The whole-policy findings (shadowing, `ask` feeders, `ask` rules without
 * targets) in one linear pass over the rule list, for a one-shot analysis
 * (`qkit policy check`): no per-service sequences, shapes or caches, which
 * only pay off when the next edit reuses them (see `incremental.ts`).
 *
 * INVARIANT: equal to `serviceFindings` of the same rules, except for
 * `recomputed`, which lists every service (a property test compares them on
 * random policies).
 */
import type { PolicyRule } from "../loader/types.js";
import type { QubeToken } from "../syntax/tree.js";
import { ruleCovers, shadowPositions, type ServiceFindings } from "./incremental.js";
import { isDom0ish } from "./util.js";

/** Rules counted by argument (`null` = `*`). */
interface Counter {
  any: number;
  wildcard: number;
  byArg: Map<string, number>;
}

function counter(): Counter {
  return { any: 0, wildcard: 0, byArg: new Map() };
}

function add(c: Counter, arg: string | null): void {
  c.any++;
  if (arg === null) c.wildcard++;
  else c.byArg.set(arg, (c.byArg.get(arg) ?? 0) + 1);
}

/** True when some counted rule's argument is compatible with `arg` (either is `*`, or they are equal). */
function matches(c: Counter | undefined, arg: string | null): boolean {
  if (!c) return false;
  if (arg === null) return c.any > 0;
  return c.wildcard > 0 || (c.byArg.get(arg) ?? 0) > 0;
}

/**
 * The findings of `serviceFindings` from scratch, in linear time: a rule of
 * service `S` is shadowed by the earliest earlier rule of `S` or `*` that
 * covers it (`shadowPositions` over the whole list looks at exactly those);
 * it feeds `ask` prompts when an `ask` rule without `target=` of `S` or `*`
 * has a compatible argument; an `ask` rule to `@default` without `target=`
 * has no targets when no rule of `S` or `*` that offers targets has a
 * compatible argument. A `*` rule's calls are those of every service: it is
 * compared with every rule of the policy.
 */
export function wholePolicyFindings(rules: readonly PolicyRule[]): ServiceFindings {
  // The shadowed-rule and ask rules both ask for the findings of one list.
  const known = computed.get(rules);
  if (known) return known;
  const findings = compute(rules);
  computed.set(rules, findings);
  return findings;
}

const computed = new WeakMap<readonly PolicyRule[], ServiceFindings>();

function compute(rules: readonly PolicyRule[]): ServiceFindings {
  const n = rules.length;
  const at = shadowPositionsOnce(rules);
  const shadowedBy: Array<PolicyRule | undefined> = new Array(n);
  for (let i = 0; i < n; i++) shadowedBy[i] = at[i]! >= 0 ? rules[at[i]!] : undefined;
  // `ask` rules without `target=`, and rules that offer targets, by service (`null` for `*`) and over all.
  const asks = new Map<string | null, Counter>();
  const offers = new Map<string | null, Counter>();
  const allAsks = counter();
  const allOffers = counter();
  const services = new Set<string | null>();
  for (const r of rules) {
    services.add(r.service);
    if (r.action === "ask" && r.redirect === null) {
      let c = asks.get(r.service);
      if (!c) asks.set(r.service, (c = counter()));
      add(c, r.argument);
      add(allAsks, r.argument);
    }
    if (r.action !== "deny" && (r.redirect ?? r.target).kind !== "default") {
      let c = offers.get(r.service);
      if (!c) offers.set(r.service, (c = counter()));
      add(c, r.argument);
      add(allOffers, r.argument);
    }
  }
  const feedsAsk = new Uint8Array(n);
  const askWithoutTargets = new Uint8Array(n);
  const wildAsks = asks.get(null);
  const wildOffers = offers.get(null);
  for (let i = 0; i < n; i++) {
    const r = rules[i]!;
    const withoutTarget = r.action === "ask" && r.redirect === null && r.target.kind === "default";
    if (r.service === null) {
      feedsAsk[i] = matches(allAsks, r.argument) ? 1 : 0;
      askWithoutTargets[i] = withoutTarget && !matches(allOffers, r.argument) ? 1 : 0;
    } else {
      feedsAsk[i] = matches(asks.get(r.service), r.argument) || matches(wildAsks, r.argument) ? 1 : 0;
      askWithoutTargets[i] = withoutTarget && !matches(offers.get(r.service), r.argument) && !matches(wildOffers, r.argument) ? 1 : 0;
    }
  }
  return { shadowedBy, feedsAsk, askWithoutTargets, recomputed: [...services] };
}

/** The index key of a token, as `shadowPositions` has it: keywords by kind, dom0's spellings as one, other tokens by text. */
function coverKey(t: QubeToken): string {
  if (t.kind === "wildcard") return "*";
  if (t.kind === "anyvm") return "@anyvm";
  return isDom0ish(t.text) ? "dom0" : t.text;
}

/**
 * `shadowPositions` with its keys interned as small integers (one pass to
 * intern, one to probe): the same candidates (the earliest rule of each
 * service, argument, source key and target key that could cover a rule,
 * each checked with `ruleCovers`), so the same positions, with integer map
 * lookups instead of four levels of string-keyed maps.
 */
export function shadowPositionsOnce(rules: readonly PolicyRule[]): Int32Array {
  const n = rules.length;
  // Token keys: 0 is `*`, 1 is `@anyvm`.
  const keyIds = new Map<string, number>([
    ["*", 0],
    ["@anyvm", 1],
  ]);
  const keyOf = (t: QubeToken): number => {
    const k = coverKey(t);
    let id = keyIds.get(k);
    if (id === undefined) keyIds.set(k, (id = keyIds.size));
    return id;
  };
  // (service, argument) pairs of the rules; `null` service and argument as the empty key of their map.
  const pairs = new Map<string | null, Map<string | null, number>>();
  let pairCount = 0;
  const src = new Int32Array(n);
  const tgt = new Int32Array(n);
  const own = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rules[i]!;
    src[i] = keyOf(r.source);
    tgt[i] = keyOf(r.target);
    let byArg = pairs.get(r.service);
    if (!byArg) pairs.set(r.service, (byArg = new Map()));
    let id = byArg.get(r.argument);
    if (id === undefined) byArg.set(r.argument, (id = pairCount++));
    own[i] = id;
  }
  const keys = keyIds.size;
  // Integer keys must stay small integers (no boxed numbers); otherwise the general version.
  if (keys * keys >= 1 << 30) return shadowPositions(rules);
  const first: Array<Map<number, number>> = Array.from({ length: pairCount }, () => new Map());
  // Per pair, which of the keys `*` and `@anyvm` its rules so far have as source (bits 1, 2) and
  // as target (bits 4, 8): the probes of keys no rule has are skipped.
  const seen = new Uint8Array(pairCount);
  const out = new Int32Array(n).fill(-1);
  const probePair = (pair: number | undefined, r: PolicyRule, s: number, t: number, best: number): number => {
    if (pair === undefined) return best;
    const byKey = first[pair]!;
    const has = seen[pair]!;
    for (let a = 0; a < 3; a++) {
      const sk = a === 2 ? s : a;
      if (a === 2 && s <= 1) break;
      if (a < 2 && (has & (1 << a)) === 0) continue;
      for (let b = 0; b < 3; b++) {
        const tk = b === 2 ? t : b;
        if (b === 2 && t <= 1) break;
        if (b < 2 && (has & (4 << b)) === 0) continue;
        const c = byKey.get(sk * keys + tk);
        if (c !== undefined && (best < 0 || c < best) && ruleCovers(rules[c]!, r)) best = c;
      }
    }
    return best;
  };
  const wild = pairs.get(null);
  for (let i = 0; i < n; i++) {
    const r = rules[i]!;
    const s = src[i]!;
    const t = tgt[i]!;
    // `@dispvm:` sources never match a call, so nothing about them is reported.
    if (r.source.kind !== "dispvm-template" && r.source.kind !== "dispvm-tag") {
      let best = -1;
      if (wild) {
        best = probePair(wild.get(null), r, s, t, best);
        if (r.argument !== null) best = probePair(wild.get(r.argument), r, s, t, best);
      }
      if (r.service !== null) {
        const mine = pairs.get(r.service);
        if (mine) {
          best = probePair(mine.get(null), r, s, t, best);
          if (r.argument !== null) best = probePair(mine.get(r.argument), r, s, t, best);
        }
      }
      out[i] = best;
    }
    const byKey = first[own[i]!]!;
    const key = s * keys + t;
    if (!byKey.has(key)) {
      byKey.set(key, i);
      seen[own[i]!] |= (s <= 1 ? 1 << s : 0) | (t <= 1 ? 4 << t : 0);
    }
  }
  return out;
}
