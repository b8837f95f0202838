/**
 * The simulator refuses a netvm loop as qubesd does (`_setter_netvm`: the new
 * netvm is the qube itself or a qube connected to it, transitively; and
 * `_setter_default_netvm`: a qube that uses the default would end up in a
 * loop), whatever the length of the chain, and nothing changes. Chains that
 * do not come back are accepted. Data-driven: each case is the calls that
 * build a machine, then the call and the reply. The same calls on the real
 * qubesd (shared/tools/qubesd, its scenario's machine of the same shape) gave
 * these seven replies on 2026-12-07.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RawSystemInfo } from "@qubes-kit/language";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { call, tmpDir } from "./sim-helpers.js";

// sys-net (no netvm) ← sys-firewall ← personal, untrusted, work (the default netvm, sys-firewall).
const SYSTEM = fileURLToPath(new URL("../../examples/laptop/system.json", import.meta.url));

let server: SimulatorServer;
beforeEach(async () => {
  server = await startSimulator({ socket: path.join(tmpDir(), "qubesd.sock"), system: JSON.parse(fs.readFileSync(SYSTEM, "utf8")) as RawSystemInfo });
});
afterEach(async () => {
  await server.close();
});

/** One Admin API call from dom0: `["ok", value]` or `["error", type, message]`. */
async function q(method: string, dest: string, arg = "", payload = ""): Promise<string[]> {
  const r = await call(server.path, Buffer.from(`${method}+${arg} dom0 name ${dest}\0${payload}`, "latin1"));
  const f = r.toString("utf8").split("\0");
  return f[0] === "0" ? ["ok", f[1]!] : ["error", f[1]!, f[3]!];
}
type Call = [method: string, dest: string, arg: string, payload: string];
const set = (vm: string, prop: string, value: string): Call => ["admin.vm.property.Set", vm, prop, value];
const provides = (...vms: string[]): Call[] => vms.map((vm) => set(vm, "provides_network", "True"));
const LOOP = ["error", "QubesValueError", "Loops in network are unsupported"];

const CASES: { name: string; setup: Call[]; call: Call; reply: string[] }[] = [
  { name: "a qube as its own netvm", setup: [], call: set("sys-firewall", "netvm", "sys-firewall"), reply: LOOP },
  { name: "a provider behind its own client", setup: [], call: set("sys-net", "netvm", "sys-firewall"), reply: LOOP },
  { name: "a chain of three coming back", setup: [...provides("work", "untrusted"), set("untrusted", "netvm", "work"), set("personal", "provides_network", "True"), set("personal", "netvm", "untrusted")], call: set("work", "netvm", "personal"), reply: LOOP },
  { name: "a chain of three that does not come back", setup: [...provides("work", "untrusted"), set("untrusted", "netvm", "work")], call: set("personal", "netvm", "untrusted"), reply: ["ok", ""] },
  { name: "a provider of a chain moved to another provider", setup: [...provides("work", "untrusted"), set("untrusted", "netvm", "work")], call: set("work", "netvm", "sys-net"), reply: ["ok", ""] },
  {
    name: "a default netvm whose chain comes back to a qube that uses the default",
    setup: [...provides("work", "untrusted"), set("untrusted", "netvm", "work")],
    call: ["admin.property.Set", "dom0", "default_netvm", "untrusted"],
    reply: ["error", "QubesPropertyValueError", "Network loop on 'work'"],
  },
  { name: "a default netvm without a loop", setup: [...provides("work")], call: ["admin.property.Set", "dom0", "default_netvm", "sys-net"], reply: ["ok", ""] },
];

describe("netvm loops", () => {
  it.each(CASES)("$name", async (c) => {
    for (const s of c.setup) expect(await q(...s)).toEqual(["ok", ""]);
    const [method, dest, arg] = c.call;
    const read: Call = method === "admin.property.Set" ? ["admin.property.Get", "dom0", arg, ""] : ["admin.vm.property.Get", dest, arg, ""];
    const before = await q(...read);
    expect(await q(...c.call)).toEqual(c.reply);
    if (c.reply[0] === "error") expect(await q(...read)).toEqual(before);
    else expect(await q(...read)).not.toEqual(before);
  });
});
