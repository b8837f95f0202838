/**
 * The auditor's commands through the CLI, data-driven: each folder under
 * `fixtures/audit/cli/` holds `args` (a JSON array, run in `fixtures/audit/`)
 * and `expected.txt`: standard output, then `--- stderr` and standard error
 * when there is any, then `exit N`. Files a case writes (`--output`) are
 * compared with `expected.<name>` next to it.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const root = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
const cases = root + "cli/";
const update = process.env["UPDATE_GOLDEN"] === "1";

describe("qkit policy test / diff / who-can / what-can / table (goldens)", () => {
  it.each(readdirSync(cases).sort())("%s", async (name) => {
    const dir = cases + name + "/";
    const out = mkdtempSync(join(tmpdir(), "qkit-audit-"));
    try {
      const args = (JSON.parse(readFileSync(dir + "args", "utf8")) as string[]).map((a) => a.replace("$OUT", out));
      const r = await runQkit(args, { cwd: root });
      const got = r.out + (r.err ? `--- stderr\n${r.err}` : "") + `exit ${r.code}\n`;
      if (update) writeFileSync(dir + "expected.txt", got);
      expect(got).toBe(readFileSync(dir + "expected.txt", "utf8"));
      for (const f of readdirSync(out)) {
        const want = dir + "expected." + f;
        if (update) writeFileSync(want, readFileSync(join(out, f), "utf8"));
        expect(existsSync(want), `${name} wrote ${f}`).toBe(true);
        expect(readFileSync(join(out, f), "utf8")).toBe(readFileSync(want, "utf8"));
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe("coverage names the policy directory as given", () => {
  it.each([
    ["an absolute path, as written", root + "demo/policy.d", root + "demo/policy.d"],
    ["a relative path, from the current directory", "demo/policy.d", "demo/policy.d"],
    ["a relative path with a trailing slash, from the current directory", "./demo/policy.d/", "demo/policy.d"],
  ])("%s", async (_what, given, shown) => {
    const r = await runQkit(["policy", "test", "--policy-dir", given, "--json", "--coverage", "tests/demo.policytest.yaml"], { cwd: root });
    expect(r.err).toBe("");
    const policies = (JSON.parse(r.out) as { coverage: { policies: { policy_dir: string }[] } }).coverage.policies;
    expect(policies.map((p) => p.policy_dir)).toEqual([shown]);
  });
});
