/**
 * Document symbols, folding ranges and semantic tokens.
 */
import { describe, expect, test } from "vitest";
import { documentSymbols, foldingRanges, parseDocument, semanticTokens, type DocumentSymbol } from "@qubes-kit/language";

const TEXT = [
  "# split-gpg", // 0
  "qubes.Gpg * @tag:gpg-client @tag:gpg-server allow",
  "qubes.Gpg * work @default ask default_target=vault",
  "",
  "# file copy",
  "# more words",
  "!include include/common",
  "qubes.Filecopy * $anyvm vault deny notify=no",
].join("\n");

function outline(s: DocumentSymbol[]): unknown[] {
  return s.map((x) => (x.children ? [x.name, outline(x.children)] : `${x.kind}: ${x.name}`));
}

describe("document symbols", () => {
  test("sections from comment headers, holding rules and directives", () => {
    expect(outline(documentSymbols(parseDocument(TEXT, { syntax: "policy" })))).toEqual([
      ["split-gpg", ["rule: qubes.Gpg *", "rule: qubes.Gpg *"]],
      ["file copy", ["directive: !include include/common", "rule: qubes.Filecopy *"]],
    ]);
  });
  test("a rule's detail says what it decides", () => {
    const rule = documentSymbols(parseDocument("qubes.Gpg * work vault allow\n", { syntax: "policy" }))[0]!;
    expect(rule.detail).toBe("allows qubes.Gpg from work to vault");
  });
});

describe("folding ranges", () => {
  test("sections, comment runs and rule blocks", () => {
    const doc = parseDocument(TEXT, { syntax: "policy" });
    const lineOf = (o: number) => doc.text.slice(0, o).split("\n").length - 1;
    // Each section folds whole (header to last rule); its fold replaces the comment run it starts with.
    expect(foldingRanges(doc).map((f) => `${f.kind} ${lineOf(f.span.start)}-${lineOf(f.span.end)}`)).toEqual(["region 0-2", "region 1-2", "region 4-7", "region 6-7"]);
  });
});

describe("semantic tokens", () => {
  test("classify each column", () => {
    const doc = parseDocument("qubes.Gpg +a @tag:x $anyvm allow target=@dispvm:d notify=no\n# c\n!include x\n", { syntax: "policy" });
    const got = semanticTokens(doc).map((t) => `${doc.text.slice(t.span.start, t.span.end)}:${t.type}${t.modifiers.length ? "+" + t.modifiers.join("+") : ""}`);
    expect(got).toEqual([
      "qubes.Gpg:function",
      "+a:string",
      "@tag:x:enumMember",
      "$anyvm:variable+deprecated",
      "allow:keyword",
      "target:property",
      "@dispvm:d:class",
      "notify:property",
      "no:number",
      "# c:comment",
      "!include:macro",
      "x:string",
    ]);
  });
  test("legacy files: `$` tokens are keywords there", () => {
    const doc = parseDocument("$anyvm $tag:x allow\n", { syntax: "service" });
    expect(semanticTokens(doc).map((t) => t.type)).toEqual(["keyword", "enumMember", "keyword"]);
  });
});
