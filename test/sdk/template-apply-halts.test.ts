/**
 * Halting a running network provider for a change that needs a halt
 * (`--restart=if-needed`): qubesd refuses to shut down a qube that running
 * qubes are connected to, so the provider's halt waits for its clients to
 * halt or be re-pointed, and a client that stays connected and running
 * keeps the halt deferred, with the reason, instead of failing the apply.
 */
import { describe, expect, it } from "vitest";
import { applyPlan, planStack } from "@qubes-kit/sdk";
import { connectSim, demoSimulator, qube, stack } from "../fixtures/template/apply/stacks.js";

describe("halting a network provider with running clients", () => {
  it("defers the halt while a running client stays connected, and applies everything else", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const clients = [...sim.app.domains.values()].filter((q) => q.power === "Running" && q.hasProp("netvm") && q.getProp("netvm") === "sys-firewall").map((q) => q.name).sort();
    expect(clients.length).toBeGreaterThan(0);
    const was = sim.app.domains.get("sys-firewall")!.getProp("template");
    const tpl = was === "fedora-41" ? "debian-12" : "fedora-41";
    const s = stack("fw", [qube("sys-firewall", "AppVM", { template: tpl })]);
    const { plan } = await planStack(s, conn, { adopt: true, restart: "if-needed" });
    expect(plan.errors).toEqual([]);
    const halt = plan.steps.find((x) => x.id === "sys-firewall.shutdown")!;
    expect(halt.deferred).toBe(`sys-firewall has running qubes connected to it (${clients.join(", ")}): its halt waits for them to stop or to use another netvm; stop them first and plan again`);
    expect(plan.steps.find((x) => x.id === "sys-firewall.p.template")?.deferred).toMatch(/^waits for sys-firewall.shutdown/);
    const r = await applyPlan(plan, conn);
    expect(r.status === "applied" && r.result.failure).toBeFalsy();
    expect([sim.app.domains.get("sys-firewall")!.power, sim.app.domains.get("sys-firewall")!.getProp("template")]).toEqual(["Running", was]);
  });

  it("halts the provider after re-pointing its running clients elsewhere", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const clients = [...sim.app.domains.values()].filter((q) => q.power === "Running" && q.hasProp("netvm") && q.getProp("netvm") === "sys-firewall").map((q) => q.name).sort();
    const tpl = sim.app.domains.get("sys-firewall")!.getProp("template") === "fedora-41" ? "debian-12" : "fedora-41";
    const s = stack("fw", [qube("sys-firewall", "AppVM", { template: tpl }), ...clients.map((c) => qube(c, sim.app.domains.get(c)!.klass as "AppVM", { netvm: "sys-net" }))]);
    const { plan } = await planStack(s, conn, { adopt: true, restart: "if-needed" });
    expect([plan.errors, plan.steps.filter((x) => x.deferred).map((x) => x.id)]).toEqual([[], []]);
    const at = (id: string) => plan.steps.findIndex((x) => x.id === id);
    for (const c of clients) expect([c, at(`${c}.p.netvm`) < at("sys-firewall.shutdown"), at(`${c}.p.netvm`) >= 0]).toEqual([c, true, true]);
    const r = await applyPlan(plan, conn);
    expect(r.status === "applied" && r.result.failure).toBeFalsy();
    expect(r.status).toBe("applied");
    expect([sim.app.domains.get("sys-firewall")!.power, sim.app.domains.get("sys-firewall")!.getProp("template")]).toEqual(["Running", tpl]);
  });
});
