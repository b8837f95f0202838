#!/usr/bin/env node
/**
 * The auditor's commands on a 2,000-qube system (bench/scale-model.mjs): who-can, what-can,
 * table (every format) and diff, each as a whole `qkit` process under /usr/bin/time, with its
 * answer read from a pipe and counted. Figures: CPU time (user + system), peak RSS, bytes
 * written. Target: no crash, peak RSS under 500 MB, diff of the realistic dom0 policy against
 * its edited copy in a few seconds. A command whose answer is inherently huge (who-can on
 * every target: millions of rows with 2,000-name offer lists) is stopped after --limit
 * seconds; its figures are then those of the part streamed so far.
 *
 *     node bench/scale.mjs [--runs N] [--limit SECONDS] [--qubes N] [--no-write]
 *
 * Writes the section "## Auditor commands on a large system" of bench/RESULTS.md (unless --no-write).
 * Exit 1 when a command crashes or a target is missed.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { dom0Policy, editedNamedPolicy, editedPolicy, largeSystem, namedPolicy } from "./scale-model.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "sdk", "dist", "cli.js");
const opt = (name, dflt) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt);
const runs = opt("--runs", 3);
const limit = opt("--limit", 60);
const size = opt("--qubes", 2000);
const RSS_TARGET_KB = 500 * 1024;
const DIFF_TARGET_MS = 5000;

if (!existsSync("/usr/bin/time")) throw new Error("bench/scale.mjs needs /usr/bin/time (GNU time) for CPU time and peak RSS");

/** One run: { cpu ms, rss KB, bytes, code, stopped }. */
function measure(args, cwd) {
  return new Promise((done) => {
    const p = spawn("/usr/bin/time", ["-f", "qkit-time %U %S %M", process.execPath, CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let bytes = 0;
    let stderr = "";
    let stopped = false;
    p.stdout.on("data", (b) => (bytes += b.length));
    p.stderr.on("data", (b) => (stderr += b.toString()));
    // Stop the child (node), not time: time then reports what it used.
    const timer = setTimeout(() => {
      stopped = true;
      spawn("pkill", ["-INT", "-P", String(p.pid)]);
    }, limit * 1000);
    p.on("close", (code) => {
      clearTimeout(timer);
      const m = /qkit-time ([0-9.]+) ([0-9.]+) (\d+)/.exec(stderr);
      done({ cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN, rss: m ? Number(m[3]) : NaN, bytes, code, stopped, stderr: stderr.replace(/qkit-time.*\n?/, "").split("\n").filter(Boolean).slice(0, 2).join(" ") });
    });
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const dir = mkdtempSync(join(tmpdir(), "qkit-bench-scale-"));
const rows = [];
let ok = true;
try {
  const system = largeSystem(size);
  writeFileSync(join(dir, "system.json"), JSON.stringify(system));
  const write = (name, files) => {
    for (const [k, v] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, name, k)), { recursive: true });
      writeFileSync(join(dir, name, k), v);
    }
  };
  const d = dom0Policy();
  write("old", d);
  write("new", editedPolicy(d));
  const n = namedPolicy(system);
  write("named", n);
  write("named-new", editedNamedPolicy(n));
  const sys = ["--system", "system.json"];
  const cases = [
    ["who-can qubes.Filecopy --target vault", ["policy", "who-can", "qubes.Filecopy", "--target", "vault", "--policy-dir", "old", ...sys]],
    ["who-can qubes.Filecopy --target vault --json", ["policy", "who-can", "qubes.Filecopy", "--target", "vault", "--json", "--policy-dir", "old", ...sys]],
    ["who-can qubes.Gpg (policy naming 1,000 qubes, every target)", ["policy", "who-can", "qubes.Gpg", "--policy-dir", "named", ...sys]],
    ["who-can qubes.Gpg --all --json (every target)", ["policy", "who-can", "qubes.Gpg", "--all", "--json", "--policy-dir", "old", ...sys]],
    ["who-can qubes.Filecopy (every target)", ["policy", "who-can", "qubes.Filecopy", "--policy-dir", "old", ...sys], true],
    ["what-can work", ["policy", "what-can", "work", "--policy-dir", "old", ...sys]],
    ["what-can work --all --json", ["policy", "what-can", "work", "--all", "--json", "--policy-dir", "old", ...sys]],
    ...["text", "csv", "markdown", "html", "json"].map((f) => [`table qubes.Filecopy --format ${f}`, ["policy", "table", "qubes.Filecopy", "--format", f, "--policy-dir", "old", ...sys]]),
    ["table qubes.Filecopy --format json-cells", ["policy", "table", "qubes.Filecopy", "--format", "json-cells", "--policy-dir", "old", ...sys], true],
    ["diff OLD NEW (realistic dom0 policy)", ["policy", "diff", "old", "new", ...sys], false, true],
    ["diff OLD NEW --json", ["policy", "diff", "old", "new", "--json", ...sys], false, true],
    ["diff OLD NEW --expand --json", ["policy", "diff", "old", "new", "--expand", "--json", ...sys]],
    ["diff (policy naming 1,000 qubes)", ["policy", "diff", "named", "named-new", ...sys]],
  ];
  for (const [label, args, huge, timed] of cases) {
    const rs = [];
    for (let r = 0; r < (huge ? 1 : runs); r++) rs.push(await measure(args, dir));
    const crashed = rs.some((x) => !x.stopped && x.code !== 0 && x.code !== 1);
    const row = { label, cpu: median(rs.map((x) => x.cpu)), rss: Math.max(...rs.map((x) => x.rss)), bytes: rs[0].bytes, stopped: rs[0].stopped, crashed, runs: rs.length, err: rs.find((x) => x.stderr)?.stderr };
    const miss = crashed || row.rss > RSS_TARGET_KB || (timed && row.cpu > DIFF_TARGET_MS);
    if (miss) ok = false;
    row.mark = crashed ? "CRASH" : miss ? "FAIL" : "ok";
    rows.push(row);
    process.stdout.write(`${label}: ${(row.cpu / 1000).toFixed(2)} s CPU, ${Math.round(row.rss / 1024)} MiB peak RSS, ${row.bytes.toLocaleString("en")} bytes${row.stopped ? ` (stopped after ${limit} s)` : ""} ${row.mark}${row.err && row.mark !== "ok" ? ` (${row.err})` : ""}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

if (!process.argv.includes("--no-write")) {
  const file = join(ROOT, "bench", "RESULTS.md");
  const section = [
    "## Auditor commands on a large system",
    "",
    `Written by \`bench/scale.mjs\` (${new Date().toISOString().replace(/\.\d+Z$/, "Z")}; load average ${loadavg()[0].toFixed(2)} on ${cpus().length} cores when it ended).`,
    `A ${size.toLocaleString("en")}-qube system (\`bench/scale-model.mjs\`: templates, disposable templates, service qubes, app qubes with tags, every 50th app qube a disposable template), the realistic dom0 policy of \`bench/dom0-policy.mjs\` and its edited copy (the six edits of \`bench/diff.mjs\`), and a policy that also names 1,000 qubes one by one. Each command is a whole \`qkit\` process under /usr/bin/time, its answer read from a pipe; CPU is user + system (${runs === 1 ? "one run each: `--runs 1`" : `median of ${runs} runs; one run for the huge answers`}), RSS the peak. Targets: no crash, peak RSS under 500 MiB, the dom0 diff under ${DIFF_TARGET_MS / 1000} s of CPU. Answers that are inherently huge are stopped after ${limit} s and measured so far.`,
    "",
    "| command | CPU | peak RSS | answer | mark |",
    "|---|---|---|---|---|",
    ...rows.map((r) => `| \`${r.label}\` | ${(r.cpu / 1000).toFixed(2)} s | ${Math.round(r.rss / 1024)} MiB | ${(r.bytes / 1e6).toFixed(1)} MB${r.stopped ? ` (stopped after ${limit} s, streaming)` : ""} | ${r.mark} |`),
    "",
  ].join("\n");
  let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmark results\n";
  const start = text.indexOf("## Auditor commands on a large system");
  if (start >= 0) {
    const next = text.indexOf("\n## ", start + 1);
    // Keep the note on the figures before the change (the paragraph after the table), if any.
    const old = text.slice(start, next >= 0 ? next + 1 : undefined);
    const keep = old.indexOf("\nBefore ") >= 0 ? old.slice(old.indexOf("\nBefore ") + 1) : "";
    text = text.slice(0, start) + section + (keep ? keep : "") + (next >= 0 ? text.slice(next + 1) : "");
  } else text = text.replace(/\s*$/, "\n\n") + section;
  writeFileSync(file, text);
  process.stdout.write("wrote the large-system section of bench/RESULTS.md\n");
}
process.exitCode = ok ? 0 : 1;
