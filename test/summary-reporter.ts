/**
 * A vitest reporter that ends the run with one plain line,
 * `tests: N passed, N failed` (with `, N skipped` when any were), which CI
 * reads as the run's result whatever the runner.
 *
 * It also ends a stalled run: when no test has finished for
 * `QKIT_TEST_STALL_MINUTES` minutes (default 10; 0 turns it off), it names the
 * test files still running and the last tests that started, stops the
 * workers and exits 1. A worker stuck in synchronous code is out of reach of
 * vitest's test timeout, and a CI run would otherwise spend its whole budget
 * without saying where.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Reporter, TestCase, TestModule } from "vitest/node";

const stallMinutes = (() => {
  const v = Number(process.env.QKIT_TEST_STALL_MINUTES ?? "10");
  return Number.isFinite(v) && v >= 0 ? v : 10;
})();

/** The processes whose parent is `pid` (Linux `/proc`; none elsewhere). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so read after the last `)`.
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

function killTree(pid: number): void {
  for (const c of childrenOf(pid)) {
    killTree(c);
    try {
      process.kill(c, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
}

export default class SummaryReporter implements Reporter {
  private lastProgress = Date.now();
  private readonly runningModules = new Map<string, string>();
  private readonly started: string[] = [];
  private timer: NodeJS.Timeout | undefined;

  onTestRunStart(): void {
    this.lastProgress = Date.now();
    if (stallMinutes === 0 || this.timer) return;
    this.timer = setInterval(() => this.checkStall(), Math.min(15_000, Math.max(250, stallMinutes * 15_000)));
    this.timer.unref();
  }

  onTestModuleStart(m: TestModule): void {
    this.runningModules.set(m.id, m.moduleId);
  }

  onTestModuleEnd(m: TestModule): void {
    this.runningModules.delete(m.id);
    this.lastProgress = Date.now();
  }

  onTestCaseReady(t: TestCase): void {
    this.started.push(`${t.module.moduleId} > ${t.fullName}`);
    if (this.started.length > 5) this.started.shift();
  }

  onTestCaseResult(): void {
    this.lastProgress = Date.now();
  }

  private checkStall(): void {
    const idle = Date.now() - this.lastProgress;
    if (idle < stallMinutes * 60_000) return;
    const cwd = process.cwd() + "/";
    const rel = (p: string) => (p.startsWith(cwd) ? p.slice(cwd.length) : p);
    const files = [...this.runningModules.values()].map(rel);
    process.stderr.write(
      `\ntest run stalled: no test finished for ${(idle / 60_000).toFixed(1)} minutes; still running: ${files.length ? files.join(", ") : "(no file reported)"}; last tests started: ${this.started.map(rel).join(" | ") || "(none reported)"}; stopping (QKIT_TEST_STALL_MINUTES sets the limit, 0 turns it off)\n`,
    );
    process.stdout.write(`\ntests: stalled, 1 failed\n`);
    killTree(process.pid);
    process.exit(1);
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    if (this.timer) clearInterval(this.timer);
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
      // A file that failed to load counts as a failure even with no test in it.
      if (m.state() === "failed" && [...m.children.allTests()].length === 0) failed++;
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
  }
}
