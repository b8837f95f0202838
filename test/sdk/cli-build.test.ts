/**
 * `scripts/build.mjs` (`npm run build`, `npm test`'s pretest, `npm start`):
 * builds a package only when its inputs or a dependency changed since its
 * last build. Run on a scratch workspace whose packages' builds only log.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../../scripts/build.mjs", import.meta.url));
const ws = mkdtempSync(join(tmpdir(), "qkit-build-"));
afterAll(() => rmSync(ws, { recursive: true, force: true }));

const PACKAGES = ["language", "sdk", "lsp", "vscode-extension"];
writeFileSync(join(ws, "package.json"), JSON.stringify({ name: "scratch", private: true, workspaces: PACKAGES }));
writeFileSync(join(ws, "tsconfig.base.json"), "{}\n");
for (const p of PACKAGES) {
  mkdirSync(join(ws, p, "src"), { recursive: true });
  writeFileSync(join(ws, p, "src", "index.ts"), "export {};\n");
  const build = `node -e "require('fs').mkdirSync('dist',{recursive:true});require('fs').appendFileSync('../built.log','${p}\\\\n')"`;
  writeFileSync(join(ws, p, "package.json"), JSON.stringify({ name: `scratch-${p}`, version: "0.0.0", scripts: { build } }));
}

/** Runs the build script; returns the packages it built, in order. */
function build(...args: string[]): string[] {
  writeFileSync(join(ws, "built.log"), "");
  const r = spawnSync(process.execPath, [script, ...args], { cwd: ws, encoding: "utf8", env: { ...process.env, QKIT_BUILD_ROOT: ws } });
  expect(r.status, r.stderr).toBe(0);
  return readFileSync(join(ws, "built.log"), "utf8").split("\n").filter(Boolean);
}

/** Marks a file as changed now (after the last build started, before the next one). */
function touch(file: string): void {
  const now = new Date();
  utimesSync(join(ws, file), now, now);
}

describe("scripts/build.mjs", () => {
  it("builds everything the first time, then nothing until something changes", () => {
    expect(build()).toEqual(PACKAGES);
    expect(build()).toEqual([]);
  });

  it("rebuilds a changed package and the packages that depend on it, not the others", () => {
    touch("sdk/src/index.ts");
    expect(build()).toEqual(["sdk", "lsp", "vscode-extension"]);
    touch("vscode-extension/package.json");
    expect(build()).toEqual(["vscode-extension"]);
    touch("tsconfig.base.json");
    expect(build()).toEqual(PACKAGES);
  });

  it("--force builds everything; a package name builds it and what it needs", () => {
    expect(build("--force")).toEqual(PACKAGES);
    expect(build("--force", "sdk")).toEqual(["language", "sdk"]);
    const r = spawnSync(process.execPath, [script, "nope"], { cwd: ws, encoding: "utf8", env: { ...process.env, QKIT_BUILD_ROOT: ws } });
    expect([r.status, r.stderr]).toEqual([2, "build: unknown package `nope` (one of language, sdk, lsp, vscode-extension)\n"]);
  });
});
