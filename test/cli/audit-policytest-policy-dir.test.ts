/**
 * `qkit policy test --policy-dir` takes what the other auditor commands
 * take: a directory, `live` (the policy admin API, here the simulator), or
 * REV:PATH of a git revision. Data-driven: each spelling runs the same test
 * file and must give the same results; coverage names the files under the
 * policy as given.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";

const fixtures = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "qkit-pt-dir-"));
const socket = join(dir, "qubesd.sock");
let server: SimulatorServer;
/** git is needed for REV:PATH (those cases are reported as skipped without it). */
const hasGit = (() => {
  try {
    execFileSync("git", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

beforeAll(async () => {
  server = await startSimulator({ socket, system: JSON.parse(readFileSync(fixtures + "demo/system.json", "utf8")), policy: fixtures + "demo-edited/policy.d" });
  cpSync(fixtures + "demo-edited/policy.d", join(dir, "policy.d"), { recursive: true });
  cpSync(fixtures + "demo/system.json", join(dir, "system.json"));
  // The test file names a policy that does not exist: --policy-dir overrides it.
  writeFileSync(join(dir, "t.policytest.yaml"), "policy: nowhere.d\nsystem: system.json\ntests:\n  - qubes.Gpg work vault => ask vault\n  - qubes.Filecopy work personal => allow personal\n  - qubes.Filecopy untrusted vault => deny\n");
  if (hasGit) {
    const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", ...args], { cwd: dir, stdio: "ignore" });
    git("init", "-q");
    git("add", "policy.d");
    git("commit", "-q", "-m", "policy");
  }
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const SPELLINGS: { spec: string; git?: boolean; file: string }[] = [
  { spec: "policy.d", file: "policy.d/30-user.policy" },
  { spec: "live", file: "/etc/qubes/policy.d/30-user.policy" },
  { spec: "HEAD:policy.d", git: true, file: "HEAD:policy.d/30-user.policy" },
  { spec: "HEAD:./policy.d/", git: true, file: "HEAD:./policy.d/30-user.policy" },
];

describe("policy test --policy-dir", () => {
  it.each(SPELLINGS.filter((c) => hasGit || !c.git))("$spec", async (c) => {
    const r = await runQkit(["policy", "test", "--policy-dir", c.spec, "--socket", socket, "--coverage-format", "json", "--coverage-output", "cov.json", "t.policytest.yaml"], { cwd: dir });
    expect(r.err).toBe("");
    expect(r.out).toBe("3 passed, 0 failed (3 tests in 1 file)\n");
    expect(r.code).toBe(0);
    const cov = JSON.parse(readFileSync(join(dir, "cov.json"), "utf8"));
    expect(cov.policies[0].policy_dir).toBe(c.spec);
    expect(cov.policies[0].files.map((f: { path: string }) => f.path)).toContain(c.file);
  });

  it.skipIf(!hasGit)("a revision that does not exist stops the run: one line, exit 2", async () => {
    const r = await runQkit(["policy", "test", "--policy-dir", "no-such-rev:policy.d", "t.policytest.yaml"], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^qkit policy test: cannot read `no-such-rev:policy\.d` from git: .* \[usage\]\n$/);
  });
});
