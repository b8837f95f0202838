/**
 * Formatting: columns aligned per block of consecutive rules, comments kept,
 * and printing then parsing gives the same rules (property test).
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { formatText, parseDocument, type RuleLine, type SyntaxKind } from "@qubes-kit/language";

function fmt(text: string, syntax: SyntaxKind = "policy"): string {
  return formatText(parseDocument(text, { syntax }));
}

function rulesOf(text: string, syntax: SyntaxKind): unknown[] {
  const doc = parseDocument(text, { syntax });
  return doc.lines.map((l) => (l.kind === "rule" ? (l as RuleLine).rule : l.kind === "directive" ? [l.directive, l.params.map((p) => p.text)] : l.kind));
}

describe("formatting", () => {
  test("a block runs across its comment lines, up to a blank line or a directive", () => {
    const input = [
      "# Nothing leaves the vault.",
      "qubes.Filecopy * vault @anyvm deny",
      "  # work may copy into the vault after a confirmation.",
      "qubes.Filecopy * work vault ask default_target=vault",
      "# trailing comment",
      "",
      "qubes.Gpg * @anyvm @anyvm deny",
    ].join("\n");
    expect(fmt(input)).toBe(
      [
        "# Nothing leaves the vault.",
        "qubes.Filecopy  *  vault  @anyvm  deny",
        "# work may copy into the vault after a confirmation.",
        "qubes.Filecopy  *  work   vault   ask  default_target=vault",
        "# trailing comment",
        "",
        "qubes.Gpg  *  @anyvm  @anyvm  deny",
      ].join("\n"),
    );
  });

  test("aligns columns per block, keeps comments and blank lines", () => {
    const input = [
      "# split-gpg   ",
      "qubes.Gpg * @tag:gpg-client @tag:gpg-server allow",
      "qubes.Gpg   *   work @default   ask default_target=vault",
      "",
      "   !include    include/common",
      "qubes.Filecopy * @anyvm vault deny notify=no",
      "* * @anyvm @anyvm deny",
    ].join("\n");
    expect(fmt(input)).toBe(
      [
        "# split-gpg",
        "qubes.Gpg  *  @tag:gpg-client  @tag:gpg-server  allow",
        "qubes.Gpg  *  work             @default         ask  default_target=vault",
        "",
        "!include include/common",
        "qubes.Filecopy  *  @anyvm  vault   deny  notify=no",
        "*               *  @anyvm  @anyvm  deny",
      ].join("\n"),
    );
  });

  test("keeps line endings and leaves lines with errors alone", () => {
    const input = "a.B * x y allow\r\nbad   line\r\nc.D * xx yy deny\r";
    expect(fmt(input)).toBe("a.B  *  x  y  allow\r\nbad   line\r\nc.D  *  xx  yy  deny\r");
  });

  test("legacy syntax keeps `$` tokens and aligns lines", () => {
    expect(fmt("$tag:net   $adminvm allow\n$anyvm $anyvm deny\n", "service")).toBe("$tag:net  $adminvm  allow\n$anyvm    $anyvm    deny\n");
  });

  test("legacy lines with commas are left as written (a comma is a separator: formatting changes whitespace only)", () => {
    const out = fmt("$tag:net   $adminvm allow,target=dom0\n$anyvm $anyvm deny\n", "service");
    expect(out.split("\n")[0]).toBe("$tag:net   $adminvm allow,target=dom0");
    expect(out.replace(/[ \t]/g, "")).toBe("$tag:net$adminvmallow,target=dom0\n$anyvm$anyvmdeny\n");
  });

  test("is idempotent", () => {
    const input = "qubes.Gpg * @tag:a b allow\nx.Y +arg c @default ask target=d user=root\n";
    expect(fmt(fmt(input))).toBe(fmt(input));
  });
});

// Policy-ish text: words from a small alphabet (tokens, params, odd whitespace, `$`, commas, `#`).
const WORDS = ["qubes.Gpg", "*", "+", "+arg", "@anyvm", "@default", "@tag:x", "@dispvm", "$anyvm", "$include:f", "work", "allow", "deny", "ask", "target=vault", "notify=no", "a,b", "#", "!include", "x=1", "@tag:", "dom0"];
const SPACE = [" ", "  ", "\t", "\u00a0", "\x1c", "\u3000", "\v"];
const EOL = ["\n", "\r\n", "\r"];
const line = fc.tuple(fc.constantFrom("", " ", "\t"), fc.array(fc.tuple(fc.constantFrom(...WORDS), fc.constantFrom(...SPACE)), { maxLength: 8 })).map(
  ([lead, ws]) => lead + ws.map(([w, s]) => w + s).join(""),
);
const text = fc.array(fc.tuple(line, fc.constantFrom(...EOL)), { maxLength: 12 }).map((ls) => ls.map(([l, e]) => l + e).join(""));

describe("formatting properties", () => {
  for (const syntax of ["policy", "service"] as const) {
    test(`print then parse gives the same rules (${syntax})`, () => {
      fc.assert(
        fc.property(text, (t) => {
          const out = fmt(t, syntax);
          expect(rulesOf(out, syntax)).toEqual(rulesOf(t, syntax));
          expect(fmt(out, syntax)).toBe(out);
          // Whitespace-only: removing every whitespace character gives the same text.
          const squash = (x: string) => [...x].filter((c) => !/\s|[\x1c-\x1f\x85]/.test(c)).join("");
          expect(squash(out)).toBe(squash(t));
        }),
        { numRuns: 400 },
      );
    });
  }
});
