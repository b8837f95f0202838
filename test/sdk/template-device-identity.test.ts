/**
 * A device assignment by identity (`device:` without `port:` or `match:`, design §10.2):
 * assigned on any port (`*`, written `_` in the call's argument as qubesd reads it), applied,
 * and planned to no changes afterwards; `device: "*"` alone (every device, which qubesd
 * refuses) is an error at check time, at its line. Over `qkit sim serve`, through the CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { calls, Qubes } from "@qubes-kit/sdk";
import { simWorkspace, type SimWorkspace } from "../helpers/sim-workspace.js";

let ws: SimWorkspace;
let sim: Qubes;

beforeAll(async () => {
  ws = await simWorkspace("qkit-devid-");
  sim = Qubes.local(ws.socket);
});

afterAll(() => ws.stop());

const stack = (device: string) => `qkit: 1\nstack: devid\nqubes:\n  snd:\n    class: AppVM\n    template: debian-12\n    label: red\n    virt_mode: hvm\n    devices:\n      pci:\n        - { device: ${device}, mode: required }\n`;

describe("a device assigned by its identity", () => {
  it("goes to any port, applies, and plans to no changes", async () => {
    ws.write("d.qubes.yaml", stack('"0x8086:0x2723::p028000"'));
    expect((await ws.qkit("template", "check", "d.qubes.yaml")).code).toBe(0);
    const plan = JSON.parse((await ws.qkit("template", "plan", "d.qubes.yaml", "--json")).out) as { errors: unknown[]; steps: Array<{ calls: Array<{ method: string; arg: string }> }> };
    expect(plan.errors).toEqual([]);
    const assign = plan.steps.flatMap((s) => s.calls).find((c) => c.method === "admin.vm.device.pci.Assign")!;
    expect(assign.arg).toBe("dom0+_+0x8086+0x2723++p028000");
    expect((await ws.qkit("template", "apply", "d.qubes.yaml", "--yes")).code).toBe(0);
    const assigned = await sim.run(calls.deviceAssigned("snd", "pci"));
    expect(assigned.map((a) => [a.portId, a.deviceId, a.mode])).toEqual([["*", "0x8086:0x2723::p028000", "required"]]);
    expect((await ws.qkit("template", "plan", "d.qubes.yaml", "--detailed-exitcode")).code).toBe(0);
  });

  it("refuses `device: \"*\"` alone at its line: it would be every device", async () => {
    ws.write("any.qubes.yaml", stack('"*"'));
    const r = await ws.qkit("template", "check", "any.qubes.yaml");
    expect(r.code).toBe(1);
    expect(r.out).toContain('any.qubes.yaml:11:21: error[device-selector-required]: a device assignment needs a port or a device id: `device: "*"` alone would be every device');
  });

  it("refuses a device class qubesd does not have, at its line, before anything is rehearsed", async () => {
    const have = await sim.run(calls.deviceClassList());
    expect(have).not.toContain("usb");
    ws.write("u.qubes.yaml", "qkit: 1\nstack: devusb\nqubes:\n  u1:\n    class: AppVM\n    template: debian-12\n    label: red\n    devices:\n      usb:\n        - { backend: sys-usb, device: \"0x1050:0x0407::u030000\", mode: auto-attach }\n");
    const r = await ws.qkit("template", "plan", "u.qubes.yaml");
    expect(r.code).toBe(1);
    expect(r.out + r.err).toMatch(new RegExp(`u\\.qubes\\.yaml:10:\\d+: error\\[device-class-unavailable\\]: u1: qubesd has no usb devices on this system \\(its device classes: ${[...have].sort().join(", ")}\\); install the USB proxy`));
    expect(r.out + r.err).not.toContain("rehearsal");
  });
});
