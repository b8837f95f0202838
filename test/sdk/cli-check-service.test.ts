/**
 * `qkit policy check FILE` with a system model that says what each qube advertises: a single file
 * checked alone reports `service-not-provided` for the rules whose calls do not depend on the rest
 * of the policy (allow, ask with `target=`), never for ask offers; an include-service file (`-i`)
 * gets its service from `--service SERVICE[+ARG]`, as the `!include-service` that includes it
 * would give it. Each finding is the one a whole-policy check of a directory that includes the
 * file gives (the same line, column and message), in every format.
 */
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const BASE_SYSTEM = JSON.parse(readFileSync(new URL("../fixtures/lsp/system.json", import.meta.url), "utf8")) as { domains: Record<string, Record<string, unknown>> };

/** A workspace: the system model (every qube but dom0 advertises qubes.Filecopy, vault also qubes.Gpg) and the given files. */
function workspace(files: Record<string, string>, services = true): string {
  const dir = mkdtempSync(join(tmpdir(), "qkit-check-service-"));
  const system = structuredClone(BASE_SYSTEM);
  if (services) for (const [name, info] of Object.entries(system.domains)) if (name !== "dom0" && !name.startsWith("uuid:")) info["supported_rpc"] = name === "vault" ? ["qubes.Filecopy", "qubes.Gpg"] : ["qubes.Filecopy"];
  writeFileSync(join(dir, "system.json"), JSON.stringify(system));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return dir;
}

const LEGACY = "$anyvm vault allow\nwork @default ask default_target=vault\nwork @anyvm ask target=vault\nwork dom0 allow\nwork personal allow\n";

type Found = { file: string; line: number; column: number; code: string; message: string };
async function found(argv: string[], dir: string): Promise<{ code: number; found: Found[]; err: string }> {
  const r = await runQkit(["policy", "check", "--json", ...argv], { cwd: dir });
  const report = JSON.parse(r.out) as { diagnostics: Found[] };
  return { code: r.code, err: r.err, found: report.diagnostics.filter((d) => d.code === "service-not-provided").map(({ file, line, column, code, message }) => ({ file, line, column, code, message })) };
}

describe("qkit policy check -i FILE --service SERVICE[+ARG]", () => {
  const CASES: Array<{ name: string; service: string; lines: number[] }> = [
    { name: "a service no qube the rules call advertises: allow and ask target= rules, not the offer", service: "my.Backup", lines: [1, 3, 5] },
    { name: "a service with an argument", service: "my.Backup+daily", lines: [1, 3, 5] },
    { name: "a service that vault advertises: only the rule to another qube", service: "qubes.Gpg", lines: [5] },
    { name: "a service every qube advertises", service: "qubes.Filecopy", lines: [] },
  ];
  for (const c of CASES) {
    it(c.name, async () => {
      const dir = workspace({ "include/backup": LEGACY });
      const r = await found(["-i", "include/backup", "--system", "system.json", "--service", c.service], dir);
      expect(r.code).toBe(0);
      expect(r.found.map((f) => f.line)).toEqual(c.lines);
    });
  }

  it("gives what a whole-policy check of a directory that includes the file gives for those rules", async () => {
    const dir = workspace({ "policy.d/30-user.policy": "!include-service my.Backup +daily include/backup\n", "policy.d/include/backup": LEGACY });
    const alone = await found(["-i", "policy.d/include/backup", "--system", "system.json", "--service", "my.Backup+daily"], dir);
    const whole = await found(["policy.d", "--system", "system.json"], dir);
    // The offer (line 2) can offer dom0 (line 4 adds it), so the whole policy is silent on it too.
    expect(whole.found.map((f) => f.line)).toEqual([1, 3, 5]);
    expect(alone.found).toEqual(whole.found);
  });

  it("an offer that the whole policy reports is left out alone (what it offers comes from every file)", async () => {
    const files = { "policy.d/30-user.policy": "my.Backup * work @default ask default_target=vault\n!include-service my.Backup * include/backup\n", "policy.d/include/backup": "work vault allow\n" };
    const dir = workspace(files);
    const whole = await found(["policy.d", "--system", "system.json"], dir);
    expect(whole.found.map((f) => `${f.file}:${f.line}`)).toEqual(["policy.d/30-user.policy:1", "policy.d/include/backup:1"]);
    const alone = await found(["policy.d/30-user.policy", "--system", "system.json"], dir);
    expect(alone.found).toEqual([]);
  });

  it("a policy file checked alone reports its allow rules, in every format", async () => {
    const dir = workspace({ "30-user.policy": "my.Backup * work vault allow\nmy.Backup * work @default ask default_target=vault\nqubes.Gpg * work vault allow\n" });
    const r = await found(["30-user.policy", "--system", "system.json"], dir);
    expect(r.found.map((f) => [f.line, f.column])).toEqual([[1, 1]]);
    const text = await runQkit(["policy", "check", "30-user.policy", "--system", "system.json"], { cwd: dir });
    expect(text.out).toContain("30-user.policy:1:1: info[service-not-provided]: no qube this rule can call provides `my.Backup`: `vault` does not advertise it");
    const sarif = JSON.parse((await runQkit(["policy", "check", "--format", "sarif", "30-user.policy", "--system", "system.json"], { cwd: dir })).out) as { runs: Array<{ results: Array<{ ruleId: string; level: string }> }> };
    expect(sarif.runs[0]!.results.filter((x) => x.ruleId === "service-not-provided").map((x) => x.level)).toEqual(["note"]);
    const github = await runQkit(["policy", "check", "--format", "github", "30-user.policy", "--system", "system.json"], { cwd: dir });
    expect(github.out).toMatch(/^::notice file=30-user\.policy,line=1,col=1,.*service-not-provided/m);
  });

  it("without --service, -i says what to give (the rules have no service)", async () => {
    const dir = workspace({ "include/backup": LEGACY });
    const r = await found(["-i", "include/backup", "--system", "system.json"], dir);
    expect(r.found).toEqual([]);
    expect(r.err).toBe("note: `include/backup` is read as an include-service file, whose rules get their service from the `!include-service` that includes it: give `--service SERVICE[+ARG]` to check the services its rules call (service-not-provided)\n");
  });

  it("a model without what qubes advertise: no note, no finding", async () => {
    const dir = workspace({ "include/backup": LEGACY }, false);
    const r = await found(["-i", "include/backup", "--system", "system.json"], dir);
    expect(r).toEqual({ code: 0, err: "", found: [] });
  });

  const USAGE: Array<[string, string[], string]> = [
    ["--service without -i", ["include/backup", "--system", "system.json", "--service", "my.Backup"], "qkit policy check: `--service` goes with `--include-service`/`-i` (a policy file's rules name their own service) [usage]\n"],
    ["--service without --system", ["-i", "include/backup", "--service", "my.Backup"], "qkit policy check: `--service` is for the checks that need a system model: give `--system FILE|live` too [usage]\n"],
    ["--service with --engine-only", ["-i", "include/backup", "--engine-only", "--service", "my.Backup"], "qkit policy check: `--service` turns on analysis checks, which `--engine-only` leaves out [usage]\n"],
    ["two words", ["-i", "include/backup", "--system", "system.json", "--service", "my.Backup x"], "qkit policy check: `--service my.Backup x`: give one service name, with an argument after `+` if the include names one (`--service qubes.Gpg`, `--service qubes.Gpg+key`) [usage]\n"],
    ["the service `*`", ["-i", "include/backup", "--system", "system.json", "--service", "*"], "qkit policy check: `--service *`: give one service name, with an argument after `+` if the include names one (`--service qubes.Gpg`, `--service qubes.Gpg+key`) [usage]\n"],
    ["a name the engine refuses, in its words", ["-i", "include/backup", "--system", "system.json", "--service", "bad*name"], "qkit policy check: `--service bad*name`: service 'bad*name' contains invalid characters: ('*',) [usage]\n"],
    ["with --lint-compat", ["--lint-compat", "-i", "include/backup", "--service", "my.Backup"], "qkit policy check: `--service` does not go with `--lint-compat` (it prints exactly what qubes-policy-lint prints) [usage]\n"],
  ];
  for (const [name, argv, err] of USAGE) {
    it(`refuses ${name} (exit 2)`, async () => {
      const dir = workspace({ "include/backup": LEGACY });
      const r = await runQkit(["policy", "check", ...argv], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.err).toBe(err);
      expect(r.out).toBe("");
    });
  }
});
