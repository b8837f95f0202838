/**
 * The firewall reading of `qkit flow` (`readFirewall`), data-driven: rules in
 * qubesd's `admin.vm.firewall.Get` form → does the qube reach the outside
 * network, and what exactly goes out (first match, as qubes-firewall applies
 * the rules; the policy after them drops). Then the same through
 * `flowGraph`: the network hop's evidence carries the destinations.
 */
import { describe, expect, it } from "vitest";
import { builtinCatalogue, flowGraph, hopLabel, hopIndex, prepareSystemInfo, readFirewall } from "@qubes-kit/language";

type Want = { accepts: boolean; dests?: string[]; shadowed?: [number, number][]; dnsOnly?: boolean; unreadable?: boolean };

/** Each destination as `RULE host proto [ports] [type N] [except A,B]`. */
function short(r: ReturnType<typeof readFirewall>): string[] {
  return r.destinations.map((d) => [d.rule, d.host, d.proto, d.ports, d.icmptype !== undefined ? `type ${d.icmptype}` : undefined, d.except.length ? `except ${d.except.join(",")}` : undefined].filter((x) => x !== undefined).join(" "));
}

const CASES: [string, unknown, Want][] = [
  ["not read: qubesd's default accepts everything", undefined, { accepts: true, dests: [] }],
  ["no rules: the policy drops everything", [], { accepts: false, dests: [] }],
  ["the default list", ["action=accept"], { accepts: true, dests: ["1 * any"] }],
  ["drop everything", ["action=drop"], { accepts: false, dests: [] }],
  ["an accept after a catch-all drop does nothing", ["action=drop", "action=accept dsthost=example.com"], { accepts: false, dests: [], shadowed: [[2, 1]] }],
  ["only DNS: still a way out", ["action=accept specialtarget=dns", "action=drop"], { accepts: true, dests: ["1 dns tcp/udp"], dnsOnly: true }],
  [
    "https and DNS",
    ["action=accept proto=tcp dstports=443-443", "action=accept specialtarget=dns", "action=drop"],
    { accepts: true, dests: ["1 * tcp 443", "2 dns tcp/udp"], dnsOnly: false },
  ],
  ["a drop before an accept of a narrower destination hides it", ["action=drop dst4=192.0.2.0/24", "action=accept dst4=192.0.2.0/25"], { accepts: false, dests: [], shadowed: [[2, 1]] }],
  ["a narrower drop first takes part of a wider accept", ["action=drop dst4=192.0.2.0/25", "action=accept dst4=192.0.2.0/24"], { accepts: true, dests: ["2 192.0.2.0/24 any except 1"] }],
  ["ports dropped first are taken out of the range", ["action=drop proto=tcp dstports=22-22", "action=accept proto=tcp"], { accepts: true, dests: ["2 * tcp 0-21,23-65535"] }],
  [
    "two drops covering every port hide a later tcp accept",
    ["action=drop proto=tcp dstports=0-1000", "action=drop proto=tcp dstports=1001-65535", "action=accept proto=tcp dsthost=example.com"],
    { accepts: false, dests: [], shadowed: [[3, 1]] },
  ],
  ["ping only", ["action=accept proto=icmp icmptype=8", "action=drop"], { accepts: true, dests: ["1 * icmp type 8"] }],
  ["an icmp type dropped first is an exception of a later icmp accept", ["action=drop proto=icmp icmptype=8", "action=accept proto=icmp"], { accepts: true, dests: ["2 * icmp except 1"] }],
  ["DNS on another port matches nothing", ["action=accept specialtarget=dns dstports=80-80"], { accepts: false, dests: [], shadowed: [[1, 1]] }],
  ["a drop of the virtual DNS addresses hides DNS", ["action=drop dst4=10.139.1.0/24", "action=accept specialtarget=dns"], { accepts: false, dests: [], shadowed: [[2, 1]] }],
  ["a drop of a name may take part of anything", ["action=drop dsthost=evil.example", "action=accept"], { accepts: true, dests: ["2 * any except 1"] }],
  ["an accept inside an earlier accept adds nothing", ["action=accept", "action=accept dsthost=qubes-os.org"], { accepts: true, dests: ["1 * any"], shadowed: [[2, 1]] }],
  ["IPv6 prefixes", ["action=accept dst6=2001:db8::/32", "action=drop"], { accepts: true, dests: ["1 2001:db8::/32 any"] }],
  ["IPv4 and IPv6 rules do not hide each other", ["action=drop dst6=::/0", "action=accept dst4=0.0.0.0/0"], { accepts: true, dests: ["2 0.0.0.0/0 any"] }],
  ["a comment may hold spaces", ["action=accept dsthost=qubes-os.org proto=tcp dstports=443-443 comment=the update server"], { accepts: true, dests: ["1 qubes-os.org tcp 443"] }],
  ["udp dropped first leaves tcp of a tcp/udp accept", ["action=drop proto=udp", "action=accept dstports=53-53"], { accepts: true, dests: ["2 * tcp 53"] }],
  ["expiring rules count while they are listed", ["action=accept dst4=198.51.100.7 expire=1999999999", "action=drop"], { accepts: true, dests: ["1 198.51.100.7 any"] }],
  ["an unreadable rule: counted as accepting everything", ["action=allow"], { accepts: true, dests: [], unreadable: true }],
  ["an unknown key is unreadable", ["action=accept dstport=443"], { accepts: true, dests: [], unreadable: true }],
  ["not a list", "action=accept", { accepts: true, dests: [] }],
];

describe("readFirewall (rules in qubesd's Get form, first match, policy drop)", () => {
  for (const [name, rules, want] of CASES) {
    it(name, () => {
      const r = readFirewall(rules);
      expect(r.accepts).toBe(want.accepts);
      if (want.dests) expect(short(r)).toEqual(want.dests);
      expect(r.shadowed.map((s) => [s.rule, s.by])).toEqual(want.shadowed ?? []);
      if (want.dnsOnly !== undefined) expect(r.dnsOnly).toBe(want.dnsOnly);
      expect(r.unreadable.length > 0).toBe(!!want.unreadable);
      expect(r.summary).not.toMatch(/\n/);
      if (r.dnsOnly) expect(r.summary).toMatch(/DNS still carries data out/);
    });
  }
});

describe("the network hop's evidence", () => {
  const system = prepareSystemInfo({
    domains: {
      dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000" },
      "sys-net": { type: "AppVM", tags: [], template_for_dispvms: false, power_state: "Running", uuid: "00000000-0000-4000-8000-000000000001" },
      dnsonly: { type: "AppVM", tags: [], template_for_dispvms: false, power_state: "Running", uuid: "00000000-0000-4000-8000-000000000002" },
      shut: { type: "AppVM", tags: [], template_for_dispvms: false, power_state: "Running", uuid: "00000000-0000-4000-8000-000000000003" },
    },
  });
  const machine = {
    qubes: {
      "sys-net": { netvm: null, providesNetwork: true },
      dnsonly: { netvm: "sys-net", firewall: ["action=accept specialtarget=dns", "action=drop"] },
      shut: { netvm: "sys-net", firewall: ["action=drop", "action=accept proto=tcp dstports=443-443"] },
    },
  };
  const g = flowGraph(undefined, system, machine, { catalogue: builtinCatalogue() });
  const hops = hopIndex(g);

  it("lists what the firewall lets out, and says DNS leaks", () => {
    const h = hops.get("dnsonly")!.get("@network")!;
    const ev = h.edges[0]!.evidence;
    expect(ev.kind === "property" && ev.destinations).toEqual([{ rule: 1, text: "action=accept specialtarget=dns", host: "dns", proto: "tcp/udp", except: [] }]);
    expect(ev.kind === "property" && ev.note).toMatch(/only DNS queries .*DNS still carries data out/);
    expect(hopLabel(h)).toBe("network (firewall: dns)");
  });

  it("an accept after a catch-all drop lets nothing out: no hop to the network", () => {
    expect(hops.get("shut")?.get("@network")).toBeUndefined();
    expect(hops.get("shut")?.get("sys-net")).toBeDefined();
  });
});
