/**
 * `qkit policy eval --requests` splits its input into lines as readline
 * does (`\n`, `\r\n` or a lone `\r`), wherever the reads cut it: a regular
 * file is read in 64 KiB chunks, standard input in whatever pieces arrive,
 * and a `\r\n` or a line (even a multi-byte character) may straddle two of
 * them. Each run's answers and warnings must equal those of the same lines
 * written one per `\n`-ended line.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { main } from "../../sdk/src/cli/main.js";

const POLICY = ["qubes.A * @anyvm @anyvm ask default_target=q1", "qubes.B * q0 @anyvm allow target=q2", "* * @anyvm @anyvm deny"].join("\n");
const SYSTEM = {
  domains: Object.fromEntries(
    ["dom0", "q0", "q1", "q2", "qé"].map((n, i) => [
      n,
      { type: i === 0 ? "AdminVM" : "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: `00000000-0000-0000-0000-00000000000${i}`, internal: null },
    ]),
  ),
};

/** Runs qkit with `input` as standard input, given in the pieces listed. */
async function run(argv: string[], cwd: string, pieces: Buffer[] = []): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d) => (out += d));
  stderr.on("data", (d) => (err += d));
  const code = await main(argv, { stdout, stderr, stdin: Readable.from(pieces), env: {}, cwd });
  return { code, out, err };
}

const request = fc
  .record({
    service: fc.constantFrom("qubes.A", "qubes.B", "qubes.C"),
    source: fc.constantFrom("q0", "q1", "qé", "ghost"),
    target: fc.constantFrom("q1", "q2", "", "@dispvm", "nope"),
    // Long lines, so that a few hundred of them cross the 64 KiB reads of a file.
    pad: fc.integer({ min: 0, max: 400 }),
  })
  .map(({ pad, ...r }) => JSON.stringify({ ...r, argument: "+" + "x".repeat(pad) }));
const ending = fc.constantFrom("\n", "\r\n", "\r");

describe("qkit policy eval --requests splits lines", () => {
  it("as readline does, wherever the reads of a file or of standard input cut them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qkit-stream-split-"));
    mkdirSync(join(dir, "policy.d"));
    writeFileSync(join(dir, "policy.d", "30-user.policy"), POLICY + "\n");
    writeFileSync(join(dir, "system.json"), JSON.stringify(SYSTEM));
    const base = ["policy", "eval", "--policy-dir", join(dir, "policy.d"), "--system", join(dir, "system.json"), "--requests"];
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(request, ending), { minLength: 1, maxLength: 400 }),
          fc.boolean(),
          fc.array(fc.integer({ min: 1, max: 70000 }), { maxLength: 12 }),
          fc.integer({ min: 0, max: 3 }),
          async (lines, lastEnded, cuts, crlfAt) => {
            let text = lines.map(([l, e], i) => l + (i < lines.length - 1 || lastEnded ? e : "")).join("");
            // Sometimes a \r\n sits exactly across the first 64 KiB read of the file.
            if (crlfAt === 0 && Buffer.byteLength(text) > 65536) {
              const bytes = Buffer.from(text);
              const head = bytes.subarray(0, 65535).toString().replace(/[\r\n\uFFFD]+$/, "");
              text = head + " ".repeat(65535 - Buffer.byteLength(head)) + "\r\n" + bytes.subarray(65535).toString().replace(/^[\r\n]/, "");
            }
            writeFileSync(join(dir, "requests.jsonl"), text);
            const normal = text.split(/\r\n|\r|\n/);
            if (normal[normal.length - 1] === "") normal.pop();
            writeFileSync(join(dir, "normal.jsonl"), normal.map((l) => l + "\n").join(""));
            const want = await run([...base, join(dir, "normal.jsonl")], dir);
            const file = await run([...base, join(dir, "requests.jsonl")], dir);
            const bytes = Buffer.from(text);
            const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
            const pieces = [0, ...at, bytes.length].slice(1).map((end, i, ends) => bytes.subarray(i === 0 ? 0 : ends[i - 1]!, end));
            const stdin = await run([...base, "-"], dir, pieces);
            expect(want.out.split("\n").length - 1).toBe(normal.filter((l) => l.trim()).length);
            // The summary of malformed lines names the input as given.
            const named = (err: string, name: string) => err.split(`\`${name}\``).join("`INPUT`");
            for (const [got, name] of [[file, join(dir, "requests.jsonl")], [stdin, "-"]] as const) {
              expect(got.code).toBe(want.code);
              expect(got.out).toBe(want.out);
              expect(named(got.err, name)).toBe(named(want.err, join(dir, "normal.jsonl")));
            }
          },
        ),
        { numRuns: 40 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
