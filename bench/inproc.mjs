#!/usr/bin/env node
/**
 * In-process policy benchmark of one generated directory (see gen-policy.mjs):
 * the parse rate of `loadPolicy` over node:fs and the decision rate of
 * `evaluate`, split by outcome, with memory figures. Prints one JSON object.
 *
 *     node --expose-gc bench/inproc.mjs --dir .bench-data/r10k-s1 [--runs 5]
 *         [--requests N] [--max-seconds S]
 *
 * Run by bench/run.mjs in a child process per policy, so that the memory
 * figures of one policy size do not leak into the next. Needs the built
 * language package (`npm run build -w language`).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { mountPolicyDir } from "./node-fs.mjs";

const { loadPolicy, evaluate, prepareSystemInfo } = await import("@qubes-kit/language");

function parseArgs(argv) {
  const o = { dir: undefined, runs: 5, requests: 0, maxSeconds: 60 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--dir") o.dir = argv[++i];
    else if (a === "--runs") o.runs = Number(argv[++i]);
    else if (a === "--requests") o.requests = Number(argv[++i]);
    else if (a === "--max-seconds") o.maxSeconds = Number(argv[++i]);
    else throw new Error(`inproc: unknown option ${a}`);
  }
  if (!o.dir) throw new Error("inproc: --dir is required");
  return o;
}

const gc = globalThis.gc ?? (() => {});
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
let rssMax = 0;
const sampleRss = () => {
  const rss = process.memoryUsage.rss();
  if (rss > rssMax) rssMax = rss;
};

const opts = parseArgs(process.argv.slice(2));
const system = prepareSystemInfo(JSON.parse(readFileSync(join(opts.dir, "system.json"), "utf8")));
let requests = readFileSync(join(opts.dir, "requests.jsonl"), "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "")
  .map((l) => JSON.parse(l));
if (opts.requests > 0) requests = requests.slice(0, opts.requests);
const fs = mountPolicyDir(join(opts.dir, "policy.d"));

// Parse: a warm-up load, then `runs` timed loads; only the last policy is kept.
const heapBefore = heap();
sampleRss();
let result = loadPolicy(fs);
if (!result.ok) {
  process.stdout.write(JSON.stringify({ ok: false, error: result.error }) + "\n");
  process.exit(1);
}
const parseTimes = [];
for (let i = 0; i < opts.runs; i++) {
  // Each timed load starts from a collected heap, like the engine's single fresh load.
  result = undefined;
  gc();
  const t0 = performance.now();
  result = loadPolicy(fs);
  parseTimes.push((performance.now() - t0) / 1000);
  sampleRss();
}
const policy = result.policy;
const rules = policy.rules.length;
const heapPolicy = heap() - heapBefore;
sampleRss();

// Decide: a warm-up over the first requests, then every request once, timed one by one.
const classify = (d) => (d.ok ? d.action : d.error === "EngineError" ? "engine-error" : "error");
for (const req of requests.slice(0, Math.min(2000, requests.length))) evaluate(policy, req, system);
const counts = { allow: 0, deny: 0, ask: 0, error: 0, "engine-error": 0 };
const times = { allow: 0, deny: 0, ask: 0, error: 0, "engine-error": 0 };
const deadline = performance.now() + opts.maxSeconds * 1000;
let done = 0;
const tStart = performance.now();
for (const req of requests) {
  const t0 = performance.now();
  const d = evaluate(policy, req, system);
  const dt = performance.now() - t0;
  const kind = classify(d);
  counts[kind]++;
  times[kind] += dt;
  done++;
  if ((done & 4095) === 0) {
    sampleRss();
    if (performance.now() > deadline) break;
  }
}
const evalSeconds = (performance.now() - tStart) / 1000;
sampleRss();

const sorted = [...parseTimes].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)];
const byOutcome = {};
for (const k of Object.keys(counts)) {
  if (counts[k] === 0) continue;
  byOutcome[k] = { count: counts[k], perSecond: Math.round(counts[k] / (times[k] / 1000)), meanMicros: +((times[k] * 1000) / counts[k]).toFixed(2) };
}
process.stdout.write(
  JSON.stringify({
    ok: true,
    dir: opts.dir,
    rules,
    files: new Set(policy.files.map((f) => f.path)).size,
    parse: { runs: parseTimes.length, seconds: parseTimes, medianSeconds: median, bestSeconds: sorted[0], rulesPerSecond: Math.round(rules / median), bestRulesPerSecond: Math.round(rules / sorted[0]) },
    decide: { requests: done, of: requests.length, seconds: evalSeconds, perSecond: Math.round(done / evalSeconds), byOutcome },
    memory: { rssMaxBytes: rssMax, policyHeapBytes: heapPolicy, gcExposed: globalThis.gc !== undefined },
  }) + "\n",
);
