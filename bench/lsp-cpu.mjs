#!/usr/bin/env node
/**
 * The language server's CPU time per key, in process: the same workspace and keys as
 * `bench/lsp.mjs` (100,000 rules, seed 1, typed into the middle of the largest file), but each key
 * waits until the server has published the typed file's diagnostics again (its own scheduling:
 * debounce, slices, publication turn), timed with `process.cpuUsage` (the process: the server's
 * work and the collector's), and the answers go nowhere (no client parses them). Less noisy than the typing benchmark on a shared machine: use it to compare
 * two builds of the analysis, not to judge latency (that is `bench/lsp.mjs`).
 *
 *     node --expose-gc bench/lsp-cpu.mjs [--rules 100000] [--keys 120]
 *
 * `QKIT_BENCH_KEYS=1` prints each key's milliseconds; `QKIT_BENCH_PROFILE=DIR` writes a CPU profile
 * of each key to DIR (`key-N.cpuprofile`, N the key's place, for `node --cpu-prof`-style tools);
 * `QKIT_BENCH_HEAP=FILE` a sampling heap profile of the typing (every allocation, also what the
 * collector freed: what the keys allocate).
 *
 * Prints the median, 90th percentile, maximum and mean milliseconds per key, for keys that insert a character and for Enter.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import { createConnection, StreamMessageReader, StreamMessageWriter } from "vscode-languageserver/node.js";
import { cachingJsonEncoder, CountingReader, createNodeHost, PriorityWriter, startServer } from "@qubes-kit/lsp";
import { Session } from "node:inspector/promises";
import { generate } from "./gen-policy.mjs";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RULES = opt("rules", 100000);
const KEYS = opt("keys", 120);

function keystrokes(n) {
  const rules = ["svc001.Service\t*\tapp-001\tapp-002\tallow", "svc002.Service\t+arg1\t@tag:tag1\t@default\task default_target=app-003", "svc003.Service\t*\t@anyvm\t@dispvm\tdeny"];
  let text = "";
  for (let i = 0; text.length < n; i++) text += rules[i % rules.length] + "\n";
  return text.slice(0, n);
}

const gen = generate({ rules: RULES, seed: 1, requests: 0 });
const root = mkdtempSync(join(tmpdir(), "qkit-lsp-cpu-"));
for (const [rel, text] of Object.entries(gen.files)) {
  const p = join(root, "policy.d", rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
}
writeFileSync(join(root, "system.json"), JSON.stringify(gen.system));

const toServer = new PassThrough();
const nowhere = new Writable({ write: (_c, _e, cb) => cb() });
// The reader and writer of `qkit-lsp --stdio` (lsp/src/server.ts).
const reader = new CountingReader(new StreamMessageReader(toServer));
const writer = new PriorityWriter(new StreamMessageWriter(nowhere, { charset: "utf-8", contentTypeEncoder: cachingJsonEncoder }));
const connection = createConnection(reader, writer);
const server = startServer(connection, createNodeHost(), { outputBusy: () => writer.busy });
reader.arrived = server.messageArrived;
connection.listen();
const send = new StreamMessageWriter(toServer);
const turn = () => new Promise((r) => setImmediate(r));
const settle = async () => {
  for (let i = 0; i < 5; i++) await turn();
};
const rootUri = pathToFileURL(root).href;
let id = 0;
await send.write({ jsonrpc: "2.0", id: ++id, method: "initialize", params: { processId: null, rootUri, workspaceFolders: [{ uri: rootUri, name: "bench" }], capabilities: {}, initializationOptions: { qubesPolicy: { system: { source: "file", file: join(root, "system.json") } } } } });
await settle();
await send.write({ jsonrpc: "2.0", method: "initialized", params: {} });
await new Promise((r) => setTimeout(r, 200));
const target = Object.keys(gen.files)
  .filter((f) => f.endsWith(".policy"))
  .sort((a, b) => gen.files[b].length - gen.files[a].length)[0];
const uri = pathToFileURL(join(root, "policy.d", target)).href;
const original = gen.files[target];
await send.write({ jsonrpc: "2.0", method: "textDocument/didOpen", params: { textDocument: { uri, languageId: "qrexecpolicy", version: 1, text: original } } });
await settle();
server.validateNow();
let line = Math.floor(original.split("\n").length / 2);
let character = 0;
let version = 1;
const change = async (text) => {
  version++;
  await send.write({ jsonrpc: "2.0", method: "textDocument/didChange", params: { textDocument: { uri, version }, contentChanges: [{ range: { start: { line, character }, end: { line, character } }, text }] } });
  await settle();
};
await change("\n");
server.validateNow();
/** Waits until the typed file's diagnostics are published again (a new list) and the analysis is idle. */
const published = async (before) => {
  while (server.published.get(uri) === before) await turn();
  await new Promise((r) => setTimeout(r, 30));
};
globalThis.gc?.();
const chars = [];
const enters = [];
// QKIT_BENCH_PROFILE=DIR: a CPU profile of each key, written to DIR as key-N.cpuprofile (N its place).
const profileDir = process.env.QKIT_BENCH_PROFILE;
const inspector = profileDir ? new Session() : undefined;
if (inspector) {
  mkdirSync(profileDir, { recursive: true });
  inspector.connect();
  await inspector.post("Profiler.enable");
  await inspector.post("Profiler.setSamplingInterval", { interval: 200 });
}
let keyNo = 0;
// QKIT_BENCH_HEAP=FILE: a sampling heap profile of the typing (what the keys allocate), written to FILE.
const heapFile = process.env.QKIT_BENCH_HEAP;
const heapSession = heapFile ? new Session() : undefined;
if (heapSession) {
  heapSession.connect();
  await heapSession.post("HeapProfiler.enable");
  await heapSession.post("HeapProfiler.startSampling", { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
}
const text = keystrokes(KEYS);
for (const ch of text) {
  const before = server.published.get(uri);
  if (inspector) await inspector.post("Profiler.start");
  const c0 = process.cpuUsage();
  await change(ch);
  if (ch === "\n") (line++, (character = 0));
  else character++;
  await published(before);
  const c1 = process.cpuUsage(c0);
  keyNo++;
  if (inspector) writeFileSync(join(profileDir, `key-${keyNo}.cpuprofile`), JSON.stringify((await inspector.post("Profiler.stop")).profile));
  (ch === "\n" ? enters : chars).push((c1.user + c1.system) / 1000);
  if (process.env.QKIT_BENCH_KEYS) process.stdout.write(`${JSON.stringify(ch)} ${((c1.user + c1.system) / 1000).toFixed(1)} ${(globalThis.__afresh??[]).join(' ')}\n`); globalThis.__afresh=[]; if (process.env.QKIT_BENCH_KEYS && globalThis.__why?.length) console.log("why", globalThis.__why.join(" ")); globalThis.__why=[];
}
if (heapSession) writeFileSync(heapFile, JSON.stringify((await heapSession.post("HeapProfiler.stopSampling")).profile));
const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))]?.toFixed(1);
  return `median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms, mean ${mean.toFixed(1)} ms (${xs.length})`;
};
process.stdout.write(`${RULES} rules, ${KEYS} keys into ${target} (${original.split("\n").length} lines)\n  character: ${stat(chars)}\n  Enter:     ${stat(enters)}\n  all:       ${stat([...chars, ...enters])}\n`);
connection.dispose();
rmSync(root, { recursive: true, force: true });
process.exit(0);
