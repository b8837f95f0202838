/**
 * The TextMate grammars agree with the language core's parser (`parseDocument`), line by line:
 *
 * 1. No false alarms: a line the grammar scopes as `invalid.illegal` has an error from the parser.
 * 2. No misses for token-level errors: a line with an error the grammar is meant to see (a bad
 *    token, action, parameter or directive) has an `invalid.illegal` token.
 *
 * Errors that need more than one token's context (`wrong-number-of-fields` on a half-typed line,
 * `duplicate-param`, `default-target-required`, `argument-for-any-service`) and file-level errors
 * are the language server's job and are not required of the grammar.
 *
 * Inputs: every policy file of the conformance corpus, plus random rule lines built from
 * valid and invalid tokens (fast-check, fixed seed).
 */
import fc from "fast-check";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { parseDocument } from "@qubes-kit/language";

const require = createRequire(import.meta.url);
const { createRegistry } = require("vscode-tmgrammar-test/dist/common/index.js") as {
  createRegistry: (grammars: { scopeName: string; path: string }[]) => { loadGrammar(scope: string): Promise<Grammar | null> };
};
interface Grammar {
  tokenizeLine(line: string, state: unknown): { tokens: Array<{ startIndex: number; endIndex: number; scopes: string[] }>; ruleStack: unknown };
}
const { INITIAL } = require("vscode-textmate") as { INITIAL: unknown };

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
type Syntax = "policy" | "service";
const grammars = new Map<Syntax, Grammar>();

beforeAll(async () => {
  const registry = createRegistry([
    { scopeName: "source.qrexecpolicy", path: root("grammars/qrexecpolicy.tmLanguage.json") },
    { scopeName: "source.qrexecpolicy.service", path: root("grammars/qrexecpolicy-service.tmLanguage.json") },
  ]);
  grammars.set("policy", (await registry.loadGrammar("source.qrexecpolicy"))!);
  grammars.set("service", (await registry.loadGrammar("source.qrexecpolicy.service"))!);
});

/** Diagnostic codes the grammar must see on their line. */
const TOKEN_LEVEL = new Set([
  "invalid-directive",
  "invalid-service",
  "invalid-argument",
  "argument-without-plus",
  "empty-token",
  "invalid-token",
  "invalid-action",
  "invalid-param-syntax",
  "invalid-yes-no",
  "invalid-params-for-action",
]);

interface Disagreement {
  line: string;
  grammarInvalid: string[];
  parserErrors: string[];
}

/** Compares one document; returns the lines where the grammar and the parser disagree. */
function disagreements(text: string, syntax: Syntax, grammarSyntax: Syntax = syntax): Disagreement[] {
  const doc = parseDocument(text, { syntax, newlines: "lf" });
  const errorsByLine = new Map<number, string[]>();
  for (const d of doc.diagnostics) {
    if (d.severity !== "error") continue;
    errorsByLine.set(d.line, [...(errorsByLine.get(d.line) ?? []), d.code]);
  }
  const grammar = grammars.get(grammarSyntax)!;
  let state = INITIAL;
  const out: Disagreement[] = [];
  text.split("\n").forEach((line, i) => {
    const { tokens, ruleStack } = grammar.tokenizeLine(line, state);
    state = ruleStack;
    const invalid = tokens.filter((t) => t.scopes.some((s) => s.startsWith("invalid.illegal"))).map((t) => line.slice(t.startIndex, t.endIndex));
    const errors = errorsByLine.get(i + 1) ?? [];
    const falseAlarm = invalid.length > 0 && errors.length === 0;
    const miss = invalid.length === 0 && errors.some((c) => TOKEN_LEVEL.has(c));
    if (falseAlarm || miss) out.push({ line, grammarInvalid: invalid, parserErrors: errors });
  });
  return out;
}

/** The policy files of the conformance corpus, each with the syntax the policy reads it in. */
function corpusFiles(): Array<[string, string, Syntax]> {
  const dir = root("test/fixtures/conformance");
  const files = new Map<string, [string, string, Syntax]>();
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".in.jsonl"))) {
    for (const [i, row] of readFileSync(`${dir}/${name}`, "utf8").split("\n").filter(Boolean).entries()) {
      const testCase = JSON.parse(row) as { files?: Record<string, string> };
      const all = testCase.files ?? {};
      const legacy = new Set<string>();
      for (const text of Object.values(all)) {
        for (const m of text.matchAll(/^\s*!include-service\s+\S+\s+\S+\s+(\S+)\s*$/gm)) legacy.add(m[1]!.replace(/^\/etc\/qubes\/policy\.d\//, ""));
      }
      for (const [key, text] of Object.entries(all)) {
        if (key.startsWith("/etc/qubes-rpc/")) continue; // Legacy R4.0 files are checked below with their own syntax.
        const syntax: Syntax = legacy.has(key) ? "service" : "policy";
        // The same file text appears in many cases; check each distinct text once.
        files.set(`${syntax}\0${text}`, [`${name}#${i + 1}:${key}`, text, syntax]);
      }
      for (const [key, text] of Object.entries(all)) {
        if (key.startsWith("/etc/qubes-rpc/policy/")) files.set(`service\0${text}`, [`${name}#${i + 1}:${key}`, text, "service"]);
      }
    }
  }
  return [...files.values()];
}

describe("grammar and parser agree", () => {
  it("reports a disagreement when there is one (the check can fail)", () => {
    // A new-format rule tokenised with the legacy grammar: `@anyvm` lands in the action column and the rest are parameters without `=`.
    expect(disagreements("qubes.Filecopy * @anyvm @anyvm allow\n", "policy", "service")).toEqual([
      { line: "qubes.Filecopy * @anyvm @anyvm allow", grammarInvalid: ["@anyvm", "@anyvm", "allow"], parserErrors: [] },
    ]);
  });

  it("on every policy file of the conformance corpus", () => {
    const files = corpusFiles();
    expect(files.length).toBeGreaterThan(20);
    if (process.env.QKIT_DEBUG) {
      const lines = files.flatMap(([, text, syntax]) => parseDocument(text, { syntax, newlines: "lf" }).diagnostics.filter((d) => d.severity === "error").map((d) => d.code));
      console.log(files.length, "files;", lines.length, "error lines:", JSON.stringify(Object.fromEntries([...new Set(lines)].map((c) => [c, lines.filter((x) => x === c).length]))));
    }
    const found = files.flatMap(([name, text, syntax]) => disagreements(text, syntax).map((d) => ({ name, ...d })));
    expect(found).toEqual([]);
  });

  // Token pools: valid and invalid spellings for every column.
  const service = fc.constantFrom("qubes.Filecopy", "*", "my-svc_2.x", "qubes/Bad", "svc+arg", "Ser,vice");
  const argument = fc.constantFrom("*", "+", "+arg", "+a+b.c_d-e", "arg", "+a/b", "+x,y");
  const qube = fc.constantFrom(
    "work", "dom0", "*", "*x", "$anyvm", "uuid:1234", "uuid:", "@anyvm", "@adminvm", "@default", "@dispvm",
    "@dispvm:dvm", "@dispvm:uuid:12", "@dispvm:@tag:t", "@type:AppVM", "@tag:t", "@type:", "@tag:", "@dispvm:",
    "@dispvm:@tag:", "@dispvm:@x", "@type:@x", "@bogus", "@uuid:12", "@ANYVM", "$dispvm", "$tag:x", "$default",
  );
  const action = fc.constantFrom("allow", "deny", "ask", "alow", "Allow", "allow,target=x", "ask,default_target=@dispvm");
  const param = fc.constantFrom(
    "target=work", "target=@dispvm", "target=@dispvm:dvm", "target=@anyvm", "target=*", "target=@tag:t", "target=",
    "target=uuid:12", "target=@adminvm", "target=$adminvm", "default_target=vault", "default_target=", "user=root",
    "user=", "user=a=b", "notify=yes", "notify=no", "notify=true", "notify=", "autostart=no", "autostart=maybe",
    "foo=bar", "=x", "#", "# comment", "target", "usertarget=x", "target=x,user=y",
  );
  const ws = fc.constantFrom(" ", "  ", "\t", "\u00a0", "\x1c", "\u3000", ",");
  const join = (parts: string[], seps: string[]) => parts.map((p, i) => (i ? seps[i - 1]! : "") + p).join("");

  it("on random rule lines of the policy syntax", () => {
    fc.assert(
      fc.property(
        fc.tuple(service, argument, qube, qube, action),
        fc.array(param, { maxLength: 3 }),
        fc.array(ws, { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 1, max: 5 }),
        (head, params, seps, keep) => {
          const fields = [...head.slice(0, keep === 5 ? 5 : keep), ...(keep === 5 ? params : [])];
          const line = join(fields, seps.map((s) => (s === "," ? " " : s)));
          expect(disagreements(line, "policy")).toEqual([]);
        },
      ),
      { numRuns: 1500, seed: 4242 },
    );
  });

  it("on random rule lines of the legacy service syntax", () => {
    fc.assert(
      fc.property(
        fc.tuple(qube, qube, action),
        fc.array(param, { maxLength: 3 }),
        fc.array(ws, { minLength: 6, maxLength: 6 }),
        fc.integer({ min: 1, max: 3 }),
        (head, params, seps, keep) => {
          const fields = [...head.slice(0, keep), ...(keep === 3 ? params : [])];
          expect(disagreements(join(fields, seps), "service")).toEqual([]);
        },
      ),
      { numRuns: 1500, seed: 4243 },
    );
  });

  it.each([
    ["policy", "!include include/x\n!include-dir d\n!include-service qubes.Gpg +k include/g\n!compat-4.0\n!compat-4.0 x\n!include\n!include a b\n!bogus\n!include-service a b\n"],
    ["service", "$include:include/x\n!include x\n!include\n!include a b\n!compat-4.0\n!include-service a +b c\n$include:\n"],
  ] as Array<[Syntax, string]>)("on directives of the %s syntax", (syntax, text) => {
    expect(disagreements(text, syntax)).toEqual([]);
  });
});
