/**
 * `qkit policy diff` between git revisions (REV:PATH) and a directory,
 * through the CLI, in a throw-away repository.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const fixtures = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
const repo = mkdtempSync(join(tmpdir(), "qkit-audit-git-"));
afterAll(() => rmSync(repo, { recursive: true, force: true }));

function git(...args: string[]): void {
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", ...args], { cwd: repo, stdio: "ignore" });
}

describe("qkit policy diff with git revisions", () => {
  it("compares HEAD:policy.d with the edited working tree, and two revisions", async () => {
    git("init", "-q");
    cpSync(fixtures + "demo/policy.d", join(repo, "conf/policy.d"), { recursive: true });
    cpSync(fixtures + "demo/system.json", join(repo, "system.json"));
    git("add", ".");
    git("commit", "-q", "-m", "demo");
    cpSync(fixtures + "demo-edited/policy.d", join(repo, "conf/policy.d"), { recursive: true });
    const expected = readFileSync(fixtures + "cli/diff-text/expected.txt", "utf8");
    const r = await runQkit(["policy", "diff", "HEAD:conf/policy.d", "conf/policy.d", "--system", "system.json"], { cwd: repo });
    expect(r.out + `exit ${r.code}\n`).toBe(expected);
    git("commit", "-q", "-a", "-m", "edit");
    // From a subdirectory, paths are relative to it, as in git.
    const sub = await runQkit(["policy", "diff", "HEAD~1:policy.d", "HEAD:policy.d", "--system", "../system.json"], { cwd: join(repo, "conf") });
    expect(sub.out + `exit ${sub.code}\n`).toBe(expected);
    const none = await runQkit(["policy", "diff", "HEAD:conf/policy.d", "conf/policy.d", "--system", "system.json"], { cwd: repo });
    expect(none.code).toBe(0);
  });

  it("reports an unknown revision or path as a usage error (exit 2)", async () => {
    writeFileSync(join(repo, "x"), "");
    const bad = await runQkit(["policy", "diff", "nosuchrev:conf/policy.d", "conf/policy.d", "--system", "system.json"], { cwd: repo });
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/cannot read `nosuchrev:conf\/policy.d` from git/);
    const empty = await runQkit(["policy", "diff", "HEAD:nothing", "conf/policy.d", "--system", "system.json"], { cwd: repo });
    expect(empty.code).toBe(2);
    expect(empty.err).toMatch(/`nothing` has no files in git revision `HEAD`/);
  });
});
