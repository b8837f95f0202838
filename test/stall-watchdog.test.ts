/**
 * The test run's stall watchdog (test/summary-reporter.ts): a test stuck in
 * synchronous code ends the run with exit 1, the file named, and no worker
 * left behind.
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

it("names the stuck file, stops its worker and fails the run", () => {
  const before = new Set(orphanWorkers());
  const r = spawnSync(process.execPath, [root + "node_modules/vitest/vitest.mjs", "run", "--config", "test/fixtures/stall/vitest.stall.config.ts"], {
    cwd: root,
    env: { ...process.env, QKIT_TEST_STALL_MINUTES: "0.05", FORCE_COLOR: "0", NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 50_000,
  });
  expect(r.error).toBeUndefined();
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/test run stalled: no test finished for \d+\.\d minutes; still running: .*spin\.stall\.ts/);
  expect(r.stdout).toContain("tests: stalled, 1 failed");
  // No worker of that run is left spinning (an orphaned worker has init as its parent).
  const left = orphanWorkers().filter((p) => !before.has(p));
  expect(left).toEqual([]);
}, 60_000);
