/**
 * The network and device edges of `flowGraph` (no policy), case by case:
 * each case is a machine and the edges it must give, as `FROM > TO via`.
 */
import { describe, expect, it } from "vitest";
import { builtinCatalogue, flowGraph, machineFromSystemJson, prepareSystemInfo, type FlowMachine } from "@qubes-kit/language";

const names = ["dom0", "sys-net", "sys-firewall", "sys-usb", "work", "vault", "a", "b"];
const system = prepareSystemInfo({
  domains: Object.fromEntries(names.map((n) => [n, { type: n === "dom0" ? "AdminVM" : "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", internal: null }])),
});

function edges(machine: FlowMachine): string[] {
  return flowGraph(undefined, system, machine, { catalogue: builtinCatalogue() })
    .edges.map((e) => `${e.from} > ${e.to} ${e.via}`)
    .sort();
}

const cases: { name: string; machine: FlowMachine; edges: string[] }[] = [
  {
    name: "a netvm chain: each qube and its netvm both ways, the end of the chain and every accepting qube to @network",
    machine: { qubes: { "sys-net": { netvm: null, providesNetwork: true }, "sys-firewall": { netvm: "sys-net" }, work: { netvm: "sys-firewall", firewall: ["action=accept specialtarget=dns", "action=drop"] } } },
    edges: [
      "@network > sys-firewall network",
      "@network > sys-net network",
      "@network > work network",
      "sys-firewall > @network network",
      "sys-firewall > sys-net network",
      "sys-firewall > work network",
      "sys-net > @network network",
      "sys-net > sys-firewall network",
      "work > @network network",
      "work > sys-firewall network",
    ].sort(),
  },
  {
    name: "a firewall that drops everything: the netvm still sees the qube, the outside does not",
    machine: { qubes: { "sys-net": { netvm: null }, vault: { netvm: "sys-net", firewall: ["action=drop"] } } },
    edges: ["@network > sys-net network", "sys-net > @network network", "sys-net > vault network", "vault > sys-net network"],
  },
  {
    // qubesd's firewall policy is always drop: an empty list lets nothing out (the default list is one accept).
    name: "an empty firewall list drops everything, like qubesd's policy",
    machine: { qubes: { "sys-net": { netvm: null }, vault: { netvm: "sys-net", firewall: [] } } },
    edges: ["@network > sys-net network", "sys-net > @network network", "sys-net > vault network", "vault > sys-net network"],
  },
  {
    name: "netvm none and unknown: no network edge",
    machine: { qubes: { vault: { netvm: null }, work: {} } },
    edges: [],
  },
  {
    name: "qubes behind one netvm meet only through it",
    machine: { qubes: { "sys-net": { netvm: null }, a: { netvm: "sys-net", firewall: ["action=drop"] }, b: { netvm: "sys-net", firewall: ["action=drop"] } } },
    edges: ["@network > sys-net network", "a > sys-net network", "b > sys-net network", "sys-net > @network network", "sys-net > a network", "sys-net > b network"],
  },
  {
    name: "a USB device: its backend sees it, and two qubes it is attached or assigned to share it",
    machine: { qubes: { a: { devices: [{ devclass: "usb", backend: "sys-usb", port: "2-1", mode: "attached" }] }, b: { devices: [{ devclass: "usb", backend: "sys-usb", port: "2-1", mode: "auto-attach" }] } } },
    edges: ["a > b device", "a > sys-usb device", "b > a device", "b > sys-usb device", "sys-usb > a device", "sys-usb > b device"],
  },
  {
    name: "a PCI device: passthrough, dom0 does not see its data; assigned to two qubes, they share it",
    machine: { qubes: { "sys-net": { devices: [{ devclass: "pci", backend: "dom0", port: "00_14.3", mode: "required" }] }, "sys-usb": { devices: [{ devclass: "pci", backend: "dom0", port: "00_14.3", mode: "required" }] } } },
    edges: ["sys-net > sys-usb device", "sys-usb > sys-net device"],
  },
  {
    name: "dom0 relays with --dom0-relays only",
    machine: { qubes: {} },
    edges: [],
  },
];

describe("network and device edges", () => {
  for (const c of cases) it(c.name, () => expect(edges(c.machine)).toEqual(c.edges));

  it("--dom0-relays adds dom0 → every qube", () => {
    const g = flowGraph(undefined, system, { qubes: {} }, { catalogue: builtinCatalogue(), dom0Relays: true });
    expect(g.edges.map((e) => `${e.from} > ${e.to} ${e.via}`).sort()).toEqual(names.filter((n) => n !== "dom0").map((n) => `dom0 > ${n} admin`).sort());
  });

  it("reads the wiring keys of a system file, and reports (never throws on) bad values", () => {
    const r = machineFromSystemJson({
      domains: {
        work: { netvm: "sys-firewall", firewall: ["action=accept"], devices: [{ devclass: "usb", backend: "sys-usb", port: "2-1", device_id: "0951:1666", mode: "attached" }] },
        vault: { netvm: 3, provides_network: "no", firewall: [1], devices: {} },
        "uuid:x": { netvm: "ignored" },
      },
    });
    expect(r.machine.qubes["work"]).toEqual({ netvm: "sys-firewall", firewall: ["action=accept"], devices: [{ devclass: "usb", backend: "sys-usb", port: "2-1", deviceId: "0951:1666", mode: "attached" }] });
    expect(r.machine.qubes["vault"]).toBeUndefined();
    expect(r.warnings.map((w) => w.code)).toEqual(["flow-bad-value", "flow-bad-value", "flow-bad-value", "flow-bad-value"]);
    for (const bad of [null, 1, "x", [], { domains: [] }, { domains: { a: null } }]) expect(() => machineFromSystemJson(bad)).not.toThrow();
  });
});

describe("a system model without wiring", () => {
  it("warns once that no network or device path is considered (a bare GetSystemInfo answer)", () => {
    const bare = { domains: { dom0: { klass: "AdminVM", tags: [] }, work: { klass: "AppVM", tags: [] }, vault: { klass: "AppVM", tags: [] } } };
    const { warnings } = machineFromSystemJson(bare);
    expect(warnings.map((w) => w.code)).toEqual(["flow-no-wiring"]);
    expect(warnings[0]!.message).toContain("qkit system snapshot");
  });
  it("says nothing when some qube carries wiring keys, or when there is no qube", () => {
    expect(machineFromSystemJson({ domains: { dom0: { klass: "AdminVM" }, work: { klass: "AppVM", netvm: null } } }).warnings).toEqual([]);
    expect(machineFromSystemJson({ domains: {} }).warnings).toEqual([]);
  });
});
