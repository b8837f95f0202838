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
import { Simulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { FIXTURES, Renaming, call, copyDir, escape, maskVolatile, openStream, takeFrames, tmpDir, type Frame, type Stream } from "./sim-helpers.js";

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

/**
 * The recorder opened these event streams before the calls whose events they
 * show (key: the first of those calls). Replaying, we open them at the same
 * point and compare every frame, not just the first.
 */
const STREAMS_OPENED_BEFORE: Record<string, string> = {
  "149-admin.vm.device.pci.Assign-dom0-00_1c.0-00_00.0-0x8086-0x2723-p028000-sys-net": "158-admin.Events-sys-net-device-assignment",
  "163-admin.vm.property.Set-memory-during-events": "169-admin.Events-dom0-config-changes",
  "176-admin.vm.Start-personal": "187-admin.Events-personal-start-shutdown",
  "188-admin.vm.Kill-sys-net": "190-admin.Events-dom0-kill-and-shutdown",
};

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

  const early = new Map<string, Promise<Stream>>();
  for (const t of transcripts) {
    const streamId = STREAMS_OPENED_BEFORE[t.id];
    if (streamId) {
      it(`opens the stream of ${streamId} before ${t.id}`, async () => {
        const st = transcripts.find((x) => x.id === streamId)!;
        const p = openStream(socket, Buffer.from(st.request.raw_b64, "base64"));
        early.set(streamId, p);
        await p;
      });
    }
    if (Object.values(STREAMS_OPENED_BEFORE).includes(t.id)) {
      it(`${t.id}: the whole recorded stream`, async () => {
        const stream = await early.get(t.id)!;
        const expected = takeFrames(Buffer.from(t.response.raw_b64, "base64")).frames;
        const frames = await stream.waitFor(expected.length);
        stream.close();
        const show = (f: Frame[]) => f.map((x) => escape(x.raw));
        expect(show(frames.slice(0, expected.length))).toEqual(show(expected));
        expect(frames.length).toBe(expected.length);
      });
    }
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
      // Compare the raw bytes (as latin1 text), shown escaped when they differ.
      const exp = maskVolatile(want.toString("latin1"), t.volatile);
      const renamed = renaming.apply(maskVolatile(actual.toString("latin1"), t.volatile), exp);
      expect(renamed.error).toBeUndefined();
      expect(escape(Buffer.from(renamed.text, "latin1"))).toBe(escape(Buffer.from(exp, "latin1")));
    });
  }
});
