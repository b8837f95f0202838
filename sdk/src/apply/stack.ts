/**
 * The stack-level operations the CLI and integrators use: plan a stack
 * against a live system, apply it (with a rehearsal on the simulator first),
 * re-check a saved plan for staleness, and report drift.
 */
import { createHash } from "node:crypto";
import type { StackModel } from "@qubes-kit/language";
import type { Qubes } from "../qubes.js";
import { executePlan, type ApplyResult, type ExecuteOptions } from "./execute.js";
import { KEYS_FEATURE, OWNER_FEATURE, globalsFeature, hasStackHeader, isStackPolicyName, parseKeys, policyText } from "./keys.js";
import { computePlan, planFocus, planScope, policyKey, scopeOfPlan, type PlanOptions } from "./plan.js";
import type { PolicyTarget } from "./policy-target.js";
import { fingerprint, fingerprintChanges, fingerprintView, readDeep, readDeviceClassesFor, readFeatures, readLight, type ReadOptions } from "./read.js";
import { rehearse, type Rehearsal } from "./rehearse.js";
import type { LiveSystem, Plan, PlanDecisionChanges, PlanExpectations, PlanStep, SideEffect, StaleChange } from "./types.js";
import { readWhatIfSystem } from "./future-live.js";
import { isGeneratedBy, type PolicyTexts, type WhatIfSystem } from "./future.js";
import { policyEffects, tagEffects, whatIf } from "./whatif.js";

/** The live system to plan against. */
export interface StackConnection {
  qubes: Qubes;
  policy: PolicyTarget;
}

/** Reads the live system and computes the plan of `model`. */
export async function planStack(model: StackModel, conn: StackConnection, options: PlanOptions & ReadOptions = {}): Promise<{ plan: Plan; live: LiveSystem }> {
  const live = await readLight(conn.qubes, conn.policy, { ...options, focus: planFocus(model) });
  // The current clock qube is known only now.
  const more = planFocus(model, live).filter((n) => !planFocus(model).includes(n));
  if (more.length) await readFeatures(conn.qubes, live, more, options);
  await readDeviceClassesFor(conn.qubes, live, model, options);
  const scope = planScope(model, live);
  await readDeep(conn.qubes, conn.policy, live, scope, options);
  // A policy write, or a tag change, is marked and ordered by its decision changes (what-if), when the caller did not say how.
  const plan = computePlan(model, live, scope, options);
  const needs = (options.policyEffect === undefined && writesPolicy(model, live)) || (options.tagEffect === undefined && changesTags(plan)) || (options.policyNaming === undefined && movesQube(plan));
  if (!needs) return { plan, live };
  const inputs = await readWhatIfInputs(conn);
  const marked = computePlan(model, live, scope, { ...effectOptions(inputs, model), ...options });
  marked.whatifPolicy = policyDigests(inputs.policy);
  return { plan: marked, live };
}

/** What what-if reads: the system model with its extension keys, and every policy file. */
export interface WhatIfInputs {
  system: WhatIfSystem;
  policy: PolicyTexts;
}

/** Reads the {@link WhatIfInputs} through `conn`. */
export async function readWhatIfInputs(conn: StackConnection): Promise<WhatIfInputs> {
  const [system, policy] = await Promise.all([readWhatIfSystem(conn.qubes), readPolicyTexts(conn.policy)]);
  return { system, policy };
}

/** Whether planning `model` against `live` writes a policy file (then its decision changes order the write). */
/** A short digest per policy file ({@link Plan.whatifPolicy}). */
export function policyDigests(texts: PolicyTexts): Record<string, string> {
  return Object.fromEntries(
    Object.entries(texts)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, t]) => [k, createHash("sha256").update(t).digest("hex").slice(0, 16)]),
  );
}

/** Whether a plan adds or removes a tag (what-if then says what each does to the decisions). */
export function changesTags(plan: Plan): boolean {
  return plan.steps.some((s) => s.kind === "add-tag" || s.kind === "remove-tag");
}

/** The plan options that mark policy writes and tag changes by their decision changes. */
export function effectOptions(inputs: WhatIfInputs, model: StackModel): Pick<PlanOptions, "policyEffect" | "tagEffect" | "policyNaming"> {
  return { policyEffect: policyEffects(inputs.system, inputs.policy, model, { untilGrant: true }), tagEffect: tagEffects(inputs.system, inputs.policy, model), policyNaming: (qube) => policyNaming(inputs.policy, model.stack, qube) };
}

/**
 * Where the policy files other than `stack`'s name `qube` (`FILE:LINE`): a rule's word that is the
 * name, `@dispvm:NAME`, or a `target=`/`default_target=` parameter naming either (comments and
 * directives aside).
 */
export function policyNaming(texts: PolicyTexts, stack: string, qube: string): string[] {
  const names = (w: string) => w === qube || w === `@dispvm:${qube}`;
  const out: string[] = [];
  for (const [path, text] of Object.entries(texts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (isGeneratedBy(stack, path, text)) continue;
    text.split("\n").forEach((line, i) => {
      const words = line.replace(/#.*/, "").trim().split(/\s+/);
      if (!words[0] || words[0].startsWith("!")) return;
      if (words.some((w) => names(w) || ((w.startsWith("target=") || w.startsWith("default_target=")) && names(w.slice(w.indexOf("=") + 1))))) out.push(`${path}:${i + 1}`);
    });
  }
  return out;
}

/** Whether a plan moves a qube (`moved_from`): what-if's policy is then read to say where the former name is still named. */
export function movesQube(plan: Plan): boolean {
  return plan.steps.some((s) => s.kind === "create" && s.movedFrom !== undefined);
}

export function writesPolicy(model: StackModel, live: LiveSystem): boolean {
  if ((model.policy ?? []).some((f) => live.policy[policyKey(model.stack, f)]?.text !== policyText(model.stack, f.rules))) return true;
  // A file of the stack's that it no longer declares is removed: that too is marked by what it does.
  const declared = new Set((model.policy ?? []).map((f) => policyKey(model.stack, f)));
  return Object.entries(live.policy).some(([key, cur]) => !declared.has(key) && isStackPolicyName(model.stack, key) && hasStackHeader(model.stack, cur.text));
}

/** Every policy file of `target` as {@link PolicyTexts} (`NAME.policy`, `include/NAME`). */
export async function readPolicyTexts(target: PolicyTarget): Promise<PolicyTexts> {
  const out: PolicyTexts = {};
  for (const include of [false, true]) {
    for (const name of await target.list(include)) {
      const f = await target.get(name, include);
      if (f) out[include ? `include/${name}` : `${name}.policy`] = f.text;
    }
  }
  return out;
}

/**
 * Checks the stack's `expect:` entries on the system and policy after apply
 * (what-if's future, read now from `conn`, without the qubes `plan` prunes);
 * `undefined` when there are none.
 */
export async function planExpectations(model: StackModel, conn: StackConnection, plan?: Plan, inputs?: WhatIfInputs): Promise<PlanExpectations | undefined> {
  if (!model.expect.length) return undefined;
  return (await planWhatIf(model, conn, plan, inputs, { changes: false })).expectations;
}

/**
 * What-if on the plan's future (without the qubes `plan` prunes), in one run:
 * the stack's `expect:` entries ({@link planExpectations}) and, with
 * `changes`, the count of decisions that change ({@link PlanDecisionChanges};
 * undefined when a policy does not load).
 */
export async function planWhatIf(
  model: StackModel,
  conn: StackConnection,
  plan: Plan | undefined,
  inputs: WhatIfInputs | undefined,
  options: { changes: boolean },
): Promise<{ expectations?: PlanExpectations; decisionChanges?: PlanDecisionChanges; policyNotLoading?: Plan["policyNotLoading"] }> {
  if (!model.expect.length && !options.changes) return {};
  const { system, policy } = inputs ?? (await readWhatIfInputs(conn));
  // Qubes the plan prunes are gone after apply: what-if sees them as declared absent.
  const declared = new Set(model.qubes.map((q) => q.name));
  const pruned = (plan?.steps ?? []).filter((s) => s.kind === "remove" && !declared.has(s.object)).map((s) => s.object);
  const future: StackModel = pruned.length
    ? { ...model, qubes: [...model.qubes, ...pruned.map((name) => ({ name, class: "AppVM" as const, properties: {}, features: {}, state: "any" as const, absent: true, protect: false, ignore_changes: [] }))] }
    : model;
  const report = whatIf({ system, policy, stack: future, skipChanges: !options.changes });
  const out: { expectations?: PlanExpectations; decisionChanges?: PlanDecisionChanges; policyNotLoading?: Plan["policyNotLoading"] } = {};
  if (report.changesComputed) {
    const counts: PlanDecisionChanges = { total: 0, grant: 0, revoke: 0, change: 0, services: report.changes.length };
    for (const s of report.changes) for (const c of s.changes) (counts.total++, counts[c.kind]++);
    out.decisionChanges = counts;
  } else if (options.changes && report.loadErrors.length) {
    out.policyNotLoading = report.loadErrors.map((l) => ({ when: l.when, message: l.error.message }));
  }
  if (!model.expect.length) return out;
  // An entry that names a pruned qube is refused by the next check (an unknown qube): it fails now,
  // whatever the pruned qube's absence decides.
  const gone = new Set(pruned);
  const namesGone = (i: number): string | undefined => {
    const x = report.expectations.length === model.expect.length ? model.expect[i] : undefined;
    return x ? [x.source, x.target, x.target_is, ...(x.targets_include ?? []), ...(x.targets_exact ?? [])].find((n) => typeof n === "string" && gone.has(n)) : undefined;
  };
  out.expectations = {
    total: report.expectations.length,
    failed: report.expectations.flatMap((e, i) => {
      const name = namesGone(i);
      if (name !== undefined) {
        // A move's former name is removed because the qube moves, not because of --prune.
        const to = plan?.steps.find((s) => s.kind === "remove" && s.object === name)?.movedTo;
        const why = to !== undefined ? `which this plan removes (it moves to '${to}'): the next check refuses it as an unknown qube; name '${to}' there` : `which this plan removes (--prune): the next check refuses it as an unknown qube; remove the entry or declare the qube again`;
        return [{ expect: e.text, problem: `names qube '${name}', ${why}`, rule: null }];
      }
      if (e.ok) return [];
      const r = e.explanation?.decidingRule?.origin;
      return [{ expect: e.text, problem: e.problem ?? "does not hold", rule: r ? `${r.file}:${r.line ?? "?"}` : null }];
    }),
  };
  return out;
}

/**
 * Re-reads what `plan` read; `stale` when anything changed since (the fingerprints differ).
 * A stale plan's `changes` say what differs, in order (see {@link fingerprintChanges}), when
 * the plan's read is known: `planned` (the read the plan was made from) or the plan's
 * {@link Plan.view} (a saved plan); otherwise they are empty.
 */
export async function checkPlanFresh(
  plan: Plan,
  conn: StackConnection,
  options: ReadOptions & { planned?: LiveSystem } = {},
): Promise<{ stale: boolean; live: LiveSystem; fingerprint: string; changes: StaleChange[] }> {
  const { planned, ...readOptions } = options;
  const scope = scopeOfPlan(plan);
  const live = await readLight(conn.qubes, conn.policy, plan.scope.focus ? { ...readOptions, focus: plan.scope.focus } : readOptions);
  await readDeep(conn.qubes, conn.policy, live, scope, readOptions);
  const now = fingerprint(live, scope);
  let stale = now !== plan.fingerprint;
  const before = !stale ? undefined : planned ? fingerprintView(planned, scope) : plan.view;
  const changes = before ? fingerprintChanges(before, fingerprintView(live, scope)) : [];
  // The policy files what-if read (all of them), when the plan's marks, order or expectations came from it.
  if (plan.whatifPolicy) {
    const then = plan.whatifPolicy;
    const current = policyDigests(await readPolicyTexts(conn.policy));
    for (const k of [...new Set([...Object.keys(then), ...Object.keys(current)])].sort()) {
      if (then[k] === current[k]) continue;
      stale = true;
      const subject = `policy file ${k}`;
      if (!changes.some((c) => c.subject === subject)) changes.push({ subject, what: then[k] === undefined ? "new" : current[k] === undefined ? "gone" : "" });
    }
  }
  return { stale, live, fingerprint: now, changes };
}


/** Why an apply did not start, or how it went. */
export type StackApplyOutcome =
  | { status: "errors"; plan: Plan }
  /** `confirm` answered no (after the rehearsal); nothing was sent. */
  | { status: "declined"; plan: Plan; rehearsal?: ApplyResult }
  /** The plan's expectations ({@link Plan.expectations}) do not all hold, and `ignoreExpect` was not given. */
  | { status: "expectations-failed"; plan: Plan }
  /** The system changed since the plan was read: `changes` say what (empty when the plan's read is unknown). */
  | { status: "stale"; plan: Plan; changes: StaleChange[] }
  | { status: "rehearsal-failed"; plan: Plan; rehearsal: ApplyResult }
  | { status: "applied"; plan: Plan; result: ApplyResult };

/**
 * Applies a plan: refuses a plan with errors, one whose expectations fail
 * (unless `ignoreExpect`), or a stale one (re-read now), asks `confirm`
 * once the rehearsal passed,
 * rehearses the steps on a simulator seeded from the fresh read and refuses
 * what it rejects, then runs the steps on the machine.
 */
export async function applyPlan(
  plan: Plan,
  conn: StackConnection,
  options: ExecuteOptions &
    ReadOptions & {
      live?: LiveSystem;
      /** The read `plan` was made from: a stale plan then says what changed (a saved plan has its {@link Plan.view}). */
      planned?: LiveSystem;
      rehearse?: boolean;
      ignoreExpect?: boolean;
      /** Told the rehearsal's result, and what qubesd changed on its own there ({@link Rehearsal.sideEffects}). */
      onRehearsed?(r: ApplyResult, sideEffects: SideEffect[]): void;
      /** Asked once the fresh read and the rehearsal passed, before any call is sent; `false` stops (status `declined`). */
      confirm?(): Promise<boolean>;
    } = {},
): Promise<StackApplyOutcome> {
  if (plan.errors.length) return { status: "errors", plan };
  if (plan.expectations?.failed.length && !options.ignoreExpect) return { status: "expectations-failed", plan };
  let live = options.live;
  if (!live) {
    // The signal stops the apply between steps (executePlan); the read runs to its end (an abort there would be an error, not an interruption).
    const { signal: _signal, ...readOptions } = options;
    const fresh = await checkPlanFresh(plan, conn, readOptions);
    if (fresh.stale) return { status: "stale", plan, changes: fresh.changes };
    live = fresh.live;
  }
  let rehearsal: ApplyResult | undefined;
  if (options.rehearse !== false) {
    const r = await rehearse(plan, live);
    options.onRehearsed?.(r.result, r.sideEffects);
    if (r.result.failure) return { status: "rehearsal-failed", plan, rehearsal: r.result };
    rehearsal = r.result;
  }
  if (options.confirm && !(await options.confirm())) return rehearsal ? { status: "declined", plan, rehearsal } : { status: "declined", plan };
  return { status: "applied", plan, result: await executePlan(plan, conn, options) };
}

/** Drift: managed settings whose live value differs from the stack. */
export interface DriftReport {
  stack: string;
  /** Steps that would put back managed settings of owned qubes, owned policy files and managed globals. */
  drift: PlanStep[];
  /** Declared but not applied yet (qubes to create or adopt, new policy files). */
  pending: PlanStep[];
  orphans: string[];
  errors: Plan["errors"];
}

/**
 * Compares the live system with the stack, restricted to what the last apply
 * recorded as managed (the `x-qkit-keys` of owned qubes, owned policy files,
 * recorded globals).
 */
export async function driftStack(model: StackModel, conn: StackConnection, options: PlanOptions & ReadOptions = {}): Promise<DriftReport> {
  const { plan, live } = await planStack(model, conn, { ...options, adopt: false, prune: false });
  const drift: PlanStep[] = [];
  const pending: PlanStep[] = [];
  const globals = parseKeys(live.qubes["dom0"]?.features[globalsFeature(model.stack)]);
  for (const s of plan.steps) {
    if (s.kind === "record-keys") continue;
    if (s.target.startsWith("qube ")) {
      const q = live.qubes[s.object];
      if (!q || q.features[OWNER_FEATURE] !== model.stack) {
        pending.push(s);
        continue;
      }
      const keys = parseKeys(q.features[KEYS_FEATURE]);
      if (managedBy(s, keys)) drift.push(s);
      else pending.push(s);
    } else if (s.target === "global") {
      (globals.has(s.key) ? drift : pending).push(s);
    } else if (s.kind === "write-policy") {
      (s.before !== null ? drift : pending).push(s);
    } else if (s.kind === "remove-policy") drift.push(s);
    else pending.push(s);
  }
  const orphans = Object.values(live.qubes)
    .filter((q) => q.features[OWNER_FEATURE] === model.stack && !model.qubes.some((d) => d.name === q.name))
    .map((q) => q.name)
    .sort();
  return { stack: model.stack, drift, pending, orphans, errors: plan.errors };
}

function managedBy(s: PlanStep, keys: Set<string>): boolean {
  switch (s.kind) {
    case "set-property":
    case "reset-property":
      return keys.has(`p:${s.key.replace(/ \(transient\)$/, "")}`);
    case "set-feature":
    case "remove-feature":
      return keys.has(`f:${s.key.slice("feature ".length)}`);
    case "add-tag":
    case "remove-tag":
      return keys.has(`t:${s.key.slice("tag ".length)}`) || [...keys].some((k) => k.startsWith("t:"));
    case "set-firewall":
      return keys.has("fw");
    case "assign-device":
    case "unassign-device":
    case "set-device-mode":
      return [...keys].some((k) => k.startsWith(`d:${s.key.split(" ")[0]}:`));
    case "resize-volume":
    case "set-volume":
      return [...keys].some((k) => k.startsWith("v:"));
    case "set-notes":
      return keys.has("notes");
    case "start":
    case "shutdown":
      return true;
    default:
      return false;
  }
}
