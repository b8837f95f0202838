/**
 * The conformance corpus: about 6,400 decisions and validations produced by
 * the real qrexec engine (qubes-core-qrexec 4.4.2). Every unit must agree,
 * through the public API and through the `qkit` command line.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runConformanceCase, type ConformanceCase } from "@qubes-kit/language";
import { compareOutputs } from "../helpers/compare-decisions.js";

const dir = fileURLToPath(new URL("../fixtures/conformance/", import.meta.url));
const cli = fileURLToPath(new URL("../../sdk/dist/cli.js", import.meta.url));
const read = (f: string) =>
  readFileSync(dir + f, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const CORPORA = ["demo", "edge-cases", "random-public", "../conformance-extra/targeted", "../differential/regressions"] as const;

describe.each(CORPORA)("conformance corpus %s", (name) => {
  const input = read(`${name}.in.jsonl`);
  const expected = read(`${name}.out.jsonl`);

  it("agrees on every unit through the language API", () => {
    const actual = input.map((c) => runConformanceCase(c as ConformanceCase));
    const r = compareOutputs(expected, actual);
    expect(r.diffs.slice(0, 5)).toEqual([]);
    expect(r.agree).toBe(r.total);
  });

  it("agrees on every unit through `qkit policy eval --cases`", () => {
    const out = execFileSync(process.execPath, [cli, "policy", "eval", "--cases", dir + `${name}.in.jsonl`], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
    const actual = out
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(actual).toHaveLength(input.length);
    const r = compareOutputs(expected, actual);
    expect(r.diffs.slice(0, 5)).toEqual([]);
    expect(r.agree).toBe(r.total);
  });
});

describe("the comparison itself", () => {
  it("notices a wrong decision", () => {
    const expected = read("demo.out.jsonl");
    const wrong = expected.map((o) => (o["action"] === "allow" ? { ...o, action: "deny" } : o));
    expect(compareOutputs(expected, wrong).diffs.length).toBeGreaterThan(0);
  });
});
