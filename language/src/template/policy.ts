/**
 * Embedded policy: a `rules: |` block of a stack or bundle file seen as the
 * policy document it will become, with an offset map back into the YAML file.
 *
 * The map is a list of segments (policy text range ↔ source range). A block
 * literal gives one segment per line (each policy line starts at the block's
 * indentation on its source line); a bundle's `${param}` substitution splits a
 * line into verbatim segments and one segment per substituted value, which maps
 * onto the `${param}` text in the bundle file.
 */
import { isScalar, type Node } from "yaml";
import type { Span } from "../diagnostics.js";
import { lineIndexOf } from "./lines.js";

/** One piece of the map: policy text `[out, out+len)` comes from `[src, src+srcLen)` of the YAML file. */
export interface PolicySegment {
  out: number;
  len: number;
  src: number;
  srcLen: number;
  /** Set when the piece is a substituted bundle parameter (`src` is then the `${name}` text). */
  param?: string;
}

/** A `rules` block as a virtual policy document. */
export interface EmbeddedPolicy {
  /** The YAML file holding the block (the bundle file for bundle policy). */
  file: string;
  /** The policy file's key (`file:`), as in {@link PolicyFileDecl.file}. */
  name: string;
  /** The absolute path the generated file will have (`/etc/qubes/policy.d/40-qkit-laptop-machine.policy`); empty when the stack has no valid name yet. */
  path: string;
  /** The policy text exactly as the generated file holds it after its header line. */
  text: string;
  /** The header line written above {@link text} (the generated file is `header + "\n" + text`). */
  header: string;
  /** Offset map, sorted by `out`, covering `text`. */
  segments: PolicySegment[];
  /** The `rules` value node's range in {@link file}. */
  span: Span;
  /** The map is exact (false: a scalar style whose text cannot be mapped per character; every position maps to the start of the value). */
  exact: boolean;
  /** For bundle policy: the instance and its `use:` entry. */
  use?: { as: string; bundle: string; file: string; span: Span };
}

/**
 * The raw segments of a scalar holding policy text, or `undefined` when its
 * text cannot be mapped character by character (folded or quoted styles with
 * escapes): then callers map everything to the value's start.
 */
export function scalarSegments(text: string, lineStarts: readonly number[], node: Node): PolicySegment[] | undefined {
  if (!isScalar(node) || typeof node.value !== "string" || !node.range) return undefined;
  const value = node.value;
  const [start, end] = node.range;
  if (node.type === "PLAIN" || node.type === "QUOTE_SINGLE" || node.type === "QUOTE_DOUBLE") {
    const q = node.type === "PLAIN" ? 0 : 1;
    if (!value.includes("\n") && text.slice(start + q, start + q + value.length) === value && (q === 0 || end - start === value.length + 2)) {
      return [{ out: 0, len: value.length, src: start + q, srcLen: value.length }];
    }
    return flowSegments(text, start + q, end - q, node.type, value);
  }
  if (node.type !== "BLOCK_LITERAL") return undefined;
  const header = lineIndexOf(lineStarts, start);
  const lines = value.split("\n");
  const srcLine = (i: number): string | undefined => {
    const li = header + 1 + i;
    if (li >= lineStarts.length) return undefined;
    const from = lineStarts[li]!;
    const to = li + 1 < lineStarts.length ? lineStarts[li + 1]! : text.length;
    return text.slice(from, to).replace(/\r?\n$|\r$/, "");
  };
  let indent = -1;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l === "") continue;
    const s = srcLine(i);
    if (s === undefined || !s.endsWith(l)) return undefined;
    indent = s.length - l.length;
    break;
  }
  if (indent < 0) indent = 0;
  const segs: PolicySegment[] = [];
  let out = 0;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const len = l.length + (i < lines.length - 1 ? 1 : 0);
    const li = header + 1 + i;
    const s = srcLine(i);
    if (l !== "" && (s === undefined || s.slice(indent) !== l || s.slice(0, indent).trim() !== "")) return undefined;
    const lineStart = li < lineStarts.length ? lineStarts[li]! : text.length;
    const src = s === undefined ? text.length : lineStart + Math.min(indent, s.length);
    if (len > 0) segs.push({ out, len, src, srcLen: len });
    out += len;
  }
  return segs;
}

/** The characters a double-quoted scalar's one-character escapes stand for (YAML 1.2, 5.7). */
const ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  "\t": "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\u0085",
  _: "\u00a0",
  L: "\u2028",
  P: "\u2029",
};
const HEX_DIGITS: Record<string, number> = { x: 2, u: 4, U: 8 };

/**
 * The segments of a flow scalar (plain, single- or double-quoted) whose
 * text is not its source as is: escapes (`\n`, `\t`, `\xNN` …, in double
 * quotes), a doubled quote (in single quotes), and line folding (a line
 * break between lines is a space, an empty line a line break; the spaces
 * around a break go). Each character of the value maps to the source text
 * it comes from. The characters of `text` from `from` to `to` (the quotes
 * left out) are read as YAML reads them; when what they make is not
 * `value` exactly (a construct this reading does not know), undefined: the
 * caller then maps everything to the value's start.
 */
function flowSegments(text: string, from: number, to: number, style: "PLAIN" | "QUOTE_SINGLE" | "QUOTE_DOUBLE", value: string): PolicySegment[] | undefined {
  const segs: PolicySegment[] = [];
  let out = 0;
  const emit = (chars: string, src: number, srcLen: number) => {
    const last = segs[segs.length - 1];
    // One segment per run of characters copied as they are.
    if (last && chars.length === srcLen && last.len === last.srcLen && last.src + last.srcLen === src && last.out + last.len === out) {
      last.len += chars.length;
      last.srcLen += srcLen;
    } else segs.push({ out, len: chars.length, src, srcLen });
    out += chars.length;
    decoded += chars;
  };
  const isBreak = (c: string | undefined) => c === "\n" || c === "\r";
  const isBlank = (c: string | undefined) => c === " " || c === "\t";
  let decoded = "";
  let i = from;
  while (i < to) {
    const c = text[i]!;
    if (style === "QUOTE_DOUBLE" && c === "\\") {
      const e = text[i + 1];
      if (e === undefined || i + 1 >= to) return undefined;
      if (isBreak(e)) {
        // An escaped line break: it and the next line's leading blanks are left out.
        i += e === "\r" && text[i + 2] === "\n" ? 3 : 2;
        while (i < to && isBlank(text[i])) i++;
        continue;
      }
      const simple = ESCAPES[e];
      if (simple !== undefined) {
        emit(simple, i, 2);
        i += 2;
        continue;
      }
      const n = HEX_DIGITS[e];
      if (n === undefined) return undefined;
      const hex = text.slice(i + 2, i + 2 + n);
      if (hex.length !== n || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
      const code = parseInt(hex, 16);
      if (code > 0x10ffff) return undefined;
      emit(String.fromCodePoint(code), i, 2 + n);
      i += 2 + n;
      continue;
    }
    if (style === "QUOTE_SINGLE" && c === "'" && text[i + 1] === "'") {
      emit("'", i, 2);
      i += 2;
      continue;
    }
    if (isBlank(c)) {
      // Blanks before a line break go with it (folding); others are the value's.
      let j = i;
      while (j < to && isBlank(text[j])) j++;
      if (j < to && isBreak(text[j])) {
        i = j;
        continue;
      }
      for (let k = i; k < j; k++) emit(text[k]!, k, 1);
      i = j;
      continue;
    }
    if (isBreak(c)) {
      // Folding: one break is a space, each further (empty) line a line break; the next line's leading blanks go.
      const breaks: number[] = [];
      while (i < to && isBreak(text[i])) {
        breaks.push(i);
        i += text[i] === "\r" && text[i + 1] === "\n" ? 2 : 1;
        while (i < to && isBlank(text[i])) i++;
      }
      if (breaks.length === 1) emit(" ", breaks[0]!, 1);
      else for (let k = 1; k < breaks.length; k++) emit("\n", breaks[k]!, 1);
      continue;
    }
    emit(c, i, 1);
    i++;
  }
  return decoded === value ? segs : undefined;
}

/** Segments mapping every position to one source range (the fallback of {@link scalarSegments}). */
export function coarseSegments(length: number, span: Span): PolicySegment[] {
  return [{ out: 0, len: Math.max(length, 1), src: span.start, srcLen: span.end - span.start }];
}

/** The segment holding a policy offset (the last one for offsets past the end). */
function segmentAt(segs: readonly PolicySegment[], offset: number): PolicySegment | undefined {
  let lo = 0;
  let hi = segs.length - 1;
  if (hi < 0) return undefined;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (segs[mid]!.out <= offset) lo = mid;
    else hi = mid - 1;
  }
  return segs[lo];
}

/** A policy offset → the offset in the YAML file (a substituted value maps to its `${param}`). */
export function policyToSource(block: Pick<EmbeddedPolicy, "segments" | "span">, offset: number, edge: "start" | "end" = "start"): number {
  if (edge === "end" && offset > 0) {
    // An end is just after its last character: where that character's source ends (the next
    // character may come from elsewhere, past a folded line break or an escape).
    const last = segmentAt(block.segments, offset - 1);
    if (last && offset - 1 < last.out + last.len) {
      if (last.param !== undefined || last.srcLen !== last.len) return last.src + last.srcLen;
      return last.src + (offset - last.out);
    }
  }
  const seg = segmentAt(block.segments, offset);
  if (!seg) return block.span.start;
  if (seg.param !== undefined || seg.srcLen !== seg.len) return edge === "end" && offset > seg.out ? seg.src + seg.srcLen : seg.src;
  return seg.src + Math.min(Math.max(0, offset - seg.out), seg.srcLen);
}

/** A policy span → a span in the YAML file, and the parameter when it falls on a substituted value. */
export function policySpanToSource(block: Pick<EmbeddedPolicy, "segments" | "span">, span: Span): { span: Span; param?: string } {
  const start = policyToSource(block, span.start);
  const end = Math.max(start, policyToSource(block, span.end, "end"));
  const seg = segmentAt(block.segments, span.start);
  const r: { span: Span; param?: string } = { span: { start, end } };
  if (seg?.param !== undefined) r.param = seg.param;
  return r;
}

/** A YAML offset → the policy offset, or `undefined` when it is outside the block's mapped text. */
export function sourceToPolicy(block: Pick<EmbeddedPolicy, "segments">, offset: number): number | undefined {
  for (const s of block.segments) {
    if (offset >= s.src && offset <= s.src + s.srcLen) {
      if (s.param !== undefined || s.srcLen !== s.len) return s.out;
      return s.out + Math.min(offset - s.src, s.len);
    }
  }
  return undefined;
}

/** A parameter lookup for {@link substitute}: the text to put in, or an error message. */
export type ParamLookup = (name: string) => { text: string } | { error: string; help?: string };

/** `${name}`: a parameter reference (names as in params). */
export const PARAM_REF = /\$\{([A-Za-z_][A-Za-z0-9_-]*)\}/g;

/**
 * Substitutes `${name}` in a mapped text, returning the new text and its
 * segments (verbatim pieces keep their mapping; substituted values map onto the
 * reference). Errors are reported with the raw range of the reference.
 */
export function substitute(
  text: string,
  segs: readonly PolicySegment[],
  lookup: ParamLookup,
  onError: (raw: Span, message: string, help?: string) => void,
): { text: string; segments: PolicySegment[] } {
  const out: PolicySegment[] = [];
  let result = "";
  const verbatim = (a: number, b: number) => {
    if (b <= a) return;
    for (const s of segs) {
      const from = Math.max(a, s.out);
      const to = Math.min(b, s.out + s.len);
      if (to <= from) continue;
      const exact = s.param === undefined && s.srcLen === s.len;
      out.push({ out: result.length + (from - a), len: to - from, src: exact ? s.src + (from - s.out) : s.src, srcLen: exact ? to - from : s.srcLen, ...(s.param !== undefined ? { param: s.param } : {}) });
    }
    result += text.slice(a, b);
  };
  let last = 0;
  for (const m of text.matchAll(PARAM_REF)) {
    const a = m.index!;
    const b = a + m[0].length;
    verbatim(last, a);
    const r = lookup(m[1]!);
    const srcA = policyToSource({ segments: segs as PolicySegment[], span: { start: 0, end: 0 } }, a);
    const srcB = policyToSource({ segments: segs as PolicySegment[], span: { start: 0, end: 0 } }, b, "end");
    if ("error" in r) {
      onError({ start: srcA, end: Math.max(srcA, srcB) }, r.error, r.help);
      verbatim(a, b);
    } else {
      if (r.text.length > 0) out.push({ out: result.length, len: r.text.length, src: srcA, srcLen: Math.max(0, srcB - srcA), param: m[1]! });
      result += r.text;
    }
    last = b;
  }
  verbatim(last, text.length);
  return { text: result, segments: out };
}

/** The block of `blocks` whose `rules` value in `file` contains `offset`, if any (for editors). */
export function policyBlockAt<T extends Pick<EmbeddedPolicy, "file" | "span">>(blocks: readonly T[], file: string, offset: number): T | undefined {
  return blocks.find((b) => b.file === file && offset >= b.span.start && offset <= b.span.end);
}
