#!/usr/bin/env node
/**
 * Language-server benchmark: a generated 10,000-rule workspace (bench/gen-policy.mjs,
 * seed 1) on disk, the built server (`lsp/dist/index.js`) on an in-process
 * connection, and the two latencies an admin feels:
 *
 * - diagnostics after an edit: `didChange` of one policy file until its
 *   `publishDiagnostics` arrives (every edit flips one action between
 *   `allow` and `alow`, so the diagnostics always change);
 * - completion: a `textDocument/completion` round trip in the target column.
 *
 *     node bench/lsp.mjs [--rules 10000] [--iterations 200] [--strict]
 *
 * Targets: p95 under 50 ms (diagnostics) and under 10 ms (completion).
 * With --strict the exit code is 1 when a target is missed.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createConnection, createMessageConnection, StreamMessageReader, StreamMessageWriter } from "vscode-languageserver/node.js";
import { generate } from "./gen-policy.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RULES = opt("rules", 10_000);
const ITER = opt("iterations", 200);
const STRICT = args.includes("--strict");

const { startServer, createNodeHost } = await import(pathToFileURL(join(ROOT, "lsp/dist/index.js")).href);

// 1. The workspace: policy.d with the generated files, plus the system model.
const gen = generate({ rules: RULES, seed: 1, requests: 0 });
const root = mkdtempSync(join(tmpdir(), "qkit-lsp-bench-"));
for (const [rel, text] of Object.entries(gen.files)) {
  const p = join(root, "policy.d", rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
}
writeFileSync(join(root, "system.json"), JSON.stringify(gen.system));

// 2. The server on an in-process connection.
const toServer = new PassThrough();
const toClient = new PassThrough();
const connection = createConnection(new StreamMessageReader(toServer), new StreamMessageWriter(toClient));
startServer(connection, createNodeHost(), { debounceMs: 0 });
connection.listen();
const rpc = createMessageConnection(new StreamMessageReader(toClient), new StreamMessageWriter(toServer));
const waiters = new Map();
rpc.onNotification("textDocument/publishDiagnostics", (p) => {
  const w = waiters.get(p.uri);
  if (w) {
    waiters.delete(p.uri);
    w(p);
  }
});
rpc.onNotification("window/logMessage", () => undefined);
rpc.onRequest("client/registerCapability", () => null);
const settings = { system: { source: "file", file: "system.json" } };
rpc.onRequest("workspace/configuration", () => [settings]);
rpc.listen();
const rootUri = pathToFileURL(root).href;
await rpc.sendRequest("initialize", { processId: null, rootUri, workspaceFolders: [{ uri: rootUri, name: "bench" }], capabilities: { workspace: { configuration: true } } });
await rpc.sendNotification("initialized", {});

// The largest generated file is the one we edit.
const files = Object.keys(gen.files).filter((f) => f.endsWith(".policy"));
const target = files.sort((a, b) => gen.files[b].length - gen.files[a].length)[0];
const uri = pathToFileURL(join(root, "policy.d", target)).href;
const original = readFileSync(join(root, "policy.d", target), "utf8");
const lines = original.split("\n");
const editLine = lines.findIndex((l) => /\sallow(\s|$)/.test(l));
const diagnosticsFor = (u) => new Promise((r) => waiters.set(u, r));

let first = diagnosticsFor(uri);
const t0 = performance.now();
await rpc.sendNotification("textDocument/didOpen", { textDocument: { uri, languageId: "qrexecpolicy", version: 1, text: original } });
await first;
const openMs = performance.now() - t0;

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// 3. Diagnostics after an edit.
const diag = [];
for (let i = 0; i < ITER; i++) {
  const edited = [...lines];
  if (i % 2 === 0) edited[editLine] = edited[editLine].replace(/\sallow(\s|$)/, " alow$1");
  const wait = diagnosticsFor(uri);
  const s = performance.now();
  await rpc.sendNotification("textDocument/didChange", { textDocument: { uri, version: i + 2 }, contentChanges: [{ text: edited.join("\n") }] });
  await wait;
  diag.push(performance.now() - s);
}

// 4. Completion in the target column of a rule line.
const line = lines[editLine];
const parts = line.trim().split(/\s+/);
const character = line.indexOf(parts[3], line.indexOf(parts[2]) + parts[2].length) + 1;
const comp = [];
let offered = 0;
for (let i = 0; i < ITER; i++) {
  const s = performance.now();
  const items = await rpc.sendRequest("textDocument/completion", { textDocument: { uri }, position: { line: editLine, character } });
  comp.push(performance.now() - s);
  offered = items.length;
}

const fmt = (x) => `${x.toFixed(1)} ms`;
const row = (name, xs, goal) => {
  const p95 = percentile(xs, 95);
  const ok = p95 < goal;
  console.log(`${name.padEnd(28)} p50 ${fmt(percentile(xs, 50)).padStart(9)}  p95 ${fmt(p95).padStart(9)}  max ${fmt(Math.max(...xs)).padStart(9)}  target p95 < ${goal} ms  ${ok ? "ok" : "MISSED"}`);
  return ok;
};
console.log(`workspace: ${gen.ruleLines} rule lines in ${Object.keys(gen.files).length} files, ${Object.keys(gen.system.domains).length} qubes; edited ${target} (${lines.length} lines)`);
console.log(`first analysis on open: ${fmt(openMs)}; ${ITER} iterations each; completion offered ${offered} items`);
const ok1 = row("diagnostics after an edit", diag, 50);
const ok2 = row("completion", comp, 10);

rpc.dispose();
connection.dispose();
rmSync(root, { recursive: true, force: true });
process.exit(STRICT && !(ok1 && ok2) ? 1 : 0);
