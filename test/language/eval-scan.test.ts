/**
 * The loader's one-pass line scanner (`scanLines`) finds exactly the lines
 * that grouping the Chevrotain lexer's tokens finds (`scanLinesLexed`, what
 * the editor path parses), on any text, in both newline modes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isLeanDocument } from "../../language/src/syntax/nodes.js";
import { parseDocument, scanLines, scanLinesLexed, type ScannedLine } from "../../language/src/syntax/parse.js";
import type { LineNode, RuleNode } from "../../language/src/syntax/tree.js";

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

  it("parses the same document as the grammar (parseDocument's linear option, the one-shot check's)", () => {
    const ruleish = fc.array(fc.oneof(fc.constantFrom(...PIECES, "qubes.B +a work vault ask default_target=vault", "qubes.C * @anyvm @dispvm allow target=@dispvm", "x y z deny notify=maybe", "!include-service a * f", "!compat-4.0", "work @anyvm allow,target=dom0", "\n"), fc.string({ maxLength: 3 })), { maxLength: 40 }).map((a) => a.join(""));
    fc.assert(
      fc.property(ruleish, fc.constantFrom("universal" as const, "lf" as const), fc.constantFrom("policy" as const, "service" as const), (text, newlines, syntax) => {
        const options = { newlines, syntax, file: "f", service: syntax === "service" ? "qubes.S" : undefined };
        expect(parseDocument(text, { ...options, linear: true })).toEqual(parseDocument(text, options));
      }),
      { numRuns: 2000 },
    );
  });

  it("reads lean nodes equal to the plain ones (parseDocument's lean option, the one-shot check's)", () => {
    // A lean rule also has the loader's fields (unclaimed: see `claimRule`); the tree's are these.
    const ruleFields = (r: RuleNode) => ({ service: r.service, argument: r.argument, source: r.source, target: r.target, action: r.action, redirect: r.redirect, defaultTarget: r.defaultTarget, user: r.user, notify: r.notify, autostart: r.autostart, rawParams: r.rawParams });
    // Every property of the tree's interfaces, read through the lean nodes' getters.
    const plain = (l: LineNode): Record<string, unknown> => {
      const base = { kind: l.kind, line: l.line, lineSpan: l.lineSpan, span: l.span };
      switch (l.kind) {
        case "blank":
          return base;
        case "comment":
          return { ...base, text: l.text };
        case "directive":
          return { ...base, name: l.name, directive: l.directive, params: l.params, service: l.service, argument: l.argument };
        case "rule":
          return { ...base, words: l.words, serviceWord: l.serviceWord, argumentWord: l.argumentWord, sourceWord: l.sourceWord, targetWord: l.targetWord, actionWord: l.actionWord, params: l.params, rule: l.rule && ruleFields(l.rule) };
      }
    };
    const ruleish = fc.array(fc.oneof(fc.constantFrom(...PIECES, "qubes.B +a work vault ask default_target=vault", "qubes.C * @anyvm @dispvm allow target=@dispvm", "x y z deny notify=maybe", "!include-service a * f", "!compat-4.0", "work @anyvm allow,target=dom0", "$include:x", "\n", "q.D * @tag:t $adminvm allow user=u notify=yes"), fc.string({ maxLength: 3 })), { maxLength: 40 }).map((a) => a.join(""));
    fc.assert(
      fc.property(ruleish, fc.constantFrom("universal" as const, "lf" as const), fc.constantFrom("policy" as const, "service" as const), fc.boolean(), (text, newlines, syntax, wordsFirst) => {
        const options = { newlines, syntax, file: "f", service: syntax === "service" ? "qubes.S" : undefined };
        const lean = parseDocument(text, { ...options, lean: true });
        const eager = parseDocument(text, options);
        expect(isLeanDocument(lean) && !isLeanDocument(eager)).toBe(true);
        expect(lean.diagnostics).toEqual(eager.diagnostics);
        expect(lean.lines.length).toBe(eager.lines.length);
        // Asked for in either order: a rule's words are made on demand, its rule at once.
        if (wordsFirst) for (const l of lean.lines) if (l.kind === "rule") void l.words;
        expect(lean.lines.map(plain)).toEqual(eager.lines.map(plain));
      }),
      { numRuns: 2000 },
    );
  });

  it("agrees on the edge cases", () => {
    for (const text of ["", "\n", "\r", "\r\n", " ", "a", "a\n", "a\r", "a\r\n", "  a  \n  ", "\n\n", "a\rb\nc\r\nd", "#x\r\r\n!y", " \u0085 a \u001c\n"]) {
      for (const mode of ["universal", "lf"] as const) expect(lines(scanLines, text, mode)).toEqual(lines(scanLinesLexed, text, mode));
    }
  });
});

import { checkPolicy, createMemoryFileSystem, loadPolicy } from "@qubes-kit/language";

// Rule lines around the validation fast path's edges (an `@default` target needs `target=` with
// `allow`; parameters given twice; values that are not yes/no; `user=` values that contain `target=`).
const fastLineArb = fc
  .record({
    sa: fc.constantFrom("qubes.A *", "qubes.A +x", "* *", "qubes.B +"),
    source: fc.constantFrom("work", "@anyvm", "@tag:t", "@default", "*"),
    target: fc.constantFrom("@default", "@default", "vault", "@dispvm", "*", "@anyvm"),
    action: fc.constantFrom("allow", "ask", "deny"),
    params: fc.array(fc.constantFrom("target=work", "target=@dispvm", "target=@default", "target=", "default_target=work", "user=root", "user=xtarget=y", "notify=yes", "notify=maybe", "autostart=no", "x=1"), { maxLength: 3 }),
    sep: fc.constantFrom(" ", "\t", "  "),
  })
  .map((r) => [r.sa, r.source, r.target, r.action, ...r.params].join(r.sep));

describe("the validation fast path", () => {
  it("accepts only what the exact path accepts (check, strict load and a load for one service agree)", () => {
    fc.assert(
      fc.property(fc.array(fastLineArb, { minLength: 1, maxLength: 8 }), (lines) => {
        const fs = createMemoryFileSystem({ "30-a.policy": lines.join("\n") + "\n" });
        const key = (d: { line: number; code: string; message: string }) => [d.line, d.code, d.message];
        const strict = loadPolicy(fs, { collectAll: true });
        expect(checkPolicy(fs).diagnostics.map(key)).toEqual(strict.diagnostics.map(key));
        const first = loadPolicy(fs);
        const part = loadPolicy(fs, { service: "qubes.A" });
        expect(part.ok).toBe(first.ok);
        if (!first.ok && !part.ok) expect(part.error).toEqual(first.error);
        if (first.ok && part.ok) expect(part.policy.ruleCount).toBe(first.policy.rules.length);
      }),
      { numRuns: 2000 },
    );
  });
});
