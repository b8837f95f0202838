/**
 * Firewall rules (`admin.vm.firewall.Get/Set/Reload`): typed, parsed and
 * printed in qubesd's normalised form.
 *
 * A rule line is space-separated `key=value`; everything after `comment=` is
 * the comment. {@link formatFirewallRule} prints keys in the order qubesd's
 * `Get` uses (`action`, host, `proto`, `specialtarget`, `dstports`,
 * `icmptype`, `expire`, `comment`), so a rule read back compares equal.
 * After the last rule, traffic is dropped (the list's implicit policy).
 */
import { QubesParseError, QubesValidationError } from "./errors.js";

/** One firewall rule. */
export interface FirewallRule {
  action: "accept" | "drop";
  proto?: "tcp" | "udp" | "icmp";
  /**
   * The destination: an IPv4 or IPv6 address (with optional `/prefix`) or a
   * DNS name. On output IPs are printed as `dst4=`/`dst6=` and names as `dsthost=`.
   */
  dsthost?: string;
  /** Ports: a number or `[low, high]` (printed as `low-high`); tcp/udp only. */
  dstports?: number | [number, number];
  /** ICMP type, 0–255 (icmp only). */
  icmptype?: number;
  specialtarget?: "dns";
  /** Expiry as UNIX epoch seconds. */
  expire?: number;
  comment?: string;
}

const VALUE = /^[A-Za-z0-9:;,./_[\]-]+$/;
const COMMENT = /^[A-Za-z0-9:;,./_[\] -]*$/;
const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$/;
const DNS = /^[a-z0-9._-]+$/;

function bad(message: string): never {
  throw new QubesValidationError(message, "invalid-firewall-rule", "rule");
}

function isIPv6(s: string): boolean {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || !s.includes(":")) return false;
  const dbl = s.split("::");
  if (dbl.length > 2) return false;
  const groups = (p: string) => (p === "" ? [] : p.split(":"));
  const all = [...groups(dbl[0]!), ...(dbl.length === 2 ? groups(dbl[1]!) : [])];
  let n = 0;
  for (const [i, g] of all.entries()) {
    if (i === all.length - 1 && IPV4.test(g)) {
      n += 2;
      continue;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
    n += 1;
  }
  return dbl.length === 2 ? n < 8 : n === 8;
}

/** Classifies a destination: `dst4`/`dst6` with a prefix length, or `dsthost` for a name. */
export function classifyHost(host: string): { key: "dst4" | "dst6" | "dsthost"; value: string } {
  const [addr, prefix, extra] = host.split("/");
  if (extra !== undefined) bad(`firewall host \`${host}\` has more than one \`/\``);
  if (IPV4.test(addr!)) {
    const p = prefix === undefined ? 32 : Number(prefix);
    if (!/^[0-9]{1,2}$/.test(prefix ?? "32") || p > 32) bad(`firewall host \`${host}\` has an invalid prefix length`);
    return { key: "dst4", value: `${addr}/${p}` };
  }
  if (isIPv6(addr!)) {
    const p = prefix === undefined ? 128 : Number(prefix);
    if (!/^[0-9]{1,3}$/.test(prefix ?? "128") || p > 128) bad(`firewall host \`${host}\` has an invalid prefix length`);
    return { key: "dst6", value: `${addr!.toLowerCase()}/${p}` };
  }
  if (prefix !== undefined) bad(`firewall host \`${host}\` is neither an ip address nor a dns name`);
  if (!DNS.test(host)) bad(`firewall host \`${host}\` must be a lowercase dns name (\`[a-z0-9._-]\`) or an ip address`);
  return { key: "dsthost", value: host };
}

function port(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 65535) bad(`firewall ${what} \`${n}\` is not a port number (0-65535)`);
  return n;
}

/** Checks a rule and returns it normalised (ports as a pair). Throws {@link QubesValidationError}. */
export function normalizeFirewallRule(rule: FirewallRule): FirewallRule {
  const out: FirewallRule = { action: rule.action };
  if (rule.action !== "accept" && rule.action !== "drop") bad(`firewall action must be accept or drop, got \`${String(rule.action)}\``);
  if (rule.dsthost !== undefined) {
    classifyHost(rule.dsthost);
    out.dsthost = rule.dsthost;
  }
  if (rule.proto !== undefined) {
    if (!["tcp", "udp", "icmp"].includes(rule.proto)) bad(`firewall proto must be tcp, udp or icmp, got \`${String(rule.proto)}\``);
    out.proto = rule.proto;
  }
  if (rule.specialtarget !== undefined) {
    if (rule.specialtarget !== "dns") bad(`firewall specialtarget must be dns, got \`${String(rule.specialtarget)}\``);
    out.specialtarget = "dns";
  }
  if (rule.dstports !== undefined) {
    if (rule.proto !== "tcp" && rule.proto !== "udp") bad("firewall dstports is only valid with proto tcp or udp");
    const [lo, hi] = Array.isArray(rule.dstports) ? rule.dstports : [rule.dstports, rule.dstports];
    port(lo, "port");
    port(hi, "port");
    if (lo > hi) bad(`firewall port range \`${lo}-${hi}\` is reversed`);
    out.dstports = [lo, hi];
  }
  if (rule.icmptype !== undefined) {
    if (rule.proto !== "icmp") bad("firewall icmptype is only valid with proto icmp");
    if (!Number.isInteger(rule.icmptype) || rule.icmptype < 0 || rule.icmptype > 255) bad(`firewall icmptype \`${rule.icmptype}\` is not 0-255`);
    out.icmptype = rule.icmptype;
  }
  if (rule.expire !== undefined) {
    if (!Number.isInteger(rule.expire) || rule.expire < 0) bad(`firewall expire \`${rule.expire}\` is not a unix time`);
    out.expire = rule.expire;
  }
  if (rule.comment !== undefined) {
    if (!COMMENT.test(rule.comment)) bad(`firewall comment \`${rule.comment}\` contains characters other than \`A-Za-z0-9:;,./_[] -\``);
    out.comment = rule.comment;
  }
  return out;
}

/**
 * Prints a rule. `order: "get"` (default) is qubesd's normalised `Get` order
 * (`action`, host, `proto` …); `order: "set"` is the order qubesadmin writes
 * (`action`, `proto`, host …). Both print IP destinations as `dst4=`/`dst6=`
 * with a prefix length, names as `dsthost=`, and ports as `low-high`.
 */
export function formatFirewallRule(rule: FirewallRule, options: { order?: "get" | "set" } = {}): string {
  const r = normalizeFirewallRule(rule);
  const parts: string[] = [`action=${r.action}`];
  const host: string[] = [];
  if (r.dsthost !== undefined) {
    const h = classifyHost(r.dsthost);
    host.push(`${h.key}=${h.value}`);
  }
  const proto = r.proto ? [`proto=${r.proto}`] : [];
  if (options.order === "set") parts.push(...proto, ...host);
  else parts.push(...host, ...proto);
  if (r.specialtarget) parts.push(`specialtarget=${r.specialtarget}`);
  if (r.dstports) {
    const [lo, hi] = r.dstports as [number, number];
    parts.push(`dstports=${lo}-${hi}`);
  }
  if (r.icmptype !== undefined) parts.push(`icmptype=${r.icmptype}`);
  if (r.expire !== undefined) parts.push(`expire=${r.expire}`);
  if (r.comment !== undefined) parts.push(`comment=${r.comment}`);
  return parts.join(" ");
}

/**
 * Parses one rule line (as `Get` returns it, or as a user writes it).
 * `dst4=`/`dst6=`/`dsthost=` all become `dsthost`. Throws {@link QubesParseError}
 * for a malformed line.
 */
export function parseFirewallRule(line: string): FirewallRule {
  let text = line;
  let comment: string | undefined;
  const ci = text.search(/(^| )comment=/);
  if (ci >= 0) {
    const start = text.indexOf("comment=", ci);
    comment = text.slice(start + "comment=".length);
    text = text.slice(0, ci);
  }
  const rule: Partial<FirewallRule> = {};
  const seen = new Set<string>();
  for (const part of text.split(" ")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0) throw new QubesParseError(`firewall rule \`${line}\`: \`${part}\` is not key=value`);
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (seen.has(key)) throw new QubesParseError(`firewall rule \`${line}\`: duplicate key \`${key}\``);
    seen.add(key);
    if (!VALUE.test(value)) throw new QubesParseError(`firewall rule \`${line}\`: invalid value for \`${key}\``);
    switch (key) {
      case "action":
        if (value !== "accept" && value !== "drop") throw new QubesParseError(`firewall rule \`${line}\`: invalid action \`${value}\``);
        rule.action = value;
        break;
      case "proto":
        if (value !== "tcp" && value !== "udp" && value !== "icmp") throw new QubesParseError(`firewall rule \`${line}\`: invalid proto \`${value}\``);
        rule.proto = value;
        break;
      case "dst4":
      case "dst6":
      case "dsthost":
        if (rule.dsthost !== undefined) throw new QubesParseError(`firewall rule \`${line}\`: more than one destination`);
        rule.dsthost = value;
        break;
      case "dstports": {
        const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(value);
        if (!m) throw new QubesParseError(`firewall rule \`${line}\`: invalid dstports \`${value}\``);
        rule.dstports = [Number(m[1]), Number(m[2] ?? m[1])];
        break;
      }
      case "icmptype":
        if (!/^[0-9]+$/.test(value)) throw new QubesParseError(`firewall rule \`${line}\`: invalid icmptype \`${value}\``);
        rule.icmptype = Number(value);
        break;
      case "specialtarget":
        if (value !== "dns") throw new QubesParseError(`firewall rule \`${line}\`: invalid specialtarget \`${value}\``);
        rule.specialtarget = "dns";
        break;
      case "expire":
        if (!/^[0-9]+$/.test(value)) throw new QubesParseError(`firewall rule \`${line}\`: invalid expire \`${value}\``);
        rule.expire = Number(value);
        break;
      default:
        throw new QubesParseError(`firewall rule \`${line}\`: unknown key \`${key}\``);
    }
  }
  if (comment !== undefined) rule.comment = comment;
  if (!rule.action) throw new QubesParseError(`firewall rule \`${line}\`: no action`);
  return rule as FirewallRule;
}

/** Parses the reply of `admin.vm.firewall.Get` (one rule per line). */
export function parseFirewallRules(text: string): FirewallRule[] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map(parseFirewallRule);
}
