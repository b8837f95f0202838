/**
 * End-to-end test in a real editor: headless Neovim opens the policy workspace, starts the
 * built server (`lsp/dist/server.cjs --stdio`) with its built-in LSP client, waits for the
 * diagnostics and asks for completion and hover. The Lua script
 * (`test/fixtures/e2e/nvim/lsp-check.lua`) writes what it saw to a JSON file checked here.
 *
 * Neovim is a system package (`apt-get install -y neovim`, which `.ci/run` does). In CI
 * (`CI` set) a missing `nvim` fails the test with a message that says so. On a developer's
 * machine without Neovim the test is reported as skipped, with the same message, so that
 * `npm test` on a fresh clone still passes; it is never skipped silently.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { POLICY_DIR, repoPath, requireServerBuild, SERVER, TEST_SETTINGS, WORKSPACE } from "./e2e-support.js";

/** Neovim 0.7 has vim.lsp.start_client and vim.diagnostic; 0.8 adds vim.lsp.start. Debian 12 ships 0.7.2. */
const MIN_VERSION: [number, number] = [0, 7];

function nvimVersion(): { version: [number, number, number]; text: string } {
  const probe = spawnSync("nvim", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      "nvim is not installed (or does not run): the Neovim end-to-end test needs it; install it with `apt-get install -y neovim` (.ci/run does this)",
    );
  }
  const match = /NVIM v(\d+)\.(\d+)\.(\d+)/.exec(probe.stdout);
  if (!match) throw new Error(`cannot read the version from \`nvim --version\`: ${probe.stdout.split("\n")[0]}`);
  return { version: [Number(match[1]), Number(match[2]), Number(match[3])], text: match[0] };
}

interface NvimReport {
  nvim_version: string;
  api: string;
  steps: string[];
  errors: string[];
  diagnostics?: Array<{ lnum: number; col: number; end_col: number; severity: number; message: string; code?: string; source?: string }>;
  completion?: string[];
  hover?: string;
}

const temp = mkdtempSync(join(tmpdir(), "qkit-nvim-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

function nvimInstalled(): boolean {
  const probe = spawnSync("nvim", ["--version"], { encoding: "utf8" });
  return !probe.error && probe.status === 0;
}

describe("Neovim (headless) with the language server", () => {
  it("shows diagnostics, completion and hover for a policy file", (ctx) => {
    if (!process.env["CI"] && !nvimInstalled()) {
      const why = "nvim is not installed: the Neovim end-to-end test is skipped here (install it with `apt-get install -y neovim`; CI always runs it)";
      process.stderr.write(`\n${why}\n`);
      ctx.skip(why);
      return;
    }
    const { version, text } = nvimVersion();
    expect(
      version[0] > MIN_VERSION[0] || (version[0] === MIN_VERSION[0] && version[1] >= MIN_VERSION[1]),
      `${text} is too old: the test needs Neovim ${MIN_VERSION.join(".")} or later`,
    ).toBe(true);
    requireServerBuild();

    const file = `${POLICY_DIR}/40-broken.policy`;
    const out = join(temp, "report.json");
    // 40-broken.policy, 0-based: line 1 is `qubes.Filecopy  *  work  @anyvm  alow`,
    // line 2 is `qubes.Gpg  *  @bogus  vault  allow`.
    const env = {
      ...process.env,
      QKIT_NODE: process.execPath,
      QKIT_SERVER: SERVER,
      QKIT_ROOT: WORKSPACE,
      QKIT_FILE: file,
      QKIT_SETTINGS: JSON.stringify(TEST_SETTINGS),
      QKIT_OUT: out,
      QKIT_COMPLETION_LINE: "2",
      QKIT_COMPLETION_COL: "14",
      QKIT_HOVER_LINE: "1",
      QKIT_HOVER_COL: "20",
      XDG_CONFIG_HOME: join(temp, "config"),
      XDG_DATA_HOME: join(temp, "data"),
      XDG_STATE_HOME: join(temp, "state"),
      XDG_CACHE_HOME: join(temp, "cache"),
    };
    const script = repoPath("test/fixtures/e2e/nvim/lsp-check.lua");
    const run = spawnSync("nvim", ["--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", `luafile ${script}`], {
      env,
      encoding: "utf8",
      timeout: 50_000,
    });
    let report: NvimReport;
    try {
      report = JSON.parse(readFileSync(out, "utf8")) as NvimReport;
    } catch {
      throw new Error(`neovim wrote no report (status ${run.status}, signal ${run.signal}): ${run.stderr}${run.stdout}`);
    }

    if (process.env.QKIT_DEBUG) console.log(JSON.stringify(report, null, 1));
    expect(report.errors).toEqual([]);
    expect(report.steps).toEqual(["opened", "started", "initialized", "diagnostics", "completion", "hover", "stopped"]);
    expect(report.api).toBe(version[0] > 0 || version[1] >= 8 ? "vim.lsp.start" : "vim.lsp.start_client");

    const diagnostics = (report.diagnostics ?? []).map((d) => ({ lnum: d.lnum, col: d.col, end_col: d.end_col, message: d.message }));
    expect(diagnostics).toEqual(
      expect.arrayContaining([
        { lnum: 1, col: 33, end_col: 37, message: "invalid action: alow" },
        { lnum: 2, col: 14, end_col: 20, message: "invalid source token: '@bogus'" },
      ]),
    );
    expect(report.completion).toEqual(expect.arrayContaining(["@anyvm", "*", "work", "vault"]));
    expect(report.completion).not.toContain("@default");
    expect(report.hover).toContain("work");
  });
});
