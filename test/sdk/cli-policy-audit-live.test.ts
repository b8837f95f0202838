/**
 * The auditor's commands against a live system: the policy and the system
 * model read through the Admin API (`live`, `--socket`), served by the
 * simulator seeded with the demo system and the edited demo policy.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";

const fixtures = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "qkit-audit-live-"));
const socket = join(dir, "qubesd.sock");
let server: SimulatorServer;

beforeAll(async () => {
  server = await startSimulator({ socket, system: JSON.parse(readFileSync(fixtures + "demo/system.json", "utf8")), policy: fixtures + "demo-edited/policy.d" });
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("live policy and system", () => {
  it("diffs a directory against the live policy (decided on the live system)", async () => {
    const r = await runQkit(["policy", "diff", "demo/policy.d", "live", "--system", "live", "--socket", socket], { cwd: fixtures });
    expect(r.err).toBe("");
    expect(r.code).toBe(1);
    expect(r.out).toBe(readFileSync(fixtures + "cli/diff-text/expected.txt", "utf8").replace(/exit 1\n$/, ""));
    const same = await runQkit(["policy", "diff", "demo-edited/policy.d", "live", "--system", "live", "--socket", socket], { cwd: fixtures });
    expect(same.code).toBe(0);
  });

  it("runs a test file whose system is `live`", async () => {
    writeFileSync(join(dir, "live.policytest.yaml"), `policy: ${fixtures}demo-edited/policy.d\nsystem: live\ntests:\n  - qubes.Gpg work vault => ask vault\n  - qubes.Filecopy untrusted work => ask\n`);
    const r = await runQkit(["policy", "test", "--socket", socket, "live.policytest.yaml"], { cwd: dir });
    expect(r.out).toBe("2 passed, 0 failed (2 tests in 1 file)\n");
    expect(r.code).toBe(0);
  });

  it("answers who-can from the live policy", async () => {
    const r = await runQkit(["policy", "who-can", "qubes.Gpg", "--target", "vault", "--policy-dir", "live", "--system", "live", "--socket", socket], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.out.split("\n")[0]).toBe("qubes.Gpg to vault: 0 allowed, 1 asked, 20 denied (not listed; --all lists them)");
    expect(r.out).toMatch(/^work +vault +30-user\.policy:18 +ask \(default vault\): /m);
  });
});
