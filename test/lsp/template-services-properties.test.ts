/**
 * Property tests of the stack-file editor services (`@qubes-kit/language`, the pure side of
 * the server's template feature): they never throw on any text at any offset, every span
 * they return lies inside the text, and the offset map of a `rules: |` block is exact.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  analyzeTemplate,
  blockToSource,
  completeTemplate,
  hoverTemplate,
  prepareSystemInfo,
  sourceToBlock,
  templateDefinition,
  templateDiagnostics,
  templateLenses,
  templateReferences,
  templateSemanticTokens,
  yamlContextAt,
} from "@qubes-kit/language";

const FRAGMENTS = [
  "qkit: 1\n", "stack: s\n", "bundle: b\n", "qubes:\n", "  work:\n", "    class: AppVM\n", "    class: DispVM\n", "    template: ", "    netvm: ",
  "tpl", "none", "default", "\n", "  - ", "- ", ": ", ":", "{", "}", "[", "]", ", ", "\"", "'", "#", " ", "\t", "|", "|-", ">", "&a ", "*a", "!!str ",
  "policy:\n", "  - file: f\n", "    rules: |\n", "      qubes.Gpg * work @default allow target=vault\n", "      @tag:x\n", "use:\n", "    with:\n",
  "${p}", "expect:\n", "  - call: qubes.Gpg work -> vault\n", "    decision: ", "features: { a: 1, ", "tags: [a, ", "\r\n", "\u00e9", "\ud83d\ude00", "---\n",
];

const yamlish = fc.array(fc.oneof(fc.constantFrom(...FRAGMENTS), fc.string({ maxLength: 6 })), { maxLength: 40 }).map((parts) => parts.join(""));
const system = prepareSystemInfo({
  domains: { dom0: { type: "AdminVM", tags: [] }, tpl: { type: "TemplateVM", tags: [] }, vault: { type: "AppVM", tags: ["x"], template_for_dispvms: true } },
});
const files: Record<string, string> = { "/w/b.qubes.yaml": "qkit: 1\nbundle: b\nparams:\n  p: { type: qube }\nqubes:\n  ${p}-x:\n    class: AppVM\n" };

function inText(text: string, span: { start: number; end: number }): boolean {
  return span.start >= 0 && span.end <= text.length && span.start <= span.end;
}

describe("stack-file services never throw and stay inside the text", () => {
  it("for any YAML-like text and offset", () => {
    fc.assert(
      fc.property(yamlish, fc.nat(), fc.boolean(), (text, n, live) => {
        const offset = text.length ? n % (text.length + 1) : 0;
        const a = analyzeTemplate("/w/s.qubes.yaml", text, { ...(live ? { system } : {}), readFile: (p) => files[p] });
        yamlContextAt(text, offset);
        for (const item of completeTemplate(a, offset)) expect(inText(text, item.span)).toBe(true);
        const h = hoverTemplate(a, offset);
        if (h) expect(inText(text, h.span)).toBe(true);
        for (const l of [...templateDefinition(a, offset), ...templateReferences(a, offset)]) if (l.path === a.path) expect(inText(text, l.span)).toBe(true);
        for (const d of templateDiagnostics(a)) if (!d.file || d.file === a.path) expect(inText(text, d.span)).toBe(true);
        for (const l of templateLenses(a)) expect(inText(text, l.span)).toBe(true);
        for (const t of templateSemanticTokens(a)) expect(inText(text, t.span)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe("the offset map of a rules block", () => {
  const line = fc.array(fc.constantFrom("qubes.Gpg", "*", "@anyvm", "work", "allow", "deny", " ", "  ", "\t", "#", "target=x"), { maxLength: 8 }).map((w) => w.join(" "));
  it("maps every content offset to the same character and back", () => {
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 6 }), fc.boolean(), (lines, extra, dash) => {
        const indent = " ".repeat((dash ? 4 : 2) + extra);
        const head = dash ? "policy:\n  - file: f\n    rules: |\n" : "policy:\n  - file: f\n    priority: 40\n    rules: |\n";
        const body = lines.map((l) => (l.trim() === "" ? "" : indent + l.trim())).join("\n");
        if (!body.trim()) return;
        const text = `qkit: 1\nstack: s\n${head}${body}\n`;
        const a = analyzeTemplate("/w/s.qubes.yaml", text);
        const block = a.index.policyBlocks[0];
        expect(block).toBeDefined();
        for (let v = 0; v < block!.text.length; v++) {
          if (block!.text[v] === "\n") continue;
          const src = blockToSource(block!, v);
          expect(text[src]).toBe(block!.text[v]);
          expect(sourceToBlock(block!, src)).toBe(v);
        }
      }),
      { numRuns: 200 },
    );
  });
});
