/**
 * Loading a system model file in the language server, with the CLI's shared
 * reader (`readSystemModelText`): bad JSON says FILE:LINE:COLUMN and never
 * quotes the file, a directory is not "not found", an empty model and a
 * malformed qube are refused with the CLI's codes, and the CLI says the same.
 * Property: the JSON checker agrees with `JSON.parse` on every text.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { jsonSyntaxError, readSystemModelText } from "@qubes-kit/language";
import { createMemoryHost, createNodeFileSystem, loadSystemModel } from "@qubes-kit/lsp";
import { runQkit } from "../helpers/qkit.js";

const SECRET = "root:*:20200:0:99999:7:::\ndaemon:*:20200:0:99999:7:::\n";
const dir = mkdtempSync(join(tmpdir(), "qkit-model-"));
const files: Record<string, string> = {
  "broken.json": '{\n  "domains": {\n    "work": {"type": "AppVM",}\n  }\n}\n',
  "truncated.json": '{"domains": {"work": {"type": "AppVM"}',
  "empty.json": '{"domains": {}}',
  "array.json": "[1, 2]",
  "nullqube.json": '{"domains": {"dom0": {"type": "AdminVM"}, "vault": null}}',
  "shadow": SECRET,
  "good.json": '{"domains": {"dom0": {"type": "AdminVM"}}}',
};
for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
mkdirSync(join(dir, "adir"));

const cases: Array<[string, RegExp]> = [
  ["broken.json", /^the system model `.*\/broken\.json` is not valid JSON \(.*\/broken\.json:3:30: expected a property name in double quotes\); make one with `qkit system snapshot` \[invalid-json\]$/],
  ["truncated.json", /truncated\.json:1:39: expected `,` or `}` \(the file ends here\)\).*\[invalid-json\]$/],
  ["empty.json", /has no qubes \(`domains` is empty\).*\[empty-system\]$/],
  ["array.json", /is not an internal\.GetSystemInfo answer \(no `domains` object\).*\[not-system-info\]$/],
  ["nullqube.json", /qube `vault` is null, not an object of properties.*\[bad-system-model\]$/],
  ["shadow", /shadow:1:1: expected a value\).*\[invalid-json\]$/],
  ["adir", /^system model file `.*\/adir` is a directory: give the file `qkit system snapshot` writes \[system-model-is-directory\]$/],
  ["missing.json", /^system model file not found: .*\/missing\.json$/],
];

describe("system model files", () => {
  test.each(cases)("%s: one line, where, with a code, never the content", async (file, message) => {
    const r = await loadSystemModel({ system: { source: "file", file } }, dir, createNodeFileSystem());
    expect(r.raw).toBeNull();
    expect(r.error).toMatch(message);
    expect(r.error).not.toMatch(/\n/);
    expect(r.error).not.toContain("root:");
    expect(r.error).not.toContain("AppVM");
  });

  test("a good file loads", async () => {
    const r = await loadSystemModel({ system: { source: "file", file: "good.json" } }, dir, createNodeFileSystem());
    expect(Object.keys(r.raw!.domains)).toEqual(["dom0"]);
  });

  test("the browser host uses the same reader", async () => {
    const host = createMemoryHost({ "/w/shadow": SECRET, "/w/d/x": "{}" });
    expect((await host.loadSystem({ system: { source: "file", file: "/w/shadow" } }, undefined)).error).toBe(
      "the system model `/w/shadow` is not valid JSON (/w/shadow:1:1: expected a value); make one with `qkit system snapshot` [invalid-json]",
    );
    expect((await host.loadSystem({ system: { source: "file", file: "/w/d" } }, undefined)).error).toMatch(/is a directory/);
  });

  test("the CLI says the same for bad JSON, without quoting the file", async () => {
    const r = await runQkit(["policy", "eval", "--policy-dir", dir, "--system", "shadow", "qubes.Filecopy", "work", "vault"], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.err).toContain("(shadow:1:1: expected a value)");
    expect(r.err).not.toContain("root:");
  });

  test("property: the JSON checker agrees with JSON.parse, and its position is in the text", () => {
    const jsonish = fc.oneof(
      fc.json(),
      fc.json().chain((j) => fc.tuple(fc.constant(j), fc.nat(j.length), fc.constantFrom("", ",", "}", "]", '"', "\\", "\u0001", "{", ":", "-", "tru", "1e", "\\u12"), fc.nat(3)).map(([t, at, ins, del]) => t.slice(0, at) + ins + t.slice(at + del))),
      fc.string(),
    );
    fc.assert(
      fc.property(jsonish, (text) => {
        let ok = true;
        try {
          JSON.parse(text);
        } catch {
          ok = false;
        }
        const e = jsonSyntaxError(text);
        expect(e === undefined, text).toBe(ok);
        if (e) expect(e.offset).toBeLessThanOrEqual(text.length);
        const r = readSystemModelText(text, "f.json");
        if (!ok) expect("error" in r && r.error.code).toBe("invalid-json");
      }),
      { numRuns: 2000 },
    );
  });
});
