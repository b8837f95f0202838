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
 * The reach of rules against one system model and one policy. Callers per source token, token
 * expansions, reaches and `ask` offers are memoised, so one context serves a whole analysis run.
 */
export class ReachContext {
  private readonly names: string[];
  private readonly infos: DomainInfo[];
  private byService: Map<string | null, PolicyRule[]> | undefined;
  private readonly askMemo = new Map<string, RuleReach>();
  private readonly reachMemo = new Map<string, RuleReach>();
  // What depends on the system model only is shared by the runs over the same model.
  private readonly callerMemo: Map<string, Callers>;
  private readonly expansionMemo: Map<string, Expansion>;
  private readonly providerMemo: Map<string, boolean>;

  constructor(
    private readonly system: SystemInfo,
    private readonly rules: readonly PolicyRule[],
  ) {
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
  private targetCanMatch(tok: QubeToken): boolean {
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
        break;
      case "anyvm":
        for (let i = 0; i < this.names.length; i++) if (!isDom0ish(this.names[i]!) && this.infos[i]!.type !== "AdminVM") this.addQube(reach, this.names[i]!);
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

  /** Where the calls a rule decides can end (empty for deny rules and rules that never match). */
  reach(rule: PolicyRule): RuleReach {
    // Rules that differ only where the reach does not look share it (the caller matters only for
    // `@dispvm` and ask offers; service and argument only for ask offers).
    const redirect = rule.redirect;
    const offer = rule.action === "ask" && !redirect;
    const byCaller = offer || (redirect ?? rule.target).kind === "dispvm";
    const key = `${rule.action}\0${tokenKey(rule.target)}\0${redirect ? tokenKey(redirect) : ""}\0${byCaller ? tokenKey(rule.source) : ""}\0${offer ? `${rule.service ?? "*"}\0${rule.argument ?? "*"}` : ""}`;
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
    return this.askOffer(rule);
  }

  /** A superset of what `collect_targets_for_ask` offers the rule's callers (deny rules not subtracted; callers removed only when there is one). */
  private askOffer(rule: PolicyRule): RuleReach {
    const key = `${rule.service ?? "*"}\0${rule.argument ?? "*"}\0${tokenKey(rule.source)}`;
    const memo = this.askMemo.get(key);
    if (memo) return memo;
    const reach: RuleReach = { dom0: false, qubes: new Set(), disposables: new Set() };
    this.askMemo.set(key, reach);
    if (!this.byService) {
      this.byService = new Map();
      for (const r of this.rules) {
        if (r.action === "deny") continue;
        let list = this.byService.get(r.service);
        if (!list) this.byService.set(r.service, (list = []));
        list.push(r);
      }
    }
    const mine = this.callers(rule.source);
    if (mine.list.length === 0) return reach;
    // One caller: the engine never offers the caller itself (with several, each offers the others).
    const only = mine.list.length === 1 && !isDom0ish(this.names[mine.list[0]!]!) && this.infos[mine.list[0]!]!.type !== "AdminVM" ? this.names[mine.list[0]!] : undefined;
    const lists = rule.service === null ? [...this.byService.values()] : [this.byService.get(rule.service) ?? [], this.byService.get(null) ?? []];
    // A token that does not depend on the caller adds the same qubes each time: once is enough.
    const added = new Set<string>();
    for (const list of lists) {
      for (const q of list) {
        if (reach.dom0) break; // the verdict is decided: dom0 is never reported
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

/** What decides a rule's verdict: everything {@link ReachContext.reach} looks at, as text. */
function signature(r: PolicyRule): string {
  let s = signatures.get(r);
  if (s === undefined) {
    s = `${r.action}\0${r.service ?? "*"}\0${r.argument ?? "*"}\0${tokenKey(r.source)}\0${tokenKey(r.target)}\0${r.redirect ? tokenKey(r.redirect) : ""}`;
    signatures.set(r, s);
  }
  return s;
}
const signatures = new WeakMap<PolicyRule, string>();

/** True when a signature is that of an `ask` rule without `target=` (its verdict depends on the offer). */
function isOffer(sig: string): boolean {
  return sig.startsWith("ask\0") && sig.endsWith("\0");
}

/** One service's verdicts, with the rules they were computed from (as signatures). */
interface ServiceVerdicts {
  /** The service's own rules' signatures, in policy order. */
  sigs: string[];
  /** The `*`-service rules' signatures when computed. */
  star: string[];
  /** Per rule of the service, in policy order: its verdict (deny rules: none). */
  verdicts: Array<ProvidedVerdict | undefined>;
}

/** The verdicts per service, for as long as the system model lives. */
const verdictCache = new WeakMap<SystemInfo, Map<string, ServiceVerdicts>>();

/** True when two lists of signatures are the same (a rule object that did not change gives the same string object). */
function sameSigs(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The verdict of every non-deny rule of a concrete service (by its index in `rules`; other rules
 * get `undefined`). A rule's verdict depends on the system model, on the rule, and (for `ask`
 * offers) on the other rules of its service and the `*`-service rules; so the verdicts of a
 * service are kept with the model and reused while those rules have the same texts in the same
 * order. After a one-line edit only the edited line's service is computed again (every service
 * when the edited rule is a `*`-service rule).
 */
export function ruleVerdicts(system: SystemInfo, rules: readonly PolicyRule[]): Array<ProvidedVerdict | undefined> {
  let cache = verdictCache.get(system);
  if (!cache) verdictCache.set(system, (cache = new Map()));
  const byService = new Map<string, { at: number[]; sigs: string[] }>();
  let star: string[] = [];
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (r.service === null) {
      star.push(signature(r));
      continue;
    }
    let list = byService.get(r.service);
    if (!list) byService.set(r.service, (list = { at: [], sigs: [] }));
    list.at.push(i);
    list.sigs.push(signature(r));
  }
  const out = new Array<ProvidedVerdict | undefined>(rules.length);
  let ctx: ReachContext | undefined;
  for (const [service, { at, sigs }] of byService) {
    let entry = cache.get(service);
    if (entry && sameSigs(entry.star, star)) star = entry.star; // share the list: the next comparison is one check
    if (!entry || entry.star !== star || !sameSigs(entry.sigs, sigs)) {
      // A rule that is not an `ask` offer depends on itself and the model only: its previous
      // verdict (by signature) stands; offers are computed again.
      const reuse = new Map<string, ProvidedVerdict>();
      if (entry) for (let k = 0; k < entry.sigs.length; k++) if (entry.verdicts[k] && !isOffer(entry.sigs[k]!)) reuse.set(entry.sigs[k]!, entry.verdicts[k]!);
      const verdicts = at.map((i, k) => {
        const r = rules[i]!;
        if (r.action === "deny") return undefined;
        const kept = r.action === "ask" && !r.redirect ? undefined : reuse.get(sigs[k]!);
        if (kept) return kept;
        ctx ??= new ReachContext(system, rules);
        return providedIn(system, ctx.reach(r), service);
      });
      cache.set(service, (entry = { sigs, star, verdicts }));
    }
    for (let k = 0; k < at.length; k++) out[at[k]!] = entry.verdicts[k];
  }
  // Services no longer in the policy are forgotten.
  if (cache.size > byService.size) for (const service of [...cache.keys()]) if (!byService.has(service)) cache.delete(service);
  return out;
}
