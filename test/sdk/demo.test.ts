/**
 * The bundled demo (examples/demo) and `qkit demo`: the demo's decisions
 * agree with the real engine's (test/fixtures/demo/oracle.*.jsonl, made by
 * `scripts/differential.mjs --demo`), and the command prints them.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runConformanceCase, type ConformanceCase } from "@qubes-kit/language";
import { runQkit } from "../helpers/qkit.js";
import { compareOutputs } from "../helpers/compare-decisions.js";

type Obj = Record<string, unknown>;
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DEMO = path.join(ROOT, "examples", "demo");
const FIXTURES = path.join(ROOT, "test", "fixtures", "demo");
const readJsonl = (file: string): Obj[] =>
  fs
    .readFileSync(path.join(FIXTURES, file), "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Obj);

const input = readJsonl("oracle.in.jsonl");
const expected = readJsonl("oracle.out.jsonl");
const byId = (rows: Obj[], id: string) => rows.find((r) => r["id"] === id)!;

/** Runs `qkit` in process and collects its output. */
async function qkit(args: string[], cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runQkit(args, { cwd });
  return { code: r.code, stdout: r.out, stderr: r.err };
}

function readTree(dir: string, prefix = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) Object.assign(out, readTree(dir, rel));
    else out[rel] = fs.readFileSync(path.join(dir, rel), "utf8");
  }
  return out;
}

describe("the demo's expected decisions", () => {
  it("were made from the current examples/demo", () => {
    const transfers = JSON.parse(fs.readFileSync(path.join(DEMO, "transfers.json"), "utf8")) as Obj[];
    const evalCase = byId(input, "demo-transfers");
    expect(evalCase["files"]).toEqual(readTree(path.join(DEMO, "policy.d")));
    expect(evalCase["system"]).toEqual(JSON.parse(fs.readFileSync(path.join(DEMO, "system.json"), "utf8")));
    expect((evalCase["requests"] as Obj[]).map((r) => [r["service"], r["source"], r["target"]])).toEqual(
      transfers.map((t) => [t["service"], t["source"], t["target"]]),
    );
  });

  it("load cleanly in the real engine and lint cleanly", () => {
    expect(byId(expected, "demo-parse")).toMatchObject({ ok: true, rules: 29 });
    expect(byId(expected, "demo-lint")["ok"]).toBe(true);
  });

  it("agree with the language engine on every unit", () => {
    const actual = input.map((c) => runConformanceCase(c as unknown as ConformanceCase) as Obj);
    const r = compareOutputs(expected, actual);
    expect(r.diffs.slice(0, 3)).toEqual([]);
    expect(r.agree).toBe(r.total);
  });
});

describe("qkit demo", () => {
  it("prints the validation result and one row per transfer", async () => {
    const { code, stdout, stderr } = await qkit(["demo"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^ {2}ok: 6 files, 29 rules, no errors$/m);
    expect(stdout).toMatch(/^1 +copy a file from work to personal +allow +→ personal +30-user\.policy:13$/m);
    expect(stdout).toMatch(/^ +qubes\.Filecopy {2}work → personal$/m);
    expect(stdout).toMatch(/open a file from the vault in a disposable +deny +denied by the engine \[\d\] +30-user\.policy:27/);
    expect(stdout).toMatch(/^  \[\d\] policy define .allow. action to @dispvm at \/etc\/qubes\/policy.d\/30-user.policy:27 but no DispVM base is set for this VM$/m);
    expect(stdout).toMatch(/^30 calls: 14 allowed, 5 asked, 11 denied$/m);
    expect(stdout).not.toContain("\x1b[");
  });

  it("gives with --json the real engine's decisions", async () => {
    const { code, stdout } = await qkit(["demo", "--json"]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as { policy: Obj; transfers: { decision: Obj }[] };
    expect(report.policy).toMatchObject({ ok: true, rules: 29, diagnostics: [] });
    const actual = [{ id: "demo-transfers", ok: true, results: report.transfers.map((t) => t.decision) }];
    const r = compareOutputs([byId(expected, "demo-transfers")], actual);
    expect(r.diffs.slice(0, 3)).toEqual([]);
    expect(r.agree).toBe(30);
  });

  it("reads the system and the policy through the simulator and the SDK, with the same decisions as the files", async () => {
    const live = JSON.parse((await qkit(["demo", "--json"])).stdout) as { source: Obj; transfers: { decision: Obj }[] };
    expect(live.source).toMatchObject({ kind: "simulator" });
    expect(live.source["calls"]).toContain("admin.vm.List");
    expect(live.source["calls"]).toContain("policy.Get");
    const offline = JSON.parse((await qkit(["demo", "--json", "--offline"])).stdout) as { source: Obj; transfers: { decision: Obj }[] };
    expect(offline.source).toEqual({ kind: "files" });
    expect(live.transfers.map((t) => t.decision)).toEqual(offline.transfers.map((t) => t.decision));
  });

  it("reports a policy that does not load, and denies every call", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkit-demo-"));
    fs.cpSync(DEMO, dir, { recursive: true });
    fs.appendFileSync(path.join(dir, "policy.d", "30-user.policy"), "qubes.Gpg * @tag: vault allow\n");
    const { code, stdout } = await qkit(["demo", "--dir", dir]);
    expect(code).toBe(1);
    expect(stdout).toContain("30-user.policy:41:13: error[empty-token]: invalid empty @tag: token: '@tag:'");
    expect(stdout).toMatch(/^30 calls: 0 allowed, 0 asked, 30 denied$/m);
  });

  it("says what is wrong with a bad directory or option", async () => {
    const missing = await qkit(["demo", "--dir", "no/such/dir"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^qkit demo: .*no\/such\/dir: no policy\.d directory \[demo-missing-file\]\n$/);
    const bad = await qkit(["demo", "--colour"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("qkit demo: unknown option `--colour` [usage]\n");
  });
});
