/**
 * The auditor's queries on a large system run in bounded memory: who-can,
 * what-can and table write their answer as they make it, from one decision
 * grid, instead of holding every row (each with its own decision) and the
 * whole document. Each command runs as a `qkit` process whose heap is capped
 * far below what the rows as objects take (the answers are tens of MB), and
 * must finish with the whole answer. No timing is asserted (bench/scale.mjs
 * measures time and peak RSS on 2,000 qubes).
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("../../sdk/dist/cli.js", import.meta.url));
const QUBES = 500;
const dir = mkdtempSync(join(tmpdir(), "qkit-audit-scale-"));
afterAll(() => (process.env.QKIT_KEEP ? undefined : rmSync(dir, { recursive: true, force: true })));

// 500 qubes in four profiles, every 25th a disposable template; rules by tag and type, as a dom0 policy has.
const domains: Record<string, unknown> = { dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", internal: null, relayvm: null, transport_rpc: null, label: "0x000000" } };
for (let i = 1; i < QUBES; i++) {
  const tags = [["work"], ["personal"], ["untrusted"], []][i % 4]!;
  domains[`q${String(i).padStart(3, "0")}`] = { type: i % 10 === 0 ? "TemplateVM" : "AppVM", tags, template_for_dispvms: i % 25 === 0, default_dispvm: null, power_state: i % 3 ? "Halted" : "Running", internal: null, relayvm: null, transport_rpc: null, label: "0xcc0000" };
}
writeFileSync(join(dir, "system.json"), JSON.stringify({ domains }));
mkdirSync(join(dir, "policy.d"));
writeFileSync(
  join(dir, "policy.d", "30-user.policy"),
  [
    "qubes.VMShell  *  dom0  @anyvm  allow",
    "qubes.VMShell  *  @tag:work  @tag:work  allow",
    "qubes.VMShell  *  @type:TemplateVM  @default  allow target=q001",
    "qubes.VMShell  *  @anyvm  @dispvm  allow",
    "qubes.Filecopy  *  @tag:untrusted  @tag:work  deny",
    "qubes.Filecopy  *  @anyvm  @anyvm  ask",
    "*  *  @anyvm  @anyvm  deny",
    "",
  ].join("\n"),
);
const TARGETS = QUBES + 3 + QUBES / 25 - 1;

/** Runs qkit with a capped heap; resolves with the exit code, the number of bytes and lines written, the last line, and standard error. */
function run(args: string[], heapMb = 40): Promise<{ code: number | null; bytes: number; lines: number; last: string; err: string }> {
  return new Promise((done) => {
    const p = spawn(process.execPath, [`--max-old-space-size=${heapMb}`, CLI, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let bytes = 0;
    let lines = 0;
    let tail = "";
    let err = "";
    p.stdout.on("data", (b: Buffer) => {
      bytes += b.length;
      for (const c of b) if (c === 10) lines++;
      tail = (tail + b.toString("utf8")).slice(-4096);
    });
    p.stderr.on("data", (b: Buffer) => (err += b.toString()));
    p.on("close", (code) => done({ code, bytes, lines, last: tail.trimEnd().split("\n").at(-1) ?? "", err }));
  });
}

const SYS = ["--policy-dir", "policy.d", "--system", "system.json"];

describe("queries on a 500-qube system with a 40 MB heap", () => {
  it.each([
    // [what, arguments, lines expected, how the answer ends]
    ["who-can, every source and target, JSON", ["policy", "who-can", "qubes.VMShell", "--all", "--json", ...SYS], (QUBES * TARGETS) as number, /^\{"service":"qubes\.VMShell",.*"decision":\{.*\}\}$/],
    ["who-can, every source and target, text", ["policy", "who-can", "qubes.VMShell", "--all", ...SYS], QUBES * TARGETS + 2, /^q499 +@dispvm:q475 +30-user\.policy:7 +deny$/],
    ["what-can, text", ["policy", "what-can", "q004", "--all", ...SYS], 3 * TARGETS + 2, /^\* +@dispvm:q475 +30-user\.policy:7 +deny$/],
    ["table, text", ["policy", "table", "qubes.VMShell", ...SYS], QUBES + 1, /^q499 /],
    ["table, html", ["policy", "table", "qubes.VMShell", "--format", "html", ...SYS], undefined, /^<\/html>$/],
    ["table, compact JSON", ["policy", "table", "qubes.Filecopy", "--format", "json", ...SYS], 1, /\]\]\}$/],
  ] as [string, string[], number | undefined, RegExp][])("%s: the whole answer, streamed", async (_what, args, lines, last) => {
    const r = await run(args);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    if (lines !== undefined) expect(r.lines).toBe(lines);
    expect(r.last).toMatch(last);
  });
});
