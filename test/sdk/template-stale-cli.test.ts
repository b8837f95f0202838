/**
 * A stale plan says what changed: `qkit template apply PLAN` refuses a saved
 * plan whose read no longer matches the system with the first differences
 * (qube and setting, global property, policy file) and how many more, in one
 * line with code `stale-plan`. A plan saved before plans kept their read
 * part by part is refused as before. In the SDK, `applyPlan` with the read
 * the plan was made from says the same.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Qubes, UnixSocketTransport, applyPlan, dirPolicyTarget, planStack, type StackModel } from "@qubes-kit/sdk";
import type { SimulatorServer } from "@qubes-kit/sdk/sim";
import { laptopOnSimulator } from "../helpers/laptop-sim.js";
import { runQkit } from "../helpers/qkit.js";

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;
let qubes: Qubes;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });
const stale = (what: string) => `qkit template apply: the plan is stale: the system changed since it was made${what}; run \`qkit template plan\` again [stale-plan]\n`;

beforeAll(async () => {
  ({ dir, server, env } = await laptopOnSimulator("qkit-stale-"));
  qubes = new Qubes({ transport: new UnixSocketTransport({ path: server.path }) });
});

afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("a stale plan says what changed", () => {
  it("one change: the qube and the setting", async () => {
    expect((await qkit("template", "plan", "laptop.qubes.yaml", "--adopt", "--out", "one.plan")).code).toBe(0);
    await qubes.qube("work").setProperty("memory", 1234);
    const r = await qkit("template", "apply", "one.plan", "--yes");
    expect([r.code, r.err]).toEqual([1, stale(" (qube work: memory)")]);
    // Nothing was written: no journal is named (an empty one is removed on the way out).
    expect(r.out).not.toContain("Journal:");
  });

  it("the first three, then how many more", async () => {
    expect((await qkit("template", "plan", "laptop.qubes.yaml", "--adopt", "--out", "many.plan")).code).toBe(0);
    await qubes.qube("vault").tags.add("backup");
    await qubes.qube("work").setProperty("memory", 1000);
    await qubes.qube("work").features.set("service.cups", "1");
    await qubes.setProperty("stats_interval", 5);
    fs.writeFileSync(path.join(dir, "policy.d", "30-user.policy"), "qubes.Filecopy * work @default ask\n");
    const r = await qkit("template", "apply", "many.plan", "--yes");
    expect([r.code, r.err]).toEqual([1, stale(" (qube vault: tags; qube work: memory, feature service.cups; and 2 more)")]);
    // The policy file and the global are the two more.
    fs.rmSync(path.join(dir, "policy.d", "30-user.policy"));
    await qubes.qube("vault").tags.remove("backup");
    await qubes.qube("work").setProperty("memory", 1234);
    await qubes.qube("work").features.remove("service.cups");
    expect((await qkit("template", "apply", "many.plan", "--yes")).err).toBe(stale(" (global property stats_interval)"));
  });

  it("a plan saved without its read part by part is refused as before", async () => {
    expect((await qkit("template", "plan", "laptop.qubes.yaml", "--adopt", "--out", "old.plan")).code).toBe(0);
    const plan = JSON.parse(fs.readFileSync(path.join(dir, "old.plan"), "utf8"));
    expect(Object.keys(plan.view).sort()).toEqual(["available", "globals", "labels", "policy", "policyNames", "pools", "qubes"]);
    delete plan.view;
    fs.writeFileSync(path.join(dir, "old.plan"), JSON.stringify(plan));
    await qubes.qube("work").setProperty("memory", 1111);
    expect((await qkit("template", "apply", "old.plan", "--yes")).err).toBe(stale(""));
  });

  it("applyPlan with the read the plan was made from", async () => {
    const conn = { qubes, policy: dirPolicyTarget(path.join(dir, "policy.d")) };
    const model: StackModel = {
      format: 1,
      stack: "sdk",
      qubes: [{ name: "sdk-a", class: "AppVM", properties: { label: "red", template: "debian-13-xfce" }, features: {}, state: "any", absent: false, protect: false, ignore_changes: [] }],
      policy: [],
      expect: [],
    } as unknown as StackModel;
    const { plan, live } = await planStack(model, conn);
    await qubes.qube("personal").setProperty("netvm", "");
    const outcome = await applyPlan(plan, conn, { planned: live });
    expect(outcome.status).toBe("stale");
    expect(outcome.status === "stale" && outcome.changes).toEqual([{ subject: "qube personal", what: "netvm" }]);
    expect(await qubes.has("sdk-a")).toBe(false);
  });
});
