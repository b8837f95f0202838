/**
 * `qkit policy diff REV:PATH`: every spelling of a directory of a git
 * revision that git itself accepts (from the top of the repository, `./` and
 * `../` from the current directory, with or without a trailing slash) reads
 * the same policy.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const fixtures = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));

function repo(): string | undefined {
  try {
    execFileSync("git", ["--version"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), "qkit-diff-rev-"));
  const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", ...args], { cwd: dir, stdio: "ignore" });
  git("init", "-q");
  cpSync(fixtures + "demo/system.json", join(dir, "system.json"));
  cpSync(fixtures + "demo/policy.d", join(dir, "policy.d"), { recursive: true });
  git("add", ".");
  git("commit", "-q", "-m", "one");
  rmSync(join(dir, "policy.d"), { recursive: true });
  cpSync(fixtures + "demo-edited/policy.d", join(dir, "policy.d"), { recursive: true });
  git("add", "-A", ".");
  git("commit", "-q", "-m", "two");
  return dir;
}

const dir = repo();
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const SPELLINGS: [string, string][] = [
  ["policy.d", "HEAD~1:policy.d/"],
  ["policy.d", "HEAD~1:./"],
  ["policy.d", "HEAD~1:."],
  ["policy.d", "HEAD~1:./."],
  ["policy.d", "HEAD~1:../policy.d/"],
  [".", "HEAD~1:./policy.d"],
  [".", "HEAD~1:./policy.d/"],
];

describe("policy diff REV:PATH spellings", () => {
  it.skipIf(!dir)("each spelling reads the revision's directory", async () => {
    const reference = await runQkit(["policy", "diff", "HEAD~1:policy.d", "HEAD:policy.d", "--system", "system.json", "--json"], { cwd: dir! });
    expect(reference.err).toBe("");
    expect(reference.code).toBe(1);
    for (const [cwd, spec] of SPELLINGS) {
      const r = await runQkit(["policy", "diff", spec, cwd === "." ? "policy.d" : ".", "--system", cwd === "." ? "system.json" : "../system.json", "--json"], { cwd: join(dir!, cwd) });
      expect([cwd, spec, r.err, r.code]).toEqual([cwd, spec, "", 1]);
      expect(r.out).toBe(reference.out);
    }
  });
});
