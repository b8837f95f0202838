/**
 * The packages as a new user meets them (issue 8, part 2): licence and
 * metadata, what `npm pack` ships, one copy of the language core, the SDK's
 * entry points (`@qubes-kit/sdk`, `/sim`, `/node`) as built, the Node
 * helpers against `qkit policy explain`, and the typed `setProperty`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { explain, makeRequest, prepareSystemInfo } from "@qubes-kit/language";
import { describeDecision, loadPolicyDirectory, renderExplanation } from "@qubes-kit/sdk/node";

const root = fileURLToPath(new URL("../../", import.meta.url));
const PACKAGES = ["language", "sdk", "lsp", "vscode-extension"];
const pkg = (dir: string) => JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"));

describe("package metadata", () => {
  it.each(["", ...PACKAGES])("`%s` has an MIT LICENSE, repository, homepage, bugs and keywords", (dir) => {
    const p = pkg(dir);
    expect(p.license).toBe("MIT");
    expect(readFileSync(join(root, dir, "LICENSE"), "utf8")).toMatch(/^MIT License\n/);
    expect(p.repository?.url).toMatch(/^git\+https:\/\/.+\.git$/);
    if (dir) expect(p.repository.directory).toBe(dir);
    expect(p.homepage).toMatch(/^https:\/\//);
    expect(p.bugs?.url).toMatch(/^https:\/\/.+\/issues$/);
    expect(p.keywords).toEqual(expect.arrayContaining(["qubes"]));
  });

  it.each(["language", "sdk", "lsp"])("`npm pack` of %s ships its LICENSE and no source maps", (dir) => {
    const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: join(root, dir), encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path);
    expect(files).toContain("LICENSE");
    expect(files.filter((f) => f.endsWith(".map"))).toEqual([]);
    expect(files.some((f) => f.startsWith("dist/"))).toBe(true);
    if (dir === "sdk") expect(files).toEqual(expect.arrayContaining(["bin/qkit.js", "dist/cli.js", "dist/sim.js", "dist/node.js", "dist/index.d.ts"]));
  });
});

describe("one copy of the language core", () => {
  it("the CLI bundle imports the built @qubes-kit/language instead of inlining it", () => {
    const dist = join(root, "sdk/dist");
    const js = readdirSync(dist).filter((f) => f.endsWith(".js"));
    // A class of the core's lexer and a message of its loader: only in language/dist.
    const core = readFileSync(join(root, "language/dist/index.js"), "utf8");
    for (const marker of ["EmbeddedActionsParser", "!compat-4.0"]) expect(core).toContain(marker);
    for (const f of js) {
      const text = readFileSync(join(dist, f), "utf8");
      expect(text, f).not.toContain("EmbeddedActionsParser");
      expect(text, f).not.toMatch(/function checkRule\(/);
    }
    expect(js.filter((f) => /from ["']@qubes-kit\/language["']/.test(readFileSync(join(dist, f), "utf8"))).length).toBeGreaterThan(0);
  });
});

describe("the SDK's entry points, as built", () => {
  const run = (code: string) => {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { cwd: root, encoding: "utf8" });
    expect(r.stderr).toBe("");
    return JSON.parse(r.stdout);
  };

  it("the main entry is the client; the simulator is @qubes-kit/sdk/sim only; Node helpers are @qubes-kit/sdk/node", () => {
    const out = run(`
      const main = await import("@qubes-kit/sdk");
      const sim = await import("@qubes-kit/sdk/sim");
      const node = await import("@qubes-kit/sdk/node");
      console.log(JSON.stringify({
        main: ["Qubes", "Qube", "AdminClient", "UnixSocketTransport", "PolicyAdmin", "systemInfo", "QubesException"].filter((n) => n in main),
        // The simulator is not in the main entry (integrators' bundles stay small).
        mainSim: ["Simulator", "startSimulator", "createSimulator", "simulatorTransport"].filter((n) => n in main),
        sim: ["Simulator", "startSimulator", "createSimulator", "simulatorTransport"].filter((n) => typeof sim[n] === "function"),
        node: ["loadPolicyDirectory", "renderExplanation", "describeDecision", "createNodePolicyFileSystem"].filter((n) => typeof node[n] === "function"),
      }));`);
    expect(out).toEqual({
      main: ["Qubes", "Qube", "AdminClient", "UnixSocketTransport", "PolicyAdmin", "systemInfo", "QubesException"],
      mainSim: [],
      sim: ["Simulator", "startSimulator", "createSimulator", "simulatorTransport"],
      node: ["loadPolicyDirectory", "renderExplanation", "describeDecision", "createNodePolicyFileSystem"],
    });
  });

  it("works from CommonJS too", () => {
    const r = spawnSync(process.execPath, ["-e", `const s = require("@qubes-kit/sdk/sim"); const n = require("@qubes-kit/sdk/node"); console.log(typeof s.Simulator, typeof n.loadPolicyDirectory)`], { cwd: root, encoding: "utf8" });
    expect(r.stdout).toBe("function function\n");
  });
});

describe("Node helpers", () => {
  const demo = join(root, "examples/demo/");
  const system = prepareSystemInfo(JSON.parse(readFileSync(demo + "system.json", "utf8")));

  it.each([
    ["qubes.Filecopy", "work", "vault"],
    ["qubes.GetDate", "work", ""],
    ["qubes.OpenInVM", "work", "@dispvm"],
  ])("loadPolicyDirectory + renderExplanation print what `qkit policy explain %s %s %s` prints", (service, source, target) => {
    const r = loadPolicyDirectory(demo + "policy.d");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const x = explain(r.policy, makeRequest(service, source, target), system);
    const cli = spawnSync(process.execPath, [join(root, "sdk/bin/qkit.js"), "policy", "explain", "--policy-dir", demo + "policy.d", "--system", demo + "system.json", service, source, ...(target ? [target] : [])], { encoding: "utf8" });
    expect(renderExplanation(x)).toBe(cli.stdout);
    expect(cli.stdout).toContain(`decision: ${describeDecision(x.decision)}\n`);
  });

  it("loadPolicyDirectory reports a policy that does not load as data, and a missing directory with the OS's code", () => {
    const bad = loadPolicyDirectory(join(root, "test/fixtures/language/policies/many-errors/policy.d"));
    expect(bad.ok).toBe(false);
    expect(() => loadPolicyDirectory(join(root, "no/such/dir"))).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });
});

describe("typed setProperty", () => {
  it("unknown names, read-only names and wrong value types do not compile (tsc on test/types)", () => {
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    const r = spawnSync(process.execPath, [tsc, "-b", join(root, "test/types")], { cwd: root, encoding: "utf8" });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
    // The file really holds the checks (an unused @ts-expect-error fails the build).
    const text = readFileSync(join(root, "test/types/sdk-properties.ts"), "utf8");
    expect(text).toContain('// @ts-expect-error memory is an integer\n  await work.setProperty("memory", "abc");');
    expect(text.match(/@ts-expect-error/g)!.length).toBeGreaterThanOrEqual(10);
    // On a fresh clone `tsc -b` first builds the language and sdk projects it references.
  }, 300_000);
});

describe("API documentation (npm run docs)", () => {
  it("builds without warnings: modules titled by package, READMEs on module pages, examples on the main entry points", () => {
    const out = mkdtempSync(join(tmpdir(), "qkit-docs-"));
    try {
      const r = spawnSync(process.execPath, [join(root, "node_modules/typedoc/bin/typedoc"), "--out", out], { cwd: root, encoding: "utf8" });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toMatch(/\[warning\]|\[error\]/);
      const page = (rel: string) => readFileSync(join(out, rel), "utf8");
      const modules = page("modules.html");
      for (const name of ["@qubes-kit/language", "@qubes-kit/sdk", "@qubes-kit/lsp"]) expect(modules).toContain(name);
      // Each package's README is its module page.
      for (const [file, dir] of [["_qubes-kit_language.html", "language"], ["_qubes-kit_sdk.html", "sdk"], ["_qubes-kit_lsp.html", "lsp"]] as const) {
        // The first words of the README's first paragraph, markdown removed.
        const para = readFileSync(join(root, dir, "README.md"), "utf8").split("\n").find((l) => l.trim() && !l.startsWith("#"))!;
        const words = para.replace(/\]\([^)]*\)/g, "").replace(/[`*[\]]/g, "").split(/\s+/).slice(0, 5).join(" ");
        expect(page(`modules/${file}`).replace(/<[^>]+>/g, "").replace(/\s+/g, " "), dir).toContain(words);
      }
      const examples: [string, RegExp][] = [
        ["classes/_qubes-kit_sdk._qubes-kit_sdk.Qubes.html", /Qubes\.local\(\)/],
        ["classes/_qubes-kit_sdk._qubes-kit_sdk.Qube.html", /setProperty/],
        ["functions/_qubes-kit_language.evaluate.html", /makeRequest/],
        ["functions/_qubes-kit_language.explain.html", /renderExplanation/],
        ["functions/_qubes-kit_language.loadPolicy.html", /createMemoryFileSystem/],
        ["functions/_qubes-kit_sdk._qubes-kit_sdk.systemInfo.html", /prepareSystemInfo/],
        ["modules/_qubes-kit_sdk._qubes-kit_sdk_sim.html", /startSimulator/],
        ["modules/_qubes-kit_sdk._qubes-kit_sdk_node.html", /loadPolicyDirectory/],
      ];
      for (const [file, re] of examples) {
        const text = page(file).replace(/<[^>]+>/g, "");
        expect(text, file).toContain("Example");
        expect(text, file).toMatch(re);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 240_000);
});
