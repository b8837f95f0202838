/**
 * Data-driven diagnostics tests: every file of test/fixtures/lsp/diagnostics
 * is a fixture whose `# ^^^ severity[code]` annotations must equal the
 * diagnostics of the whole-policy analysis, file by file.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { docOf, expectedLabels, FIXTURES, parseFixture, snapshotOf, spanLabel } from "../lsp/helpers/fixture.js";

const DIR = FIXTURES + "diagnostics/";

function check(name: string): void {
  const fx = parseFixture(readFileSync(DIR + name, "utf8"));
  const snapshot = snapshotOf(fx);
  for (const [path, text] of Object.entries(fx.files)) {
    const doc = docOf(snapshot, path);
    const expected = expectedLabels(text);
    const actual = (snapshot.diagnostics.get(path) ?? []).map((d) => ({ key: `${spanLabel(doc, d.span)} ${d.severity}[${d.code}]`, message: d.message }));
    expect(actual.map((a) => a.key).sort(), `${name}: ${path}`).toEqual(expected.map((e) => e.key).sort());
    for (const e of expected) {
      if (e.message === undefined) continue;
      expect(actual.find((a) => a.key === e.key)?.message, `${name}: ${e.key}`).toBe(e.message);
    }
  }
}

describe("diagnostics fixtures", () => {
  for (const name of readdirSync(DIR).filter((n) => n.endsWith(".txt")).sort()) {
    test(name, () => check(name));
  }
});
