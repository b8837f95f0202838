/**
 * The rule index on policies whose rules crowd into few (service, source)
 * groups, so that groups are large enough to be split by target: indexed
 * decisions equal the engine's linear scan, and `evaluateJson` is exactly
 * `JSON.stringify(decisionToJson(evaluate(…)))`, requests repeated (the ask
 * lists it shares between requests never leak into `evaluate`'s decisions).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMemoryFileSystem, decisionToJson, evaluate, evaluateJson, loadPolicy, prepareSystemInfo, type Decision, type RawSystemInfo } from "@qubes-kit/language";
import { ruleLineArb } from "../helpers/policy-arbs.js";

const QUBES = Array.from({ length: 20 }, (_, i) => `q${String(i).padStart(2, "0")}`);
const uuidOf = (i: number) => `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`;

const systemArb: fc.Arbitrary<RawSystemInfo> = fc
  .record({
    present: fc.subarray(QUBES, { minLength: 1 }),
    props: fc.array(fc.record({ tags: fc.subarray(["t1", "t2"]), dvm: fc.boolean(), running: fc.boolean(), def: fc.constantFrom(null, "q01", "ghost") }), { minLength: QUBES.length, maxLength: QUBES.length }),
    drop: fc.option(fc.record({ qube: fc.constantFrom(...QUBES), key: fc.constantFrom("tags", "type", "uuid", "power_state") }), { nil: undefined, freq: 6 }),
  })
  .map((s) => {
    const domains: RawSystemInfo["domains"] = {
      dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: uuidOf(999), internal: null },
    };
    QUBES.forEach((n, i) => {
      if (!s.present.includes(n)) return;
      const p = s.props[i]!;
      domains[n] = { type: i % 3 ? "AppVM" : "TemplateVM", tags: p.tags, template_for_dispvms: p.dvm, default_dispvm: p.def, power_state: p.running ? "Running" : "Halted", uuid: uuidOf(i), internal: null };
    });
    if (s.drop && domains[s.drop.qube]) delete (domains[s.drop.qube] as Record<string, unknown>)[s.drop.key];
    return { domains };
  });

// Two services, few sources (mostly @anyvm): groups of a dozen rules and more, with literal targets.
const ruleArb = ruleLineArb({
  serviceArgs: [
    ["qubes.A", "*"],
    ["qubes.A", "+x"],
    ["*", "*"],
  ],
  sources: ["@anyvm", "@anyvm", "@anyvm", "@anyvm", "q00", "q00", "@tag:t1", "dom0", `uuid:${uuidOf(0)}`],
  targets: [...QUBES.slice(0, 6), "@anyvm", "@tag:t2", "@type:AppVM", "@default", "@dispvm", "@dispvm:q01", "@adminvm", "dom0", `uuid:${uuidOf(2)}`, "*", "*", "*"],
  redirects: ["@adminvm", "@dispvm", "q02", "q03", "ghost"],
  autostart: true,
});

const requestArb = fc.record({
  service: fc.constantFrom("qubes.A", "qubes.B"),
  argument: fc.constantFrom("+", "+x"),
  source: fc.constantFrom("q00", "q01", "q05", "q11", "dom0", `uuid:${uuidOf(0)}`, "ghost"),
  target: fc.constantFrom(...QUBES.slice(0, 8), "", "@dispvm", "@dispvm:q01", "@adminvm", "@adminvm", "@adminvm", "dom0", `uuid:${uuidOf(2)}`, "ghost"),
});

/** A decision as the corpus judges it: when the real engine would crash, only that fact counts. */
function judged(d: Decision): Record<string, unknown> {
  const j = decisionToJson(d);
  return j["error"] === "EngineError" ? { ok: false, error: "EngineError", stage: j["stage"] } : j;
}

describe("the rule index with large groups", () => {
  it("never changes a decision (indexed vs. linear scan)", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 10, maxLength: 120 }), systemArb, fc.array(requestArb, { minLength: 1, maxLength: 15 }), (rules, raw, requests) => {
        const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": rules.join("\n") + "\n" }));
        expect(loaded.ok).toBe(true);
        if (!loaded.ok) return;
        const system = prepareSystemInfo(raw);
        for (const r of requests) expect(judged(evaluate(loaded.policy, r, system))).toEqual(judged(evaluate(loaded.policy, r, system, { linear: true })));
      }),
      { numRuns: 300 },
    );
  });

  it("evaluateJson is JSON.stringify(decisionToJson(evaluate(…))), and evaluate's ask lists are the caller's own", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 80 }), systemArb, fc.array(requestArb, { minLength: 1, maxLength: 10 }), (rules, raw, requests) => {
        const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": rules.join("\n") + "\n" }));
        expect(loaded.ok).toBe(true);
        if (!loaded.ok) return;
        const system = prepareSystemInfo(raw);
        for (const r of [...requests, ...requests]) {
          const d = evaluate(loaded.policy, r, system);
          const want = JSON.stringify(decisionToJson(d));
          expect(evaluateJson(loaded.policy, r, system)).toBe(want);
          // A caller that edits its decision changes nothing for the next request.
          if (d.ok && d.action === "ask") d.targetsForAsk.push("mutated");
          expect(evaluateJson(loaded.policy, r, system)).toBe(want);
          expect(JSON.stringify(decisionToJson(evaluate(loaded.policy, r, system)))).toBe(want);
        }
      }),
      { numRuns: 300 },
    );
  });
});
