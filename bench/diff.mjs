#!/usr/bin/env node
/**
 * `qkit policy diff` on a realistic dom0: a policy.d in the layout of a Qubes
 * 4.2 dom0 (the distribution's defaults for about 60 services, the GUI and
 * admin rules, and a user file naming 40 qubes) against an edited copy (six
 * edits of the kinds users make), on a 300-qube system. Target: under one
 * second, both in process (`diffPolicies`) and as a whole `qkit` process.
 *
 *     node bench/diff.mjs [--runs N] [--no-write]
 *
 * Writes the section "## Exact diff" of bench/RESULTS.md (unless --no-write).
 * Exit 1 when a target is missed.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { realisticPolicy } from "./dom0-policy.mjs";
import { machineBase } from "./scale-model.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "sdk", "dist", "cli.js");
const { changeItems, createMemoryFileSystem, diffPolicies, groupChanges, loadPolicy, prepareSystemInfo } = await import(pathToFileURL(join(ROOT, "language", "dist", "index.js")).href);

const runs = process.argv.includes("--runs") ? Number(process.argv[process.argv.indexOf("--runs") + 1]) : 5;

/** A deterministic 300-qube system: templates, disposable templates, service qubes, app qubes with a few tags. */
function makeSystem() {
  const { domains, q } = machineBase();
  const tagSets = [["work"], ["work", "gpg-client"], ["personal"], ["personal", "gpg-client"], ["untrusted"], ["dev"], ["dev", "work"], ["banking"], []];
  let i = 0;
  while (Object.keys(domains).length < 300) {
    const tags = tagSets[i % tagSets.length];
    q(`app-${String(i).padStart(3, "0")}`, { tags, default_dispvm: tags.includes("work") ? "work-dvm" : "default-dvm", power_state: i % 3 ? "Halted" : "Running" });
    i++;
  }
  q("vault", { tags: ["gpg-server"], default_dispvm: null, power_state: "Running" });
  q("work", { tags: ["work", "gpg-client"], default_dispvm: "work-dvm", power_state: "Running" });
  q("personal", { tags: ["personal"], power_state: "Running" });
  q("untrusted", { tags: ["untrusted"], power_state: "Running" });
  q("mgmt", { tags: ["admin-client"] });
  return { domains };
}


function edit(f) {
  const e = { ...f };
  e["30-user.policy"] = e["30-user.policy"]
    .replace("qubes.Filecopy  *  app-014  vault  deny notify=no", "qubes.Filecopy  *  app-014  vault  allow")
    .replace("qubes.Filecopy  *  @tag:untrusted  @tag:work  deny\n", "")
    .replace("qubes.Gpg  *  @tag:gpg-client  @tag:gpg-server  allow", "qubes.Gpg  *  @tag:gpg-client  @tag:gpg-server  ask default_target=vault")
    .concat("qubes.ConnectTCP  +22  @tag:dev  sys-net  allow\n");
  e["50-config-distribution.policy"] = e["50-config-distribution.policy"].replace("qubes.PdfConvert  *  @anyvm  @anyvm  ask", "qubes.PdfConvert  *  @anyvm  sys-pdf  allow\nqubes.PdfConvert  *  @anyvm  @anyvm  ask");
  e["include/admin-local-rwx"] = e["include/admin-local-rwx"].replace("admin.vm.Start  *  @tag:admin-client  @tag:managed  allow target=dom0", "admin.vm.Start  *  @tag:admin-client  @anyvm  allow target=dom0");
  return e;
}

function load(files) {
  const fs = {};
  for (const [k, v] of Object.entries(files)) fs["/etc/qubes/policy.d/" + k] = v;
  const r = loadPolicy(createMemoryFileSystem(fs));
  if (!r.ok) throw new Error(`bench policy does not load: ${r.error.message}`);
  return r.policy;
}

const raw = makeSystem();
const oldFiles = realisticPolicy();
const newFiles = edit(oldFiles);
const rules = loadPolicy(createMemoryFileSystem(Object.fromEntries(Object.entries(oldFiles).map(([k, v]) => ["/etc/qubes/policy.d/" + k, v])))).policy.rules.length;

// In process: load both policies and the system, then diff (every run from scratch: no cache survives).
const times = [];
const cpus = [];
let last;
for (let r = 0; r < runs; r++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const system = prepareSystemInfo(structuredClone(raw));
  last = diffPolicies(load(oldFiles), load(newFiles), system);
  groupChanges(changeItems(last), last.space);
  times.push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  cpus.push((c.user + c.system) / 1000);
}
times.sort((a, b) => a - b);
cpus.sort((a, b) => a - b);
const inproc = times[Math.floor(times.length / 2)];
const inprocCpu = cpus[Math.floor(cpus.length / 2)];
const loadAvg = (await import("node:os")).loadavg()[0];

// As a process: `qkit policy diff OLD NEW --system FILE --json`.
const dir = mkdtempSync(join(tmpdir(), "qkit-bench-diff-"));
let proc;
let procCpu;
try {
  for (const [name, files] of [["old", oldFiles], ["new", newFiles]]) {
    for (const [k, v] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, name, k)), { recursive: true });
      writeFileSync(join(dir, name, k), v);
    }
  }
  writeFileSync(join(dir, "system.json"), JSON.stringify(raw));
  const ptimes = [];
  const pcpus = [];
  // /usr/bin/time (when present) gives the child's CPU time, which a busy machine does not inflate much.
  const time = existsSync("/usr/bin/time") ? "/usr/bin/time" : null;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const argv = [CLI, "policy", "diff", "--json", "old", "new", "--system", "system.json"];
    const p = time ? spawnSync(time, ["-f", "qkit-cpu %U %S", process.execPath, ...argv], { cwd: dir, encoding: "utf8", maxBuffer: 1 << 28 }) : spawnSync(process.execPath, argv, { cwd: dir, encoding: "utf8", maxBuffer: 1 << 28 });
    ptimes.push(performance.now() - t0);
    const m = /qkit-cpu ([0-9.]+) ([0-9.]+)/.exec(p.stderr ?? "");
    if (m) pcpus.push((Number(m[1]) + Number(m[2])) * 1000);
    if (p.status !== 1) throw new Error(`qkit policy diff exited ${p.status}: ${p.stderr}`);
  }
  ptimes.sort((a, b) => a - b);
  pcpus.sort((a, b) => a - b);
  proc = ptimes[Math.floor(ptimes.length / 2)];
  procCpu = pcpus.length ? pcpus[Math.floor(pcpus.length / 2)] : undefined;
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// On a machine shared with other jobs (load above the number of cores) wall time measures the
// others; the in-process CPU time is the figure judged then.
const busy = loadAvg > (await import("node:os")).cpus().length;
const procJudged = busy ? procCpu : proc;
const ok = (busy ? inprocCpu : inproc) < 1000 && (procJudged === undefined || procJudged < 1000);
const space = last.space.services.reduce((n, s) => n + s.arguments.length, 0) * last.space.qubes.length * last.space.targets.length;
process.stdout.write(
  `policy diff, ${rules}-rule dom0 policy vs an edited copy (6 edits), ${last.space.qubes.length} qubes (${last.classes.length} classes):\n` +
    `  request space ${space.toLocaleString("en")} requests; ${last.evaluated.toLocaleString("en")} representatives decided; ${last.requests.toLocaleString("en")} requests change\n` +
    `  in process (load both + diff + group), median of ${runs}: ${inproc.toFixed(0)} ms wall, ${inprocCpu.toFixed(0)} ms CPU   target < 1000 ms   ${(busy ? inprocCpu : inproc) < 1000 ? "ok" : "FAIL"}\n` +
    `  qkit policy diff --json (whole process), median of ${runs}: ${proc.toFixed(0)} ms wall${procCpu !== undefined ? `, ${procCpu.toFixed(0)} ms CPU` : ""}   target < 1000 ms   ${procJudged === undefined ? "not judged: load average " + loadAvg.toFixed(1) : procJudged < 1000 ? "ok" : "FAIL"}\n` +
    (busy ? `  (load average ${loadAvg.toFixed(1)} on ${(await import("node:os")).cpus().length} cores: CPU times judged, wall times are the other jobs')\n` : ""),
);

// The section "## Exact diff" of bench/RESULTS.md is replaced (unless --no-write), as bench/cold.mjs writes its own.
if (!process.argv.includes("--no-write")) {
  const { cpus: cpuList } = await import("node:os");
  const file = join(ROOT, "bench", "RESULTS.md");
  const mark = (v) => (v === undefined ? "not judged" : v < 1000 ? "ok" : "FAIL");
  const section = [
    "## Exact diff",
    "",
    `Written by \`bench/diff.mjs\` (${new Date().toISOString().replace(/\.\d+Z$/, "Z")}; load average ${loadAvg.toFixed(2)} on ${cpuList().length} cores${busy ? ": the machine was loaded by other jobs, so CPU times are the figures judged" : ""}).`,
    `Target (issue 9): a realistic dom0 policy against an edited copy on a 300-qube system answers in under a second. The policy is \`bench/dom0-policy.mjs\` (${rules} rules in the layout of a Qubes 4.2 dom0), the copy has six edits of the kinds users make; the system has ${last.space.qubes.length} qubes (${last.classes.length} classes of qubes no rule tells apart). Medians of ${runs} runs.`,
    "",
    "| measure | wall | CPU (user + system) | target | mark |",
    "|---|---|---|---|---|",
    `| in process: load both policies, diff, group | ${inproc.toFixed(0)} ms | ${inprocCpu.toFixed(0)} ms | < 1000 ms | ${mark(busy ? inprocCpu : inproc)} |`,
    `| \`qkit policy diff --json OLD NEW --system FILE\` (whole process) | ${proc.toFixed(0)} ms | ${procCpu !== undefined ? `${procCpu.toFixed(0)} ms` : "not measured (no /usr/bin/time)"} | < 1000 ms | ${mark(procJudged)} |`,
    "",
    `* Request space ${space.toLocaleString("en")} requests; ${last.evaluated.toLocaleString("en")} representatives decided by the evaluator; ${last.requests.toLocaleString("en")} requests change.`,
    "",
  ].join("\n");
  let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmark results\n";
  const start = text.indexOf("## Exact diff");
  if (start >= 0) {
    const next = text.indexOf("\n## ", start + 1);
    text = text.slice(0, start) + section + (next >= 0 ? text.slice(next + 1) : "");
  } else text = text.replace(/\s*$/, "\n\n") + section;
  writeFileSync(file, text);
  process.stdout.write("wrote the exact diff section of bench/RESULTS.md\n");
}
process.exitCode = ok ? 0 : 1;
