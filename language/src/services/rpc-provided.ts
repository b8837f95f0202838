/**
 * Which qubes a rule can make a call end at, and whether they provide its service.
 *
 * The system model may carry, per qube, the optional key `supported_rpc`: the sorted names of the
 * qrexec services the qube's agent advertises (qubesd's `supported-rpc.SERVICE` features, each
 * looked up with its template chain as `admin.vm.feature.CheckWithTemplate` does). A qube without
 * the key is "unknown" (an old agent, Windows, dom0, or a snapshot taken without `--services`).
 *
 * The qubes a rule "can call" are decided as the evaluator decides a call the rule matches:
 * the target column (or `target=`) verified against the system model, `@dispvm` resolved through
 * each possible caller's `default_dispvm`, `@dispvm:X` a new disposable of X (which provides what
 * X's template chain provides, so X's own `supported_rpc`), and for `ask` without `target=` the
 * targets `collect_targets_for_ask` can offer (every allow/ask rule of the service, argument and
 * caller, less internal qubes and, for a rule with one caller, the caller's own name, never a new
 * disposable of it, `@dispvm:CALLER`, which stays an offered target; deny rules are
 * not subtracted, so this is a superset of the offer, which keeps the check conservative). A rule
 * that can reach dom0, or any unknown qube, is never reported.
 */
import type { DomainInfo, SystemInfo } from "../eval/types.js";
import type { PolicyRule } from "../loader/types.js";
import type { QubeToken } from "../syntax/tree.js";
import { pyTruthy } from "../syntax/python.js";
import { tokenMatchesQube } from "./describe.js";
import { isDom0ish, tokenKey } from "./util.js";

/** The name of the system-model key that lists a qube's advertised services. */
export const SUPPORTED_RPC_KEY = "supported_rpc";

const advertised = new WeakMap<SystemInfo, Map<string, ReadonlySet<string> | null>>();

/**
 * The services a qube of the system model advertises, or `null` when it is unknown (no
 * `supported_rpc` key, or a value that is not a list of strings).
 */
export function supportedRpc(system: SystemInfo, name: string): ReadonlySet<string> | null {
  let byName = advertised.get(system);
  if (!byName) advertised.set(system, (byName = new Map()));
  let set = byName.get(name);
  if (set === undefined) {
    const info = system.domains.get(name);
    const v = isInfo(info) ? info[SUPPORTED_RPC_KEY] : undefined;
    set = Array.isArray(v) && v.every((s) => typeof s === "string") ? new Set(v as string[]) : null;
    byName.set(name, set);
  }
  return set;
}

/** True when some qube of the system model carries the `supported_rpc` key. */
export function hasSupportedRpc(system: SystemInfo): boolean {
  for (const [name, info] of system.domains) if (!name.startsWith("uuid:") && isInfo(info) && Array.isArray(info[SUPPORTED_RPC_KEY])) return true;
  return false;
}

/** Where calls of a rule can end: dom0, existing qubes, or new disposables of disposable templates. */
export interface RuleReach {
  dom0: boolean;
  /** Existing qubes, by name (no `uuid:` aliases), whose advertised services decide. */
  qubes: Set<string>;
  /**
   * Disposable templates, by name, whose new disposables (`@dispvm:NAME`) are reached: they provide
   * what the template provides. Kept apart from `qubes` because an `ask` offer drops the caller's
   * name but never `@dispvm:CALLER`.
   */
  disposables: Set<string>;
  /**
   * Set when the reach was cut short because a qube that provides the rule's service, or whose
   * services are unknown, was found (`qubes` is then incomplete).
   */
  decided?: true;
}

/** True for a domain entry that is an object (a model may hold `null` or other junk for a qube). */
function isInfo(info: unknown): info is DomainInfo {
  return typeof info === "object" && info !== null && !Array.isArray(info);
}

/** The callers a source token matches: qube indices, and a mask over all qubes. */
interface Callers {
  list: number[];
  mask: Uint8Array;
}

/** What a token that does not depend on the caller adds: dom0, and qube names. */
interface Expansion {
  dom0: boolean;
  qubes: string[];
  disposables: string[];
}

/** The memos of {@link ReachContext} that depend on the system model only. */
const systemMemos = new WeakMap<SystemInfo, { names: string[]; infos: DomainInfo[]; callers: Map<string, Callers>; expansions: Map<string, Expansion>; providers: Map<string, boolean> }>();

/**
 * The reach of rules against one system model. Callers per source token, token expansions and the
 * reaches of rules that are not `ask` offers are memoised (they depend on the model only); an
 * offer depends on the rules that feed it, which the caller passes ({@link ReachContext.offer}).
 */
export class ReachContext {
  private readonly names: string[];
  private readonly infos: DomainInfo[];
  private readonly reachMemo = new Map<string, RuleReach>();
  // What depends on the system model only is shared by the runs over the same model.
  private readonly callerMemo: Map<string, Callers>;
  private readonly expansionMemo: Map<string, Expansion>;
  private readonly providerMemo: Map<string, boolean>;

  constructor(private readonly system: SystemInfo) {
    let shared = systemMemos.get(system);
    if (!shared) {
      shared = { names: [], infos: [], callers: new Map(), expansions: new Map(), providers: new Map() };
      for (const [name, info] of system.domains) {
        // A qube whose entry is not an object is skipped: nothing is known of it.
        if (name.startsWith("uuid:") || !isInfo(info)) continue;
        shared.names.push(name);
        shared.infos.push(info);
      }
      systemMemos.set(system, shared);
    }
    this.names = shared.names;
    this.infos = shared.infos;
    this.callerMemo = shared.callers;
    this.expansionMemo = shared.expansions;
    this.providerMemo = shared.providers;
  }

  /** The qubes (no aliases) a source token matches: the callers of the rule that the model knows. */
  private callers(tok: QubeToken): Callers {
    const key = tokenKey(tok);
    let c = this.callerMemo.get(key);
    if (!c) {
      c = { list: [], mask: new Uint8Array(this.names.length) };
      if (tok.kind !== "dispvm-template" && tok.kind !== "dispvm-tag") {
        for (let i = 0; i < this.names.length; i++) {
          if (tokenMatchesQube(tok, this.names[i]!, this.infos[i]!)) {
            c.list.push(i);
            c.mask[i] = 1;
          }
        }
      }
      this.callerMemo.set(key, c);
    }
    return c;
  }

  /** Adds an existing qube (by name or `uuid:` alias) to the reach. */
  private addQube(reach: RuleReach, key: string): void {
    const info = this.system.domains.get(key);
    if (!isInfo(info)) return;
    const name = typeof info.name === "string" ? info.name : key;
    if (isDom0ish(name) || info.type === "AdminVM") reach.dom0 = true;
    else reach.qubes.add(name);
  }

  /** Adds a new disposable of `template` (its services are the template's). */
  private addDisposable(reach: RuleReach, template: unknown, mustBeTemplate: boolean): void {
    if (typeof template !== "string" || template === "") return;
    const info = this.system.domains.get(template);
    if (!isInfo(info) || (mustBeTemplate && info.template_for_dispvms !== true)) return;
    const name = typeof info.name === "string" ? info.name : template;
    if (isDom0ish(name) || info.type === "AdminVM") reach.dom0 = true;
    else reach.disposables.add(name);
  }

  private dispvmTemplatesTagged(tag: string): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.names.length; i++) {
      const info = this.infos[i]!;
      if (info.template_for_dispvms === true && Array.isArray(info.tags) && info.tags.includes(tag)) out.push(this.names[i]!);
    }
    return out;
  }

  /** True when the target column can match some verified intended target. */
  targetCanMatch(tok: QubeToken): boolean {
    switch (tok.kind) {
      case "name":
        return isDom0ish(tok.text) || this.system.domains.has(tok.text);
      case "type":
      case "tag":
        return this.expansion(tok).qubes.length > 0 || this.expansion(tok).dom0;
      case "dispvm-template":
        return (this.system.domains.get(tok.value) as DomainInfo | null | undefined)?.template_for_dispvms === true;
      case "dispvm-tag":
        return this.dispvmTemplatesTagged(tok.value).length > 0;
      default:
        return true;
    }
  }

  /**
   * What a token adds whatever the caller (every kind but `@dispvm`), as the target column of an
   * allow verifies the intended target and as `collect_targets_for_ask` expands it.
   */
  private expansion(tok: QubeToken): Expansion {
    const key = tokenKey(tok);
    let e = this.expansionMemo.get(key);
    if (e) return e;
    const reach: RuleReach = { dom0: false, qubes: new Set(), disposables: new Set() };
    switch (tok.kind) {
      case "wildcard":
        reach.dom0 = true;
        for (const n of this.names) this.addQube(reach, n);
        // `*` and `@anyvm` also expand to a new disposable of every disposable template (`@dispvm:NAME`),
        // which stays offered to that template itself.
        for (const n of this.names) this.addDisposable(reach, n, true);
        break;
      case "anyvm":
        for (let i = 0; i < this.names.length; i++) if (!isDom0ish(this.names[i]!) && this.infos[i]!.type !== "AdminVM") this.addQube(reach, this.names[i]!);
        for (const n of this.names) this.addDisposable(reach, n, true);
        break;
      case "adminvm":
        reach.dom0 = true;
        break;
      case "name":
        if (isDom0ish(tok.text)) reach.dom0 = true;
        else this.addQube(reach, tok.text);
        break;
      case "type":
      case "tag":
        for (let i = 0; i < this.names.length; i++) if (tokenMatchesQube(tok, this.names[i]!, this.infos[i]!)) this.addQube(reach, this.names[i]!);
        break;
      case "dispvm-template":
        this.addDisposable(reach, tok.value, true);
        break;
      case "dispvm-tag":
        for (const n of this.dispvmTemplatesTagged(tok.value)) this.addDisposable(reach, n, true);
        break;
      default:
        // `@default` adds nothing; `@dispvm` depends on the caller.
        break;
    }
    e = { dom0: reach.dom0, qubes: [...reach.qubes], disposables: [...reach.disposables] };
    this.expansionMemo.set(key, e);
    return e;
  }

  /** Adds what a token names; `@dispvm` through the default disposable template of each of `callers`. */
  private addToken(reach: RuleReach, tok: QubeToken, callers: readonly number[]): void {
    if (tok.kind === "dispvm") {
      for (const i of callers) this.addDisposable(reach, this.infos[i]!.default_dispvm, false);
      return;
    }
    const e = this.expansion(tok);
    if (e.dom0) reach.dom0 = true;
    for (const n of e.qubes) reach.qubes.add(n);
    for (const n of e.disposables) reach.disposables.add(n);
  }

  /** True when a token expands to a non-internal qube that provides `service` or whose services are unknown (or to dom0). */
  private offersProvider(tok: QubeToken, service: string, caller: string | undefined): boolean {
    const key = `${tokenKey(tok)}\0${service}\0${caller ?? ""}`;
    let v = this.providerMemo.get(key);
    if (v === undefined) {
      const e = this.expansion(tok);
      // The caller's own name is never offered, a new disposable of it is (`@dispvm:CALLER`).
      const offered = (n: string) => !pyTruthy(this.system.domains.get(n)?.internal) && supportedRpc(this.system, n)?.has(service) !== false;
      v = e.dom0 || e.qubes.some((n) => n !== caller && offered(n)) || e.disposables.some(offered);
      this.providerMemo.set(key, v);
    }
    return v;
  }

  /**
   * Where the calls a rule decides can end (empty for deny rules and rules that never match), for
   * a rule that is not an `ask` offer (those need their feeders: {@link ReachContext.offer}).
   */
  reach(rule: PolicyRule): RuleReach {
    const key = reachKey(rule);
    let reach = this.reachMemo.get(key);
    if (!reach) this.reachMemo.set(key, (reach = this.computeReach(rule)));
    return reach;
  }

  private computeReach(rule: PolicyRule): RuleReach {
    const reach: RuleReach = { dom0: false, qubes: new Set(), disposables: new Set() };
    if (rule.action === "deny" || !this.targetCanMatch(rule.target)) return reach;
    const redirect = rule.redirect;
    if (redirect) {
      if (redirect.kind === "dispvm-template") this.addDisposable(reach, redirect.value, rule.action === "allow");
      else this.addToken(reach, redirect, redirect.kind === "dispvm" ? this.callers(rule.source).list : []);
      return reach;
    }
    if (rule.action === "allow") {
      this.addToken(reach, rule.target, rule.target.kind === "dispvm" ? this.callers(rule.source).list : []);
      return reach;
    }
    throw new Error("an ask offer's reach depends on its feeders: use offer()");
  }

  /**
   * Where the calls of an `ask` rule without `target=` can end, when its target column can match
   * ({@link ReachContext.targetCanMatch}): a superset of what `collect_targets_for_ask` offers its callers (deny rules not subtracted; the caller removed
   * only when there is one). `feeders` are the non-deny rules of the rule's service and of the
   * `*` service, in any order and with repeats (the offer is a union); `rule.service` is concrete.
   */
  offer(rule: PolicyRule, feeders: ReadonlyArray<readonly PolicyRule[]>): RuleReach {
    return this.askOffer(rule, feeders);
  }

  private askOffer(rule: PolicyRule, lists: ReadonlyArray<readonly PolicyRule[]>): RuleReach {
    const reach: RuleReach = { dom0: false, qubes: new Set(), disposables: new Set() };
    const mine = this.callers(rule.source);
    if (mine.list.length === 0) return reach;
    // One caller: the engine never offers the caller itself (with several, each offers the others).
    const only = mine.list.length === 1 && !isDom0ish(this.names[mine.list[0]!]!) && this.infos[mine.list[0]!]!.type !== "AdminVM" ? this.names[mine.list[0]!] : undefined;
    // A token that does not depend on the caller adds the same qubes each time: once is enough.
    const added = new Set<string>();
    for (const list of lists) {
      for (const q of list) {
        if (reach.dom0) break; // the verdict is decided: dom0 is never reported
        if (q.action === "deny") continue;
        if (q.argument !== null && rule.argument !== null && q.argument !== rule.argument) continue;
        const tok = q.redirect ?? q.target;
        const tk = tok.kind === "dispvm" ? "" : tokenKey(tok);
        if (tk !== "" && added.has(tk)) continue;
        const theirs = this.callers(q.source);
        const [small, other] = mine.list.length <= theirs.list.length ? [mine.list, theirs.mask] : [theirs.list, mine.mask];
        if (tok.kind === "dispvm") {
          this.addToken(reach, tok, small.filter((i) => other[i] === 1));
          continue;
        }
        if (!small.some((i) => other[i] === 1)) continue;
        added.add(tk);
        // Another qube that provides the service (or may): the verdict is decided.
        if (rule.service !== null && this.offersProvider(tok, rule.service, only)) {
          reach.decided = true;
          return reach;
        }
        this.addToken(reach, tok, []);
      }
    }
    if (reach.dom0) return reach;
    if (only !== undefined) reach.qubes.delete(only);
    // The engine drops internal qubes (and disposables of internal templates) from the offer.
    for (const n of [...reach.qubes]) if (pyTruthy(this.system.domains.get(n)?.internal)) reach.qubes.delete(n);
    for (const n of [...reach.disposables]) if (pyTruthy(this.system.domains.get(n)?.internal)) reach.disposables.delete(n);
    return reach;
  }
}

/** What the reach of a rule says about one service. */
export type ProvidedVerdict =
  /** Some reachable qube advertises the service, or the answer is unknown (dom0, an unknown qube, nothing reached). */
  | { provided: true }
  /** Every reachable qube advertises its services and none of them this one. */
  | { provided: false; qubes: string[] };

/** Whether a service is provided by some qube of a rule's reach (see {@link ProvidedVerdict}). */
export function providedIn(system: SystemInfo, reach: RuleReach, service: string): ProvidedVerdict {
  if (reach.decided || reach.dom0 || (reach.qubes.size === 0 && reach.disposables.size === 0)) return { provided: true };
  for (const set of [reach.qubes, reach.disposables]) {
    for (const n of set) {
      const services = supportedRpc(system, n);
      if (services === null || services.has(service)) return { provided: true };
    }
  }
  // A disposable provides what its template does: the message names the template.
  return { provided: false, qubes: [...new Set([...reach.qubes, ...reach.disposables])].sort() };
}

/** What a reach says for every service at once: unknown (dom0, an unknown qube, nothing), or the services its qubes advertise and the verdict for the others. */
type ReachSummary = { unknown: true } | { unknown: false; advertised: Set<string>; verdict: ProvidedVerdict & { provided: false } };
const summaries = new WeakMap<RuleReach, ReachSummary>();

/**
 * {@link providedIn} for many services of one reach: the union of the services its qubes advertise
 * is made once, and the verdict of the services outside it is one object (it names the qubes, not the service).
 */
function providedInSummary(system: SystemInfo, reach: RuleReach, service: string): ProvidedVerdict {
  let s = summaries.get(reach);
  if (!s) {
    if (reach.decided || reach.dom0 || (reach.qubes.size === 0 && reach.disposables.size === 0)) s = { unknown: true };
    else {
      const advertised = new Set<string>();
      let unknown = false;
      for (const set of [reach.qubes, reach.disposables]) {
        for (const n of set) {
          const services = supportedRpc(system, n);
          if (services === null) unknown = true;
          else for (const x of services) advertised.add(x);
        }
      }
      s = unknown ? { unknown: true } : { unknown: false, advertised, verdict: { provided: false, qubes: [...new Set([...reach.qubes, ...reach.disposables])].sort() } };
    }
    summaries.set(reach, s);
  }
  return s.unknown || s.advertised.has(service) ? PROVIDED : s.verdict;
}

/** The key of a rule's reach in {@link ReachContext.reach}: everything it looks at for a rule that is not an `ask` offer. */
function reachKey(rule: PolicyRule): string {
  // Rules that differ only where the reach does not look share it (the caller matters only for `@dispvm`).
  const redirect = rule.redirect;
  const byCaller = (redirect ?? rule.target).kind === "dispvm";
  return `${rule.action}\0${tokenKey(rule.target)}\0${redirect ? tokenKey(redirect) : ""}\0${byCaller ? tokenKey(rule.source) : ""}`;
}

/** True for an `ask` rule without `target=`: its calls end at what the dialog offers. */
export function isOffer(rule: PolicyRule): boolean {
  return rule.action === "ask" && !rule.redirect;
}

/** The key of an offer's verdict within its service: the argument and the source (what the offer depends on besides the feeders). */
function offerKey(rule: PolicyRule): string {
  return `${rule.argument ?? "\u0002"}\u0001${tokenKey(rule.source)}`;
}

/** True when two verdicts say the same. */
function sameVerdict(a: ProvidedVerdict, b: ProvidedVerdict): boolean {
  if (a === b) return true;
  if (a.provided || b.provided) return a.provided === b.provided;
  return a.qubes.length === b.qubes.length && a.qubes.every((q, i) => q === b.qubes[i]);
}

/** True when two lists of strings are equal (the same array, or the same strings in the same order). */
function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One service's rules within a run of rules, as the offers see them. */
interface RunService {
  /** Its non-deny rules, one per (argument, source, where the call goes): what feeds `ask` offers. */
  feeders: PolicyRule[];
  /** The feeders as text: two runs with the same key feed the same offers. */
  key: string;
  /** Its `ask` rules without `target=`, one per (argument, source): the offers to decide. */
  askers: PolicyRule[];
}

/** A run of rules (see `FlatPolicy.segments`) grouped by concrete service, and its `*`-service feeders. */
interface RunGroups {
  services: Map<string, RunService>;
  star: RunService;
}

function groupRun(run: readonly PolicyRule[]): RunGroups {
  const services = new Map<string, RunService & { seen: Set<string>; asked: Set<string> }>();
  const star = { feeders: [] as PolicyRule[], key: "", askers: [] as PolicyRule[], seen: new Set<string>(), asked: new Set<string>() };
  for (const r of run) {
    let g = r.service === null ? star : services.get(r.service);
    if (!g) services.set(r.service!, (g = { feeders: [], key: "", askers: [], seen: new Set(), asked: new Set() }));
    if (r.action === "deny") continue;
    const feed = `${r.argument ?? "\u0002"}\u0001${tokenKey(r.source)}\u0001${tokenKey(r.redirect ?? r.target)}`;
    if (!g.seen.has(feed)) {
      g.seen.add(feed);
      g.feeders.push(r);
    }
    if (r.service !== null && isOffer(r)) {
      const k = offerKey(r);
      if (!g.asked.has(k)) {
        g.asked.add(k);
        g.askers.push(r);
      }
    }
  }
  const done = (g: RunService & { seen: Set<string> }): RunService => ({ feeders: g.feeders, key: [...g.seen].join("\u0003"), askers: g.askers });
  return { services: new Map([...services].map(([s, g]) => [s, done(g)])), star: done(star) };
}

/**
 * One service's offer verdicts and what they were computed from. A state object is replaced only
 * when a verdict changed, so findings computed from it stay valid while it is the current one.
 */
export interface ServiceProvided {
  /** The keys of the runs that hold the service's rules, in order. */
  keys: string[];
  /** The `*`-service keys they were computed with (the array {@link ProvidedAnalysis} holds while they are the same). */
  star: readonly string[];
  /** The verdicts of the service's `ask` offers, by argument and source. */
  offers: Map<string, ProvidedVerdict>;
}

/** What one run of {@link ProvidedAnalysis.update} found: the service's feeders now. */
interface ServiceNow {
  keys: string[];
  feeders: PolicyRule[][];
  askers: PolicyRule[][];
}

/**
 * The `service-not-provided` verdicts of a policy against one system model, kept from run to
 * run. A rule that is not an `ask` offer depends on itself and the model only (memoised by what
 * its reach looks at); an offer depends on the non-deny rules of its service and of the `*`
 * service (its feeders), so each service's offers are kept and computed again only when its
 * feeders change: after an edit of a rule of one service, that service's (an edit of a
 * `*`-service rule changes every service's, which are then computed service by service, in
 * steps). Runs of rules are grouped once, by a key that stays the same while the run's rules do.
 */
export class ProvidedAnalysis {
  readonly ctx: ReachContext;
  private readonly groups = new WeakMap<object, RunGroups>();
  private star: readonly string[] = [];
  private starFeeders: PolicyRule[][] = [];
  private readonly services = new Map<string, ServiceProvided>();
  private current = new Map<string, ServiceNow>();

  constructor(readonly system: SystemInfo) {
    this.ctx = new ReachContext(system);
  }

  /** The grouping of a run of rules (`key` stands for the run: the same key, the same rules but for their places). */
  private groupsOf(run: readonly PolicyRule[], key: object): { g: RunGroups; fresh: boolean } {
    let g = this.groups.get(key);
    if (g) return { g, fresh: false };
    this.groups.set(key, (g = groupRun(run)));
    return { g, fresh: true };
  }

  /**
   * Brings the verdicts up to date with a rule list given as runs (their concatenation), in steps:
   * it yields after grouping a few thousand new rules and after each service whose offers it
   * computes again (and inside a service with many). Dropping the steps half-way leaves a state
   * that the next update completes. `keyOf` gives the run's key (by default the run itself).
   */
  *update(runs: ReadonlyArray<readonly PolicyRule[]>, keyOf: (run: readonly PolicyRule[]) => object = (run) => run): Generator<void, void, void> {
    const groups: RunGroups[] = [];
    let work = 0;
    for (const run of runs) {
      const { g, fresh } = this.groupsOf(run, keyOf(run));
      groups.push(g);
      if (fresh && (work += run.length) >= 5000) {
        work = 0;
        yield;
      }
    }
    const star: string[] = [];
    const starFeeders: PolicyRule[][] = [];
    const now = new Map<string, ServiceNow>();
    for (const g of groups) {
      if (g.star.key !== "") {
        star.push(g.star.key);
        starFeeders.push(g.star.feeders);
      }
      for (const [service, rs] of g.services) {
        let n = now.get(service);
        if (!n) now.set(service, (n = { keys: [], feeders: [], askers: [] }));
        n.keys.push(rs.key);
        if (rs.feeders.length) n.feeders.push(rs.feeders);
        if (rs.askers.length) n.askers.push(rs.askers);
      }
    }
    if (!sameStrings(star, this.star)) this.star = star;
    this.starFeeders = starFeeders;
    this.current = now;
    for (const service of [...this.services.keys()]) if (!now.has(service)) this.services.delete(service);
    for (const [service, n] of now) {
      const st = this.services.get(service);
      if (st && st.star === this.star && sameStrings(st.keys, n.keys)) {
        st.keys = n.keys;
        continue;
      }
      const feeders = [...n.feeders, ...this.starFeeders];
      const offers = new Map<string, ProvidedVerdict>();
      let changed = st === undefined;
      let done = 0;
      for (const askers of n.askers) {
        for (const r of askers) {
          const k = offerKey(r);
          if (offers.has(k)) continue;
          let v = providedIn(this.system, this.ctx.offer(r, feeders), service);
          const old = st?.offers.get(k);
          if (old && sameVerdict(old, v)) v = old;
          else changed = true;
          offers.set(k, v);
          // A service with many offers is cut into steps too.
          if ((done += feeders.length) >= 20000) {
            done = 0;
            yield;
          }
        }
      }
      if (st && !changed) {
        // The same verdicts (the offers no current rule makes were dropped): findings made from `st` stand.
        st.keys = n.keys;
        st.star = this.star;
        st.offers = offers;
      } else this.services.set(service, { keys: n.keys, star: this.star, offers });
      yield;
    }
  }

  /** The state of a service after {@link ProvidedAnalysis.update} (findings made from it stand while it is the same object). */
  serviceState(service: string): ServiceProvided | undefined {
    return this.services.get(service);
  }

  /** The verdict of a non-deny rule of a concrete service of the rule list of the last complete update. */
  verdict(rule: PolicyRule): ProvidedVerdict {
    const service = rule.service!;
    if (isOffer(rule)) {
      // A rule whose target column matches no verified target decides nothing (the offer is shared
      // by the rules of the same argument and source, whatever their target column).
      if (!this.ctx.targetCanMatch(rule.target)) return PROVIDED;
      const k = offerKey(rule);
      const st = this.services.get(service);
      const v = st?.offers.get(k);
      if (v) return v;
      // Not computed by the update (a rule of another list): from the current feeders.
      const n = this.current.get(service);
      return providedIn(this.system, this.ctx.offer(rule, [...(n?.feeders ?? []), ...this.starFeeders]), service);
    }
    return providedInSummary(this.system, this.ctx.reach(rule), service);
  }
}

/** The verdict of a rule that decides no call, or whose calls may end at a provider. */
const PROVIDED: ProvidedVerdict = { provided: true };

/** The verdicts of each owner (a policy's analysis cache, or the system model for one-shot runs), per system model. */
const analyses = new WeakMap<object, ProvidedAnalysis>();

/**
 * The {@link ProvidedAnalysis} of a policy (its owner: the analysis cache that lives with it, or
 * `null` for one-shot runs, which share one per model) against a system model.
 */
export function providedAnalysis(owner: object | null, system: SystemInfo): ProvidedAnalysis {
  const key = owner ?? system;
  let a = analyses.get(key);
  if (!a || a.system !== system) analyses.set(key, (a = new ProvidedAnalysis(system)));
  return a;
}

/**
 * The verdict of every non-deny rule of a concrete service (by its index in `rules`; other rules
 * get `undefined`), computed at once (see {@link ProvidedAnalysis} for the incremental form).
 */
export function ruleVerdicts(system: SystemInfo, rules: readonly PolicyRule[]): Array<ProvidedVerdict | undefined> {
  const a = new ProvidedAnalysis(system);
  const steps = a.update([rules]);
  while (!steps.next().done);
  return rules.map((r) => (r.service === null || r.action === "deny" ? undefined : a.verdict(r)));
}
