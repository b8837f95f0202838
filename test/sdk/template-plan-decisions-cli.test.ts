/**
 * `qkit template plan` counts the qrexec decisions that change once the plan
 * is applied (what-if's decision diff, which `qkit template whatif` lists):
 * one line in the text, `decisionChanges` in `--json`. Only when the plan
 * already runs what-if (the stack writes policy or has `expect:` entries): a
 * stack with neither reads no policy file for it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SimulatorServer } from "@qubes-kit/sdk/sim";
import { laptopOnSimulator } from "../helpers/laptop-sim.js";
import { runQkit } from "../helpers/qkit.js";

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });

/** The methods the simulator is asked for while `f` runs. */
async function methodsDuring(f: () => Promise<unknown>): Promise<string[]> {
  const sim = server.simulator;
  const open = sim.open;
  const seen: string[] = [];
  sim.open = (request, sink) => {
    const head = Buffer.from(request).toString("latin1");
    seen.push(head.slice(0, head.search(/[+ ]/)));
    return open.call(sim, request, sink);
  };
  try {
    await f();
  } finally {
    sim.open = open;
  }
  return seen;
}

beforeAll(async () => {
  ({ dir, server, env } = await laptopOnSimulator("qkit-plandecisions-"));
});

afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("plan counts the decisions that change", () => {
  it("as whatif lists them, in the text and in --json", async () => {
    const whatif = await qkit("template", "whatif", "laptop.qubes.yaml", "--json");
    expect(whatif.code).toBe(0);
    const kinds = { grant: 0, revoke: 0, change: 0 };
    const services = JSON.parse(whatif.out).changes as { changes: { kind: keyof typeof kinds }[] }[];
    for (const s of services) for (const c of s.changes) kinds[c.kind]++;
    const total = kinds.grant + kinds.revoke + kinds.change;
    expect(total).toBeGreaterThan(0);

    const json = await qkit("template", "plan", "laptop.qubes.yaml", "--adopt", "--json");
    expect([json.code, json.err]).toEqual([0, ""]);
    expect(JSON.parse(json.out).decisionChanges).toEqual({ total, ...kinds, services: services.length });

    const text = await qkit("template", "plan", "laptop.qubes.yaml", "--adopt");
    const parts = [kinds.grant ? `${kinds.grant} grant` : "", kinds.revoke ? `${kinds.revoke} revoke` : "", kinds.change ? `${kinds.change} change` : ""].filter((x) => x !== "");
    expect(text.out).toContain(`\nPolicy: ${total} decisions change (${parts.join(", ")}); \`qkit template whatif laptop.qubes.yaml\` lists them.\nWhat-if: 8/8 expectations hold\n`);
  });

  it("names the policy directory of the plan in the whatif command", async () => {
    const text = await qkit("template", "plan", "laptop.qubes.yaml", "--adopt", "--policy-dir", "policy.d");
    expect(text.out).toMatch(/\nPolicy: \d+ decisions change \([^)]*\); `qkit template whatif laptop\.qubes\.yaml --policy-dir policy\.d` lists them\.\n/);
  });

  it("carries the connection options the plan was given into the whatif command, which then runs as suggested", async () => {
    const text = await runQkit(["template", "plan", "laptop.qubes.yaml", "--adopt", "--socket", server.path, "--timeout", "5000", "--policy-dir", "policy.d"], { cwd: dir, env: {} });
    expect(text.code).toBe(0);
    const command = `qkit template whatif laptop.qubes.yaml --socket ${server.path} --timeout 5000 --policy-dir policy.d`;
    expect(text.out).toContain(`; \`${command}\` lists them.\n`);
    const whatif = await runQkit(command.split(" ").slice(1), { cwd: dir, env: {} });
    expect([whatif.code, whatif.err]).toEqual([0, ""]);
  });

  it("is not computed, and no policy file is read for it, for a stack without policy and expectations", async () => {
    fs.writeFileSync(path.join(dir, "plain.qubes.yaml"), "qkit: 1\nstack: plain\nqubes:\n  plain-a:\n    class: AppVM\n    template: debian-13-xfce\n    label: red\n");
    let json = { code: -1, out: "", err: "" };
    const methods = await methodsDuring(async () => (json = await qkit("template", "plan", "plain.qubes.yaml", "--json")));
    expect([json.code, json.err]).toEqual([0, ""]);
    expect(JSON.parse(json.out).decisionChanges).toBeUndefined();
    expect(methods.filter((m) => m.includes("policy") && m.endsWith(".Get"))).toEqual([]);
    expect((await qkit("template", "plan", "plain.qubes.yaml")).out).not.toContain("Policy:");
  });
});
