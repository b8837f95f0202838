/**
 * The test run's stall watchdog (test/summary-reporter.ts): a test stuck in
 * synchronous code, or waiting for something that never comes, ends the run
 * with exit 1, the file named, where the worker is, and no worker left behind.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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
