/**
 * What-if: what the qrexec policy will decide once a stack is applied,
 * before anything changes. Builds the future system model and policy
 * directory ({@link futureSystem}, {@link futurePolicy}), checks every
 * `expect:` entry of the stack against them with the language core's
 * `evaluate`/`explain`, and lists every decision that changes between today
 * and after apply ({@link decisionChanges}).
 */
import {
  checkExpectation as expectationProblem,
  callerDispvm,
  createMemoryFileSystem,
  evaluate,
  explain,
  printRule,
  loadPolicy,
  prepareSystemInfo,
  type CompiledPolicy,
  type Decision,
  type DomainInfo,
  type Expectation,
  type Explanation,
  type PolicyError,
  type PolicyRule,
  type QubeToken,
  type RawSystemInfo,
  type StackModel,
  type SystemInfo,
} from "@qubes-kit/language";
import { futurePolicy, futureSystem, type PolicyTexts, type WhatIfSystem } from "./future.js";

/** A decision reduced to what a caller gets: the action and its targets (the deciding rule aside). */
export type Outcome =
  | { action: "allow"; target: string; user: string | null; autostart: boolean }
  /** `targets` is sorted; it is left out in the `before`/`after` of an ask → ask change (see `added`, `removed`). */
  | { action: "ask"; targets?: string[]; default: string | null; user: string | null }
  | { action: "deny"; reason: string };

/** One request whose decision changes. */
export interface DecisionChange {
  service: string;
  /** `+ARG`, or `*` for every argument no rule names. */
  argument: string;
  source: string;
  target: string;
  /** `grant`: more is allowed than today; `revoke`: less; `change`: neither (another target, user or default). */
  kind: "grant" | "revoke" | "change";
  before: Outcome;
  after: Outcome;
  /** ask → ask: targets offered after apply only, and today only. */
  added?: string[];
  removed?: string[];
}

/** The changes of one service (`*` stands for every service no rule names). */
export interface ServiceChanges {
  service: string;
  changes: DecisionChange[];
}

/** The outcome of one `expect:` entry. */
export interface ExpectationResult {
  expectation: Expectation;
  ok: boolean;
  /** The expectation as one line (`qubes.Gpg2 work -> @default => ask vault-gpg`). */
  text: string;
  /** What went wrong, one line, when not ok. */
  problem?: string;
  decision?: Decision;
  explanation?: Explanation;
}

/** Inputs of {@link whatIf}. */
export interface WhatIfInput {
  /** The live system model (GetSystemInfo, optionally with the extension keys of `future.ts`). */
  system: WhatIfSystem;
  /** The live policy directory (`NAME.policy`, `include/NAME` → text). */
  policy: PolicyTexts;
  stack: StackModel;
  /** Who applies (default `dom0`). */
  applier?: string;
  /** Skip the decision diff (expectations only). */
  skipChanges?: boolean;
  /** Calls to decide today and after apply (`qkit template whatif --call`). */
  calls?: Array<Pick<Expectation, "service" | "argument" | "source" | "target">>;
}

/** One call asked about: its decision today and once the stack is applied. */
export interface CallResult {
  /** `SERVICE[+ARG] SOURCE -> TARGET`. */
  text: string;
  /** Undefined when that policy does not load (every call is denied). */
  today?: Decision;
  after?: Decision;
  /** How the future policy decides it. */
  explanation?: Explanation;
}

/** The what-if report. */
export interface WhatIfReport {
  stack: string;
  future: { system: WhatIfSystem; policy: PolicyTexts };
  /** Policies that do not load (today or after apply): every call is denied. */
  loadErrors: { when: "today" | "future"; error: PolicyError }[];
  expectations: ExpectationResult[];
  changes: ServiceChanges[];
  /** The calls asked about ({@link WhatIfInput.calls}), in order. */
  calls: CallResult[];
  /** False when the decision changes were not computed (`skipChanges`, or a policy that does not load). */
  changesComputed: boolean;
  /** Every expectation holds and the future policy loads. */
  ok: boolean;
}

/** A request universe statistic, for callers that want to show the work done. */
export interface DiffStats {
  services: number;
  requests: number;
  evaluated: number;
  /** The most classes of interchangeable qubes of any service (one representative of each is evaluated). */
  classes: number;
}

function load(texts: PolicyTexts): { policy: CompiledPolicy } | { error: PolicyError } {
  const r = loadPolicy(createMemoryFileSystem(texts));
  return r.ok ? { policy: r.policy } : { error: r.error };
}

/** A decision as an {@link Outcome}. */
export function outcomeOf(d: Decision): Outcome {
  if (!d.ok) return { action: "deny", reason: `${d.error}: ${d.message}` };
  switch (d.action) {
    case "allow":
      return { action: "allow", target: d.target, user: d.user, autostart: d.autostart };
    case "ask":
      // The evaluator's lists are sorted already (code point order, as the engine sorts): shared, not copied, then.
      return { action: "ask", targets: isSorted(d.targetsForAsk) ? d.targetsForAsk : [...d.targetsForAsk].sort(), default: d.defaultTarget, user: d.user };
    case "deny":
      return { action: "deny", reason: `${d.rule.file}:${d.rule.line ?? "None"}` };
  }
}

function isSorted(list: readonly string[]): boolean {
  for (let i = 1; i < list.length; i++) if (list[i - 1]! > list[i]!) return false;
  return true;
}

function sameOutcome(a: Outcome, b: Outcome): boolean {
  if (a.action !== b.action) return false;
  if (a.action === "deny") return true;
  if (a.action === "allow") {
    const y = b as typeof a;
    return a.target === y.target && a.user === y.user && a.autostart === y.autostart;
  }
  const y = b as typeof a;
  const at = a.targets ?? [];
  const bt = y.targets ?? [];
  return a.default === y.default && a.user === y.user && at.length === bt.length && at.every((t, i) => t === bt[i]);
}

/** Grant, revoke or change, with the ask targets gained and lost. */
function classify(before: Outcome, after: Outcome): Pick<DecisionChange, "kind" | "added" | "removed"> {
  const rank = { deny: 0, ask: 1, allow: 2 } as const;
  if (before.action !== after.action) return { kind: rank[after.action] > rank[before.action] ? "grant" : "revoke" };
  if (before.action === "ask" && after.action === "ask") {
    const b = new Set(before.targets);
    const a = new Set(after.targets);
    const added = (after.targets ?? []).filter((t) => !b.has(t));
    const removed = (before.targets ?? []).filter((t) => !a.has(t));
    const kind = added.length && !removed.length ? "grant" : removed.length && !added.length ? "revoke" : "change";
    const out: Pick<DecisionChange, "kind" | "added" | "removed"> = { kind };
    if (added.length) out.added = added;
    if (removed.length) out.removed = removed;
    return out;
  }
  return { kind: "change" };
}

function permuteName(n: string, pi: (x: string) => string): string {
  if (n.startsWith("@dispvm:") && !n.startsWith("@dispvm:@")) return "@dispvm:" + pi(n.slice(8));
  return pi(n);
}

function permuteOutcome(o: Outcome, pi: (x: string) => string): Outcome {
  if (o.action === "allow") return { ...o, target: permuteName(o.target, pi) };
  if (o.action === "ask") {
    const out: Outcome = { ...o, default: o.default === null ? null : permuteName(o.default, pi) };
    if (o.targets) out.targets = o.targets.map((t) => permuteName(t, pi)).sort(sortStr);
    return out;
  }
  return o;
}

const IGNORED_KEYS = new Set(["uuid", "icon", "label", "name", "properties", "features", "template"]);

function signatureOf(d: DomainInfo | undefined): string {
  if (!d) return "-";
  const keys = Object.keys(d)
    .filter((k) => !IGNORED_KEYS.has(k))
    .sort();
  return JSON.stringify(keys.map((k) => [k, k === "tags" && Array.isArray(d[k]) ? [...(d[k] as string[])].sort() : d[k]]));
}

/** Names (and uuids) a policy's rules name literally. */
function namedInRules(rules: readonly PolicyRule[], names: Set<string>, uuids: Set<string>): void {
  const add = (t: QubeToken | null) => {
    if (!t) return;
    if (t.kind === "name" || t.kind === "dispvm-template") {
      if (t.value.startsWith("uuid:")) uuids.add(t.value.slice(5));
      else names.add(t.value);
    }
  };
  for (const r of rules) {
    add(r.source);
    add(r.target);
    add(r.redirect);
    add(r.defaultTarget);
  }
}

function sortStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A name not in `taken`, starting from `base`. */
function fresh(base: string, taken: Set<string>): string {
  let n = base;
  for (let i = 2; taken.has(n); i++) n = `${base}${i}`;
  return n;
}

/**
 * Every qrexec decision that differs between two (policy, system) pairs,
 * over the services named in either policy (plus one stand-in for every
 * other service when a `*` service rule exists), every argument named for
 * them (plus one stand-in for every other argument), every qube of either
 * system as source, and as target `@default`, every qube, `@dispvm`,
 * `@dispvm:X` for every disposable template of either system, and
 * `@adminvm`. A call from or to a qube that does not exist on one side
 * (created or removed by the apply) is {@link NO_SUCH_QUBE} there, not what
 * the engine would make of an unknown name (it turns an unknown target into
 * `@default`).
 *
 * Exact with respect to the evaluator: qubes that no rule names, that are
 * nobody's `default_dispvm`, no disposable template, and whose decision-
 * relevant data (class, tags, `default_dispvm`, `internal`, power state, …)
 * is the same today and after are interchangeable, so one representative of
 * each such class is evaluated and the result carried to the others by
 * renaming (the evaluator treats names it does not match literally alike).
 */
export function decisionChanges(
  today: { policy: CompiledPolicy; system: RawSystemInfo },
  future: { policy: CompiledPolicy; system: RawSystemInfo },
  stats?: DiffStats,
  /** Only these services (a caller that knows the others cannot change); not the `*` representative. */
  only?: ReadonlySet<string>,
  /** Stops the diff once this says so of a change found (the changes found up to it are returned). */
  stop?: (c: DecisionChange) => boolean,
): ServiceChanges[] {
  const rulesT = today.policy.rules;
  const rulesF = future.policy.rules;
  const sysT = prepareSystemInfo(today.system);
  const sysF = prepareSystemInfo(future.system);
  const domT = today.system.domains ?? {};
  const domF = future.system.domains ?? {};
  const qubes = [...new Set([...Object.keys(domT), ...Object.keys(domF)].filter((n) => !n.startsWith("uuid:")))].sort(sortStr);

  // Services and arguments.
  const services = new Set<string>();
  let anyService = false;
  const argsOf = new Map<string, Set<string>>();
  const wildArgs = new Set<string>();
  for (const r of [...rulesT, ...rulesF]) {
    if (r.service === null) anyService = true;
    else services.add(r.service);
    if (r.argument !== null) {
      if (r.service === null) wildArgs.add(r.argument);
      else {
        let s = argsOf.get(r.service);
        if (!s) argsOf.set(r.service, (s = new Set()));
        s.add(r.argument);
      }
    }
  }
  const serviceList: { request: string; shown: string }[] = [...services]
    .filter((s) => !only || only.has(s))
    .sort(sortStr)
    .map((s) => ({ request: s, shown: s }));
  if (anyService && !only) serviceList.push({ request: fresh("qkit.AnyOtherService", services), shown: "*" });

  // Qube classes. A qube named by a rule is told apart from the others only
  // for the services of that rule (a decision reads the rules of its service
  // and the `*` ones), so the names are collected per service.
  const named = new Set<string>(["dom0"]);
  const namedUuids = new Set<string>();
  const namedBy = new Map<string | null, Set<string>>();
  for (const r of [...rulesT, ...rulesF]) {
    let set = namedBy.get(r.service);
    if (!set) namedBy.set(r.service, (set = new Set()));
    namedInRules([r], set, namedUuids);
  }
  const dispTemplates = new Set<string>();
  for (const dom of [domT, domF])
    for (const [n, d] of Object.entries(dom)) {
      if (!d) continue;
      if (typeof d.default_dispvm === "string") named.add(d.default_dispvm);
      if (typeof d.relayvm === "string") named.add(d.relayvm);
      if (d.template_for_dispvms) {
        named.add(n);
        dispTemplates.add(n);
      }
      if (typeof d.uuid === "string" && namedUuids.has(d.uuid)) named.add(n);
      if (d.type === "AdminVM") named.add(n);
    }
  const signature = new Map(qubes.map((q) => [q, signatureOf(domT[q]) + "|" + signatureOf(domF[q])]));
  const classesFor = (service: string): string[][] => {
    const own = namedBy.get(service);
    const any = namedBy.get(null);
    const classOf = new Map<string, string[]>();
    for (const q of qubes) {
      const key = named.has(q) || own?.has(q) || any?.has(q) ? `=${q}` : signature.get(q)!;
      let c = classOf.get(key);
      if (!c) classOf.set(key, (c = []));
      c.push(q);
    }
    return [...classOf.values()];
  };
  let maxClasses = 0;

  const specialTargets = ["@default", "@dispvm", ...[...dispTemplates].sort(sortStr).map((t) => `@dispvm:${t}`), "@adminvm"];
  const out: ServiceChanges[] = [];
  let evaluated = 0;
  let requests = 0;

  // Qubes whose decision-relevant data differ (created and removed ones included).
  const changedQubes = new Set(qubes.filter((q) => { const [a, b] = signature.get(q)!.split("|"); return a !== b; }));
  const rulesOf = (rules: readonly PolicyRule[], service: string) => rules.filter((r) => r.service === service || r.service === null);
  // The services whose rules read differently today and after (all of them when the `*` rules do).
  const differ = servicesThatDiffer(rulesT, rulesF);

  let changes: DecisionChange[] = [];
  const flush = (svc: { shown: string }) => {
    if (!changes.length) return;
    changes.sort((a, b) => sortStr(a.argument, b.argument) || sortStr(a.source, b.source) || sortStr(a.target, b.target));
    out.push({ service: svc.shown, changes });
  };
  for (const svc of serviceList) {
    changes = [];
    try {
      diffService(svc);
    } catch (e) {
      if (e !== STOP) throw e;
      flush(svc);
      break;
    }
    flush(svc);
  }
  if (stats) {
    stats.services = serviceList.length;
    stats.requests = requests;
    stats.evaluated = evaluated;
    stats.classes = maxClasses;
  }
  return out;

  function diffService(svc: { request: string; shown: string }): void {
    const classes = classesFor(svc.request);
    // A service whose rules are the same today and after, with no ask rule and no
    // named qube or disposable template changed, decides a call differently only
    // when its source or its target changed: the other pairs are not evaluated.
    const stable =
      differ !== undefined &&
      !differ.has(svc.request) &&
      !rulesOf(rulesT, svc.request).some((r) => r.action === "ask") &&
      ![...changedQubes].some((q) => named.has(q) || namedBy.get(svc.request)?.has(q) || namedBy.get(null)?.has(q));
    const touched = (c: string[]) => changedQubes.has(c[0]!);
    maxClasses = Math.max(maxClasses, classes.length);
    const namedArgs = new Set([...(argsOf.get(svc.request) ?? []), ...wildArgs]);
    const args = [...namedArgs].sort(sortStr).map((a) => ({ request: a, shown: a }));
    args.push({ request: namedArgs.has("+") ? fresh("+qkit-any-other-argument", namedArgs) : "+", shown: "*" });
    for (const arg of args) {
      const decide = (source: string, target: string): { before: Outcome; after: Outcome } => {
        evaluated++;
        const req = { service: svc.request, argument: arg.request, source, target };
        return {
          before: missing(source, target, domT) ?? outcomeOf(evaluate(today.policy, req, sysT)),
          after: missing(source, target, domF) ?? outcomeOf(evaluate(future.policy, req, sysF)),
        };
      };
      type Decided = { before: Outcome; after: Outcome; changed: boolean; cls?: Pick<DecisionChange, "kind" | "added" | "removed">; bareBefore?: Outcome; bareAfter?: Outcome };
      const judge = (d: { before: Outcome; after: Outcome }): Decided => {
        const changed = !sameOutcome(d.before, d.after);
        // Most pairs do not change: one shared answer for them (callers read only `changed`).
        if (!changed) return UNCHANGED;
        const out: Decided = { ...d, changed, cls: classify(d.before, d.after) };
        if (d.before.action === "ask" && d.after.action === "ask") {
          out.bareBefore = { action: "ask", default: d.before.default, user: d.before.user };
          out.bareAfter = { action: "ask", default: d.after.default, user: d.after.user };
        }
        return out;
      };
      // A change carried to a member pair: ask → ask changes carry only the
      // targets gained and lost (small), the others their outcomes renamed.
      const record = (source: string, target: string, d: Decided, pi: (x: string) => string) => {
        const { before, after, cls } = d;
        if (!cls) return;
        if (before.action === "ask" && after.action === "ask") {
          // Most members rename nothing in these few names: the representative's objects are shared then.
          const c: DecisionChange = {
            service: svc.shown,
            argument: arg.shown,
            source,
            target,
            kind: cls.kind,
            before: renamesNone(before.default, pi) ? d.bareBefore! : { action: "ask", default: permuteName(before.default!, pi), user: before.user },
            after: renamesNone(after.default, pi) ? d.bareAfter! : { action: "ask", default: permuteName(after.default!, pi), user: after.user },
          };
          if (cls.added) c.added = cls.added.every((t) => renamesNone(t, pi)) ? cls.added : cls.added.map((t) => permuteName(t, pi)).sort(sortStr);
          if (cls.removed) c.removed = cls.removed.every((t) => renamesNone(t, pi)) ? cls.removed : cls.removed.map((t) => permuteName(t, pi)).sort(sortStr);
          changes.push(c);
          if (stop?.(c)) throw STOP;
          return;
        }
        const c: DecisionChange = { service: svc.shown, argument: arg.shown, source, target, kind: cls.kind, before: permuteOutcome(before, pi), after: permuteOutcome(after, pi) };
        changes.push(c);
        if (stop?.(c)) throw STOP;
      };
      const swap = (a: string, b: string) => (x: string) => (x === a ? b : x === b ? a : x);
      for (const sc of classes) {
        const rs = sc[0]!;
        requests += sc.length * (specialTargets.length + qubes.length);
        // Special targets: one evaluation per source class.
        for (const t of stable && !touched(sc) ? [] : specialTargets) {
          const d = judge(decide(rs, t));
          if (!d.changed) continue;
          for (const s of sc) record(s, t, d, swap(rs, s));
        }
        for (const tc of classes) {
          const rt = tc[0]!;
          if (stable && !touched(sc) && !touched(tc)) continue;
          if (sc === tc) {
            // The source itself as target, and (for classes of two or more) another member.
            const same = judge(decide(rs, rs));
            if (same.changed) for (const s of sc) record(s, s, same, swap(rs, s));
            if (sc.length < 2) continue;
            const other = sc[1]!;
            const diff = judge(decide(rs, other));
            if (!diff.changed) continue;
            for (const s of sc)
              for (const t of sc) {
                if (s === t) continue;
                record(s, t, diff, transpositions(rs, s, other, t));
              }
            continue;
          }
          const d = judge(decide(rs, rt));
          if (!d.changed) continue;
          for (const s of sc) for (const t of tc) record(s, t, d, transpositions(rs, s, rt, t));
        }
      }
    }
  }
}

/** Thrown inside {@link decisionChanges} when its `stop` says so. */
const STOP: unique symbol = Symbol("stop");

/** The answer of a pair whose decision does not change (its outcomes are not read). */
const UNCHANGED: { before: Outcome; after: Outcome; changed: false } = { before: { action: "deny", reason: "" }, after: { action: "deny", reason: "" }, changed: false };

/** Whether a renaming leaves a name (or `@dispvm:NAME`, or no name) as it is. */
function renamesNone(n: string | null, pi: (x: string) => string): boolean {
  return n === null || permuteName(n, pi) === n;
}

/** The outcome of a call from or to a qube that does not exist on that side (before it is created, after it is removed). */
export const NO_SUCH_QUBE: Extract<Outcome, { action: "deny" }> = { action: "deny", reason: "no such qube" };

function missing(source: string, target: string, dom: Record<string, DomainInfo>): Outcome | undefined {
  if (!(source in dom)) return NO_SUCH_QUBE;
  const t = target.startsWith("@dispvm:") ? target.slice(8) : target;
  if (!t.startsWith("@") && !(t in dom)) return NO_SUCH_QUBE;
  return undefined;
}

/**
 * The renaming that maps the evaluated pair (`rs`, `rt`) onto (`s`, `t`):
 * the transposition (rs s) followed by (τ₁(rt) t). Both stay inside the
 * classes, and rs ≠ rt, s ≠ t give π(rs) = s, π(rt) = t.
 */
function transpositions(rs: string, s: string, rt: string, t: string): (x: string) => string {
  const t1 = (x: string) => (x === rs ? s : x === s ? rs : x);
  const m = t1(rt);
  const t2 = (x: string) => (x === m ? t : x === t ? m : x);
  return (x: string) => t2(t1(x));
}

/** An expectation as one line. */
export function expectationText(e: Expectation): string {
  const call = `${e.service}${e.argument && e.argument !== "+" ? e.argument : ""} ${e.source} -> ${e.target}`;
  let want: string = e.decision;
  if (e.target_is) want += ` ${e.target_is}`;
  if (e.targets_include) want += ` (offering ${e.targets_include.join(", ")})`;
  if (e.targets_exact) want += ` (offering exactly ${e.targets_exact.join(", ")})`;
  return `${call} => ${want}`;
}

/** Checks one expectation against a loaded policy and system. */
export function checkExpectation(e: Expectation, policy: CompiledPolicy | undefined, system: SystemInfo, loadError?: PolicyError): ExpectationResult {
  const text = expectationText(e);
  if (!policy) {
    const ok = e.decision === "deny";
    return ok ? { expectation: e, ok, text } : { expectation: e, ok, text, problem: `the policy does not load, so every call is denied: ${loadError?.message ?? "unknown error"}` };
  }
  const req = { service: e.service, argument: e.argument === "" ? "+" : e.argument, source: e.source, target: e.target };
  const x = explain(policy, req, system);
  const d = x.decision;
  // One definition of "the expectation holds", shared with `qkit policy test`.
  const problem = expectationProblem(e, d, callerDispvm(system, e.source));
  return problem !== undefined ? { expectation: e, ok: false, text, problem, decision: d, explanation: x } : { expectation: e, ok: true, text, decision: d, explanation: x };
}

/** Runs what-if: future system and policy, expectations, decision changes. */
export function whatIf(input: WhatIfInput, stats?: DiffStats): WhatIfReport {
  const system = futureSystem(input.system, input.stack, input.applier ? { applier: input.applier } : {});
  const policy = futurePolicy(input.policy, input.stack);
  const today = load(input.policy);
  const after = load(policy);
  const loadErrors: WhatIfReport["loadErrors"] = [];
  if ("error" in today) loadErrors.push({ when: "today", error: today.error });
  if ("error" in after) loadErrors.push({ when: "future", error: after.error });
  const sysF = prepareSystemInfo(system);
  const expectations = input.stack.expect.map((e) => checkExpectation(e, "policy" in after ? after.policy : undefined, sysF, "error" in after ? after.error : undefined));
  const sysToday = input.calls?.length ? prepareSystemInfo(input.system) : undefined;
  const calls: CallResult[] = (input.calls ?? []).map((c) => {
    const req = { service: c.service, argument: c.argument === "" ? "+" : c.argument, source: c.source, target: c.target };
    const out: CallResult = { text: `${c.service}${c.argument} ${c.source} -> ${c.target}` };
    if ("policy" in today) out.today = explain(today.policy, req, sysToday!).decision;
    if ("policy" in after) {
      const x = explain(after.policy, req, sysF);
      out.after = x.decision;
      out.explanation = x;
    }
    return out;
  });
  let changes: ServiceChanges[] = [];
  const changesComputed = !input.skipChanges && "policy" in today && "policy" in after;
  if (changesComputed) changes = decisionChanges({ policy: today.policy, system: input.system }, { policy: after.policy, system }, stats);
  return {
    stack: input.stack.stack,
    future: { system, policy },
    loadErrors,
    expectations,
    changes,
    calls,
    changesComputed,
    ok: expectations.every((e) => e.ok) && !loadErrors.some((l) => l.when === "future"),
  };
}

/** One line for an outcome (long ask lists shortened; the JSON form has them whole). */
export function describeOutcome(o: Outcome): string {
  switch (o.action) {
    case "allow":
      return `allow ${o.target}${o.user ? ` as ${o.user}` : ""}${o.autostart ? "" : " (no autostart)"}`;
    case "ask":
      return `ask ${o.targets === undefined ? "" : shortList(o.targets) || "(no targets)"}${o.default ? ` (default ${o.default})` : ""}${o.user ? ` as ${o.user}` : ""}`;
    case "deny":
      return o.reason === NO_SUCH_QUBE.reason ? "(no such qube)" : "deny";
  }
}

function shortList(xs: readonly string[], max = 8): string {
  return xs.length <= max ? xs.join(", ") : `${xs.slice(0, max - 2).join(", ")}, … (${xs.length} in all)`;
}

/** What changes, without the request: `deny → allow X`, or for ask → ask the targets gained and lost. */
function changeText(c: DecisionChange): string {
  if (c.before.action === "ask" && c.after.action === "ask") {
    const parts: string[] = [];
    if (c.added) parts.push(`also offers ${shortList(c.added)}`);
    if (c.removed) parts.push(`no longer offers ${shortList(c.removed)}`);
    if (c.before.default !== c.after.default) parts.push(`default ${c.before.default ?? "none"} → ${c.after.default ?? "none"}`);
    if (c.before.user !== c.after.user) parts.push(`user ${c.before.user ?? "default"} → ${c.after.user ?? "default"}`);
    return `ask ${parts.join("; ")}`;
  }
  return `${describeOutcome(c.before)} → ${describeOutcome(c.after)}`;
}

/** The changes of one service, grouped: one heading per kind of change, then the sources with the same targets on one line. */
function renderService(s: ServiceChanges, lines: string[]): void {
  lines.push(`  ${s.service === "*" ? "* (every service no rule names)" : s.service}  (${s.changes.length} request${s.changes.length === 1 ? "" : "s"})`);
  const groups = new Map<string, Map<string, string[]>>();
  for (const c of s.changes) {
    const arg = c.argument === "*" ? "" : `${c.argument} `;
    const key = `${c.kind.padEnd(6)} ${arg}${changeText(c)}`;
    let bySource = groups.get(key);
    if (!bySource) groups.set(key, (bySource = new Map()));
    let ts = bySource.get(c.source);
    if (!ts) bySource.set(c.source, (ts = []));
    ts.push(c.target);
  }
  for (const [key, bySource] of groups) {
    lines.push(`    ${key}`);
    const byTargets = new Map<string, string[]>();
    for (const [src, ts] of bySource) {
      const k = shortList(ts, 12);
      let srcs = byTargets.get(k);
      if (!srcs) byTargets.set(k, (srcs = []));
      srcs.push(src);
    }
    for (const [ts, srcs] of byTargets) lines.push(`      ${shortList(srcs, 12)} -> ${ts}`);
  }
}

/** The text report (the explanations of failed expectations are rendered by `render`). */
export function renderWhatIf(r: WhatIfReport, render: (x: Explanation) => string = () => ""): string {
  const lines: string[] = [];
  for (const c of r.calls) {
    const show = (d: Decision | undefined) => (d ? describeOutcome(outcomeOf(d)) : "deny (the policy does not load)");
    const same = r.calls.length > 0 && (c.today && c.after ? JSON.stringify(outcomeOf(c.today)) === JSON.stringify(outcomeOf(c.after)) : c.today === c.after);
    lines.push(`call ${c.text}: today ${show(c.today)}; after apply ${same ? "the same" : show(c.after)}`);
    if (c.explanation) for (const l of render(c.explanation).trimEnd().split("\n")) if (l !== "") lines.push(`         ${l}`);
  }
  for (const l of r.loadErrors)
    lines.push(`${l.when === "today" ? "today's" : "the future"} policy does not load, so every call is denied: ${l.error.message} [policy-does-not-load]`);
  if (r.expectations.length) {
    const failed = r.expectations.filter((e) => !e.ok).length;
    lines.push(`expectations: ${r.expectations.length - failed} of ${r.expectations.length} hold`);
    for (const e of r.expectations) {
      lines.push(`  ${e.ok ? "ok  " : "FAIL"} ${e.text}${e.problem ? `: ${e.problem}` : ""}`);
      if (!e.ok && e.explanation)
        for (const l of render(e.explanation).trimEnd().split("\n")) if (l !== "") lines.push(`         ${l}`);
    }
  } else lines.push("expectations: none");
  const n = r.changes.reduce((a, s) => a + s.changes.length, 0);
  if (!r.changesComputed) lines.push(r.loadErrors.length ? "decision changes: not computed (a policy does not load)" : "decision changes: not computed (--no-changes)");
  else if (n === 0) lines.push("decision changes: none");
  else {
    lines.push(`decision changes: ${n} request${n === 1 ? "" : "s"} in ${r.changes.length} service${r.changes.length === 1 ? "" : "s"} (grant: more allowed than today; revoke: less; change: another target)`);
    for (const s of r.changes) renderService(s, lines);
  }
  return lines.join("\n") + "\n";
}

/** The JSON form of a report (stable keys; decisions as outcomes). */
export function whatIfJson(r: WhatIfReport): unknown {
  return {
    stack: r.stack,
    ok: r.ok,
    load_errors: r.loadErrors.map((l) => ({ when: l.when, error: l.error.error, message: l.error.message })),
    expectations: r.expectations.map((e) => ({
      expect: e.text,
      ok: e.ok,
      problem: e.problem ?? null,
      got: e.decision ? outcomeOf(e.decision) : null,
      deciding_rule: e.explanation?.decidingRule ? { file: e.explanation.decidingRule.origin.file, line: e.explanation.decidingRule.origin.line } : null,
    })),
    // Only when calls were asked about (`--call`).
    ...(r.calls.length
      ? {
          calls: r.calls.map((c) => ({
            call: c.text,
            today: c.today ? outcomeOf(c.today) : null,
            after: c.after ? outcomeOf(c.after) : null,
            deciding_rule: c.explanation?.decidingRule ? { file: c.explanation.decidingRule.origin.file, line: c.explanation.decidingRule.origin.line } : null,
          })),
        }
      : {}),
    // null when not computed (--no-changes, or a policy that does not load): not "no change".
    changes: r.changesComputed ? r.changes : null,
  };
}

/**
 * The services whose decisions two policies can decide differently on the
 * same system: a call reads only the rules of its service and the `*`
 * rules, in order, so a service whose sequence of those rules reads the same
 * in both decides alike. `undefined` (every service, the `*` stand-in
 * included) when the `*` rules differ.
 */
export function servicesThatDiffer(a: readonly PolicyRule[], b: readonly PolicyRule[]): Set<string> | undefined {
  const text = (r: PolicyRule) => printRule(r, " ");
  const star = (rules: readonly PolicyRule[]) => rules.filter((r) => r.service === null).map(text);
  const starA = star(a);
  const starB = star(b);
  if (starA.length !== starB.length || starA.some((t, i) => t !== starB[i])) return undefined;
  // Per service: its rules' texts, each after the number of `*` rules that come before it.
  const seqs = (rules: readonly PolicyRule[]) => {
    const out = new Map<string, string[]>();
    let stars = 0;
    for (const r of rules) {
      if (r.service === null) {
        stars++;
        continue;
      }
      let list = out.get(r.service);
      if (!list) out.set(r.service, (list = []));
      list.push(`${stars}\0${text(r)}`);
    }
    return out;
  };
  const sa = seqs(a);
  const sb = seqs(b);
  const differ = new Set<string>();
  for (const svc of new Set([...sa.keys(), ...sb.keys()])) {
    const x = sa.get(svc) ?? [];
    const y = sb.get(svc) ?? [];
    if (x.length !== y.length || x.some((t, i) => t !== y[i])) differ.add(svc);
  }
  return differ;
}

/** Adds the decision changes of a diff to `counts`, by kind. */
function countChanges(counts: { grant: number; revoke: number; change: number }, diff: ServiceChanges[]): void {
  for (const s of diff) for (const c of s.changes) counts[c.kind]++;
}

/**
 * A {@link PlanOptions.tagEffect} from the live system and policy: the decision changes of
 * adding (or removing) one tag on one qube, counted twice and added up: on the system and policy
 * of today (the qube's other tags as they are now), and on those after apply (the future system
 * and policy of `stack`). The plan runs a tag step between the two, so a change that grants on
 * either side is a grant; and tags added together are each seen alone (today's side). Only the
 * services whose loaded rules name the tag (`@tag:T`, `@dispvm:@tag:T`, as a source, target or
 * parameter) are diffed, all of them when a `*` rule does; a tag no rule names, today or after,
 * changes nothing. `undefined` (the caller assumes the worst) when a policy
 * does not load, and for a qube the plan creates (it has no today; its tags are set once it exists).
 */
export function tagEffects(system: WhatIfSystem, policy: PolicyTexts, stack: StackModel): (qube: string, tag: string, add: boolean) => { grant: number; revoke: number; change: number } | undefined {
  let sides: { today: ReturnType<typeof load>; after: ReturnType<typeof load>; future: WhatIfSystem } | undefined;
  const toggled = (sys: WhatIfSystem, qube: string, tag: string, present: boolean): WhatIfSystem => {
    const d = sys.domains[qube]!;
    const tags = (d.tags ?? []).filter((t) => t !== tag);
    return { ...sys, domains: { ...sys.domains, [qube]: { ...d, tags: present ? [...tags, tag] : tags } } };
  };
  return (qube, tag, add) => {
    sides ??= { today: load(policy), after: load(futurePolicy(policy, stack)), future: futureSystem(system, stack) };
    if ("error" in sides.today || "error" in sides.after) return undefined;
    const counts = { grant: 0, revoke: 0, change: 0 };
    // The services whose rules name the tag (today or after): only their decisions can change; all of them when a `*` rule does.
    const services = new Set<string>();
    let all = false;
    const names = (t: QubeToken | null) => !!t && (t.kind === "tag" || t.kind === "dispvm-tag") && t.value === tag;
    for (const r of [...sides.today.policy.rules, ...sides.after.policy.rules]) {
      if (!(names(r.source) || names(r.target) || names(r.redirect) || names(r.defaultTarget))) continue;
      if (r.service === null) all = true;
      else services.add(r.service);
    }
    if (!all && services.size === 0) return counts;
    if (!system.domains[qube] || !sides.future.domains[qube]) return undefined;
    const pairs: Array<[CompiledPolicy, WhatIfSystem]> = [
      [sides.today.policy, system],
      [sides.after.policy, sides.future],
    ];
    for (const [compiled, sys] of pairs) {
      const before = toggled(sys, qube, tag, !add);
      const then = toggled(sys, qube, tag, add);
      countChanges(counts, decisionChanges({ policy: compiled, system: before }, { policy: compiled, system: then }, undefined, all ? undefined : services));
    }
    return counts;
  };
}

/**
 * A {@link PlanOptions.policyEffect} from the live system and policy: the
 * decision changes of writing one policy file, all else as after apply (the
 * future system of `stack`, the other policy files as they are today).
 */
export function policyEffects(
  system: WhatIfSystem,
  policy: PolicyTexts,
  stack: StackModel,
  /**
   * `untilGrant`: stop at the first change that grants or changes access,
   * all a plan needs to mark and order the write (`grant`/`change` are then
   * at least 1 but not counted further, `revoke` counts the revocations
   * found up to there); the counts are exact when nothing is granted or changed.
   */
  options: { untilGrant?: boolean } = {},
): (key: string, before: string | undefined, after: string | undefined) => { grant: number; revoke: number; change: number } | undefined {
  const stop = options.untilGrant ? (c: DecisionChange) => c.kind !== "revoke" : undefined;
  let future: WhatIfSystem | undefined;
  return (key, before, after) => {
    const file = key.startsWith("include/") ? key : `${key}.policy`;
    const today: PolicyTexts = { ...policy };
    if (before === undefined) delete today[file];
    else today[file] = before;
    const a = load(today);
    const next: PolicyTexts = { ...policy };
    if (after === undefined) delete next[file];
    else next[file] = after;
    const b = load(next);
    // A policy that does not load (today or after) cannot be classified: the write counts as granting.
    if ("error" in a || "error" in b) return undefined;
    future ??= futureSystem(system, stack);
    const counts = { grant: 0, revoke: 0, change: 0 };
    const only = servicesThatDiffer(a.policy.rules, b.policy.rules);
    if (only === undefined || only.size) countChanges(counts, decisionChanges({ policy: a.policy, system: future }, { policy: b.policy, system: future }, undefined, only, stop));
    return counts;
  };
}
