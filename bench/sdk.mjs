#!/usr/bin/env node
/**
 * Benchmark of the Admin API client (`node bench/sdk.mjs` after `npm run build`).
 *
 *     node bench/sdk.mjs [--qubes N] [--calls N] [--concurrency N] [--json]
 *
 * Starts the qubes-kit simulator (`qkit sim serve`, a separate process) on a
 * Unix socket with N qubes (default 1,000) and measures, through the real
 * socket transport (one connection per call, as qubesd works):
 *   1. admin.vm.List: calls per second and latency percentiles;
 *   2. a property read (admin.vm.property.Get memory) of 200 qubes, one after
 *      the other and with bounded concurrency;
 *   3. the memory the event cache (QubesCache: list + GetAll + tags of every
 *      qube) retains at N qubes, and how long its load takes.
 * The simulator stands in for qubesd (which is far slower: Python, one
 * request at a time), so the figures are the client's own ceiling. The
 * client and the simulator share the machine's cores with anything else.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// The memory figure needs a full GC: re-run with --expose-gc when it is missing.
if (typeof globalThis.gc !== "function" && !process.env.QKIT_BENCH_CHILD) {
  const r = spawnSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, QKIT_BENCH_CHILD: "1" },
  });
  process.exit(r.status ?? 1);
}

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i < 0 ? def : Number(process.argv[i + 1]);
}
const N_QUBES = arg("--qubes", 1000);
const N_CALLS = arg("--calls", 500);
const CONCURRENCY = arg("--concurrency", 8);
const JSON_OUT = process.argv.includes("--json");

const sdk = await import(pathToFileURL(join(ROOT, "sdk", "dist", "index.js")).href);
const { Qubes, UnixSocketTransport, mapLimit } = sdk;

/** Starts `qkit sim serve` in its own process and waits for its socket. */
async function serve(dir, sys) {
  const socket = join(dir, "qubesd.sock");
  const systemFile = join(dir, "system.json");
  writeFileSync(systemFile, JSON.stringify(sys));
  const child = spawn(process.execPath, [join(ROOT, "sdk", "dist", "cli.js"), "sim", "serve", "--socket", socket, "--system", systemFile], { stdio: ["ignore", "ignore", "inherit"] });
  const started = performance.now();
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`qkit sim serve exited with ${child.exitCode}`);
    if (performance.now() - started > 30_000) throw new Error("qkit sim serve did not start within 30 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    socket,
    close: () =>
      new Promise((resolve) => {
        child.once("exit", resolve);
        child.kill("SIGTERM");
      }),
  };
}

/** A GetSystemInfo-shaped system with dom0, a template and `n - 2` app qubes. */
function system(n) {
  const uuid = (i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
  const base = { internal: null, tags: [], template_for_dispvms: false, default_dispvm: null, icon: "appvm-red", label: "0xcc0000", guivm: "dom0", relayvm: null, transport_rpc: null };
  const domains = {
    dom0: { ...base, type: "AdminVM", guivm: null, power_state: "Running", uuid: uuid(0) },
    "fedora-41": { ...base, type: "TemplateVM", power_state: "Halted", uuid: uuid(1) },
  };
  for (let i = 2; i < n; i++) {
    domains[`q${i}`] = { ...base, type: "AppVM", tags: i % 3 === 0 ? ["managed"] : [], power_state: i % 5 === 0 ? "Running" : "Halted", uuid: uuid(i) };
  }
  return { domains };
}

function percentiles(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const p = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50: p(0.5), p95: p(0.95), p99: p(0.99), max: s[s.length - 1] };
}

const fmt = (x, d = 2) => x.toFixed(d);

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "qkit-bench-sdk-"));
  const server = await serve(dir, system(N_QUBES));
  const qubes = new Qubes({ transport: new UnixSocketTransport({ path: server.socket }) });
  const results = { qubes: N_QUBES };
  try {
    // Warm up the code paths (JIT) before measuring.
    for (let i = 0; i < 20; i++) await qubes.qube("q2").getProperty("memory");

    // 1. admin.vm.List of N qubes.
    const lat = [];
    const calls = Math.max(10, Math.round(N_CALLS / Math.max(1, N_QUBES / 200)));
    let t0 = performance.now();
    for (let i = 0; i < calls; i++) {
      const s = performance.now();
      const list = await qubes.list();
      lat.push(performance.now() - s);
      if (list.length !== N_QUBES) throw new Error(`admin.vm.List returned ${list.length} qubes`);
    }
    let secs = (performance.now() - t0) / 1000;
    results.vmList = { calls, callsPerSecond: calls / secs, latencyMs: percentiles(lat) };

    // 1b. A small call (property Get), sequential, for the per-call overhead.
    const lat2 = [];
    t0 = performance.now();
    for (let i = 0; i < N_CALLS; i++) {
      const s = performance.now();
      await qubes.qube(`q${2 + (i % (N_QUBES - 2))}`).getProperty("memory");
      lat2.push(performance.now() - s);
    }
    secs = (performance.now() - t0) / 1000;
    results.propertyGet = { calls: N_CALLS, callsPerSecond: N_CALLS / secs, latencyMs: percentiles(lat2) };

    // 2. Property reads of 200 qubes: sequential, then bounded concurrency.
    const names = Array.from({ length: Math.min(200, N_QUBES - 2) }, (_, i) => `q${i + 2}`);
    t0 = performance.now();
    for (const n of names) await qubes.qube(n).get("memory");
    const seqMs = performance.now() - t0;
    t0 = performance.now();
    await mapLimit(names, CONCURRENCY, (n) => qubes.qube(n).get("memory"));
    const parMs = performance.now() - t0;
    results.read200 = {
      qubes: names.length,
      sequentialMs: seqMs,
      sequentialCallsPerSecond: names.length / (seqMs / 1000),
      concurrency: CONCURRENCY,
      concurrentMs: parMs,
      concurrentCallsPerSecond: names.length / (parMs / 1000),
    };

    // 3. The event cache at N qubes: retained heap after a full load.
    globalThis.gc();
    const before = process.memoryUsage().heapUsed;
    const cache = qubes.cache({ concurrency: CONCURRENCY });
    t0 = performance.now();
    await cache.load();
    const loadMs = performance.now() - t0;
    globalThis.gc();
    const after = process.memoryUsage().heapUsed;
    let props = 0;
    for (const q of cache.qubes.values()) props += q.properties.size;
    results.cache = {
      qubes: cache.qubes.size,
      properties: props,
      loadMs,
      loadCalls: 1 + 2 * cache.qubes.size,
      retainedBytes: after - before,
      bytesPerQube: (after - before) / cache.qubes.size,
    };
    // Keep the cache alive until after the measurement.
    if (cache.qubes.size !== N_QUBES) throw new Error("cache did not load every qube");
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }

  if (JSON_OUT) {
    process.stdout.write(JSON.stringify(results, null, 2) + "\n");
    return;
  }
  const r = results;
  const l = (x) => `p50 ${fmt(x.p50)} ms, p95 ${fmt(x.p95)} ms, p99 ${fmt(x.p99)} ms`;
  process.stdout.write(
    [
      `sdk client over a unix socket (qkit sim serve with ${r.qubes} qubes, own process)`,
      `  admin.vm.List (${r.qubes} qubes):  ${fmt(r.vmList.callsPerSecond, 0)} calls/s  (${l(r.vmList.latencyMs)})`,
      `  admin.vm.property.Get:           ${fmt(r.propertyGet.callsPerSecond, 0)} calls/s  (${l(r.propertyGet.latencyMs)})`,
      `  read memory of ${r.read200.qubes} qubes:       sequential ${fmt(r.read200.sequentialMs, 0)} ms (${fmt(r.read200.sequentialCallsPerSecond, 0)}/s), ` +
        `concurrency ${r.read200.concurrency} ${fmt(r.read200.concurrentMs, 0)} ms (${fmt(r.read200.concurrentCallsPerSecond, 0)}/s)`,
      `  event cache of ${r.cache.qubes} qubes:     load ${fmt(r.cache.loadMs, 0)} ms (${r.cache.loadCalls} calls), ` +
        `retained heap ${fmt(r.cache.retainedBytes / 1048576, 1)} MiB (${fmt(r.cache.bytesPerQube / 1024, 1)} KiB/qube, ${r.cache.properties} properties)`,
      "",
    ].join("\n"),
  );
}

await main();
