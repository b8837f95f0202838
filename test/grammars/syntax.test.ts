/**
 * Runs the `# SYNTAX TEST` fixtures in `test/grammars/syntax/` against the TextMate grammars
 * in `grammars/`, with the library behind the `vscode-tmgrammar-test` CLI
 * (vscode-textmate + vscode-oniguruma), so each fixture is one vitest case.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const { createRegistry } = require("vscode-tmgrammar-test/dist/common/index.js") as {
  createRegistry: (grammars: { scopeName: string; path: string }[]) => unknown;
};
interface Failure {
  line: number;
  srcLine: number;
  start: number;
  end: number;
  missing: string[];
  unexpected: string[];
  actual: string[];
}
const { parseGrammarTestCase, runGrammarTestCase } = require("vscode-tmgrammar-test/dist/unit/index.js") as {
  parseGrammarTestCase: (text: string) => { metadata: { scope: string }; assertions: unknown[] };
  runGrammarTestCase: (registry: unknown, testCase: unknown) => Promise<Failure[]>;
};

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const syntaxDir = root("test/grammars/syntax");

function registry() {
  return createRegistry([
    { scopeName: "source.qrexecpolicy", path: root("grammars/qrexecpolicy.tmLanguage.json") },
    { scopeName: "source.qrexecpolicy.service", path: root("grammars/qrexecpolicy-service.tmLanguage.json") },
    { scopeName: "source.qubes-template", path: root("grammars/qubes-template.tmLanguage.json") },
  ]);
}

/** Runs one fixture text and returns its failures as readable lines. */
async function check(text: string): Promise<string[]> {
  const testCase = parseGrammarTestCase(text);
  const failures = await runGrammarTestCase(registry(), testCase);
  const lines = text.split(/\r\n|\n/);
  return failures.map(
    (f) =>
      `fixture line ${f.line + 1} (${JSON.stringify(lines[f.line])}), columns ${f.start}-${f.end}: ` +
      `missing [${f.missing.join(" ")}], unexpected [${f.unexpected.join(" ")}], actual [${f.actual.join(" ")}]`,
  );
}

const fixtures = readdirSync(syntaxDir).filter((name) => !name.startsWith(".")).sort();

describe("TextMate grammar syntax tests", () => {
  it("has fixtures for every grammar", () => {
    const scopes = new Set(fixtures.map((name) => parseGrammarTestCase(readFileSync(`${syntaxDir}/${name}`, "utf8")).metadata.scope));
    expect([...scopes].sort()).toEqual(["source.qrexecpolicy", "source.qrexecpolicy.service", "source.qubes-template"]);
  });

  it.each(fixtures)("%s", async (name) => {
    const text = readFileSync(`${syntaxDir}/${name}`, "utf8");
    expect(parseGrammarTestCase(text).assertions.length).toBeGreaterThan(0);
    expect(await check(text)).toEqual([]);
  });

  it("reports a wrong assertion (the harness can fail)", async () => {
    const text = [
      '# SYNTAX TEST "source.qrexecpolicy" "deliberately wrong"',
      "qubes.Gpg * @anyvm @anyvm alow",
      "#                          ^^^^ keyword.control.action.allow.qrexecpolicy",
    ].join("\n");
    const failures = await check(text);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain("invalid.illegal.action.qrexecpolicy");
  });
});
