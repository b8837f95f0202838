/**
 * The rehearsal: before touching the machine, the plan's steps run on an
 * in-process simulator seeded from what the plan read, through the same
 * executor and the SDK. A step the simulator refuses (as qubesd would) stops
 * the apply before any call reaches the machine.
 */
import { PolicyAdmin } from "../policy-admin.js";
import { Qubes } from "../qubes.js";
import { MemoryPolicyStore, Simulator, simulatorTransport } from "../sim/index.js";
import { executePlan, memoryJournal, type ApplyResult } from "./execute.js";
import { adminPolicyTarget } from "./policy-target.js";
import type { LiveSystem, Plan } from "./types.js";

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

/** The outcome of a rehearsal: the executor's result on the simulator, and the simulator afterwards. */
export interface Rehearsal {
  result: ApplyResult;
  simulator: Simulator;
}

/** Runs `plan` on a simulator seeded from `live`. */
export async function rehearse(plan: Plan, live: LiveSystem): Promise<Rehearsal> {
  const simulator = simulatorFromLive(live);
  const transport = simulatorTransport(simulator);
  const qubes = new Qubes({ transport });
  const result = await executePlan(plan, { qubes, policy: adminPolicyTarget(new PolicyAdmin(transport)) }, { journal: memoryJournal() });
  return { result, simulator };
}
