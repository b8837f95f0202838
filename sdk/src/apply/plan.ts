/**
 * The planner: compares a {@link StackModel} with the {@link LiveSystem}
 * canonically and produces the ordered steps of a {@link Plan}. Pure: no
 * IO (the read phase is `read.ts`); every problem is a {@link PlanError},
 * never a throw.
 */
import {
  DEFAULT,
  PROTECTED_FEATURES,
  cannotReset,
  policyFileName,
  type DeviceDecl,
  type PropertyValue as DeclaredValue,
  type Provenance,
  type QubeDecl,
  type StackModel,
} from "@qubes-kit/language";
import { calls, type CreateOptions } from "../calls.js";
import type { AdminCall } from "../client.js";
import type { DeviceAssignment } from "../devices.js";
import { canonicalFirewall, canonicalValue, managedTags, sameOptions, sameValue, showProperty, showValue, specOf } from "./canonical.js";
import { lineDiff } from "./render.js";
import { CLONE_FEATURE, KEYS_FEATURE, MOVED_FEATURE, OWNER_FEATURE, PROTECT_KEY, isMoveMark, ruleLineCount, formatKeys, globalsFeature, hasStackHeader, isKey, isStackPolicyName, parseKeys, policyText } from "./keys.js";
import { fingerprint, type DeepRead, type ReadScope } from "./read.js";
import { checkStackModel } from "./model-check.js";
import { orderSteps } from "./order.js";
import type { LiveAssignment, LiveQube, LiveSystem, LiveVolume as LiveVolumeT, Plan, PlanError, PlanStep, StepCall, StepEffect } from "./types.js";

/** Options of a plan. */
export interface PlanOptions {
  /** Take over existing qubes (and same-named policy files) that no stack owns. */
  adopt?: boolean;
  /** Take over qubes and global properties that another stack owns (never implied by `adopt`). */
  takeOver?: boolean;
  /** Remove qubes this stack owns that the file no longer declares. */
  prune?: boolean;
  /** Stop running qubes for changes that need a halt (and start them again). */
  restart?: "never" | "if-needed";
  /** Recorded in the plan (the policy is read from and written to this directory). */
  policyDir?: string;
  /** The time used to drop expired firewall rules (seconds; default now). */
  now?: number;
  /**
   * What writing policy file `key` (`NAME` or `include/NAME`) with `after`
   * instead of `before` (`after` undefined: removing the file) changes in
   * the decisions (what-if's decision diff, {@link policyEffects}). A write
   * or removal that only revokes goes first, with the revocations; one that
   * grants or changes anything goes with the grants, and a removal there
   * after every policy write of the stack (make before break: a file moved
   * to another priority is written before the old one goes, so no moment
   * between has neither). Without this (or `undefined`), every write counts
   * as granting access and every removal as revoking.
   */
  policyEffect?(key: string, before: string | undefined, after: string | undefined): PolicyEffect | undefined;
  /**
   * What adding (`add`) or removing tag `tag` on qube `qube` changes in the decisions, today and
   * after apply ({@link tagEffects}): it marks the step (`grants-access` when anything is granted
   * or redirected, `revokes-access` when calls only lose, `none`); a removal that grants goes with
   * the grants instead of first. Without it (or `undefined`) an added tag counts as granting and a
   * removed one as revoking. Added tags always go with the grants.
   */
  tagEffect?(qube: string, tag: string, add: boolean): PolicyEffect | undefined;
  /**
   * Where the machine's policy files other than this stack's name qube `qube` (`30-user.policy:4`):
   * a move (`moved_from`) warns that their rules stop matching once the former name is gone.
   */
  policyNaming?(qube: string): string[];
  /**
   * Replace a qube whose class changes (remove it, then create it as declared; its volumes and
   * their data are lost). Without it a class change is an error. Never for `protect: true`.
   */
  allowReplace?: boolean;
}

/** Counts of the decision changes of one policy write, by kind. */
export interface PolicyEffect {
  grant: number;
  revoke: number;
  change: number;
}

/** A policy write's or a tag change's mark from its decision changes (`unknown` when they could not be computed). */
function effectRisk(eff: PolicyEffect | undefined, unknown: "grants-access" | "revokes-access"): PlanStep["risk"] {
  if (!eff) return unknown;
  return eff.grant > 0 || eff.change > 0 ? "grants-access" : eff.revoke > 0 ? "revokes-access" : "none";
}

const RUNNING = new Set(["Running", "Paused", "Suspended", "Transient", "Halting"]);
const isRunning = (q: LiveQube | undefined) => !!q && RUNNING.has(q.state);
const isDefault = (v: DeclaredValue): v is typeof DEFAULT => typeof v === "object" && v !== null && (v as { default?: unknown }).default === true;

function call(c: AdminCall<unknown>): StepCall {
  const payload = c.payload === undefined ? "" : typeof c.payload === "string" ? c.payload : new TextDecoder().decode(c.payload);
  return { method: c.method, dest: c.dest, arg: c.arg ?? "", payload };
}

/** The policy admin API key of a declared file (`40-qkit-s-f` or `include/qkit-s-f`). */
export function policyKey(stack: string, file: Parameters<typeof policyFileName>[1]): string {
  const name = policyFileName(stack, file);
  return name.endsWith(".policy") ? name.slice(0, -".policy".length) : name;
}

/** Which qubes (and parts), policy files and device lists the plan must read deeply. */
export function planScope(input: StackModel, live: LiveSystem): ReadScope {
  const model = checkStackModel(input).model;
  if (!model) return { deep: {}, policy: [], available: [] };
  const deep: Record<string, DeepRead> = {};
  const available = new Set<string>();
  for (const q of model.qubes) {
    const l = live.qubes[q.name];
    for (const list of Object.values(q.devices ?? {})) for (const d of list) if (d.match && !d.port) available.add(`${d.backend || "dom0"}:${d.devclass}`);
    if (!l || q.absent) continue;
    const keys = parseKeys(l.features[KEYS_FEATURE]);
    const devices = new Set(Object.keys(q.devices ?? {}));
    for (const k of keys) if (k.startsWith("d:")) devices.add(k.split(":")[1]!);
    const what: DeepRead = {};
    if (q.firewall || keys.has("fw")) what.firewall = true;
    if (devices.size) what.devices = [...devices].sort();
    if (q.volumes && Object.keys(q.volumes).length) what.volumes = true;
    if (q.notes !== undefined || keys.has("notes")) what.notes = true;
    deep[q.name] = what;
  }
  // A rename's former qube is read whole: its clone copies its firewall, notes, volumes and device assignments.
  for (const q of model.qubes) {
    const from = q.moved_from;
    if (from === undefined || q.absent || !live.qubes[from] || live.qubes[from]!.class === "AdminVM") continue;
    const keys = parseKeys(live.qubes[from]!.features[KEYS_FEATURE]);
    // Every class qubesd has (read for moves), else the ones of qubesd's core and those the stack manages.
    const devices = new Set([...(live.deviceClasses ?? ["pci", "block"]), ...Object.keys(q.devices ?? {})]);
    for (const k of keys) if (k.startsWith("d:")) devices.add(k.split(":")[1]!);
    deep[from] = { firewall: true, notes: true, volumes: true, devices: [...devices].sort() };
    // A clone under way (an apply stopped half-way): its assignments too, so none is made twice.
    const to = live.qubes[q.name];
    if (to && to.features[MOVED_FEATURE] !== undefined) deep[q.name] = { ...deep[q.name], devices: [...new Set([...(deep[q.name]?.devices ?? []), ...devices])].sort() };
  }
  const policy = new Set<string>();
  for (const f of model.policy) policy.add(policyKey(model.stack, f));
  for (const name of live.policyNames) if (isStackPolicyName(model.stack, name)) policy.add(name);
  // Include files the stack's rules name (`!include include/NAME`, `!include-service S A include/NAME`):
  // read too, so the rehearsal's copy has them (qubesd refuses a file that includes a missing one).
  const listed = new Set(live.policyNames);
  for (const f of model.policy)
    for (const line of f.rules.split("\n")) {
      const m = /^\s*!include(?:-service\s+\S+\s+\S+)?\s+(?:\/etc\/qubes\/policy\.d\/)?include\/(\S+)\s*$/.exec(line);
      if (m && listed.has(`include/${m[1]}`)) policy.add(`include/${m[1]}`);
    }
  return { deep, policy: [...policy].sort(), available: [...available].sort() };
}

/**
 * The qubes whose features a plan reads in full: the declared ones, and when
 * the stack declares `clockvm`, the clock qube it names and the current one
 * (qubesd moves `service.clocksync` between them: the rehearsal shows it).
 */
export function planFocus(model: StackModel, live?: LiveSystem): string[] {
  const out = new Set(model.qubes.map((q) => q.name));
  // A rename's former qube: its features are copied to the clone.
  for (const q of model.qubes) if (q.moved_from !== undefined && !q.absent) out.add(q.moved_from);
  const clock = model.global?.["clockvm"];
  if (clock !== undefined) {
    if (typeof clock === "string" && clock !== "") out.add(clock);
    const now = live?.globals["clockvm"]?.value;
    if (typeof now === "string" && now !== "") out.add(now);
  }
  return [...out].sort();
}

interface Ctx {
  model: StackModel;
  live: LiveSystem;
  options: Required<Pick<PlanOptions, "adopt" | "prune" | "restart">> & PlanOptions;
  steps: PlanStep[];
  errors: PlanError[];
  warnings: PlanError[];
  phase: Map<string, number>;
  /** The steps by id (a plan of thousands of qubes looks steps up by id for every qube). */
  ids: Map<string, PlanStep>;
  restart: Set<string>;
  /** Per qube, the id of the step that must come first (create/adopt/shutdown). */
  first: Map<string, string[]>;
  /** Renames (`moved_from`): the former name → the new one, and the removal step of the former qube (when planned). */
  moves: Map<string, { to: string; removal?: PlanStep }>;
}

function err(ctx: Ctx, code: string, message: string, provenance?: Provenance): void {
  const e: PlanError = { code, message };
  if (provenance) e.provenance = provenance;
  ctx.errors.push(e);
}

function add(ctx: Ctx, phase: number, s: Omit<PlanStep, "requires" | "risk" | "effect"> & Partial<Pick<PlanStep, "requires" | "risk" | "effect">>): PlanStep {
  let id = s.id;
  for (let n = 2; ctx.ids.has(id); n++) id = `${s.id}#${n}`;
  const step: PlanStep = { ...s, id, requires: s.requires ?? [], risk: s.risk ?? "none", effect: s.effect ?? "live" };
  if (step.provenance === undefined) delete step.provenance;
  ctx.ids.set(id, step);
  ctx.steps.push(step);
  ctx.phase.set(id, phase);
  return step;
}

/** Builds calls, turning a client-side validation error into a plan error. */
function build(ctx: Ctx, where: string, f: () => StepCall[], provenance?: Provenance): StepCall[] | undefined {
  try {
    return f();
  } catch (e) {
    err(ctx, "invalid-value", `${where}: ${e instanceof Error ? e.message : String(e)}`, provenance);
    return undefined;
  }
}

/** The role of a qube in the ordering: templates, disposable templates, network providers, clients. */
function role(q: QubeDecl, l: LiveQube | undefined): number {
  if (q.class === "TemplateVM") return 1;
  const tfd = q.properties["template_for_dispvms"];
  if (tfd === true || (tfd === undefined && l?.properties["template_for_dispvms"]?.value === true)) return 2;
  const pn = q.properties["provides_network"];
  if (pn === true || (pn === undefined && l?.properties["provides_network"]?.value === true)) return 3;
  return 4;
}

const PHASE = {
  revoke: 0,
  label: 1,
  /** A qube replaced (class change): removed before anything is created under its name. */
  replace: 5,
  qube: (r: number) => 10 + r,
  netvm: 20,
  release: 25,
  global: 30,
  grant: 40,
  remove: (r: number) => 55 - r,
  /** After every qube that used the label changed it or was removed. */
  labelRemove: 58,
  record: 60,
  start: 70,
};

/** Computes the plan. `live` must hold the deep parts of `scope` (see {@link planScope}). */
export function computePlan(input: StackModel, live: LiveSystem, scope: ReadScope, options: PlanOptions = {}): Plan {
  const checked = checkStackModel(input);
  const model = checked.model ?? input;
  if (!checked.model) return emptyPlan(input, live, scope, checked.errors, options);
  try {
    return planModel(model, live, scope, options);
  } catch (e) {
    // Never expected: a bug must not take the user's terminal down with a stack trace.
    return emptyPlan(model, live, scope, [{ code: "internal-error", message: `internal error while planning: ${e instanceof Error ? e.message : String(e)}; please report it with the stack file` }], options);
  }
}

function emptyPlan(model: unknown, live: LiveSystem, scope: ReadScope, errors: PlanError[], options: PlanOptions): Plan {
  const stack = typeof (model as StackModel | undefined)?.stack === "string" ? (model as StackModel).stack : "";
  return {
    qkitPlan: 1,
    stack,
    steps: [],
    errors,
    summary: { create: 0, change: 0, destroy: 0, adopt: 0, policy: 0, global: 0, deferred: 0 },
    restartToTakeEffect: [],
    orphans: [],
    scope: { qubes: Object.keys(scope.deep).sort(), policy: scope.policy, available: scope.available, focus: [], deep: scope.deep },
    fingerprint: fingerprint(live, scope),
    options: { adopt: !!options.adopt, ...(options.takeOver ? { takeOver: true } : {}), ...(options.allowReplace ? { allowReplace: true } : {}), prune: !!options.prune, restart: options.restart ?? "never", ...(options.policyDir !== undefined ? { policyDir: options.policyDir } : {}) },
  };
}

function planModel(model: StackModel, live: LiveSystem, scope: ReadScope, options: PlanOptions): Plan {
  const ctx: Ctx = {
    model,
    live,
    options: { adopt: options.adopt ?? model.options?.adopt ?? false, prune: options.prune ?? model.options?.prune ?? false, restart: options.restart ?? model.options?.restart ?? "never", ...stripUndefined(options) },
    steps: [],
    errors: [],
    warnings: [],
    phase: new Map(),
    ids: new Map(),
    restart: new Set(),
    first: new Map(),
    moves: new Map(),
  };
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const seen = new Set<string>();
  for (const q of model.qubes) {
    if (seen.has(q.name)) {
      err(ctx, "duplicate-qube", `qube '${q.name}' is declared twice; declare each qube in exactly one place`, q.provenance);
      continue;
    }
    seen.add(q.name);
  }
  planLabels(ctx);
  for (const q of model.qubes) planQube(ctx, q, now);
  planCreateRecord(ctx);
  planOrphans(ctx);
  planLabelRemovals(ctx);
  planGlobals(ctx);
  warnClocksync(ctx);
  planPolicy(ctx);
  planRemovalsInUse(ctx);
  orderMoves(ctx);
  orderRemovals(ctx);
  const netvmOrder = orderNetvm(ctx);
  let cycles = 0;
  const steps = orderSteps(ctx.steps, ctx.phase, netvmOrder, runningClients(ctx.live), (stuck) => {
    // Once: the first loop is enough to report.
    if (cycles++ === 0) err(ctx, "order-cycle", `internal error: the plan's steps wait for each other in a loop (${stuck.slice(0, 6).join(", ")}${stuck.length > 6 ? ", …" : ""}), so no order applies them; nothing can be applied: please report this with the stack`);
  });
  keepDeferredLabels(ctx, steps);
  const summary: Plan["summary"] = { create: 0, change: 0, destroy: 0, adopt: 0, policy: 0, global: 0, deferred: 0 };
  const changed = new Set<string>();
  const created = new Set<string>();
  for (const s of steps) {
    if (s.deferred) summary.deferred++;
    // A move is counted once, by its removal (an apply that stopped after the clone has no creation left).
    if (s.kind === "create" && s.movedFrom !== undefined) created.add(s.object);
    else if (s.kind === "create") (summary.create++, created.add(s.object));
    else if (s.kind === "remove" && s.movedTo !== undefined) summary.move = (summary.move ?? 0) + 1;
    else if (s.kind === "remove") summary.destroy++;
    else if (s.kind === "adopt") summary.adopt++;
    else if (s.kind === "write-policy" || s.kind === "remove-policy") summary.policy++;
    else if (s.kind === "set-global" || s.kind === "reset-global") summary.global++;
  }
  // Bookkeeping (rewriting the ownership record) is no change of the qube, nor is taking it over
  // (counted as adopted): a qube adopted as it is is not "to change".
  for (const s of steps) if (s.target.startsWith("qube ") && !created.has(s.object) && s.kind !== "remove" && s.kind !== "shutdown" && s.kind !== "start" && s.kind !== "record-keys" && s.kind !== "adopt" && !isMoveMark(s)) changed.add(s.object);
  summary.change = changed.size;
  const orphans = Object.values(live.qubes)
    .filter((q) => q.features[OWNER_FEATURE] === model.stack && !seen.has(q.name) && !ctx.moves.has(q.name))
    .map((q) => q.name)
    .sort();
  const plan: Plan = {
    qkitPlan: 1,
    stack: model.stack,
    steps,
    errors: ctx.errors,
    summary,
    restartToTakeEffect: [...ctx.restart].sort(),
    orphans: ctx.options.prune ? orphans.filter((n) => live.qubes[n]?.properties["installed_by_rpm"]?.value === true || isProtected(live.qubes[n]!)) : orphans,
    scope: { qubes: Object.keys(scope.deep).sort(), policy: scope.policy, available: scope.available, focus: planFocus(model, live), deep: scope.deep },
    fingerprint: fingerprint(live, scope),
    options: { adopt: ctx.options.adopt, ...(ctx.options.takeOver ? { takeOver: true } : {}), ...(ctx.options.allowReplace ? { allowReplace: true } : {}), prune: ctx.options.prune, restart: ctx.options.restart },
  };
  if (options.policyDir !== undefined) plan.options.policyDir = options.policyDir;
  if (ctx.warnings.length) plan.warnings = ctx.warnings;
  return plan;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** The read scope a saved plan records (to re-read exactly the same at apply time). */
export function scopeOfPlan(plan: Plan): ReadScope {
  const deep = plan.scope.deep ?? Object.fromEntries(plan.scope.qubes.map((q) => [q, {}]));
  return { deep, policy: plan.scope.policy, available: plan.scope.available };
}

// ---------------------------------------------------------------------------

/** The record token of a label the stack created (in the dom0 globals record, beside the global property names). */
const labelToken = (name: string) => `label:${name}`;

/**
 * The record token of the colour a label was created with: qubesd answers
 * `admin.label.Get` of a label created since it started with nothing, so the
 * next plans compare the declared colour with this one (a label's colour
 * never changes).
 */
const colourToken = (name: string, colour: string) => `label-colour:${name}=${colour.toLowerCase()}`;

/** The colours recorded by {@link colourToken}, by label name. */
function recordedColours(tokens: Iterable<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of tokens) {
    if (!t.startsWith("label-colour:")) continue;
    const eq = t.lastIndexOf("=");
    if (eq > "label-colour:".length) out.set(t.slice("label-colour:".length, eq), t.slice(eq + 1));
  }
  return out;
}

/**
 * Labels: declared ones that do not exist are created, and recorded as the
 * stack's (in the globals record, before the creation, as a qube's keys
 * are). A recorded label no longer declared is removed with `--prune` once no
 * qube uses it any more (else kept, with a warning saying why).
 */
function planLabels(ctx: Ctx): void {
  const dom0 = ctx.live.qubes["dom0"];
  const feature = globalsFeature(ctx.model.stack);
  const recorded = parseKeys(dom0?.features[feature]);
  const colours = recordedColours(recorded);
  const creates: PlanStep[] = [];
  for (const [name, colour] of Object.entries(ctx.model.labels ?? {})) {
    const have = ctx.live.labels[name];
    const prov = ctx.model.labelProvenance?.[name];
    if (have === undefined) {
      const calls_ = build(ctx, `label ${name}`, () => [call(calls.labelCreate(name, colour))]);
      if (calls_) creates.push(add(ctx, PHASE.label, { id: `label.${name}`, kind: "create-label", target: `label ${name}`, object: name, key: "", calls: calls_, before: null, after: colour, ...(prov ? { provenance: prov } : {}) }));
    } else if (have === "" && colours.has(name)) {
      // Created by this stack since qubesd started (qubesd does not say its colour): the colour it was created with.
      const made = colours.get(name)!;
      if (made !== colour.toLowerCase()) err(ctx, "label-colour", `label '${name}' exists with colour ${made} (this stack created it so), not ${colour}; qubesd cannot change a label's colour: use another label name`, prov);
    } else if (have === "") {
      // qubesd answers admin.label.Get of a label created while it runs with nothing: the colour cannot be compared.
      ctx.warnings.push({ code: "label-colour-unknown", message: `label '${name}' exists, but qubesd does not say its colour (admin.label.Get answers nothing for a label created since qubesd started), so ${colour} is not checked; if it differs, qubesd cannot change it: use another label name`, ...(prov ? { provenance: prov } : {}) });
    } else if (have.toLowerCase() !== colour.toLowerCase()) {
      err(ctx, "label-colour", `label '${name}' exists with colour ${have}, not ${colour}; qubesd cannot change a label's colour: use another label name`, prov);
    }
  }
  const missing = creates.flatMap((s) => [labelToken(s.object), colourToken(s.object, s.after ?? "")]).filter((t) => !recorded.has(t));
  if (missing.length && dom0) {
    const text = formatKeys([...recorded, ...missing]);
    const c = build(ctx, "dom0 globals record", () => [call(calls.featureSet("dom0", feature, text))]);
    if (c) {
      const early = add(ctx, PHASE.label, { id: "global.keys-labels", kind: "record-keys", target: "global", object: "", key: feature, calls: c, before: dom0.features[feature] ?? null, after: text });
      for (const s of creates) s.requires.push(early.id);
    }
  }
}

/**
 * Qubes to create: named in the stack's globals record (`qube:NAME`) before the first
 * `admin.vm.Create`, and dropped from it by the record step at the end. An apply that stops
 * between a creation and the ownership mark (qubesd refused the feature, the connection broke)
 * leaves a qube no stack owns: the next plan finds its name there and marks it (`resumed-create`)
 * instead of refusing it as an unowned qube.
 */
function planCreateRecord(ctx: Ctx): void {
  const dom0 = ctx.live.qubes["dom0"];
  const creates = ctx.steps.filter((s) => s.kind === "create");
  if (!dom0 || !creates.length) return;
  const feature = globalsFeature(ctx.model.stack);
  const labels = ctx.ids.get("global.keys-labels");
  const base = labels ? parseKeys(labels.after ?? "") : parseKeys(dom0.features[feature]);
  const missing = creates.map((s) => createToken(s.object)).filter((t) => !base.has(t));
  if (!missing.length) return;
  const text = formatKeys([...base, ...missing]);
  const c = build(ctx, "dom0 globals record", () => [call(calls.featureSet("dom0", feature, text))]);
  if (!c) return;
  const s = add(ctx, PHASE.label, { id: "global.keys-create", kind: "record-keys", target: "global", object: "", key: feature, calls: c, before: labels ? labels.after : (dom0.features[feature] ?? null), after: text });
  if (labels) s.requires.push(labels.id);
  for (const x of creates) x.requires.push(s.id);
}

/** Recorded labels no longer declared: removed with `--prune` when nothing uses them after the plan (run after the qubes are planned). */
function planLabelRemovals(ctx: Ctx): void {
  const recorded = parseKeys(ctx.live.qubes["dom0"]?.features[globalsFeature(ctx.model.stack)]);
  const declared = new Set(Object.keys(ctx.model.labels ?? {}));
  for (const t of [...recorded].sort()) {
    if (!t.startsWith("label:")) continue;
    const name = t.slice("label:".length);
    if (declared.has(name) || ctx.live.labels[name] === undefined) continue;
    if (!ctx.options.prune) {
      ctx.warnings.push({ code: "orphan-label", message: `label '${name}' was created by stack '${ctx.model.stack}' and is no longer declared; --prune removes it` });
      continue;
    }
    // Another stack declares it too (it records `label:` or `label-use:`): that stack's, as long as it does.
    const others = otherLabelUsers(ctx, name);
    if (others.length) {
      ctx.warnings.push({ code: "label-used-by-other-stack", message: `label '${name}' is no longer declared here but stack${others.length === 1 ? "" : "s"} ${others.map((o) => `'${o}'`).join(", ")} declare${others.length === 1 ? "s" : ""} it; kept` });
      continue;
    }
    const users = labelUsersAfter(ctx, name);
    if (users.length) {
      ctx.warnings.push({ code: "label-in-use", message: `label '${name}' is no longer declared but ${users.join(", ")} still use${users.length === 1 ? "s" : ""} it after this plan (qubesd refuses to remove a label in use); kept` });
      continue;
    }
    const c = build(ctx, `label ${name}`, () => [call(calls.labelRemove(name))]);
    if (!c) continue;
    const s = add(ctx, PHASE.labelRemove, { id: `label.${name}.remove`, kind: "remove-label", target: `label ${name}`, object: name, key: "", calls: c, before: ctx.live.labels[name] ?? null, after: "removed (no longer declared)" });
    // After every label change and every removal of a qube.
    for (const x of ctx.steps) if (x !== s && ((x.kind === "set-property" && x.key === "label") || x.kind === "remove")) s.requires.push(x.id);
  }
}

/** The other stacks whose globals record names label `name` (created `label:` or declared `label-use:`). */
function otherLabelUsers(ctx: Ctx, name: string): string[] {
  const features = ctx.live.qubes["dom0"]?.features ?? {};
  const mine = globalsFeature(ctx.model.stack);
  return Object.keys(features)
    .filter((f) => f.startsWith(globalsFeature("")) && f !== mine)
    .filter((f) => {
      const keys = parseKeys(features[f]);
      return keys.has(`label:${name}`) || keys.has(`label-use:${name}`);
    })
    .map((f) => f.slice(globalsFeature("").length))
    .sort();
}

/** The qubes whose label is `name` once the plan ran (label changes and removals taken into account). */
function labelUsersAfter(ctx: Ctx, name: string): string[] {
  const out: string[] = [];
  const removed = new Set<string>();
  // The first label change of each qube (there is at most one).
  const changes = new Map<string, PlanStep>();
  for (const s of ctx.steps) {
    if (s.kind === "remove") removed.add(s.object);
    else if (s.kind === "set-property" && s.key === "label" && !changes.has(s.object)) changes.set(s.object, s);
  }
  for (const q of Object.values(ctx.live.qubes)) {
    if (removed.has(q.name)) continue;
    const change = changes.get(q.name);
    const label = change ? change.after : q.properties["label"]?.value;
    if (label === name) out.push(q.name);
  }
  // Qubes the plan creates with that label.
  for (const s of ctx.steps) if (s.kind === "create" && (s.after ?? "").split(" · ").includes(`label ${name}`)) out.push(s.object);
  return [...new Set(out)].sort();
}

/** The record token of a qube the stack is about to create (in the dom0 globals record, written before `admin.vm.Create`). */
const createToken = (name: string) => `qube:${name}`;

/** Whether the stack's globals record says it was creating qube `name` (an apply stopped between the creation and the ownership mark). */
function creationRecorded(ctx: Ctx, name: string): boolean {
  return parseKeys(ctx.live.qubes["dom0"]?.features[globalsFeature(ctx.model.stack)]).has(createToken(name));
}

/**
 * Ownership of an existing qube: undefined when it may not be managed (the error was reported).
 * `adopt` also covers a take-over (`--take-over`) and a qube this stack created in an apply that
 * stopped before marking it (the globals record names it and no stack owns it: marked, without
 * `--adopt`); each is marked as the stack's and converges from no keys.
 */
function owned(ctx: Ctx, q: QubeDecl, l: LiveQube): "owned" | "adopt" | undefined {
  const owner = l.features[OWNER_FEATURE];
  if (owner === ctx.model.stack) return "owned";
  if (l.class === "AdminVM") {
    err(ctx, "cannot-manage-dom0", `qube '${q.name}' is dom0; a stack cannot declare it (use global: for global properties)`, q.provenance);
    return undefined;
  }
  if (owner !== undefined && owner !== "") {
    if (ctx.options.takeOver) return "adopt";
    err(ctx, "owned-by-other-stack", `qube '${q.name}' is owned by stack '${owner}' (feature ${OWNER_FEATURE}); remove it from one of the stacks, or use --take-over to take it from stack '${owner}'`, q.provenance);
    return undefined;
  }
  // Recorded, and as its create step would have made it (someone else's qube of that name is not taken).
  const made = l.class === q.class && ["template", "label"].every((k) => typeof q.properties[k] !== "string" || l.properties[k]?.value === q.properties[k]);
  if (made && creationRecorded(ctx, q.name)) {
    ctx.warnings.push({ code: "resumed-create", message: `qube '${q.name}' was created by an apply of stack '${ctx.model.stack}' that stopped before marking it as the stack's; this plan marks it`, provenance: q.provenance });
    return "adopt";
  }
  if (!ctx.options.adopt) {
    err(ctx, "unowned-qube", `qube '${q.name}' exists and is not managed by stack '${ctx.model.stack}'; use --adopt to take it over, or rename the declaration`, q.provenance);
    return undefined;
  }
  return "adopt";
}

/** A rename under way: the new qube as its clone step leaves it, how it is owned, and that step. */
interface Move {
  live: LiveQube;
  ownership: "owned" | "adopt";
  head: string;
  /** The former qube was running (and is stopped for its clone): the new one is started at the end unless declared halted. */
  wasRunning: boolean;
}

/** The volumes a clone copies: the persistent ones (as `qvm-clone` does); an AppVM's root is its template's. */
function clonedVolumes(cls: string): string[] {
  return cls === "TemplateVM" || cls === "StandaloneVM" ? ["root", "private"] : cls === "AppVM" ? ["private"] : [];
}

/** The create-time pools a qube declares, set on `o` (one pool for all, or per volume); false when it declares none. */
const declaredByName = new WeakMap<StackModel, Map<string, QubeDecl>>();

/**
 * The chain of clone sources from `from` when it comes back to `name`
 * through qubes that are all still to be created (each `source: { clone }`
 * of a qube the system does not have), or undefined: such a stack can never
 * be applied, whatever the order.
 */
function cloneCycle(ctx: Ctx, name: string, from: string): string[] | undefined {
  let byName = declaredByName.get(ctx.model);
  if (!byName) declaredByName.set(ctx.model, (byName = new Map(ctx.model.qubes.map((x) => [x.name, x]))));
  const chain: string[] = [];
  const seen = new Set<string>([name]);
  for (let cur: string | undefined = from; cur !== undefined && !ctx.live.qubes[cur]; ) {
    chain.push(cur);
    if (cur === name) return chain;
    if (seen.has(cur)) return undefined;
    seen.add(cur);
    const src: QubeDecl["source"] = byName.get(cur)?.source;
    cur = src && "clone" in src ? src.clone : undefined;
  }
  return undefined;
}

function declaredPools(q: QubeDecl, o: CreateOptions): boolean {
  if (!q.pools || !Object.keys(q.pools).length) return false;
  if (Object.keys(q.pools).length === 1 && q.pools["*"] !== undefined) o.pool = q.pools["*"];
  else o.pools = { ...q.pools };
  return true;
}

/** A property value as `admin.vm.property.Set` takes it. */
function propertyPayload(v: unknown): string {
  return v === null || v === undefined ? "" : typeof v === "boolean" ? (v ? "True" : "False") : String(v);
}

/**
 * A rename (`moved_from: OLD` on qube NEW), as `qvm-clone OLD NEW` and `qvm-remove OLD` would do
 * it, resumable: while OLD exists and NEW does not, NEW is created as OLD's clone (its persistent
 * volumes, every non-default property, its features, tags, firewall, notes and device
 * assignments; a property naming OLD itself names NEW), marked complete by {@link MOVED_FEATURE},
 * and OLD is removed once everything that used it uses NEW. Returns NEW as the clone step leaves
 * it (the rest of the plan is computed from that), undefined when there is nothing to move (the
 * qube is planned as it is), or null when the move is refused (reported).
 */
function planMove(ctx: Ctx, q: QubeDecl, l: LiveQube | undefined, phase: number): Move | null | undefined {
  const from = q.moved_from!;
  const old = ctx.live.qubes[from];
  const prov = q.keyProvenance?.["moved_from"] ?? q.provenance;
  const target = `qube ${q.name}`;
  const ours = (x: LiveQube) => x.features[OWNER_FEATURE] === ctx.model.stack || ((x.features[OWNER_FEATURE] ?? "") === "" && creationRecorded(ctx, x.name));
  if (!old) {
    // Moved already: the mark of a move that stopped before it was taken off is taken off.
    if (l && l.features[MOVED_FEATURE] !== undefined && ours(l)) {
      removeMoveMark(ctx, q.name, l.features[MOVED_FEATURE]!, []);
    } else if (!l) ctx.warnings.push({ code: "moved-from-missing", message: `qube '${q.name}' moves from '${from}', which does not exist: it is created as declared (remove moved_from once every machine it applies to has moved)`, provenance: prov });
    return undefined;
  }
  if (old.class === "AdminVM") {
    err(ctx, "invalid-move", `qube '${q.name}' cannot move from dom0`, prov);
    return null;
  }
  if (old.class !== q.class) {
    err(ctx, "invalid-move", `qube '${q.name}' moves from '${from}', which is ${/^[AEIOU]/.test(old.class) ? "an" : "a"} ${old.class}, but is declared as ${q.class}; a move keeps the class: declare it as ${old.class}, and change the class in a later apply`, prov);
    return null;
  }
  const oldOwnership = owned(ctx, { ...q, name: from, provenance: prov }, old);
  if (!oldOwnership) return null;
  // The new name exists: a clone this stack started (marked while it runs, or created and not marked yet), or finished.
  const mark = l?.features[MOVED_FEATURE];
  const started = !!l && l.class === q.class && ours(l) && (mark === `cloning ${from}` || mark === from || (mark === undefined && creationRecorded(ctx, q.name)));
  if (l && !started) {
    err(ctx, "invalid-move", `qube '${q.name}' moves from '${from}', but both exist and '${q.name}' is not a clone this stack made; remove one of them, or remove moved_from and declare '${from}' on its own`, prov);
    return null;
  }
  ctx.moves.set(from, { to: q.name });
  for (const where of stillNamed(ctx.model, from))
    ctx.warnings.push({ code: "moved-but-named", message: `qube '${from}' moves to '${q.name}' and is removed, but ${where} still names '${from}'; name '${q.name}' there`, provenance: prov });
  const elsewhere = ctx.options.policyNaming?.(from) ?? [];
  if (elsewhere.length)
    ctx.warnings.push({
      code: "moved-but-named",
      message: `qube '${from}' moves to '${q.name}', but the policy names '${from}' at ${elsewhere.slice(0, 5).join(", ")}${elsewhere.length > 5 ? ` and ${elsewhere.length - 5} more places` : ""}: those rules stop matching once it is gone; name '${q.name}' there`,
      provenance: prov,
    });
  if (l && l.features[MOVED_FEATURE] === from) {
    // The clone is complete (an apply stopped before the former qube was removed): the qube is planned as it is.
    if (isRunning(old)) {
      err(ctx, "move-running", `qube '${from}' is running, and its clone '${q.name}' was made before: what it writes now is not in '${q.name}'; stop it, then mark '${q.name}' to be cloned again (\`qvm-features ${q.name} ${MOVED_FEATURE} 'cloning ${from}'\`, which replaces its volumes) or remove '${from}' by hand to keep '${q.name}' as it is`, prov);
      return null;
    }
    const rm = planRemoval(ctx, old, prov);
    if (rm) markMoveRemoval(ctx, rm, from, q.name, l);
    return undefined;
  }
  if (l && isRunning(l)) {
    err(ctx, "move-running", `qube '${q.name}' is running, but its clone from '${from}' is not finished: stop it, and the next apply clones '${from}' again (its volumes are replaced)`, prov);
    return null;
  }
  let oldHalted = old;
  const requires: string[] = [];
  if (isRunning(old)) {
    // A network provider cannot stop while qubes connected to it run, and they cannot move to its clone before it exists.
    const clients = Object.values(ctx.live.qubes).filter((x) => x.name !== from && isRunning(x) && x.properties["netvm"]?.value === from).map((x) => x.name).sort();
    if (clients.length) {
      err(ctx, "move-running", `qube '${from}' provides network to running qubes (${clients.join(", ")}): its clone needs it halted, which they prevent; stop them (or point them at another netvm) first, then apply`, prov);
      return null;
    }
    if (ctx.options.restart !== "if-needed") {
      err(ctx, "move-running", `qube '${from}' is running: moving it to '${q.name}' clones its volumes, which needs it halted; use --restart=if-needed to stop it, or stop it first`, prov);
      return null;
    }
    const stop = add(ctx, phase, { id: `${from}.shutdown`, kind: "shutdown", target: `qube ${from}`, object: from, key: "power", calls: [call(calls.shutdown(from, { wait: true }))], before: "running", after: "halted", risk: "restart", effect: "needs-halt", provenance: prov });
    requires.push(stop.id);
    oldHalted = { ...old, state: "Halted" };
  }
  // The clone, as the calls below leave it.
  const rename = (v: unknown) => (v === from ? q.name : v);
  const props: Record<string, LiveQube["properties"][string]> = {};
  const sets: [string, string][] = [];
  for (const [name, p] of Object.entries(old.properties)) {
    if (p.default || name === "name") {
      if (p.default) props[name] = p;
      continue;
    }
    const value = rename(p.value);
    props[name] = { ...p, value: value as typeof p.value };
    if (name === "label" || name === "template") continue;
    if (specOf(q.class, name)?.access !== "rw") continue;
    sets.push([name, propertyPayload(value)]);
  }
  // What others need first: a disposable template or a network provider before the properties that name it (itself).
  const early = (n: string) => (n === "template_for_dispvms" || n === "provides_network" ? 0 : sets.some(([, v]) => v === q.name) && props[n]?.value === q.name ? 2 : 1);
  sets.sort((a, b) => early(a[0]) - early(b[0]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const features: Record<string, string> = {};
  // qubesd refuses to set the protected features (its own bookkeeping of preloaded disposables): the clone has none.
  for (const [k, v] of Object.entries(old.features)) if (k !== OWNER_FEATURE && k !== KEYS_FEATURE && k !== MOVED_FEATURE && !PROTECTED_FEATURES.has(k)) features[k] = v;
  const tags = managedTags(old.tags);
  const volumes: Record<string, LiveVolumeT> = {};
  const cloned = clonedVolumes(q.class).filter((v) => old.volumes?.[v]);
  for (const v of cloned) volumes[v] = { ...old.volumes![v]! };
  const devices: Record<string, LiveAssignment[]> = {};
  for (const [cls, list] of Object.entries(old.devices ?? {})) devices[cls] = list.map((a) => ({ ...a, options: { ...a.options } }));
  const live: LiveQube = {
    name: q.name,
    class: q.class,
    state: "Halted",
    properties: props,
    features: { ...features, [OWNER_FEATURE]: ctx.model.stack, ...(oldOwnership === "owned" && old.features[KEYS_FEATURE] !== undefined ? { [KEYS_FEATURE]: old.features[KEYS_FEATURE]! } : {}) },
    tags: [...tags],
    devices,
    volumes,
  };
  if (old.firewall) live.firewall = [...old.firewall];
  if (old.notes !== undefined) live.notes = old.notes;
  const label = old.properties["label"]?.value;
  const tpl = old.properties["template"]?.value;
  const built = build(
    ctx,
    `qube ${q.name}`,
    () => {
      const cs: StepCall[] = [];
      if (!l) {
        const o: CreateOptions = { class: q.class, name: q.name, label: String(label) };
        if (typeof tpl === "string") o.template = tpl === from ? q.name : tpl;
        if (!declaredPools(q, o) && cloned.length) {
          // As qvm-clone: the clone's volumes in the pools of the former's.
          o.pools = Object.fromEntries(cloned.map((v) => [v, old.volumes![v]!.pool]));
        }
        cs.push(call(calls.create(o)));
      }
      // First: the clone has started (an apply that stops before its end leaves a qube the next plan clones again, never another one).
      cs.push(call(calls.featureSet(q.name, MOVED_FEATURE, `cloning ${from}`)));
      cs.push(call(calls.featureSet(q.name, OWNER_FEATURE, ctx.model.stack)));
      for (const [name, payload] of sets) cs.push(call(calls.propertySet(name, payload, q.name)));
      for (const t of tags) cs.push(call(calls.tagSet(q.name, t)));
      if (old.firewall && !sameList(old.firewall, ["action=accept"])) cs.push(call(calls.firewallSet(q.name, old.firewall)));
      if (old.notes) cs.push(call(calls.notesSet(q.name, old.notes)));
      for (const list of Object.values(old.devices ?? {}))
        for (const a of list)
          // Again after a stop half-way: what is assigned already is not assigned twice (qubesd refuses it).
          if (!l?.devices?.[a.devclass]?.some((x) => x.backend === a.backend && x.port === a.port)) cs.push(call(calls.deviceAssign(q.name, { backendDomain: a.backend, portId: a.port, deviceId: a.deviceId, devclass: a.devclass, mode: a.mode as DeviceAssignment["mode"], options: { ...a.options }, frontendDomain: q.name })));
      for (const v of cloned) {
        cs.push(call(calls.volumeCloneFrom(from, v)));
        cs.push({ ...call(calls.volumeCloneTo(q.name, v, "0")), payload: "", payloadFromPrevious: true });
        const ov = old.volumes![v]!;
        cs.push(call(calls.volumeSetRevisionsToKeep(q.name, v, ov.revisions_to_keep)));
        if (!ov.rw) cs.push(call(calls.volumeSetRw(q.name, v, false)));
      }
      // Features after the data: some start work at once (a disposable template's preloads).
      for (const [k, v] of Object.entries(features)) cs.push(call(calls.featureSet(q.name, k, v)));
      // Last: the clone is complete.
      cs.push(call(calls.featureSet(q.name, MOVED_FEATURE, from)));
      return cs;
    },
    prov,
  );
  if (!built) return null;
  const what = cloned.length ? `its ${cloned.join(" and ")} volume${cloned.length > 1 ? "s" : ""} cloned` : "no volume to clone";
  const head = add(ctx, phase, {
    id: `${q.name}.create`,
    kind: "create",
    target,
    object: q.name,
    key: "",
    calls: built,
    before: l ? "an unfinished clone" : null,
    after: [q.class, typeof tpl === "string" ? `on ${tpl === from ? q.name : tpl}` : "", `label ${String(label)}`, `moved from ${from} (${what}, its settings copied)`].filter(Boolean).join(" · "),
    requires,
    movedFrom: from,
    provenance: prov,
  });
  if (typeof tpl === "string" && tpl !== from) head.requires.push(`${tpl}.create`);
  const rm = planRemoval(ctx, oldHalted, prov);
  if (!rm) return null;
  rm.requires.push(head.id);
  markMoveRemoval(ctx, rm, from, q.name, live);
  return { live, ownership: oldOwnership, head: head.id, wasRunning: isRunning(old) };
}

/** The calls that clone `from`'s root and private volumes onto `name`, then take the clone mark off (when it is on: qubesd refuses to remove a feature that is not set). */
function cloneCalls(name: string, from: string, marked = true): StepCall[] {
  const cs: StepCall[] = [];
  for (const vol of ["root", "private"]) {
    cs.push(call(calls.volumeCloneFrom(from, vol)));
    cs.push({ ...call(calls.volumeCloneTo(name, vol, "0")), payload: "", payloadFromPrevious: true });
  }
  if (marked) cs.push(call(calls.featureRemove(name, CLONE_FEATURE)));
  return cs;
}

/**
 * The source of a clone left unfinished on `l` by an apply that stopped: the clone mark
 * (\`x-qkit-cloning\`), or a qube the stack's create record names and no stack owns yet, declared
 * as a clone (stopped before the mark). Undefined otherwise.
 */
function unfinishedClone(ctx: Ctx, q: QubeDecl, l: LiveQube): string | undefined {
  const mark = l.features[CLONE_FEATURE];
  if (mark !== undefined && mark !== "") return mark;
  const src = q.source && "clone" in q.source ? q.source.clone : undefined;
  if (src !== undefined && !l.features[OWNER_FEATURE] && creationRecorded(ctx, q.name)) return src;
  return undefined;
}

/** The removal of a moved qube's former self: nothing is lost (its clone has its volumes), and the move's mark comes off after it. */
function markMoveRemoval(ctx: Ctx, rm: PlanStep, from: string, to: string, clone: LiveQube): void {
  rm.risk = "none";
  rm.movedTo = to;
  ctx.moves.set(from, { to, removal: rm });
  removeMoveMark(ctx, to, clone.features[MOVED_FEATURE] ?? from, [rm.id]);
}

/** The step that takes the move's mark off `qube` at the end (after `requires`). */
function removeMoveMark(ctx: Ctx, qube: string, mark: string, requires: string[]): void {
  const c = build(ctx, `${qube} feature ${MOVED_FEATURE}`, () => [call(calls.featureRemove(qube, MOVED_FEATURE))]);
  if (c) add(ctx, PHASE.record, { id: `${qube}.moved`, kind: "remove-feature", target: `qube ${qube}`, object: qube, key: `feature ${MOVED_FEATURE}`, calls: c, before: JSON.stringify(mark), after: "absent (the move is done)", requires });
}

/**
 * A moved qube's former self is removed after every step that takes a user off it (a qube's
 * `netvm`, `template`, `default_dispvm` … or a global property that named it): when one of those
 * is deferred (a running qube's template), so is the removal, with the reason.
 */
function orderMoves(ctx: Ctx): void {
  for (const [from, m] of ctx.moves) {
    if (!m.removal) continue;
    for (const s of ctx.steps) {
      if (s === m.removal) continue;
      const before =
        s.kind === "set-property" || s.kind === "reset-property" ? ctx.live.qubes[s.object]?.properties[s.key]?.value : s.kind === "set-global" || s.kind === "reset-global" ? ctx.live.globals[s.key]?.value : undefined;
      if (before === from && !m.removal.requires.includes(s.id)) m.removal.requires.push(s.id);
    }
    // A move is made in one apply: when a user cannot be moved over yet (a running qube's template),
    // the clone waits too, so the former qube is never left beside a clone it could diverge from.
    const create = ctx.steps.find((s) => s.kind === "create" && s.movedFrom === from);
    const waiting = m.removal.requires.map((id) => ctx.ids.get(id)).find((s) => s?.deferred && s !== create);
    if (create && waiting && !create.deferred) create.deferred = `the move of ${from} waits for ${waiting.id}, which is deferred (${waiting.deferred})`;
  }
}

function planQube(ctx: Ctx, q: QubeDecl, now: number): void {
  let l: LiveQube | undefined = ctx.live.qubes[q.name];
  const target = `qube ${q.name}`;
  let r = role(q, l);
  let phase = PHASE.qube(r);
  const prov = q.provenance;
  if (q.absent) {
    if (!l) return;
    if (!owned(ctx, q, l)) return;
    if (q.protect) {
      err(ctx, "protected", `qube '${q.name}' is declared absent and protected; remove \`protect: true\` to let it be removed`, prov);
      return;
    }
    planRemoval(ctx, l, prov);
    for (const where of stillNamed(ctx.model, q.name))
      ctx.warnings.push({ code: "absent-but-named", message: `qube '${q.name}' is declared absent and removed, but ${where} still names it; remove it there too`, provenance: prov });
    return;
  }
  let ownership: "create" | "owned" | "adopt";
  /** The remove step of a qube replaced (class change, `--allow-replace`): its creation waits for it. */
  let replaced: PlanStep | undefined;
  // A rename (moved_from): planned from the clone of the former qube, as it will be once its clone step ran.
  const move = q.moved_from !== undefined ? planMove(ctx, q, l, phase) : undefined;
  if (move === null) return;
  if (move) {
    l = move.live;
    ownership = move.ownership;
  } else if (!l) ownership = "create";
  else {
    const o = owned(ctx, q, l);
    if (!o) return;
    // Adopted, taken over or resumed: marked as the stack's, its keys converge from none.
    ownership = o;
    if (l.class !== q.class) {
      const change = `qube '${q.name}' is a ${l.class} on the system but declared as ${q.class}`;
      if (q.protect) {
        err(ctx, "protected", `${change}; a class change replaces the qube and loses its data, and it is protected: remove \`protect: true\` and use --allow-replace, or keep its class`, prov);
        return;
      }
      if (!ctx.options.allowReplace) {
        err(ctx, "class-change", `${change}; a class change replaces the qube (removed, then created again: its volumes and their data are lost): use --allow-replace to replace it, or keep its class, or use another name`, prov);
        return;
      }
      if (isRunning(l) && ctx.options.restart !== "if-needed") {
        err(ctx, "replace-running", `${change}; it is running, and replacing it means removing it: use --restart=if-needed to stop it, or stop it first`, prov);
        return;
      }
      const removed = planRemoval(ctx, l, prov, true);
      if (!removed) return;
      replaced = removed;
      l = undefined;
      ownership = "create";
      r = role(q, l);
      phase = PHASE.qube(r);
    }
  }
  const running = isRunning(l);
  const ignore = new Set(ownership === "create" ? [] : q.ignore_changes ?? []);
  // The keys another stack recorded are not ours to reset: an adopted qube starts from none.
  const recorded = ownership === "owned" ? parseKeys(l?.features[KEYS_FEATURE]) : new Set<string>();
  // A record edited by hand (or by another tool) may hold words that are no key: ignored, and dropped from the record.
  const oldKeys = new Set([...recorded].filter(isKey));
  const strange = [...recorded].filter((k) => !isKey(k));
  if (strange.length)
    ctx.warnings.push({
      code: "ownership-record",
      message: `qube '${q.name}': its ${KEYS_FEATURE} feature holds ${strange.map((k) => `'${k}'`).join(", ")}, which qkit never writes; ignored, and dropped from the record by the next apply`,
    });
  const newKeys = new Set<string>();
  const first: string[] = move ? [move.head] : [];
  let shutdownId: string | undefined;
  const needHalt = (step: PlanStep, what: string): void => {
    if (!running) return;
    step.effect = "needs-halt";
    if (ctx.options.restart === "if-needed") {
      if (!shutdownId) {
        const s = add(ctx, phase, {
          id: `${q.name}.shutdown`,
          kind: "shutdown",
          target,
          object: q.name,
          key: "power",
          calls: [call(calls.shutdown(q.name, { wait: true }))],
          before: "running",
          after: "halted",
          risk: "restart",
        });
        shutdownId = s.id;
        add(ctx, PHASE.start, { id: `${q.name}.restart`, kind: "start", target, object: q.name, key: "power", calls: [call(calls.start(q.name))], before: "halted", after: "running", risk: "restart", requires: [s.id] });
      }
      step.requires.push(shutdownId);
    } else {
      step.deferred = `${q.name} is running: ${what} waits for it to stop; use --restart=if-needed to stop it now`;
    }
  };

  // Creation or adoption.
  if (ownership === "create") {
    const label = q.properties["label"];
    if (typeof label !== "string") {
      err(ctx, "missing-label", `qube '${q.name}' needs a label to be created; add \`label:\``, prov);
      return;
    }
    const o: CreateOptions = { class: q.class, name: q.name, label };
    const tpl = q.properties["template"];
    if (typeof tpl === "string") o.template = tpl;
    else if (q.class === "DispVM") {
      err(ctx, "missing-template", `disposable '${q.name}' needs a template (a disposable template) to be created; add \`template:\``, prov);
      return;
    }
    const poolsDeclared = declaredPools(q, o);
    const source = q.source;
    if (source && "install" in source) {
      err(ctx, "template-not-installed", `template '${q.name}' is not on the system: install it first in dom0 (\`qvm-template install ${source.install}\`), then plan again`, prov);
      return;
    }
    const cycle = source && "clone" in source ? cloneCycle(ctx, q.name, source.clone) : undefined;
    if (cycle) {
      // Said once per cycle, at the qube of the cycle whose name sorts first.
      if (cycle.every((n) => n >= q.name))
        err(ctx, "clone-cycle", `qube '${q.name}' is to be cloned from ${cycle.map((n) => `'${n}'`).join(", cloned from ")}: none of them exists on the system, so none can be cloned first; clone one of them from a qube that exists`, q.keyProvenance?.["source"] ?? prov);
      return;
    }
    const built = build(
      ctx,
      `qube ${q.name}`,
      () => {
        const cs = [call(calls.create(o))];
        if (source && "clone" in source) {
          if (!ctx.live.qubes[source.clone] && !ctx.model.qubes.some((x) => x.name === source.clone)) throw new Error(`clone source '${source.clone}' does not exist`);
          // First the mark: an apply that stops before the volumes are cloned leaves a qube the next plan clones again.
          cs.push(call(calls.featureSet(q.name, CLONE_FEATURE, source.clone)));
          cs.push(call(calls.featureSet(q.name, OWNER_FEATURE, ctx.model.stack)));
          cs.push(...cloneCalls(q.name, source.clone));
        } else cs.push(call(calls.featureSet(q.name, OWNER_FEATURE, ctx.model.stack)));
        return cs;
      },
      prov,
    );
    if (!built) return;
    const after = [`${q.class}`, typeof tpl === "string" ? `on ${tpl}` : "", `label ${label}`, source && "clone" in source ? `clone of ${source.clone}` : ""].filter(Boolean).join(" · ");
    const s = add(ctx, phase, { id: `${q.name}.create`, kind: "create", target, object: q.name, key: "", calls: built, before: null, after, provenance: prov });
    const reqs: string[] = [];
    if (typeof tpl === "string") reqs.push(`${tpl}.create`, `${tpl}.p.template_for_dispvms`);
    if (source && "clone" in source) reqs.push(`${source.clone}.create`);
    reqs.push(...creationGlobals(q, typeof tpl === "string", poolsDeclared));
    if (replaced) reqs.push(replaced.id);
    s.requires.push(...reqs);
    first.push(s.id);
  } else if (l && !move && unfinishedClone(ctx, q, l)) {
    // A clone an apply created and stopped before its volumes were cloned (or before marking it): cloned again.
    const from = unfinishedClone(ctx, q, l)!;
    if (running) {
      err(ctx, "clone-running", `qube '${q.name}' is running, but its clone from '${from}' is not finished: stop it, and the next apply clones '${from}' again (its volumes are replaced)`, prov);
      return;
    }
    const built = build(ctx, `qube ${q.name}`, () => cloneCalls(q.name, from, !!l.features[CLONE_FEATURE]), prov);
    if (!built) return;
    const s = add(ctx, phase, {
      id: `${q.name}.create`,
      kind: "create",
      target,
      object: q.name,
      key: "",
      calls: built,
      before: "an unfinished clone",
      after: `${q.class} · clone of ${from} (its volumes cloned again)`,
      requires: [`${from}.create`],
      provenance: prov,
    });
    first.push(s.id);
    if (ownership === "adopt") {
      const a = add(ctx, phase, { id: `${q.name}.adopt`, kind: "adopt", target, object: q.name, key: OWNER_FEATURE, calls: [call(calls.featureSet(q.name, OWNER_FEATURE, ctx.model.stack))], before: l.features[OWNER_FEATURE] ?? null, after: ctx.model.stack, provenance: prov });
      a.requires.push(s.id);
      first.push(a.id);
    }
  } else if (ownership === "adopt" && !move) {
    // Another stack's qube (`--take-over`): said as a risk, with the stack it is taken from.
    const from = l!.features[OWNER_FEATURE];
    const takeOver = from !== undefined && from !== "" && from !== ctx.model.stack;
    const s = add(ctx, phase, {
      id: `${q.name}.adopt`,
      kind: "adopt",
      target,
      object: q.name,
      key: OWNER_FEATURE,
      calls: [call(calls.featureSet(q.name, OWNER_FEATURE, ctx.model.stack))],
      before: from ?? null,
      after: ctx.model.stack,
      ...(takeOver ? { risk: "take-over" as const, takeOverFrom: from } : {}),
      provenance: prov,
    });
    first.push(s.id);
  }
  ctx.first.set(q.name, first);
  const withFirst = (s: PlanStep): PlanStep => {
    for (const f of first) if (!s.requires.includes(f)) s.requires.unshift(f);
    return s;
  };
  const kp = (k: string) => q.keyProvenance?.[k] ?? prov;

  // Properties.
  const klass = q.class;
  for (const [name, declared] of Object.entries(q.properties)) {
    if (name === "name") continue;
    if (ownership === "create" && (name === "label" || (name === "template" && typeof declared === "string"))) {
      newKeys.add(`p:${name}`);
      continue;
    }
    if (ignore.has(name)) {
      if (oldKeys.has(`p:${name}`)) newKeys.add(`p:${name}`);
      continue;
    }
    const spec = specOf(klass, name);
    if (!spec || spec.access !== "rw") {
      err(ctx, "not-writable", `property '${name}' of ${klass} '${q.name}' ${spec ? "cannot be changed (read-only)" : "does not exist"}`, kp(name));
      continue;
    }
    newKeys.add(`p:${name}`);
    const cur = l?.properties[name];
    if (isDefault(declared)) {
      if (ownership === "create" || !cur || cur.default) continue;
      if (name === "template") {
        err(ctx, "cannot-reset", `the template of '${q.name}' cannot be reset; set it to a template`, kp(name));
        continue;
      }
      const c = build(ctx, `${q.name}.${name}`, () => [call(calls.propertyReset(name, q.name))], kp(name));
      if (!c) continue;
      const s = withFirst(add(ctx, phaseOfProperty(name, phase), { id: `${q.name}.p.${name}`, kind: "reset-property", target, object: q.name, key: name, calls: c, before: showProperty(cur), after: "default", provenance: kp(name) }));
      classifyProperty(ctx, s, spec.effect, running, needHalt, q.name, name);
      continue;
    }
    const cv = canonicalValue(spec, declared);
    if (!cv.ok) {
      err(ctx, "invalid-value", `${q.name}.${name}: ${cv.message}`, kp(name));
      continue;
    }
    if (ownership !== "create" && cur && !cur.default && sameValue(cur, cv.value)) continue;
    const payload = propertyPayload(cv.value);
    const c = build(ctx, `${q.name}.${name}`, () => [call(calls.propertySet(name, payload, q.name))], kp(name));
    if (!c) continue;
    const head = ownership === "create" && name === "netvm" && cv.value === null ? ctx.ids.get(`${q.name}.create`) : undefined;
    if (head) {
      // A new qube declared without network loses it in its create step, right after admin.vm.Create and
      // its ownership mark: it is never on the default netvm while the rest of the apply runs (nor after a
      // failure half-way), and a failure of this call leaves a qube the stack owns.
      head.calls.splice(head.calls.findIndex((x) => x.method === "admin.vm.feature.Set" && x.arg === OWNER_FEATURE) + 1, 0, ...c);
      head.after = `${head.after} · netvm none`;
      continue;
    }
    const pinned = ownership !== "create" && cur?.default && sameValue(cur, cv.value);
    const s = withFirst(
      add(ctx, phaseOfProperty(name, phase, cv.value), {
        id: `${q.name}.p.${name}`,
        kind: "set-property",
        target,
        object: q.name,
        key: name,
        calls: c,
        before: ownership === "create" ? null : showProperty(cur),
        after: showValue(cv.value) + (pinned ? " (pinned)" : ""),
        provenance: kp(name),
      }),
    );
    if (name === "netvm") {
      s.risk = cv.value === null ? "revokes-access" : "grants-access";
      if (running && typeof cv.value === "string") startProvider(ctx, cv.value, s);
    }
    addPropertyRequires(s, name, cv.value);
    if (ownership !== "create") classifyProperty(ctx, s, spec.effect, running, needHalt, q.name, name);
  }
  for (const k of oldKeys) {
    if (!k.startsWith("p:")) continue;
    const name = k.slice(2);
    if (name in q.properties) continue;
    const cur = l?.properties[name];
    if (!cur || cur.default) continue;
    if (cannotReset(klass, name)) continue; // cannot be reset: left as they are
    const spec = specOf(klass, name);
    const c = build(ctx, `${q.name}.${name}`, () => [call(calls.propertyReset(name, q.name))]);
    if (!c) continue;
    const s = withFirst(add(ctx, phaseOfProperty(name, phase), { id: `${q.name}.p.${name}`, kind: "reset-property", target, object: q.name, key: name, calls: c, before: showProperty(cur), after: "default (no longer declared)" }));
    classifyProperty(ctx, s, spec?.effect ?? "live", running, needHalt, q.name, name);
  }

  // Features.
  for (const [name, value] of Object.entries(q.features)) {
    if (name === OWNER_FEATURE || name === KEYS_FEATURE) {
      err(ctx, "reserved-feature", `feature '${name}' of '${q.name}' is written by qkit itself; remove it from the stack`, kp(`features.${name}`));
      continue;
    }
    if (name === "service.meminfo-writer" && value !== null) {
      // qubesd turns this feature into maxmem and deletes it: it would show as a change on every plan.
      err(ctx, "rewritten-feature", `feature service.meminfo-writer of '${q.name}' is turned into maxmem by qubesd and never kept; declare maxmem instead (0 disables memory balancing, default enables it)`, kp(`features.${name}`));
      continue;
    }
    if (ignore.has(`features.${name}`)) {
      if (oldKeys.has(`f:${name}`)) newKeys.add(`f:${name}`);
      continue;
    }
    newKeys.add(`f:${name}`);
    const cur = l?.features[name];
    if (value === null) {
      if (cur === undefined) continue;
      const c = build(ctx, `${q.name} feature ${name}`, () => [call(calls.featureRemove(q.name, name))], kp(`features.${name}`));
      if (c) withFirst(add(ctx, phase, { id: `${q.name}.f.${name}`, kind: "remove-feature", target, object: q.name, key: `feature ${name}`, calls: c, before: JSON.stringify(cur), after: "absent", provenance: kp(`features.${name}`), effect: featureEffect(name, running, ctx, q.name) }));
      continue;
    }
    if (cur === value) continue;
    const c = build(ctx, `${q.name} feature ${name}`, () => [call(calls.featureSet(q.name, name, value))], kp(`features.${name}`));
    if (c)
      withFirst(
        add(ctx, phase, {
          id: `${q.name}.f.${name}`,
          kind: "set-feature",
          target,
          object: q.name,
          key: `feature ${name}`,
          calls: c,
          before: cur === undefined ? (ownership === "create" ? null : "absent") : JSON.stringify(cur),
          after: JSON.stringify(value),
          provenance: kp(`features.${name}`),
          effect: featureEffect(name, running, ctx, q.name),
        }),
      );
  }
  for (const k of oldKeys) {
    if (!k.startsWith("f:")) continue;
    const name = k.slice(2);
    if (name in q.features) continue;
    const cur = l?.features[name];
    if (cur === undefined) continue;
    const c = build(ctx, `${q.name} feature ${name}`, () => [call(calls.featureRemove(q.name, name))]);
    if (c) withFirst(add(ctx, phase, { id: `${q.name}.f.${name}`, kind: "remove-feature", target, object: q.name, key: `feature ${name}`, calls: c, before: JSON.stringify(cur), after: "absent (no longer declared)" }));
  }

  // Tags (a managed set; qubesd's automatic tags are left alone).
  const liveTags = managedTags(l?.tags ?? []);
  let wantTags: string[] | undefined;
  if (q.tags && !ignore.has("tags")) {
    wantTags = managedTags([...new Set(q.tags)]);
    for (const t of wantTags) newKeys.add(`t:${t}`);
  } else if (q.tags && ignore.has("tags")) {
    for (const k of oldKeys) if (k.startsWith("t:")) newKeys.add(k);
  } else {
    const recorded = [...oldKeys].filter((k) => k.startsWith("t:")).map((k) => k.slice(2));
    if (recorded.length) wantTags = liveTags.filter((t) => !recorded.includes(t));
  }
  if (wantTags) {
    for (const t of liveTags)
      if (!wantTags.includes(t)) {
        const c = build(ctx, `${q.name} tag ${t}`, () => [call(calls.tagRemove(q.name, t))], kp("tags"));
        // Taken off first, with the revocations, unless that grants something (today or after apply): then with the grants.
        const risk = effectRisk(ctx.options.tagEffect?.(q.name, t, false), "revokes-access");
        // The declared tags are the qube's whole set (design 11.6, qubesd's own tags aside): a tag the stack
        // never recorded was added by hand or by another tool, and the plan says so (ignore_changes: [tags] keeps such tags).
        const after = q.tags && !oldKeys.has(`t:${t}`) ? "absent (tags: does not list it)" : "absent";
        if (c) withFirst(add(ctx, risk === "grants-access" ? PHASE.grant : PHASE.revoke, { id: `${q.name}.t.${t}`, kind: "remove-tag", target, object: q.name, key: `tag ${t}`, calls: c, before: "present", after, risk, provenance: kp("tags") }));
      }
    for (const t of wantTags)
      if (!liveTags.includes(t)) {
        const c = build(ctx, `${q.name} tag ${t}`, () => [call(calls.tagSet(q.name, t))], kp("tags"));
        // Added with the grants, after the qubes and the revoking policy writes, whatever it does: a tag
        // step runs between today's policy and the new one, so an early one could grant for a while.
        const risk = effectRisk(ctx.options.tagEffect?.(q.name, t, true), "grants-access");
        if (c) withFirst(add(ctx, PHASE.grant, { id: `${q.name}.t.${t}`, kind: "add-tag", target, object: q.name, key: `tag ${t}`, calls: c, before: ownership === "create" ? null : "absent", after: "present", risk, provenance: kp("tags") }));
      }
  }

  // Firewall.
  if (q.firewall && !ignore.has("firewall")) {
    newKeys.add("fw");
    let want: string[] | undefined;
    try {
      // qubesd refuses an empty rule list (admin.vm.firewall.Set needs a payload).
      if (!q.firewall.length) throw new Error("no rules; qubesd needs at least one: write `- action=drop` to block all traffic, or remove `firewall:` to accept all");
      want = canonicalFirewall(q.firewall, now);
    } catch (e) {
      err(ctx, "invalid-firewall-rule", `${q.name} firewall: ${e instanceof Error ? e.message : String(e)}`, kp("firewall"));
    }
    const cur = l?.firewall ?? ["action=accept"];
    if (want && (ownership === "create" ? !(want.length === 1 && want[0] === "action=accept") : !sameList(cur, want))) {
      const rules = q.firewall.map((r) => r.trim());
      const c = build(ctx, `${q.name} firewall`, () => [call(calls.firewallSet(q.name, rules))], kp("firewall"));
      if (c) withFirst(add(ctx, phase, { id: `${q.name}.fw`, kind: "set-firewall", target, object: q.name, key: "firewall", calls: c, before: ownership === "create" ? null : cur.join("\n"), after: want.join("\n"), risk: firewallRisk(ownership === "create" ? ["action=accept"] : cur, want), provenance: kp("firewall") }));
    }
  } else if (q.firewall && ignore.has("firewall")) {
    if (oldKeys.has("fw")) newKeys.add("fw");
  } else if (oldKeys.has("fw") && l?.firewall && !sameList(l.firewall, ["action=accept"])) {
    const c = build(ctx, `${q.name} firewall`, () => [call(calls.firewallSet(q.name, ["action=accept"]))]);
    // Back to qubesd's default, which accepts everything: it opens the network.
    if (c) withFirst(add(ctx, phase, { id: `${q.name}.fw`, kind: "set-firewall", target, object: q.name, key: "firewall", calls: c, before: l.firewall.join("\n"), after: "action=accept (no longer declared)", risk: firewallRisk(l.firewall, ["action=accept"]) }));
  }

  // Devices.
  planDevices(ctx, q, l, ownership, oldKeys, newKeys, phase, withFirst, needHalt);

  // Volumes (grow only).
  for (const [vol, d] of Object.entries(q.volumes ?? {})) {
    const cur = l?.volumes?.[vol];
    const prov_ = kp(`volumes.${vol}`);
    // A setting's own place when the stack gives one (the volume's, else the qube's).
    const at = (k: string) => q.keyProvenance?.[`volumes.${vol}.${k}`] ?? prov_;
    if (ownership !== "create" && !cur && !move) {
      err(ctx, "unknown-volume", `qube '${q.name}' has no volume '${vol}'`, prov_);
      continue;
    }
    if (d.size !== undefined) {
      newKeys.add(`v:${vol}.size`);
      if (cur && d.size < cur.size) err(ctx, "volume-shrink", `volume ${q.name}:${vol} is ${bytesText(cur.size)} on the system, more than the declared ${bytesText(d.size)}; volumes only grow: declare at least \`size: ${sizeText(cur.size)}\``, at("size"));
      else if (!cur || d.size > cur.size) {
        const c = build(ctx, `${q.name}:${vol}`, () => [call(calls.volumeResize(q.name, vol, d.size!))], at("size"));
        if (c) withFirst(add(ctx, phase, { id: `${q.name}.v.${vol}.size`, kind: "resize-volume", target, object: q.name, key: `volume ${vol} size`, calls: c, before: cur ? showSize(cur.size) : null, after: showSize(d.size), provenance: at("size") }));
      }
    }
    const setters: [keyof typeof d, (v: never) => AdminCall<void>][] = [
      ["revisions_to_keep", ((n: number) => calls.volumeSetRevisionsToKeep(q.name, vol, n)) as (v: never) => AdminCall<void>],
      ["rw", ((b: boolean) => calls.volumeSetRw(q.name, vol, b)) as (v: never) => AdminCall<void>],
      ["ephemeral", ((b: boolean) => calls.volumeSetEphemeral(q.name, vol, b)) as (v: never) => AdminCall<void>],
    ];
    for (const [key, mk] of setters) {
      const want = d[key];
      if (want === undefined) continue;
      newKeys.add(`v:${vol}.${key}`);
      if (cur && cur[key as keyof typeof cur] === want) continue;
      const c = build(ctx, `${q.name}:${vol}`, () => [call(mk(want as never))], at(key));
      if (!c) continue;
      const s = withFirst(add(ctx, phase, { id: `${q.name}.v.${vol}.${key}`, kind: "set-volume", target, object: q.name, key: `volume ${vol} ${key}`, calls: c, before: cur ? showValue(cur[key as keyof typeof cur] as boolean | number) : null, after: showValue(want), provenance: at(key) }));
      if (key === "rw" && ownership !== "create") needHalt(s, `volume ${vol} rw change`);
    }
  }

  // Notes.
  if (q.notes !== undefined && !ignore.has("notes")) {
    newKeys.add("notes");
    const cur = l?.notes ?? "";
    if (cur !== q.notes) {
      const c = build(ctx, `${q.name} notes`, () => [call(calls.notesSet(q.name, q.notes!))], kp("notes"));
      if (c) withFirst(add(ctx, phase, { id: `${q.name}.notes`, kind: "set-notes", target, object: q.name, key: "notes", calls: c, before: ownership === "create" ? null : `${cur.length} characters`, after: `${q.notes.length} characters`, provenance: kp("notes") }));
    }
  } else if (oldKeys.has("notes") && l?.notes) {
    const c = build(ctx, `${q.name} notes`, () => [call(calls.notesSet(q.name, ""))]);
    if (c) withFirst(add(ctx, phase, { id: `${q.name}.notes`, kind: "set-notes", target, object: q.name, key: "notes", calls: c, before: `${l.notes.length} characters`, after: "empty (no longer declared)" }));
  }

  // Power state (a moved qube whose former self ran runs again, unless declared halted).
  if ((q.state === "running" || (q.state === "any" && move?.wasRunning)) && !running) {
    add(ctx, PHASE.start, { id: `${q.name}.start`, kind: "start", target, object: q.name, key: "power", calls: [call(calls.start(q.name))], before: ownership === "create" ? null : "halted", after: "running", risk: "restart", requires: [...first], provenance: prov });
  } else if (q.state === "halted" && running) {
    const stop = add(ctx, phase, { id: `${q.name}.stop`, kind: "shutdown", target, object: q.name, key: "power", calls: [call(calls.shutdown(q.name, { wait: true }))], before: "running", after: "halted", risk: "restart", requires: [...first], provenance: prov });
    // Nothing running is stopped without --restart=if-needed, not even for `state: halted`.
    if (ctx.options.restart !== "if-needed") stop.deferred = `${q.name} is running: state halted waits for it to stop; use --restart=if-needed to stop it now`;
  }

  // `protect: true` is recorded with the keys: a qube whose block leaves the file is still never pruned.
  if (q.protect) newKeys.add(PROTECT_KEY);

  // The record of managed keys. Keys are added before any setting changes
  // (so an apply that fails half-way still knows what it may have set) and
  // removed last (once their settings were reset).
  const keysText = formatKeys(newKeys);
  const union = formatKeys([...oldKeys, ...newKeys]);
  if (ownership !== "owned" || move) {
    // Written by the first step (the creation, adoption or clone): a moved qube's record also keeps the keys of its former self, reset below.
    const head = ctx.ids.get(first[0]);
    const c = build(ctx, `${q.name} ${KEYS_FEATURE}`, () => [call(calls.featureSet(q.name, KEYS_FEATURE, move ? union : keysText))]);
    if (head && c) head.calls.splice(move ? head.calls.length - 1 : head.calls.length, 0, ...c);
    if (move && keysText !== union) {
      const r = build(ctx, `${q.name} ${KEYS_FEATURE}`, () => [call(calls.featureSet(q.name, KEYS_FEATURE, keysText))]);
      if (r) withFirst(add(ctx, PHASE.record, { id: `${q.name}.keys`, kind: "record-keys", target, object: q.name, key: KEYS_FEATURE, calls: r, before: union, after: keysText }));
    }
    return;
  }
  if (union !== (l?.features[KEYS_FEATURE] ?? "")) {
    const c = build(ctx, `${q.name} ${KEYS_FEATURE}`, () => [call(calls.featureSet(q.name, KEYS_FEATURE, union))]);
    if (c) {
      const early = add(ctx, PHASE.revoke, { id: `${q.name}.keys-first`, kind: "record-keys", target, object: q.name, key: KEYS_FEATURE, calls: c, before: l?.features[KEYS_FEATURE] ?? null, after: union });
      for (const x of ctx.steps) if (x !== early && x.object === q.name && x.target === target && !x.requires.includes(early.id)) x.requires.push(early.id);
    }
  }
  if (keysText !== union) {
    const c = build(ctx, `${q.name} ${KEYS_FEATURE}`, () => [call(calls.featureSet(q.name, KEYS_FEATURE, keysText))]);
    if (c) withFirst(add(ctx, PHASE.record, { id: `${q.name}.keys`, kind: "record-keys", target, object: q.name, key: KEYS_FEATURE, calls: c, before: union, after: keysText }));
  }
}

/** Bytes, with the binary unit when exact (`4294967296 (4 GiB)`). */
/** A size in a sentence: `2147483648 bytes (2 GiB)`. */
function bytesText(n: number): string {
  const shown = showSize(n);
  return shown === String(n) ? `${n} bytes` : `${n} bytes ${shown.slice(String(n).length + 1)}`;
}

/** A size as a stack writes it: `2GiB` when whole in a unit, else the number of bytes. */
function sizeText(n: number): string {
  for (const [unit, f] of [["TiB", 1024 ** 4], ["GiB", 1024 ** 3], ["MiB", 1024 ** 2]] as const) if (n >= f && n % f === 0) return `${n / f}${unit}`;
  return String(n);
}

function showSize(n: number): string {
  for (const [unit, f] of [["TiB", 1024 ** 4], ["GiB", 1024 ** 3], ["MiB", 1024 ** 2]] as const) if (n >= f && n % f === 0) return `${n} (${n / f} ${unit})`;
  return String(n);
}

/**
 * qubesd refuses to attach a running qube to a halted netvm ("Cannot
 * dynamically attach to stopped qube NAME", QubesVMNotStartedError): the provider is started first
 * (qubesd starts its own netvm chain).
 */
function startProvider(ctx: Ctx, provider: string, netvmStep: PlanStep): void {
  const l = ctx.live.qubes[provider];
  if (l && isRunning(l)) return;
  const id = `${provider}.start-for-netvm`;
  if (!ctx.ids.has(id))
    add(ctx, PHASE.netvm, {
      id,
      kind: "start",
      target: `qube ${provider}`,
      object: provider,
      key: "power",
      calls: [call(calls.start(provider))],
      before: l ? "halted" : null,
      after: "running (a running qube is attached to it)",
      risk: "restart",
      requires: [`${provider}.create`, `${provider}.p.provides_network`, `${provider}.p.netvm`],
    });
  netvmStep.requires.push(id);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** netvm changes go to the netvm phase (ordered by {@link orderNetvm}); giving up a role waits until dependents moved. */
function phaseOfProperty(name: string, phase: number, value?: unknown): number {
  if (name === "netvm") return PHASE.netvm;
  if ((name === "provides_network" || name === "template_for_dispvms") && value !== true) return PHASE.release;
  return phase;
}

function addPropertyRequires(s: PlanStep, name: string, value: unknown): void {
  if (typeof value !== "string") return;
  if (name === "netvm") s.requires.push(`${value}.create`, `${value}.p.provides_network`);
  else if (name === "default_dispvm" || name === "management_dispvm") s.requires.push(`${value}.create`, `${value}.p.template_for_dispvms`);
  else if (name === "template") s.requires.push(`${value}.create`, `${value}.p.template_for_dispvms`);
  else if (name === "guivm" || name === "audiovm") s.requires.push(`${value}.create`);
}

/**
 * What a global's new value needs first: the qube it names exists (qubesd
 * refuses a global naming a qube that does not: "Can't set default_template
 * to non-existing qube"), with its role where the global asks one.
 */
function addGlobalRequires(s: PlanStep, name: string, value: unknown): void {
  if (typeof value !== "string") return;
  if (name === "default_netvm") addPropertyRequires(s, "netvm", value);
  else if (name === "default_dispvm" || name === "management_dispvm") addPropertyRequires(s, name, value);
  else if (["default_template", "default_guivm", "default_audiovm", "clockvm", "updatevm"].includes(name)) s.requires.push(`${value}.create`);
}

/**
 * The globals qubesd reads when it creates a qube (the others are dynamic
 * defaults, read when used): an AppVM created without a template is made on
 * `default_template`, and volumes created without a pool go to the
 * `default_pool*` of that moment. A new qube that declares neither is created
 * after the stack's own values of those are set, so it gets the defaults the
 * stack declares, not the ones it replaces.
 */
function creationGlobals(q: QubeDecl, tplDeclared: boolean, poolsDeclared: boolean): string[] {
  const out: string[] = [];
  if (!tplDeclared && q.class === "AppVM") out.push("global.default_template");
  if (!poolsDeclared) out.push("global.default_pool", "global.default_pool_private", "global.default_pool_root", "global.default_pool_volatile");
  return out;
}

function classifyProperty(ctx: Ctx, s: PlanStep, effect: StepEffect, running: boolean, needHalt: (s: PlanStep, what: string) => void, qube: string, name: string): void {
  s.effect = effect === "none" ? "live" : effect;
  if (!running) return;
  if (effect === "needs-halt") needHalt(s, `${name} change`);
  else if (effect === "next-start") ctx.restart.add(qube);
}

function featureEffect(name: string, running: boolean, ctx: Ctx, qube: string): StepEffect {
  if (name.startsWith("service.")) {
    if (running) ctx.restart.add(qube);
    return "next-start";
  }
  return "live";
}

function deviceKey(d: { backend: string; port: string }): string {
  return `${d.backend}+${d.port}`;
}

/** The interface-code pattern of a selector class. */
function classPattern(cls: string): RegExp {
  const named: Record<string, string> = { network: "p02****", "usb-controller": "p0c03**", audio: "p0403**" };
  const code = named[cls] ?? cls;
  return new RegExp(`^${code.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".")}$`);
}

function planDevices(
  ctx: Ctx,
  q: QubeDecl,
  l: LiveQube | undefined,
  ownership: "create" | "owned" | "adopt",
  oldKeys: Set<string>,
  newKeys: Set<string>,
  phase: number,
  withFirst: (s: PlanStep) => PlanStep,
  needHalt: (s: PlanStep, what: string) => void,
): void {
  const target = `qube ${q.name}`;
  const classes = new Set(Object.keys(q.devices ?? {}));
  for (const k of oldKeys) if (k.startsWith("d:")) classes.add(k.split(":")[1]!);
  for (const devclass of [...classes].sort()) {
    const declared = q.devices?.[devclass];
    const liveList: LiveAssignment[] = l?.devices?.[devclass] ?? [];
    const prov = q.keyProvenance?.[`devices.${devclass}`] ?? q.provenance;
    if (!declared) {
      // No longer declared: unassign what this stack assigned.
      for (const k of oldKeys) {
        if (!k.startsWith(`d:${devclass}:`)) continue;
        const [backend, port] = k.slice(`d:${devclass}:`.length).split("+") as [string, string];
        for (const a of liveList.filter((x) => x.backend === backend && x.port === port)) unassign(a, "no longer declared");
      }
      continue;
    }
    const classes = ctx.live.deviceClasses;
    if (classes !== undefined && !classes.includes(devclass)) {
      const how = devclass === "usb" ? "install the USB proxy in dom0 and a USB qube (`qubes-usb-proxy`, sys-usb)" : `remove the ${devclass} devices, or add the extension that provides them`;
      err(ctx, "device-class-unavailable", `${q.name}: qubesd has no ${devclass} devices on this system (its device classes: ${classes.join(", ") || "none"}); ${how}`, declared[0]?.provenance ?? prov);
      continue;
    }
    const want: (LiveAssignment & { provenance?: Provenance })[] = [];
    for (const d of declared) {
      const backend = d.backend || "dom0";
      if (d.port) {
        want.push({ devclass, backend, port: d.port, deviceId: d.deviceId ?? "*", mode: d.mode, options: { ...d.options }, ...(d.provenance ? { provenance: d.provenance } : {}) });
        continue;
      }
      const offered = ctx.live.available[`${backend}:${devclass}`];
      if (!offered) {
        err(ctx, "device-backend", `${q.name}: cannot list ${devclass} devices of '${backend}' to resolve a selector`, d.provenance ?? prov);
        continue;
      }
      const found = offered.filter((o) => matches(d, o));
      if (!found.length) {
        err(ctx, "device-not-found", `${q.name}: no ${devclass} device of '${backend}' matches ${JSON.stringify(d.match ?? {})}; check the selector against \`qvm-device ${devclass} list\``, d.provenance ?? prov);
        continue;
      }
      for (const o of found) want.push({ devclass, backend, port: o.port, deviceId: o.deviceId, mode: d.mode, options: { ...d.options }, ...(d.provenance ? { provenance: d.provenance } : {}) });
    }
    const matched = new Set<LiveAssignment>();
    for (const w of want) {
      newKeys.add(`d:${devclass}:${deviceKey(w)}`);
      const cur = liveList.find((a) => !matched.has(a) && a.backend === w.backend && a.port === w.port && (w.deviceId === "*" || a.deviceId === w.deviceId || a.deviceId === "*"));
      if (cur) matched.add(cur);
      const label = `${devclass} ${w.backend}:${w.port}`;
      const p = w.provenance ?? prov;
      const assignment: DeviceAssignment = { backendDomain: w.backend, portId: w.port, deviceId: cur && w.deviceId === "*" ? cur.deviceId : w.deviceId, devclass, mode: w.mode as DeviceAssignment["mode"], options: w.options };
      if (cur && sameOptions(cur.options, w.options)) {
        if (cur.mode === w.mode) continue;
        const c = build(ctx, `${q.name} ${label}`, () => [call(calls.deviceSetAssignment(q.name, { backendDomain: cur.backend, portId: cur.port, deviceId: cur.deviceId, devclass }, w.mode as "required"))], p);
        if (c) withFirst(add(ctx, phase, { id: `${q.name}.d.${devclass}.${deviceKey(w)}.mode`, kind: "set-device-mode", target, object: q.name, key: label, calls: c, before: cur.mode, after: w.mode, effect: "next-start", provenance: p }));
        continue;
      }
      let unassignId: string | undefined;
      if (cur) unassignId = unassign(cur, "options change")?.id;
      const c = build(ctx, `${q.name} ${label}`, () => [call(calls.deviceAssign(q.name, { ...assignment, frontendDomain: q.name }))], p);
      if (!c) continue;
      const s = withFirst(
        add(ctx, phase, {
          id: `${q.name}.d.${devclass}.${deviceKey(w)}`,
          kind: "assign-device",
          target,
          object: q.name,
          key: label,
          calls: c,
          before: cur ? `${cur.mode} ${JSON.stringify(cur.options)}` : ownership === "create" ? null : "unassigned",
          after: `${w.mode}${Object.keys(w.options).length ? ` ${JSON.stringify(w.options)}` : ""}`,
          effect: devclass === "pci" ? "next-start" : "live",
          risk: "grants-access",
          provenance: p,
        }),
      );
      if (unassignId) s.requires.push(unassignId);
      if (devclass === "pci") s.requires.push(`${q.name}.p.virt_mode`);
    }
    for (const a of liveList) if (!matched.has(a)) unassign(a, "not declared");
  }

  function unassign(a: LiveAssignment, why: string): PlanStep | undefined {
    const label = `${a.devclass} ${a.backend}:${a.port}`;
    const c = build(ctx, `${q.name} ${label}`, () => [call(calls.deviceUnassign(q.name, { backendDomain: a.backend, portId: a.port, deviceId: a.deviceId, devclass: a.devclass }))]);
    if (!c) return undefined;
    const s = withFirst(
      add(ctx, PHASE.revoke, { id: `${q.name}.d.${a.devclass}.${deviceKey(a)}.unassign`, kind: "unassign-device", target, object: q.name, key: label, calls: c, before: a.mode, after: `unassigned (${why})`, risk: "revokes-access" }),
    );
    if (a.devclass === "pci" && a.mode === "required") needHalt(s, `unassigning required device ${a.port}`);
    return s;
  }
}

function matches(d: DeviceDecl, o: { interfaces: string[]; vendor?: string; product?: string; deviceId: string }): boolean {
  const m = d.match ?? {};
  if (d.deviceId && d.deviceId !== "*" && o.deviceId !== d.deviceId) return false;
  if (m.class && !o.interfaces.some((i) => classPattern(m.class!).test(i))) return false;
  if (m.vendor && !(o.vendor ?? "").toLowerCase().includes(m.vendor.toLowerCase())) return false;
  if (m.product && !(o.product ?? "").toLowerCase().includes(m.product.toLowerCase())) return false;
  return true;
}

function planRemoval(ctx: Ctx, l: LiveQube, provenance?: Provenance, replace = false): PlanStep | undefined {
  const target = `qube ${l.name}`;
  if (l.properties["installed_by_rpm"]?.value === true) {
    err(ctx, "installed-by-rpm", `qube '${l.name}' was installed by the package manager; remove it in dom0 with \`qvm-template remove ${l.name}\``, provenance);
    return undefined;
  }
  const r = l.class === "TemplateVM" ? 1 : l.properties["template_for_dispvms"]?.value === true ? 2 : l.properties["provides_network"]?.value === true ? 3 : 4;
  const phase = replace ? PHASE.replace : PHASE.remove(r);
  const requires: string[] = [];
  if (isRunning(l)) {
    const s = add(ctx, phase, { id: `${l.name}.shutdown`, kind: "shutdown", target, object: l.name, key: "power", calls: [call(calls.shutdown(l.name, { wait: true }))], before: "running", after: "halted", risk: "restart", effect: "needs-halt" });
    if (ctx.options.restart !== "if-needed") s.deferred = `${l.name} is running: its removal waits for it to stop; use --restart=if-needed to stop it now`;
    requires.push(s.id);
  }
  const s = add(ctx, phase, { id: `${l.name}.remove`, kind: "remove", target, object: l.name, key: "", calls: [call(calls.remove(l.name))], before: l.class, after: null, risk: "data-loss", effect: "needs-halt", requires });
  if (isRunning(l) && ctx.options.restart !== "if-needed") s.deferred = `${l.name} is running: its removal waits for it to stop; use --restart=if-needed to stop it now`;
  if (provenance) s.provenance = provenance;
  if (replace) s.replace = true;
  return s;
}

/**
 * What a firewall change does to access. The rules are tried in order, the first that matches
 * decides: a change that only deletes accept rules and inserts drop rules (the other rules in the
 * same order) can only take access away (`revokes-access`), as can any change of a firewall that
 * accepted everything; any other change may let a packet through that was dropped before
 * (`grants-access`), e.g. a firewall reset to `action=accept`.
 */
function firewallRisk(before: readonly string[], after: readonly string[]): PlanStep["risk"] {
  if (before.length === after.length && before.every((r, i) => r === after[i])) return "none";
  // Everything was let through (qubesd's default, and a new qube's): a change can only restrict.
  const acceptsAll = (rules: readonly string[]) => rules[0]?.trim() === "action=accept";
  if (acceptsAll(before)) return acceptsAll(after) ? "none" : "revokes-access";
  const isAccept = (r: string) => /(^|\s)action=accept(\s|$)/.test(r);
  const inBefore = new Set(before);
  const inAfter = new Set(after);
  const added = after.filter((r) => !inBefore.has(r));
  const removed = before.filter((r) => !inAfter.has(r));
  if (added.some(isAccept) || removed.some((r) => !isAccept(r))) return "grants-access";
  const keptBefore = before.filter((r) => inAfter.has(r));
  const keptAfter = after.filter((r) => inBefore.has(r));
  return keptBefore.length === keptAfter.length && keptBefore.every((r, i) => r === keptAfter[i]) ? "revokes-access" : "grants-access";
}

/**
 * qubesd refuses to remove a qube still in use once the plan ran (`Domain is in use`): a qube that
 * stays names it in a VM property set explicitly (a default does not count), a qube the plan
 * creates declares it, or a global property names it (default or not). Said at plan time with the
 * users, as qubesd does not say them (its message points at its journal).
 */
function planRemovalsInUse(ctx: Ctx): void {
  const removed = new Map(ctx.steps.filter((s) => s.kind === "remove").map((s) => [s.object, s]));
  if (!removed.size) return;
  const users = new Map<string, string[]>();
  const use = (name: string, who: string) => users.set(name, [...(users.get(name) ?? []), who]);
  // The plan's property steps by qube and key (looked up for every VM property of every qube).
  const propertySteps = new Map<string, PlanStep>();
  for (const s of ctx.steps)
    if (["set-property", "reset-property", "set-global", "reset-global"].includes(s.kind) && !propertySteps.has(`${s.object}\0${s.key}`)) propertySteps.set(`${s.object}\0${s.key}`, s);
  const stepFor = (object: string, key: string) => propertySteps.get(`${object}\0${key}`);
  const created = new Set(ctx.steps.filter((s) => s.kind === "create").map((s) => s.object));
  for (const l of Object.values(ctx.live.qubes)) {
    if (removed.has(l.name)) continue;
    for (const [prop, v] of Object.entries(l.properties)) {
      if (specOf(l.class, prop)?.type !== "vm") continue;
      const step = stepFor(l.name, prop);
      const after = step ? (step.kind === "reset-property" ? null : step.after) : v.default ? null : v.value;
      if (typeof after === "string" && removed.has(after)) use(after, `${l.name} (${prop})`);
    }
  }
  for (const q of ctx.model.qubes) {
    if (!created.has(q.name)) continue;
    // A replaced qube exists again before the qubes created after it (see PHASE.replace).
    for (const [prop, v] of Object.entries(q.properties)) if (typeof v === "string" && removed.has(v) && !removed.get(v)!.replace && specOf(q.class, prop)?.type === "vm") use(v, `${q.name} (${prop}, to be created)`);
  }
  for (const [prop, g] of Object.entries(ctx.live.globals)) {
    if (specOf("@global", prop)?.type !== "vm") continue;
    const step = stepFor("", prop);
    // A reset global takes qubesd's default, which the plan cannot know: not counted.
    const after = step ? (step.kind === "reset-global" ? null : step.after) : g.value;
    if (typeof after === "string" && removed.has(after)) use(after, `the global ${prop}`);
  }
  for (const [name, who] of users) {
    const s = removed.get(name)!;
    if (s.movedTo !== undefined) {
      const one = who.length === 1;
      // What to write for each user: a key on a qube (`netvm: NEW` on app) or a global.
      const fixes = who.sort().map((w) => {
        const m = /^(\S+) \(([a-z_]+)/.exec(w);
        if (w.startsWith("the global ")) return `\`${w.slice("the global ".length)}: ${s.movedTo}\` under global:`;
        return m ? `\`${m[2]}: ${s.movedTo}\` on ${m[1]}` : w;
      });
      err(ctx, "removal-in-use", `the move of '${name}' to '${s.movedTo}' removes '${name}', but ${who.join(", ")} still use${one ? "s" : ""} it after the plan; declare ${fixes.join(", ")} in the stack, or change ${one ? "it" : "them"} to '${s.movedTo}' by hand first`, s.provenance);
      continue;
    }
    err(ctx, "removal-in-use", `the plan removes qube '${name}', but ${who.sort().join(", ")} still use${who.length === 1 ? "s" : ""} it after the plan (qubesd refuses to remove a qube in use); point ${who.length === 1 ? "it" : "them"} at another qube first, or keep '${name}' declared`, s.provenance);
  }
}

/**
 * qubesd refuses to remove a qube that another qube names in a non-default VM property
 * (`netvm`, `template`, `default_dispvm` …): when both are removed, the one that names the
 * other goes first.
 */
function orderRemovals(ctx: Ctx): void {
  const removals = new Map(ctx.steps.filter((s) => s.kind === "remove").map((s) => [s.object, s]));
  for (const [name, step] of removals) {
    const l = ctx.live.qubes[name];
    if (!l) continue;
    for (const [prop, v] of Object.entries(l.properties)) {
      if (v.default || typeof v.value !== "string" || v.value === name) continue;
      const spec = specOf(l.class, prop);
      if (spec?.type !== "vm") continue;
      const other = removals.get(v.value);
      if (other && !other.requires.includes(step.id)) other.requires.push(step.id);
    }
  }
}

function planOrphans(ctx: Ctx): void {
  if (!ctx.options.prune) return;
  const declared = new Set(ctx.model.qubes.map((q) => q.name));
  for (const l of Object.values(ctx.live.qubes)) {
    if (l.features[OWNER_FEATURE] !== ctx.model.stack || declared.has(l.name) || ctx.moves.has(l.name) || l.class === "AdminVM") continue;
    // A template installed by the package manager is removed with qvm-template, never pruned.
    if (l.properties["installed_by_rpm"]?.value === true) continue;
    if (isProtected(l)) {
      ctx.warnings.push({
        code: "protected",
        message: `qube '${l.name}' is protected (an earlier apply recorded \`protect: true\` in ${KEYS_FEATURE}), so --prune leaves it; to remove it, declare it again with \`absent: true\` and apply`,
      });
      continue;
    }
    planRemoval(ctx, l);
    for (const where of stillNamed(ctx.model, l.name))
      ctx.warnings.push({ code: "pruned-but-named", message: `--prune removes qube '${l.name}', but ${where} still names it; remove it there too, or declare the qube again` });
  }
}

/** Whether an earlier apply recorded `protect: true` on the qube. */
function isProtected(l: LiveQube): boolean {
  return parseKeys(l.features[KEYS_FEATURE]).has(PROTECT_KEY);
}

/** Where the stack's policy rules and expectations name `name` (as source, target, `@dispvm:NAME` or a `target=`/`default_target=` parameter). */
function stillNamed(model: StackModel, name: string): string[] {
  const names = (x: string | undefined) => x === name || x === `@dispvm:${name}`;
  const out: string[] = [];
  for (const f of model.policy) {
    const lines = f.rules.split("\n");
    for (const [i, line] of lines.entries()) {
      const t = line.replace(/#.*/, "").trim().split(/\s+/);
      if (t.length < 4 || t[0]!.startsWith("!")) continue;
      const params = t.slice(5).map((p) => p.slice(p.indexOf("=") + 1));
      if (names(t[2]) || names(t[3]) || params.some(names)) {
        out.push(`policy file '${f.file}' (rule ${i + 1})`);
        break;
      }
    }
  }
  for (const e of model.expect)
    if ([e.source, e.target, e.target_is, ...(e.targets_include ?? []), ...(e.targets_exact ?? [])].some(names)) {
      out.push(`the expectation \`${e.service}${e.argument && e.argument !== "+" ? e.argument : ""} ${e.source} -> ${e.target}\``);
    }
  return out;
}

function planGlobals(ctx: Ctx): void {
  const dom0 = ctx.live.qubes["dom0"];
  const feature = globalsFeature(ctx.model.stack);
  const old = parseKeys(dom0?.features[feature]);
  const managed = new Set<string>();
  for (const [name, declared] of Object.entries(ctx.model.global ?? {})) {
    const spec = specOf("@global", name);
    const prov = ctx.model.globalProvenance?.[name];
    const at = prov ? { provenance: prov } : {};
    if (!spec || spec.access !== "rw") {
      err(ctx, "not-writable", `global property '${name}' ${spec ? "cannot be changed (read-only)" : "does not exist"}`, prov);
      continue;
    }
    // A global another stack manages is that stack's, as its qubes are: a conflict, or taken over with --take-over.
    const others = otherGlobalOwners(ctx, name);
    if (others.length && !ctx.options.takeOver) {
      err(ctx, "owned-by-other-stack", `global property '${name}' is managed by stack '${others[0]}' (dom0 feature ${globalsFeature(others[0]!)}); remove it from one of the stacks, or use --take-over to take it from stack '${others[0]}'`, prov);
      continue;
    }
    for (const other of others) takeOverGlobal(ctx, other, name);
    // The global's own step (when its value changes) says whose it was.
    const from = others.length ? { takeOverFrom: others[0]! } : {};
    managed.add(name);
    const cur = ctx.live.globals[name];
    if (isDefault(declared)) {
      if (!cur || cur.default) continue;
      const c = build(ctx, `global ${name}`, () => [call(calls.propertyReset(name))]);
      if (c) add(ctx, PHASE.global, { id: `global.${name}`, kind: "reset-global", target: "global", object: "", key: name, calls: c, before: showProperty(cur), after: "default", ...from, ...at });
      continue;
    }
    const cv = canonicalValue(spec, declared);
    if (!cv.ok) {
      err(ctx, "invalid-value", `global ${name}: ${cv.message}`, prov);
      continue;
    }
    if (cur && !cur.default && sameValue(cur, cv.value)) continue;
    const payload = propertyPayload(cv.value);
    const c = build(ctx, `global ${name}`, () => [call(calls.propertySet(name, payload))]);
    if (!c) continue;
    const s = add(ctx, PHASE.global, { id: `global.${name}`, kind: "set-global", target: "global", object: "", key: name, calls: c, before: showProperty(cur), after: showValue(cv.value), risk: name === "default_netvm" ? "grants-access" : "none", ...from, ...at });
    addGlobalRequires(s, name, cv.value);
  }
  for (const name of old) {
    if (managed.has(name) || name.startsWith("label:") || name.startsWith("label-use:") || name.startsWith("label-colour:") || name.startsWith("qube:")) continue;
    const cur = ctx.live.globals[name];
    if (!cur || cur.default) continue;
    // No default to go back to (default_kernel): no longer managed, its value stays.
    if (cannotReset("@global", name)) continue;
    const c = build(ctx, `global ${name}`, () => [call(calls.propertyReset(name))]);
    if (c) add(ctx, PHASE.global, { id: `global.${name}`, kind: "reset-global", target: "global", object: "", key: name, calls: c, before: showProperty(cur), after: "default (no longer declared)" });
  }
  // The labels the stack created stay recorded while they exist and are not removed by this plan; new ones are added.
  const removedLabels = new Set(ctx.steps.filter((s) => s.kind === "remove-label").map((s) => labelToken(s.object)));
  const createdLabels = ctx.steps.filter((s) => s.kind === "create-label").map((s) => labelToken(s.object));
  // Labels it declares that exist and it did not create: recorded as used (`label-use:`), so another stack's `--prune` leaves them.
  const owned = new Set([...old].filter((t) => t.startsWith("label:")).map((t) => t.slice(6)));
  const uses = Object.keys(ctx.model.labels ?? {})
    .filter((n) => ctx.live.labels[n] !== undefined && !owned.has(n))
    .map((n) => `label-use:${n}`);
  const keptLabels = [...old].filter((t) => t.startsWith("label:") && ctx.live.labels[t.slice(6)] !== undefined && !removedLabels.has(t));
  // The colour each kept or created label was created with stays beside it.
  const oldColours = recordedColours(old);
  const colourTokens = [
    ...keptLabels.flatMap((t) => (oldColours.has(t.slice(6)) ? [colourToken(t.slice(6), oldColours.get(t.slice(6))!)] : [])),
    ...ctx.steps.filter((s) => s.kind === "create-label").map((s) => colourToken(s.object, s.after ?? "")),
  ];
  const labels = [...keptLabels, ...createdLabels, ...colourTokens, ...uses];
  const text = formatKeys([...managed, ...labels]);
  // What the record holds when this step runs: the early record (labels and qubes to create), when
  // the plan writes one. The creations it names are dropped here, once their qubes are marked.
  const early = ctx.ids.get("global.keys-create") ?? ctx.ids.get("global.keys-labels");
  const base = early ? (early.after ?? "") : formatKeys(old);
  if (text !== base && dom0) {
    const c = build(ctx, "dom0 globals record", () => [text === "" ? call(calls.featureRemove("dom0", feature)) : call(calls.featureSet("dom0", feature, text))]);
    if (c) {
      const s = add(ctx, PHASE.record, { id: "global.keys", kind: "record-keys", target: "global", object: "", key: feature, calls: c, before: early ? early.after : (dom0.features[feature] ?? null), after: text || null });
      // A label leaves the record only once it is gone (record first, drop last, as a qube's keys);
      // a creation once its qube is marked (the create step marks it) or adopted again.
      s.requires.push(...ctx.steps.filter((x) => x.kind === "remove-label" || x.kind === "create" || x.kind === "adopt").map((x) => x.id));
    }
  }
}

/**
 * After ordering: a label whose removal is deferred (a qube using it is
 * running) stays in the globals record, so a later `--prune` still removes
 * it; the record step is rewritten, or dropped when nothing else changes.
 */
function keepDeferredLabels(ctx: Ctx, steps: PlanStep[]): void {
  const oldColours = recordedColours(parseKeys(ctx.live.qubes["dom0"]?.features[globalsFeature(ctx.model.stack)]));
  const kept = steps
    .filter((s) => s.kind === "remove-label" && s.deferred)
    .flatMap((s) => [labelToken(s.object), ...(oldColours.has(s.object) ? [colourToken(s.object, oldColours.get(s.object)!)] : [])]);
  const i = steps.findIndex((s) => s.id === "global.keys");
  if (!kept.length || i < 0) return;
  const rec = steps[i]!;
  const feature = globalsFeature(ctx.model.stack);
  const text = formatKeys([...parseKeys(rec.after ?? ""), ...kept]);
  if (text === (rec.before ?? "")) {
    steps.splice(i, 1);
    return;
  }
  rec.calls = [call(calls.featureSet("dom0", feature, text))];
  rec.after = text;
}

/**
 * The clock qube (`clockvm` after the plan) keeps the time of every qube with
 * its `service.clocksync`: a plan that removes or disables that feature there
 * stops it, which deserves a word.
 */
function warnClocksync(ctx: Ctx): void {
  const declared = ctx.model.global?.["clockvm"];
  const clock = typeof declared === "string" ? declared : declared === undefined ? ctx.live.globals["clockvm"]?.value : null;
  if (typeof clock !== "string" || clock === "") return;
  const s = ctx.steps.find((x) => x.object === clock && x.key === "feature service.clocksync" && (x.kind === "remove-feature" || x.after === '""'));
  if (s)
    ctx.warnings.push({
      code: "clockvm-clocksync",
      message: `qube '${clock}' is the clock qube (clockvm), and step ${s.id} ${s.kind === "remove-feature" ? "removes" : "disables"} its service.clocksync: no qube would keep the time; keep the service there, or make another qube the clockvm`,
    });
}

/** The other stacks whose `x-qkit-globals-<stack>` feature on dom0 records global `name`. */
function otherGlobalOwners(ctx: Ctx, name: string): string[] {
  const features = ctx.live.qubes["dom0"]?.features ?? {};
  const mine = globalsFeature(ctx.model.stack);
  return Object.keys(features)
    .filter((f) => f.startsWith(globalsFeature("")) && f !== mine && parseKeys(features[f]).has(name))
    .map((f) => f.slice(globalsFeature("").length))
    .sort();
}

/** `--take-over` of a global: it leaves the record of the stack that managed it (that stack no longer resets it). */
function takeOverGlobal(ctx: Ctx, other: string, name: string): void {
  const feature = globalsFeature(other);
  const id = `global.keys-${other}`;
  const before = ctx.live.qubes["dom0"]?.features[feature] ?? "";
  const existing = ctx.ids.get(id);
  const keys = parseKeys(existing ? (existing.after ?? "") : before);
  keys.delete(name);
  const text = formatKeys(keys);
  const c = build(ctx, `dom0 globals record of ${other}`, () => [text === "" ? call(calls.featureRemove("dom0", feature)) : call(calls.featureSet("dom0", feature, text))]);
  if (!c) return;
  ctx.warnings.push({ code: "take-over", message: `global property '${name}' is taken over from stack '${other}' (--take-over): '${other}' no longer manages it and will refuse to plan it` });
  if (existing) {
    existing.calls = c;
    existing.after = text || null;
  } else add(ctx, PHASE.record, { id, kind: "record-keys", target: "global", object: "", key: feature, calls: c, before, after: text || null, takeOverFrom: other });
}

function planPolicy(ctx: Ctx): void {
  const stack = ctx.model.stack;
  const declared = new Set<string>();
  for (const f of ctx.model.policy ?? []) {
    const key = policyKey(stack, f);
    if (declared.has(key)) {
      err(ctx, "duplicate-policy-file", `policy file ${key} is declared twice`, f.provenance);
      continue;
    }
    declared.add(key);
    const include = key.startsWith("include/");
    const name = include ? key.slice("include/".length) : key;
    const text = policyText(stack, f.rules);
    const cur = ctx.live.policy[key];
    if (cur && !hasStackHeader(stack, cur.text) && !ctx.options.adopt) {
      err(ctx, "policy-not-owned", `policy file ${key} exists and was not written by stack '${stack}' (no qkit header); rename the file in the stack, or use --adopt to overwrite it`, f.provenance);
      continue;
    }
    if (!cur && ctx.live.policyNames.includes(key)) {
      err(ctx, "policy-unreadable", `policy file ${key} is listed but could not be read`, f.provenance);
      continue;
    }
    if (cur && cur.text === text) continue;
    const token = cur ? cur.token : "new";
    const rules = ruleLineCount(f.rules);
    const was = cur ? ruleLineCount(cur.text) : 0;
    // Ordered by what it does to the decisions: revocations only → first, with the other revocations; anything granted or changed → after the qubes.
    const eff = ctx.options.policyEffect?.(key, cur?.text, text);
    const revokeOnly = !!eff && eff.grant === 0 && eff.change === 0 && eff.revoke > 0;
    const risk = effectRisk(eff, "grants-access");
    const s = add(ctx, revokeOnly ? PHASE.revoke : PHASE.grant, {
      id: `policy.${key}`,
      kind: "write-policy",
      target: `policy ${include ? key : `${key}.policy`}`,
      object: key,
      key: "",
      calls: [{ method: include ? "policy.include.Replace" : "policy.Replace", dest: "dom0", arg: name, payload: `${token}\n${text}` }],
      // Counted alike on both sides (rule lines, not comments, the header or blank lines).
      before: cur ? `${was} rule${was === 1 ? "" : "s"}` : null,
      after: `${rules} rule${rules === 1 ? "" : "s"}`,
      risk,
      ...(cur ? { diff: lineDiff(cur.text.replace(/\n$/, ""), text.replace(/\n$/, "")) } : {}),
      ...(f.provenance ? { provenance: f.provenance } : {}),
    });
    if (!revokeOnly) s.requires.push(...ctx.steps.filter((x) => x.kind === "create" || x.kind === "add-tag").map((x) => x.id));
  }
  const writes = ctx.steps.filter((x) => x.kind === "write-policy").map((x) => x.id);
  for (const [key, cur] of Object.entries(ctx.live.policy)) {
    if (declared.has(key) || !isStackPolicyName(stack, key) || !hasStackHeader(stack, cur.text)) continue;
    const include = key.startsWith("include/");
    const name = include ? key.slice("include/".length) : key;
    // A file of deny rules (or of rules that narrow an ask) grants when it goes: such a removal is
    // marked so and goes with the grants, after the stack's writes; one that only revokes goes first.
    const eff = ctx.options.policyEffect?.(key, cur.text, undefined);
    const grants = !!eff && (eff.grant > 0 || eff.change > 0);
    const s = add(ctx, grants ? PHASE.grant : PHASE.revoke, {
      id: `policy.${key}`,
      kind: "remove-policy",
      target: `policy ${include ? key : `${key}.policy`}`,
      object: key,
      key: "",
      calls: [{ method: include ? "policy.include.Remove" : "policy.Remove", dest: "dom0", arg: name, payload: cur.token }],
      before: `${ruleLineCount(cur.text)} rule${ruleLineCount(cur.text) === 1 ? "" : "s"}`,
      after: null,
      risk: effectRisk(eff, "revokes-access"),
    });
    if (grants) s.requires.push(...writes, ...ctx.steps.filter((x) => x.kind === "create" || x.kind === "add-tag").map((x) => x.id));
  }
}

/**
 * Orders the netvm changes so that no intermediate state has a loop
 * (qubesd refuses one): repeatedly take the first change whose new netvm
 * does not lead back to the qube in the current wiring; when every
 * remaining change would close a loop (two providers swapped), the first
 * one goes through `none` first. Returns the step ids in order.
 */
/** Network provider → the running qubes connected to it, on the live system. */
function runningClients(live: LiveSystem): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const q of Object.values(live.qubes)) {
    const v = q.properties["netvm"]?.value;
    if (typeof v !== "string" || v === "" || !isRunning(q)) continue;
    out.set(v, [...(out.get(v) ?? []), q.name]);
  }
  return out;
}

function orderNetvm(ctx: Ctx): string[] {
  const cur = new Map<string, string | null>();
  for (const q of Object.values(ctx.live.qubes)) {
    const v = q.properties["netvm"]?.value;
    cur.set(q.name, typeof v === "string" && v !== "" ? v : null);
  }
  const defaultNetvm = (() => {
    const g = ctx.model.global?.["default_netvm"];
    if (typeof g === "string") return g;
    const v = ctx.live.globals["default_netvm"]?.value;
    return typeof v === "string" && v !== "" ? v : null;
  })();
  const pending = ctx.steps.filter((s) => s.key === "netvm" && (s.kind === "set-property" || s.kind === "reset-property") && !s.deferred);
  const finalOf = (s: PlanStep): string | null => {
    if (s.kind === "reset-property") return ctx.live.qubes[s.object]?.class === "TemplateVM" ? null : defaultNetvm;
    const a = s.after?.replace(/ \(pinned\)$/, "") ?? "none";
    return a === "none" ? null : a;
  };
  // Providers first: by the depth of each qube in the final wiring (topological order of the targets).
  const final = new Map(cur);
  for (const s of pending) final.set(s.object, finalOf(s));
  const depth = (q: string): number => {
    let d = 0;
    const seen = new Set<string>();
    for (let n = final.get(q) ?? null; n !== null && !seen.has(n); n = final.get(n) ?? null) (seen.add(n), d++);
    return d;
  };
  const depths = new Map(pending.map((s) => [s.id, depth(s.object)]));
  pending.sort((a, b) => depths.get(a.id)! - depths.get(b.id)!);
  const loops = (qube: string, to: string | null): boolean => {
    const seen = new Set<string>();
    for (let n = to; n !== null && n !== undefined; n = cur.get(n) ?? null) {
      if (n === qube) return true;
      if (seen.has(n)) return false;
      seen.add(n);
    }
    return false;
  };
  const order: string[] = [];
  while (pending.length) {
    const i = pending.findIndex((s) => !loops(s.object, finalOf(s)));
    if (i >= 0) {
      const [s] = pending.splice(i, 1);
      cur.set(s!.object, finalOf(s!));
      order.push(s!.id);
      continue;
    }
    const s = pending[0]!;
    const c = build(ctx, `${s.object}.netvm`, () => [call(calls.propertySet("netvm", "", s.object))]);
    if (!c) break;
    const via = add(ctx, PHASE.netvm, {
      id: `${s.object}.p.netvm.none`,
      kind: "set-property",
      target: s.target,
      object: s.object,
      key: "netvm (transient)",
      calls: c,
      before: s.before,
      after: "none (to avoid a netvm loop)",
      requires: s.requires.filter((r) => r.endsWith(".create") || r.endsWith(".adopt") || r.endsWith(".shutdown")),
    });
    cur.set(s.object, null);
    order.push(via.id);
  }
  return order;
}
