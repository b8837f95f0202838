/**
 * `qkit policy eval --requests`: lines end as readline ends them (`\n`,
 * `\r\n`, a lone `\r`) wherever the input's chunks break, UTF-8 split across
 * chunks decodes, each chunk is answered before more input is awaited (a
 * process can write one request and wait for its answer), and every answer is
 * the API's decision for that line.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createMemoryFileSystem, decisionToJson, evaluate, loadPolicy, prepareSystemInfo, type RawSystemInfo } from "@qubes-kit/language";
import { main } from "../../sdk/src/cli/main.js";

const POLICY = "qubes.A * work @anyvm ask\nqubes.A * @anyvm vault allow\nqubes.B * @anyvm @anyvm deny\n";
const RAW: RawSystemInfo = {
  domains: {
    dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000", internal: null, icon: "", label: "" },
    work: { type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000001", internal: null, icon: "", label: "" },
    vault: { type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Halted", uuid: "00000000-0000-0000-0000-000000000002", internal: null, icon: "", label: "" },
    "wörk": { type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Halted", uuid: "00000000-0000-0000-0000-000000000003", internal: null, icon: "", label: "" },
  },
};
const REQUESTS = [
  { service: "qubes.A", argument: "+", source: "work", target: "vault" },
  { service: "qubes.A", argument: "+", source: "wörk", target: "vault" },
  { service: "qubes.B", argument: "+", source: "work", target: "vault" },
  { service: "qubes.A", argument: "+", source: "vault", target: "" },
  { service: "qubes.C", argument: "+", source: "work", target: "wörk" },
];

function setup(): string {
  const dir = mkdtempSync(join(tmpdir(), "qkit-stream-"));
  mkdirSync(join(dir, "policy.d"));
  writeFileSync(join(dir, "policy.d", "30-user.policy"), POLICY);
  writeFileSync(join(dir, "system.json"), JSON.stringify(RAW));
  return dir;
}

function expected(): string[] {
  const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": POLICY }));
  if (!loaded.ok) throw new Error("the test policy does not load");
  const system = prepareSystemInfo(RAW);
  return REQUESTS.map((r) => JSON.stringify(decisionToJson(evaluate(loaded.policy, r, system))));
}

async function run(dir: string, feed: (stdin: PassThrough, answers: () => string[]) => Promise<void>): Promise<{ code: number; lines: string[] }> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  stdout.on("data", (d) => (out += d));
  stderr.resume();
  const answers = () => out.split("\n").filter(Boolean);
  const done = main(["policy", "eval", "--policy-dir", join(dir, "policy.d"), "--system", join(dir, "system.json"), "--requests", "-"], { stdout, stderr, stdin, env: {}, cwd: dir });
  await feed(stdin, answers);
  stdin.end();
  const code = await done;
  return { code, lines: answers() };
}

describe("qkit policy eval --requests", () => {
  const dir = setup();
  const lines = REQUESTS.map((r) => JSON.stringify(r));

  const endings: [string, string][] = [
    ["\\n", "\n"],
    ["\\r\\n", "\r\n"],
    ["a lone \\r", "\r"],
  ];
  for (const [name, eol] of endings) {
    it(`splits lines ending in ${name} wherever the chunks break (inside \\r\\n and inside a UTF-8 character too)`, async () => {
      const bytes = Buffer.from(lines.join(eol) + eol + eol, "utf8");
      for (const size of [1, 2, 3, 7, bytes.length]) {
        const r = await run(dir, async (stdin) => {
          for (let i = 0; i < bytes.length; i += size) stdin.write(bytes.subarray(i, i + size));
        });
        expect(r.code).toBe(0);
        expect(r.lines).toEqual(expected());
      }
    });
  }

  it("answers a last line without a line ending", async () => {
    const r = await run(dir, async (stdin) => {
      stdin.write(lines.join("\n"));
    });
    expect(r.lines).toEqual(expected());
  });

  it("decides one request from the command line (a load for its service only) as the stream does", async () => {
    const want = expected();
    for (let i = 0; i < REQUESTS.length; i++) {
      const r = REQUESTS[i]!;
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let out = "";
      stdout.on("data", (d) => (out += d));
      stderr.resume();
      const argv = ["policy", "eval", "--policy-dir", join(dir, "policy.d"), "--system", join(dir, "system.json"), "--json", r.service + (r.argument === "+" ? "" : r.argument), r.source, r.target];
      const code = await main(argv, { stdout, stderr, stdin: new PassThrough(), env: {}, cwd: dir });
      expect(out.trim()).toBe(want[i]);
      const d = JSON.parse(want[i]!) as { ok: boolean; action?: string };
      expect(code).toBe(!d.ok || d.action === "deny" ? 1 : d.action === "ask" ? 3 : 0);
    }
  });

  it("answers each request before the next one is written (a co-process waits for every answer)", async () => {
    const want = expected();
    const r = await run(dir, async (stdin, answers) => {
      for (let i = 0; i < lines.length; i++) {
        stdin.write(lines[i] + "\n");
        for (let k = 0; answers().length <= i; k++) {
          if (k > 500) throw new Error(`no answer to line ${i + 1} before more input`);
          await new Promise((res) => setTimeout(res, 10));
        }
        expect(answers()[i]).toBe(want[i]);
      }
    });
    expect(r.lines).toEqual(want);
  });
});
