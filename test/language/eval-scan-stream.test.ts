/**
 * The stream's in-order scan (`evaluateJson`, as `qkit policy eval
 * --requests` uses it) against `evaluate`, request by request: many
 * sources told apart by tags, types and names, `@dispvm`/`@dispvm:X`/
 * `@dispvm:@tag:T` tokens on both sides, `uuid:` spellings, dom0, unknown
 * qubes, several arguments of one service beside `* *` rules, and system
 * models with a key missing (where the engine crashes, the scan must hand
 * over or crash alike). Every request is decided several times in a
 * shuffled order, so the per-source and per-target match vectors, the
 * shared `ask` lists and the memoised answers are used warm and cold.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMemoryFileSystem, decisionToJson, evaluate, evaluateJson, loadPolicy, prepareSystemInfo, requestNamesKnown, type RawSystemInfo } from "@qubes-kit/language";
import { ruleLineArb, systemInfoArb, uuidOf } from "../helpers/policy-arbs.js";

const QUBES = Array.from({ length: 40 }, (_, i) => `q${String(i).padStart(2, "0")}`);
// Often a key is missing from a qube that sends requests: the engine then crashes in places, and the scan must agree.
const systemArb = systemInfoArb({
  qubes: QUBES,
  defaultDispvms: [null, "q01", "q02", "q03", "ghost"],
  drop: { qubes: QUBES.slice(0, 12), keys: ["tags", "type", "tags", "type", "template_for_dispvms", "power_state", "uuid", "default_dispvm", "internal"], freq: 4 },
});

const SOME = QUBES.slice(0, 8);
const ruleArb = ruleLineArb({
  serviceArgs: [
    ["qubes.A", "*"],
    ["qubes.A", "+x"],
    ["qubes.A", "+y"],
    ["qubes.B", "*"],
    ["qubes.B", "+x"],
    ["*", "*"],
  ],
  sources: ["@anyvm", "*", "@tag:t1", "@tag:t2", "@type:AppVM", "@type:TemplateVM", "@adminvm", "dom0", "@dispvm:q01", "@dispvm:@tag:t1", ...SOME, `uuid:${uuidOf(1)}`, `uuid:${uuidOf(5)}`],
  targets: ["@anyvm", "*", "@tag:t2", "@tag:t3", "@type:AppVM", "@default", "@dispvm", "@dispvm:q01", "@dispvm:q02", "@dispvm:@tag:t1", "@adminvm", "dom0", ...SOME, "ghost", `uuid:${uuidOf(2)}`],
  redirects: ["@adminvm", "@dispvm", "@dispvm:q01", "@dispvm:q03", "dom0", "q02", "q04", "ghost", `uuid:${uuidOf(3)}`],
  autostart: true,
});

const requestArb = fc.record(
  {
    service: fc.constantFrom("qubes.A", "qubes.A", "qubes.B", "qubes.C"),
    argument: fc.constantFrom("+", "+x", "+y"),
    source: fc.constantFrom(...QUBES.slice(0, 12), "dom0", "ghost", `uuid:${uuidOf(1)}`, `uuid:${uuidOf(6)}`),
    target: fc.constantFrom(...SOME, "q20", "", "@default", "@dispvm", "@dispvm:q01", "@dispvm:q02", "@dispvm:q05", "@adminvm", "dom0", "ghost", `uuid:${uuidOf(2)}`),
    // A Qubes Air relay call leaves the scan before it looks its names up.
    requestedSource: fc.constantFrom(null, null, null, null, null, "q03"),
  },
  { requiredKeys: ["service", "argument", "source", "target"] },
);

describe("the stream's in-order scan", () => {
  it("answers exactly what evaluate decides, request by request, warm and cold", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 90 }), systemArb, fc.array(requestArb, { minLength: 1, maxLength: 24 }), fc.integer(), (rules, raw, reqs, seed) => {
        const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": rules.join("\n") + "\n" }));
        if (!loaded.ok) return;
        const system = prepareSystemInfo(raw);
        const want = reqs.map((r) => JSON.stringify(decisionToJson(evaluate(loaded.policy, r, system))));
        // Three rounds in differing orders: the memos are filled by some requests and read by others.
        for (let round = 0; round < 3; round++) {
          const order = reqs.map((_, i) => i);
          for (let i = order.length - 1; i > 0; i--) {
            const j = Math.abs((seed + round * 7919 + i * 104729) % (i + 1));
            [order[i], order[j]] = [order[j]!, order[i]!];
          }
          for (const i of order) {
            const r = reqs[i]!;
            expect(evaluateJson(loaded.policy, r, system)).toBe(want[i]);
            // What the stream's warnings ask right after (from the scan's records when it has them).
            expect(requestNamesKnown(r, system)).toBe((system.domains.has(r.source) ? 1 : 0) | (system.domains.has(r.target ?? "") ? 2 : 0));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("decides and says which names are qubes alike when two system models alternate", () => {
    // One policy's rule orders and their early-stop unions serve both models in turn; a request the
    // scan leaves early (a target it refuses) must not be answered from the other model's lookups.
    const policy = ["qubes.A * @anyvm @anyvm allow", "qubes.B * @anyvm @tag:t1 ask", "qubes.B * @anyvm @anyvm deny", "qubes.B * @tag:t1 @anyvm ask default_target=q02"].join("\n");
    const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": policy + "\n" }));
    expect(loaded.ok).toBe(true);
    if (!loaded.ok) return;
    const q = (i: number, extra: Record<string, unknown> = {}) => ({ type: "AppVM", tags: i % 2 ? ["t1"] : [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: uuidOf(i), internal: null, ...extra });
    const s1: RawSystemInfo["domains"] = { dom0: { ...q(900), type: "AdminVM" }, a: q(1), t: q(2, { template_for_dispvms: true }) };
    const s2: RawSystemInfo["domains"] = { dom0: { ...q(900), type: "AdminVM" }, t: q(2) };
    QUBES.slice(0, 20).forEach((n, i) => {
      s1[n] = q(i + 10);
      if (i % 3) s2[n] = q(i + 40, { tags: i % 2 ? [] : ["t1"] });
    });
    const systems = [prepareSystemInfo({ domains: s1 }), prepareSystemInfo({ domains: s2 })];
    const requests = [
      { service: "qubes.A", argument: "+", source: "a", target: "@dispvm:t" },
      { service: "qubes.B", argument: "+", source: "q01", target: "q02" },
      { service: "qubes.B", argument: "+", source: "q03", target: "q04" },
      { service: "qubes.A", argument: "+", source: "q05", target: "ghost" },
    ];
    for (let round = 0; round < 4; round++) {
      for (const r of requests) {
        for (const sys of round % 2 ? [...systems].reverse() : systems) {
          expect(evaluateJson(loaded.policy, r, sys)).toBe(JSON.stringify(decisionToJson(evaluate(loaded.policy, r, sys))));
          expect(requestNamesKnown(r, sys)).toBe((sys.domains.has(r.source) ? 1 : 0) | (sys.domains.has(r.target) ? 2 : 0));
        }
      }
    }
  });

  it("covers what it claims: asks with long lists, denials, crashes and refusals all occur", () => {
    // A fixed case of each kind, so the property above is known to reach them.
    const policy = [
      "qubes.A +x @tag:t1 @dispvm:@tag:t1 allow",
      "qubes.A * @anyvm @dispvm:q01 ask",
      "qubes.A * @type:AppVM @anyvm ask default_target=q02",
      "qubes.A * q00 @default allow target=ghost",
      "qubes.B * @anyvm @anyvm deny",
      "* * @anyvm @adminvm ask autostart=no",
      "qubes.D * @anyvm @anyvm ask autostart=no default_target=q03",
      "qubes.E * @anyvm @anyvm ask autostart=no default_target=q02",
    ].join("\n");
    const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": policy + "\n" }));
    expect(loaded.ok).toBe(true);
    if (!loaded.ok) return;
    const domains: RawSystemInfo["domains"] = {
      dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: uuidOf(999), internal: null },
    };
    QUBES.slice(0, 30).forEach((n, i) => {
      domains[n] = { type: i % 2 ? "AppVM" : "TemplateVM", tags: i % 3 ? ["t1"] : [], template_for_dispvms: i % 4 === 1, default_dispvm: i % 5 ? "q01" : null, power_state: i % 2 ? "Running" : "Halted", uuid: uuidOf(i), internal: null };
    });
    const system = prepareSystemInfo({ domains });
    // A qube without its power state: an autostart=no ask that lists it crashes the engine.
    const { power_state: _dropped, ...q29 } = domains["q29"]!;
    const broken = prepareSystemInfo({ domains: { ...domains, q29 } as RawSystemInfo["domains"] });
    const cases: [Parameters<typeof evaluate>[1], (d: Record<string, unknown>) => boolean][] = [
      [{ service: "qubes.A", argument: "+", source: "q01", target: "q02" }, (d) => d["action"] === "ask" && (d["targets_for_ask"] as string[]).length > 16],
      [{ service: "qubes.A", argument: "+x", source: "q05", target: "@dispvm" }, (d) => d["error"] === "EngineError"],
      [{ service: "qubes.A", argument: "+", source: "q00", target: "" }, (d) => String(d["message"]).includes("no target is specified")],
      [{ service: "qubes.B", argument: "+", source: "q03", target: "q04" }, (d) => d["action"] === "deny"],
      [{ service: "qubes.C", argument: "+", source: "q03", target: "@adminvm" }, (d) => d["action"] === "ask" && (d["targets_for_ask"] as string[]).join() === "dom0"],
      [{ service: "qubes.C", argument: "+", source: "q03", target: "q04" }, (d) => d["message"] === "no matching rule found"],
      // autostart=no: only the running targets (the odd qubes and dom0), from the shared list; the default target kept when running.
      [{ service: "qubes.D", argument: "+", source: "q01", target: "q02" }, (d) => d["action"] === "ask" && (d["targets_for_ask"] as string[]).length === 15 && d["default_target"] === "q03"],
      [{ service: "qubes.E", argument: "+", source: "q01", target: "q02" }, (d) => d["action"] === "ask" && !(d["targets_for_ask"] as string[]).includes("q02") && d["default_target"] === null],
    ];
    for (const sys of [system, broken]) {
      for (const [req, ok] of cases) {
        // Twice: a list's JSON is kept from its second write.
        for (let round = 0; round < 3; round++) {
          const want = JSON.stringify(decisionToJson(evaluate(loaded.policy, req, sys)));
          const got = evaluateJson(loaded.policy, req, sys);
          expect(got).toBe(want);
          if (sys === system) expect(ok(JSON.parse(got) as Record<string, unknown>), got).toBe(true);
          else if (req.service === "qubes.D") expect(JSON.parse(got)["error"], got).toBe("EngineError");
        }
      }
    }
  });
});
