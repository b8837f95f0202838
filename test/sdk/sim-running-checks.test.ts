/**
 * The simulator refuses what the real qubesd refuses on a running qube, so
 * that a rehearsal catches it: attaching a running qube to a netvm that is
 * not running (`on_property_pre_set_netvm`, also through a reset to the
 * default and through the global `default_netvm`), and changing `maxmem` of
 * a running qube without memory hotplug (`on_property_pre_set_maxmem`; the
 * real qubesd of this version builds its QubesVMNotHaltedError wrongly and
 * closes the connection without a reply, recorded against it on 2026-12-05).
 * Shrinking a volume is not refused by qubesd (only `qvm-volume` refuses it,
 * client-side), and the simulator accepts it as qubesd does.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RawSystemInfo } from "@qubes-kit/language";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { call, tmpDir } from "./sim-helpers.js";

const SYSTEM = fileURLToPath(new URL("../../examples/laptop/system.json", import.meta.url));

let server: SimulatorServer;
let aborted: string[];

beforeEach(async () => {
  const system = JSON.parse(fs.readFileSync(SYSTEM, "utf8")) as RawSystemInfo;
  aborted = [];
  server = await startSimulator({ socket: path.join(tmpDir(), "qubesd.sock"), system, onAbort: (r) => aborted.push(r) });
});
afterEach(async () => {
  await server.close();
});

/** One Admin API call from dom0; `[kind, type-or-value, message]` of the reply (`["aborted"]` for no reply). */
async function q(method: string, dest: string, arg = "", payload = ""): Promise<string[]> {
  const r = await call(server.path, Buffer.from(`${method}+${arg} dom0 name ${dest}\0${payload}`, "latin1"));
  if (r.length === 0) return ["aborted"];
  const f = r.toString("utf8").split("\0");
  return f[0] === "0" ? ["ok", f[1]!] : ["error", f[1]!, f[3]!];
}
const ok = (value = "") => ["ok", value];
const state = async (vm: string) => (await q("admin.vm.CurrentState", vm))[1]!.split(" ").find((x) => x.startsWith("power_state="));

describe("netvm of a running qube", () => {
  const stopped = (vm: string) => ["error", "QubesVMNotStartedError", `Cannot dynamically attach to stopped qube ${vm}`];
  it.each([
    ["set to a halted provider", [["admin.vm.property.Set", "sys-usb", "netvm", "sys-firewall"]], stopped("sys-firewall")],
    ["reset to a halted default", [["admin.vm.property.Set", "sys-usb", "netvm", ""], ["admin.vm.property.Reset", "sys-usb", "netvm", ""]], stopped("sys-firewall")],
  ])("%s is refused with qubesd's error, and nothing changes", async (_name, setup, want) => {
    expect(await q("admin.vm.property.Set", "sys-firewall", "provides_network", "True")).toEqual(ok());
    expect(await q("admin.vm.Shutdown", "sys-firewall", "wait")).toEqual(ok());
    const calls = setup as string[][];
    for (const c of calls.slice(0, -1)) expect(await q(c[0]!, c[1]!, c[2], c[3])).toEqual(ok());
    const before = await q("admin.vm.property.Get", "sys-usb", "netvm");
    const last = calls[calls.length - 1]!;
    expect(await q(last[0]!, last[1]!, last[2], last[3])).toEqual(want);
    expect(await q("admin.vm.property.Get", "sys-usb", "netvm")).toEqual(before);
  });

  it("is accepted when the provider runs, or when the qube is halted", async () => {
    expect(await q("admin.vm.property.Set", "sys-usb", "netvm", "sys-net")).toEqual(ok());
    expect(await q("admin.vm.Shutdown", "sys-firewall", "wait")).toEqual(ok());
    expect(await q("admin.vm.property.Set", "work", "netvm", "sys-firewall")).toEqual(ok());
    expect(await state("work")).toBe("power_state=Halted");
  });

  it("refuses a halted global default_netvm while a running qube uses the default", async () => {
    expect(await q("admin.vm.property.Reset", "sys-usb", "netvm")).toEqual(ok());
    expect(await state("sys-usb")).toBe("power_state=Running");
    expect(await q("admin.vm.property.Set", "work", "netvm", "")).toEqual(ok());
    expect(await q("admin.vm.property.Set", "work", "provides_network", "True")).toEqual(ok());
    const before = await q("admin.property.Get", "dom0", "default_netvm");
    expect(await q("admin.property.Set", "dom0", "default_netvm", "work")).toEqual(["error", "QubesVMNotStartedError", "Cannot dynamically attach to stopped qube work"]);
    expect(await q("admin.property.Get", "dom0", "default_netvm")).toEqual(before);
  });
});

describe("maxmem of a running qube", () => {
  it("is refused without memory hotplug (qubesd closes the connection), and kept", async () => {
    const before = await q("admin.vm.property.Get", "sys-usb", "maxmem");
    expect(await q("admin.vm.property.Set", "sys-usb", "maxmem", "4000")).toEqual(["aborted"]);
    expect(aborted.join("\n")).toContain("Can't change maxmem of VM sys-usb, because it isn't Halted and memory hotplug is forbidden");
    expect(await q("admin.vm.property.Get", "sys-usb", "maxmem")).toEqual(before);
  });

  it("is accepted with the same value, with memory hotplug, or on a halted qube", async () => {
    const cur = (await q("admin.vm.property.Get", "sys-usb", "maxmem"))[1]!.split(" ").pop()!;
    expect(await q("admin.vm.property.Set", "sys-usb", "maxmem", cur)).toEqual(ok());
    expect(await q("admin.vm.feature.Set", "sys-usb", "memory-hotplug", "1")).toEqual(ok());
    expect(await q("admin.vm.property.Set", "sys-usb", "maxmem", "4000")).toEqual(ok());
    expect(await q("admin.vm.property.Set", "work", "maxmem", "4000")).toEqual(ok());
    expect(aborted).toEqual([]);
  });
});

describe("volume resize", () => {
  it("shrinks a volume as qubesd does (the refusal is qvm-volume's, client-side)", async () => {
    expect(await q("admin.vm.volume.Resize", "work", "private", "1073741824")).toEqual(ok());
    expect((await q("admin.vm.volume.Info", "work", "private"))[1]).toContain("\nsize=1073741824\n");
  });
});

// Seen with the differential fuzzer (seed 9101, call 410): after `Reset default_template`, the real
// qubesd dies on a Create without a template (reading the property raises AttributeError).
describe("creating an AppVM without a template", () => {
  it("closes without a reply when default_template was reset, and refuses with qubesd's message when it is None", async () => {
    expect(await q("admin.property.Reset", "dom0", "default_template")).toEqual(ok());
    expect(await q("admin.vm.Create.AppVM", "dom0", "", "name=fz-a label=blue")).toEqual(["aborted"]);
    expect(await q("admin.vm.List", "fz-a")).toEqual(["error", "QubesVMNotFoundError", "No such domain: 'fz-a'"]);
    expect(await q("admin.property.Set", "dom0", "default_template", "")).toEqual(ok());
    expect(await q("admin.vm.Create.AppVM", "dom0", "", "name=fz-b label=blue")).toEqual(["error", "QubesValueError", "Template for the qube not specified, nor default template set."]);
  });
});

describe("pausing", () => {
  it("a paused qube again succeeds and leaves it paused (libvirt's libxl driver does not refuse it); a halted one is refused", async () => {
    expect(await q("admin.vm.Start", "sys-usb")).toEqual(ok());
    expect(await q("admin.vm.Pause", "sys-usb")).toEqual(ok());
    expect(await state("sys-usb")).toBe("power_state=Paused");
    expect(await q("admin.vm.Pause", "sys-usb")).toEqual(ok());
    expect(await state("sys-usb")).toBe("power_state=Paused");
    // Starting a paused qube changes nothing either (qubesd's `start()` returns unless it is halted).
    expect(await q("admin.vm.Start", "sys-usb")).toEqual(ok());
    expect(await state("sys-usb")).toBe("power_state=Paused");
    expect(await q("admin.vm.Unpause", "sys-usb")).toEqual(ok());
    expect(await state("sys-usb")).toBe("power_state=Running");
    expect(await q("admin.vm.Kill", "sys-usb")).toEqual(ok());
    expect(await q("admin.vm.Pause", "sys-usb")).toEqual(["error", "QubesVMNotRunningError", "Domain not running (either powered off or paused): 'sys-usb'"]);
    expect(aborted).toEqual([]);
  });
});
