/**
 * `--output FILE` on diff, who-can, what-can, flip and replay, as on test,
 * table, flow and check: the answer written to FILE is exactly what standard
 * output would carry, with the same exit status; a file that cannot be
 * written is [cannot-write], exit 2; an error writes no file.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const audit = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
const replay = fileURLToPath(new URL("../fixtures/flow/replay/", import.meta.url));
const out = mkdtempSync(join(tmpdir(), "qkit-output-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));
const SYS = ["--system", "demo/system.json"];

const COMMANDS: [string, string[]][] = [
  ["policy diff", ["policy", "diff", "demo/policy.d", "demo-edited/policy.d", ...SYS]],
  ["policy diff", ["policy", "diff", "demo/policy.d", "demo-edited/policy.d", "--expand", "--json", ...SYS]],
  ["policy who-can", ["policy", "who-can", "qubes.Gpg", "--policy-dir", "demo/policy.d", ...SYS]],
  ["policy what-can", ["policy", "what-can", "work", "--json", "--policy-dir", "demo/policy.d", ...SYS]],
  ["policy flip", ["policy", "flip", "qubes.Filecopy", "work", "vault", "--policy-dir", "demo/policy.d", ...SYS]],
  ["policy replay", ["policy", "replay", join(replay, "journal.txt"), "--policy-dir", join(replay, "draft"), "--system", join(replay, "system.json")]],
];

describe("--output FILE", () => {
  it.each(COMMANDS)("%s %#: the file holds what standard output would, same exit status", async (name, argv) => {
    const plain = await runQkit(argv, { cwd: audit });
    expect(plain.out.length).toBeGreaterThan(0);
    const file = join(out, `${name.replace(/ /g, "-")}-${argv.length}.txt`);
    const r = await runQkit([...argv, "--output", file], { cwd: audit });
    expect([r.code, r.out, r.err]).toEqual([plain.code, "", plain.err]);
    expect(readFileSync(file, "utf8")).toBe(plain.out);
    const eq = await runQkit([...argv, `--output=${file}2`], { cwd: audit });
    expect(eq.code).toBe(plain.code);
    expect(readFileSync(file + "2", "utf8")).toBe(plain.out);
  });

  it.each(COMMANDS)("%s %#: a file that cannot be written is [cannot-write], exit 2", async (name, argv) => {
    const r = await runQkit([...argv, "--output", join(out, "no-such-dir", "x.txt")], { cwd: audit });
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toMatch(new RegExp(`^qkit ${name}: cannot write \`[^\`]*x\\.txt\`: No such file or directory; check that its directory exists \\[cannot-write\\]\\n$`));
  });

  it("an error writes no file", async () => {
    const file = join(out, "never.txt");
    const r = await runQkit(["policy", "who-can", "qubes.Gpg", "--policy-dir", "bad-policy/policy.d", ...SYS, "--output", file], { cwd: audit });
    expect(r.code).toBe(2);
    expect(existsSync(file)).toBe(false);
  });
});
