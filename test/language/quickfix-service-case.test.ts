/**
 * The quick fix of `service-case-mismatch`: replace the service with the
 * standard spelling (`data.replacement`). Property over case variants of the
 * standard services: the fix is offered, and after it the warning is gone.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { analyzeWorkspace, codeActions, createMemoryFileSystem, STANDARD_SERVICES } from "@qubes-kit/language";

const PATH = "/etc/qubes/policy.d/30-user.policy";
const fixOf = (text: string) => {
  const s = analyzeWorkspace(createMemoryFileSystem({ "30-user.policy": text }), { system: null });
  const diags = (s.diagnostics.get(PATH) ?? []).filter((d) => d.code === "service-case-mismatch");
  const doc = s.document(PATH)!;
  const actions = diags.length ? codeActions(doc, PATH, diags[0]!.span, diags) : [];
  return { diags, actions };
};

describe("service-case-mismatch quick fix", () => {
  test("qubes.filecopy becomes qubes.Filecopy", () => {
    const text = "qubes.filecopy * work vault allow\n";
    const { actions } = fixOf(text);
    const fix = actions.find((a) => a.title === "replace with `qubes.Filecopy`");
    expect(fix).toMatchObject({ kind: "quickfix", isPreferred: true });
    const e = fix!.edits[PATH]![0]!;
    expect(text.slice(0, e.span.start) + e.newText + text.slice(e.span.end)).toBe("qubes.Filecopy * work vault allow\n");
  });

  test("property: for any case variant of a standard service the fix removes the warning", () => {
    fc.assert(
      fc.property(fc.constantFrom(...STANDARD_SERVICES.map((s) => s.name)), fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }), (name, flips) => {
        const variant = [...name].map((c, i) => (flips[i] ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c)).join("");
        const text = `${variant} * work vault allow\n`;
        const { diags, actions } = fixOf(text);
        // (Not `return expect(…)`: fast-check takes any returned value but true or undefined as a failure.)
        if (variant === name || STANDARD_SERVICES.some((s) => s.name === variant)) {
          expect(diags).toEqual([]);
          return;
        }
        expect(diags).toHaveLength(1);
        const e = actions.find((a) => a.diagnostics.includes(diags[0]!))!.edits[PATH]![0]!;
        const fixed = text.slice(0, e.span.start) + e.newText + text.slice(e.span.end);
        expect(fixOf(fixed).diags).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });
});
