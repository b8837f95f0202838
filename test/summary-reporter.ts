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
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Reporter, TestCase, TestModule, TestSpecification } from "vitest/node";

const minutes = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? String(fallback));
  return Number.isFinite(v) && v >= 0 ? v : fallback;
};
const stallMinutes = minutes("QKIT_TEST_STALL_MINUTES", 10);
/**
 * A run in which no test finished for this long, every worker idle in its
 * event loop and no test or hook running (tests and hooks time out), is a
 * wedge of vitest's worker pool, not a test: the idle workers are stopped so
 * the run goes on, and the files they held are run again by scripts/test.mjs.
 */
const wedgeMinutes = minutes("QKIT_TEST_WEDGE_MINUTES", 3);
/** How long a wedge must stay as it is between the two looks that act on it (see `unwedge`). */
const WEDGE_CONFIRM_MS = 1_500;
const MAX_WEDGES = 3;

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

/** What a worker was doing when asked (see {@link workerStates}). */
interface WorkerState {
  pid: number;
  /** `true`: idle in its event loop (no JavaScript running); `false`: running JavaScript; `undefined`: no report came. */
  idle: boolean | undefined;
  lines: string[];
}

/**
 * Where each vitest worker is: asks every worker for a diagnostic report
 * (SIGUSR2, with `--report-on-signal` from vitest.config.ts) and returns the
 * top of its JavaScript stack and its active handles. A worker blocked inside
 * a synchronous child process, or busy in synchronous JavaScript, cannot
 * answer; the process tree shows its state and children.
 */
function workerStates(): WorkerState[] {
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
  const out = new Map<number, WorkerState>();
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && out.size < workers.length) {
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
        const frames = (r.javascriptStack?.stack ?? []).filter((l) => !/node:internal|\(native\)/.test(l)).slice(0, 12);
        const handles = new Map<string, number>();
        for (const h of r.libuv ?? []) if (h.is_active && h.type) handles.set(h.type, (handles.get(h.type) ?? 0) + 1);
        const where = frames.length ? "running JavaScript" : "idle in its event loop, waiting";
        out.set(pid, {
          pid,
          idle: frames.length === 0,
          lines: [`worker ${pid}: ${where}; active handles: ${[...handles].map(([t, n]) => `${t}×${n}`).join(", ") || "none"}`, ...frames.map((l) => `    ${l.trim()}`)],
        });
      } catch {
        // A report still being written, or unreadable: the tree still says something.
      }
    }
  }
  for (const w of workers)
    if (!out.has(w))
      out.set(w, { pid: w, idle: undefined, lines: [`worker ${w}: no report within 5 s: busy in synchronous JavaScript, or blocked in a synchronous call such as spawnSync (see its state and children above)`] });
  return [...out.values()];
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
  private readonly runningTests = new Set<string>();
  private readonly started: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Workers stopped as wedged, and the files running when they were. */
  private wedges = 0;
  private readonly wedgedFiles = new Set<string>();
  /** The stall period in which a wedge was already acted on (once per period). */
  private wedgeLookedAt = -1;
  /**
   * A wedge seen once, waiting for a second look: a worker that has just gone idle in a
   * `beforeAll` may have its hook's start still on its way (a loaded machine delays it).
   */
  private wedgeSeen: { at: number; progress: number } | undefined;

  /** Every file the run was asked to run (relative paths). */
  private specified: string[] = [];

  onTestRunStart(specifications: ReadonlyArray<TestSpecification>): void {
    const cwd = process.cwd() + "/";
    this.specified = specifications.map((s) => (s.moduleId.startsWith(cwd) ? s.moduleId.slice(cwd.length) : s.moduleId));
    this.lastProgress = Date.now();
    if (stallMinutes === 0 || this.timer) return;
    const soonest = wedgeMinutes > 0 ? Math.min(stallMinutes, wedgeMinutes) : stallMinutes;
    this.timer = setInterval(() => this.checkStall(), Math.min(15_000, Math.max(250, soonest * 15_000)));
    this.timer.unref();
  }

  onTestModuleQueued(m: TestModule): void {
    this.runningModules.set(m.id, m.moduleId);
  }

  onTestModuleStart(m: TestModule): void {
    this.runningModules.set(m.id, m.moduleId);
    // A file that starts is progress: a wedge is measured from here, not from the end of the last
    // file (a worker that forks and imports slowly on a loaded machine is not a wedged pool).
    this.lastProgress = Date.now();
  }

  onTestModuleCollected(): void {
    this.lastProgress = Date.now();
  }

  onTestModuleEnd(m: TestModule): void {
    this.runningModules.delete(m.id);
    this.lastProgress = Date.now();
  }

  onTestCaseReady(t: TestCase): void {
    this.runningTests.add(t.id);
    this.started.push(`${t.module.moduleId} > ${t.fullName}`);
    if (this.started.length > 5) this.started.shift();
  }

  onTestCaseResult(t: TestCase): void {
    this.runningTests.delete(t.id);
    this.lastProgress = Date.now();
  }

  /** Hooks running (a `beforeAll` may legitimately wait minutes for a browser or a build: never a wedge). */
  private runningHooks = 0;

  onHookStart(): void {
    this.runningHooks++;
  }

  onHookEnd(): void {
    this.runningHooks = Math.max(0, this.runningHooks - 1);
  }

  /** A wedged pool (see {@link wedgeMinutes}): stops the idle workers and says so; `true` when it did. */
  private unwedge(idle: number): boolean {
    if (wedgeMinutes === 0 || idle < wedgeMinutes * 60_000 || this.wedges >= MAX_WEDGES || this.runningTests.size > 0 || this.runningHooks > 0 || this.wedgeLookedAt === this.lastProgress) {
      this.wedgeSeen = undefined;
      return false;
    }
    const states = workerStates();
    if (!states.length || !states.every((w) => w.idle === true)) {
      this.wedgeSeen = undefined;
      return false;
    }
    // Acted on only when a second look, a while later, sees the same: nothing reported in between.
    const now = Date.now();
    if (this.wedgeSeen?.progress !== this.lastProgress) {
      this.wedgeSeen = { at: now, progress: this.lastProgress };
      return false;
    }
    if (now - this.wedgeSeen.at < WEDGE_CONFIRM_MS) return false;
    this.wedgeSeen = undefined;
    this.wedgeLookedAt = this.lastProgress;
    const cwd = process.cwd() + "/";
    const files = [...this.runningModules.values()].map((p) => (p.startsWith(cwd) ? p.slice(cwd.length) : p));
    process.stderr.write(
      `\ntest run: vitest's worker pool is wedged: no test finished for ${(idle / 60_000).toFixed(1)} minutes, no test is running and every worker is idle (${states.map((w) => w.pid).join(", ")}); files held: ${files.join(", ") || "(none reported)"}; stopping those workers so the run goes on; the files they held fail here and are run again at the end (QKIT_TEST_WEDGE_MINUTES sets the limit, 0 turns it off)\n`,
    );
    for (const f of files) this.wedgedFiles.add(f);
    for (const w of states) {
      killTree(w.pid);
      try {
        process.kill(w.pid, "SIGKILL");
      } catch {
        // Gone meanwhile.
      }
    }
    this.wedges++;
    this.lastProgress = Date.now();
    return true;
  }

  private checkStall(): void {
    const idle = Date.now() - this.lastProgress;
    if (this.unwedge(idle)) return;
    if (idle < stallMinutes * 60_000) return;
    const cwd = process.cwd() + "/";
    const rel = (p: string) => (p.startsWith(cwd) ? p.slice(cwd.length) : p);
    const files = [...this.runningModules.values()].map(rel);
    process.stderr.write(
      `\ntest run stalled: no test finished for ${(idle / 60_000).toFixed(1)} minutes; still running: ${files.length ? files.join(", ") : "(no file reported)"}; last tests started: ${this.started.map(rel).join(" | ") || "(none reported)"}; stopping (QKIT_TEST_STALL_MINUTES sets the limit, 0 turns it off)\n`,
    );
    const tree: string[] = [];
    describeTree(process.pid, 1, tree);
    const stacks = workerStates().flatMap((w) => w.lines);
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
    // Files a wedged worker held (see unwedge): a file with no failed test that failed as a whole.
    const rerun: string[] = [];
    let otherFailed = 0;
    const cwd = process.cwd() + "/";
    for (const m of testModules) {
      const tests = [...m.children.allTests()];
      let failedHere = 0;
      for (const t of tests) {
        const state = t.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") (failed++, failedHere++);
        else skipped++;
      }
      const rel = m.moduleId.startsWith(cwd) ? m.moduleId.slice(cwd.length) : m.moduleId;
      const wholeFileFailed = m.state() === "failed" && failedHere === 0;
      // A file that failed to load counts as a failure even with no test in it.
      if (m.state() === "failed" && tests.length === 0) failed++;
      // A held file may never have reported an end: its state is then still queued or pending.
      const held = this.wedgedFiles.has(rel) ? failedHere === 0 && m.state() !== "passed" && m.state() !== "skipped" : this.wedgedFiles.size === 0 && wholeFileFailed;
      if (this.wedges > 0 && held) {
        rerun.push(rel);
        // Counted as a failure of this run (a file that failed to load is counted above already).
        if (!(m.state() === "failed" && tests.length === 0)) failed++;
      }
      else if (m.state() === "failed") otherFailed += Math.max(1, failedHere);
    }
    // A wedged worker may have held a file that never reported anything: it is not among the modules at all.
    if (this.wedges > 0) {
      const seen = new Set(testModules.map((m) => (m.moduleId.startsWith(cwd) ? m.moduleId.slice(cwd.length) : m.moduleId)));
      for (const f of this.specified) if (!seen.has(f)) (rerun.push(f), failed++);
    }
    const out = process.env.QKIT_TEST_RESULT_FILE;
    if (out) writeFileSync(out, JSON.stringify({ passed, failed, skipped, wedges: this.wedges, rerun, otherFailed }));
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
  }
}
