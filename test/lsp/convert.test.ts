/**
 * The offset ↔ position seam (`lsp/src/convert.ts`): recognising that a core diagnostic converts to
 * an already published LSP diagnostic, without converting it, says exactly what converting and
 * comparing says.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AnalysisDiagnostic } from "@qubes-kit/language";
import { mapperFor, matchesLspDiagnostic, sameLspDiagnostic, toLspDiagnostic } from "@qubes-kit/lsp";

const texts = fc.array(fc.constantFrom("a", "b", "\n", "\r\n", "é", "😀", " "), { maxLength: 30 }).map((xs) => xs.join(""));
const codes = fc.constantFrom("shadowed-rule", "legacy-token-in-new-format", "compat-transitional", "unknown-qube", "syntax-error");
const spanIn = (len: number) => fc.tuple(fc.nat({ max: len }), fc.nat({ max: len })).map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) }));
const paths = fc.constantFrom("/p/a.policy", "/p/b.policy", "/p/missing.policy");

const diagnostic = (len: number) =>
  fc.record(
    {
      code: codes,
      severity: fc.constantFrom("error", "warning", "info", "hint"),
      message: fc.constantFrom("m1", "m2"),
      span: spanIn(len),
      line: fc.nat({ max: 5 }),
      data: fc.option(fc.constantFrom({ removable: true }, { removable: false }, { fix: { x: 1 } }), { nil: undefined }),
      related: fc.option(fc.array(fc.record({ path: paths, span: spanIn(len), line: fc.nat({ max: 5 }), message: fc.constantFrom("the broader rule", "other") }), { maxLength: 2 }), { nil: undefined }),
    },
    { requiredKeys: ["code", "severity", "message", "span", "line"] },
  ) as unknown as fc.Arbitrary<AnalysisDiagnostic>;

describe("matchesLspDiagnostic", () => {
  it("equals converting then comparing, for diagnostics that moved, changed or stayed", () => {
    fc.assert(
      fc.property(texts, texts, fc.boolean(), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), diagnostic(40), diagnostic(40), (textA, textB, withRelated, edit, shift, d, other) => {
        const mapperA = mapperFor(textA);
        const mapperB = mapperFor(textB);
        const related = withRelated ? (p: string) => (p === "/p/missing.policy" ? undefined : { uri: `file://${p}`, mapper: p === "/p/a.policy" ? mapperA : mapperB }) : undefined;
        // The published one: from the same diagnostic, a moved copy, or another one, in either text.
        const source: AnalysisDiagnostic =
          edit === 0 ? d : edit === 1 ? { ...d, span: { start: d.span.start + shift, end: d.span.end + shift } } : edit === 2 ? { ...other, code: d.code, message: d.message } : other;
        const old = toLspDiagnostic(shift % 2 ? mapperB : mapperA, source, related);
        const expected = sameLspDiagnostic(toLspDiagnostic(mapperA, d, related), old);
        expect(matchesLspDiagnostic(old, mapperA, d, related)).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });
});
