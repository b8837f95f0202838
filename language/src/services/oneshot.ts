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
import { shadowPositions, type ServiceFindings } from "./incremental.js";

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
  const at = shadowPositions(rules);
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
