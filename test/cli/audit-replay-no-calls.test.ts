/**
 * `qkit policy replay` on a journal from which no logged call is read: an
 * empty journal is an answer (exit 0); lines that are none of the policy
 * daemon's (another unit's log, random bytes) or that are its but unreadable
 * are an error with a code and exit 2, never "every call decided as before".
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const replay = fileURLToPath(new URL("../fixtures/flow/replay/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "qkit-replay-none-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const random = readFileSync(fileURLToPath(new URL("../fixtures/audit/yaml/random-bytes.policytest.yaml", import.meta.url)));

const CASES: { name: string; journal: string | Buffer; code: number; err: RegExp | "" }[] = [
  { name: "an empty file", journal: "", code: 0, err: "" },
  { name: "blank lines only", journal: "\n\n  \n", code: 0, err: "" },
  { name: "journalctl's -- No entries --", journal: "-- No entries --\n", code: 0, err: "" },
  { name: "another unit's log", journal: "Dec 06 04:00:00 dom0 systemd[1]: Started Session 3 of User user.\nDec 06 04:00:01 dom0 kernel: usb 1-1: new device\n", code: 2, err: /^qkit policy replay: no logged call in `j`: none of its 2 lines is a line of the qrexec policy daemon; give what `journalctl -u qubes-qrexec-policy-daemon` prints \(short, short-iso, short-precise, cat or json\) \[no-logged-calls\]\n$/ },
  { name: "random bytes", journal: random, code: 2, err: /^qkit policy replay: no logged call in `j`: .* \[no-logged-calls\]\n$/ },
];

describe("policy replay with no logged call", () => {
  it.each(CASES)("$name", async (c) => {
    writeFileSync(join(dir, "j"), c.journal);
    for (const json of [[], ["--json"]]) {
      const r = await runQkit(["policy", "replay", "j", "--policy-dir", join(replay, "draft"), "--system", join(replay, "system.json"), ...json], { cwd: dir });
      expect(r.code).toBe(c.code);
      if (c.err === "") {
        expect(r.err).toBe("");
        if (json.length) expect(JSON.parse(r.out)).toMatchObject({ calls: 0, different: [], same: 0 });
        else expect(r.out).toMatch(/^0 logged calls replayed against /);
      } else {
        expect(r.err).toMatch(c.err);
        expect(r.out).toBe("");
      }
    }
  });
});
