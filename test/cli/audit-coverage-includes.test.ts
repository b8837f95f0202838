/**
 * One coverage model for text, JSON, lcov and the editor's lenses: the unit
 * is a rule line of a file, covered when any loaded copy of it (a file
 * included more than once loads its rules once per `!include`) decided a test
 * call or added ask targets to one. Checked on random policies whose include
 * files are included from several files, through `qkit policy test`.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { CoverageCollector, coverageLenses, createMemoryFileSystem, explain, loadPolicy, makeRequest, prepareSystemInfo, POLICY_DIR } from "@qubes-kit/language";
import { runQkit } from "../helpers/qkit.js";

const root = mkdtempSync(join(tmpdir(), "qkit-cov-inc-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const QUBES = ["work", "vault", "personal"];
// Each qube with its uuid, as qubesd gives it: the real engine's answer for an allow reads it (without it the engine crashes there, and the call is denied).
const system = { domains: Object.fromEntries([["dom0", { type: "AdminVM", tags: [], uuid: "00000000-0000-0000-0000-000000000000" }], ...QUBES.map((q, i) => [q, { type: "AppVM", tags: [], uuid: `00000000-0000-4000-8000-${String(i + 1).padStart(12, "0")}` }])]) };
const rule = fc
  .record({ service: fc.constantFrom("qubes.Filecopy", "qubes.Gpg"), source: fc.constantFrom("work", "vault", "@anyvm"), target: fc.constantFrom("vault", "personal", "@anyvm"), action: fc.constantFrom("allow", "deny", "ask") })
  .map((r) => `${r.service} * ${r.source} ${r.target} ${r.action}`);
const policyArb = fc.record({
  include: fc.array(rule, { minLength: 1, maxLength: 4 }),
  // Each main file: rules, and where (if anywhere) it includes the shared file.
  mains: fc.array(fc.record({ rules: fc.array(rule, { maxLength: 3 }), at: fc.option(fc.nat(3), { nil: undefined }) }), { minLength: 1, maxLength: 3 }),
  tests: fc.array(fc.record({ service: fc.constantFrom("qubes.Filecopy", "qubes.Gpg"), source: fc.constantFrom(...QUBES), target: fc.constantFrom(...QUBES) }), { minLength: 1, maxLength: 6 }),
});

type Lines = Record<string, { covered: string[]; missed: string[] }>;

/** Per file (as printed): covered and not covered lines, as each format says them. */
function fromJson(j: { policies: { files: { path: string; rules: { line: number; covered: boolean }[] }[] }[] }): Lines {
  const out: Lines = {};
  for (const f of j.policies[0]!.files) out[f.path] = { covered: f.rules.filter((r) => r.covered).map((r) => String(r.line)), missed: f.rules.filter((r) => !r.covered).map((r) => String(r.line)) };
  return out;
}
function fromLcov(text: string): Lines {
  const out: Lines = {};
  for (const rec of text.split("end_of_record\n").filter((r) => r.trim())) {
    const file = /^SF:(.*)$/m.exec(rec)![1]!;
    const da = [...rec.matchAll(/^DA:(\d+),(\d+)$/gm)].map((m) => [m[1]!, Number(m[2])] as const);
    out[file] = { covered: da.filter(([, n]) => n > 0).map(([l]) => l), missed: da.filter(([, n]) => n === 0).map(([l]) => l) };
    expect(rec).toContain(`LF:${da.length}\n`);
    expect(rec).toContain(`LH:${da.filter(([, n]) => n > 0).length}\n`);
  }
  return out;
}
function fromText(text: string, json: Lines): Lines {
  const out: Lines = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^ {2}(\S.*): (\d+)\/(\d+) rules/.exec(lines[i]!);
    if (!m || m[1] === "total") continue;
    const missed = /^ {4}not covered: lines? (.*)$/.exec(lines[i + 1] ?? "")?.[1]?.split(", ") ?? [];
    const all = [...json[m[1]!]!.covered, ...json[m[1]!]!.missed];
    expect(Number(m[3])).toBe(all.length);
    expect(Number(m[2])).toBe(all.length - missed.length);
    out[m[1]!] = { covered: all.filter((l) => !missed.includes(l)).sort((a, b) => Number(a) - Number(b)), missed };
  }
  return out;
}
const sorted = (x: Lines) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, { covered: [...v.covered].sort(), missed: [...v.missed].sort() }]));

describe("coverage with a file included more than once", () => {
  it("text, JSON, lcov and the lenses agree, and a line is covered when a copy decided a test call", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(policyArb, async (p) => {
        const dir = join(root, String(run++));
        mkdirSync(join(dir, "p", "include"), { recursive: true });
        const files: Record<string, string> = { [`${POLICY_DIR}/include/shared`]: p.include.join("\n") + "\n" };
        p.mains.forEach((m, i) => {
          const lines = [...m.rules];
          if (m.at !== undefined) lines.splice(Math.min(m.at, lines.length), 0, "!include include/shared");
          files[`${POLICY_DIR}/${10 + i}-f.policy`] = lines.join("\n") + "\n";
        });
        for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, "p", k.slice(POLICY_DIR.length + 1)), v);
        writeFileSync(join(dir, "system.json"), JSON.stringify(system));
        const calls = p.tests.map((t) => `${t.service} ${t.source} ${t.target}`);
        writeFileSync(join(dir, "t.policytest.yaml"), `policy: p\nsystem: system.json\ntests:\n${calls.map((c) => `  - call: ${c}\n    decision: deny\n`).join("")}`);

        const text = await runQkit(["policy", "test", "--coverage"], { cwd: dir });
        const json = await runQkit(["policy", "test", "--coverage-format", "json", "--coverage-output", "cov.json"], { cwd: dir });
        const lcov = await runQkit(["policy", "test", "--coverage-format", "lcov", "--coverage-output", "cov.info"], { cwd: dir });
        for (const r of [text, json, lcov]) expect(r.err).toBe("");
        const j = JSON.parse(readFileSync(join(dir, "cov.json"), "utf8"));
        const byJson = fromJson(j);
        expect(sorted(fromLcov(readFileSync(join(dir, "cov.info"), "utf8")))).toEqual(sorted(byJson));
        expect(sorted(fromText(text.out.slice(text.out.indexOf("coverage (")), byJson))).toEqual(sorted(byJson));
        const totalLine = /total: (\d+)\/(\d+) rules/.exec(text.out)!;
        expect([Number(totalLine[1]), Number(totalLine[2])]).toEqual([j.covered, j.total]);
        // One entry per distinct line of each file.
        const distinct = new Set(Object.entries(byJson).flatMap(([f, v]) => [...v.covered, ...v.missed].map((l) => `${f}:${l}`)));
        expect(j.total).toBe(distinct.size);

        // The model against the evaluator: the decided count of a line is the number of calls some copy of it decided.
        const loaded = loadPolicy(createMemoryFileSystem(files, [POLICY_DIR]));
        expect(loaded.ok).toBe(true);
        if (!loaded.ok) return;
        const sys = prepareSystemInfo(system as never);
        const collector = new CoverageCollector(loaded.policy);
        const decidedAt = new Map<string, number>();
        for (const t of p.tests) {
          const x = explain(loaded.policy, makeRequest(t.service, t.source, t.target), sys);
          collector.add(x);
          const r = x.decidingRule;
          if (r) decidedAt.set(`${r.origin.file}:${r.origin.line}`, (decidedAt.get(`${r.origin.file}:${r.origin.line}`) ?? 0) + 1);
        }
        for (const pol of j.policies) for (const f of pol.files) for (const r of f.rules) expect([f.file, r.line, r.decided]).toEqual([f.file, r.line, decidedAt.get(`${f.file}:${r.line}`) ?? 0]);
        // The lenses: one per line, covered exactly where the JSON says so.
        const lenses = coverageLenses(collector.result());
        const lensLines: Lines = {};
        for (const l of lenses) {
          const f = "p/" + l.path.slice(POLICY_DIR.length + 1);
          const e = (lensLines[f] ??= { covered: [], missed: [] });
          (l.decided + l.contributed > 0 ? e.covered : e.missed).push(String(l.line));
        }
        expect(sorted(lensLines)).toEqual(sorted(byJson));
      }),
      { numRuns: 25 },
    );
  }, 120_000);

  it("the reviewer's case: the included file's two lines, each covered once, in every format", async () => {
    const dir = join(root, "review");
    mkdirSync(join(dir, "p", "include"), { recursive: true });
    writeFileSync(join(dir, "p", "include", "common"), "qubes.Gpg * work vault deny\nqubes.Filecopy * work vault allow\n");
    writeFileSync(join(dir, "p", "30-a.policy"), "!include include/common\nqubes.Filecopy * @anyvm @anyvm deny\n");
    writeFileSync(join(dir, "p", "50-b.policy"), "qubes.Gpg * @anyvm @anyvm allow\n!include include/common\n");
    writeFileSync(join(dir, "system.json"), JSON.stringify(system));
    writeFileSync(join(dir, "a.policytest.yaml"), "policy: p\nsystem: system.json\ntests:\n  - qubes.Gpg work vault => deny\n  - qubes.Filecopy work vault => allow vault\n  - qubes.Gpg personal vault => allow vault\n");
    const r = await runQkit(["policy", "test", "--coverage"], { cwd: dir });
    expect(r.out).toBe(
      [
        "3 passed, 0 failed (3 tests in 1 file)",
        "coverage (rules that decided a test call, or added targets to the ask list of one):",
        "  p/include/common: 2/2 rules (100%)",
        "  p/30-a.policy: 0/1 rules (0%)",
        "    not covered: line 2",
        "  p/50-b.policy: 1/1 rules (100%)",
        "  total: 3/4 rules (75%)",
        "",
      ].join("\n"),
    );
    const j = await runQkit(["policy", "test", "--json", "--coverage"], { cwd: dir });
    const common = JSON.parse(j.out).coverage.policies[0].files[0];
    expect(common.rules.map((x: { line: number; decided: number; copies: { via: string[]; decided: number }[] }) => [x.line, x.decided, x.copies.map((c) => [c.via.join(" > "), c.decided])])).toEqual([
      [1, 1, [["30-a.policy:1", 1], ["50-b.policy:2", 0]]],
      [2, 1, [["30-a.policy:1", 1], ["50-b.policy:2", 0]]],
    ]);
  });
});
