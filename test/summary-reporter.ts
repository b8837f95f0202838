/**
 * A vitest reporter that ends the run with one plain line,
 * `tests: N passed, N failed` (with `, N skipped` when any were), which CI
 * reads as the run's result whatever the runner.
 *
 * It also ends a stalled run: when no test has finished for
 * `QKIT_TEST_STALL_MINUTES` minutes (default 10; 0 turns it off), it names the
 * test files still running and the last tests that started, shows where
 * each worker is (its JavaScript stack, from a Node.js diagnostic report the
 * worker writes on SIGUSR2, see vitest.config.ts, and the processes below it),
 * stops the workers and exits 1. A worker stuck in synchronous code is out of
 * reach of vitest's test timeout, a worker waiting for an answer that never
 * comes is out of reach of everything, and a CI run would otherwise spend its
 * whole budget without saying where.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
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

/** `/proc/PID/stat` state and `/proc/PID/cmdline`, for the report ("" when gone). */
function describeProcess(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    let wchan = "";
    try {
      wchan = readFileSync(`/proc/${pid}/wchan`, "utf8").trim();
    } catch {
      // Not readable here.
    }
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    return `${pid} [${state}${wchan && wchan !== "0" ? ` ${wchan}` : ""}] ${cmd.length > 200 ? cmd.slice(0, 200) + "…" : cmd}`;
  } catch {
    return "";
  }
}

function describeTree(pid: number, depth: number, out: string[]): void {
  for (const c of childrenOf(pid)) {
    const d = describeProcess(c);
    if (d) out.push(`${"  ".repeat(depth)}${d}`);
    describeTree(c, depth + 1, out);
  }
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Where each vitest worker is: asks every worker for a diagnostic report
 * (SIGUSR2, with `--report-on-signal` from vitest.config.ts) and returns the
 * top of its JavaScript stack and its active handles. A worker blocked inside
 * a synchronous child process cannot answer; the process tree shows the child.
 */
function workerStacks(): string[] {
  const dir = process.env.QKIT_WORKER_REPORT_DIR;
  const workers = childrenOf(process.pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("vitest");
    } catch {
      return false;
    }
  });
  if (!dir || workers.length === 0) return [];
  // Removed by the end of an earlier run of the same process (watch mode).
  mkdirSync(dir, { recursive: true });
  const before = new Set(safeList(dir));
  for (const w of workers) {
    try {
      process.kill(w, "SIGUSR2");
    } catch {
      // Gone meanwhile.
    }
  }
  const out: string[] = [];
  const deadline = Date.now() + 5_000;
  const seen = new Set<number>();
  while (Date.now() < deadline && seen.size < workers.length) {
    sleep(250);
    for (const f of safeList(dir)) {
      if (before.has(f)) continue;
      before.add(f);
      try {
        const r = JSON.parse(readFileSync(`${dir}/${f}`, "utf8")) as {
          header?: { processId?: number };
          javascriptStack?: { message?: string; stack?: string[] };
          libuv?: { type?: string; is_active?: boolean }[];
        };
        const pid = r.header?.processId ?? 0;
        seen.add(pid);
        const frames = (r.javascriptStack?.stack ?? []).filter((l) => !/node:internal|\(native\)/.test(l)).slice(0, 12);
        const handles = new Map<string, number>();
        for (const h of r.libuv ?? []) if (h.is_active && h.type) handles.set(h.type, (handles.get(h.type) ?? 0) + 1);
        const where = frames.length ? "running JavaScript" : "idle in its event loop, waiting";
        out.push(`worker ${pid}: ${where}; active handles: ${[...handles].map(([t, n]) => `${t}×${n}`).join(", ") || "none"}`, ...frames.map((l) => `    ${l.trim()}`));
      } catch {
        // A report still being written, or unreadable: the tree below still says something.
      }
    }
  }
  for (const w of workers) if (!seen.has(w)) out.push(`worker ${w}: no report within 5 s: busy in synchronous JavaScript, or blocked in a synchronous call such as spawnSync (see its state and children above)`);
  return out;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith(".json"));
  } catch {
    return [];
  }
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

  onTestModuleQueued(m: TestModule): void {
    this.runningModules.set(m.id, m.moduleId);
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
    const tree: string[] = [];
    describeTree(process.pid, 1, tree);
    const stacks = workerStacks();
    process.stderr.write(
      `processes below the runner:\n${tree.join("\n") || "  (none)"}\n${stacks.length ? `where the workers are:\n${stacks.join("\n")}\n` : ""}`,
    );
    process.stdout.write(`\ntests: stalled, 1 failed\n`);
    killTree(process.pid);
    process.exit(1);
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    if (this.timer) clearInterval(this.timer);
    const dir = process.env.QKIT_WORKER_REPORT_DIR;
    if (dir && /qkit-vitest-reports-/.test(dir)) rmSync(dir, { recursive: true, force: true });
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
