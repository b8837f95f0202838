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
    // From a subdirectory, as in git: REV:PATH from the top of the repository, REV:./PATH and REV:../PATH from here.
    for (const [older, newer] of [
      ["HEAD~1:./policy.d", "HEAD:conf/policy.d"],
      ["HEAD~1:../conf/policy.d", "HEAD:./policy.d/"],
    ]) {
      const sub = await runQkit(["policy", "diff", older!, newer!, "--system", "../system.json"], { cwd: join(repo, "conf") });
      expect(sub.out + sub.err + `exit ${sub.code}\n`, `${older} ${newer}`).toBe(expected);
    }
    const rootRelative = await runQkit(["policy", "diff", "HEAD:policy.d", "policy.d", "--system", "../system.json"], { cwd: join(repo, "conf") });
    expect(rootRelative.code).toBe(2);
    expect(rootRelative.err).toBe(
      "qkit policy diff: cannot read `HEAD:policy.d` from git: fatal: path 'policy.d' does not exist in 'HEAD' (REV:PATH is relative to the top of the repository, as in git; write REV:./PATH for a path relative to the current directory) [usage]\n",
    );
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
    expect(empty.err).toMatch(/^qkit policy diff: cannot read `HEAD:nothing` from git: fatal: path 'nothing' does not exist in 'HEAD' \(REV:PATH is relative/);
    // Outside the repository: refused, in git's words.
    const outside = await runQkit(["policy", "diff", "HEAD:../policy.d", "conf/policy.d", "--system", "system.json"], { cwd: repo });
    expect(outside.code).toBe(2);
    expect(outside.err).toMatch(/^qkit policy diff: cannot read `HEAD:\.\.\/policy\.d` from git: fatal: '\.\.\/policy\.d' is outside repository at '.*' \[usage\]\n$/);
    // A file, not a directory.
    const file = await runQkit(["policy", "diff", "HEAD:system.json", "conf/policy.d", "--system", "system.json"], { cwd: repo });
    expect(file.code).toBe(2);
    expect(file.err).toMatch(/^qkit policy diff: cannot read `HEAD:system.json` from git: /);
  });
});
