/**
 * `qkit policy test --format junit`: every test case of a file has its own
 * name (CI services merge cases of one name), a repeated one made unique by
 * its line. Data-driven: the entries of a file and the names expected.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const demo = fileURLToPath(new URL("../fixtures/audit/demo/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "qkit-junit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CASES: { name: string; tests: string[]; names: string[] }[] = [
  {
    name: "two map-form tests of one call",
    tests: ["  - call: qubes.Filecopy work -> @default\n    decision: ask", "  - call: qubes.Filecopy work -> @default\n    decision: ask\n    targets_include: [personal]"],
    names: ["qubes.Filecopy work -> @default (line 4)", "qubes.Filecopy work -> @default (line 6)"],
  },
  {
    name: "a string test twice, and a different one",
    tests: ["  - qubes.Filecopy work vault => ask", "  - qubes.Filecopy work vault => ask", "  - qubes.Gpg work vault => allow"],
    names: ["qubes.Filecopy work vault => ask (line 4)", "qubes.Filecopy work vault => ask (line 5)", "qubes.Gpg work vault => allow"],
  },
  {
    name: "named tests keep their names when unique",
    tests: ["  - name: copy to vault\n    call: qubes.Filecopy work -> vault\n    decision: ask", "  - name: copy to vault\n    call: qubes.Filecopy work -> vault\n    decision: ask", "  - name: gpg\n    call: qubes.Gpg work -> vault\n    decision: allow"],
    names: ["copy to vault (line 4)", "copy to vault (line 7)", "gpg"],
  },
];

describe("policy test --format junit: unique test names", () => {
  it.each(CASES)("$name", async (c) => {
    writeFileSync(join(dir, "t.policytest.yaml"), `policy: ${demo}policy.d\nsystem: ${demo}system.json\ntests:\n${c.tests.join("\n")}\n`);
    const r = await runQkit(["policy", "test", "--format", "junit", "t.policytest.yaml"], { cwd: dir });
    const names = [...r.out.matchAll(/<testcase name="([^"]*)"/g)].map((m) => m[1]!.replace(/&gt;/g, ">"));
    expect(names).toEqual(c.names);
    expect(new Set(names).size).toBe(names.length);
  });
});

/** XML 1.0's `Char` production: what a JUnit reader accepts in a document. */
const XML_CHAR = /^(?:[\t\n\r\u0020-\ud7ff\ue000-\ufffd]|[\ud800-\udbff][\udc00-\udfff])*$/;

describe("policy test --format junit: a document every XML reader accepts", () => {
  // Names and messages with control characters, bidirectional overrides, U+FFFE and a lone surrogate.
  const controls = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
  it("has only characters XML 1.0 allows, whatever the test file says", async () => {
    const r = await runQkit(["policy", "test", "--format", "junit", "controls"], { cwd: controls });
    expect(r.out).toContain("<testsuites");
    expect(r.out).toContain("\\ufffe \\ud800");
    expect(XML_CHAR.test(r.out)).toBe(true);
  });
});
