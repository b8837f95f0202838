/**
 * Python's `ipaddress` and `uuid` parsing rules, as qubesd applies them to
 * property values and firewall rules: what parses, and the text Python
 * prints for it (`str(IPv6Address(...))` is the compressed lower-case form).
 */

/** `ipaddress.IPv4Address(s)`: the address, or `undefined` when Python refuses it. */
export function parseIPv4(s: string): string | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return undefined;
    if (p.length > 1 && p[0] === "0") return undefined;
    if (Number(p) > 255) return undefined;
  }
  return parts.map(Number).join(".");
}

/** The eight 16-bit groups of an IPv6 address, or `undefined` (no scope id). */
function ipv6Groups(s: string): number[] | undefined {
  if (!s) return undefined;
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string, allowV4: boolean): number[] | undefined => {
    if (part === "") return [];
    const items = part.split(":");
    const out: number[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (allowV4 && i === items.length - 1 && it.includes(".")) {
        const v4 = parseIPv4(it);
        if (!v4) return undefined;
        const [a, b, c, d] = v4.split(".").map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return undefined;
      out.push(parseInt(it, 16));
    }
    return out;
  };
  if (halves.length === 1) {
    const g = parse(halves[0]!, true);
    return g && g.length === 8 ? g : undefined;
  }
  const head = parse(halves[0]!, false);
  const tail = parse(halves[1]!, true);
  if (!head || !tail || head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** `str(ipaddress.IPv6Address(s))`, or `undefined` when Python refuses it. */
export function parseIPv6(s: string): string | undefined {
  let scope = "";
  const pct = s.indexOf("%");
  if (pct >= 0) {
    scope = s.slice(pct + 1);
    if (!scope || scope.includes("%")) return undefined;
    s = s.slice(0, pct);
  }
  const g = ipv6Groups(s);
  if (!g) return undefined;
  return compressIPv6(g) + (pct >= 0 ? `%${scope}` : "");
}

/** Python's `_compress_hextets`: the first longest run (of 2+) of zero groups becomes `::`. */
function compressIPv6(g: number[]): string {
  let best = -1;
  let bestLen = 0;
  let cur = -1;
  let curLen = 0;
  g.forEach((x, i) => {
    if (x === 0) {
      if (cur < 0) cur = i;
      curLen++;
      if (curLen > bestLen) {
        best = cur;
        bestLen = curLen;
      }
    } else {
      cur = -1;
      curLen = 0;
    }
  });
  const hex = g.map((x) => x.toString(16));
  if (bestLen > 1) {
    const out = [...hex.slice(0, best), "", ...hex.slice(best + bestLen)];
    if (best === 0) out.unshift("");
    if (best + bestLen === 8) out.push("");
    return out.join(":");
  }
  return hex.join(":");
}

/** `str(uuid.UUID(s))`, or `undefined` when Python refuses it. */
export function parseUuid(s: string): string | undefined {
  const hex = s.replace(/urn:/g, "").replace(/uuid:/g, "").replace(/^[{}]+|[{}]+$/g, "").replace(/-/g, "");
  if (hex.length !== 32 || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
  const h = hex.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
