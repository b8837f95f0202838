/**
 * `qkit policy test` on test files that are not valid YAML: each problem
 * once, at its own line (not all at line 1), and a file that is no YAML at
 * all a few lines with a count of the rest. Data-driven: each case is the
 * file's text and the exact problem lines printed.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const dir = mkdtempSync(join(tmpdir(), "qkit-ptyaml-"));
const fixtures = fileURLToPath(new URL("../fixtures/audit/yaml/", import.meta.url));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CASES: { name: string; text: string; problems: string[] }[] = [
  {
    name: "an unclosed flow sequence in the list",
    text: "policy: p\nsystem: s.json\ntests:\n  - qubes.Filecopy work vault => deny\n  - [unclosed\n  - qubes.Filecopy work vault => deny\n",
    // Said at the bracket (line 5), not where the parser gave up (line 6).
    problems: ["x.policytest.yaml:5: error[bad-test-file]: not valid YAML: unclosed [: the list that starts here has no closing ]; close it with ] on the same line, or write the list in block style (one entry per line)"],
  },
  {
    name: "an unclosed flow sequence at the end of the file",
    text: "policy: p\nsystem: s.json\ntests:\n  - decision: deny\n    call: [qubes.Filecopy, work\n",
    problems: ["x.policytest.yaml:5: error[bad-test-file]: not valid YAML: unclosed [: the list that starts here has no closing ]; close it with ] on the same line, or write the list in block style (one entry per line)"],
  },
  {
    name: "a duplicate key, at the second one",
    text: "policy: p\nsystem: s.json\npolicy: q\ntests:\n  - qubes.Filecopy work vault => deny\n",
    problems: ["x.policytest.yaml:3: error[bad-test-file]: not valid YAML: Map keys must be unique"],
  },
  {
    name: "a tab indentation on line 4",
    text: "policy: p\nsystem: s.json\ntests:\n\t- qubes.Filecopy work vault => deny\n",
    problems: ["x.policytest.yaml:4: error[bad-test-file]: not valid YAML: Tabs are not allowed as indentation"],
  },
];

describe("policy test: YAML errors", () => {
  it.each(CASES)("$name", async (c) => {
    writeFileSync(join(dir, "x.policytest.yaml"), c.text);
    const r = await runQkit(["policy", "test", "x.policytest.yaml"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.out.split("\n").filter((l) => l.includes("error["))).toEqual(c.problems);
  });

  it("a file of random text: five distinct problems at their lines, the last counting the rest", async () => {
    // random-text is random-bytes read as Latin-1 and written as UTF-8: the same lines, all text.
    const r = await runQkit(["policy", "test", "random-text.policytest.yaml"], { cwd: fixtures });
    expect(r.code).toBe(1);
    const lines = r.out.split("\n").filter((l) => l.includes("error["));
    expect(lines.map((l) => l.replace(/: not valid YAML: .*?( \(and .*)?$/, "$1"))).toEqual([
      "random-text.policytest.yaml:1: error[bad-test-file]",
      "random-text.policytest.yaml:1: error[bad-test-file]",
      "random-text.policytest.yaml:19: error[bad-test-file]",
      "random-text.policytest.yaml:19: error[bad-test-file]",
      "random-text.policytest.yaml:54: error[bad-test-file] (and 3 more YAML errors after this one; is this a policy test file?)",
    ]);
    expect(new Set(lines).size).toBe(5);
  });

  it("a file of random bytes is not UTF-8: one problem, at the first byte that is not", async () => {
    const r = await runQkit(["policy", "test", "random-bytes.policytest.yaml"], { cwd: fixtures });
    expect(r.code).toBe(1);
    expect(r.out.split("\n").filter((l) => l.includes("error["))).toEqual([
      "random-bytes.policytest.yaml:1: error[not-utf8]: the test file is not UTF-8 text: byte 0xbe at offset 0 (invalid start byte); save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 FILE`), or remove the character",
    ]);
  });
});
