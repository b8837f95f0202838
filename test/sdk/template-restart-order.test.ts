/**
 * `qkit template apply --restart=if-needed` on the example machine, whose
 * sys-net, sys-firewall and sys-usb are running and get a new template:
 * qubesd refuses to stop a netvm that running qubes are connected to, so a
 * provider stops after its clients and starts again before them. Through
 * the CLI against the simulator (which refuses as qubesd does).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SimulatorServer } from "@qubes-kit/sdk/sim";
import { laptopOnSimulator } from "../helpers/laptop-sim.js";
import { runQkit } from "../helpers/qkit.js";

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });

beforeAll(async () => {
  ({ dir, server, env } = await laptopOnSimulator("qkit-restart-"));
});

afterAll(async () => {
  await server.close();
});

describe("qkit template apply --restart=if-needed", () => {
  it("stops clients before their netvm and starts the netvm first, so the rehearsal and the apply succeed", async () => {
    // Without --restart the template changes of the running qubes are deferred: exit 2, the system does not match yet.
    const first = await qkit("template", "apply", "laptop.qubes.yaml", "--adopt", "--yes");
    expect([first.code, first.err]).toEqual([2, ""]);
    const deferred = await qkit("template", "plan", "laptop.qubes.yaml", "--detailed-exitcode");
    expect(deferred.code).toBe(2);
    expect(deferred.out).toContain("use --restart=if-needed");
    const r = await qkit("template", "apply", "laptop.qubes.yaml", "--yes", "--restart=if-needed");
    expect([r.code, r.err]).toEqual([0, ""]);
    const order = [...r.out.matchAll(/\] (sys-[a-z]+)\.(shutdown|restart) /g)].map((m) => `${m[1]}.${m[2]}`);
    expect(order.indexOf("sys-firewall.shutdown")).toBeLessThan(order.indexOf("sys-net.shutdown"));
    expect(order.indexOf("sys-net.restart")).toBeLessThan(order.indexOf("sys-firewall.restart"));
    const after = await qkit("template", "plan", "laptop.qubes.yaml", "--detailed-exitcode");
    expect([after.code, after.out.split("\n").slice(2).join("\n")]).toEqual([0, "No changes. The system matches the stack.\nWhat-if: 8/8 expectations hold\n"]);
  });
});
