#!/usr/bin/env node
/**
 * Benchmark of `qkit template plan` reads (`node bench/plan.mjs` after `npm run build`).
 *
 *     node bench/plan.mjs [--qubes N] [--declared N] [--concurrency N] [--runs N] [--json]
 *
 * Starts the simulator (`qkit sim serve`, its own process) on a Unix socket
 * with N qubes (default 100: dom0, two templates, network qubes, app qubes
 * with features and tags, a third of them owned by the stack) and plans a
 * stack declaring `--declared` of them (default 60: owned qubes with
 * firewall, volumes and notes, plus new ones to create) through the real
 * socket transport. Reads are the cost of a plan: it reports the plan's wall
 * time, the number of Admin API and policy calls, and the rate, next to the
 * client's ceiling measured on the same socket (a small call, sequential and
 * at the same concurrency), so "near the Admin API's limit" is a ratio.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? def : Number(process.argv[i + 1]);
};
const N_QUBES = arg("--qubes", 100);
const N_DECLARED = arg("--declared", 60);
const CONCURRENCY = arg("--concurrency", 16);
const RUNS = arg("--runs", 5);
const JSON_OUT = process.argv.includes("--json");

const sdk = await import(pathToFileURL(join(ROOT, "sdk", "dist", "index.js")).href);
const { Qubes, PolicyAdmin, UnixSocketTransport, adminPolicyTarget, planStack, mapLimit } = sdk;

/** A GetSystemInfo snapshot (with the simulator's extension keys) of `n` qubes. */
export function system(n) {
  const uuid = (i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
  const base = { internal: null, tags: [], template_for_dispvms: false, default_dispvm: null, icon: "appvm-red", label: "0xcc0000", guivm: "dom0", relayvm: null, transport_rpc: null };
  const domains = {
    dom0: { ...base, type: "AdminVM", guivm: null, power_state: "Running", uuid: uuid(0) },
    "debian-12": { ...base, type: "TemplateVM", power_state: "Halted", uuid: uuid(1) },
    "fedora-41": { ...base, type: "TemplateVM", power_state: "Halted", uuid: uuid(2) },
    "sys-net": { ...base, type: "AppVM", power_state: "Running", uuid: uuid(3), template: "debian-12", netvm: null, features: { servicevm: "1" } },
    "sys-firewall": { ...base, type: "AppVM", power_state: "Running", uuid: uuid(4), template: "debian-12", netvm: "sys-net", features: { servicevm: "1" } },
  };
  for (let i = 5; i < n; i++) {
    const owned = i % 3 === 0;
    domains[`q${i}`] = {
      ...base,
      type: "AppVM",
      template: i % 2 ? "debian-12" : "fedora-41",
      tags: i % 4 === 0 ? ["gpg-client"] : [],
      power_state: i % 5 === 0 ? "Running" : "Halted",
      uuid: uuid(i),
      features: { "appmenus-dispvm": "", "service.cups": "1", ...(owned ? { "x-qkit-stack": "bench", "x-qkit-keys": "f:service.cups fw notes p:memory t:gpg-client" } : {}) },
      properties: { memory: 400 + (i % 4) * 100 },
    };
  }
  return { domains };
}

/** The stack: owned qubes (changed a little) and new qubes, `declared` in all. */
export function stack(n, declared) {
  const qubes = [];
  for (let i = 5; i < n && qubes.length < declared; i++) {
    if (i % 3 !== 0) continue;
    qubes.push({
      name: `q${i}`,
      class: "AppVM",
      properties: { label: "red", template: i % 2 ? "debian-12" : "fedora-41", memory: 400 + ((i + 1) % 4) * 100 },
      features: { "service.cups": "1" },
      tags: i % 4 === 0 ? ["gpg-client"] : [],
      firewall: ["action=accept dsthost=10.0.0.1 proto=tcp dstports=443", "action=drop"],
      notes: `qube ${i}`,
      volumes: { private: { size: 4 * 1024 ** 3 } },
      state: "any",
      absent: false,
      protect: false,
      ignore_changes: [],
    });
  }
  for (let i = 0; qubes.length < declared; i++)
    qubes.push({ name: `new${i}`, class: "AppVM", properties: { label: "blue", template: "debian-12", netvm: "sys-firewall" }, features: {}, tags: ["t"], state: "any", absent: false, protect: false, ignore_changes: [] });
  return {
    format: 1,
    stack: "bench",
    global: {},
    labels: {},
    qubes,
    policy: [{ file: "main", priority: 40, rules: "qubes.Gpg * @tag:gpg-client vault allow\n" }],
    expect: [],
    options: { prune: false, restart: "never", policy_priority: 40, adopt: false },
  };
}

/** A transport that counts calls. */
function counting(t) {
  const c = { calls: 0, services: 0 };
  return {
    counts: c,
    transport: {
      description: t.description,
      call(req, o) {
        c.calls++;
        return t.call(req, o);
      },
      runService(req, o) {
        c.services++;
        return t.runService(req, o);
      },
    },
  };
}

async function serve(dir, sys) {
  const socket = join(dir, "qubesd.sock");
  const systemFile = join(dir, "system.json");
  writeFileSync(systemFile, JSON.stringify(sys));
  mkdirSync(join(dir, "policy.d"));
  writeFileSync(join(dir, "policy.d", "30-user.policy"), "qubes.Filecopy * @anyvm @default ask\n");
  const child = spawn(process.execPath, [join(ROOT, "sdk", "dist", "cli.js"), "sim", "serve", "--socket", socket, "--system", systemFile, "--policy-dir", join(dir, "policy.d")], { stdio: ["ignore", "ignore", "inherit"] });
  const started = performance.now();
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`qkit sim serve exited with ${child.exitCode}`);
    if (performance.now() - started > 30_000) throw new Error("qkit sim serve did not start within 30 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  return { socket, close: () => new Promise((r) => (child.once("exit", r), child.kill("SIGTERM"))) };
}

const fmt = (x, d = 0) => x.toFixed(d);

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "qkit-bench-plan-"));
  const server = await serve(dir, system(N_QUBES));
  const results = { qubes: N_QUBES, declared: N_DECLARED, concurrency: CONCURRENCY };
  try {
    const base = new UnixSocketTransport({ path: server.socket, servicesOverSocket: true });
    const model = stack(N_QUBES, N_DECLARED);
    const { counts, transport } = counting(base);
    const conn = { qubes: new Qubes({ transport }), policy: adminPolicyTarget(new PolicyAdmin(transport)) };
    // Warm-up (JIT), then the measured runs.
    const warm = await planStack(model, conn, { concurrency: CONCURRENCY });
    if (warm.plan.errors.length) throw new Error(`plan errors: ${JSON.stringify(warm.plan.errors.slice(0, 3))}`);
    const times = [];
    let calls = 0;
    for (let i = 0; i < RUNS; i++) {
      counts.calls = 0;
      counts.services = 0;
      const t0 = performance.now();
      await planStack(model, conn, { concurrency: CONCURRENCY });
      times.push(performance.now() - t0);
      calls = counts.calls + counts.services;
    }
    times.sort((a, b) => a - b);
    const planMs = times[Math.floor(times.length / 2)];
    results.plan = { ms: planMs, minMs: times[0], calls, callsPerSecond: calls / (planMs / 1000), steps: warm.plan.steps.length };
    // The ceiling: the same number of small calls, sequential and concurrent.
    const qubes = new Qubes({ transport: base });
    const names = Array.from({ length: calls }, (_, i) => `q${5 + (i % (N_QUBES - 5))}`);
    let t0 = performance.now();
    for (const n of names.slice(0, Math.min(500, calls))) await qubes.qube(n).getProperty("memory");
    const seqRate = Math.min(500, calls) / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    await mapLimit(names, CONCURRENCY, (n) => qubes.qube(n).getProperty("memory"));
    const parRate = calls / ((performance.now() - t0) / 1000);
    results.ceiling = { sequentialCallsPerSecond: seqRate, concurrentCallsPerSecond: parRate };
    results.ratio = results.plan.callsPerSecond / parRate;
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify(results, null, 2) + "\n");
    return;
  }
  const r = results;
  process.stdout.write(
    [
      `template plan over a unix socket (qkit sim serve with ${r.qubes} qubes, ${r.declared} declared, concurrency ${r.concurrency})`,
      `  plan:     ${fmt(r.plan.ms)} ms median (min ${fmt(r.plan.minMs)} ms), ${r.plan.calls} calls, ${fmt(r.plan.callsPerSecond)} calls/s, ${r.plan.steps} steps`,
      `  ceiling:  property.Get ${fmt(r.ceiling.sequentialCallsPerSecond)} calls/s sequential, ${fmt(r.ceiling.concurrentCallsPerSecond)} calls/s at concurrency ${r.concurrency}`,
      `  the plan reads at ${fmt(r.ratio * 100)}% of the concurrent ceiling`,
      "",
    ].join("\n"),
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
