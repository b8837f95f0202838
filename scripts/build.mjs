#!/usr/bin/env node
// Builds the workspaces in dependency order, skipping a package whose last
// build is newer than all of its inputs and than the builds of the packages
// it depends on (so `npm test` right after `npm start` builds nothing again).
//
//   node scripts/build.mjs            build what changed
//   node scripts/build.mjs --force    build everything
//   node scripts/build.mjs sdk        build sdk (and what it needs) only
//
// A successful build writes `dist/.build-stamp`; its modification time is the
// time of the build. Inputs: the package's `src/`, `package.json`, build and
// TypeScript configuration, `tsconfig.base.json`, and per package the files
// listed in `extra` below.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// QKIT_BUILD_ROOT: another checkout (the tests use a scratch workspace).
const root = process.env.QKIT_BUILD_ROOT ?? fileURLToPath(new URL("..", import.meta.url));

/** The workspaces in build order, with what each depends on and its extra inputs. */
const PACKAGES = [
  { dir: "language", deps: [], extra: [] },
  { dir: "sdk", deps: ["language"], extra: ["bin"] },
  { dir: "lsp", deps: ["language", "sdk"], extra: [] },
  { dir: "vscode-extension", deps: ["lsp"], extra: ["build.mjs", "language-configuration.json", "../grammars"] },
];
const COMMON = ["package.json", "tsconfig.json", "tsup.config.ts"];
const STAMP = join("dist", ".build-stamp");

/** The newest modification time (ms) under `path` (0 when absent). */
function newest(path) {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let m = st.mtimeMs;
  for (const name of readdirSync(path)) {
    if (name === "node_modules" || name === "dist" || name === "out") continue;
    m = Math.max(m, newest(join(path, name)));
  }
  return m;
}

function stampOf(dir) {
  const p = join(root, dir, STAMP);
  return existsSync(p) ? statSync(p).mtimeMs : 0;
}

const args = process.argv.slice(2);
const force = args.includes("--force");
const wanted = args.filter((a) => !a.startsWith("--"));
for (const w of wanted) {
  if (!PACKAGES.some((p) => p.dir === w)) {
    console.error(`build: unknown package \`${w}\` (one of ${PACKAGES.map((p) => p.dir).join(", ")})`);
    process.exit(2);
  }
}
// The wanted packages and everything they depend on.
const selected = new Set();
const add = (dir) => {
  if (selected.has(dir)) return;
  selected.add(dir);
  for (const d of PACKAGES.find((p) => p.dir === dir).deps) add(d);
};
for (const p of wanted.length ? wanted : PACKAGES.map((x) => x.dir)) add(p);

const shared = newest(join(root, "tsconfig.base.json"));
let built = 0;
for (const pkg of PACKAGES) {
  if (!selected.has(pkg.dir)) continue;
  const base = join(root, pkg.dir);
  const stamp = stampOf(pkg.dir);
  const inputs = Math.max(shared, newest(join(base, "src")), ...COMMON.concat(pkg.extra).map((f) => newest(join(base, f))));
  const depStamp = Math.max(0, ...pkg.deps.map(stampOf));
  if (!force && stamp > 0 && stamp >= inputs && stamp >= depStamp) {
    console.log(`build: ${pkg.dir} is up to date`);
    continue;
  }
  console.log(`build: ${pkg.dir}`);
  // The stamp carries the start time: a file saved during the build is newer, and builds again next time.
  const started = new Date();
  const r = spawnSync("npm", ["run", "build", "--silent", "-w", pkg.dir], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`build: ${pkg.dir} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
  writeFileSync(join(base, STAMP), `${started.toISOString()}\n`);
  utimesSync(join(base, STAMP), started, started);
  built++;
}
console.log(built ? `build: ${built} package${built === 1 ? "" : "s"} built` : "build: nothing to do");
