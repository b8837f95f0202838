/**
 * Simulation for editors: decisions, explanations, the system summary and decision tables.
 */
import { describe, expect, test } from "vitest";
import { decisionTable, evaluateRequest, explainRequest, summarizeSystem } from "@qubes-kit/language";
import { demoSystem, parseFixture, snapshotOf } from "../lsp/helpers/fixture.js";

const POLICY = parseFixture(`#! system
#- 30-user.policy
qubes.Filecopy  *  @anyvm  vault     deny notify=no
qubes.Filecopy  *  work    personal  allow
qubes.Filecopy  *  @anyvm  @anyvm    ask
* * @anyvm @anyvm deny
`);

describe("simulation", () => {
  const snapshot = snapshotOf(POLICY);
  const system = demoSystem();

  test("evaluate", () => {
    const d = evaluateRequest(snapshot, { service: "qubes.Filecopy", source: "work", target: "personal" }, system);
    expect(d).toMatchObject({ ok: true, action: "allow", target: "personal", rule: { file: "30-user.policy", line: 2 } });
  });

  test("explain lists the rules tried before the deciding one", () => {
    const e = explainRequest(snapshot, { service: "qubes.Filecopy", source: "work", target: "personal" }, system);
    expect(e.trace.map((s) => [s.rule.origin.line, s.matched])).toEqual([[1, false]]);
    expect(e.decidingRule?.origin.line).toBe(2);
  });

  test("a policy with errors denies everything at load", () => {
    const broken = snapshotOf(parseFixture("#- 30-user.policy\nqubes.A * work vault alow\n"));
    expect(evaluateRequest(broken, { service: "qubes.A", source: "work", target: "vault" }, system)).toMatchObject({ ok: false, stage: "load" });
  });

  test("decision table", () => {
    const t = decisionTable(snapshot, "qubes.Filecopy", undefined, system, { sources: ["work", "personal"], targets: ["personal", "vault", "dom0"] });
    expect(t.cells.map((row) => row.map((c) => c.action))).toEqual([
      ["allow", "deny", "error"],
      ["ask", "deny", "error"],
    ]);
    // No rule matches dom0 (`@anyvm` excludes it): the engine refuses with "no matching rule found".
    expect(t.cells[0]![2]!.message).toBe("no matching rule found");
    expect(t.cells[0]![0]!.rule).toEqual({ file: "30-user.policy", line: 2, path: "/etc/qubes/policy.d/30-user.policy" });
  });

  test("system summary", () => {
    const s = summarizeSystem(system);
    expect(s.qubes).toHaveLength(10);
    expect(s.tags).toEqual(["dvm-ok", "gpg-client", "gpg-server", "net"]);
    expect(s.dispvmTemplates).toEqual(["default-dvm", "default-mgmt-dvm"]);
    expect(summarizeSystem(null)).toEqual({ qubes: [], tags: [], types: [], dispvmTemplates: [] });
  });
});
