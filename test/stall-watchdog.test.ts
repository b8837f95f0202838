/**
 * The test run's stall watchdog (test/summary-reporter.ts): a test stuck in
 * synchronous code, or waiting for something that never comes, ends the run
 * with exit 1, the file named, where the worker is, and no worker left behind.
 * A wedged worker pool (every worker idle, no test running) is unwedged and
 * the files it held run again (scripts/test.mjs, `npm test`): the run passes
 * when they pass and nothing else failed.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

/** vitest fork workers whose parent is init (left behind by a run that ended). */
function orphanWorkers(): string[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        const stat = readFileSync(`/proc/${e}/stat`, "utf8");
        const ppid = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
        return ppid === "1" && readFileSync(`/proc/${e}/cmdline`, "utf8").includes("forks.js");
      } catch {
        return false;
      }
    });
}

it.each([
  ["spin.stall.ts", /worker \d+: no report within 5 s: busy in synchronous JavaScript/],
  ["wait.stall.ts", /worker \d+: idle in its event loop, waiting; active handles: .*timer/],
])("%s: names the stuck file, says where its worker is, stops it and fails the run", (fixture, where) => {
  const before = new Set(orphanWorkers());
  const r = spawnSync(process.execPath, [root + "node_modules/vitest/vitest.mjs", "run", "--config", "test/fixtures/stall/vitest.stall.config.ts"], {
    cwd: root,
    env: { ...process.env, QKIT_STALL_FIXTURE: fixture, QKIT_TEST_STALL_MINUTES: "0.05", FORCE_COLOR: "0", NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 50_000,
  });
  expect(r.error).toBeUndefined();
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`test run stalled: no test finished for \\d+\\.\\d minutes; still running: .*${fixture.replace(".", "\\.")}`));
  expect(r.stderr).toMatch(/processes below the runner:\n {2}\d+ \[[RS]/);
  expect(r.stderr).toMatch(where);
  expect(r.stdout).toContain("tests: stalled, 1 failed");
  // No worker of that run is left spinning (an orphaned worker has init as its parent).
  const left = orphanWorkers().filter((p) => !before.has(p));
  expect(left).toEqual([]);
}, 60_000);

/** `npm test`'s wrapper on the fixture files `files` (a glob), with a first run that wedges. */
function wrapped(files: string) {
  const marker = join(mkdtempSync(join(tmpdir(), "qkit-wedge-")), "wedged-once");
  return spawnSync(process.execPath, [root + "scripts/test.mjs", "--config=test/fixtures/stall/vitest.stall.config.ts"], {
    cwd: root,
    env: { ...process.env, QKIT_STALL_FIXTURE: files, QKIT_WEDGE_MARKER: marker, QKIT_TEST_WEDGE_MINUTES: "0.05", QKIT_TEST_STALL_MINUTES: "1", FORCE_COLOR: "0", NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 50_000,
  });
}

it("unwedges an idle worker pool, runs the file it held again, and passes when nothing else failed", () => {
  const r = wrapped("{wedge,fine}.stall.ts");
  expect(r.error).toBeUndefined();
  expect(r.stderr).toMatch(/test run: vitest's worker pool is wedged: no test finished for \d+\.\d minutes, no test is running and every worker is idle \(\d+\); files held: test\/fixtures\/stall\/wedge\.stall\.ts; stopping those workers/);
  expect(r.stdout).toContain("tests: 1 passed, 1 failed\n");
  expect(r.stdout).toContain("test run: running again the 1 file(s) vitest's wedged worker pool held: test/fixtures/stall/wedge.stall.ts\n");
  expect(r.stdout.endsWith("test run: both runs together (1 file(s) ran again after vitest's worker pool wedged):\ntests: 2 passed, 0 failed\n")).toBe(true);
  expect(r.status).toBe(0);
}, 60_000);

it("does not run anything again when another test failed: the run fails", () => {
  const r = wrapped("{wedge,fails}.stall.ts");
  expect(r.stderr).toContain("test run: vitest's worker pool is wedged");
  expect(r.stdout).not.toContain("running again");
  expect(r.stdout).toMatch(/tests: 0 passed, 2 failed\n$/);
  expect(r.status).toBe(1);
}, 60_000);

it("leaves a slow hook alone: an idle worker in a beforeAll is no wedge", () => {
  const r = wrapped("hook.stall.ts");
  expect(r.stderr).not.toContain("wedged");
  expect(r.stdout).toMatch(/tests: 1 passed, 0 failed\n$/);
  expect(r.status).toBe(0);
}, 60_000);

