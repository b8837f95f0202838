#!/usr/bin/env node
/**
 * Cold start: `qkit` as a whole process on the generated 100,001-rule policy
 * (issue 9), beside the real engine measured on the same files.
 *
 *   node bench/cold.mjs [--runs N] [--requests N] [--oracle-requests N] [--no-write]
 *
 * Measures, each as its own process, in --runs turns (default 3; each turn
 * runs every command once, the real engine's beside ours, so that a spell of
 * contention on a shared machine falls on both sides of a ratio alike), its
 * CPU time (user + system, from /usr/bin/time when it exists, else wall
 * time) and its peak RSS; figures are medians over the turns, and each ratio
 * the median of the turns' ratios:
 *   1. `qkit policy eval` of ONE request (the first line of requests.jsonl);
 *   2. `qkit policy check DIR`;
 *   3. `qkit policy eval --requests` over an empty file, the first fifth of
 *      the lines and --requests lines (default 100,000), in turn, each run's
 *      answers written to a file and counted: the stream's rate is the lines
 *      over the median extra CPU time (output included), and shown beside it
 *      over the median extra wall time; the steady rate is the last four
 *      fifths over the extra CPU time of all the lines against the first
 *      fifth; and the whole process's rate;
 *   4. the real engine (with QREXEC_SRC and the shared tools: SHARED_DIR or
 *      ../shared): `qrexec-oracle.py bench` with one request (its load, as a
 *      process) and with --oracle-requests requests (default 1,000): its
 *      decisions per second as its own evaluation loop times them (the load
 *      left out), median of --runs runs; the extra requests over the extra
 *      CPU time of the process is shown beside it.
 * Policies: the shared `gen-policy.py` (as the issue measured; when python3
 * and the shared tools exist) and `bench/gen-policy.mjs`, 100,000 rules,
 * seed 2, cached under .bench-data/. Targets: eval of one request and
 * check at least 10x the real engine's load, the stream at least 1,000x its
 * decisions per second, peak RSS under 200 MiB. The section
 * "## Cold start" of bench/RESULTS.md is replaced (unless --no-write).
 * Times on a shared machine vary; CPU time varies less than wall time, but
 * contention inflates it too (the load average is recorded).
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { generate, writeGenerated } from "./gen-policy.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "sdk", "dist", "cli.js");
const DATA = join(ROOT, ".bench-data");
/** The shared tools: SHARED_DIR, else a `shared` directory beside the checkout (or beside its parent, for worktrees). */
const SHARED = process.env.SHARED_DIR ?? [resolve(ROOT, "..", "shared"), resolve(ROOT, "..", "..", "shared")].find((d) => existsSync(join(d, "tools"))) ?? resolve(ROOT, "..", "shared");
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : null;
const MIB = 1024 * 1024;

function options(argv) {
  const o = { runs: 3, requests: 100_000, oracleRequests: 1000, write: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error(`cold: ${a} needs a positive whole number`);
      return v;
    };
    if (a === "--runs") o.runs = num();
    else if (a === "--requests") o.requests = num();
    else if (a === "--oracle-requests") o.oracleRequests = num();
    else if (a === "--no-write") o.write = false;
    else throw new Error(`cold: unknown option ${a}`);
  }
  return o;
}

/** Runs a command once: CPU seconds (or wall), wall seconds, peak RSS in bytes (or null), and its stdout. */
function measure(cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = TIME
    ? spawnSync(TIME, ["-f", "\n@@cold %U %S %M", cmd, ...args], { encoding: "utf8", maxBuffer: 1 << 30, ...opts })
    : spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 30, ...opts });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.error) throw r.error;
  const m = TIME ? /@@cold ([\d.]+) ([\d.]+) (\d+)\s*$/.exec(r.stderr) : null;
  if (TIME && !m) throw new Error(`cold: ${cmd} ${args.join(" ")} failed: ${r.stderr.split("\n").slice(-5).join(" | ")}`);
  return { cpu: m ? Number(m[1]) + Number(m[2]) : wall, wall, rss: m ? Number(m[3]) * 1024 : null, stdout: r.stdout, status: r.status };
}

/** The run with the median CPU time of `runs` runs (after one warm-up run for the file cache). */
function median(runs, f) {
  f();
  const all = Array.from({ length: runs }, f).sort((a, b) => a.cpu - b.cpu);
  return all[Math.floor(all.length / 2)];
}

function ensurePolicies(o) {
  const out = [];
  const py = join(SHARED, "tools", "gen-policy.py");
  if (existsSync(py) && spawnSync("python3", ["--version"]).status === 0) {
    const dir = join(DATA, "cold-py-100k");
    if (!existsSync(join(dir, "requests.jsonl"))) {
      const r = spawnSync("python3", [py, "--rules", "100000", "--seed", "2", "--out", dir], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`cold: gen-policy.py failed: ${r.stderr}`);
    }
    out.push({ name: "gen-policy.py", dir });
  }
  const dir = join(DATA, "cold-mjs-100k");
  if (!existsSync(join(dir, "requests.jsonl"))) {
    mkdirSync(dir, { recursive: true });
    writeGenerated(dir, generate({ rules: 100_000, seed: 2, requests: Math.max(o.requests, 100_000) }));
  }
  out.push({ name: "gen-policy.mjs", dir });
  return out;
}

/** The first `n` request lines of a policy's requests.jsonl, in a file of their own. */
function requestFile(dir, n) {
  const file = join(dir, `requests-${n}.jsonl`);
  if (!existsSync(file)) {
    const lines = readFileSync(join(dir, "requests.jsonl"), "utf8").split("\n").filter((l) => l.trim());
    writeFileSync(file, lines.slice(0, n).join("\n") + (n ? "\n" : ""));
  }
  return file;
}

const mid = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * One policy's figures: ours and the real engine's, measured in turns (each
 * turn runs every command once, the real engine's beside ours), so that a
 * spell of contention on this shared machine falls on both sides of a
 * ratio alike; each ratio is the median of the turns' ratios.
 */
function measurePolicy(p, o) {
  const pol = join(p.dir, "policy.d");
  const sys = join(p.dir, "system.json");
  const first = JSON.parse(readFileSync(join(p.dir, "requests.jsonl"), "utf8").split("\n", 1)[0]);
  const service = first.service + (first.argument && first.argument !== "+" ? first.argument : "");
  const node = process.execPath;
  const one = () => measure(node, [CLI, "policy", "eval", "--policy-dir", pol, "--system", sys, service, first.source, first.target ?? ""]);
  // `--engine-only` validates as the engine's load does (the real engine's counterpart); plain
  // `check` adds the editor's analysis (shadowing, unknown names), which the engine never does.
  const check = () => measure(node, [CLI, "policy", "check", "--engine-only", pol]);
  const file = requestFile(p.dir, o.requests);
  const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).length;
  // The first fifth of the same lines: the steady rate is the rest over the extra CPU time (the
  // first requests of each service and source also build the scan's tables, a one-time cost).
  const partLines = Math.floor(lines / 5);
  const partFile = requestFile(p.dir, partLines);
  const emptyFile = requestFile(p.dir, 0);
  // Each stream's answers go to a file (as a stream's usually go to a file or a pipe; read back
  // through a pipe by this process, its own decoding would be timed with them), checked every run.
  const outFile = join(DATA, "stream-out.jsonl");
  let outBytes = 0;
  const stream = (requests, want) => {
    const fd = openSync(outFile, "w");
    let r;
    try {
      r = measure(node, [CLI, "policy", "eval", "--policy-dir", pol, "--system", sys, "--requests", requests], { stdio: ["ignore", fd, "pipe"] });
    } finally {
      closeSync(fd);
    }
    const out = readFileSync(outFile, "utf8");
    const answered = out.split("\n").filter(Boolean).length;
    if (r.status !== 0 || answered !== want) throw new Error(`cold: the stream of ${want} lines answered ${answered} and exited ${r.status}`);
    if (want === lines) outBytes = Buffer.byteLength(out);
    return r;
  };
  const oracle = join(SHARED, "tools", "qrexec-oracle.py");
  const haveEngine = Boolean(process.env.QREXEC_SRC) && existsSync(oracle);
  const engine = (n) => measure("python3", [oracle, "bench", "--dir", p.dir, "--requests", String(n), "--max-seconds", "30"]);
  // One run of each first, for the file cache.
  one();
  check();
  stream(file, lines);
  if (haveEngine) engine(1);
  const turns = [];
  for (let i = 0; i < o.runs; i++) {
    const t = {};
    if (haveEngine) t.eLoad = engine(1);
    t.one = one();
    t.check = check();
    if (haveEngine) {
      t.eMany = engine(o.oracleRequests);
      t.eReport = JSON.parse(t.eMany.stdout.trim().split("\n").pop());
    }
    // Empty file, first fifth and all lines one after the other: the stream's rates come from each turn's differences.
    t.empty = stream(emptyFile, 0);
    t.part = stream(partFile, partLines);
    t.all = stream(file, lines);
    turns.push(t);
  }
  rmSync(outFile, { force: true });
  const checkFull = median(Math.min(o.runs, 2), () => measure(node, [CLI, "policy", "check", pol]));
  return { turns, haveEngine, checkFull, lines, partLines, outBytes };
}

const fmt = (x, d = 3) => x.toFixed(d);
const rate = (x) => Math.round(x).toLocaleString("en");
const mib = (b) => (b === null ? "n/a" : `${Math.round(b / MIB)} MiB`);

function main() {
  const o = options(process.argv.slice(2));
  if (!existsSync(CLI)) throw new Error(`cold: ${CLI} is missing; run \`npm run build\` first`);
  const load0 = loadavg()[0];
  const rows = [];
  const notes = [];
  let failed = false;
  for (const p of ensurePolicies(o)) {
    process.stdout.write(`cold: ${p.name} (${p.dir})\n`);
    const q = measurePolicy(p, o);
    const T = q.turns;
    const e = q.haveEngine;
    // A difference of under 0.05 s is no measure (the stream costs far more): no rate, no mark.
    const per = (n, d) => (d >= 0.05 ? n / d : null);
    const midOrNull = (xs) => (xs.some((x) => x === null) ? null : mid(xs));
    // Per turn: our figure, the real engine's, and their ratio; the table shows the medians of each.
    const streamCpu = T.map((t) => per(q.lines, t.all.cpu - t.empty.cpu));
    // The same lines over the extra wall time, shown beside it: the real engine's loop is timed by
    // `time.perf_counter`, a wall clock, but runs on one thread, where the stream's V8 also compiles
    // and collects on threads of its own, beside it on another core; the mark stays on CPU time.
    const streamWall = T.map((t) => per(q.lines, t.all.wall - t.empty.wall));
    const steady = T.map((t) => per(q.lines - q.partLines, t.all.cpu - t.part.cpu));
    const eRates = e ? T.map((t) => t.eReport.requests_per_second) : null;
    const eLoads = e ? T.map((t) => t.eLoad.cpu) : null;
    const ratios = (xs, refs, inverse) => (e && !xs.some((x) => x === null) ? mid(xs.map((x, i) => (inverse ? refs[i] / x : x / refs[i]))) : null);
    const oneCpu = T.map((t) => t.one.cpu);
    const checkCpu = T.map((t) => t.check.cpu);
    const all = { cpu: mid(T.map((t) => t.all.cpu)), wall: mid(T.map((t) => t.all.wall)), rss: T.some((t) => t.all.rss === null) ? null : mid(T.map((t) => t.all.rss)) };
    const empty = { cpu: mid(T.map((t) => t.empty.cpu)), wall: mid(T.map((t) => t.empty.wall)) };
    const wholeRate = q.lines / all.cpu;
    const mark = (ok) => {
      if (!ok) failed = true;
      return ok ? "PASS" : "MISSED";
    };
    const x = (r) => (r === null ? "n/a" : `${fmt(r, 1)}×`);
    const xr = (r) => (r === null ? "n/a" : `${rate(r)}×`);
    const rateCell = (r) => (r === null ? "no measure" : `${rate(r)} /s`);
    const eLoad = e ? mid(eLoads) : null;
    const eRate = e ? mid(eRates) : null;
    const oneRatio = ratios(oneCpu, eLoads, true);
    const checkRatio = ratios(checkCpu, eLoads, true);
    rows.push([p.name, "`qkit policy eval` of one request (process)", `${fmt(mid(oneCpu))} s`, e ? `${fmt(eLoad)} s (load)` : "n/a", "≥ 10×", x(oneRatio), e ? mark(oneRatio >= 10) : "", mib(mid(T.map((t) => t.one.rss ?? 0)) || null)]);
    rows.push([p.name, "`qkit policy check --engine-only DIR` (process)", `${fmt(mid(checkCpu))} s`, e ? `${fmt(eLoad)} s (load)` : "n/a", "≥ 10×", x(checkRatio), e ? mark(checkRatio >= 10) : "", mib(mid(T.map((t) => t.check.rss ?? 0)) || null)]);
    // Our own bar (a review of issue 9): under 1.5 s of CPU and 300 MiB, whatever the real engine's load.
    const checkOk = q.checkFull.cpu < 1.5 && (q.checkFull.rss === null || q.checkFull.rss < 300 * MIB);
    rows.push([p.name, "`qkit policy check DIR` with the editor's analysis (process)", `${fmt(q.checkFull.cpu)} s`, e ? `${fmt(eLoad)} s (load)` : "n/a", "< 1.5 s, < 300 MiB", e ? x(eLoad / q.checkFull.cpu) : "n/a", mark(checkOk), mib(q.checkFull.rss)]);
    const streamRatio = ratios(streamCpu, eRates, false);
    rows.push([p.name, `\`--requests\` stream, ${q.lines.toLocaleString("en")} lines (after the load, output included; CPU time of all its threads)`, rateCell(midOrNull(streamCpu)), e ? `${rate(eRate)} /s` : "n/a", "≥ 1,000×", xr(streamRatio), e ? mark(streamRatio !== null && streamRatio >= 1000) : "", mib(all.rss)]);
    rows.push([p.name, "`--requests` stream, the same lines in wall time", rateCell(midOrNull(streamWall)), e ? `${rate(eRate)} /s` : "n/a", "", xr(ratios(streamWall, eRates, false)), "", ""]);
    rows.push([p.name, `\`--requests\` stream, steady rate (lines ${(q.partLines + 1).toLocaleString("en")}–${q.lines.toLocaleString("en")}, after the first fifth)`, rateCell(midOrNull(steady)), e ? `${rate(eRate)} /s` : "n/a", "", xr(ratios(steady, eRates, false)), "", ""]);
    rows.push([p.name, "`--requests` whole process (load included)", `${rate(wholeRate)} /s`, "", "", e ? `${rate(wholeRate / eRate)}×` : "", "", ""]);
    rows.push([p.name, "peak RSS of the stream", mib(all.rss), e ? mib(mid(T.map((t) => t.eMany.rss ?? 0)) || null) : "n/a", "< 200 MiB", "", all.rss === null ? "" : mark(all.rss < 200 * MIB), ""]);
    const turnText = T.map((t, i) => `${rate(streamCpu[i] ?? 0)}/${e ? rate(eRates[i]) : "?"}`).join(", ");
    notes.push(
      `${p.name}: the load alone (\`--requests\` of an empty file) takes ${fmt(empty.cpu)} s of CPU and ${fmt(empty.wall)} s of wall time; with the ${q.lines.toLocaleString("en")} lines, ${fmt(all.cpu)} s and ${fmt(all.wall)} s (medians); the stream wrote ${Math.round(q.outBytes / MIB)} MiB. The stream's rate and the real engine's, turn by turn: ${turnText} /s.` +
        (e
          ? ` Real engine: ${T[0].eReport.rules.toLocaleString("en")} rules; ${fmt(eLoad)} s for the process that loads it and decides one request (${eLoads.map((v) => fmt(v, 2)).join(", ")}); ${T[0].eReport.requests.toLocaleString("en")} requests decided at ${[...eRates].sort((a, b) => a - b).map((r) => rate(r)).join(", ")} /s as its loop times them; as extra requests over extra CPU time of the process, ${rate((T[0].eReport.requests - 1) / Math.max(1e-9, mid(T.map((t) => t.eMany.cpu)) - eLoad))} /s (${fmt(mid(T.map((t) => t.eMany.cpu)))} s with ${T[0].eReport.requests} requests).`
          : " Real engine not run (set QREXEC_SRC)."),
    );
  }
  const header = ["policy", "measure (CPU time: user + system, unless it says wall time)", "qubes-kit", "real engine", "target", "ratio", "mark", "peak RSS"];
  const table = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
  const load1 = loadavg()[0];
  process.stdout.write(`\n${table}\n\n${notes.join("\n")}\n`);
  if (o.write) {
    const file = join(ROOT, "bench", "RESULTS.md");
    const section = [
      "## Cold start",
      "",
      `Written by \`bench/cold.mjs\` (${new Date().toISOString().replace(/\.\d+Z$/, "Z")}; load average ${load0.toFixed(2)} when it started and ${load1.toFixed(2)} when it ended, on ${cpus().length} cores).`,
      `Each figure is the median over ${o.runs} turns of a whole process, as CPU time (user + system${TIME ? ", from /usr/bin/time" : "; no /usr/bin/time here, so wall time"}); the real engine is \`qrexec-oracle.py bench\` (qubes-core-qrexec, CPython) on the same files, measured on this machine in the same turns, beside ours (each turn runs every command once), and each ratio is the median of the turns' ratios (so it need not equal the ratio of the two medians shown).`,
      "The stream's rate counts the lines beyond the load: (lines) / (CPU time of the stream − CPU time of the same command on an empty file), the median of that difference over runs made in turn (empty file, first fifth, all lines), each run's answers written to a file and counted. The real engine's rate is its decisions per second as its own evaluation loop times them (`qrexec-oracle.py bench` with 1,000 requests, the load left out, median of the runs), which varies much less than the difference of two whole-process times of several seconds each (that figure is in the notes). The target is marked on those rates. The same lines over the extra wall time are shown under it, not marked: the real engine's loop is timed by `time.perf_counter`, a wall clock, but runs on one thread, where the stream's process also compiles and collects on V8's threads of its own, on another core here; on one core its wall time would be at least its CPU time. The steady rate is the CPU-time measure between the first fifth of the lines and all of them: the first requests of each service and source also build the stream's tables, a one-time cost the steady rate leaves out (shown for information, not marked).",

      "",
      table,
      "",
      ...notes.map((n) => `* ${n}`),
      "",
    ].join("\n");
    let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmark results\n";
    const start = text.indexOf("## Cold start");
    if (start >= 0) {
      const next = text.indexOf("\n## ", start + 1);
      // Notes written by hand after the figures (a paragraph starting "Analysis:") are kept.
      const old = text.slice(start, next >= 0 ? next + 1 : undefined);
      const at = old.indexOf("\nAnalysis:");
      const keep = at >= 0 ? `\n${old.slice(at + 1).replace(/\s*$/, "\n")}` : "";
      text = text.slice(0, start) + section + keep + (next >= 0 ? text.slice(next + 1) : "");
    } else text = text.replace(/\s*$/, "\n\n") + section;
    writeFileSync(file, text);
    process.stdout.write("wrote the cold start section of bench/RESULTS.md\n");
  }
  process.exitCode = failed ? 1 : 0;
}

main();
