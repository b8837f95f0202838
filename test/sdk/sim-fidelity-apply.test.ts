/**
 * The Admin API calls `qkit template apply` sends are the ones recorded from
 * the real qubesd in `test/fixtures/sim/fidelity/probes-apply.txt` (whose
 * replies `sim-fidelity.test.ts` checks against the simulator): the stack
 * `apply-harness.qubes.yaml` applied to the recording's starting system on a
 * simulator must issue exactly those calls, in that order, so the recorded
 * probes keep covering what an apply really does. Its rehearsal and the steps
 * run on the simulator, so every call of the journal succeeded there too.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Simulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";
import { FIXTURES, call, tmpDir } from "./sim-helpers.js";

const dir = path.join(FIXTURES, "sim", "fidelity");
const recorded = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(dir, "probes-apply.json.gz"))).toString("utf8")) as { setup: string[] };

/** The probe lines of the apply itself: up to the reads of the resulting state. */
function probeLines(): string[] {
  const text = fs.readFileSync(path.join(dir, "probes-apply.txt"), "latin1");
  const head = text.slice(0, text.indexOf("# the state the apply left"));
  return head.split("\n").filter((l) => l && !l.startsWith("#"));
}

interface JournalCall {
  event: string;
  ok?: boolean;
  call?: { method: string; dest: string; arg: string; payload: string };
}

describe("qkit template apply on the simulator", () => {
  let work: string;
  let socket: string;
  let server: SimulatorServer;
  beforeAll(async () => {
    work = tmpDir("qkit-apply-fidelity-");
    socket = path.join(work, "qubesd.sock");
    server = await new Simulator().listen(socket);
    for (const req of recorded.setup) expect((await call(socket, Buffer.from(req, "latin1"))).subarray(0, 2).toString("latin1"), req).toBe("0\0");
    fs.copyFileSync(path.join(dir, "apply-harness.qubes.yaml"), path.join(work, "harness.qubes.yaml"));
    fs.mkdirSync(path.join(work, "policy.d"));
  });
  afterAll(async () => {
    await server?.close();
  });

  it("sends exactly the calls recorded from the real qubesd, each accepted", async () => {
    const journal = path.join(work, "journal.ndjson");
    const run = await runQkit(["template", "apply", "harness.qubes.yaml", "--yes", "--socket", socket, "--policy-dir", "policy.d", "--journal", journal], { cwd: work });
    expect([run.code, run.err]).toEqual([0, ""]);
    const events = fs
      .readFileSync(journal, "utf8")
      .split("\n")
      .filter((l) => l)
      .map((l) => JSON.parse(l) as JournalCall);
    const calls = events.filter((e) => e.event === "call" && e.call && !e.call.method.startsWith("policy."));
    expect(calls.every((e) => e.ok === true)).toBe(true);
    let tokens = 0;
    const lines = calls.map(({ call: c }) => {
      const payload = c!.method === "admin.vm.volume.CloneTo" ? `{token:${tokens++}}` : c!.payload.replace(/\n/g, "\\n");
      return `${c!.method}+${c!.arg} dom0 name ${c!.dest}\\0${payload}`;
    });
    expect(lines).toEqual(probeLines());
    // the policy file went to the directory, not through qubesd
    expect(fs.readdirSync(path.join(work, "policy.d"))).toEqual(["40-qkit-harness-harness.policy"]);
  });

  it("leaves nothing to do afterwards", async () => {
    const run = await runQkit(["template", "plan", "harness.qubes.yaml", "--socket", socket, "--policy-dir", "policy.d"], { cwd: work });
    expect([run.code, run.err]).toEqual([0, ""]);
    expect(run.out).toContain("No changes. The system matches the stack.");
  });
});
