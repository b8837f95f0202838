/**
 * Robustness: no service throws on any document, at any offset.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  analyzeWorkspace,
  codeActions,
  codeLenses,
  complete,
  createMemoryFileSystem,
  definition,
  documentSymbols,
  foldingRanges,
  formatDocument,
  hover,
  references,
  semanticTokens,
} from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";

const PIECES = [
  "qubes.Gpg", "*", "+", "+a", "@anyvm", "@default", "@dispvm", "@dispvm:", "@dispvm:@tag:", "@tag:", "@tag:x", "@type:AppVM", "$anyvm", "$include:",
  "work", "dom0", "uuid:", "allow", "deny", "ask", "target=", "target=work", "default_target=@dispvm", "notify=yes", "user=", "!include", "!include-dir",
  "!include-service", "!compat-4.0", "include/a", "/etc/qubes-rpc/x", "#", "=", ",", "\ufeff", "é", "😀",
];
const SEP = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\x1c", "\u2028"];
const textArb = fc.oneof(
  fc.array(fc.tuple(fc.constantFrom(...PIECES), fc.constantFrom(...SEP)), { maxLength: 30 }).map((xs) => xs.map(([a, b]) => a + b).join("")),
  fc.string({ maxLength: 200 }),
);

describe("services never throw", () => {
  const system = demoSystem();
  test("on random documents and offsets", () => {
    fc.assert(
      fc.property(textArb, textArb, fc.nat(), fc.boolean(), (main, inc, at, withSystem) => {
        const fs = createMemoryFileSystem({ "30-user.policy": main, "include/a": inc });
        const snapshot = analyzeWorkspace(fs, { system: withSystem ? system : null, extraDocuments: ["/etc/qubes/policy.d/include/a"] });
        for (const path of ["/etc/qubes/policy.d/30-user.policy", "/etc/qubes/policy.d/include/a"]) {
          const doc = snapshot.document(path)!;
          const offset = doc.text.length ? at % (doc.text.length + 1) : 0;
          const ctx = { snapshot, path };
          complete(doc, offset, ctx);
          hover(doc, offset, ctx);
          definition(doc, offset, ctx);
          references(doc, offset, ctx);
          documentSymbols(doc);
          foldingRanges(doc);
          formatDocument(doc);
          semanticTokens(doc);
          codeLenses(doc, ctx);
          codeActions(doc, path, { start: 0, end: doc.text.length }, snapshot.diagnostics.get(path) ?? [], ctx);
          for (const d of snapshot.diagnostics.get(path) ?? []) {
            expect(d.span.start).toBeGreaterThanOrEqual(0);
            expect(d.span.end).toBeLessThanOrEqual(doc.text.length);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
