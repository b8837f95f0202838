/**
 * The order of a plan's steps (design §11.4): a topological order of the
 * `requires` graph that prefers lower phases (revocations; labels;
 * templates, disposable templates, network providers, clients; netvm
 * rewiring; giving up roles; globals; grants; removals in reverse; the
 * ownership record; starts), with the edges every plan needs added here.
 */
import type { PlanStep } from "./types.js";

const RELEASE_PHASE = 25;
const NETVM_PHASE = 20;

/**
 * Orders `steps` (each with its phase in `phase`); `netvmOrder` is the
 * loop-free order of the netvm changes; `clients` maps a network provider
 * to the running qubes connected to it on the live system.
 */
export function orderSteps(steps: PlanStep[], phase: Map<string, number>, netvmOrder: string[], clients: Map<string, string[]> = new Map()): PlanStep[] {
  const byId = new Map(steps.map((s) => [s.id, s]));
  orderHalts(steps, clients);
  const index = new Map(steps.map((s, i) => [s.id, i]));
  // The netvm changes run as a chain, in the computed order.
  for (let i = 1; i < netvmOrder.length; i++) byId.get(netvmOrder[i]!)?.requires.push(netvmOrder[i - 1]!);
  // A transient `none` comes before the final value of the same qube.
  for (const id of netvmOrder) if (id.endsWith(".p.netvm.none")) byId.get(id.slice(0, -".none".length))?.requires.push(id);
  const netvmSteps = steps.filter((s) => phase.get(s.id) === NETVM_PHASE).map((s) => s.id);
  const nonRemoval = steps.filter((s) => s.kind !== "remove" && s.kind !== "start" && !(s.kind === "shutdown" && s.effect === "needs-halt" && s.key === "power" && s.id.endsWith(".shutdown") && s.after === "halted" && steps.some((r) => r.id === `${s.object}.remove`)));
  for (const s of steps) {
    if (phase.get(s.id) === RELEASE_PHASE) s.requires.push(...netvmSteps);
    // Removals wait for every other change (dependents re-pointed first), but not for changes that are deferred anyway.
    if (s.kind === "remove") s.requires.push(...nonRemoval.filter((x) => (x.object !== s.object || x.kind !== "shutdown") && !x.deferred).map((x) => x.id));
    if (s.kind === "record-keys" && s.target.startsWith("qube ") && !s.id.endsWith(".keys-first")) s.requires.push(...steps.filter((x) => x.object === s.object && x !== s && x.kind !== "start" && x.kind !== "remove").map((x) => x.id));
    // A provider started for a running client starts configured (its ownership record may wait).
    if (s.id.endsWith(".start-for-netvm")) s.requires.push(...steps.filter((x) => x.object === s.object && x !== s && x.kind !== "start" && x.kind !== "remove" && x.kind !== "shutdown" && !(x.kind === "record-keys" && !x.id.endsWith(".keys-first"))).map((x) => x.id));
    if (s.kind === "start" && !s.id.endsWith(".start-for-netvm")) s.requires.push(...steps.filter((x) => x.object === s.object && x !== s && x.kind !== "start").map((x) => x.id));
  }
  // Only edges to steps of this plan, no duplicates, no self-edges.
  for (const s of steps) s.requires = [...new Set(s.requires)].filter((r) => r !== s.id && byId.has(r));
  // A step that needs a deferred step is deferred too (the ownership record is not: it records the declaration).
  let changed = true;
  while (changed) {
    changed = false;
    for (const s of steps) {
      if (s.deferred || s.kind === "record-keys") continue;
      const d = s.requires.map((r) => byId.get(r)!).find((r) => r.deferred);
      if (d) {
        s.deferred = `waits for ${d.id}, which is deferred (${d.deferred})`;
        changed = true;
      }
    }
  }
  for (const s of steps) if (s.kind === "record-keys") s.requires = s.requires.filter((r) => !byId.get(r)!.deferred);
  // Kahn's algorithm, smallest (phase, declaration index) first.
  const indegree = new Map(steps.map((s) => [s.id, s.requires.length]));
  const users = new Map<string, string[]>();
  for (const s of steps) for (const r of s.requires) users.set(r, [...(users.get(r) ?? []), s.id]);
  const key = (id: string) => [phase.get(id) ?? 0, index.get(id) ?? 0] as const;
  const ready = steps.filter((s) => s.requires.length === 0).map((s) => s.id);
  const out: PlanStep[] = [];
  const done = new Set<string>();
  while (ready.length || done.size < steps.length) {
    if (!ready.length) {
      // A cycle (never expected): take the smallest remaining step to make progress.
      const rest = steps.filter((s) => !done.has(s.id)).map((s) => s.id);
      rest.sort((a, b) => cmpKey(key(a), key(b)));
      ready.push(rest[0]!);
    }
    ready.sort((a, b) => cmpKey(key(a), key(b)));
    const id = ready.shift()!;
    if (done.has(id)) continue;
    done.add(id);
    out.push(byId.get(id)!);
    for (const u of users.get(id) ?? []) {
      const n = indegree.get(u)! - 1;
      indegree.set(u, n);
      if (n === 0 && !done.has(u)) ready.push(u);
    }
  }
  return out;
}

/** Whether `s` stops a running qube (for a change that needs a halt, `state: halted`, or a removal). */
function isHalt(s: PlanStep): boolean {
  return s.kind === "shutdown" && s.key === "power" && s.after === "halted";
}

/**
 * qubesd refuses to shut down a network provider while a running qube is
 * connected to it ("There are other VMs connected to this VM"). So a
 * provider's halt waits for the halts of its running clients, or for their
 * netvm to be re-pointed elsewhere; the provider is started again before
 * those clients. A client that stays connected and running keeps the
 * provider's halt (and what waits for it) deferred, with the reason.
 */
function orderHalts(steps: PlanStep[], clients: Map<string, string[]>): void {
  const halts = new Map<string, PlanStep>();
  for (const s of steps) if (isHalt(s)) halts.set(s.object, s);
  for (const [provider, halt] of halts) {
    const stuck: string[] = [];
    for (const client of clients.get(provider) ?? []) {
      if (client === provider) continue;
      const clientHalt = halts.get(client);
      if (clientHalt) {
        halt.requires.push(clientHalt.id);
        // Started again in the reverse order: the provider before its clients.
        const providerStarts = steps.filter((x) => x.kind === "start" && x.object === provider && !x.id.endsWith(".start-for-netvm")).map((x) => x.id);
        for (const x of steps) if (x.kind === "start" && x.object === client) x.requires.push(...providerStarts);
        continue;
      }
      const repoint = steps.filter((x) => x.object === client && x.key === "netvm" && (x.kind === "set-property" || x.kind === "reset-property") && x.after !== provider && !x.deferred);
      if (repoint.length) halt.requires.push(...repoint.map((x) => x.id));
      else stuck.push(client);
    }
    if (stuck.length && !halt.deferred) halt.deferred = `${provider} has running qubes connected to it (${stuck.sort().join(", ")}): its halt waits for them to stop or to use another netvm; stop them first and plan again`;
  }
}

function cmpKey(a: readonly [number, number], b: readonly [number, number]): number {
  return a[0] - b[0] || a[1] - b[1];
}
