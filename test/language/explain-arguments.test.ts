/**
 * `explain` lists every rule of the service before the deciding one, those
 * for another argument too (`failed: "argument"`), through the language entry
 * point and `qkit policy explain`; rules of other services are counted.
 * Property: the trace is exactly the rules of the service before the deciding
 * one that do not match, in order.
 */
import fc from "fast-check";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { createMemoryFileSystem, explain, loadPolicy, prepareSystemInfo, type RawSystemInfo } from "@qubes-kit/language";
import { runQkit } from "../helpers/qkit.js";

const system = prepareSystemInfo({ domains: { dom0: { type: "AdminVM" }, work: { type: "AppVM" }, personal: { type: "AppVM" }, vault: { type: "AppVM" } } } as RawSystemInfo);
const policyOf = (text: string) => {
  const r = loadPolicy(createMemoryFileSystem({ "30-user.policy": text }));
  if (!r.ok) throw new Error(r.error.message);
  return r.policy;
};

describe("explain lists the rules of the service for other arguments", () => {
  test("a rule for another argument is a step with failed: argument", () => {
    const p = policyOf("qubes.StartApp +firefox @anyvm @dispvm allow\nqubes.Other * @anyvm @anyvm deny\nqubes.StartApp * work personal deny\n");
    const x = explain(p, { service: "qubes.StartApp", argument: "+xterm", source: "work", target: "personal" }, system);
    expect(x.trace.map((s) => [s.rule.origin.line, s.failed, s.reason])).toEqual([[1, "argument", "argument `+firefox` does not match `+xterm`"]]);
    expect(x.skipped).toBe(1);
    expect(x.decidingRule?.origin.line).toBe(3);
  });

  test("property: the trace is every non-matching rule of the service before the deciding one", () => {
    const rule = fc
      .tuple(fc.constantFrom("qubes.A", "qubes.B", "*"), fc.constantFrom("+x", "+y", "*"), fc.constantFrom("work", "@anyvm", "vault"), fc.constantFrom("personal", "@anyvm", "vault"), fc.constantFrom("allow", "deny"))
      .map(([s, a, src, tgt, act]) => `${s} ${s === "*" ? "*" : a} ${src} ${tgt} ${act}`);
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 8 }), fc.constantFrom("+x", "+y", "+"), fc.constantFrom("work", "vault"), (lines, argument, source) => {
        const p = policyOf(lines.join("\n") + "\n* * @anyvm @anyvm deny\n");
        const x = explain(p, { service: "qubes.A", argument, source, target: "personal" }, system);
        const end = x.decidingRule ? x.decidingRule.index : p.rules.length;
        const ofService = p.rules.filter((r) => r.index < end && (r.service === null || r.service === "qubes.A"));
        const want = ofService.filter((r) => r.argument !== null && r.argument !== argument).map((r) => r.index);
        const got = x.trace.filter((s) => s.failed === "argument").map((s) => s.rule.index);
        expect(got).toEqual(want);
        // Every listed step is of the service and before the deciding rule, in order; the rest are counted.
        expect(x.trace.map((s) => s.rule.index)).toEqual([...x.trace.map((s) => s.rule.index)].sort((a, b) => a - b));
        expect(x.skipped).toBe(p.rules.filter((r) => r.service !== null && r.service !== "qubes.A").length);
      }),
      { numRuns: 300 },
    );
  });

  test("qkit policy explain shows the demo's `qubes.StartApp +firefox` rule for a call with +xterm", async () => {
    const root = fileURLToPath(new URL("../../examples/demo/", import.meta.url));
    const r = await runQkit(["policy", "explain", "--policy-dir", "policy.d", "--system", "system.json", "qubes.StartApp+xterm", "work", "personal"], { cwd: root });
    expect(r.out).toContain("30-user.policy:37  qubes.StartApp +firefox @anyvm @dispvm allow\n      argument `+firefox` does not match `+xterm`\n");
  });
});
