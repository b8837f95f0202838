/**
 * Where the cursor is in a YAML file, from the text alone: the chain of keys
 * from the root (sequence entries as `-`), whether a key or a value is being
 * typed, and the word to replace. Works line by line on indentation, so it
 * copes with the half-typed documents completion sees (a YAML parser gives up
 * or guesses on those). Handles block mappings and sequences, `- key:` items,
 * and flow collections (`{ a: 1, b: [x, y] }`) on the cursor's line.
 *
 * Pure; never throws.
 */
import type { Span } from "../../diagnostics.js";

/** The cursor's place in the YAML structure. */
export interface YamlContext {
  /** Keys from the root to the collection the cursor is in; a sequence entry is `-`. */
  path: string[];
  /** `key`: a mapping key (or a plain sequence entry) is typed; `value`: the value of {@link key}. */
  at: "key" | "value";
  /** The key whose value is typed (when `at` is `value`). */
  key?: string;
  /** The text of the word before the cursor. */
  prefix: string;
  /** The word the completion replaces (may be empty, at the cursor). */
  span: Span;
  /** Keys already present in the mapping the cursor is in (for `key`). */
  siblings: string[];
  /** True when the cursor is inside a comment. */
  comment: boolean;
}

interface Line {
  start: number;
  text: string;
}

function splitLines(text: string): Line[] {
  const out: Line[] = [];
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i === text.length || text[i] === "\n") {
      let end = i;
      if (end > start && text[end - 1] === "\r") end--;
      out.push({ start, text: text.slice(start, end) });
      start = i + 1;
    }
  }
  return out;
}

/** One structural element that opens content on a line: a `- ` or a `key:`, at its column. */
interface Opener {
  col: number;
  seg: string;
  /** For keys: the column right after the colon. */
  after?: number;
}

const KEY_RE = /^((?:"[^"]*"|'[^']*'|[^\s#:{}[\],"'][^#:]*?|))\s*:(?=\s|$)/;

function unquote(k: string): string {
  const t = k.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  return t;
}

/** The openers of a line: its dashes and its key, in order. `first` is the column of its first character. */
function openersOf(text: string): { first: number; openers: Opener[] } | undefined {
  let i = 0;
  while (i < text.length && text[i] === " ") i++;
  if (i >= text.length || text[i] === "#") return undefined;
  const first = i;
  const openers: Opener[] = [];
  for (;;) {
    if (text[i] === "-" && (i + 1 === text.length || text[i + 1] === " ")) {
      openers.push({ col: i, seg: "-" });
      i++;
      while (i < text.length && text[i] === " ") i++;
      if (i >= text.length) break;
      continue;
    }
    const m = KEY_RE.exec(text.slice(i));
    if (m && m[1] !== undefined && m[1] !== "") openers.push({ col: i, seg: unquote(m[1]), after: i + m[0].length });
    break;
  }
  return { first, openers };
}

/** The indentation-based parent path of a node starting at column `col` on line `index`. */
function parentPath(lines: Line[], index: number, col: number): { path: string[]; from: number } {
  const path: string[] = [];
  let target = col;
  let from = -1;
  for (let j = index - 1; j >= 0 && target > 0; j--) {
    const o = openersOf(lines[j]!.text);
    if (!o || o.first >= target) continue;
    // A line inside a block scalar (`key: |`) is text: skip it when an ancestor above opens a block scalar.
    if (from < 0) from = j;
    const segs = o.openers.filter((op) => op.col < target).map((op) => op.seg);
    path.unshift(...segs);
    target = o.first;
  }
  return { path, from };
}

/** Keys present in the mapping whose entries start at column `col`, around line `index`. */
function siblingKeys(lines: Line[], index: number, col: number, scanUp: boolean): string[] {
  const keys: string[] = [];
  const take = (j: number): boolean => {
    const o = openersOf(lines[j]!.text);
    if (!o) return true;
    if (o.first < col) {
      // The `- key:` line that starts this mapping contributes its key.
      const own = o.openers.find((op) => op.col === col && op.seg !== "-");
      if (own) keys.push(own.seg);
      return false;
    }
    if (o.first === col) {
      const k = o.openers[0];
      if (k && k.seg !== "-") keys.push(k.seg);
      else return false;
    }
    return true;
  };
  if (scanUp) for (let j = index - 1; j >= 0; j--) if (!take(j)) break;
  for (let j = index + 1; j < lines.length; j++) {
    const o = openersOf(lines[j]!.text);
    if (!o) continue;
    if (o.first < col) break;
    if (o.first === col) {
      const k = o.openers[0];
      if (!k || k.seg === "-") break;
      keys.push(k.seg);
    }
  }
  return keys;
}

const WORD_STOP = new Set([" ", "\t", ",", "[", "]", "{", "}", '"', "'", "#"]);

function wordAround(line: Line, col: number, stopColon: boolean): { prefix: string; span: Span } {
  let s = col;
  while (s > 0 && !WORD_STOP.has(line.text[s - 1]!) && !(stopColon && line.text[s - 1] === ":")) s--;
  let e = col;
  while (e < line.text.length && !WORD_STOP.has(line.text[e]!) && !(stopColon && line.text[e] === ":")) e++;
  return { prefix: line.text.slice(s, col), span: { start: line.start + s, end: line.start + e } };
}

/** Scans a flow collection from `from` to the cursor: the nested keys and whether a key or value is typed. */
function flowContext(text: string, from: number, col: number): { segs: string[]; at: "key" | "value"; key?: string } | undefined {
  interface Frame {
    kind: "map" | "seq";
    key: string;
    afterColon: boolean;
    keyStart: number;
  }
  const stack: Frame[] = [];
  let i = from;
  while (i < col && text[i] === " ") i++;
  if (text[i] !== "{" && text[i] !== "[") return undefined;
  for (; i < col; i++) {
    const ch = text[i]!;
    const top = stack[stack.length - 1];
    if (ch === '"' || ch === "'") {
      const close = text.indexOf(ch, i + 1);
      if (close < 0 || close >= col) return { segs: [], at: "value" }; // inside a quoted string
      i = close;
      continue;
    }
    if (ch === "{" || ch === "[") {
      const seg = top ? (top.kind === "seq" ? "-" : top.key) : "";
      stack.push({ kind: ch === "{" ? "map" : "seq", key: seg, afterColon: false, keyStart: i + 1 });
      continue;
    }
    if (ch === "}" || ch === "]") {
      stack.pop();
      if (stack.length === 0) return undefined;
      continue;
    }
    if (!top) continue;
    if (ch === ",") {
      top.afterColon = false;
      top.keyStart = i + 1;
      continue;
    }
    if (ch === ":" && top.kind === "map" && !top.afterColon && (i + 1 >= text.length || text[i + 1] === " " || i + 1 === col)) {
      top.afterColon = true;
      top.key = unquote(text.slice(top.keyStart, i));
    }
  }
  if (stack.length === 0) return undefined;
  // Path segments: each frame below the top contributes the key that opened the next one.
  const segs: string[] = [];
  for (let k = 1; k < stack.length; k++) segs.push(stack[k]!.key);
  const top = stack[stack.length - 1]!;
  if (top.kind === "seq") return { segs: [...segs, "-"], at: "key" };
  return top.afterColon ? { segs, at: "value", key: top.key } : { segs, at: "key" };
}

/** The cursor's context at `offset` of a YAML text. */
export function yamlContextAt(text: string, offset: number): YamlContext {
  offset = Math.max(0, Math.min(offset, text.length));
  const lines = splitLines(text);
  let index = lines.findIndex((l) => offset >= l.start && offset <= l.start + l.text.length);
  if (index < 0) index = lines.length - 1;
  const line = lines[index]!;
  const col = offset - line.start;
  const before = line.text.slice(0, col);
  const hash = before.search(/(^|\s)#/);
  if (hash >= 0) return { path: [], at: "key", prefix: "", span: { start: offset, end: offset }, siblings: [], comment: true };

  const o = openersOf(line.text);
  let indent = 0;
  while (indent < line.text.length && line.text[indent] === " ") indent++;
  const firstCol = o ? o.first : Math.min(indent, col);
  const { path } = parentPath(lines, index, firstCol);
  const openers = (o?.openers ?? []).filter((op) => op.col < col);
  // The last key before the cursor whose colon the cursor is past makes this a value.
  const lastKey = [...openers].reverse().find((op) => op.seg !== "-");
  const lineSegs: string[] = [];
  for (const op of openers) {
    if (op === lastKey) break;
    lineSegs.push(op.seg);
  }
  if (lastKey && lastKey.after !== undefined && col >= lastKey.after - (line.text[lastKey.after - 1] === ":" ? 0 : 1)) {
    const colonAt = line.text.indexOf(":", lastKey.col + (lastKey.seg.length || 0));
    if (colonAt >= 0 && col > colonAt) {
      const flow = flowContext(line.text, colonAt + 1, col);
      const basePath = [...path, ...lineSegs];
      if (flow) {
        const word = wordAround(line, col, flow.at === "key");
        const p = [...basePath, lastKey.seg, ...flow.segs];
        return flow.at === "value"
          ? { path: p, at: "value", key: flow.key!, ...word, siblings: [], comment: false }
          : { path: p, at: "key", ...word, siblings: [], comment: false };
      }
      const word = wordAround(line, col, false);
      return { path: basePath, at: "value", key: lastKey.seg, ...word, siblings: [], comment: false };
    }
  }
  // A key being typed (or a plain sequence entry): its column is after the last dash.
  const dashes = openers.filter((op) => op.seg === "-");
  const segs = [...path, ...dashes.map(() => "-")];
  const keyCol = dashes.length ? (() => {
    let c = dashes[dashes.length - 1]!.col + 1;
    while (c < line.text.length && line.text[c] === " ") c++;
    return c;
  })() : firstCol;
  const word = wordAround(line, col, true);
  const siblings = siblingKeys(lines, index, dashes.length ? keyCol : firstCol, dashes.length === 0).filter((k) => k !== word.prefix + line.text.slice(col, word.span.end - line.start));
  return { path: segs, at: "key", ...word, siblings, comment: false };
}
