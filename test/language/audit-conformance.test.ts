/**
 * The auditor's answers against the real engine: for the corpus policies
 * (decisions produced by qubes-core-qrexec 4.4.2, `test/fixtures/conformance`),
 * every request of the engine's expected decisions that lies in the request
 * space of the answers agrees with the engine:
 *
 * - `diff` of an empty policy directory against the policy, expanded
 *   (`qkit policy diff --expand`), lists exactly the requests the engine does
 *   not deny, each with the engine's decision as `after`;
 * - `who-can SERVICE+ARG --target T` gives each source the engine's decision;
 * - `flow --max-hops 1` has a hop without the user for every call the engine
 *   allows between two qubes (caller → target for a service that moves data
 *   forward, target → caller for one that moves it back).
 *
 * Requests outside the space (services or arguments no rule names, which the
 * space decides through one representative; sources that are not qubes;
 * relayed requests) are not statements of these answers and are skipped; the
 * test asserts that most requests are in the space, so it cannot pass vacuously.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  builtinCatalogue,
  createMemoryFileSystem,
  flowGraph,
  hopIndex,
  movesBackward,
  movesForward,
  serviceFlow,
  decisionToJson,
  diffPolicies,
  expandChanges,
  loadCase,
  loadPolicy,
  prepareSystemInfo,
  requestSpace,
  whoCan,
  POLICY_DIR,
  type ConformanceCase,
  type ConformanceRequest,
} from "@qubes-kit/language";
import { compareUnit } from "../helpers/compare-decisions.js";

const dir = fileURLToPath(new URL("../fixtures/conformance/", import.meta.url));
const read = (f: string) =>
  readFileSync(dir + f, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);

type Obj = Record<string, unknown>;

/** A corpus request as the engine read it: service, argument, source, target (`@default` for ""). */
function normal(r: ConformanceRequest): { service: string; argument: string; source: string; target: string } {
  let service = r.service ?? "";
  let argument = r.argument;
  if (argument === undefined) {
    const plus = service.indexOf("+");
    if (plus >= 0) [service, argument] = [service.slice(0, plus), service.slice(plus)];
    else argument = "+";
  }
  const target = r.target ?? "";
  return { service, argument, source: r.source ?? "", target: target === "" ? "@default" : target };
}

/** Does the engine refuse the call (a deny rule, or a refusal)? The diff counts both as deny. */
const engineDenies = (e: Obj) => e["ok"] !== true || e["action"] === "deny";

const CORPORA = ["demo", "edge-cases", "random-public"] as const;
/** How many requests each corpus must put in the diff's space (so the test cannot pass on nothing). */
const MIN_CHECKED: Record<(typeof CORPORA)[number], number> = { demo: 5, "edge-cases": 2, "random-public": 1000 };
/** How many allowed calls between two qubes each corpus must give the flow check. */
const MIN_FLOW: Record<(typeof CORPORA)[number], number> = { demo: 1, "edge-cases": 1, "random-public": 300 };

describe.each(CORPORA)("the auditor's answers agree with the engine on the corpus %s", (name) => {
  const input = read(`${name}.in.jsonl`) as ConformanceCase[];
  const expected = read(`${name}.out.jsonl`);
  const cases: { c: ConformanceCase; results: Obj[] }[] = [];
  input.forEach((c, i) => {
    const reqs = c.requests ?? (c.request ? [c.request] : undefined);
    if (!reqs || c.loader === "string" || !c.system) return;
    const out = expected[i]!;
    const results = (c.requests ? (out["results"] as Obj[] | undefined) : [out]) ?? [];
    if (results.length !== reqs.length) return;
    cases.push({ c, results });
  });

  it("diff --expand of an empty policy against the policy is exactly the engine's non-deny decisions", () => {
    const empty = loadPolicy(createMemoryFileSystem({}, [POLICY_DIR]));
    if (!empty.ok) throw new Error("the empty policy does not load");
    let checked = 0;
    for (const { c, results } of cases) {
      const loaded = loadCase(c);
      if (!loaded.ok) continue;
      const system = prepareSystemInfo(c.system!);
      const space = requestSpace([empty.policy, loaded.policy], system);
      if (space.qubes.length === 0) continue;
      const changes = new Map<string, Obj>();
      for (const ch of expandChanges(diffPolicies(empty.policy, loaded.policy, system), empty.policy, loaded.policy, system)) {
        changes.set(`${ch.request.service}\0${ch.request.argument}\0${ch.source}\0${ch.target}`, decisionToJson(ch.after) as Obj);
      }
      const reqs = c.requests ?? [c.request!];
      reqs.forEach((r, k) => {
        if (r.requested_source) return;
        const q = normal(r);
        const svc = space.services.find((s) => s.display !== "*" && s.service === q.service);
        if (!svc || !svc.arguments.some((a) => a.display !== "*" && a.argument === q.argument)) return;
        if (!space.qubes.includes(q.source) || !space.targets.includes(q.target)) return;
        checked++;
        const e = results[k]!;
        const got = changes.get(`${q.service}\0${q.argument}\0${q.source}\0${q.target}`);
        const where = `${String(c.id)} #${k} ${q.service}${q.argument} ${q.source} -> ${q.target}`;
        if (engineDenies(e)) expect(got === undefined ? "not listed" : `listed: ${JSON.stringify(got)}`, where).toBe("not listed");
        else expect(got === undefined ? ["missing"] : compareUnit(e, got), where).toEqual([]);
      });
    }
    // Not vacuous: the generated corpus puts thousands of the engine's requests in the space (the curated ones a few).
    expect(checked).toBeGreaterThanOrEqual(MIN_CHECKED[name]);
  });

  it("who-can SERVICE+ARG --target T gives every source the engine's decision", () => {
    let checked = 0;
    for (const { c, results } of cases) {
      const loaded = loadCase(c);
      if (!loaded.ok) continue;
      const system = prepareSystemInfo(c.system!);
      const space = requestSpace([loaded.policy], system);
      const reqs = c.requests ?? [c.request!];
      reqs.forEach((r, k) => {
        if (r.requested_source) return;
        const q = normal(r);
        if (!space.qubes.includes(q.source) || !space.targets.includes(q.target)) return;
        const row = whoCan(loaded.policy, system, { service: q.service, argument: q.argument, target: q.target }).find((x) => x.source === q.source);
        const where = `${String(c.id)} #${k} ${q.service}${q.argument} ${q.source} -> ${q.target}`;
        expect(row, where).toBeDefined();
        checked++;
        const e = results[k]!;
        const d = decisionToJson(row!.decision) as Obj;
        if (engineDenies(e)) expect(d["ok"] !== true || d["action"] === "deny", where).toBe(true);
        else expect(compareUnit(e, d), where).toEqual([]);
      });
    }
    expect(checked).toBeGreaterThanOrEqual(MIN_CHECKED[name]);
  });

  /** The allowed calls between two qubes the 1-hop flow graph has no hop for; `redirected`: calls the policy sends to another qube (`target=`) or the others. */
  function flowGaps(redirected: boolean): { checked: number; missing: string[] } {
    const catalogue = builtinCatalogue();
    let checked = 0;
    const missing: string[] = [];
    for (const { c, results } of cases) {
      const loaded = loadCase(c);
      if (!loaded.ok) continue;
      const system = prepareSystemInfo(c.system!);
      const graph = flowGraph(loaded.policy, system, { qubes: {} }, { catalogue });
      const hops = hopIndex(graph, true);
      const nodes = new Set(graph.nodes);
      const reqs = c.requests ?? [c.request!];
      reqs.forEach((r, k) => {
        if (r.requested_source) return;
        const e = results[k]!;
        if (e["ok"] !== true || e["action"] !== "allow") return;
        const q = normal(r);
        // A qube named by its `uuid:` alias is the node of its name.
        const named = (x: unknown) => (typeof x === "string" && x.startsWith("uuid:") ? ((system.domains.get(x) as { name?: string } | undefined)?.name ?? x) : x);
        const to = named(e["target"]);
        const from = named(q.source);
        if (typeof to !== "string" || typeof from !== "string" || to.startsWith("@") || to === from || !nodes.has(from) || !nodes.has(to) || from.startsWith("uuid:") || to.startsWith("uuid:")) return;
        if ((named(q.target) !== to) !== redirected) return;
        const flow = serviceFlow(catalogue, q.service);
        const where = `${String(c.id)} #${k} ${q.service}${q.argument} ${q.source} -> ${q.target} (allowed to ${to})`;
        if (movesForward(flow.direction) && !(hops.get(from)?.has(to) ?? false)) missing.push(`${where}: no hop ${from} → ${to}`);
        if (movesBackward(flow.direction) && !(hops.get(to)?.has(from) ?? false)) missing.push(`${where}: no hop ${to} → ${from}`);
        checked++;
      });
    }
    return { checked, missing };
  }

  it("flow --max-hops 1 has a hop, without the user, for every call the engine allows to the qube it names", () => {
    const { checked, missing } = flowGaps(false);
    expect(checked).toBeGreaterThanOrEqual(MIN_FLOW[name]);
    expect(missing).toEqual([]);
  });

  // Calls the policy redirects (`allow target=X`): the flow graph's hop goes to X. This found that a
  // `target=uuid:UUID` redirect was dropped (fixed: its node is the qube's name); 18 redirected calls
  // of the random corpus (9 requests, mostly qubes.VMShell and admin.vm.List) still have no hop and are
  // not yet explained: a known gap, marked failing there so that its fix is noticed (drop `it.fails`).
  it("flow --max-hops 1 has a hop for every call the engine redirects to another qube", () => {
    const { missing } = flowGaps(true);
    expect(missing).toEqual([]);
  });
});
