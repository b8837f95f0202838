/**
 * Information flow through the package entry point, checked against brute
 * force: the qrexec edges of `flowGraph` (decided once per class of qubes)
 * equal the edges obtained by deciding every request of the space, on random
 * small policies and systems; the paths of `findPaths` equal a brute-force
 * enumeration of simple paths on random graphs; reachability agrees with
 * paths.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  builtinCatalogue,
  createMemoryFileSystem,
  serviceFlow,
  type ServiceCatalogue,
  evaluate,
  findPaths,
  FlowIndex,
  flowEdges,
  flowGraph,
  hopIndex,
  keptWays,
  loadPolicy,
  parseServiceCatalogue,
  prepareSystemInfo,
  reachableFrom,
  requestSpace,
  type CompiledPolicy,
  type FlowEdge,
  type FlowGraph,
  type RawSystemInfo,
} from "@qubes-kit/language";
import { ruleLineArb } from "../helpers/policy-arbs.js";

const SOURCES = ["*", "@anyvm", "@adminvm", "dom0", "work", "vault", "@tag:t1", "@type:AppVM", "@type:TemplateVM", "@type:DispVM", "@dispvm:dvm", "@dispvm:@tag:t1"];
const TARGETS = ["*", "@anyvm", "@adminvm", "@default", "@dispvm", "dom0", "work", "vault", "@tag:t1", "@tag:t2", "@type:AppVM", "@dispvm:dvm", "@dispvm:@tag:t1"];
const REDIRECTS = ["@adminvm", "@dispvm", "@dispvm:dvm", "dom0", "work", "vault"];
// qubes.F moves data forward, qubes.B backward, qubes.C is a control service, qubes.N moves nothing; others both ways.
const SERVICE_ARGS: [string, string][] = [
  ["*", "*"],
  ["qubes.F", "*"],
  ["qubes.F", "+x"],
  ["qubes.B", "*"],
  ["qubes.C", "+"],
  ["qubes.N", "*"],
];
const CATALOGUE = parseServiceCatalogue("qubes.F forward\nqubes.B backward\nqubes.C control\nqubes.N none\n", "test.flows").catalogue;

const ruleArb = ruleLineArb({ serviceArgs: SERVICE_ARGS, sources: SOURCES, targets: TARGETS, redirects: REDIRECTS });

const NAMES = ["dom0", "work", "vault", "dvm", "q1", "q2", "q3", "q4", "q5"];
const systemArb: fc.Arbitrary<RawSystemInfo> = fc
  .record({
    present: fc.subarray(NAMES.slice(1), { minLength: 2 }),
    tags: fc.array(fc.subarray(["t1", "t2"]), { minLength: NAMES.length, maxLength: NAMES.length }),
    types: fc.array(fc.constantFrom("AppVM", "TemplateVM"), { minLength: NAMES.length, maxLength: NAMES.length }),
    dvm: fc.array(fc.boolean(), { minLength: NAMES.length, maxLength: NAMES.length }),
    defaults: fc.array(fc.constantFrom(null, "dvm", "q1"), { minLength: NAMES.length, maxLength: NAMES.length }),
    // The unnamed qubes mostly copy one profile, so that classes have several members.
    profile: fc.array(fc.constantFrom(-1, 4, 4, 5), { minLength: NAMES.length, maxLength: NAMES.length }),
  })
  .map((s) => {
    NAMES.forEach((n, i) => {
      const p = s.profile[i]!;
      if (!n.startsWith("q") || p < 0 || p === i) return;
      for (const k of ["tags", "types", "dvm", "defaults"] as const) (s[k] as unknown[])[i] = s[k][p];
    });
    const domains: RawSystemInfo["domains"] = {};
    NAMES.forEach((n, i) => {
      if (n !== "dom0" && !s.present.includes(n)) return;
      domains[n] = {
        internal: null,
        tags: s.tags[i]!,
        type: n === "dom0" ? "AdminVM" : s.types[i]!,
        template_for_dispvms: n !== "dom0" && s.dvm[i]!,
        default_dispvm: s.defaults[i]!,
        power_state: "Running",
        uuid: `00000000-0000-0000-0000-0000000000${i.toString(16).padStart(2, "0")}`,
        relayvm: null,
        transport_rpc: null,
        label: "0xcc0000",
        icon: "appvm-red",
        guivm: null,
      };
    });
    return { domains };
  });

function load(lines: string[]): CompiledPolicy | undefined {
  const r = loadPolicy(createMemoryFileSystem({ "/etc/qubes/policy.d/30-user.policy": lines.join("\n") + "\n" }));
  return r.ok ? r.policy : undefined;
}

const DIRECTION: Record<string, [boolean, boolean]> = { "qubes.F": [true, false], "qubes.B": [false, true], "qubes.C": [true, true], "qubes.N": [false, false] };

/**
 * Every request of the space decided, edges derived by the definition: the reference. A new
 * disposable of each disposable template X (a DispVM with X's tags, running) calls every
 * target too, as the node `@dispvm:X`.
 */
function bruteForceEdges(policy: CompiledPolicy, raw: RawSystemInfo, catalogue?: ServiceCatalogue): Set<string> {
  const system = prepareSystemInfo(raw);
  const space = requestSpace([policy], system);
  const names = new Set(space.qubes);
  const withDisp: RawSystemInfo = { domains: { ...raw.domains } };
  const callers: [string, string][] = space.qubes.map((q) => [q, q]);
  for (const x of space.dispvmTemplates) {
    const name = `zz-new-disposable-of-${x}`;
    const t = raw.domains[x]!;
    withDisp.domains[name] = { ...t, type: "DispVM", tags: [...(t.tags as string[])], template_for_dispvms: false, power_state: "Running", relayvm: null, transport_rpc: null, uuid: `ffffffff-ffff-4fff-8fff-${x.padStart(12, "0").slice(-12).replace(/[^0-9a-f]/g, "a")}` };
    callers.push([name, "@dispvm:" + x]);
  }
  const dispSystem = prepareSystemInfo(withDisp);
  const out = new Set<string>();
  for (const s of space.services) {
    // The services no rule names include unknown ones: both ways.
    const entry = catalogue ? serviceFlow(catalogue, s.service) : undefined;
    const [fwd, bwd] = s.display === "*" ? [true, true] : entry ? [entry.direction === "forward" || entry.direction === "both", entry.direction === "backward" || entry.direction === "both"] : (DIRECTION[s.service] ?? [true, true]);
    const control = entry ? entry.control : s.service === "qubes.C";
    for (const a of s.arguments) {
      for (const [source, sourceNode] of callers) {
        for (const target of space.targets) {
          const d = evaluate(policy, { service: s.service, argument: a.argument, source, target }, source === sourceNode ? system : dispSystem);
          if (!d.ok || d.action === "deny") continue;
          // Every call reaches the qube it runs in; qubes.C also the qube it names; the services no rule
          // names include control services (admin.*) too.
          let dests: string[];
          if (d.action === "ask") dests = d.targetsForAsk;
          else if (s.display !== "*" && control) dests = names.has(target) ? [d.target, target] : [d.target];
          else if (s.display === "*" && names.has(target)) dests = [d.target, target];
          else dests = [d.target];
          for (const raw of dests) {
            const dest = raw === "@adminvm" ? "dom0" : raw;
            if (dest === sourceNode || dest.includes("zz-new-disposable-of-")) continue;
            const key = (from: string, to: string) => [from, to, s.display, a.display, d.action, `${d.rule.file}:${d.rule.line}`].join(" ");
            if (fwd) out.add(key(sourceNode, dest));
            if (bwd) out.add(key(dest, sourceNode));
          }
        }
      }
    }
  }
  return out;
}

function edgeKeys(edges: readonly FlowEdge[]): Set<string> {
  const out = new Set<string>();
  for (const e of edges) {
    if (e.evidence.kind !== "qrexec") continue;
    out.add([e.from, e.to, e.evidence.service, e.evidence.argument, e.evidence.action, `${e.evidence.rule.file}:${e.evidence.rule.line}`].join(" "));
  }
  return out;
}

describe("qrexec flow edges", () => {
  it("equal brute-force evaluation of every request (random policies and systems)", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 8 }), systemArb, (lines, raw) => {
        const policy = load(lines);
        fc.pre(policy !== undefined);
        const system = prepareSystemInfo(raw);
        const g = flowGraph(policy!, system, { qubes: {} }, { catalogue: CATALOGUE });
        expect([...edgeKeys(flowEdges(g).edges)].sort()).toEqual([...bruteForceEdges(policy!, raw)].sort());
      }),
      { numRuns: 200 },
    );
  });

  it("every edge's sample request is decided as the edge says", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 8 }), systemArb, (lines, raw) => {
        const policy = load(lines);
        fc.pre(policy !== undefined);
        const system = prepareSystemInfo(raw);
        const g = flowGraph(policy!, system, { qubes: {} }, { catalogue: CATALOGUE });
        for (const e of flowEdges(g).edges) {
          if (e.evidence.kind !== "qrexec") continue;
          // A disposable's call is decided in the model with the new disposables.
          const d = evaluate(policy!, e.evidence.request, e.evidence.disposable !== undefined ? g.qrexec!.dispSystem : system);
          expect(d.ok && d.action).toBe(e.evidence.action);
          const caller = e.evidence.reverse ? e.to : e.from;
          const callee = e.evidence.reverse ? e.from : e.to;
          if (e.evidence.disposable !== undefined) {
            expect(caller).toBe("@dispvm:" + e.evidence.disposable);
            expect(e.evidence.request.source).toBe(g.qrexec!.disposableNames.get(e.evidence.disposable));
          } else expect(e.evidence.request.source).toBe(caller);
          if (d.ok && d.action === "allow") expect([d.target === "@adminvm" ? "dom0" : d.target, e.evidence.request.target]).toContain(callee);
          if (d.ok && d.action === "ask") expect(d.targetsForAsk.map((t) => (t === "@adminvm" ? "dom0" : t))).toContain(callee);
        }
      }),
      { numRuns: 60 },
    );
  });

  it("with few edges kept per pair, the pairs, their allow/ask nature and the counts stay exact", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 8 }), systemArb, fc.integer({ min: 1, max: 2 }), (lines, raw, cap) => {
        const policy = load(lines);
        fc.pre(policy !== undefined);
        const system = prepareSystemInfo(raw);
        const full = flowGraph(policy!, system, { qubes: {} }, { catalogue: CATALOGUE });
        const few = flowGraph(policy!, system, { qubes: {} }, { catalogue: CATALOGUE, evidencePerHop: cap });
        const pairs = (graph: typeof full) => {
          const g = flowEdges(graph);
          const m = new Map<string, { allow: boolean; n: number }>();
          for (const e of g.edges) {
            const k = `${e.from} ${e.to}`;
            const x = m.get(k) ?? { allow: false, n: g.more.get(`${e.from}\0${e.to}`) ?? 0 };
            x.allow ||= !e.ask;
            x.n++;
            m.set(k, x);
          }
          return [...m].sort();
        };
        expect(pairs(few)).toEqual(pairs(full));
        for (const [, n] of pairs(few)) expect(n.n).toBeGreaterThan(0);
      }),
      { numRuns: 100 },
    );
  });

  it("the hops shown by the path functions (each end swept, few ways made, the rest counted) equal the ways of every hop sorted and cut", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 10 }), systemArb, fc.integer({ min: 1, max: 3 }), fc.boolean(), (lines, raw, cap, noAsk) => {
        const policy = load(lines);
        fc.pre(policy !== undefined);
        const system = prepareSystemInfo(raw);
        const g = flowGraph(policy!, system, { qubes: {} }, { catalogue: CATALOGUE, evidencePerHop: cap });
        // The reference: every way of every hop made, then sorted and cut as shown.
        const every = flowGraph(policy!, system, { qubes: {} }, { catalogue: CATALOGUE }).qrexec!.allWays();
        const key = (e: FlowEdge) => JSON.stringify(e);
        const got = new Map<string, { edges: string[]; more: number }>();
        for (const [a, m] of hopIndex(g, noAsk)) for (const [b, h] of m) got.set(`${a}\0${b}`, { edges: h.edges.filter((e) => e.via === "qrexec").map(key).sort(), more: h.more });
        const want = new Map<string, { edges: string[]; more: number }>();
        for (const [k, h] of every) {
          const ws = noAsk ? h.ways.filter((w) => w.allow) : h.ways;
          expect(h.total).toBe(h.ways.length);
          expect(h.allows).toBe(h.ways.filter((w) => w.allow).length);
          if (!ws.length) continue;
          const kept = keptWays(ws, cap);
          want.set(k, { edges: kept.map((w) => key(w.edge)).sort(), more: ws.length - kept.length });
        }
        expect([...got].sort()).toEqual([...want].sort());
      }),
      { numRuns: 150 },
    );
  });

  it("a bounded search of ways (what --from uses) shows the same ways, and its counts are exact or marked as lower bounds", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 10 }), systemArb, fc.integer({ min: 1, max: 3 }), fc.boolean(), fc.noShrink(fc.array(fc.boolean(), { minLength: 90, maxLength: 90 })), (lines, raw, cap, noAsk, pick) => {
        const policy = load(lines);
        fc.pre(policy !== undefined);
        const system = prepareSystemInfo(raw);
        const g = flowGraph(policy!, system, { qubes: {} }, { catalogue: CATALOGUE, evidencePerHop: cap });
        const exact = new FlowIndex(g, noAsk);
        const bounded = new FlowIndex(g, noAsk, true);
        // Some of the hops, asked for at once (what a hop's search may stop at depends on the others asked).
        const pairs: [string, string][] = [];
        exact.nodes.forEach((a, i) => {
          for (const j of exact.succ(i)) if (pick[pairs.length % pick.length]) pairs.push([a, exact.nodes[j]!]);
        });
        bounded.prepare(pairs);
        const key = (e: FlowEdge) => JSON.stringify(e);
        for (const [a, b] of pairs) {
          const want = exact.hop(a, b)!;
          const got = bounded.hop(a, b)!;
          expect(got.edges.map(key)).toEqual(want.edges.map(key));
          expect(got.ask).toBe(want.ask);
          expect(want.moreAtLeast).toBeUndefined();
          if (got.moreAtLeast) {
            expect(got.more).toBeGreaterThan(0);
            expect(got.more).toBeLessThanOrEqual(want.more);
          } else expect(got.more).toBe(want.more);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("a hop's ways and their sample requests do not depend on which other hops are asked for (found by the property above)", () => {
    // q3 and q4 are one class; asked alone, q4's hop was swept as q4 itself, and its sample request named another target.
    const policy = load(["* * * @type:AppVM allow target=@adminvm", "* * * * allow"])!;
    const qube = (i: number, type: string) => ({ internal: null, tags: [], type, template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: `00000000-0000-0000-0000-00000000000${i}`, relayvm: null, transport_rpc: null, label: "0xcc0000", icon: "appvm-red", guivm: null });
    const system = prepareSystemInfo({ domains: { dom0: qube(0, "AdminVM"), q3: qube(6, "AppVM"), q4: qube(7, "AppVM") } } as RawSystemInfo);
    const g = flowGraph(policy, system, { qubes: {} }, { catalogue: CATALOGUE, evidencePerHop: 1 });
    const key = (e: FlowEdge) => JSON.stringify(e);
    const exact = new FlowIndex(g, false);
    for (const pairs of [[["dom0", "q4"]], [["dom0", "q4"], ["dom0", "q3"]], [["q4", "dom0"]]] as [string, string][][]) {
      const bounded = new FlowIndex(g, false, true);
      bounded.prepare(pairs);
      for (const [a, b] of pairs) expect(bounded.hop(a, b)!.edges.map(key)).toEqual(exact.hop(a, b)!.edges.map(key));
    }
  });

  it("the hop table (every caller swept, qubes of a class by swapping) agrees with the edges one by one", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 8 }), systemArb, (lines, raw) => {
        const policy = load(lines);
        fc.pre(policy !== undefined);
        const g = flowGraph(policy!, prepareSystemInfo(raw), { qubes: {} }, { catalogue: CATALOGUE });
        const want = new Map<string, number>();
        for (const e of flowEdges(g).edges) want.set(`${e.from} ${e.to}`, Math.max(want.get(`${e.from} ${e.to}`) ?? 0, e.ask ? 1 : 2));
        const index = new FlowIndex(g);
        const got = new Map<string, number>();
        const n = index.nodes.length;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (index.status[i * n + j]) got.set(`${index.nodes[i]} ${index.nodes[j]}`, index.status[i * n + j]!);
        expect([...got].sort()).toEqual([...want].sort());
      }),
      { numRuns: 200 },
    );
  });

  it("equal brute force on the fixture machines' real policies (demo, laptop)", () => {
    const root = fileURLToPath(new URL("../fixtures/flow/", import.meta.url));
    for (const m of ["machine", "laptop"]) {
      const files: Record<string, string> = {};
      const walk = (dir: string, rel: string) => {
        for (const n of readdirSync(dir)) {
          const p = join(dir, n);
          if (statSync(p).isDirectory()) walk(p, `${rel}/${n}`);
          else files[`/etc/qubes/policy.d${rel}/${n}`] = readFileSync(p, "utf8");
        }
      };
      walk(join(root, m, "policy.d"), "");
      const r = loadPolicy(createMemoryFileSystem(files));
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      const raw = JSON.parse(readFileSync(join(root, m, "system.json"), "utf8")) as RawSystemInfo;
      // The built-in catalogue's directions, applied by the reference to every decided request.
      const g = flowGraph(r.policy, prepareSystemInfo(raw), { qubes: {} }, { catalogue: builtinCatalogue() });
      expect([...edgeKeys(flowEdges(g).edges)].sort()).toEqual([...bruteForceEdges(r.policy, raw, builtinCatalogue())].sort());
    }
  });

  it("a policy that denies everything has no qrexec edge", () => {
    const policy = load(["* * @anyvm @anyvm deny"])!;
    const raw = fc.sample(systemArb, { numRuns: 1, seed: 7 })[0]!;
    expect(flowEdges(flowGraph(policy, prepareSystemInfo(raw), { qubes: {} }, { catalogue: CATALOGUE })).edges).toEqual([]);
  });
});

// Random graphs over a few nodes, edges allow or ask.
const graphArb: fc.Arbitrary<FlowGraph> = fc
  .array(fc.record({ from: fc.constantFrom("a", "b", "c", "d", "e"), to: fc.constantFrom("a", "b", "c", "d", "e"), ask: fc.boolean() }), { maxLength: 14 })
  .map((es) => {
    const edges: FlowEdge[] = es
      .filter((e) => e.from !== e.to)
      .map((e) => ({ from: e.from, to: e.to, via: "network", ask: e.ask, evidence: { kind: "property", qube: e.from, property: "netvm", value: e.to, note: `${e.from}→${e.to}` } }));
    return { nodes: ["a", "b", "c", "d", "e"], edges, warnings: [], evaluated: 0, more: new Map<string, number>() };
  });

function allSimplePaths(g: FlowGraph, from: string, to: string, maxHops: number, avoid: Set<string>, noAsk: boolean): string[] {
  const out: string[] = [];
  const walk = (p: string[]) => {
    const last = p[p.length - 1]!;
    if (p.length > 1 && last === to) {
      out.push(p.join(">"));
      return;
    }
    if (p.length - 1 >= maxHops) return;
    if (p.length > 1 && avoid.has(last)) return;
    const next = new Set(g.edges.filter((e) => e.from === last && (!noAsk || !e.ask)).map((e) => e.to));
    for (const n of next) if (!p.includes(n)) walk([...p, n]);
  };
  walk([from]);
  return out.sort();
}

describe("paths", () => {
  it("are exactly the simple paths within the hop limit, shortest first, with the user flagged", () => {
    fc.assert(
      fc.property(graphArb, fc.constantFrom("a", "b"), fc.constantFrom("c", "d", "e"), fc.integer({ min: 1, max: 5 }), fc.subarray(["b", "c", "d"], { maxLength: 1 }), fc.boolean(), (g, from, to, maxHops, avoid, noAsk) => {
        const r = findPaths(g, from, to, { maxHops, maxPaths: 10_000, avoid, noAsk });
        expect(r.paths.map((p) => p.nodes.join(">")).sort()).toEqual(allSimplePaths(g, from, to, maxHops, new Set(avoid), noAsk));
        for (let i = 1; i < r.paths.length; i++) expect(r.paths[i]!.hops.length).toBeGreaterThanOrEqual(r.paths[i - 1]!.hops.length);
        for (const p of r.paths) {
          for (const h of p.hops) expect(h.ask).toBe(g.edges.filter((e) => e.from === h.from && e.to === h.to && (!noAsk || !e.ask)).every((e) => e.ask));
          expect(p.ask).toBe(p.hops.some((h) => h.ask));
        }
        expect(r.truncated).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("stop at --max-paths and say so", () => {
    const g = fc.sample(graphArb, { numRuns: 200, seed: 3 }).find((x) => findPaths(x, "a", "e", { maxHops: 5 }).paths.length >= 3)!;
    const r = findPaths(g, "a", "e", { maxHops: 5, maxPaths: 2 });
    expect(r.paths).toHaveLength(2);
    expect(r.truncated).toBe(true);
  });

  it("reachability agrees with paths, and automatic reachability with paths without asks", () => {
    fc.assert(
      fc.property(graphArb, fc.constantFrom("a", "b", "c"), (g, from) => {
        const reached = new Map(reachableFrom(g, from).map((r) => [r.node, r]));
        for (const n of g.nodes) {
          if (n === from) continue;
          const any = findPaths(g, from, n, { maxHops: 5, maxPaths: 1 }).paths.length > 0;
          const auto = findPaths(g, from, n, { maxHops: 5, maxPaths: 1, noAsk: true }).paths.length > 0;
          expect(reached.has(n)).toBe(any);
          expect(!!reached.get(n)?.automatic).toBe(auto);
          const r = reached.get(n);
          if (r) expect(r.path.hops.length).toBe(findPaths(g, from, n, { maxHops: 5 }).shortest);
        }
      }),
      { numRuns: 200 },
    );
  });
});
