/**
 * The firewall (`admin.vm.firewall.*`).
 */
import { SimAbort, isAscii, protocolError } from "../wire.js";
import { lines, method } from "./registry.js";

// ---------------------------------------------------------------------------
// Firewall

function parseFirewallRule(line: string): string {
  const fail = (why: string): never => {
    throw new SimAbort(`ValueError: ${why}`);
  };
  let rest = line;
  let comment: string | undefined;
  const ci = rest.indexOf("comment=");
  if (ci >= 0) {
    comment = rest.slice(ci + 8);
    rest = rest.slice(0, ci);
    if (!/^[A-Za-z0-9:;,./_[\] -]*$/.test(comment)) fail("invalid comment");
  }
  const kv = new Map<string, string>();
  for (const tok of rest.split(" ").filter((t) => t)) {
    const eq = tok.indexOf("=");
    if (eq < 0) fail("invalid rule element");
    const k = tok.slice(0, eq);
    const v = tok.slice(eq + 1);
    if (kv.has(k)) fail("duplicated rule element");
    if (!/^[A-Za-z0-9:;,./_[\]-]*$/.test(v)) fail("invalid value");
    kv.set(k, v);
  }
  const out: string[] = [];
  const action = kv.get("action");
  if (action !== "accept" && action !== "drop") fail("invalid action");
  out.push(`action=${action}`);
  const hosts = ["dsthost", "dst4", "dst6", "dstname"].filter((k) => kv.has(k));
  if (hosts.length > 1) fail("multiple destinations");
  if (hosts.length) {
    const v = kv.get(hosts[0]!)!;
    const ip4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(v);
    if (ip4 && hosts[0] !== "dst6" && hosts[0] !== "dstname") {
      if ([1, 2, 3, 4].some((i) => Number(ip4[i]) > 255) || (ip4[5] !== undefined && Number(ip4[5]) > 32)) fail("invalid ip");
      out.push(`dst4=${ip4.slice(1, 5).join(".")}/${ip4[5] ?? "32"}`);
    } else if (v.includes(":") && hosts[0] !== "dst4" && hosts[0] !== "dstname") {
      const [addr, len] = v.split("/");
      if (!/^[0-9a-fA-F:]+$/.test(addr!)) fail("invalid ipv6");
      out.push(`dst6=${addr!.toLowerCase()}/${len ?? "128"}`);
    } else if (hosts[0] === "dsthost" || hosts[0] === "dstname") {
      if (!/^[a-z0-9._-]+$/.test(v)) fail("invalid hostname");
      out.push(`dsthost=${v}`);
    } else fail("invalid destination");
  }
  const proto = kv.get("proto");
  if (proto !== undefined) {
    if (!["tcp", "udp", "icmp"].includes(proto)) fail("invalid proto");
    out.push(`proto=${proto}`);
  }
  const st = kv.get("specialtarget");
  if (st !== undefined) {
    if (st !== "dns") fail("invalid specialtarget");
    out.push(`specialtarget=${st}`);
  }
  const ports = kv.get("dstports");
  if (ports !== undefined) {
    if (proto !== "tcp" && proto !== "udp") fail("dstports without tcp/udp");
    const m = /^(\d+)(?:-(\d+))?$/.exec(ports);
    if (!m) fail("invalid ports");
    const a = Number(m![1]);
    const b = Number(m![2] ?? m![1]);
    if (a > 65535 || b > 65535 || a > b) fail("invalid port range");
    out.push(`dstports=${a}-${b}`);
  }
  const icmp = kv.get("icmptype");
  if (icmp !== undefined) {
    if (proto !== "icmp") fail("icmptype without icmp");
    if (!/^\d+$/.test(icmp) || Number(icmp) > 255) fail("invalid icmptype");
    out.push(`icmptype=${Number(icmp)}`);
  }
  const expire = kv.get("expire");
  if (expire !== undefined) {
    if (!/^\+?\d+$/.test(expire)) fail("invalid expire");
    out.push(`expire=${expire.replace("+", "")}`);
  }
  for (const k of kv.keys())
    if (!["action", "dsthost", "dst4", "dst6", "dstname", "proto", "specialtarget", "dstports", "icmptype", "expire"].includes(k)) fail(`unknown rule element ${k}`);
  if (comment !== undefined) out.push(`comment=${comment}`);
  return out.join(" ");
}

method("admin.vm.firewall.Get", false, false, false, (c) => {
  const now = Date.now() / 1000;
  return lines(c.dest.firewall.filter((r) => {
    const m = / expire=(\d+)/.exec(r);
    return !m || Number(m[1]) > now;
  }));
});
method("admin.vm.firewall.Set", false, false, true, (c) => {
  if (!isAscii(c.payload)) throw protocolError("Rules contains non-ASCII characters");
  const rules = c.payload
    .toString("latin1")
    .split(/\r\n|\n|\r/)
    .filter((l, i, all) => !(l === "" && i === all.length - 1))
    .map(parseFirewallRule);
  c.dest.firewall = rules;
  c.dest.emit("firewall-changed");
  return null;
});
method("admin.vm.firewall.Reload", false, false, false, (c) => (c.dest.emit("firewall-changed"), null));
