/**
 * Rename in a real editor: headless Neovim (its built-in client, `vim.lsp.buf.rename`)
 * renames a qube across the policy's files and a tag from another file, and shows the
 * server's refusal of a rename onto an existing qube. The Lua script
 * (`test/fixtures/e2e/nvim/lsp-rename.lua`) edits buffers only (nothing is written) and
 * reports what it saw. Skipped with its reason where Neovim is not installed (never in CI).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { POLICY_DIR, repoPath, requireServerBuild, SERVER, TEST_SETTINGS, WORKSPACE } from "./e2e-support.js";

interface RenameReport {
  steps: string[];
  errors: string[];
  messages: string[];
  placeholder?: string;
  after_refusal?: string;
  files: Record<string, string[] | null>;
}

const temp = mkdtempSync(join(tmpdir(), "qkit-nvim-rename-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

const nvimInstalled = () => {
  const probe = spawnSync("nvim", ["--version"], { encoding: "utf8" });
  return !probe.error && probe.status === 0;
};

describe("Neovim (headless) renames through the language server", () => {
  it("renames a qube in every policy file, a tag from another file, and shows a refusal", (ctx) => {
    if (!process.env["CI"] && !nvimInstalled()) {
      const why = "nvim is not installed: the Neovim rename test is skipped here (install it with `apt-get install -y neovim`; CI always runs it)";
      process.stderr.write(`\n${why}\n`);
      ctx.skip(why);
      return;
    }
    requireServerBuild();
    const out = join(temp, "report.json");
    const env = {
      ...process.env,
      QKIT_NODE: process.execPath,
      QKIT_SERVER: SERVER,
      QKIT_ROOT: WORKSPACE,
      QKIT_FILE: `${POLICY_DIR}/30-user.policy`,
      QKIT_GPG_FILE: `${POLICY_DIR}/10-gpg.policy`,
      QKIT_SETTINGS: JSON.stringify(TEST_SETTINGS),
      QKIT_OUT: out,
      XDG_CONFIG_HOME: join(temp, "config"),
      XDG_DATA_HOME: join(temp, "data"),
      XDG_STATE_HOME: join(temp, "state"),
      XDG_CACHE_HOME: join(temp, "cache"),
    };
    const script = repoPath("test/fixtures/e2e/nvim/lsp-rename.lua");
    const run = spawnSync("nvim", ["--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", `luafile ${script}`], { env, encoding: "utf8", timeout: 60_000 });
    let report: RenameReport;
    try {
      report = JSON.parse(readFileSync(out, "utf8")) as RenameReport;
    } catch {
      throw new Error(`neovim wrote no report (status ${run.status}, signal ${run.signal}): ${run.stderr}${run.stdout}`);
    }
    if (process.env.QKIT_DEBUG) console.log(JSON.stringify(report, null, 1));
    expect(report.errors).toEqual([]);
    expect(report.steps).toEqual(["initialized", "prepared", "refused", "renamed", "tag renamed"]);
    expect(report.placeholder).toBe("work");
    expect(report.messages.join("\n")).toContain("Qube already exists: vault");
    expect(report.after_refusal).toBe("qubes.Filecopy  *  work    personal  allow");
    const disk = (name: string) => readFileSync(`${POLICY_DIR}/${name}`, "utf8").replace(/\n$/, "").split("\n");
    // Every `work` of the policy is `office`; the tag is renamed in both files that use it.
    expect(report.files["30-user.policy"]).toEqual(disk("30-user.policy").map((l) => l.replace(/\bwork\b/g, "office")));
    expect(report.files["40-broken.policy"]).toEqual(disk("40-broken.policy").map((l) => (l.startsWith("#") ? l : l.replace(/\bwork\b/g, "office"))));
    expect(report.files["10-gpg.policy"]).toEqual(disk("10-gpg.policy").map((l) => l.replace(/\bwork\b/g, "office").replace("@tag:gpg-client", "@tag:gpg-users")));
  });
});
