/**
 * The loader's one-pass line scanner (`scanLines`) finds exactly the lines
 * that grouping the Chevrotain lexer's tokens finds (`scanLinesLexed`, what
 * the editor path parses), on any text, in both newline modes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { scanLines, scanLinesLexed, type ScannedLine } from "../../language/src/syntax/parse.js";

const PIECES = ["\n", "\r", "\r\n", "\t", " ", "\u000b", "\u000c", "\u001c", "\u001f", "\u0085", "\u00a0", "\u2028", "\ufeff", "#", "!", "x", "qubes.A * @anyvm @anyvm allow", "!include x", "# c", "  "];
const textArb = fc.array(fc.oneof(fc.constantFrom(...PIECES), fc.string({ maxLength: 3 })), { maxLength: 40 }).map((a) => a.join(""));

function lines(scan: typeof scanLines, text: string, mode: "universal" | "lf"): { count: number; lines: ScannedLine[] } {
  const out: ScannedLine[] = [];
  const count = scan(text, mode, (l) => out.push({ ...l }));
  return { count, lines: out };
}

describe("the loader's line scanner", () => {
  it("finds the lines the lexer finds", () => {
    fc.assert(
      fc.property(textArb, fc.constantFrom("universal" as const, "lf" as const), (text, mode) => {
        expect(lines(scanLines, text, mode)).toEqual(lines(scanLinesLexed, text, mode));
      }),
      { numRuns: 3000 },
    );
  });

  it("agrees on the edge cases", () => {
    for (const text of ["", "\n", "\r", "\r\n", " ", "a", "a\n", "a\r", "a\r\n", "  a  \n  ", "\n\n", "a\rb\nc\r\nd", "#x\r\r\n!y", " \u0085 a \u001c\n"]) {
      for (const mode of ["universal", "lf"] as const) expect(lines(scanLines, text, mode)).toEqual(lines(scanLinesLexed, text, mode));
    }
  });
});
