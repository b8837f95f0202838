/**
 * What a qube's firewall lets out, read as qubes-firewall (in the qube's
 * netvm) applies it.
 *
 * The rules come in qubesd's `admin.vm.firewall.Get` form, one per line
 * (`action=accept dst4=192.0.2.0/24 proto=tcp dstports=443-443`). The netvm
 * installs them in order for each address family (rules for the other family's
 * addresses left out), and after them the policy, always `drop`. A packet
 * meets the first rule all of whose conditions it meets: the destination
 * (`dst4`/`dst6` with a prefix, `dsthost` as the name resolves, or, with
 * `specialtarget=dns`, the netvm's DNS servers on port 53), the protocol
 * (`proto`; with ports but no protocol, tcp and udp), the ports and the ICMP
 * type. So what an `accept` lets out is its own match less what an earlier
 * rule already decided: an accept whose match an earlier rule contains lets
 * nothing out of its own (after a catch-all `drop`, nothing at all); an
 * earlier `drop` that may take part of it is listed as an exception.
 *
 * Containment is decided per protocol, with port ranges subtracted exactly
 * and destinations compared as written (a prefix inside a prefix; a name
 * only within "anywhere" or the same name; the DNS servers within a prefix
 * holding 10.139.1.1 and 10.139.1.2, Qubes' virtual DNS addresses). What
 * cannot be decided statically (a name against a prefix) is an exception, not
 * a removal: the reading never says less goes out than does.
 */

/** One destination an accepting rule lets out. */
export interface FirewallDestination {
  /** The rule's number (1-based) and text. */
  rule: number;
  text: string;
  /** `*` (anywhere), an IPv4/IPv6 prefix, a DNS name, or `dns` (the netvm's DNS servers, `specialtarget=dns`). */
  host: string;
  /** `any` (every IP protocol), `tcp`, `udp`, `tcp/udp`, `icmp`. */
  proto: string;
  /** Port range (`443`, `1000-2000`) for tcp/udp; absent: every port. */
  ports?: string;
  /** ICMP type; absent: every type. */
  icmptype?: number;
  /** Earlier `drop` rules (1-based) that may take part of it. */
  except: number[];
}

/** What a firewall lets out. */
export interface FirewallReading {
  /** Some traffic leaves the qube. */
  accepts: boolean;
  destinations: FirewallDestination[];
  /** Accepting rules that let nothing out of their own, and the earlier rule that already decides all of it. */
  shadowed: { rule: number; text: string; by: number }[];
  /** Only DNS queries leave (still a channel: a query can carry any data). */
  dnsOnly: boolean;
  /** The rules that cannot be read (1-based) and why; the firewall then counts as accepting everything. */
  unreadable: { rule: number; reason: string }[];
  /** The firewall as given, or `(not read)`, `(no rules)`. */
  value: string;
  /** One sentence: what goes out. */
  summary: string;
  /** A few words for graph labels. */
  label: string;
}

type Proto = "tcp" | "udp" | "icmp" | "other";
type Dest = { kind: "any" } | { kind: "net"; family: 4 | 6; bits: bigint; len: number } | { kind: "host"; name: string } | { kind: "dns" };

/** One rule reduced to one protocol: destination, port intervals (tcp/udp) or ICMP type. */
interface Piece {
  proto: Proto;
  dest: Dest;
  ports: [number, number][];
  icmptype: number | null;
}

interface Rule {
  index: number;
  text: string;
  accept: boolean;
  pieces: Piece[];
  dest: Dest;
  protoText: string;
  ports?: string;
  icmptype?: number;
  /** The rule never matches (`specialtarget=dns` with ports other than 53). */
  never: boolean;
}

const KEYS = new Set(["action", "dsthost", "dst4", "dst6", "dstname", "proto", "specialtarget", "dstports", "icmptype", "expire", "comment"]);
const DNS4 = ["10.139.1.1", "10.139.1.2"];

function parseIp4(s: string): bigint | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let v = 0n;
  for (let i = 1; i <= 4; i++) {
    const b = Number(m[i]);
    if (b > 255) return null;
    v = (v << 8n) | BigInt(b);
  }
  return v;
}

function parseIp6(s: string): bigint | null {
  if (!/^[0-9a-fA-F:]+$/.test(s) || s.split("::").length > 2) return null;
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  if (fill < 0 || (tail === undefined && h.length !== 8)) return null;
  const groups = [...h, ...Array(fill).fill("0"), ...t];
  if (groups.length !== 8) return null;
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  return v;
}

function parseNet(value: string, family: 4 | 6): Dest | null {
  const [addr, lenText] = value.split("/", 2) as [string, string | undefined];
  const max = family === 4 ? 32 : 128;
  const len = lenText === undefined ? max : /^\d{1,3}$/.test(lenText) ? Number(lenText) : -1;
  if (len < 0 || len > max) return null;
  const ip = family === 4 ? parseIp4(addr) : parseIp6(addr);
  if (ip === null) return null;
  const shift = BigInt(max - len);
  return { kind: "net", family, bits: (ip >> shift) << shift, len };
}

/** Parses one rule of the `Get` form; a string is why it cannot be read. */
function parseRule(text: string, index: number): Rule | string {
  const c = text.indexOf("comment=");
  const body = (c >= 0 ? text.slice(0, c) : text).trim();
  const kv = new Map<string, string>();
  for (const part of body.split(/\s+/)) {
    if (!part) continue;
    const eq = part.indexOf("=");
    if (eq <= 0) return `\`${part}\` is not key=value`;
    const k = part.slice(0, eq);
    if (!KEYS.has(k)) return `unknown key \`${k}\``;
    if (kv.has(k)) return `\`${k}\` given twice`;
    kv.set(k, part.slice(eq + 1));
  }
  const action = kv.get("action");
  if (action !== "accept" && action !== "drop") return action === undefined ? "no `action`" : `action must be accept or drop, not \`${action}\``;
  let dest: Dest = { kind: "any" };
  const hosts = ["dst4", "dst6", "dsthost", "dstname"].filter((k) => kv.has(k));
  if (hosts.length > 1) return "more than one destination";
  if (kv.has("dst4")) {
    const d = parseNet(kv.get("dst4")!, 4);
    if (!d) return `\`dst4=${kv.get("dst4")}\` is not an IPv4 address or prefix`;
    dest = d;
  } else if (kv.has("dst6")) {
    const d = parseNet(kv.get("dst6")!, 6);
    if (!d) return `\`dst6=${kv.get("dst6")}\` is not an IPv6 address or prefix`;
    dest = d;
  } else if (hosts.length) {
    const v = kv.get(hosts[0]!)!;
    const d4 = parseNet(v, 4);
    const d6 = d4 ? null : parseNet(v, 6);
    if (d4 || d6) dest = (d4 ?? d6)!;
    else if (/^[a-z0-9._-]+$/.test(v)) dest = { kind: "host", name: v };
    else return `\`${hosts[0]}=${v}\` is not an address or a DNS name`;
  }
  const special = kv.get("specialtarget");
  if (special !== undefined && special !== "dns") return `specialtarget must be dns, not \`${special}\``;
  const proto = kv.get("proto");
  if (proto !== undefined && proto !== "tcp" && proto !== "udp" && proto !== "icmp") return `proto must be tcp, udp or icmp, not \`${proto}\``;
  let ports: [number, number] | null = null;
  const pt = kv.get("dstports");
  if (pt !== undefined) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(pt);
    const lo = m ? Number(m[1]) : -1;
    const hi = m ? Number(m[2] ?? m[1]) : -1;
    if (!m || lo > hi || hi > 65535) return `\`dstports=${pt}\` is not a port or a range`;
    if (proto === "icmp") return "dstports needs tcp or udp";
    ports = [lo, hi];
  }
  let icmptype: number | null = null;
  const it = kv.get("icmptype");
  if (it !== undefined) {
    if (!/^\d{1,3}$/.test(it) || Number(it) > 255) return `\`icmptype=${it}\` is not 0-255`;
    if (proto !== "icmp") return "icmptype needs proto=icmp";
    icmptype = Number(it);
  }
  let never = false;
  if (special === "dns") {
    // qubes-firewall: DNS is port 53 to the DNS servers; any other port makes the rule match nothing.
    if (ports && !(ports[0] === 53 && ports[1] === 53)) never = true;
    ports = [53, 53];
    dest = { kind: "dns" };
  }
  const protos: Proto[] = proto ? [proto] : ports ? ["tcp", "udp"] : ["tcp", "udp", "icmp", "other"];
  const pieces: Piece[] = never
    ? []
    : protos.map((p) => ({ proto: p, dest, ports: p === "tcp" || p === "udp" ? [ports ?? [0, 65535]] : [], icmptype: p === "icmp" ? icmptype : null }));
  return {
    index,
    text,
    accept: action === "accept",
    pieces,
    dest,
    protoText: proto ?? (ports ? "tcp/udp" : "any"),
    ...(ports && !(special === "dns") ? { ports: ports[0] === ports[1] ? String(ports[0]) : `${ports[0]}-${ports[1]}` } : {}),
    ...(icmptype !== null ? { icmptype } : {}),
    never,
  };
}

/** Does destination `a` hold all of `b`? */
function destContains(a: Dest, b: Dest): boolean {
  if (a.kind === "any") return true;
  if (a.kind === "net") {
    if (b.kind === "net") return a.family === b.family && a.len <= b.len && b.bits >> BigInt((a.family === 4 ? 32 : 128) - a.len) === a.bits >> BigInt((a.family === 4 ? 32 : 128) - a.len);
    if (b.kind === "dns") return a.family === 4 && DNS4.every((x) => destContains(a, parseNet(x, 4)!));
    return false;
  }
  if (a.kind === "host") return b.kind === "host" && b.name === a.name;
  return b.kind === "dns";
}

/** May destinations `a` and `b` share an address? (A name may resolve anywhere.) */
function destMeets(a: Dest, b: Dest): boolean {
  if (a.kind === "any" || b.kind === "any" || a.kind === "host" || b.kind === "host") return true;
  if (a.kind === "dns" && b.kind === "dns") return true;
  if (a.kind === "dns" || b.kind === "dns") {
    const net = (a.kind === "net" ? a : b) as Extract<Dest, { kind: "net" }>;
    return net.family === 4 && DNS4.some((x) => destContains(net, parseNet(x, 4)!));
  }
  return destContains(a, b) || destContains(b, a);
}

/** `ports` less `cut` (sorted disjoint intervals). */
function subtract(ports: [number, number][], cut: [number, number][]): [number, number][] {
  let out = ports;
  for (const [clo, chi] of cut) {
    const next: [number, number][] = [];
    for (const [lo, hi] of out) {
      if (chi < lo || clo > hi) next.push([lo, hi]);
      else {
        if (lo < clo) next.push([lo, clo - 1]);
        if (hi > chi) next.push([chi + 1, hi]);
      }
    }
    out = next;
  }
  return out;
}

/** What of piece `p` is left once every earlier piece whose destination holds p's is taken away (null: nothing). */
function remainder(p: Piece, earlier: readonly Piece[]): Piece | null {
  let ports = p.ports;
  for (const e of earlier) {
    if (e.proto !== p.proto || !destContains(e.dest, p.dest)) continue;
    if (p.proto === "tcp" || p.proto === "udp") {
      ports = subtract(ports, e.ports);
      if (!ports.length) return null;
    } else if (p.proto === "icmp") {
      if (e.icmptype === null || e.icmptype === p.icmptype) return null;
    } else return null;
  }
  return { ...p, ports };
}

function piecesMeet(a: Piece, b: Piece): boolean {
  if (a.proto !== b.proto || !destMeets(a.dest, b.dest)) return false;
  if (a.proto === "tcp" || a.proto === "udp") return a.ports.some(([lo, hi]) => b.ports.some(([l2, h2]) => lo <= h2 && l2 <= hi));
  if (a.proto === "icmp") return a.icmptype === null || b.icmptype === null || a.icmptype === b.icmptype;
  return true;
}

function hostText(d: Dest): string {
  if (d.kind === "any") return "*";
  if (d.kind === "dns") return "dns";
  if (d.kind === "host") return d.name;
  const max = d.family === 4 ? 32 : 128;
  let addr: string;
  if (d.family === 4) addr = [24n, 16n, 8n, 0n].map((s) => String((d.bits >> s) & 255n)).join(".");
  else {
    const g: string[] = [];
    for (let i = 7; i >= 0; i--) g.push(((d.bits >> BigInt(i * 16)) & 0xffffn).toString(16));
    addr = g.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
  }
  return d.len === max ? addr : `${addr}/${d.len}`;
}

/** A destination as a few words: `tcp 443 to 192.0.2.0/24`, `DNS queries`, `anything anywhere`. */
export function destinationText(d: FirewallDestination): string {
  if (d.host === "dns") return "DNS queries";
  const what = d.proto === "any" ? "anything" : `${d.proto}${d.ports !== undefined ? ` ${d.ports}` : ""}${d.icmptype !== undefined ? ` type ${d.icmptype}` : ""}`;
  return `${what} ${d.host === "*" ? "anywhere" : `to ${d.host}`}`;
}

/**
 * What a firewall (rules in qubesd's `Get` form) lets out; `undefined`: not
 * read (qubesd's default accepts everything). Never throws.
 */
export function readFirewall(rules: unknown): FirewallReading {
  const base = { destinations: [], shadowed: [], dnsOnly: false, unreadable: [] };
  if (rules === undefined) return { ...base, accepts: true, value: "(not read)", summary: "the firewall was not read; qubesd's default accepts everything", label: "not read" };
  if (!Array.isArray(rules)) return { ...base, accepts: true, value: "(unreadable)", summary: "the firewall value is not a list of rules; counted as accepting everything", label: "unreadable" };
  // qubesd's firewall ends with its policy, always `drop`: no rule lets nothing out (a qube without a
  // firewall file has the default list, one `action=accept`).
  if (rules.length === 0) return { ...base, accepts: false, value: "(no rules)", summary: "no firewall rules: qubesd's policy drops everything", label: "nothing" };
  const value = rules.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("; ");
  const parsed: Rule[] = [];
  const unreadable: { rule: number; reason: string }[] = [];
  rules.forEach((r, i) => {
    const p = typeof r === "string" ? parseRule(r, i + 1) : "not a string";
    if (typeof p === "string") unreadable.push({ rule: i + 1, reason: p });
    else parsed.push(p);
  });
  if (unreadable.length) {
    const u = unreadable[0]!;
    return { ...base, unreadable, accepts: true, value, summary: `firewall rule ${u.rule} cannot be read (${u.reason}); counted as accepting everything`, label: "unreadable" };
  }
  const destinations: FirewallDestination[] = [];
  const shadowed: { rule: number; text: string; by: number }[] = [];
  const earlier: (Piece & { rule: number; accept: boolean })[] = [];
  for (const r of parsed) {
    if (r.accept && !r.never) {
      const left = r.pieces.map((p) => remainder(p, earlier)).filter((p): p is Piece => p !== null);
      if (!left.length) {
        // The earlier rule that holds the most of it (one that holds all of a piece).
        const by = earlier.find((e) => r.pieces.some((p) => e.proto === p.proto && destContains(e.dest, p.dest)))?.rule ?? 0;
        shadowed.push({ rule: r.index, text: r.text, by });
      } else {
        // Earlier drops that may take part of what is left (those holding its destination were subtracted).
        const except = [...new Set(earlier.filter((e) => !e.accept && left.some((p) => piecesMeet(e, p) && !(destContains(e.dest, p.dest) && (p.proto === "tcp" || p.proto === "udp")))).map((e) => e.rule))];
        const protos = [...new Set(left.map((p) => p.proto))];
        const protoText = protos.length === r.pieces.length ? r.protoText : protos.length === 2 && protos.includes("tcp") && protos.includes("udp") ? "tcp/udp" : protos.join("/");
        const tcpUdp = left.find((p) => p.proto === "tcp" || p.proto === "udp");
        const ports = tcpUdp && (r.ports !== undefined || tcpUdp.ports.length !== 1 || tcpUdp.ports[0]![0] !== 0 || tcpUdp.ports[0]![1] !== 65535) && r.dest.kind !== "dns" ? tcpUdp.ports.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(",") : undefined;
        destinations.push({ rule: r.index, text: r.text, host: hostText(r.dest), proto: protoText, ...(ports !== undefined ? { ports } : {}), ...(r.icmptype !== undefined ? { icmptype: r.icmptype } : {}), except });
      }
    } else if (r.accept && r.never) shadowed.push({ rule: r.index, text: r.text, by: r.index });
    for (const p of r.pieces) earlier.push({ ...p, rule: r.index, accept: r.accept });
  }
  const accepts = destinations.length > 0;
  const dnsOnly = accepts && destinations.every((d) => d.host === "dns");
  const list = destinations.map((d) => `${destinationText(d)} (rule ${d.rule}${d.except.length ? `, less what rule${d.except.length > 1 ? "s" : ""} ${d.except.join(", ")} drop${d.except.length > 1 ? "" : "s"}` : ""})`);
  const hiddenText = shadowed.length ? `; ${shadowed.map((s) => (s.by === s.rule ? `rule ${s.rule} matches nothing (specialtarget=dns is port 53 only)` : `rule ${s.rule} lets nothing out (rule ${s.by} decides first)`)).join("; ")}` : "";
  let summary: string;
  if (!accepts) summary = shadowed.length ? `the firewall lets nothing out (every accepting rule comes after a rule that decides first; the policy drops the rest)${hiddenText}` : "the firewall lets nothing out (no rule accepts; the policy drops the rest)";
  else if (dnsOnly)
    summary = `the firewall lets out only DNS queries to the netvm's DNS servers (rule${destinations.length > 1 ? "s" : ""} ${destinations.map((d) => d.rule + (d.except.length ? ` less what rule${d.except.length > 1 ? "s" : ""} ${d.except.join(", ")} drop${d.except.length > 1 ? "" : "s"}` : "")).join(", ")}), and DNS still carries data out: a query can encode anything${hiddenText}`;
  // After a rule that accepts anything anywhere, nothing is left for the policy to drop.
  else summary = `the firewall lets out ${list.join("; ")}${destinations.some((d) => d.host === "*" && d.proto === "any") ? "" : "; the policy drops the rest"}${hiddenText}`;
  const short = destinations.map((d) => (d.host === "dns" ? "dns" : d.host === "*" && d.proto === "any" ? "anything" : `${d.proto === "any" ? "" : d.proto}${d.ports !== undefined ? ` ${d.ports}` : ""}${d.host !== "*" ? ` ${d.host}` : ""}`.trim()));
  const label = accepts ? (short.length > 2 ? `${short.slice(0, 2).join(", ")} +${short.length - 2}` : short.join(", ")) : "nothing";
  return { accepts, destinations, shadowed, dnsOnly, unreadable: [], value, summary, label };
}
