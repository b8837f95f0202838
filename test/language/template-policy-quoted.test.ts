/**
 * Embedded policy written in any scalar style YAML allows: a finding in the
 * rules points at its own characters in the stack file, whatever the style
 * (a literal block, double quotes with escapes and folded lines, single
 * quotes with doubled quotes, a plain multi-line scalar). Property test: the
 * stack is written by the `yaml` library in each style, one rule has a
 * misspelled action, and the finding's span must be exactly that word in
 * the file (in double quotes, with the escaped line break the library may
 * cut it with).
 */
import fc from "fast-check";
import { Document, Scalar } from "yaml";
import { describe, expect, it } from "vitest";
import { checkStack } from "@qubes-kit/language";

const word = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);
const rule = fc.record({ service: fc.stringMatching(/^qubes\.[A-Z][A-Za-z]{0,8}$/), source: word, target: word });
const STYLES = [Scalar.QUOTE_DOUBLE, Scalar.QUOTE_SINGLE, Scalar.BLOCK_LITERAL, Scalar.PLAIN] as const;

function stackText(rules: string, style: (typeof STYLES)[number], lineWidth: number): string {
  const doc = new Document({ qkit: 1, stack: "q", qubes: { work: { class: "AppVM", label: "blue" } }, policy: [{ file: "p", rules }] });
  const scalar = doc.getIn(["policy", 0, "rules"], true) as Scalar;
  scalar.type = style;
  // A narrow line width makes the library fold long quoted and plain scalars over several lines.
  return doc.toString({ lineWidth, minContentWidth: 0 });
}

describe("embedded policy in quoted and plain scalars", () => {
  it("points a misspelled action at its own characters in the file, in every scalar style", () => {
    fc.assert(
      fc.property(
        fc.array(rule, { minLength: 1, maxLength: 5 }),
        fc.nat(),
        fc.constantFrom(...STYLES),
        fc.constantFrom(0, 20, 40),
        fc.constantFrom("\t", " ", "  "),
        (rules, pick, style, lineWidth, sep) => {
          const bad = pick % rules.length;
          const text = rules.map((r, i) => [r.service, "*", r.source, r.target, i === bad ? "alow" : "deny"].join(sep)).join("\n") + (style === Scalar.PLAIN ? "" : "\n");
          const file = stackText(text, style, lineWidth);
          const result = checkStack({ readFile: (p) => (p === "/s/q.qubes.yaml" ? file : undefined) }, "/s/q.qubes.yaml");
          const found = result.diagnostics.filter((d) => d.code === "invalid-action");
          expect(found, file).toHaveLength(1);
          // In double quotes the library may cut the word with an escaped line break (`al\` then `ow` on the next line): the span covers both parts.
          const shown = file.slice(found[0]!.span.start, found[0]!.span.end);
          expect(style === Scalar.QUOTE_DOUBLE ? shown.replace(/\\\r?\n[ \t]*/g, "") : shown, file).toBe("alow");
        },
      ),
      { numRuns: 300 },
    );
  });
});
