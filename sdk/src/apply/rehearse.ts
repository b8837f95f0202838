/**
 * The rehearsal: before touching the machine, the plan's steps run on an
 * in-process simulator seeded from what the plan read, through the same
 * executor and the SDK. A step the simulator refuses (as qubesd would) stops
 * the apply before any call reaches the machine.
 */
import { PolicyAdmin } from "../policy-admin.js";
import { Qubes } from "../qubes.js";
import { MemoryPolicyStore, Simulator, simulatorTransport } from "../sim/index.js";
import { showProperty } from "./canonical.js";
import { executePlan, memoryJournal, type ApplyResult } from "./execute.js";
import { adminPolicyTarget } from "./policy-target.js";
import { KEYS_FEATURE, globalsFeature, parseKeys } from "./keys.js";
import { readLight } from "./read.js";
import type { LiveSystem, Plan, PlanStep, SideEffect } from "./types.js";

const CLASS_ORDER: Record<string, number> = { TemplateVM: 0, StandaloneVM: 1, AppVM: 2, DispVM: 3 };
const POWER = new Set(["Running", "Paused", "Suspended"]);

/**
 * A simulator holding the live system as read: qubes with their class,
 * template, explicit properties, features, tags, power state, and (where
 * read) firewall, assignments, volumes and notes; global properties, labels,
 * pools, devices offered, and the policy files read.
 */
export function simulatorFromLive(live: LiveSystem): Simulator {
  const files: Record<string, string> = {};
  for (const [key, f] of Object.entries(live.policy)) files[f.include ? key : `${key}.policy`] = f.text;
  const sim = new Simulator({ policy: new MemoryPolicyStore(files) });
  const app = sim.app;
  let index = Math.max(0, ...[...app.labels.keys()]) + 1;
  for (const [name, colour] of Object.entries(live.labels)) {
    if ([...app.labels.values()].some((l) => l.name === name)) continue;
    app.labels.set(index, { index, name, color: colour || "0x000000" });
    index++;
  }
  for (const p of live.pools)
    if (!app.pools.has(p)) app.pools.set(p, { name: p, driver: "file-reflink", config: { dir_path: `/var/lib/qubes/${p}`, driver: "file-reflink", name: p, revisions_to_keep: "1" }, volumes: [] });
  const qubes = Object.values(live.qubes)
    .filter((q) => q.class in CLASS_ORDER)
    .sort((a, b) => CLASS_ORDER[a.class]! - CLASS_ORDER[b.class]! || (a.name < b.name ? -1 : 1));
  for (const l of qubes) {
    const tpl = l.properties["template"]?.value;
    const label = l.properties["label"]?.value;
    app.addQube(l.class, l.name, typeof label === "string" ? label : "red", {
      ...(typeof tpl === "string" ? { template: tpl } : {}),
      ...(l.class === "DispVM" ? { dispid: app.newDispid() } : {}),
      // qubesd's own number, so what derives from it (`ip`, `visible_ip`) is the live value.
      ...(typeof l.qid === "number" && ![...app.domains.values()].some((d) => d.qid === l.qid) ? { qid: l.qid } : {}),
      silentCreate: true,
    });
  }
  for (const l of [...qubes, ...(live.qubes["dom0"] ? [live.qubes["dom0"]] : [])]) {
    const q = app.domains.get(l.name);
    if (!q) continue;
    for (const [name, p] of Object.entries(l.properties)) if (!p.default && q.hasProp(name)) q.values.set(name, p.value);
    q.features.clear();
    for (const [k, v] of Object.entries(l.features)) q.features.set(k, v);
    q.tags.clear();
    for (const t of l.tags) q.tags.add(t);
    if (l.firewall) q.firewall = [...l.firewall];
    if (l.notes !== undefined) q.notes = l.notes;
    for (const [name, v] of Object.entries(l.volumes ?? {})) {
      const vol = q.volumes.get(name);
      if (!vol) continue;
      vol.size = v.size;
      vol.revisionsToKeep = v.revisions_to_keep;
      vol.rw = v.rw;
      vol.ephemeral = v.ephemeral;
    }
    for (const list of Object.values(l.devices ?? {}))
      for (const a of list) q.assignments.push({ devclass: a.devclass, backend: a.backend, portId: a.port, deviceId: a.deviceId, mode: a.mode, options: Object.entries(a.options) });
    if (l.class !== "AdminVM" && POWER.has(l.state)) {
      q.power = l.state as "Running";
      q.xid = app.allocXid();
      q.startTime = "0.0";
    }
  }
  for (const [name, p] of Object.entries(live.globals)) if (!p.default && app.hasProp(name)) app.values.set(name, p.value);
  for (const list of Object.values(live.available)) {
    for (const d of list) {
      const backend = app.domains.get(d.backend);
      if (!backend || backend.exposed.some((e) => e.devclass === d.devclass && e.portId === d.port)) continue;
      const info: Array<[string, string]> = [];
      if (d.product !== undefined) info.push(["product", d.product]);
      if (d.vendor !== undefined) info.push(["vendor", d.vendor]);
      info.push(["interfaces", d.interfaces.join("")]);
      backend.exposed.push({ devclass: d.devclass, portId: d.port, deviceId: d.deviceId, info });
    }
  }
  return sim;
}

/** The outcome of a rehearsal: the executor's result on the simulator, the simulator afterwards, and what qubesd changed on its own. */
export interface Rehearsal {
  result: ApplyResult;
  simulator: Simulator;
  /**
   * The changes the steps did not ask for, which qubesd makes as their
   * consequence (qubes on the default netvm follow a new `default_netvm`, a
   * new `clockvm` gets `service.clocksync` and the old one loses it, `guivm-*`
   * tags follow `guivm` …): every difference between the simulated copy
   * before and after the steps, on qubes that existed before and still do,
   * that no step names. Features are compared on the qubes whose features
   * were all read ({@link Plan.scope} `focus`).
   */
  sideEffects: SideEffect[];
}

/** Runs `plan` on a simulator seeded from `live`. */
export async function rehearse(plan: Plan, live: LiveSystem): Promise<Rehearsal> {
  const simulator = simulatorFromLive(live);
  const transport = simulatorTransport(simulator);
  const qubes = new Qubes({ transport });
  const policy = adminPolicyTarget(new PolicyAdmin(transport));
  const focus = plan.scope.focus ?? [];
  // Read back the same way before and after: differences of the copy itself (its computed defaults) cancel out.
  const before = await readLight(qubes, policy, { focus });
  const result = await executePlan(plan, { qubes, policy }, { journal: memoryJournal() });
  const after = await readLight(qubes, policy, { focus });
  return { result, simulator, sideEffects: sideEffectsOf(plan, before, after, new Set(focus)) };
}

/** Whether a value read back (`default (x)`, `"1"`, `absent`, `present`) is what a step set (its `after`). */
function holds(stepAfter: string | null, seen: string): boolean {
  if (stepAfter === null) return true;
  if (stepAfter.startsWith("default")) return seen.startsWith("default");
  if (stepAfter.startsWith("absent")) return seen === "absent";
  // A property set to none (`kernel`, `netvm`…) reads back empty.
  if (stepAfter === "none" && seen === "") return true;
  // A property set to the value it inherited is shown pinned (`2 (pinned)`).
  return seen === stepAfter || stepAfter === `${seen} (pinned)`;
}

function sideEffectsOf(plan: Plan, before: LiveSystem, after: LiveSystem, focus: Set<string>): SideEffect[] {
  // The last step (in plan order) that sets each setting: what the setting should read once the plan ran.
  const named = new Map<string, PlanStep>();
  for (const s of plan.steps) if (!s.deferred) named.set(`${s.object}\0${s.key}`, s);
  /** Whether the stack manages a setting (its ownership records once the plan ran: a qube's keys, the globals). */
  const globalsRecord = Object.entries(after.qubes["dom0"]?.features ?? {}).find(([f]) => f === globalsFeature(plan.stack))?.[1];
  const managed = (qube: string, key: string): boolean => {
    if (qube === "") return parseKeys(globalsRecord).has(key);
    const keys = parseKeys(after.qubes[qube]?.features[KEYS_FEATURE]);
    if (key.startsWith("feature ")) return keys.has(`f:${key.slice(8)}`);
    if (key.startsWith("tag ")) return keys.has(`t:${key.slice(4)}`);
    return keys.has(`p:${key}`);
  };
  const out: SideEffect[] = [];
  const add = (qube: string, key: string, b: string, a: string) => {
    const step = named.get(`${qube}\0${key}`);
    if (step !== undefined && step.kind !== "create" && step.kind !== "remove") {
      // qubesd changed what the step set (a later step's consequence): the stack is not matched after apply.
      if (!holds(step.after, a)) out.push({ qube, key, before: step.after ?? b, after: a, managed: true, undoes: step.id });
      return;
    }
    if (b === a) return;
    // A managed property still at its default was declared `default`: following a new default is what it says.
    const followsDefault = b.startsWith("default") && a.startsWith("default");
    out.push({ qube, key, before: b, after: a, ...(!followsDefault && managed(qube, key) ? { managed: true } : {}) });
  };
  for (const name of Object.keys(before.globals).sort()) add("", name, showProperty(before.globals[name]), showProperty(after.globals[name]));
  for (const name of Object.keys(before.qubes).sort()) {
    const b = before.qubes[name]!;
    const a = after.qubes[name];
    // Created, removed or replaced by the plan: its block says what it is.
    if (!a || a.class !== b.class || named.has(`${name}\0`)) continue;
    for (const p of [...new Set([...Object.keys(b.properties), ...Object.keys(a.properties)])].sort()) add(name, p, showProperty(b.properties[p]), showProperty(a.properties[p]));
    if (focus.has(name) || b.class === "AdminVM")
      for (const f of [...new Set([...Object.keys(b.features), ...Object.keys(a.features)])].sort()) {
        if (f.startsWith("x-qkit-")) continue;
        add(name, `feature ${f}`, b.features[f] === undefined ? "absent" : JSON.stringify(b.features[f]), a.features[f] === undefined ? "absent" : JSON.stringify(a.features[f]));
      }
    const tb = new Set(b.tags);
    const ta = new Set(a.tags);
    for (const t of [...new Set([...tb, ...ta])].sort()) add(name, `tag ${t}`, tb.has(t) ? "present" : "absent", ta.has(t) ? "present" : "absent");
  }
  return out;
}
