/**
 * One behaviour for `--output FILE` and `--json` across the commands that
 * write a document (`sdk/src/cli/output.ts`): a file that cannot be written
 * is one line in the operating system's wording with `[cannot-write]`, exit
 * 2, and nothing on standard output; `--json` is `--format json`.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const audit = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
const flowMachine = fileURLToPath(new URL("../fixtures/flow/machine/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "qkit-output-"));
mkdirSync(join(dir, "a-directory"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const P = ["--policy-dir", audit + "demo/policy.d", "--system", audit + "demo/system.json"];
/** Each command that writes a document, with arguments that succeed (exit 0 or 1). */
const commands: { name: string; args: string[]; json: boolean }[] = [
  { name: "policy test", args: ["policy", "test", audit + "tests/demo.policytest.yaml"], json: true },
  { name: "policy table", args: ["policy", "table", "qubes.Gpg", ...P], json: true },
  { name: "policy check", args: ["policy", "check", audit + "demo/policy.d"], json: false },
  { name: "flow", args: ["flow", "work", "vault", "--max-hops", "2", "--policy-dir", flowMachine + "policy.d", "--system", flowMachine + "system.json"], json: true },
];

const failures: { name: string; file: string; os: string; todo: string }[] = [
  { name: "a missing directory", file: "no-such-dir/out.txt", os: "No such file or directory", todo: "check that its directory exists" },
  { name: "a directory", file: "a-directory", os: "Is a directory", todo: "give the name of a file, not a directory" },
];

describe("--output FILE that cannot be written", () => {
  for (const c of commands) {
    for (const f of failures) {
      it(`${c.name}: ${f.name}`, async () => {
        const r = await runQkit([...c.args, "--output", f.file], { cwd: dir });
        expect(r.err).toBe(`qkit ${c.name}: cannot write \`${f.file}\`: ${f.os}; ${f.todo} [cannot-write]\n`);
        expect(r.out).toBe("");
        expect(r.code).toBe(2);
      });
    }
  }

  it("policy test: coverage to a file that cannot be written", async () => {
    const r = await runQkit(["policy", "test", audit + "tests/demo.policytest.yaml", "--coverage", "--coverage-output", "no-such-dir/cov.txt"], { cwd: dir });
    expect(r.err).toBe("qkit policy test: cannot write `no-such-dir/cov.txt`: No such file or directory; check that its directory exists [cannot-write]\n");
    expect(r.code).toBe(2);
  });

  it.each(commands)("$name: a writable --output gets what standard output gets", async (c) => {
    const plain = await runQkit(c.args, { cwd: dir });
    const written = await runQkit([...c.args, "--output", "out.txt"], { cwd: dir });
    expect(written.code).toBe(plain.code);
    expect(written.out).toBe("");
    // policy check colours and notes only on a terminal; here both are plain.
    expect(readFileSync(join(dir, "out.txt"), "utf8")).toBe(plain.out);
  });
});

describe("--json is --format json", () => {
  it.each(commands.filter((c) => c.json))("$name", async (c) => {
    const alias = await runQkit([...c.args, "--json"], { cwd: dir });
    const long = await runQkit([...c.args, "--format", "json"], { cwd: dir });
    expect(alias).toEqual(long);
    expect(() => JSON.parse(alias.out)).not.toThrow();
    const both = await runQkit([...c.args, "--json", "--format", "text"], { cwd: dir });
    expect(both.err).toBe(`qkit ${c.name}: \`--json\` is \`--format json\`, and \`--format text\` was given too: keep one [usage]\n`);
    expect(both.code).toBe(2);
  });
});
