/**
 * The shadowed-rule analysis is exact and conservative: the indexed search
 * agrees with a naive pairwise search, and a rule reported as shadowed never
 * decides any request (checked by evaluating a grid of requests).
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { createMemoryFileSystem, evaluate, findShadowingRules, loadPolicy, ruleCovers, type PolicyRule } from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";

const SOURCES = ["*", "@anyvm", "@adminvm", "dom0", "work", "vault", "@tag:gpg-client", "@type:AppVM", "uuid:1b9b0d3c-0a39-4a4c-9a5d-000000000001"];
const TARGETS = [...SOURCES, "@default", "@dispvm", "@dispvm:default-dvm", "@dispvm:@tag:dvm-ok"];
const rule = fc
  .tuple(fc.constantFrom("a", "b", "*"), fc.constantFrom("*", "+", "+x"), fc.constantFrom(...SOURCES), fc.constantFrom(...TARGETS), fc.constantFrom("allow target=dom0", "deny", "ask target=vault"))
  .map(([s, a, src, tgt, act]) => `${s} ${s === "*" ? "*" : a} ${src} ${tgt} ${act}`);

function naive(rules: readonly PolicyRule[]): Array<number | undefined> {
  return rules.map((r, i) => rules.slice(0, i).find((c) => ruleCovers(c, r))?.index);
}

describe("shadowed rules", () => {
  const system = demoSystem();
  const requests: Array<{ service: string; argument: string; source: string; target: string }> = [];
  for (const service of ["a", "b"])
    for (const argument of ["+", "+x", "+y"])
      for (const source of ["dom0", "work", "vault", "personal", "sys-net", "ghost"])
        for (const target of ["", "dom0", "@adminvm", "work", "vault", "personal", "@dispvm", "@dispvm:default-dvm", "uuid:1b9b0d3c-0a39-4a4c-9a5d-000000000001"])
          requests.push({ service, argument, source, target });

  test("index agrees with the naive search, and shadowed rules never decide", () => {
    fc.assert(
      fc.property(fc.array(rule, { minLength: 1, maxLength: 10 }), (lines) => {
        const load = loadPolicy(createMemoryFileSystem({ "30-user.policy": lines.join("\n") + "\n" }));
        if (!load.ok) return;
        const rules = load.policy.rules;
        const shadow = findShadowingRules(rules);
        expect(shadow.map((r) => r?.index)).toEqual(naive(rules));
        const shadowedLines = new Set(rules.filter((_, i) => shadow[i]).map((r) => r.origin.line));
        for (const req of requests) {
          const d = evaluate(load.policy, req, system);
          if ("rule" in d && d.rule) expect(shadowedLines.has(d.rule.line), `${JSON.stringify(req)} decided by a shadowed rule\n${lines.join("\n")}`).toBe(false);
        }
      }),
      { numRuns: 150 },
    );
  });
});
