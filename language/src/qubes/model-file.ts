/**
 * Reading a system model file (an `internal.GetSystemInfo` answer, as
 * `qkit system snapshot` writes it): one check shared by the CLI and the
 * language server, with one-line messages that say where (`FILE:LINE:COLUMN`
 * for bad JSON) and never echo the file's content (the file may be anything:
 * a path typed by mistake can name a secret).
 */
import type { RawSystemInfo } from "../eval/types.js";

/** Why a system model file cannot be used. */
export interface SystemModelFileProblem {
  code: "invalid-json" | "not-system-info" | "empty-system" | "bad-system-model";
  message: string;
}

/** The first JSON syntax error of `text`: its 0-based offset and what was expected, or `undefined` when `text` is valid JSON. */
export function jsonSyntaxError(text: string): { offset: number; expected: string } | undefined {
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  };
  class Stop {
    constructor(readonly expected: string) {}
  }
  const fail = (expected: string): never => {
    throw new Stop(expected);
  };
  const str = () => {
    i++;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail("a closing `\"` (a control character is not allowed in a string)");
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
            i += 2;
            fail("four hex digits after `\\u`");
          }
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else {
          i++;
          fail("a valid escape after `\\`");
        }
      } else i++;
    }
    fail("a closing `\"`");
  };
  const num = () => {
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === "-" || m[0] === "") fail("a value");
    i += m![0].length;
  };
  const value = (depth: number): void => {
    if (depth > 1000) fail("less nesting");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("a property name in double quotes");
        str();
        ws();
        if (text[i] !== ":") fail("`:` after the property name");
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return;
        }
        fail("`,` or `}`");
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return;
        }
        fail("`,` or `]`");
      }
    }
    if (c === '"') return str();
    for (const lit of ["true", "false", "null"]) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return num();
    fail(i >= n ? "a value (the file ends here)" : "a value");
  };
  try {
    // A byte-order mark is not JSON (JSON.parse refuses it too).
    value(0);
    ws();
    if (i < n) fail("the end of the file");
    return undefined;
  } catch (e) {
    if (e instanceof Stop) return { offset: Math.min(i, n), expected: i >= n && !e.expected.includes("file ends") ? `${e.expected} (the file ends here)` : e.expected };
    throw e;
  }
}

/** 1-based line and column (in UTF-16 units) of an offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let k = 0; k < offset; k++) {
    const c = text.charCodeAt(k);
    if (c === 10 || (c === 13 && text.charCodeAt(k + 1) !== 10)) {
      line++;
      start = k + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

/**
 * Where and why `text` is not JSON, for a one-line message: `FILE:LINE:COLUMN:
 * expected ...` (`file` as the user gave it, control characters escaped).
 * Never quotes the text (V8's own `JSON.parse` message can: the file may be a
 * secret named by mistake). Call it after `JSON.parse` has thrown.
 */
export function jsonErrorAt(text: string, file: string): string {
  const shown = escaped(file);
  const at = jsonSyntaxError(text);
  const where = at ? lineColumn(text, at.offset) : { line: 1, column: 1 };
  return `${shown}:${where.line}:${where.column}: ${at ? `expected ${at.expected}` : "not valid JSON"}`;
}

/** Text from the user or the file for a one-line message: control characters (and line separators) as `\uXXXX`. */
function escaped(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A qube name for a message: at most 40 characters, control characters escaped. */
function shownName(name: string): string {
  const s = escaped(name);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/**
 * Parses and checks the text of a system model file named `shown` (as the
 * user gave it): valid JSON (else where it breaks, `FILE:LINE:COLUMN`), an
 * object with a `domains` object, at least one qube, and every qube an
 * object of properties. Never throws; never quotes the text.
 */
export function readSystemModelText(text: string, file: string): { raw: RawSystemInfo } | { error: SystemModelFileProblem } {
  const shown = escaped(file);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { error: { code: "invalid-json", message: `the system model \`${shown}\` is not valid JSON (${jsonErrorAt(text, file)}); make one with \`qkit system snapshot\`` } };
  }
  const domains = raw && typeof raw === "object" && !Array.isArray(raw) ? (raw as { domains?: unknown }).domains : undefined;
  if (!domains || typeof domains !== "object" || Array.isArray(domains)) {
    return { error: { code: "not-system-info", message: `the system model \`${shown}\` is not an internal.GetSystemInfo answer (no \`domains\` object); make one with \`qkit system snapshot\`` } };
  }
  const entries = Object.entries(domains);
  if (entries.length === 0) {
    return { error: { code: "empty-system", message: `the system model \`${shown}\` has no qubes (\`domains\` is empty), so every answer would be empty; give the model of a real system (\`qkit system snapshot\` writes one; dom0 is always there)` } };
  }
  for (const [name, d] of entries) {
    if (!d || typeof d !== "object" || Array.isArray(d)) {
      const kind = d === null ? "null" : Array.isArray(d) ? "an array" : `a ${typeof d}`;
      return { error: { code: "bad-system-model", message: `the system model \`${shown}\`: qube \`${shownName(name)}\` is ${kind}, not an object of properties (\`type\`, \`tags\`, \`template_for_dispvms\`, ...); fix the entry or make the model again with \`qkit system snapshot\`` } };
    }
  }
  return { raw: raw as RawSystemInfo };
}
