/**
 * The order of a plan's steps (design §11.4): a topological order of the
 * `requires` graph that prefers lower phases (revocations; labels;
 * templates, disposable templates, network providers, clients; netvm
 * rewiring; giving up roles; globals; grants; removals in reverse; the
 * ownership record; starts), with the edges every plan needs added here.
 */
import { isMoveMark } from "./keys.js";
import type { PlanStep } from "./types.js";

const RELEASE_PHASE = 25;
const NETVM_PHASE = 20;

/**
 * Orders `steps` (each with its phase in `phase`); `netvmOrder` is the
 * loop-free order of the netvm changes; `clients` maps a network provider
 * to the running qubes connected to it on the live system.
 */
export function orderSteps(steps: PlanStep[], phase: Map<string, number>, netvmOrder: string[], clients: Map<string, string[]> = new Map(), onCycle?: (stuck: string[]) => void): PlanStep[] {
  const byId = new Map(steps.map((s) => [s.id, s]));
  // Each object's steps, in plan order (looked up per step below: a plan of thousands of qubes
  // must not scan every step for each of them).
  const byObject = new Map<string, PlanStep[]>();
  for (const s of steps) {
    const list = byObject.get(s.object);
    if (list) list.push(s);
    else byObject.set(s.object, [s]);
  }
  const stepsOf = (object: string): PlanStep[] => byObject.get(object) ?? [];
  orderHalts(steps, clients, stepsOf);
  const index = new Map(steps.map((s, i) => [s.id, i]));
  // The netvm changes run as a chain, in the computed order.
  for (let i = 1; i < netvmOrder.length; i++) byId.get(netvmOrder[i]!)?.requires.push(netvmOrder[i - 1]!);
  // A transient `none` comes before the final value of the same qube.
  for (const id of netvmOrder) if (id.endsWith(".p.netvm.none")) byId.get(id.slice(0, -".none".length))?.requires.push(id);
  const netvmSteps = steps.filter((s) => phase.get(s.id) === NETVM_PHASE).map((s) => s.id);
  // (Not the end of a move, which drops the moved qube's mark once its former qube is removed: a removal
  // waiting for another move's end made a cycle when that former qube uses the removed one, a netvm or a template.)
  // Nor label removals and ownership records, which come after the removals (a label goes once no qube uses it).
  const nonRemoval = steps.filter((s) => s.kind !== "remove" && s.kind !== "start" && s.kind !== "remove-label" && s.kind !== "record-keys" && !isMoveMark(s) && !(s.kind === "shutdown" && s.effect === "needs-halt" && s.key === "power" && s.id.endsWith(".shutdown") && s.after === "halted" && byId.has(`${s.object}.remove`)));
  for (const s of steps) {
    if (phase.get(s.id) === RELEASE_PHASE) s.requires.push(...netvmSteps);
    // Removals wait for every other change (dependents re-pointed first), but not for changes that are deferred anyway.
    // A replacement's removal (`replace`) does not wait for the steps of the qube that replaces it: they wait for it.
    if (s.kind === "remove") s.requires.push(...nonRemoval.filter((x) => (x.object !== s.object || (x.kind !== "shutdown" && !s.replace)) && !x.deferred).map((x) => x.id));
    if (s.kind === "record-keys" && s.target.startsWith("qube ") && !s.id.endsWith(".keys-first")) s.requires.push(...stepsOf(s.object).filter((x) => x !== s && x.kind !== "start" && x.kind !== "remove").map((x) => x.id));
    // A provider started for a running client starts configured (its ownership record may wait).
    if (s.id.endsWith(".start-for-netvm")) s.requires.push(...stepsOf(s.object).filter((x) => x !== s && x.kind !== "start" && x.kind !== "remove" && x.kind !== "shutdown" && !(x.kind === "record-keys" && !x.id.endsWith(".keys-first"))).map((x) => x.id));
    if (s.kind === "start" && !s.id.endsWith(".start-for-netvm")) s.requires.push(...stepsOf(s.object).filter((x) => x !== s && x.kind !== "start").map((x) => x.id));
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
  // Kahn's algorithm, smallest (phase, declaration index) first: the ready steps in a binary heap
  // (re-sorting them at every step made a plan of thousands of qubes quadratic).
  const indegree = new Map(steps.map((s) => [s.id, s.requires.length]));
  const users = new Map<string, string[]>();
  for (const s of steps)
    for (const r of s.requires) {
      const list = users.get(r);
      if (list) list.push(s.id);
      else users.set(r, [s.id]);
    }
  const ready = new StepHeap((a, b) => cmpKey(phase.get(a) ?? 0, index.get(a) ?? 0, phase.get(b) ?? 0, index.get(b) ?? 0));
  for (const s of steps) if (s.requires.length === 0) ready.push(s.id);
  const out: PlanStep[] = [];
  const done = new Set<string>();
  while (ready.size || done.size < steps.length) {
    if (!ready.size) {
      // A cycle (never expected): said to the caller (the plan is then an error), and the smallest remaining step taken to finish the order.
      let best: string | undefined;
      for (const s of steps) if (!done.has(s.id) && (best === undefined || cmpKey(phase.get(s.id) ?? 0, index.get(s.id)!, phase.get(best) ?? 0, index.get(best)!) < 0)) best = s.id;
      onCycle?.([best!, ...byId.get(best!)!.requires.filter((r) => !done.has(r))]);
      ready.push(best!);
    }
    const id = ready.pop()!;
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

/** A binary min-heap of step ids, ordered by `cmp` (negative: the first comes out first). */
class StepHeap {
  private readonly items: string[] = [];
  constructor(private readonly cmp: (a: string, b: string) => number) {}
  get size(): number {
    return this.items.length;
  }
  push(id: string): void {
    const a = this.items;
    a.push(id);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.cmp(a[i]!, a[p]!) >= 0) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): string | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.cmp(a[l]!, a[m]!) < 0) m = l;
        if (r < a.length && this.cmp(a[r]!, a[m]!) < 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
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
function orderHalts(steps: PlanStep[], clients: Map<string, string[]>, stepsOf: (object: string) => PlanStep[]): void {
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
        const providerStarts = stepsOf(provider).filter((x) => x.kind === "start" && !x.id.endsWith(".start-for-netvm")).map((x) => x.id);
        for (const x of stepsOf(client)) if (x.kind === "start") x.requires.push(...providerStarts);
        continue;
      }
      const repoint = stepsOf(client).filter((x) => x.key === "netvm" && (x.kind === "set-property" || x.kind === "reset-property") && x.after !== provider && !x.deferred);
      if (repoint.length) halt.requires.push(...repoint.map((x) => x.id));
      else stuck.push(client);
    }
    if (stuck.length && !halt.deferred) halt.deferred = `${provider} has running qubes connected to it (${stuck.sort().join(", ")}): its halt waits for them to stop or to use another netvm; stop them first and plan again`;
  }
}

function cmpKey(phaseA: number, indexA: number, phaseB: number, indexB: number): number {
  return phaseA - phaseB || indexA - indexB;
}
