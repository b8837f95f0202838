/**
 * The engine entry (`@qubes-kit/language/engine`, issue 9's cold start), as
 * built: a subset of the full entry whose values are the very same (shared
 * chunks, in ES modules and in CommonJS), whose module graph has no
 * Chevrotain and no analysis, and which is all that `qkit policy eval` and
 * `qkit policy check --engine-only DIR` load at start-up; the other checks
 * still load the full core on demand, from the built CLI.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(root, "sdk/dist/cli.js");

/** Runs Node on `code` (an ES module, or CommonJS with `cjs`) from the workspace root; its stdout. */
function node(code: string, cjs = false): string {
  const r = spawnSync(process.execPath, [cjs ? "--input-type=commonjs" : "--input-type=module", "-e", code], { cwd: root, encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** The files of a built module's static import graph (relative imports only) and the bare specifiers it imports. */
function staticGraph(entry: string): { files: string[]; bare: Set<string> } {
  const files: string[] = [];
  const bare = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (files.includes(f)) continue;
    files.push(f);
    const text = readFileSync(f, "utf8");
    // Static imports and re-exports (`import … from "x"`, `import "x"`, `export … from "x"`, `require("x")`), not `import("x")`.
    for (const m of text.matchAll(/(?:^|[;\n])\s*(?:import|export)\s*(?:[^;"'()]*?\sfrom\s*)?["']([^"']+)["']|\brequire\(["']([^"']+)["']\)/g)) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith(".")) todo.push(join(dirname(f), spec));
      else bare.add(spec);
    }
  }
  return { files, bare };
}

describe("@qubes-kit/language/engine, as built", () => {
  const check = `
    const names = Object.keys(engine).filter((k) => k !== "default" && k !== "__esModule");
    const missing = names.filter((k) => !(k in full));
    const different = names.filter((k) => full[k] !== engine[k]);
    console.log(JSON.stringify({ count: names.length, missing, different, fullCount: Object.keys(full).length }));`;

  it.each([
    ["ES modules", `const engine = await import("@qubes-kit/language/engine"); const full = await import("@qubes-kit/language");${check}`, false],
    ["CommonJS", `const engine = require("@qubes-kit/language/engine"); const full = require("@qubes-kit/language");${check}`, true],
  ] as const)("is a subset of the full entry with the same values (%s)", (_, code, cjs) => {
    const r = JSON.parse(node(code, cjs)) as { count: number; missing: string[]; different: string[]; fullCount: number };
    expect(r.missing).toEqual([]);
    expect(r.different).toEqual([]);
    expect(r.count).toBeGreaterThan(40);
    expect(r.fullCount).toBeGreaterThan(r.count);
  });

  it("loads, decides and validates without Chevrotain or the analysis", () => {
    const engine = staticGraph(join(root, "language/dist/engine.js"));
    const full = staticGraph(join(root, "language/dist/index.js"));
    const text = (files: string[]) => files.map((f) => readFileSync(f, "utf8")).join("\n");
    expect(engine.bare).toEqual(new Set());
    const engineText = text(engine.files);
    // The loader, the evaluator and the reports are there; the parser generator and the editor's analysis are not.
    for (const marker of ["!compat-4.0", "function loadPolicy(", "function evaluate(", "function writeCheckText("]) expect(engineText).toContain(marker);
    for (const marker of ["EmbeddedActionsParser", "lodash-es", "function analyzeWorkspace(", "function parseDocument("]) expect(engineText).not.toContain(marker);
    expect(text(full.files)).toContain("EmbeddedActionsParser");
    // A fraction of the code to compile at start-up.
    expect(engineText.length * 4).toBeLessThan(text(full.files).length);
    const r = node(`
      import { checkPolicy, createMemoryFileSystem, evaluate, loadPolicy, makeRequest, prepareSystemInfo } from "@qubes-kit/language/engine";
      const fs = createMemoryFileSystem({ "30-a.policy": "qubes.A * work vault allow\\nqubes.B * work vault deny\\n" });
      const r = loadPolicy(fs, { service: "qubes.A" });
      const system = prepareSystemInfo({ domains: {
        dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000", internal: null, icon: "", label: "" },
        work: { type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000001", internal: null, icon: "", label: "" },
        vault: { type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000002", internal: null, icon: "", label: "" } } });
      const d = evaluate(r.policy, makeRequest("qubes.A", "work", "vault"), system);
      console.log(JSON.stringify({ action: d.action, rules: r.policy.rules.length, count: r.policy.ruleCount, check: checkPolicy(fs).rules }));`);
    expect(JSON.parse(r)).toEqual({ action: "allow", rules: 1, count: 2, check: 2 });
  });
});

describe("the built qkit", () => {
  it("imports only the engine entry at start-up", () => {
    const g = staticGraph(CLI);
    expect([...g.bare].filter((s) => s.startsWith("@qubes-kit/"))).toEqual(["@qubes-kit/language/engine"]);
    // The rest of the core is still there, loaded on demand.
    expect(readFileSync(CLI, "utf8")).toMatch(/import\(["']@qubes-kit\/language["']\)/);
  });

  const dir = mkdtempSync(join(tmpdir(), "qkit-entry-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "policy.d"));
  writeFileSync(join(dir, "policy.d", "30-user.policy"), "qubes.A * work vault allow\nqubes.A * work vault deny\nqubes.B * work @anyvm ask default_target=vault\n");
  writeFileSync(join(dir, "bad.policy"), "qubes.A * work vault permit\n");
  const qube = (i: number) => ({ type: i ? "AppVM" : "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: `00000000-0000-0000-0000-00000000000${i}`, internal: null, icon: "", label: "" });
  writeFileSync(join(dir, "system.json"), JSON.stringify({ domains: { dom0: qube(0), work: qube(1), vault: qube(2) } }));
  const qkit = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: "utf8" });

  it.each([
    // [args, exit status, what stdout has]
    [["policy", "eval", "--policy-dir", "policy.d", "--system", "system.json", "qubes.A", "work", "vault"], 0, /^allow/],
    [["policy", "eval", "--policy-dir", "policy.d", "--system", "system.json", "--json", "qubes.B", "work", "vault"], 3, /"action":"ask"/],
    [["policy", "check", "--engine-only", "policy.d"], 0, /rule/],
    // The editor's analysis (the shadowed deny), from the full entry loaded on demand.
    [["policy", "check", "--strict", "policy.d"], 1, /30-user\.policy:2/],
    [["policy", "check", "--format", "sarif", "policy.d"], 0, /"version": ?"2\.1\.0"/],
    // A single file with --engine-only is parsed by the editor's parser (full entry).
    [["policy", "check", "--engine-only", "bad.policy"], 1, /bad\.policy:1/],
    [["policy", "check", "--lint-compat", "bad.policy"], 1, /bad\.policy:1: error/],
  ] as const)("qkit %j exits %i", (args, status, out) => {
    expect(existsSync(CLI)).toBe(true);
    const r = qkit(...args);
    expect(r.status, r.stderr).toBe(status);
    expect(r.stdout).toMatch(out);
  });
});
