/**
 * Firewall rules in qubesd's `key=value` form (`action=accept dsthost=example.org
 * proto=tcp dstports=443`), checked and normalised the way qubesd stores and
 * prints them (`admin.vm.firewall.Get`): an address in `dsthost`/`dst4`/`dst6`
 * is typed by its value and gets its prefix length (`dst4=10.0.0.1/32`), a
 * single port `443` becomes `443-443`, options come in qubesd's order (action,
 * expire, destination, proto, specialtarget, dstports, icmptype) and `comment`
 * (which takes the rest of the line) comes last. Messages are qubesd's where
 * it has one.
 */

/** The keys a rule may use, in the order qubesd prints them (`dstname` is qubesd's alias of a destination). */
export const FIREWALL_KEYS = ["action", "expire", "dst4", "dst6", "dsthost", "proto", "specialtarget", "dstports", "icmptype", "comment"] as const;

/** A checked rule: its canonical text, or the first error with its offset range in the rule string. */
export type FirewallRuleResult = { ok: true; rule: string } | { ok: false; message: string; start: number; end: number; help?: string };

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** Host names qubesd accepts (lowercase letters, digits, `-`, `.`, `_`). */
const HOST = /^[a-z0-9._-]+$/;

function isIPv6(s: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(s) || !s.includes(":")) return false;
  const dbl = s.split("::");
  if (dbl.length > 2) return false;
  const groups = (p: string) => (p === "" ? [] : p.split(":"));
  const parts = [...groups(dbl[0]!), ...(dbl.length === 2 ? groups(dbl[1]!) : [])];
  let count = 0;
  for (let i = 0; i < parts.length; i++) {
    const g = parts[i]!;
    if (i === parts.length - 1 && IPV4.test(g)) count += 2;
    else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) count += 1;
    else return false;
  }
  return dbl.length === 2 ? count < 8 : count === 8;
}

function network(value: string, v6: boolean): string | undefined {
  const slash = value.indexOf("/");
  const addr = slash < 0 ? value : value.slice(0, slash);
  const max = v6 ? 128 : 32;
  let prefix = max;
  if (slash >= 0) {
    const p = value.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return undefined;
    prefix = Number(p);
  }
  if (v6 ? !isIPv6(addr) : !IPV4.test(addr)) return undefined;
  return `${addr}/${prefix}`;
}

/** Checks and normalises one rule. Never throws. */
export function normalizeFirewallRule(text: string): FirewallRuleResult {
  const fields = new Map<string, { value: string; start: number; end: number }>();
  const re = /\S+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    const word = m[0];
    const start = m.index;
    const eq = word.indexOf("=");
    if (eq <= 0) return { ok: false, message: `invalid firewall rule part: ${word} (expected key=value)`, start, end: start + word.length, help: "write rules as `action=accept dsthost=HOST proto=tcp dstports=443`" };
    const key = word.slice(0, eq);
    let value = word.slice(eq + 1);
    let end = start + word.length;
    if (key === "comment") {
      value = text.slice(start + eq + 1).trimEnd();
      end = start + eq + 1 + value.length;
      re.lastIndex = text.length;
    }
    if (!(FIREWALL_KEYS as readonly string[]).includes(key) && key !== "dstname") {
      const near = FIREWALL_KEYS.find((k) => k.startsWith(key.slice(0, 3)) || key.startsWith(k.slice(0, 4)));
      return { ok: false, message: `Unknown firewall option: ${key}`, start, end: start + eq, ...(near ? { help: `did you mean \`${near}\`?` } : { help: `options: ${FIREWALL_KEYS.join(", ")}` }) };
    }
    if (fields.has(key)) return { ok: false, message: `Option '${key}' already set`, start, end };
    if (key !== "comment" && !/^[A-Za-z0-9:;,./_[\]-]*$/.test(value))
      return {
        ok: false,
        message: `invalid character in ${key}: ${value}`,
        start: start + eq + 1,
        end,
        // qvm-firewall's `expire=+SECONDS` is relative to when it runs; qubesd takes only the absolute time (and a stack applied again would move it).
        help: key === "expire" && /^\+\d+$/.test(value) ? "write the time as seconds since the epoch (for an hour from now: `date -d '+1 hour' +%s`); qvm-firewall's `+SECONDS` is relative to when it runs, which each apply would move" : "qubesd accepts letters, digits and : ; , . / - _ [ ] in rule values",
      };
    if (key === "comment" && !/^[A-Za-z0-9:;,./_[\] -]*$/.test(value)) return { ok: false, message: `invalid character in comment: ${value}`, start: start + eq + 1, end, help: "qubesd accepts letters, digits, spaces and : ; , . / - _ [ ] in comments" };
    fields.set(key, { value, start, end });
  }
  const err = (key: string, message: string, help?: string): FirewallRuleResult => {
    const f = fields.get(key);
    return { ok: false, message, start: f?.start ?? 0, end: f?.end ?? text.length, ...(help ? { help } : {}) };
  };
  const action = fields.get("action");
  if (!action) return { ok: false, message: "missing action (accept or drop)", start: 0, end: text.length, help: "add `action=accept` or `action=drop`" };
  if (action.value !== "accept" && action.value !== "drop") return err("action", `invalid action: ${action.value} (accept or drop)`);
  const out = new Map<string, string>([["action", action.value]]);
  // qubesd reads dst4, dst6, dstname and dsthost into one destination, typed by its value.
  const dsts = ["dst4", "dst6", "dsthost", "dstname"].filter((k) => fields.has(k)).sort((a, b) => fields.get(a)!.start - fields.get(b)!.start);
  if (dsts.length > 1) return err(dsts[1]!, `only one destination is allowed: ${dsts.join(", ")}`, "qubesd keeps one of them silently: keep the one you mean");
  for (const k of dsts) {
    const v = fields.get(k)!.value;
    const host = v.includes("/") ? v.slice(0, v.indexOf("/")) : v;
    // qubesd would take a host name here as dsthost; in a stack file that is a mistake worth saying.
    if (k === "dst4" && !IPV4.test(host)) return err(k, `dst4 must be an IPv4 address or network: ${v}`, "use dsthost= for a host name");
    if (k === "dst6" && !isIPv6(host)) return err(k, `dst6 must be an IPv6 address or network: ${v}`, "use dsthost= for a host name");
    if (v.includes("/")) {
      const [host, prefix] = [v.slice(0, v.indexOf("/")), v.slice(v.indexOf("/") + 1)];
      if (prefix.includes("/")) return err(k, `Too many /: ${v}`);
      if (!/^\d+$/.test(prefix)) return err(k, `invalid netmask: ${prefix}`);
      const v6 = isIPv6(host);
      if (!v6 && !IPV4.test(host)) return err(k, `Invalid IP address: ${host}`);
      if (Number(prefix) > (v6 ? 128 : 32)) return err(k, `netmask for ${v6 ? "IPv6" : "IPv4"} must be <= ${v6 ? 128 : 32}`);
      out.set(v6 ? "dst6" : "dst4", `${host}/${Number(prefix)}`);
    } else if (network(v, false)) out.set("dst4", network(v, false)!);
    else if (network(v, true)) out.set("dst6", network(v, true)!);
    else if (HOST.test(v)) out.set("dsthost", v);
    else return err(k, `invalid host name: ${v}`, "host names are lowercase letters, digits, - . and _");
  }
  const proto = fields.get("proto")?.value;
  if (proto !== undefined) {
    if (proto !== "tcp" && proto !== "udp" && proto !== "icmp") return err("proto", `invalid protocol: ${proto} (tcp, udp or icmp)`);
    out.set("proto", proto);
  }
  const ports = fields.get("dstports");
  if (ports) {
    const pm = /^(\d{1,6})(?:-(\d{1,6}))?$/.exec(ports.value);
    const a = pm ? Number(pm[1]) : NaN;
    const b = pm ? Number(pm[2] ?? pm[1]) : NaN;
    if (!pm) return err("dstports", `invalid port range: ${ports.value}`, "a port (443) or a range (8000-8080)");
    if (a > 65536 || b > 65536) return err("dstports", "Ports out of range", "ports go up to 65535");
    if (a > b) return err("dstports", "Invalid port range", "write the lower port first");
    if (proto !== "tcp" && proto !== "udp") return err("dstports", "dstports valid only for 'tcp' and 'udp' protocols", "add proto=tcp or proto=udp");
    out.set("dstports", `${a}-${b}`);
  }
  const icmp = fields.get("icmptype");
  if (icmp) {
    if (!/^\d+$/.test(icmp.value)) return err("icmptype", `invalid ICMP type: ${icmp.value}`);
    if (Number(icmp.value) > 255) return err("icmptype", "ICMP type out of range");
    if (proto !== "icmp") return err("icmptype", "icmptype valid only for 'icmp' protocol", "add proto=icmp");
    out.set("icmptype", String(Number(icmp.value)));
  }
  const special = fields.get("specialtarget");
  if (special) {
    if (special.value !== "dns") return err("specialtarget", `invalid special target: ${special.value} (dns)`);
    out.set("specialtarget", "dns");
  }
  const expire = fields.get("expire");
  if (expire) {
    if (!/^\d+$/.test(expire.value)) return err("expire", `invalid expire time: ${expire.value} (seconds since the epoch)`);
    out.set("expire", String(Number(expire.value)));
  }
  const comment = fields.get("comment");
  if (comment) out.set("comment", comment.value);
  return { ok: true, rule: FIREWALL_KEYS.filter((k) => out.has(k)).map((k) => `${k}=${out.get(k)}`).join(" ") };
}
