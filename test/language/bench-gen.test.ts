/**
 * The benchmark generator (bench/gen-policy.mjs) is deterministic and
 * produces policies that the language core loads without a problem.
 */
import { describe, expect, it } from "vitest";
import { createMemoryFileSystem, evaluate, loadPolicy, prepareSystemInfo } from "@qubes-kit/language";
import type { RawSystemInfo } from "@qubes-kit/language";
import { generate, Rng } from "../../bench/gen-policy.mjs";

describe("bench/gen-policy.mjs", () => {
  it("is deterministic per seed", () => {
    const a = generate({ rules: 1500, requests: 200, seed: 3 });
    const b = generate({ rules: 1500, requests: 200, seed: 3 });
    const c = generate({ rules: 1500, requests: 200, seed: 4 });
    expect(b).toEqual(a);
    expect(c.files).not.toEqual(a.files);
    expect(c.requests).not.toEqual(a.requests);
  });

  it("has a PRNG that depends only on the seed", () => {
    const draw = (seed: number) => {
      const r = new Rng(seed);
      return [r.u32(), r.u32(), r.int(1000), r.uuid()];
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    expect(new Rng(1).uuid()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("lays out files like gen-policy.py", () => {
    const g = generate({ rules: 1000, requests: 10, seed: 1 });
    const names = Object.keys(g.files);
    expect(names.filter((n) => /^\d\d-gen-\d\d\.policy$/.test(n))).toHaveLength(20);
    expect(names).toContain("include/gen-common");
    expect(names).toContain("include/gen-svc");
    expect(g.files["99-catchall.policy"]!.trimEnd().split("\n").pop()).toBe("*\t*\t@anyvm\t@anyvm\tdeny");
    expect(g.files["10-gen-00.policy"]).toContain("!include include/gen-common\n");
    expect(g.files["10-gen-00.policy"]).toMatch(/^!include-service svc000\.Service \* include\/gen-svc$/m);
    expect(g.ruleLines).toBe(1001);
    expect(Object.keys(g.system.domains)).toHaveLength(300);
    expect(g.system.domains["dom0"]).toMatchObject({ type: "AdminVM", uuid: "00000000-0000-0000-0000-000000000000" });
  });

  it("generates a 10k-rule policy that loads without diagnostics", () => {
    const g = generate({ rules: 10_000, requests: 300, seed: 1 });
    const result = loadPolicy(createMemoryFileSystem(g.files), { collectAll: true });
    expect(result.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.policy.rules).toHaveLength(g.ruleLines);

    // Every generated request gets a decision (never a throw).
    const system = prepareSystemInfo(g.system as unknown as RawSystemInfo);
    const outcomes = new Set(g.requests.map((r) => { const d = evaluate(result.policy, r, system); return d.ok ? d.action : "refused"; }));
    expect([...outcomes].sort()).toEqual(["allow", "ask", "deny", "refused"]);
  });
});
