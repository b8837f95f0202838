/**
 * The firewall (`admin.vm.firewall.*`).
 */
import { SimAbort, isAscii, protocolError } from "../wire.js";
import { parseIPv4, parseIPv6 } from "@qubes-kit/language";
import { parsePyInt, type Qube } from "../model.js";
import { lines, method } from "./registry.js";

// ---------------------------------------------------------------------------
// Firewall

const OPTION_SAFE = /^[A-Za-z0-9:;,./\-_[\]]*$/;
const COMMENT_SAFE = /^[A-Za-z0-9:;,./\-_[\] ]*$/;
/** Python's `str.strip()` on ASCII: spaces, tabs, line ends, vertical tab, form feed and the separators 0x1c-0x1f. */
const pyStrip = (s: string): string => s.replace(/^[ \t\n\r\x0b\x0c\x1c-\x1f]+|[ \t\n\r\x0b\x0c\x1c-\x1f]+$/g, "");
/** Python's `str.splitlines()` on ASCII. */
const pySplitLines = (s: string): string[] => {
  const out = s.split(/\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e]/);
  if (out.length && out[out.length - 1] === "") out.pop();
  return out;
};
/** `datetime.fromtimestamp` overflows after the year 9999. */
const MAX_TIMESTAMP = 253402300799;

/** Any `ValueError` of `Rule.from_api_string`: unhandled in qubesd, so no reply. */
function bad(why: string): never {
  throw new SimAbort(`ValueError: ${why}`);
}

/** `DstHost(value)`: the rule element (`dst4=…/n`, `dst6=…/n` as written, or `dsthost=…`). */
function dstHost(v: string): string {
  const slashes = v.split("/").length - 1;
  if (slashes > 1) bad(`Too many /: ${v}`);
  let out: string;
  if (slashes === 0) {
    if (ipv6Valid(v)) out = `dst6=${v}/128`;
    else if (parseIPv4(v) !== undefined) out = `dst4=${v}/32`;
    else {
      if (!/^[a-z0-9._-]*$/.test(v)) bad("Invalid hostname");
      out = `dsthost=${v}`;
    }
  } else {
    const [host, len] = v.split("/") as [string, string];
    if (!/^[0-9]+$/.test(len)) bad("bad prefix length");
    const n = Number(len);
    if (ipv6Valid(host)) {
      if (n > 128) bad("netmask for IPv6 must be <= 128");
      out = `dst6=${v}`;
    } else if (parseIPv4(host) !== undefined) {
      if (n > 32) bad("netmask for IPv4 must be <= 32");
      out = `dst4=${v}`;
    } else bad(`Invalid IP address: ${host}`);
  }
  if (!OPTION_SAFE.test(v)) bad("strange characters in rule");
  return out;
}

/** glibc's `inet_pton(AF_INET6, …)`: no scope id; the text is kept as written. */
function ipv6Valid(s: string): boolean {
  return !s.includes("%") && parseIPv6(s) !== undefined;
}

/**
 * `qubes.firewall.Rule.from_api_string` and `api_rule`: the canonical
 * text of one rule line (elements in qubesd's order, the comment last).
 */
function parseFirewallRule(line: string): string {
  const ci = line.indexOf("comment=");
  const options = ci < 0 ? line : line.slice(0, ci);
  const comment = ci < 0 ? "" : line.slice(ci + 8);
  const kw = new Map<string, string>();
  if (comment) {
    if (!COMMENT_SAFE.test(comment)) bad("strange characters comment");
    kw.set("comment", `comment=${comment}`);
  }
  for (const opt of pyStrip(options).split(" ")) {
    const eq = opt.indexOf("=");
    if (eq < 0) bad("not enough values to unpack");
    const key = opt.slice(0, eq);
    const v = opt.slice(eq + 1);
    if (kw.has(key)) bad(`Option '${key}' already set`);
    const choice = (allowed: string[]) => {
      if (!OPTION_SAFE.test(v)) bad("strange characters in rule");
      if (!allowed.includes(v)) bad(v);
      return `${key}=${v}`;
    };
    switch (key) {
      case "action":
        kw.set(key, choice(["accept", "drop"]));
        break;
      case "proto":
        kw.set(key, choice(["tcp", "udp", "icmp"]));
        break;
      case "specialtarget":
        kw.set(key, choice(["dns"]));
        break;
      case "dsthost":
        kw.set(key, dstHost(v));
        break;
      case "dst4":
      case "dst6":
      case "dstname":
        if (kw.has("dsthost")) bad("Option 'dsthost' already set");
        kw.set("dsthost", dstHost(v));
        break;
      case "dstports": {
        const dashes = v.split("-").length - 1;
        if (dashes > 1) bad(v);
        const parts = dashes === 1 ? v.split("-") : [v, v];
        const range = parts.map((x) => parsePyInt(x));
        if (range.some((x) => x === undefined)) bad(`invalid literal for int() with base 10: '${v}'`);
        const [lo, hi] = range as [number, number];
        if (lo < 0 || hi < 0 || lo >= 65536 || hi >= 65536) bad("Ports out of range");
        if (lo > hi) bad("Invalid port range");
        kw.set(key, `dstports=${lo}-${hi}`);
        break;
      }
      case "icmptype":
        if (v.length > 3 || !/^[0-9]+$/.test(v)) bad("bad ICMP type");
        if (Number(v) > 255) bad("ICMP type out of range");
        kw.set(key, `icmptype=${Number(v)}`);
        break;
      case "expire":
        if (!OPTION_SAFE.test(v)) bad("strange characters in rule");
        if (!/^[0-9]+$/.test(v)) bad("bad expiration time");
        if (Number(v) > MAX_TIMESTAMP) bad("year is out of range");
        kw.set(key, `expire=${v}`);
        break;
      case "comment":
        bad("Option 'comment' already set");
        break;
      default:
        bad("Unknown firewall option");
    }
  }
  if (!kw.has("action")) bad("action required");
  const proto = kw.get("proto")?.slice(6);
  if (kw.has("dstports") && proto !== "tcp" && proto !== "udp") bad("dstports valid only for 'tcp' and 'udp' protocols");
  if (kw.has("icmptype") && proto !== "icmp") bad("icmptype valid only for 'icmp' protocol");
  const order = ["action", "expire", "dsthost", "proto", "specialtarget", "dstports", "icmptype", "comment"];
  return order.filter((k) => kw.has(k)).map((k) => kw.get(k)!).join(" ");
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
  const rules = pySplitLines(c.payload.toString("latin1")).map(parseFirewallRule);
  c.dest.firewall = rules;
  firewallChanged(c.dest);
  return null;
});
method("admin.vm.firewall.Reload", false, false, false, (c) => (firewallChanged(c.dest), null));

/**
 * `firewall-changed`, with `r3compatibility.on_firewall_changed`: a running qube's netvm gets the old-style rules
 * in its QubesDB unless it advertises `qubes-firewall` (along its template); a netvm that is not running has no
 * QubesDB, and qubesd dies with an AttributeError, the rules already saved (observed).
 */
function firewallChanged(q: Qube): void {
  q.emit("firewall-changed");
  const net = q.isActive() ? q.netvmQube() : undefined;
  if (net && !net.isActive() && !net.featureWithTemplate("qubes-firewall"))
    throw new SimAbort("AttributeError: 'NoneType' object has no attribute 'rm' (QubesDB of a netvm that is not running)");
}
