/**
 * A policy file whose bytes are not UTF-8 (a Latin-1 comment, a stray byte):
 * the qrexec daemon reads policy files as UTF-8 text and its read fails
 * (UnicodeDecodeError, observed with qubes-core-qrexec's `FilePolicy` on
 * 2026-12-07), so no policy loads and every call is denied. `check` says so
 * where the byte is, in every way of checking; `eval` denies with the reason.
 * Before, the bytes were read as U+FFFD and the policy passed.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkit-utf8-"));
  fs.mkdirSync(path.join(dir, "policy.d", "include"), { recursive: true });
  fs.writeFileSync(path.join(dir, "policy.d", "30-user.policy"), Buffer.concat([Buffer.from("qubes.Gpg * work vault allow\n# caf"), Buffer.from([0xe9]), Buffer.from("\n")]));
  fs.mkdirSync(path.join(dir, "included.d", "include"), { recursive: true });
  fs.writeFileSync(path.join(dir, "included.d", "30-user.policy"), "!include include/latin1\nqubes.Gpg * work vault allow\n");
  fs.writeFileSync(path.join(dir, "included.d", "include", "latin1"), Buffer.from([0x71, 0x75, 0x62, 0x65, 0x73, 0x2e, 0x47, 0x70, 0x67, 0x20, 0x2a, 0x20, 0xff, 0x0a]));
  fs.writeFileSync(path.join(dir, "system.json"), JSON.stringify({ domains: { dom0: { type: "AdminVM", tags: [], power_state: "Running" }, work: { type: "AppVM", tags: [], power_state: "Halted" }, vault: { type: "AppVM", tags: [], power_state: "Halted" } } }));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const MESSAGE = "30-user.policy is not UTF-8 text: byte 0xe9 at offset 34 (invalid continuation byte); the engine fails to read it (UnicodeDecodeError), so every call is denied";

describe("a policy file that is not UTF-8", () => {
  it.each([
    [["policy", "check", "policy.d"], `policy.d/30-user.policy:2:6: error[not-utf8]: ${MESSAGE}`],
    [["policy", "check", "--engine-only", "policy.d"], `policy.d/30-user.policy:2:6: error[not-utf8]: ${MESSAGE}`],
    [["policy", "check", "policy.d/30-user.policy"], `policy.d/30-user.policy:2:6: error[not-utf8]: policy.d/${MESSAGE}`],
    [["policy", "check", "included.d"], "included.d/include/latin1:1:13: error[not-utf8]: include/latin1 is not UTF-8 text: byte 0xff at offset 12 (invalid start byte); the engine fails to read it (UnicodeDecodeError), so every call is denied"],
  ])("qkit %j fails where the byte is", async (argv, first) => {
    const r = await runQkit(argv, { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.out.split("\n")[0]).toBe(first);
    expect(r.out).toContain("= help: save the file as UTF-8");
    expect(r.err).toBe("1 error: the real engine would deny every call\n");
  });

  it("denies every call, with the reason", async () => {
    const r = await runQkit(["policy", "eval", "--policy-dir", "policy.d", "--system", "system.json", "qubes.Gpg", "work", "vault"], { cwd: dir });
    expect([r.code, r.out]).toEqual([1, `deny (the policy does not load, so every call is denied): ${MESSAGE}\n`]);
  });
});
