/**
 * `qkit flow --policy-dir REV:PATH`: the policy of a git revision, read as
 * `qkit policy diff` reads it, against the working copy of the same machine.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const machine = fileURLToPath(new URL("../fixtures/flow/machine/", import.meta.url));

function repo(): string | undefined {
  try {
    execFileSync("git", ["--version"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), "qkit-flow-rev-"));
  cpSync(machine, dir, { recursive: true });
  const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", ...args], { cwd: dir, stdio: "ignore" });
  git("init", "-q");
  git("add", ".");
  git("commit", "-q", "-m", "machine");
  // The working copy then denies every call: only the revision still has the Gpg path.
  writeFileSync(join(dir, "policy.d", "10-deny.policy"), "* * @anyvm @anyvm deny\n* * @adminvm @anyvm deny\n");
  return dir;
}

describe("qkit flow --policy-dir REV:PATH", () => {
  const dir = repo();
  it.skipIf(!dir)("reads the policy of the revision, not the working copy", async () => {
    const args = ["flow", "vault", "work", "--no-ask", "--max-hops", "1", "--system", "system.json"];
    const then = await runQkit([...args, "--policy-dir", "HEAD:policy.d"], { cwd: dir! });
    expect(then.err).toBe("");
    expect(then.code).toBe(0);
    expect(then.out).toContain("qubes.Gpg: work -> vault: allow (30-user.policy:19)");
    const now = await runQkit([...args, "--policy-dir", "policy.d"], { cwd: dir! });
    expect(now.code).toBe(1);
    expect(now.out).toBe("no flow from vault to work: no path at all\n");
  });

  it.skipIf(!dir)("says which revision it cannot read (exit 2)", async () => {
    const r = await runQkit(["flow", "vault", "work", "--system", "system.json", "--policy-dir", "no-such-rev:policy.d"], { cwd: dir! });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot read `no-such-rev:policy\.d` from git/);
  });
});
