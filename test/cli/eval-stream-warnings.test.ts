/**
 * `qkit policy eval --requests` warns about names that are not qubes of the
 * system exactly as `qkit policy eval` of the one request does ("did you
 * mean" included: the stream leaves out, before measuring distances, the
 * names that cannot be proposed, and memoises the answer per name), one
 * warning a line, and the decisions are unchanged.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const QUBES = ["work", "work-web", "Work2", "vault", "personal", "sys-net", "sys-firewall", "İstanbul", "disp1234", "a"];
const domains = Object.fromEntries(
  QUBES.map((n, i) => [n, { type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`, internal: null }]),
);

// Unknown names near and far from the qubes: case, prefixes, transpositions, Unicode whose lower case is longer.
const NAMES = ["wrok", "WORK", "work-", "wo", "w", "vualt", "sys-ne", "sys", "personl", "istanbul", "İSTANBUL", "disp", "disp12345", "xyz", "b", "ab", "sys-firewal", "Work", "work2", "zzzzzzzzzzzz"];

function setup(lines: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "qkit-stream-warn-"));
  mkdirSync(join(dir, "policy.d"));
  writeFileSync(join(dir, "policy.d", "30-user.policy"), "qubes.A * @anyvm @anyvm ask\n");
  writeFileSync(join(dir, "system.json"), JSON.stringify({ domains }));
  writeFileSync(join(dir, "requests.jsonl"), lines.join("\n") + "\n");
  return dir;
}

const args = (dir: string) => ["policy", "eval", "--policy-dir", join(dir, "policy.d"), "--system", join(dir, "system.json")];

describe("qkit policy eval --requests: warnings", () => {
  it("warns about each unknown source and target as a single eval does, did-you-mean included", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ source: fc.constantFrom(...NAMES, ...QUBES), target: fc.constantFrom(...NAMES, ...QUBES, "") }), { minLength: 1, maxLength: 6 }), async (reqs) => {
        const lines = reqs.map((r) => JSON.stringify({ service: "qubes.A", argument: "+", ...r }));
        // Each request twice: the second time, the memoised suggestion answers.
        const dir = setup([...lines, ...lines]);
        try {
          const stream = await runQkit([...args(dir), "--requests", join(dir, "requests.jsonl")], { cwd: dir });
          expect(stream.code).toBe(0);
          const want: string[] = [];
          for (let round = 0; round < 2; round++) {
            for (let i = 0; i < reqs.length; i++) {
              const r = reqs[i]!;
              const one = await runQkit([...args(dir), "qubes.A", r.source, r.target], { cwd: dir });
              for (const w of one.err.split("\n").filter(Boolean)) want.push(w.replace("qkit policy eval: warning: ", `qkit policy eval: warning: line ${round * reqs.length + i + 1}: `));
            }
          }
          expect(stream.err.split("\n").filter(Boolean)).toEqual(want);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 25 },
    );
  });

  it("proposes the near names (the suggestion is not lost by leaving far names out)", async () => {
    const dir = setup([JSON.stringify({ service: "qubes.A", argument: "+", source: "wrok", target: "sys-firewal" })]);
    try {
      const r = await runQkit([...args(dir), "--requests", join(dir, "requests.jsonl")], { cwd: dir });
      expect(r.err).toContain("source `wrok` is not a qube");
      expect(r.err).toMatch(/wrok[^\n]*did you mean `work`/);
      expect(r.err).toMatch(/sys-firewal[^\n]*did you mean `sys-firewall`/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
