/**
 * The pure renderers of the stack commands (`vscode-extension/src/template-render.ts`).
 * The contract with the real server's answers is checked in `template-commands.test.ts`.
 */
import { describe, expect, it } from "vitest";
import type { TemplatePlanResult, TemplateWhatifResult } from "@qubes-kit/lsp";
import { planMarkdown, planSummary, stepSign, whatifMarkdown, whatifSummary } from "../../vscode-extension/src/template-render.js";

type Plan = NonNullable<TemplatePlanResult["plan"]>;
type Step = Plan["steps"][number];

const step = (over: Partial<Step>): Step => ({
  id: "x",
  kind: "set-property",
  target: "qube work",
  object: "work",
  key: "memory",
  calls: [],
  before: "400",
  after: "800",
  requires: [],
  effect: "next-start",
  risk: "none",
  ...over,
});

const plan = (over: Partial<Plan>): Plan => ({
  qkitPlan: 1,
  stack: "s",
  steps: [],
  errors: [],
  summary: { create: 0, change: 0, destroy: 0, adopt: 0, policy: 0, global: 0, deferred: 0 },
  restartToTakeEffect: [],
  orphans: [],
  scope: { qubes: [], policy: [], available: [] },
  fingerprint: "sha256:0",
  options: { adopt: false, prune: false, restart: "never" },
  ...over,
});

const result = (p: Plan | undefined, extra: Partial<TemplatePlanResult> = {}): TemplatePlanResult => ({ file: "/w/s.qubes.yaml", connection: "sim", ...(p ? { plan: p } : {}), ...extra });

describe("stepSign", () => {
  it.each([
    ["create", null, "+"],
    ["remove", "AppVM", "-"],
    ["set-property", "400", "~"],
    ["write-policy", null, "+"],
    ["write-policy", "old", "~"],
    ["remove-tag", "t", "-"],
    ["add-tag", null, "+"],
  ] as const)("%s (before %s) is %s", (kind, before, sign) => {
    expect(stepSign(step({ kind, before }))).toBe(sign);
  });
});

describe("planSummary and planMarkdown", () => {
  it("says there is nothing to do when the machine matches (record-keys steps are bookkeeping)", () => {
    const r = result(plan({ steps: [step({ kind: "record-keys", key: "x-qkit-keys" })] }));
    expect(planSummary(r)).toBe("No changes: the machine matches the stack");
    expect(planMarkdown(r)).not.toContain("## Steps");
  });

  it("counts what the plan does", () => {
    const r = result(plan({ steps: [step({})], summary: { create: 1, change: 2, destroy: 0, adopt: 1, policy: 1, global: 2, deferred: 0 } }));
    expect(planSummary(r)).toBe("Plan: 1 to create, 2 to change, 0 to destroy, 1 to adopt; 1 policy file, 2 global properties");
  });

  it("puts errors first and escapes table cells", () => {
    const md = planMarkdown(
      result(plan({ errors: [{ code: "unowned-qube", message: "qube 'x' is not managed" }], steps: [step({ after: "a|b\nc" })] }), { running: ["work"] }),
    );
    expect(md.indexOf("## Errors")).toBeLessThan(md.indexOf("## Steps"));
    expect(md).toContain("error[unowned-qube]: qube 'x' is not managed");
    expect(md).toContain("| ~ | qube work | memory | 400 | a\\|b ⏎ c | at next start |");
    expect(planSummary(result(plan({ errors: [{ code: "c", message: "m" }] })))).toBe("1 error in the plan: nothing can be applied until fixed");
  });

  it("shows a deferred step and why", () => {
    const md = planMarkdown(result(plan({ steps: [step({ key: "template", deferred: "work is running" })] })));
    expect(md).toContain("deferred: work is running");
  });

  it("shows why there is no plan, with the stack's problems", () => {
    const md = planMarkdown(result(undefined, { error: "1 error in the stack", problems: [{ file: "/w/s.qubes.yaml", line: 4, code: "unknown-label", severity: "error", message: "no such label: blu" }] }));
    expect(md).toContain("**Not planned:** 1 error in the stack");
    expect(md).toContain("- s.qubes.yaml:4: error[unknown-label]: no such label: blu");
    expect(planSummary(result(undefined, { error: "e" }))).toBe("e");
  });
});

describe("whatifSummary and whatifMarkdown", () => {
  const base: TemplateWhatifResult = { file: "/w/s.qubes.yaml", connection: "sim", ok: true, expectations: [], changes: [], loadErrors: [] };

  it("says when nothing changes", () => {
    expect(whatifSummary(base)).toBe("What-if: no expectations; 0 decisions change");
    expect(whatifMarkdown(base)).toContain("No qrexec decision changes.");
  });

  it("lists expectations and changes with their marks", () => {
    const r: TemplateWhatifResult = {
      ...base,
      ok: false,
      expectations: [
        { text: "qubes.Gpg work -> vault => allow", ok: true },
        { text: "qubes.Filecopy vault -> work => deny", ok: false, problem: "got allow" },
      ],
      changes: [
        { service: "qubes.Gpg", argument: "+", source: "work", target: "vault", kind: "grant", before: "deny", after: "allow vault" },
        { service: "qubes.Filecopy", argument: "+x", source: "a", target: "b", kind: "revoke", before: "allow b", after: "deny" },
      ],
      loadErrors: [{ when: "future", message: "bad line" }],
    };
    const md = whatifMarkdown(r);
    expect(md).toContain("- ✓ `qubes.Gpg work -> vault => allow`");
    expect(md).toContain("- ✗ `qubes.Filecopy vault -> work => deny`: got allow");
    expect(md).toContain("| + | qubes.Gpg | work | vault | deny | allow vault |");
    expect(md).toContain("| - | qubes.Filecopy+x | a | b | allow b | deny |");
    expect(md).toContain("the future policy does not load: bad line");
    expect(whatifSummary(r)).toBe("What-if: 1 of 2 expectations fail; 2 decisions change");
  });

  it("shows the error alone when there is no report", () => {
    const r: TemplateWhatifResult = { file: "/w/s.qubes.yaml", connection: "none", error: "no machine to plan against" };
    expect(whatifSummary(r)).toBe("no machine to plan against");
    expect(whatifMarkdown(r)).not.toContain("## Decisions");
  });
});
