#!/usr/bin/env node
/**
 * Language-server benchmark: an admin typing new rules into a large policy.
 *
 * For each size (10,000 and 100,000 rules by default; bench/gen-policy.mjs, seed 1) the
 * built server (`lsp/dist/server.cjs --stdio`) runs as its own process, as an editor starts
 * it, on a generated workspace on disk with its system model. The client opens the
 * largest policy file and types new rules into the middle of it, one key every 80 ms
 * (a normal pace), asking for completion after every key, as editors do. It measures
 *
 * - diagnostics after an edit: from each key until a `publishDiagnostics` for that
 *   version of the document or a later one arrives (the server sends `version`);
 * - completion while typing: each `textDocument/completion` round trip;
 * - the server's peak resident memory (`VmHWM` of its process).
 *
 *     node bench/lsp.mjs [--rules 10000,100000] [--keys 120] [--interval 80] [--strict] [--no-write] [--services] [--trace]
 *
 * `--services` gives every qube but dom0 a `supported_rpc` list (as a live model has), so the
 * `service-not-provided` analysis runs; such a run does not write bench/RESULTS.md.
 *
 * `--trace` has the server log its turns (`QKIT_LSP_TRACE`, see lsp/src/trace.ts; both threads, see
 * lsp/src/threads.ts) and prints where the
 * slowest completions waited: from the client to the server's reader, to the handler, in it, to the
 * write of the answer, in the write (the pipe), and from there to the client; with the garbage
 * collections, the analysis and publication turns (how many, p50/p95, how many over 10 and 20 ms) and the
 * longest turns of the server while typing. Such a run does not write RESULTS.md.
 *
 * With `--trace`, `QKIT_BENCH_TIMELINE=1` also prints the server's events around each of the slowest
 * completions (from 30 ms before it was sent to its answer). `QKIT_BENCH_DUMP=FILE` writes the first
 * `publishDiagnostics` of the typed file there (to see what a notification carries).
 *
 * `QKIT_BENCH_SERVER=FILE` runs another build of the server (e.g. a bundle of an older commit, to
 * compare on the same machine at the same time); `QKIT_BENCH_NODE_ARGS` passes options to its node
 * (`--cpu-prof --cpu-prof-dir=DIR`: the profile is written at the clean shutdown).
 *
 * The table (with the targets of issue 10) goes to stdout and into bench/RESULTS.md,
 * section "Language server"; with --strict the exit code is 1 when a target is missed.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from "vscode-languageserver/node.js";
import { generate } from "./gen-policy.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SERVER = process.env.QKIT_BENCH_SERVER ?? join(ROOT, "lsp/dist/server.cjs");
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const SIZES = String(opt("rules", "10000,100000"))
  .split(",")
  .map((x) => Number(x.trim()))
  .filter((x) => x > 0);
const KEYS = Number(opt("keys", 120));
const INTERVAL = Number(opt("interval", 80));
const STRICT = args.includes("--strict");
const SERVICES = args.includes("--services");
const TRACE = args.includes("--trace");
const WRITE = !args.includes("--no-write") && !SERVICES && !TRACE;

/** The targets of issue 10, by size: diagnostics p95, completion p95 (ms), peak memory (MiB). */
const TARGETS = {
  10000: { diagnostics: 100, completion: 20, memory: null },
  100000: { diagnostics: 300, completion: 50, memory: 800 },
};

const hrMicros = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
function percentile(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
/** CPU time (user + system) of a process so far, in ms. */
function cpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}
function peakRssMiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** The text an admin types: whole rules of services the policy uses, each ended by Enter. */
function keystrokes(n) {
  const rules = ["svc001.Service\t*\tapp-001\tapp-002\tallow", "svc002.Service\t+arg1\t@tag:tag1\t@default\task default_target=app-003", "svc003.Service\t*\t@anyvm\t@dispvm\tdeny"];
  let text = "";
  for (let i = 0; text.length < n; i++) text += rules[i % rules.length] + "\n";
  return text.slice(0, n);
}

/**
 * What VS Code's client (vscode-languageclient 9) announces for what the bench uses: workspace
 * configuration, and completion lists whose items are resolved on demand and share their edit range.
 */
const CLIENT_CAPABILITIES = {
  workspace: { configuration: true },
  textDocument: {
    completion: {
      completionItem: { snippetSupport: true, insertReplaceSupport: true, labelDetailsSupport: true, resolveSupport: { properties: ["documentation", "detail", "additionalTextEdits"] } },
      completionList: { itemDefaults: ["commitCharacters", "editRange", "insertTextFormat", "insertTextMode", "data"] },
    },
  },
};

async function runSize(rules) {
  // 1. The workspace: policy.d with the generated files, plus the system model.
  const gen = generate({ rules, seed: 1, requests: 0 });
  const root = mkdtempSync(join(tmpdir(), "qkit-lsp-bench-"));
  for (const [rel, text] of Object.entries(gen.files)) {
    const p = join(root, "policy.d", rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  }
  if (SERVICES) {
    // What a live model says: each qube advertises qubes.Filecopy and one of 200 services.
    Object.keys(gen.system.domains).forEach((q, i) => {
      const info = gen.system.domains[q];
      if (info && info.type !== "AdminVM") info.supported_rpc = ["qubes.Filecopy", `svc${String(i % 200).padStart(3, "0")}.Service`].sort();
    });
  }
  writeFileSync(join(root, "system.json"), JSON.stringify(gen.system));

  // 2. The server as its own process, over stdio.
  const nodeArgs = (process.env.QKIT_BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const traceFile = join(root, "trace.json");
  const env = TRACE ? { ...process.env, QKIT_LSP_TRACE: traceFile } : process.env;
  const child = spawn(process.execPath, [...nodeArgs, SERVER, "--stdio"], { stdio: ["pipe", "pipe", "inherit"], env });
  const rpc = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  const target = Object.keys(gen.files)
    .filter((f) => f.endsWith(".policy"))
    .sort((a, b) => gen.files[b].length - gen.files[a].length)[0];
  const uri = pathToFileURL(join(root, "policy.d", target)).href;
  let published = 0;
  const onPublish = [];
  const publishLog = [];
  // A server that sends no `version` is taken to answer the last version sent (generous to it).
  let lastSent = 1;
  rpc.onNotification("textDocument/publishDiagnostics", (p) => {
    if (p.uri !== uri) return;
    const v = p.version ?? lastSent;
    publishLog.push({ version: v, at: performance.now() });
    if (process.env.QKIT_BENCH_DUMP && publishLog.length === 1) writeFileSync(process.env.QKIT_BENCH_DUMP, JSON.stringify(p));
    published = Math.max(published, v);
    for (const f of onPublish.splice(0)) f();
  });
  rpc.onNotification("window/logMessage", () => undefined);
  rpc.onRequest("client/registerCapability", () => null);
  rpc.onRequest("workspace/configuration", () => [{ system: { source: "file", file: "system.json" } }]);
  rpc.listen();
  const waitVersion = async (v) => {
    while (published < v) await new Promise((r) => onPublish.push(r));
  };
  const rootUri = pathToFileURL(root).href;
  await rpc.sendRequest("initialize", { processId: process.pid, rootUri, workspaceFolders: [{ uri: rootUri, name: "bench" }], capabilities: CLIENT_CAPABILITIES });
  await rpc.sendNotification("initialized", {});

  const original = gen.files[target];
  const lines = original.split("\n");
  let line = Math.floor(lines.length / 2);
  let character = 0;
  let t0 = performance.now();
  await rpc.sendNotification("textDocument/didOpen", { textDocument: { uri, languageId: "qrexecpolicy", version: 1, text: original } });
  await waitVersion(1);
  const openMs = performance.now() - t0;

  // 3. Typing: a key every INTERVAL ms, completion after each key; nothing waits for the answers.
  const sentAt = [];
  const completion = [];
  /** Per completion: when it was sent and answered, on the monotonic clock the server's trace uses (µs). */
  const completionAt = [];
  const pendingCompletions = [];
  let version = 1;
  // A fresh line in the middle of the file to type into.
  version++;
  sentAt[version] = performance.now();
  lastSent = version;
  await rpc.sendNotification("textDocument/didChange", { textDocument: { uri, version }, contentChanges: [{ range: { start: { line, character: 0 }, end: { line, character: 0 } }, text: "\n" }] });
  const text = keystrokes(KEYS);
  const cpuBefore = cpuMs(child.pid);
  t0 = performance.now();
  for (let k = 0; k < text.length; k++) {
    await sleep(t0 + (k + 1) * INTERVAL - performance.now());
    const ch = text[k];
    version++;
    sentAt[version] = performance.now();
    lastSent = version;
    await rpc.sendNotification("textDocument/didChange", { textDocument: { uri, version }, contentChanges: [{ range: { start: { line, character }, end: { line, character } }, text: ch }] });
    if (ch === "\n") {
      line++;
      character = 0;
    } else character++;
    const s = performance.now();
    const at = { sent: hrMicros(), answered: NaN };
    completionAt.push(at);
    const answered = () => {
      at.answered = hrMicros();
      completion.push(performance.now() - s);
    };
    pendingCompletions.push(rpc.sendRequest("textDocument/completion", { textDocument: { uri }, position: { line, character } }).then(answered, answered));
  }
  await Promise.all(pendingCompletions);
  // A server that skips unchanged diagnostics may never publish the last version: give up after a while.
  await Promise.race([waitVersion(version), sleep(60_000)]);
  // Every version's latency: until the first publish of it or of a later version.
  const diagnostics = [];
  for (let v = 2; v <= version; v++) {
    const hit = publishLog.find((p) => p.version >= v && p.at >= sentAt[v]);
    if (hit) diagnostics.push(hit.at - sentAt[v]);
  }
  if (diagnostics.length < version - 1) process.stdout.write(`  (${version - 1 - diagnostics.length} versions never got diagnostics)\n`);
  const memory = peakRssMiB(child.pid);
  const cpuPerKey = (cpuMs(child.pid) - cpuBefore) / text.length;
  // A clean shutdown (so that a profiler given in QKIT_BENCH_NODE_ARGS writes its output).
  const exited = new Promise((r) => child.once("exit", r));
  try {
    await rpc.sendRequest("shutdown");
    await rpc.sendNotification("exit");
  } catch {
    // Gone already.
  }
  await Promise.race([exited, sleep(10_000)]);
  rpc.dispose();
  child.kill();
  // With two threads (lsp/src/threads.ts) the front's events are in traceFile and the analysis thread's
  // beside it; the latter's garbage collections are marked as theirs (they do not hold the front).
  const trace = TRACE && existsSync(traceFile) ? JSON.parse(readFileSync(traceFile, "utf8")) : undefined;
  if (trace && existsSync(`${traceFile}.worker`)) {
    for (const e of JSON.parse(readFileSync(`${traceFile}.worker`, "utf8"))) trace.push(e[1] === "gc" ? [e[0], "gc-analysis", e[2], e[3]] : e);
  }
  rmSync(root, { recursive: true, force: true });
  if (TRACE) printWaits(rules, trace, completionAt);
  return { rules: gen.ruleLines, files: Object.keys(gen.files).length, qubes: Object.keys(gen.system.domains).length, target, fileLines: lines.length, openMs, keys: text.length, diagnostics, completion, memory, cpuPerKey };
}

/**
 * Where the completions waited (`--trace`): each completion's time cut into parts by the server's
 * events (lsp/src/trace.ts), the mean of each part over the slowest 5 % and over all, and what
 * else held the server while typing (garbage collections, the longest turns).
 */
function printWaits(rules, events, completionAt) {
  if (!events) {
    process.stdout.write("  (no trace: the server wrote none)\n");
    return;
  }
  events.sort((a, b) => a[0] - b[0]);
  const typingFrom = completionAt[0]?.sent ?? 0;
  const reads = [];
  const seen = new Set();
  for (const e of events) if (e[1] === "read" && e[2] === "textDocument/completion" && !seen.has(e[3])) (seen.add(e[3]), reads.push(e));
  const begins = events.filter((e) => e[1] === "begin" && e[2] === "textDocument/completion");
  const ends = events.filter((e) => e[1] === "end" && e[2] === "textDocument/completion");
  const writes = new Map(events.filter((e) => e[1] === "write" && e[2] === "response").map((e) => [e[3], e[0]]));
  const written = new Map(events.filter((e) => e[1] === "written" && e[2] === "response").map((e) => [e[3], e[0]]));
  const PARTS = ["client → server's reader", "reader → handler", "handler", "handler → write", "write (encode, pipe)", "written → client"];
  const rows = [];
  completionAt.forEach((c, i) => {
    const r = reads[i];
    const b = begins[i];
    const e = ends[i];
    if (!r || !b || !e || !Number.isFinite(c.answered)) return;
    const w = writes.get(r[3]);
    const d = written.get(r[3]);
    if (w === undefined || d === undefined) return;
    const t = [r[0] - c.sent, b[0] - r[0], e[0] - b[0], w - e[0], d - w, c.answered - d].map((x) => x / 1000);
    rows.push({ total: (c.answered - c.sent) / 1000, t, from: c.sent, to: c.answered });
  });
  rows.sort((a, b) => b.total - a.total);
  const slow = rows.slice(0, Math.max(1, Math.ceil(rows.length * 0.05)));
  const mean = (list, k) => list.reduce((a, r) => a + r.t[k], 0) / list.length;
  const gcs = events.filter((e) => e[1] === "gc" && e[0] >= typingFrom);
  const turns = (open, close) => {
    const out = [];
    let at;
    for (const e of events) {
      if (e[0] < typingFrom) continue;
      if (e[1] === open) at = e[0];
      else if (e[1] === close && at !== undefined) (out.push((e[0] - at) / 1000), (at = undefined));
    }
    return out.sort((a, b) => b - a);
  };
  const gcDuring = (r) => gcs.filter((g) => g[0] >= r.from && g[0] <= r.to).reduce((a, g) => a + g[2], 0);
  const lines = [
    `  where completions waited (${rules} rules; ${rows.length} traced; mean ms of the slowest ${slow.length} / of all):`,
    ...PARTS.map((p, k) => `    ${p.padEnd(26)} ${mean(slow, k).toFixed(1).padStart(7)} / ${mean(rows, k).toFixed(1)}`),
    `    garbage collection inside them  ${(slow.reduce((a, r) => a + gcDuring(r), 0) / slow.length).toFixed(1).padStart(5)} / ${(rows.reduce((a, r) => a + gcDuring(r), 0) / Math.max(1, rows.length)).toFixed(1)}`,
    `  while typing: ${gcs.length} garbage collections, ${gcs.reduce((a, g) => a + g[2], 0).toFixed(0)} ms in all, the longest ${gcs.map((g) => g[2]).sort((a, b) => b - a).slice(0, 5).map((x) => x.toFixed(0)).join(", ")} ms;`,
    ...(() => {
      const list = events.filter((e) => e[1] === "gc-analysis" && e[0] >= typingFrom);
      if (list.length === 0) return [];
      return [`  in the analysis thread: ${list.length} garbage collections, ${list.reduce((a, g) => a + g[2], 0).toFixed(0)} ms in all, the longest ${list.map((g) => g[2]).sort((a, b) => b - a).slice(0, 5).map((x) => x.toFixed(0)).join(", ")} ms;`];
    })(),
    ...[
      ["analysis", turns("slice", "sliced")],
      ["publication", turns("publish", "published")],
    ].map(([name, list]) => {
      const asc = [...list].reverse();
      return `  ${name} turns while typing: ${list.length}, p50 ${percentile(asc, 50).toFixed(1)} ms, p95 ${percentile(asc, 95).toFixed(1)} ms; over 10 ms: ${list.filter((x) => x > 10).length}, over 20 ms: ${list.filter((x) => x > 20).length}`;
    }),
    `  longest turns: analysis ${turns("slice", "sliced").slice(0, 5).map((x) => x.toFixed(0)).join(", ")} ms; publication ${turns("publish", "published").slice(0, 5).map((x) => x.toFixed(0)).join(", ")} ms; diagnostics writes ${(() => {
      const list = [];
      const open = new Map();
      for (const e of events) {
        if (e[0] < typingFrom || e[2] !== "textDocument/publishDiagnostics") continue;
        if (e[1] === "write") open.set("d", e[0]);
        else if (e[1] === "written" && open.has("d")) (list.push((e[0] - open.get("d")) / 1000), open.delete("d"));
      }
      return list.sort((a, b) => b - a).slice(0, 5).map((x) => x.toFixed(0)).join(", ");
    })()} ms (wall clock: a loaded machine stretches every one)`,
  ];
  if (process.env.QKIT_BENCH_TIMELINE) {
    for (const r of slow) {
      lines.push(`  completion of ${r.total.toFixed(1)} ms:`);
      for (const e of events) if (e[0] >= r.from - 30000 && e[0] <= r.to) lines.push(`    ${((e[0] - r.from) / 1000).toFixed(1).padStart(7)} ${e.slice(1).join(" ")}`);
    }
  }
  process.stdout.write(lines.join("\n") + "\n");
}

const results = [];
for (const rules of SIZES) {
  process.stdout.write(`[lsp ${rules}] typing ${KEYS} keys, one every ${INTERVAL} ms …\n`);
  results.push(await runSize(rules));
}

const fmt = (x) => (Number.isFinite(x) ? `${x.toFixed(x < 10 ? 1 : 0)} ms` : "n/a");
const header = ["policy", "measure", "p50", "p95", "max", "target", "mark"];
const rows = [];
let ok = true;
for (const r of results) {
  const t = TARGETS[r.rules >= 50_000 ? 100000 : 10000];
  const size = r.rules >= 50_000 ? "100k" : "10k";
  const mark = (v, goal) => (goal === null ? "" : v <= goal ? "PASS" : ((ok = false), "MISSED"));
  const d95 = percentile(r.diagnostics, 95);
  const c95 = percentile(r.completion, 95);
  rows.push([size, "diagnostics after a key (typing)", fmt(percentile(r.diagnostics, 50)), fmt(d95), fmt(Math.max(...r.diagnostics)), `p95 ≤ ${t.diagnostics} ms`, mark(d95, t.diagnostics)]);
  rows.push([size, "completion while typing", fmt(percentile(r.completion, 50)), fmt(c95), fmt(Math.max(...r.completion)), `p95 ≤ ${t.completion} ms`, mark(c95, t.completion)]);
  rows.push([size, "server peak RSS", `${r.memory.toFixed(0)} MiB`, "", "", t.memory === null ? "(none)" : `≤ ${t.memory} MiB`, mark(r.memory, t.memory)]);
  rows.push([size, "server CPU time per key (user + system)", fmt(r.cpuPerKey), "", "", "(none)", ""]);
  rows.push([size, "first analysis (open to diagnostics)", fmt(r.openMs), "", "", "(none)", ""]);
}
const table = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
const load = loadavg()[0].toFixed(2);
const about = results.map((r) => `${r.rules.toLocaleString("en")} rule lines in ${r.files} files, ${r.qubes} qubes; typed ${r.keys} keys into ${r.target} (${r.fileLines} lines)`).join("; ");
process.stdout.write(`\n${table}\n\n${about}${SERVICES ? " (system model with supported_rpc)" : ""}\nload average ${load} on ${cpus().length} cores\n`);

if (WRITE) {
  const file = join(ROOT, "bench/RESULTS.md");
  const section = [
    "## Language server (typing)",
    "",
    `Written by \`bench/lsp.mjs\` (${new Date().toISOString().replace(/\.\d+Z$/, "Z")}; load average ${load} on ${cpus().length} cores when it ended).`,
    `The built server runs as its own process over stdio; the client opens the largest file and types new rules into its middle, one key every ${INTERVAL} ms, with a completion request after every key; it announces what VS Code's client does (completion items resolved on demand, list defaults).`,
    '"Diagnostics after a key" runs from the key to the first `publishDiagnostics` of that version or a later one.',
    "The latencies are wall-clock and depend on the machine being free: when the server gets less CPU than typing asks for, the queue of keys grows and every latency with it; the server's CPU time per key depends on it much less (contention still inflates it).",
    `Workspaces: ${about}.`,
    "",
    table,
    "",
  ].join("\n");
  let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmark results\n";
  const start = text.indexOf("## Language server (typing)");
  if (start >= 0) {
    const next = text.indexOf("\n## ", start + 1);
    text = text.slice(0, start) + section + (next >= 0 ? "\n" + text.slice(next + 1) : "");
  } else text = text.replace(/\s*$/, "\n\n") + section;
  writeFileSync(file, text);
  process.stdout.write("wrote the language server section of bench/RESULTS.md\n");
}
process.exit(STRICT && !ok ? 1 : 0);
