/**
 * `qkit policy check` on whole policy directories: each folder under
 * `fixtures/language/policies/` holds a `policy.d/` (and maybe `legacy/`),
 * an optional `args` file, and `expected.txt`: the exact output (stdout and
 * stderr) followed by `exit N`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../fixtures/language/policies/", import.meta.url));
const cli = fileURLToPath(new URL("../../sdk/dist/cli.js", import.meta.url));

describe("qkit policy check", () => {
  it.each(readdirSync(root))("%s", (name) => {
    const dir = root + name;
    const args = existsSync(`${dir}/args`) ? readFileSync(`${dir}/args`, "utf8").trim().split(/\s+/) : ["policy.d"];
    const r = spawnSync(process.execPath, [cli, "policy", "check", ...args], { cwd: dir, encoding: "utf8" });
    expect(r.stdout + r.stderr + `exit ${r.status}\n`).toBe(readFileSync(`${dir}/expected.txt`, "utf8"));
  });

  it("reports usage errors with exit code 2", () => {
    const r = spawnSync(process.execPath, [cli, "policy", "check", "--bogus"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown option `--bogus`/);
    const none = spawnSync(process.execPath, [cli, "policy", "check"], { encoding: "utf8" });
    expect(none.status).toBe(2);
  });

  it("prints JSON with --json", () => {
    const r = spawnSync(process.execPath, [cli, "policy", "check", "--json", "policy.d"], { cwd: root + "many-errors", encoding: "utf8" });
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(false);
    expect(out.diagnostics.map((d: { code: string }) => d.code)).toEqual(["invalid-action", "empty-token", "wrong-number-of-fields"]);
    expect(r.status).toBe(1);
  });

  it("offers upstream qubes-policy-lint behaviour with --lint-compat", () => {
    const r = spawnSync(process.execPath, [cli, "policy", "check", "--lint-compat", "policy.d/30-user.policy"], { cwd: root + "many-errors", encoding: "utf8" });
    expect(r.stdout).toBe("policy.d/30-user.policy:1: error: invalid action: alow\npolicy.d/30-user.policy:3: error: invalid empty @tag: token: '@tag:'\n");
    expect(r.status).toBe(1);
  });
});

describe("qkit policy contract details", () => {
  it("refuses a runtime or legacy directory that does not exist (exit 2)", () => {
    for (const opt of ["--runtime-dir", "--legacy-dir"]) {
      const r = spawnSync(process.execPath, [cli, "policy", "check", opt, "no/such/dir", "policy.d"], { cwd: root + "clean", encoding: "utf8" });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`${opt}: not a directory`);
    }
  });

  it("prints a policy that does not load in the corpus format, in every mode", () => {
    const dir = root + "many-errors/policy.d";
    const expected = { ok: false, error: "PolicySyntaxError", stage: "load", notify: true, file: "30-user.policy", line: 1, detail: "invalid action: alow" };
    const one = spawnSync(process.execPath, [cli, "policy", "eval", "--policy-dir", dir, "qubes.A", "work", "vault", "--json"], { encoding: "utf8" });
    expect(JSON.parse(one.stdout)).toMatchObject(expected);
    expect(one.status).toBe(1);
    const many = spawnSync(process.execPath, [cli, "policy", "eval", "--policy-dir", dir, "--requests", "-"], { input: '{"service":"qubes.A","source":"work"}\n', encoding: "utf8" });
    expect(JSON.parse(many.stdout)).toMatchObject(expected);
  });

  it("refuses request lines with fields of the wrong type", () => {
    const r = spawnSync(process.execPath, [cli, "policy", "eval", "--policy-dir", root + "clean/policy.d", "--requests", "-"], { input: '{"service":"qubes.A","source":"work","target":5}\n{"service":"qubes.A","source":"work","argument":7}\n', encoding: "utf8" });
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toEqual([
      { ok: false, error: "UsageError", message: "line 1: `target` must be a string" },
      { ok: false, error: "UsageError", message: "line 2: `argument` must be a string" },
    ]);
  });

  it("runs when started through a symlink with another name", () => {
    const link = join(mkdtempSync(join(tmpdir(), "qkit-link-")), "my-qkit");
    symlinkSync(cli, link);
    const r = spawnSync(process.execPath, [link, "--help"], { encoding: "utf8" });
    expect(r.stdout).toMatch(/^usage: qkit <command>/);
  });
});

describe("qkit policy eval and explain", () => {
  const demo = fileURLToPath(new URL("../../examples/demo/", import.meta.url));
  it("decides one call, as text and as JSON", () => {
    const base = ["policy", "eval", "--policy-dir", demo + "policy.d", "--system", demo + "system.json"];
    const json = spawnSync(process.execPath, [cli, ...base, "qubes.Filecopy", "work", "vault", "--json"], { encoding: "utf8" });
    const d = JSON.parse(json.stdout);
    expect(d.ok).toBe(true);
    expect(["allow", "ask", "deny"]).toContain(d.action);
    expect(d.rule.file).toMatch(/\.policy$/);
  });

  it("explains a decision with the deciding rule", () => {
    const r = spawnSync(process.execPath, [cli, "policy", "explain", "--policy-dir", demo + "policy.d", "--system", demo + "system.json", "qubes.Filecopy", "work", "vault"], { encoding: "utf8" });
    expect(r.stdout).toMatch(/^request: qubes\.Filecopy from work to vault$/m);
    expect(r.stdout).toMatch(/^deciding rule: \S+\.policy:\d+ /m);
    expect(r.stdout).toMatch(/^decision: /m);
  });

  it("evaluates a stream of requests, one decision a line", () => {
    const input = ['{"service":"qubes.Filecopy","source":"work","target":"vault"}', '{"service":"qubes.GetDate","source":"work"}', "not json"].join("\n");
    const r = spawnSync(process.execPath, [cli, "policy", "eval", "--policy-dir", demo + "policy.d", "--system", demo + "system.json", "--requests", "-"], { input, encoding: "utf8" });
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ ok: false, error: "UsageError" });
  });
});
