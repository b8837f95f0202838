/**
 * The few Python string semantics the engine's behaviour depends on.
 *
 * The real engine splits fields with `str.split()`, strips lines with
 * `str.strip()` and formats messages with `repr()`. JavaScript's `\s` and
 * `JSON.stringify` differ from these in small ways that change decisions and
 * messages, so the language core uses only the functions here.
 */

/**
 * True for the characters Python's `str.isspace()` accepts, the set that
 * `str.split()` and `str.strip()` use. It includes `\x1c`–`\x1f` and `\x85`
 * (absent from JavaScript's `\s`) and excludes `\ufeff` (present in `\s`).
 */
export function isPyWhitespace(code: number): boolean {
  if (code <= 0x20) return code === 0x20 || (code >= 0x09 && code <= 0x0d) || (code >= 0x1c && code <= 0x1f);
  if (code < 0x85) return false;
  return (
    code === 0x85 ||
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000
  );
}

/** Python's `str.strip()` with no argument. */
export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isPyWhitespace(s.charCodeAt(a))) a++;
  while (b > a && isPyWhitespace(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** Python's `str.split()` with no argument. */
export function pySplit(s: string): string[] {
  const out: string[] = [];
  const n = s.length;
  let i = 0;
  while (i < n) {
    while (i < n && isPyWhitespace(s.charCodeAt(i))) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && !isPyWhitespace(s.charCodeAt(i))) i++;
    out.push(s.slice(start, i));
  }
  return out;
}

const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

function escapeChar(ch: string, quote: string): string {
  switch (ch) {
    case "\\":
      return "\\\\";
    case "\n":
      return "\\n";
    case "\r":
      return "\\r";
    case "\t":
      return "\\t";
  }
  if (ch === quote) return "\\" + ch;
  if (ch !== " " && NON_PRINTABLE.test(ch)) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x100) return "\\x" + cp.toString(16).padStart(2, "0");
    if (cp < 0x10000) return "\\u" + cp.toString(16).padStart(4, "0");
    return "\\U" + cp.toString(16).padStart(8, "0");
  }
  return ch;
}

/** Python's `repr()` of a string, e.g. `'x'`, `"it's"`, `'\ufeff'`. */
export function pyRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) out += escapeChar(ch, quote);
  return out + quote;
}

/** Python's `repr()` of a tuple of strings: `()`, `('a',)`, `('a', 'b')`. */
export function pyTupleRepr(items: readonly string[]): string {
  if (items.length === 1) return `(${pyRepr(items[0]!)},)`;
  return `(${items.map(pyRepr).join(", ")})`;
}

/** Python's `repr()` of a list of strings: `['a', 'b']`. */
export function pyListRepr(items: readonly string[]): string {
  return `[${items.map(pyRepr).join(", ")}]`;
}

/** Compares two strings by code point, as Python's `<` on `str` does. */
export function pyCompare(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates (0xd800–0xdfff) encode code points above every BMP character.
      const xs = x >= 0xd800 && x <= 0xdfff;
      const ys = y >= 0xd800 && y <= 0xdfff;
      if (xs !== ys) return xs ? 1 : -1;
      return x - y;
    }
  }
  return a.length - b.length;
}

/** Python truthiness of a JSON value. */
export function pyTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v as object).length > 0;
  return true;
}
