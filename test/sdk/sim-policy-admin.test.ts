/**
 * The policy admin API of the simulator against the 19 golden `policy-admin/`
 * transcripts (stdout, stderr and exit code byte for byte), over the socket:
 * the simulator frames the outcome like a qubesd reply and
 * `policyReplyToServiceResult` recovers what the service printed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Simulator, policyReplyToServiceResult, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { FIXTURES, call, copyDir, escape, tmpDir } from "./sim-helpers.js";

interface PolicyTranscript {
  id: string;
  request: { service_full_name: string; source: string; stdin_b64: string };
  response: { exit_code: number; stdout_b64: string; stderr_b64: string };
}

const dir = path.join(FIXTURES, "admin-api", "policy-admin");
const transcripts: PolicyTranscript[] = fs
  .readdirSync(dir)
  .filter((f) => /^\d{3}-.*\.json$/.test(f))
  .sort()
  .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")));

describe("policy admin API against the golden transcripts", () => {
  let server: SimulatorServer;
  let socket: string;
  let policyDir: string;
  beforeAll(async () => {
    const tmp = tmpDir();
    policyDir = path.join(tmp, "policy.d");
    copyDir(path.join(FIXTURES, "sim", "policy-admin-initial"), policyDir);
    socket = path.join(tmp, "qubesd.sock");
    // The recording's caller was a management qube.
    const sim = new Simulator({ policy: policyDir });
    sim.app.addQube("AppVM", "mgmt", "purple", { silentCreate: true });
    server = await sim.listen(socket);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("has all 19 transcripts", () => {
    expect(transcripts).toHaveLength(19);
  });

  for (const t of transcripts) {
    it(t.id, async () => {
      const full = t.request.service_full_name;
      const plus = full.indexOf("+");
      const header = `${plus < 0 ? `${full}+` : full} ${t.request.source} keyword adminvm\0`;
      const reply = await call(socket, Buffer.concat([Buffer.from(header, "latin1"), Buffer.from(t.request.stdin_b64, "base64")]));
      const r = policyReplyToServiceResult(reply);
      expect({ exit: r.exitCode, stdout: escape(Buffer.from(r.stdout)), stderr: escape(Buffer.from(r.stderr)) }).toEqual({
        exit: t.response.exit_code,
        stdout: escape(Buffer.from(t.response.stdout_b64, "base64")),
        stderr: escape(Buffer.from(t.response.stderr_b64, "base64")),
      });
    });
  }

  it("keeps the changes on disk", () => {
    expect(fs.readFileSync(path.join(policyDir, "30-user.policy"), "utf8")).toContain("qubes.Gpg * personal vault ask default_target=vault");
    expect(fs.existsSync(path.join(policyDir, "40-new.policy"))).toBe(false);
  });
});
