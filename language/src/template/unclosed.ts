/**
 * An opening bracket or quote a YAML text never closes: the parser reports
 * it where it gives up (the next line, or past the end of the file) and then
 * misreads the rest into more errors, so both the stack files and the policy
 * test files say it once, at the bracket or quote. Pure.
 */
import { Parser } from "yaml";

/** An opening bracket or quote the text never closes. */
export interface Unclosed {
  offset: number;
  message: string;
  help: string;
}

/**
 * The first (outermost) flow collection or quoted scalar the text opens and never closes,
 * from the `yaml` concrete syntax tree. Only looked for when the parser reported an error.
 */
export function firstUnclosed(text: string): Unclosed | undefined {
  const found: Array<Unclosed & { quote: boolean }> = [];
  const consider = (u: Unclosed, quote = false) => found.push({ ...u, quote });
  const walk = (t: unknown, depth: number): void => {
    if (depth > 400 || t === null || typeof t !== "object") return;
    if (Array.isArray(t)) {
      for (const x of t) walk(x, depth + 1);
      return;
    }
    const tok = t as { type?: string; offset?: number; source?: string; start?: { type?: string; offset?: number }; end?: Array<{ type?: string }> };
    if (tok.type === "flow-collection" && tok.start && typeof tok.start.offset === "number") {
      const seq = tok.start.type === "flow-seq-start";
      const close = seq ? "flow-seq-end" : "flow-map-end";
      if (!(tok.end ?? []).some((e) => e.type === close)) {
        const [o, c, what] = seq ? ["[", "]", "list"] : ["{", "}", "mapping"];
        consider({ offset: tok.start.offset, message: `unclosed ${o}: the ${what} that starts here has no closing ${c}`, help: `close it with ${c} on the same line, or write the ${what} in block style (one entry per line)` });
      }
    }
    if ((tok.type === "double-quoted-scalar" || tok.type === "single-quoted-scalar") && typeof tok.offset === "number" && typeof tok.source === "string" && !quoteClosed(tok.source)) {
      const q = tok.type === "double-quoted-scalar" ? '"' : "'";
      consider({ offset: tok.offset, message: `unclosed ${q}: the quoted string that starts here has no closing ${q}`, help: `close the quote on the same value (a ${q} inside it is written ${q === '"' ? '\\"' : "''"})` }, true);
      return;
    }
    for (const v of Object.values(tok)) if (v !== null && typeof v === "object") walk(v, depth + 1);
  };
  try {
    for (const token of new Parser().parse(text)) walk(token, 0);
  } catch {
    return undefined;
  }
  found.sort((a, b) => a.offset - b.offset);
  // An unclosed quote after an unclosed bracket is the cause: it swallowed the closing bracket.
  const first = found[0];
  if (!first) return undefined;
  const pick = first.quote ? first : (found.find((u) => u.quote) ?? first);
  return { offset: pick.offset, message: pick.message, help: pick.help };
}

/** Whether a quoted scalar's source ends with its closing quote. */
function quoteClosed(source: string): boolean {
  const q = source[0];
  if (source.length < 2 || source[source.length - 1] !== q) return false;
  let n = 0;
  if (q === '"') {
    for (let i = source.length - 2; i > 0 && source[i] === "\\"; i--) n++;
    return n % 2 === 0;
  }
  for (let i = source.length - 1; i > 0 && source[i] === "'"; i--) n++;
  return n % 2 === 1;
}

