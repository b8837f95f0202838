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
 * caller; deny rules are not subtracted, so this is a superset of the offer, which keeps the check
 * conservative). A rule that can reach dom0, or any unknown qube, is never reported.
 */
import type { DomainInfo, SystemInfo } from "../eval/types.js";
import type { PolicyRule } from "../loader/types.js";
import type { QubeToken } from "../syntax/tree.js";
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
    const v = system.domains.get(name)?.[SUPPORTED_RPC_KEY];
    set = Array.isArray(v) && v.every((s) => typeof s === "string") ? new Set(v as string[]) : null;
    byName.set(name, set);
  }
  return set;
}

/** True when some qube of the system model carries the `supported_rpc` key. */
export function hasSupportedRpc(system: SystemInfo): boolean {
  for (const [name, info] of system.domains) if (!name.startsWith("uuid:") && Array.isArray(info[SUPPORTED_RPC_KEY])) return true;
  return false;
}

/** Where calls of a rule can end: dom0, or existing qubes (a new disposable counts as its disposable template). */
export interface RuleReach {
  dom0: boolean;
  /** Qube names (no `uuid:` aliases) whose advertised services decide. */
  qubes: Set<string>;
}

/** Python truthiness of a GetSystemInfo value (`internal` may be `"1"`, `""`, `null`, a boolean). */
function truthy(v: unknown): boolean {
  return v !== null && v !== undefined && v !== "" && v !== false && v !== 0;
}

/**
 * The reach of rules against one system model and one policy; `ask` collections are memoised per
 * (service, argument, source token), so one context serves a whole analysis run.
 */
export class ReachContext {
  private readonly names: Array<[string, DomainInfo]> = [];
  private byService: Map<string | null, PolicyRule[]> | undefined;
  private readonly askMemo = new Map<string, RuleReach>();

  constructor(
    private readonly system: SystemInfo,
    private readonly rules: readonly PolicyRule[],
  ) {
    for (const [name, info] of system.domains) if (!name.startsWith("uuid:")) this.names.push([name, info]);
  }

  /** The qube names (no aliases) a source token matches: the callers of the rule that the model knows. */
  private sources(tok: QubeToken): Array<[string, DomainInfo]> {
    if (tok.kind === "dispvm-template" || tok.kind === "dispvm-tag") return [];
    return this.names.filter(([n, info]) => tokenMatchesQube(tok, n, info));
  }

  /** Adds an existing qube (by name or `uuid:` alias) to the reach. */
  private addQube(reach: RuleReach, key: string): void {
    const info = this.system.domains.get(key);
    if (!info) return;
    const name = typeof info.name === "string" ? info.name : key;
    if (isDom0ish(name) || info.type === "AdminVM") reach.dom0 = true;
    else reach.qubes.add(name);
  }

  /** Adds a new disposable of `template` (its services are the template's). */
  private addDisposable(reach: RuleReach, template: unknown, mustBeTemplate: boolean): void {
    if (typeof template !== "string" || template === "") return;
    const info = this.system.domains.get(template);
    if (!info || (mustBeTemplate && info.template_for_dispvms !== true)) return;
    this.addQube(reach, template);
  }

  private dispvmTemplatesTagged(tag: string): string[] {
    return this.names.filter(([, i]) => i.template_for_dispvms === true && Array.isArray(i.tags) && i.tags.includes(tag)).map(([n]) => n);
  }

  /** True when the target column can match some verified intended target. */
  private targetCanMatch(tok: QubeToken): boolean {
    switch (tok.kind) {
      case "name":
        return isDom0ish(tok.text) || this.system.domains.has(tok.text);
      case "type":
      case "tag":
        return this.names.some(([n, i]) => tokenMatchesQube(tok, n, i));
      case "dispvm-template":
        return this.system.domains.get(tok.value)?.template_for_dispvms === true;
      case "dispvm-tag":
        return this.dispvmTemplatesTagged(tok.value).length > 0;
      default:
        return true;
    }
  }

  /**
   * Adds the qubes a token names, as the target column of an allow verifies the intended target
   * (`intended`), or as `collect_targets_for_ask` expands it (`ask`).
   */
  private addToken(reach: RuleReach, tok: QubeToken, callers: Array<[string, DomainInfo]>): void {
    switch (tok.kind) {
      case "wildcard":
        reach.dom0 = true;
        for (const [n] of this.names) this.addQube(reach, n);
        return;
      case "anyvm":
        for (const [n, i] of this.names) if (!isDom0ish(n) && i.type !== "AdminVM") this.addQube(reach, n);
        return;
      case "adminvm":
        reach.dom0 = true;
        return;
      case "name":
        if (isDom0ish(tok.text)) reach.dom0 = true;
        else this.addQube(reach, tok.text);
        return;
      case "type":
      case "tag":
        for (const [n, i] of this.names) if (tokenMatchesQube(tok, n, i)) this.addQube(reach, n);
        return;
      case "default":
        return;
      case "dispvm":
        for (const [, i] of callers) this.addDisposable(reach, i.default_dispvm, false);
        return;
      case "dispvm-template":
        this.addDisposable(reach, tok.value, true);
        return;
      case "dispvm-tag":
        for (const n of this.dispvmTemplatesTagged(tok.value)) this.addQube(reach, n);
        return;
    }
  }

  /** Where the calls a rule decides can end (empty for deny rules and rules that never match). */
  reach(rule: PolicyRule): RuleReach {
    const reach: RuleReach = { dom0: false, qubes: new Set() };
    if (rule.action === "deny" || !this.targetCanMatch(rule.target)) return reach;
    const callers = this.sources(rule.source);
    const redirect = rule.redirect;
    if (redirect) {
      if (redirect.kind === "dispvm-template") this.addDisposable(reach, redirect.value, rule.action === "allow");
      else this.addToken(reach, redirect, callers);
      return reach;
    }
    if (rule.action === "allow") {
      this.addToken(reach, rule.target, callers);
      return reach;
    }
    return this.askOffer(rule, callers);
  }

  /** A superset of what `collect_targets_for_ask` offers the rule's callers (deny rules not subtracted, callers not removed). */
  private askOffer(rule: PolicyRule, callers: Array<[string, DomainInfo]>): RuleReach {
    const key = `${rule.service ?? "*"}\0${rule.argument ?? "*"}\0${tokenKey(rule.source)}`;
    const memo = this.askMemo.get(key);
    if (memo) return memo;
    const reach: RuleReach = { dom0: false, qubes: new Set() };
    if (!this.byService) {
      this.byService = new Map();
      for (const r of this.rules) {
        if (r.action === "deny") continue;
        let list = this.byService.get(r.service);
        if (!list) this.byService.set(r.service, (list = []));
        list.push(r);
      }
    }
    const candidates = rule.service === null ? this.rules.filter((r) => r.action !== "deny") : [...(this.byService.get(rule.service) ?? []), ...(this.byService.get(null) ?? [])];
    for (const q of candidates) {
      if (q.service !== null && rule.service !== null && q.service !== rule.service) continue;
      if (q.argument !== null && rule.argument !== null && q.argument !== rule.argument) continue;
      const both = callers.filter(([n, i]) => tokenMatchesQube(q.source, n, i));
      if (both.length === 0) continue;
      this.addToken(reach, q.redirect ?? q.target, both);
    }
    // The engine drops internal qubes (and disposables of internal templates) from the offer.
    for (const n of [...reach.qubes]) if (truthy(this.system.domains.get(n)?.internal)) reach.qubes.delete(n);
    this.askMemo.set(key, reach);
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
  if (reach.dom0 || reach.qubes.size === 0) return { provided: true };
  for (const n of reach.qubes) {
    const set = supportedRpc(system, n);
    if (set === null || set.has(service)) return { provided: true };
  }
  return { provided: false, qubes: [...reach.qubes].sort() };
}
