/**
 * `policy flip` names every decision by the user's lines, never by the edited
 * copy's: on random policies with comments between the rules, the rule a
 * suggestion's decision cites (`afterInUserLines`) is, in the user's file,
 * the very line that decided in the edited copy; the added rule is "the new
 * rule" and the changed one "the changed rule". And through the CLI, on the
 * reviewer's call.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMemoryFileSystem, flipDecision, loadPolicy, prepareSystemInfo, type CompiledPolicy, type RawSystemInfo } from "@qubes-kit/language";
import { ruleLineArb } from "../helpers/policy-arbs.js";
import { runQkit } from "../helpers/qkit.js";

const FILE = "/etc/qubes/policy.d/30-user.policy";
const names = ["dom0", "work", "vault", "dvm"];
const SYSTEM: RawSystemInfo = {
  domains: Object.fromEntries(
    names.map((n, i) => [
      n,
      { internal: null, tags: [], type: n === "dom0" ? "AdminVM" : "AppVM", template_for_dispvms: n === "dvm", default_dispvm: n === "dom0" ? null : "dvm", power_state: "Running", uuid: `00000000-0000-0000-0000-00000000000${i}`, relayvm: null, transport_rpc: null, label: "0xcc0000", icon: "x", guivm: null },
    ]),
  ),
};
const system = prepareSystemInfo(SYSTEM);

const ruleArb = ruleLineArb({
  serviceArgs: [
    ["*", "*"],
    ["qubes.A", "*"],
    ["qubes.A", "+x"],
  ],
  sources: ["@anyvm", "work", "vault"],
  targets: ["@anyvm", "@default", "work", "vault", "@dispvm"],
  redirects: ["work", "vault", "@dispvm:dvm"],
});
const lineArb = fc.oneof({ weight: 3, arbitrary: ruleArb }, { weight: 2, arbitrary: fc.constantFrom("# a comment", "", "   # indented comment") });

function load(text: string): CompiledPolicy | undefined {
  const r = loadPolicy(createMemoryFileSystem({ [FILE]: text }));
  return r.ok ? r.policy : undefined;
}

describe("policy flip names decisions by the user's lines", () => {
  it("property: the cited line is the rule that decided in the edited copy", () => {
    fc.assert(
      fc.property(fc.array(lineArb, { minLength: 1, maxLength: 10 }), fc.constantFrom("work", "vault"), fc.constantFrom("work", "vault", "@default", "@dispvm"), (lines, source, target) => {
        const text = lines.join("\n") + "\n";
        const policy = load(text);
        fc.pre(policy !== undefined);
        const user = text.split("\n");
        const r = flipDecision(policy!, { fs: createMemoryFileSystem({ [FILE]: text }) }, { service: "qubes.A", argument: "+x", source, target }, system);
        for (const s of r.suggestions) {
          const edited = text.split("\n");
          const i = s.edit.line - 1;
          if (s.edit.kind === "remove") edited.splice(i, 1);
          else if (s.edit.kind === "change-action") edited[i] = s.edit.newRule;
          else edited.splice(i, 0, s.edit.newRule);
          const raw = s.after.rule;
          const shown = s.afterInUserLines.rule;
          if (!raw || raw.line === null) continue;
          const decidingText = edited[raw.line - 1]!;
          if (s.edit.kind === "add" && raw.line === s.edit.line) {
            expect(s.afterRule).toBe("the new rule");
            expect(shown!.line).toBeNull();
            expect(decidingText).toBe(s.edit.newRule);
          } else if (s.edit.kind === "change-action" && raw.line === s.edit.line) {
            expect(s.afterRule).toBe(`the changed rule, 30-user.policy:${s.edit.line}`);
            expect(shown!.line).toBe(s.edit.line);
          } else {
            expect(user[shown!.line! - 1]).toBe(decidingText);
            expect(s.afterRule).toBe(`30-user.policy:${shown!.line}`);
          }
          // Everything but the rule is the edited policy's decision.
          expect({ ...s.afterInUserLines, rule: null, message: null }).toEqual({ ...s.after, rule: null, message: null });
        }
      }),
      { numRuns: 200 },
    );
  });

  it("CLI: no decision cites a comment line of the user's file (the reviewer's call)", async () => {
    const demo = fileURLToPath(new URL("../fixtures/audit/demo/", import.meta.url));
    const r = await runQkit(["policy", "flip", "qubes.Filecopy", "work", "personal", "--policy-dir", demo + "policy.d", "--system", demo + "system.json", "--json"], { cwd: demo });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { suggestions: { edit: { kind: string }; after: { rule: { file: string; line: number | null } }; after_rule: string }[] };
    const user = readFileSync(demo + "policy.d/30-user.policy", "utf8").split("\n");
    expect(j.suggestions.length).toBeGreaterThan(0);
    for (const s of j.suggestions) {
      if (s.after.rule.line === null) {
        expect(s.edit.kind).toBe("add");
        expect(s.after_rule).toBe("the new rule");
        continue;
      }
      expect(s.after.rule.file).toBe("30-user.policy");
      const text = user[s.after.rule.line - 1]!;
      expect(text.trim() === "" || text.trim().startsWith("#"), `${s.after_rule}: ${text}`).toBe(false);
    }
    const removal = j.suggestions.find((s) => s.edit.kind === "remove")!;
    expect(removal.after_rule).toBe("30-user.policy:15");
  });
});
