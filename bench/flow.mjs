#!/usr/bin/env node
/**
 * `qkit flow` on a 300-qube machine, as whole processes, in CPU time:
 *
 * - the realistic dom0 policy of `bench/dom0-policy.mjs` (shared with `bench/diff.mjs`) (the distribution's defaults
 *   for about 60 services, GUI and admin rules, a user file naming 40 qubes);
 * - an all-pairs policy: every one of those services `@anyvm @anyvm ask`,
 *   so that every qube reaches every other one (paths explode);
 * - the generated 100,001-rule policy of `bench/gen-policy.mjs` (seed 2, the
 *   one `bench/cold.mjs` uses; its own 300-qube system): target under ten
 *   seconds of CPU (its own load takes most of a second).
 *
 * The system is the 300-qube one of `bench/diff.mjs`, wired as a real machine
 * is: app qubes behind sys-firewall (some behind sys-vpn or sys-whonix),
 * firewalls of the kinds users write, USB devices from sys-usb. For each
 * policy: `qkit flow A B --format json` and `qkit flow --from A --format json`.
 * Target: under one second of CPU (user + system) per command on the
 * realistic and all-pairs policies.
 *
 *     node bench/flow.mjs [--runs N] [--keep DIR] [--no-100k]
 *
 * `--keep DIR` writes the inputs there and leaves them. Exit 1 when a target is missed.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { ADMIN, SERVICES, realisticPolicy } from "./dom0-policy.mjs";
import { generate, writeGenerated } from "./gen-policy.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "sdk", "dist", "cli.js");
const DATA = join(ROOT, ".bench-data");

const argv = process.argv.slice(2);
const opt = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const runs = Number(opt("--runs") ?? 3);
const keep = opt("--keep");
const with100k = !argv.includes("--no-100k");

// The system is that of bench/diff.mjs (kept in step by hand), plus wiring; the policy is shared (dom0-policy.mjs).

/** A deterministic 300-qube system: templates, disposable templates, service qubes, app qubes with a few tags; netvm, firewall and devices. */
function makeSystem() {
  const domains = {};
  let n = 0;
  const uuid = () => `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
  const q = (name, o) =>
    (domains[name] = { internal: null, tags: [], type: "AppVM", template_for_dispvms: false, default_dispvm: "default-dvm", icon: "appvm-red", label: "0xcc0000", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: uuid(), netvm: "sys-firewall", ...o });
  q("dom0", { type: "AdminVM", default_dispvm: "default-dvm", power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000", guivm: null, netvm: null });
  for (const t of ["fedora-41", "fedora-41-xfce", "fedora-41-minimal", "debian-12", "debian-12-minimal", "whonix-gateway-17", "whonix-workstation-17", "fedora-41-dvm-tpl", "debian-12-sys", "archlinux"])
    q(t, { type: "TemplateVM", tags: t.startsWith("whonix") ? ["whonix-updatevm"] : [], netvm: null });
  for (const d of ["default-dvm", "work-dvm", "personal-dvm", "whonix-workstation-17-dvm", "offline-dvm"])
    q(d, { template_for_dispvms: true, tags: d === "work-dvm" ? ["work"] : [], netvm: d === "offline-dvm" ? null : d.startsWith("whonix") ? "sys-whonix" : "sys-firewall" });
  q("default-mgmt-dvm", { template_for_dispvms: true, internal: "1", netvm: null });
  for (const s of ["sys-net", "sys-firewall", "sys-usb", "sys-whonix", "sys-audio", "sys-gui", "sys-vpn", "sys-print", "sys-gpg", "sys-pdf"]) q(s, { power_state: "Running", tags: s === "sys-whonix" ? ["anon-gateway"] : [] });
  Object.assign(domains["sys-net"], { netvm: null, provides_network: true, devices: [{ devclass: "pci", backend: "dom0", port: "00_14.3", device_id: "8086:a0f0", mode: "required" }] });
  Object.assign(domains["sys-firewall"], { netvm: "sys-net", provides_network: true });
  Object.assign(domains["sys-vpn"], { netvm: "sys-firewall", provides_network: true, firewall: ["action=accept dsthost=198.51.100.7 proto=udp dstports=1194-1194", "action=accept specialtarget=dns", "action=drop"] });
  Object.assign(domains["sys-whonix"], { netvm: "sys-firewall", provides_network: true });
  Object.assign(domains["sys-usb"], { type: "DispVM", netvm: null, devices: [{ devclass: "pci", backend: "dom0", port: "00_14.0", device_id: "8086:a0ed", mode: "required" }] });
  for (const s of ["sys-audio", "sys-gui", "sys-gpg", "sys-pdf"]) domains[s].netvm = null;
  const tagSets = [["work"], ["work", "gpg-client"], ["personal"], ["personal", "gpg-client"], ["untrusted"], ["dev"], ["dev", "work"], ["banking"], []];
  const firewalls = [undefined, ["action=accept proto=tcp dstports=443-443", "action=accept specialtarget=dns", "action=drop"], ["action=drop"], ["action=accept dsthost=192.0.2.0/24", "action=drop"]];
  let i = 0;
  while (Object.keys(domains).length < 300) {
    const tags = tagSets[i % tagSets.length];
    const fw = firewalls[i % firewalls.length];
    q(`app-${String(i).padStart(3, "0")}`, {
      tags,
      default_dispvm: tags.includes("work") ? "work-dvm" : "default-dvm",
      power_state: i % 3 ? "Halted" : "Running",
      netvm: i % 11 === 0 ? "sys-vpn" : i % 13 === 0 ? "sys-whonix" : i % 17 === 0 ? null : "sys-firewall",
      ...(fw ? { firewall: fw } : {}),
      ...(i % 25 === 0 ? { devices: [{ devclass: "usb", backend: "sys-usb", port: "2-1", device_id: "0781:5581", mode: "attached" }] } : {}),
    });
    i++;
  }
  q("vault", { tags: ["gpg-server"], default_dispvm: null, power_state: "Running", netvm: null });
  q("work", { tags: ["work", "gpg-client"], default_dispvm: "work-dvm", power_state: "Running", firewall: ["action=accept dsthost=10.0.0.0/8", "action=accept proto=tcp dstports=443-443", "action=accept specialtarget=dns", "action=drop"] });
  q("personal", { tags: ["personal"], power_state: "Running", devices: [{ devclass: "usb", backend: "sys-usb", port: "2-1", device_id: "0781:5581", mode: "auto-attach" }] });
  q("untrusted", { tags: ["untrusted"], power_state: "Running" });
  q("mgmt", { tags: ["admin-client"], netvm: null });
  return { domains };
}

/** Every service of the realistic policy asked between any two qubes (and to any disposable). */
function allPairsPolicy() {
  const lines = [];
  for (const s of [...SERVICES, ...ADMIN]) lines.push(`${s}  *  @anyvm  @anyvm  ask`, `${s}  *  @anyvm  @dispvm  ask`);
  lines.push("*  *  @anyvm  @anyvm  deny");
  return { "50-all-pairs.policy": lines.join("\n") + "\n" };
}

function writePolicy(dir, files) {
  for (const [k, v] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, k)), { recursive: true });
    writeFileSync(join(dir, k), v);
  }
}

/** The 100,001-rule policy of bench/cold.mjs (generated once into .bench-data/). */
function policy100k() {
  const dir = join(DATA, "cold-mjs-100k");
  if (!existsSync(join(dir, "requests.jsonl"))) {
    mkdirSync(dir, { recursive: true });
    writeGenerated(dir, generate({ rules: 100_000, seed: 2, requests: 100_000 }));
  }
  return dir;
}

const time = existsSync("/usr/bin/time") ? "/usr/bin/time" : null;

/** Runs `qkit ARGS` `runs` times; the median CPU (user + system) and wall time, and the last output. */
function measure(cwd, args) {
  const cpu = [];
  const wall = [];
  let last;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const full = [CLI, ...args];
    last = time ? spawnSync(time, ["-f", "qkit-cpu %U %S %M", process.execPath, ...full], { cwd, encoding: "utf8", maxBuffer: 1 << 28 }) : spawnSync(process.execPath, full, { cwd, encoding: "utf8", maxBuffer: 1 << 28 });
    wall.push(performance.now() - t0);
    const m = /qkit-cpu ([0-9.]+) ([0-9.]+) ([0-9]+)/.exec(last.stderr ?? "");
    if (m) cpu.push({ ms: (Number(m[1]) + Number(m[2])) * 1000, rss: Number(m[3]) / 1024 });
    if (last.status !== 0 && last.status !== 1) throw new Error(`qkit ${args.join(" ")} exited ${last.status}: ${last.stderr}`);
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { cpu: cpu.length ? med(cpu.map((c) => c.ms)) : undefined, rss: cpu.length ? Math.max(...cpu.map((c) => c.rss)) : undefined, wall: med(wall), out: last.stdout };
}

const dir = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), "qkit-bench-flow-"));
const rows = [];
let failed = false;
const loadStart = loadavg()[0];
try {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "system.json"), JSON.stringify(makeSystem(), null, 1));
  writePolicy(join(dir, "realistic.d"), realisticPolicy());
  writePolicy(join(dir, "all-pairs.d"), allPairsPolicy());
  const cases = [
    { name: "realistic dom0", cwd: dir, policy: "realistic.d", system: "system.json", pair: ["personal", "vault"], from: "personal", target: 1000 },
    { name: "all-pairs ask", cwd: dir, policy: "all-pairs.d", system: "system.json", pair: ["app-003", "vault"], from: "app-003", target: 1000 },
  ];
  if (with100k) {
    const big = policy100k();
    const names = Object.keys(JSON.parse(readFileSync(join(big, "system.json"), "utf8")).domains).filter((x) => x !== "dom0" && !x.startsWith("uuid:"));
    cases.push({ name: "generated 100k rules", cwd: big, policy: "policy.d", system: "system.json", pair: [names[0], names[names.length - 1]], from: names[0], target: 10_000 });
  }
  for (const c of cases) {
    const inputs = ["--policy-dir", c.policy, "--system", c.system, "--format", "json"];
    for (const [what, args] of [
      [`qkit flow ${c.pair.join(" ")}`, ["flow", ...c.pair, ...inputs]],
      [`qkit flow --from ${c.from}`, ["flow", "--from", c.from, ...inputs]],
    ]) {
      process.stdout.write(`${c.name}: ${what} …\n`);
      const m = measure(c.cwd, args);
      const j = JSON.parse(m.out);
      const answer = j.paths ? `${j.paths.length}${j.truncated ? "+" : ""} paths, shortest ${j.shortest} hops` : `${j.reachable.length} reachable`;
      const ok = c.target === undefined || m.cpu === undefined ? undefined : m.cpu < c.target;
      if (ok === false) failed = true;
      rows.push([c.name, what, answer, m.cpu !== undefined ? `${(m.cpu / 1000).toFixed(2)} s` : "n/a", `${(m.wall / 1000).toFixed(2)} s`, m.rss !== undefined ? `${m.rss.toFixed(0)} MiB` : "", c.target ? `< ${c.target / 1000} s CPU` : "(none)", ok === undefined ? "" : ok ? "PASS" : "MISSED"]);
    }
  }
} finally {
  if (!keep) rmSync(dir, { recursive: true, force: true });
}

const header = ["policy (300 qubes)", "command", "answer", "CPU (user + system)", "wall", "peak RSS", "target", "mark"];
const table = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
process.stdout.write(`\n${table}\n\nmedian of ${runs} runs per command; load average ${loadStart.toFixed(2)} when it started and ${loadavg()[0].toFixed(2)} when it ended, on ${cpus().length} cores\n`);
process.exitCode = failed ? 1 : 0;
