/**
 * `qkit flow`, `qkit policy flip` and `qkit policy replay` as a user runs
 * them: data-driven cases (`test/fixtures/flow/cli/cases.json`), each with
 * its expected standard output, standard error and exit status in
 * `NAME.txt`. Set QKIT_UPDATE_GOLDENS=1 to rewrite the expected files (then
 * review the diff).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { main } from "../../sdk/src/cli/main.js";
import { runQkit } from "../helpers/qkit.js";

const root = fileURLToPath(new URL("../fixtures/flow/", import.meta.url));
const cases = JSON.parse(readFileSync(root + "cli/cases.json", "utf8")) as { name: string; cwd: string; args: string[]; code: number }[];

function transcript(r: { code: number; out: string; err: string }): string {
  return `${r.out}--- stderr\n${r.err}--- exit ${r.code}\n`;
}

describe("qkit flow / policy flip / policy replay (cases)", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const r = await runQkit(c.args, { cwd: root + c.cwd });
      const file = `${root}cli/${c.name}.txt`;
      if (process.env["QKIT_UPDATE_GOLDENS"] === "1") writeFileSync(file, transcript(r));
      expect(r.code).toBe(c.code);
      expect(existsSync(file)).toBe(true);
      expect(transcript(r)).toBe(readFileSync(file, "utf8"));
    });
  }
});

const machine = { cwd: root + "machine" };
const inputs = ["--policy-dir", "policy.d", "--system", "system.json"];

describe("qkit flow output formats", () => {
  it("--format json gives every hop with every edge and its evidence", async () => {
    const r = await runQkit(["flow", "work", "@network", "--format", "json", "--max-paths", "3", ...inputs], machine);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { from: string; to: string; paths: { nodes: string[]; ask: boolean; hops: { from: string; to: string; edges: { via: string; evidence: { kind: string } }[] }[] }[] };
    expect(j.from).toBe("work");
    expect(j.paths[0]!.nodes).toEqual(["work", "@network"]);
    expect(j.paths[0]!.hops[0]!.edges[0]).toMatchObject({ via: "network", evidence: { kind: "property", property: "firewall", qube: "work" } });
    for (const p of j.paths) expect(p.hops.map((h) => h.from).concat(p.hops[p.hops.length - 1]!.to)).toEqual(p.nodes);
  });

  it("--format html is one self-contained page (no scripts, nothing fetched)", async () => {
    const r = await runQkit(["flow", "vault", "work", "--format", "html", ...inputs], machine);
    expect(r.code).toBe(0);
    expect(r.out.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(r.out).not.toMatch(/<script|<link|src=|href=|@import|url\(/i);
    expect(r.out).toContain("qubes.Gpg: work -&gt; vault: allow (30-user.policy:19); data comes back from vault");
  });

  it("--from honours --max-hops: exactly the nodes whose shortest path is that short, each path within it", async () => {
    const all = JSON.parse((await runQkit(["flow", "--from", "mgmt", "--format", "json", "--max-hops", "20", ...inputs], machine)).out) as { reachable: { node: string; path: { nodes: string[] }; automatic_path?: { nodes: string[] } }[] };
    const longest = Math.max(...all.reachable.map((r) => r.path.nodes.length - 1));
    expect(longest).toBeGreaterThan(1);
    for (let k = 1; k <= longest; k++) {
      const r = await runQkit(["flow", "--from", "mgmt", "--format", "json", "--max-hops", String(k), ...inputs], machine);
      const j = JSON.parse(r.out) as { max_hops: number; reachable: { node: string; path: { nodes: string[] }; automatic_path?: { nodes: string[] } }[] };
      expect(j.max_hops).toBe(k);
      expect(j.reachable.map((x) => x.node)).toEqual(all.reachable.filter((x) => x.path.nodes.length - 1 <= k).map((x) => x.node));
      for (const x of j.reachable) {
        expect(x.path.nodes.length - 1).toBeLessThanOrEqual(k);
        if (x.automatic_path) expect(x.automatic_path.nodes.length - 1).toBeLessThanOrEqual(k);
      }
    }
  });

  it("--from with --format json marks what is reachable without the user", async () => {
    const r = await runQkit(["flow", "--from", "personal", "--format", "json", ...inputs], machine);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { reachable: { node: string; automatic: boolean }[] };
    expect(j.reachable.find((x) => x.node === "disp4821")).toMatchObject({ automatic: true });
    expect(j.reachable.find((x) => x.node === "@network")).toMatchObject({ automatic: true });
  });

  it("--output writes the answer to a file", async () => {
    const dir = (await import("node:fs")).mkdtempSync((await import("node:os")).tmpdir() + "/qkit-flow-");
    const r = await runQkit(["flow", "personal", "disp4821", "--format", "dot", "--output", dir + "/g.dot", ...inputs], machine);
    expect(r.code).toBe(0);
    expect(r.out).toBe("");
    expect(readFileSync(dir + "/g.dot", "utf8")).toMatch(/^digraph flow \{/);
  });
});

describe("qkit policy flip --json", () => {
  it("lists edits with the decision after each, as policy eval --json prints decisions", async () => {
    const r = await runQkit(["policy", "flip", "qubes.Filecopy", "work", "personal", "--json", ...inputs], machine);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { before: { action: string }; suggestions: { edit: { kind: string }; after: { action: string } }[] };
    expect(j.before.action).toBe("allow");
    expect(j.suggestions.map((s) => s.edit.kind)).toContain("remove");
    expect(j.suggestions.some((s) => s.after.action === "deny")).toBe(true);
  });
});

describe("qkit policy replay", () => {
  it("reads the journal from standard input and prints one JSON document", async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = "";
    stdout.on("data", (d) => (out += d));
    stdin.end(readFileSync(root + "replay/journal.txt"));
    const code = await main(["policy", "replay", "-", "--json", "--policy-dir", "draft", "--system", "system.json"], { stdin, stdout, stderr, env: {}, cwd: root + "replay" });
    expect(code).toBe(1);
    const j = JSON.parse(out) as { calls: number; different: { line: number; verdict: string }[]; asks: number; same: number; malformed: { line: number }[]; ignored: number };
    expect(j.calls).toBe(11);
    expect(j.different.map((d) => d.line)).toEqual([3, 9, 13, 17]);
    expect(j.asks + j.same + j.different.length).toBe(j.calls);
    expect(j.malformed.map((m) => m.line)).toEqual([11, 15, 16]);
    expect(j.ignored).toBe(3);
  });
});
