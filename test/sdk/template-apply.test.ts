/**
 * Plan and apply of stacks against the simulator, in process: apply, then
 * the system holds the stack, then the next plan is empty.
 */
import { describe, expect, it } from "vitest";
import { applyPlan, planStack, renderPlan } from "@qubes-kit/sdk";
import { DEFAULT, connectSim, demoSimulator, mismatches, policyFile, qube, readFor, stack } from "../fixtures/template/apply/stacks.js";

const machine = stack(
  "laptop",
  [
    qube("tpl-sys", "TemplateVM", { label: "black", memory: 600 }, { source: { clone: "debian-12" } }),
    qube("dvm-sys", "AppVM", { label: "red", template: "tpl-sys", template_for_dispvms: true, netvm: null }, { features: { "appmenus-dispvm": "1" } }),
    qube("sys-vpn", "AppVM", { label: "orange", template: "tpl-sys", provides_network: true, netvm: "sys-firewall" }, { firewall: ["action=accept dsthost=10.0.0.1 proto=udp dstports=1194", "action=drop"] }),
    qube("vault-gpg", "AppVM", { label: "black", template: "debian-12", netvm: null }, { tags: ["gpg-server"], notes: "keys live here" }),
    qube("work2", "AppVM", { label: "blue", template: "debian-12", netvm: "sys-vpn", memory: 800, default_dispvm: "dvm-sys" }, {
      tags: ["gpg-client"],
      features: { "service.split-gpg2-client": "1", "gui-allow-fullscreen": "" },
      volumes: { private: { size: 4 * 1024 ** 3 } },
    }),
    qube("disp-sys", "DispVM", { label: "red", template: "dvm-sys" }),
  ],
  { policy: [policyFile("gpg", "qubes.Gpg2 * work2 vault-gpg allow\n")], global: { default_dispvm: "dvm-sys" } },
);

describe("template apply on the simulator", () => {
  it("creates a machine, the system then holds the stack, and a second plan is empty", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const { plan } = await planStack(machine, conn);
    expect(plan.errors).toEqual([]);
    const text = renderPlan(plan);
    expect(text).toContain("Plan: 6 to create");
    const outcome = await applyPlan(plan, conn);
    if (outcome.status !== "applied") throw new Error(JSON.stringify(outcome, null, 1).slice(0, 3000));
    expect(outcome.result.failure?.summary).toBeUndefined();
    expect(mismatches(machine, await readFor(machine, conn))).toEqual([]);
    const again = await planStack(machine, conn);
    expect(again.plan.errors).toEqual([]);
    expect(again.plan.steps.map((s) => `${s.id}: ${s.before} -> ${s.after}`)).toEqual([]);
    expect(renderPlan(again.plan)).toContain("No changes.");
  });
});
