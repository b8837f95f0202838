/**
 * `qkit template whatif` and `qkit template check` through the CLI:
 * data-driven cases in `test/fixtures/template/whatif/<case>/` (a stack, a
 * system model, a policy directory, optional extra arguments in `args`; the
 * expected output in `expected.txt` and the exit code in `expected-exit`),
 * and the example machine of `examples/laptop/`.
 *
 * `UPDATE_GOLDENS=1` rewrites the expected files (review the diff!).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { stackJsonSchema } from "@qubes-kit/language";
import { runQkit } from "../helpers/qkit.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CASES = path.join(ROOT, "test/fixtures/template/whatif");
const LAPTOP = path.join(ROOT, "examples/laptop");
const UPDATE = process.env["UPDATE_GOLDENS"] === "1";

function golden(file: string, actual: string): void {
  if (UPDATE) fs.writeFileSync(file, actual);
  expect(fs.existsSync(file), `${file} is missing (run with UPDATE_GOLDENS=1 once, then review it)`).toBe(true);
  expect(actual).toBe(fs.readFileSync(file, "utf8"));
}

describe("qkit template whatif: fixture cases", () => {
  const cases = fs.readdirSync(CASES).filter((c) => fs.statSync(path.join(CASES, c)).isDirectory()).sort();
  it("has cases", () => expect(cases.length).toBeGreaterThanOrEqual(4));
  for (const c of cases) {
    it(c, async () => {
      const dir = path.join(CASES, c);
      const extra = fs.existsSync(path.join(dir, "args")) ? fs.readFileSync(path.join(dir, "args"), "utf8").trim().split(/\s+/) : [];
      const r = await runQkit(["template", "whatif", "stack.qubes.yaml", "--system", "system.json", "--policy-dir", "policy.d", ...extra], { cwd: dir });
      expect(r.err).toBe("");
      golden(path.join(dir, extra.includes("--json") ? "expected.json" : "expected.txt"), r.out);
      golden(path.join(dir, "expected-exit"), `${r.code}\n`);
      if (extra.includes("--json")) {
        const j = JSON.parse(r.out) as { ok: boolean; changes: { service: string; changes: unknown[] }[] };
        expect(j.ok).toBe(r.code === 0);
      }
    });
  }
});

describe("qkit template whatif: failures", () => {
  it("a failed expectation exits 1 and shows the deciding rule", async () => {
    const r = await runQkit(["template", "whatif", "stack.qubes.yaml", "--system", "system.json", "--policy-dir", "policy.d"], { cwd: path.join(CASES, "failing-expect") });
    expect(r.code).toBe(1);
    expect(r.out).toContain("FAIL qubes.Filecopy work -> personal => ask: expected ask, got allow to personal");
    expect(r.out).toContain("deciding rule: 30-user.policy:2");
  });

  it("a --policy-dir that cannot be read: file-not-found for a missing one, cannot-read for a policy file that cannot be read, one line each", async () => {
    const cwd = path.join(CASES, "failing-expect");
    const missing = await runQkit(["template", "whatif", "stack.qubes.yaml", "--system", "system.json", "--policy-dir", "no-such-dir"], { cwd });
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^qkit template whatif: cannot read policy directory \S*\/no-such-dir: No such file or directory; check the path \[file-not-found\]\n$/);
    const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env["TMPDIR"] ?? "/tmp"), "qkit-whatif-"));
    fs.cpSync(path.join(cwd, "policy.d"), path.join(dir, "policy.d"), { recursive: true });
    // A policy file whose symbolic links loop: it exists, and reading it fails (ELOOP).
    fs.symlinkSync("40-loop.policy", path.join(dir, "policy.d", "40-loop.policy"));
    const looped = await runQkit(["template", "whatif", path.join(cwd, "stack.qubes.yaml"), "--system", path.join(cwd, "system.json"), "--policy-dir", "policy.d"], { cwd: dir });
    expect(looped.code).toBe(2);
    expect(looped.err).toMatch(/^qkit template whatif: cannot read policy file \S*\/policy\.d\/40-loop\.policy: Too many levels of symbolic links; the symbolic links on its path loop; check them \[cannot-read\]\n$/);
  });

  it("a stack with errors is reported, not evaluated (exit 1)", async () => {
    const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env["TMPDIR"] ?? "/tmp"), "qkit-whatif-"));
    fs.writeFileSync(path.join(dir, "bad.qubes.yaml"), "qkit: 1\nstack: bad\nqubes:\n  work:\n    class: AppVM\n    memory: lots\n");
    const r = await runQkit(["template", "whatif", "bad.qubes.yaml", "--system", path.join(CASES, "json/system.json"), "--policy-dir", path.join(CASES, "json/policy.d")], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/bad\.qubes\.yaml:6:\d+: error\[wrong-type\]/);
    expect(r.err).toContain("[invalid-stack]");
  });

  it("--call decides calls today and after apply, with how the future policy decides them", async () => {
    const cwd = path.join(CASES, "failing-expect");
    const base = ["template", "whatif", "stack.qubes.yaml", "--system", "system.json", "--policy-dir", "policy.d", "--no-changes"];
    const r = await runQkit([...base, "--call", "qubes.Filecopy work -> personal", "--call=qubes.Gpg work vault"], { cwd });
    expect(r.out).toMatch(/^call qubes\.Filecopy work -> personal: today allow personal; after apply the same\n(?: {9}.*\n)*? {9}.*deciding rule: 30-user\.policy:2/m);
    expect(r.out).toMatch(/^call qubes\.Gpg work -> vault: today deny; after apply the same$/m);
    const j = JSON.parse((await runQkit([...base, "--json", "--call", "qubes.Filecopy personal -> work"], { cwd })).out);
    expect(j.calls).toMatchObject([{ call: "qubes.Filecopy personal -> work", today: { action: "ask" }, after: { action: "ask" }, deciding_rule: { file: "40-qkit-strict-copies.policy", line: 2 } }]);
    // With the whole explanation, as `qkit policy explain --json` gives it.
    expect(j.calls[0].explanation).toMatchObject({ request: { service: "qubes.Filecopy", source: "personal", target: "work" }, deciding_rule: { file: "40-qkit-strict-copies.policy", line: 2 } });
    expect(Array.isArray(j.calls[0].explanation.trace)).toBe(true);
    const typo = await runQkit([...base, "--call", "qubes.Filecopy wrok -> personal"], { cwd });
    expect(typo.err).toBe("qkit template whatif: warning: --call `qubes.Filecopy wrok -> personal`: source `wrok` is not a qube of the system after apply; did you mean `work`? [unknown-qube]\n");
    const bad = await runQkit([...base, "--call", "qubes.Filecopy work"], { cwd });
    expect([bad.code, bad.err]).toEqual([2, expect.stringContaining("--call `qubes.Filecopy work`: the call needs a service, a source and a target")]);
  });

  it("usage errors exit 2; unreadable inputs exit 2 with a code, as in the other commands", async () => {
    expect((await runQkit(["template", "whatif"], { cwd: ROOT })).code).toBe(2);
    expect((await runQkit(["template", "whatif", "a", "b"], { cwd: ROOT })).code).toBe(2);
    expect((await runQkit(["template", "whatif", "x.qubes.yaml", "--system", "s.json", "--socket", "/nonexistent"], { cwd: ROOT })).code).toBe(2);
    const r = await runQkit(["template", "whatif", "stack.qubes.yaml", "--system", "missing.json", "--policy-dir", "policy.d"], { cwd: path.join(CASES, "json") });
    expect(r.code).toBe(2);
    expect(r.err).toContain("[file-not-found]");
    const bad = await runQkit(["template", "whatif", "stack.qubes.yaml", "--system", "stack.qubes.yaml", "--policy-dir", "policy.d"], { cwd: path.join(CASES, "json") });
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("[invalid-json]");
  });
});

describe("the example machine (examples/laptop)", () => {
  it("checks cleanly against its fresh-install system", async () => {
    const r = await runQkit(["template", "check", "laptop.qubes.yaml", "--system", "system.json"], { cwd: LAPTOP });
    expect(r.err).toBe("");
    expect(r.out).toBe("laptop.qubes.yaml: ok (stack laptop: 13 qubes, 2 policy files, 8 expectations)\n");
    expect(r.code).toBe(0);
  });

  it("every bundle checks on its own", async () => {
    const r = await runQkit(["template", "check", "bundles/split-gpg.qubes.yaml", "bundles/vpn-chain.qubes.yaml", "--json"], { cwd: LAPTOP });
    const j = JSON.parse(r.out) as { ok: boolean; files: { ok: boolean }[] };
    expect(j.files.map((f) => f.ok)).toEqual([true, true]);
    expect(r.code).toBe(0);
  });

  it("holds every expectation after apply, and lists the decisions it changes", async () => {
    const r = await runQkit(["template", "whatif", "laptop.qubes.yaml", "--system", "system.json", "--policy-dir", "policy.d", "--json"], { cwd: LAPTOP });
    expect(r.err).toBe("");
    const j = JSON.parse(r.out) as { ok: boolean; expectations: { ok: boolean; expect: string }[]; changes: { service: string; changes: { source: string; target: string; kind: string; after: { action: string; target?: string } }[] }[] };
    expect(j.expectations.map((e) => [e.expect, e.ok]).filter(([, ok]) => !ok)).toEqual([]);
    expect(j.expectations).toHaveLength(8);
    expect(r.code).toBe(0);
    const by = (svc: string) => j.changes.find((s) => s.service === svc)?.changes ?? [];
    // Templates move from the sys-net proxy to sys-firewall; work's disposables come from dvm-work; the vault stops sending files.
    expect(by("qubes.UpdatesProxy").find((c) => c.source === "debian-13-xfce" && c.target === "@default")).toMatchObject({ kind: "change", after: { action: "allow", target: "sys-firewall" } });
    expect(by("qubes.OpenInVM").find((c) => c.source === "work" && c.target === "@dispvm")).toMatchObject({ kind: "change", after: { action: "allow", target: "@dispvm:dvm-work" } });
    expect(by("qubes.Filecopy").find((c) => c.source === "vault" && c.target === "work")).toMatchObject({ kind: "revoke", after: { action: "deny" } });
    expect(by("qubes.Gpg2").map((c) => `${c.kind} ${c.source} -> ${c.target}`)).toEqual(["grant work -> @default"]);
  });
});

describe("qkit template check", () => {
  it("reports errors with positions and exits 1; usage errors exit 2", async () => {
    const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env["TMPDIR"] ?? "/tmp"), "qkit-check-"));
    fs.writeFileSync(path.join(dir, "a.qubes.yaml"), "qkit: 1\nstack: a\nqubes:\n  work:\n    class: TemplateVM\n    template_for_dispvms: true\n    netvm: nowhere\n");
    const r = await runQkit(["template", "check", "a.qubes.yaml", "--system", path.join(LAPTOP, "system.json")], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^a\.qubes\.yaml:6:5: error\[/m);
    expect(r.out).toMatch(/a\.qubes\.yaml:7:\d+: error\[unknown-qube\]: no such qube: nowhere/);
    const j = await runQkit(["template", "check", "a.qubes.yaml", "--json"], { cwd: dir });
    const parsed = JSON.parse(j.out) as { ok: boolean; files: { diagnostics: { code: string; line: number; column: number }[] }[] };
    expect(parsed.ok).toBe(false);
    expect(parsed.files[0]!.diagnostics.some((d) => d.line === 6 && d.column === 5)).toBe(true);
    expect(j.code).toBe(1);
    expect((await runQkit(["template", "check"], { cwd: dir })).code).toBe(2);
    expect((await runQkit(["template", "check", "a.qubes.yaml", "--bogus"], { cwd: dir })).code).toBe(2);
    const missing = await runQkit(["template", "check", "nope.qubes.yaml"], { cwd: dir });
    expect(missing.code).toBe(2);
    expect(missing.err).toContain("[file-not-found]");
    // An unreadable file is that file's input failure (exit 2): the others are still checked, and --json prints one document.
    fs.writeFileSync(path.join(dir, "b.qubes.yaml"), "qkit: 1\nstack: b\n");
    const mixed = await runQkit(["template", "check", "nope.qubes.yaml", "b.qubes.yaml", "--json"], { cwd: dir });
    expect(mixed.code).toBe(2);
    const mj = JSON.parse(mixed.out) as { ok: boolean; files: { file: string; ok: boolean; error?: { code: string } }[] };
    expect(mj.ok).toBe(false);
    expect(mj.files.map((f) => [f.file, f.ok, f.error?.code ?? null])).toEqual([
      ["nope.qubes.yaml", false, "file-not-found"],
      ["b.qubes.yaml", true, null],
    ]);
  });
});

describe("qkit template schema", () => {
  it("prints the stack JSON Schema; arguments are usage errors", async () => {
    const r = await runQkit(["template", "schema"], { cwd: ROOT });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual(stackJsonSchema());
    expect((JSON.parse(r.out) as { $schema: string }).$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect((await runQkit(["template", "schema", "extra"], { cwd: ROOT })).code).toBe(2);
  });
});
