#!/usr/bin/env node
/**
 * Builds the web playground into `playground/dist/` and serves it on localhost.
 *
 *   npm run playground                      build, then serve on http://127.0.0.1:8420/ (prints the URL)
 *   npm run playground -- --build-only      build only
 *   npm run playground -- --port 0          serve on a free port
 *   npm run playground -- --no-minify       readable bundles with source maps (debugging)
 *
 * Everything the page needs is in `dist/` (Monaco, the language server worker, the
 * defaults): the page makes no network request outside its own origin.
 */
import { build } from "esbuild";
import { createServer } from "node:http";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const root = resolve(here, "..");
const dist = join(here, "dist");

/** The command line: `--build-only`, `--port N`, `--host H`, `--quiet`. */
function parseArgs(argv) {
  const opts = { buildOnly: false, port: 8420, host: "127.0.0.1", quiet: false, minify: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--build-only") opts.buildOnly = true;
    else if (a === "--quiet") opts.quiet = true;
    else if (a === "--no-minify") opts.minify = false;
    else if (a === "--port" || a === "--host") {
      const v = argv[++i];
      if (v === undefined) fail(`${a} needs a value: e.g. ${a} ${a === "--port" ? "8420" : "127.0.0.1"} [missing-value]`);
      if (a === "--port") {
        if (!/^\d+$/.test(v) || Number(v) > 65535) fail(`--port ${v} is not a port number: give 0..65535 (0 picks a free port) [bad-port]`);
        opts.port = Number(v);
      } else opts.host = v;
    } else fail(`unknown option ${a}: use --build-only, --port N, --host H, --no-minify or --quiet [unknown-option]`);
  }
  return opts;
}

function fail(message) {
  process.stderr.write(`playground: ${message}\n`);
  process.exit(2);
}

/** Source aliases, as the LSP bundles use: the workspace packages are compiled from source. */
const alias = {
  "@qubes-kit/language": join(root, "language/src/index.ts"),
  "@qubes-kit/sdk/sim": join(root, "sdk/src/sim-entry.ts"),
  "@qubes-kit/sdk": join(root, "sdk/src/index.ts"),
  "@qubes-kit/lsp": join(root, "lsp/src/protocol.ts"),
};

/** The example the page opens with (the demo machine), embedded at build time. */
function defaults() {
  const demo = join(root, "examples/demo");
  const read = (p) => readFileSync(join(demo, p), "utf8");
  return {
    files: [
      { name: "30-user.policy", text: "!include include/admin-mgmt\n\n" + read("policy.d/30-user.policy") },
      { name: "include/admin-mgmt", text: read("policy.d/include/admin-mgmt") },
    ],
    system: read("system.json"),
  };
}

/** Builds `dist/` and returns the sizes of its files (bytes, and gzip estimate is left to the reader). */
export async function buildPlayground({ quiet = false, minify = true } = {}) {
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist, { recursive: true });
  const common = {
    bundle: true,
    minify,
    sourcemap: minify ? false : "inline",
    target: "es2022",
    platform: "browser",
    alias,
    legalComments: "none",
    logLevel: "warning",
    metafile: true,
  };
  const page = await build({
    ...common,
    entryPoints: { main: join(here, "src/main.ts") },
    outdir: dist,
    format: "esm",
    loader: { ".ttf": "file" },
    assetNames: "[name]",
    define: { __PLAYGROUND_DEFAULTS__: JSON.stringify(defaults()) },
  });
  const workers = await build({
    ...common,
    entryPoints: {
      "server.worker": join(here, "src/worker.ts"),
      "editor.worker": join(root, "node_modules/monaco-editor/esm/vs/editor/editor.worker.js"),
    },
    outdir: dist,
    format: "iife",
  });
  copyFileSync(join(here, "index.html"), join(dist, "index.html"));
  copyFileSync(join(here, "style.css"), join(dist, "style.css"));
  const outputs = { ...page.metafile.outputs, ...workers.metafile.outputs };
  const sizes = Object.keys(outputs)
    .map((f) => ({ file: f.replace(/^.*dist\//, ""), bytes: statSync(resolve(root, f)).size }))
    .concat(["index.html", "style.css"].map((f) => ({ file: f, bytes: statSync(join(dist, f)).size })))
    .sort((a, b) => b.bytes - a.bytes);
  if (!quiet) {
    const total = sizes.reduce((n, s) => n + s.bytes, 0);
    for (const s of sizes) process.stdout.write(`  ${s.file.padEnd(22)} ${(s.bytes / 1024).toFixed(1).padStart(8)} KiB\n`);
    process.stdout.write(`  ${"total".padEnd(22)} ${(total / 1024).toFixed(1).padStart(8)} KiB\n`);
  }
  return { dist, sizes };
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".ttf": "font/ttf",
  ".json": "application/json",
};

/** Serves `dist/` (GET and HEAD only, nothing outside it). Resolves with the server once listening. */
export function servePlayground({ port = 0, host = "127.0.0.1" } = {}) {
  const server = createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400).end("bad request path\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const file = normalize(join(dist, path.endsWith("/") ? path + "index.html" : path));
    if (!file.startsWith(dist + "/") || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}\n`);
      return;
    }
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "cache-control": "no-cache",
      "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; worker-src 'self'; font-src 'self' data:; img-src 'self' data:",
    });
    res.end(req.method === "HEAD" ? undefined : readFileSync(file));
  });
  return new Promise((resolveServer, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolveServer(server));
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const opts = parseArgs(process.argv.slice(2));
  try {
    if (!opts.quiet) process.stdout.write(`playground: building ${dist}\n`);
    await buildPlayground(opts);
  } catch (e) {
    fail(`build failed: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}; see the errors above [build-failed]`);
  }
  if (!opts.buildOnly) {
    try {
      const server = await servePlayground(opts);
      const { port } = server.address();
      const shown = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
      process.stdout.write(`playground: serving http://${shown}:${port}/ (Ctrl+C stops)\n`);
    } catch (e) {
      fail(`cannot listen on ${opts.host}:${opts.port}: ${e instanceof Error ? e.message : String(e)} (try --port 0) [listen-failed]`);
    }
  }
}
