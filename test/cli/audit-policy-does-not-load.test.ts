/**
 * A policy that does not load: one message and one code for every auditor
 * command, naming the policy and its file as the user gave them (never the
 * engine's /etc/qubes/policy.d), with what to do, exit 2 (`policy test`:
 * the test fails, exit 1).
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const fixtures = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
const BAD = "bad-policy/policy.d";
const MESSAGE =
  "the policy `bad-policy/policy.d` does not load (the daemon would deny every call): bad-policy/policy.d/30-user.policy:1: invalid action: alow; fix it (`qkit policy check bad-policy/policy.d` lists every error) [policy-does-not-load]";
const SYS = ["--system", "demo/system.json"];

const COMMANDS: [string, string[]][] = [
  ["policy who-can", ["policy", "who-can", "qubes.Gpg", "--policy-dir", BAD, ...SYS]],
  ["policy what-can", ["policy", "what-can", "work", "--policy-dir", BAD, ...SYS]],
  ["policy table", ["policy", "table", "qubes.Gpg", "--policy-dir", BAD, ...SYS]],
  ["policy diff", ["policy", "diff", BAD, "demo/policy.d", ...SYS]],
  ["policy flip", ["policy", "flip", "qubes.Gpg", "work", "vault", "--policy-dir", BAD, ...SYS]],
  ["policy replay", ["policy", "replay", "../flow/replay/journal.txt", "--policy-dir", BAD, ...SYS]],
  ["flow", ["flow", "work", "vault", "--policy-dir", BAD, ...SYS]],
];

describe("a policy that does not load", () => {
  it.each(COMMANDS)("%s: one line with the user's path, what to do, [policy-does-not-load], exit 2", async (name, argv) => {
    const r = await runQkit(argv, { cwd: fixtures });
    expect(r.code).toBe(2);
    expect(r.err.split("\n").filter((l) => l.startsWith(`qkit ${name}:`))).toEqual([`qkit ${name}: ${MESSAGE}`]);
    expect(r.err).not.toContain("/etc/qubes/policy.d");
    expect(r.out).toBe("");
  });

  it("policy test: each test fails with the same message", async () => {
    const r = await runQkit(["policy", "test", "bad-policy/bad.policytest.yaml"], { cwd: fixtures });
    expect(r.code).toBe(1);
    expect(r.out).toBe(`FAIL bad-policy/bad.policytest.yaml:4: qubes.Filecopy work -> vault: ${MESSAGE}\n0 passed, 1 failed (1 test in 1 file)\n`);
  });
});
