/**
 * The core acceptance test of the simulator: the requests of the golden
 * qubesd transcripts, replayed in order over a real Unix socket against a
 * fresh simulator (with the recording's policy), give the recorded replies
 * byte for byte, up to the parts each transcript marks volatile, a consistent
 * renaming of generated identifiers, and event streams past their first frame.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Simulator, type SimulatorServer } from "@qubes-kit/sdk";
import { FIXTURES, Renaming, call, copyDir, escape, maskVolatile, openStream, tmpDir } from "./sim-helpers.js";

interface Transcript {
  id: string;
  request: { raw_b64: string };
  response: { raw_b64: string; parsed: { kind: string } };
  volatile: string[];
}

const dir = path.join(FIXTURES, "admin-api", "qubesd");
const files = fs
  .readdirSync(dir)
  .filter((f) => /^[0-8]\d\d-.*\.json$/.test(f))
  .sort();
const transcripts: Transcript[] = files.map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")));

describe("replay of the golden qubesd transcripts", () => {
  let server: SimulatorServer;
  let socket: string;
  const renaming = new Renaming();
  beforeAll(async () => {
    const tmp = tmpDir();
    const policyDir = path.join(tmp, "policy.d");
    copyDir(path.join(FIXTURES, "sim", "replay-policy.d"), policyDir);
    socket = path.join(tmp, "qubesd.sock");
    server = await new Simulator({ policy: policyDir }).listen(socket);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("has all 206 transcripts", () => {
    expect(transcripts).toHaveLength(206);
  });

  for (const t of transcripts) {
    it(t.id, async () => {
      const request = Buffer.from(t.request.raw_b64, "base64");
      const expected = Buffer.from(t.response.raw_b64, "base64");
      let actual: Buffer;
      let want = expected;
      if (t.response.parsed.kind === "events") {
        const stream = await openStream(socket, request);
        const [first] = await stream.waitFor(1);
        stream.close();
        actual = first!.raw;
        want = expected.subarray(0, actual.length);
      } else {
        actual = await call(socket, request);
      }
      const exp = maskVolatile(escape(want), t.volatile);
      const renamed = renaming.apply(maskVolatile(escape(actual), t.volatile), exp);
      expect(renamed.error).toBeUndefined();
      expect(renamed.text).toBe(exp);
    });
  }
});
