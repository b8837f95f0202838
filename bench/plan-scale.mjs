#!/usr/bin/env node
/**
 * `qkit template plan` of large, rich stacks (`node bench/plan-scale.mjs` after `npm run build`).
 *
 *     node bench/plan-scale.mjs [--qubes 300,1000,2000] [--no-write]
 *
 * For each size, the stack of `bench/template.mjs` (`generateStack`: templates,
 * disposable templates, a netvm chain, app qubes with features, services,
 * tags, firewall rules, devices and volumes, a bundle used 50 times, a policy
 * block of one `ask` rule per app qube, expectations), its first template
 * cloned from `debian-12`, is planned against the simulator (`qkit sim
 * serve`, its own process, on a Unix socket) holding dom0 and debian-12:
 * every qube is created. A plan is the whole pipeline: the check, the reads,
 * the steps and their order, the effect of each policy write, the what-if
 * diff of every decision, the expectations, and the rehearsal of every step
 * on a simulated copy. Each plan is one `qkit` process under /usr/bin/time
 * (CPU = user + system; peak RSS). Targets: no crash, peak RSS under 1 GiB;
 * the time is recorded, not marked (a plan of thousands of qubes that each a
 * rule names is quadratic in its decision diff).
 * Replaces the section "## Template plans at scale" of bench/RESULTS.md.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { generateStack } from "./template.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "sdk", "dist", "cli.js");
const RSS_TARGET_KB = 1024 * 1024;
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : null;

function sizes() {
  const i = process.argv.indexOf("--qubes");
  const v = i < 0 ? "300,1000,2000" : process.argv[i + 1];
  const out = String(v)
    .split(",")
    .map((x) => Number(x));
  if (!out.length || out.some((n) => !Number.isInteger(n) || n < 20)) throw new Error("plan-scale: --qubes takes sizes of 20 or more, comma-separated");
  return out;
}

/** dom0 and debian-12, as GetSystemInfo says them. */
function system() {
  const uuid = (i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
  const base = { internal: null, tags: [], template_for_dispvms: false, default_dispvm: null, icon: "appvm-red", label: "0xcc0000", guivm: "dom0", relayvm: null, transport_rpc: null };
  return { domains: { dom0: { ...base, type: "AdminVM", guivm: null, power_state: "Running", uuid: uuid(0) }, "debian-12": { ...base, type: "TemplateVM", power_state: "Halted", uuid: uuid(1) } } };
}

async function waitFor(path, child) {
  for (let i = 0; i < 200; i++) {
    if (existsSync(path)) return;
    if (child.exitCode !== null) throw new Error(`the simulator exited (${child.exitCode})`);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("the simulator did not start");
}

const rows = [];
let ok = true;
for (const n of sizes()) {
  const dir = mkdtempSync(join(tmpdir(), "qkit-plan-scale-"));
  const sock = join(dir, "sock");
  writeFileSync(join(dir, "system.json"), JSON.stringify(system()));
  const { main, bundle } = generateStack(n);
  writeFileSync(join(dir, "stack.qubes.yaml"), main.replace("source: { clone: tpl-1 }", "source: { clone: debian-12 }"));
  writeFileSync(join(dir, "vault.qubes.yaml"), bundle);
  const sim = spawn(process.execPath, [CLI, "sim", "serve", "--socket", sock, "--system", join(dir, "system.json")], { stdio: "ignore" });
  try {
    await waitFor(sock, sim);
    const args = [CLI, "template", "plan", join(dir, "stack.qubes.yaml"), "--socket", sock];
    const started = process.hrtime.bigint();
    const r = TIME
      ? spawnSync(TIME, ["-f", "%U %S %M", process.execPath, ...args], { encoding: "utf8", maxBuffer: 256 << 20 })
      : spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 256 << 20 });
    const wall = Number(process.hrtime.bigint() - started) / 1e6;
    const lines = r.stderr.trim().split("\n");
    const [u, s, m] = TIME ? lines.at(-1).split(" ").map(Number) : [wall / 1000, 0, 0];
    const summary = (r.stdout.match(/^Plan: .*$/m) ?? ["(no plan)"])[0];
    const decisions = (r.stdout.match(/^Policy: (\d+) decisions change/m) ?? [])[1];
    const rehearsal = (r.stdout.match(/^Rehearsal on a simulated copy of the system: (\d+) steps ok/m) ?? [])[1];
    const good = r.status === 0 && rehearsal !== undefined;
    const row = { n, cpu: (u + s) * 1000, wall, rss: m, steps: rehearsal, decisions, summary, mark: !good ? "FAIL" : m > RSS_TARGET_KB ? "FAIL" : "ok", err: good ? "" : lines.filter((l) => !/^\d/.test(l)).slice(-2).join(" ") };
    if (row.mark !== "ok") ok = false;
    rows.push(row);
    process.stdout.write(`${n} qubes: ${(row.cpu / 1000).toFixed(2)} s CPU, ${(wall / 1000).toFixed(2)} s wall, ${Math.round(m / 1024)} MiB; ${summary} ${row.mark}${row.err ? ` (${row.err})` : ""}\n`);
  } finally {
    sim.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!process.argv.includes("--no-write")) {
  const file = join(ROOT, "bench", "RESULTS.md");
  const title = "## Template plans at scale";
  const section = [
    title,
    "",
    `Written by \`bench/plan-scale.mjs\` (${new Date().toISOString().replace(/\.\d+Z$/, "Z")}; load average ${loadavg()[0].toFixed(2)} on ${cpus().length} cores when it ended).`,
    "The stack of `bench/template.mjs` at each size (templates, disposable templates, a netvm chain, app qubes with features, services, tags, firewall rules, devices and volumes, a bundle used 50 times, one `ask` rule per app qube naming it, expectations), planned against the simulator holding dom0 and debian-12 (every qube created): the check, the reads, the steps and their order, each policy write's effect, the what-if diff of every decision, the expectations and the rehearsal of every step. One `qkit template plan` process each; CPU is user + system, RSS the peak. Target: no failure, peak RSS under 1 GiB (times recorded).",
    "",
    "| qubes | CPU | wall | peak RSS | steps rehearsed | decisions that change | mark |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.n.toLocaleString("en")} | ${(r.cpu / 1000).toFixed(2)} s | ${(r.wall / 1000).toFixed(2)} s | ${Math.round(r.rss / 1024)} MiB | ${r.steps ? Number(r.steps).toLocaleString("en") : "-"} | ${r.decisions ? Number(r.decisions).toLocaleString("en") : "-"} | ${r.mark} |`),
    "",
  ].join("\n");
  let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmark results\n";
  const start = text.indexOf(title);
  if (start >= 0) {
    const next = text.indexOf("\n## ", start + 1);
    const old = text.slice(start, next >= 0 ? next + 1 : undefined);
    // Keep the notes after the table (the figures before a change), if any.
    const keep = old.indexOf("\nBefore ") >= 0 ? old.slice(old.indexOf("\nBefore ") + 1) : "";
    text = text.slice(0, start) + section + (keep ? `\n${keep}` : "") + (next >= 0 ? text.slice(next + 1) : "");
  } else text = text.replace(/\s*$/, "\n\n") + section;
  writeFileSync(file, text);
  process.stdout.write("wrote the template-plan section of bench/RESULTS.md\n");
}
process.exitCode = ok ? 0 : 1;
