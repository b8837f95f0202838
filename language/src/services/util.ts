/**
 * Small helpers shared by the editor services: finding lines and words at an
 * offset, Python-compatible whitespace splitting, paths and edit distance.
 *
 * Everything works on {@link Span} offsets (UTF-16, end exclusive); the
 * language server converts them to protocol positions at its one seam.
 */
import { basename, dirname, normalizePath } from "../loader/memfs.js";
import { isPyWhitespace } from "../syntax/python.js";
import type { Span } from "../diagnostics.js";
import type { LineNode, PolicyDocument, QubeToken, RuleLine, Word } from "../syntax/tree.js";

/** True for the characters Python's `str.split()` treats as whitespace (see `syntax/python.ts`). */
export function isSpace(ch: string): boolean {
  return isPyWhitespace(ch.charCodeAt(0));
}

/** Splits `text[start, end)` into words the way Python's `str.split()` does, keeping spans. */
export function splitWords(text: string, start: number, end: number, commas = false): Word[] {
  const words: Word[] = [];
  let i = start;
  while (i < end) {
    while (i < end && (isSpace(text[i]!) || (commas && text[i] === ","))) i++;
    if (i >= end) break;
    const s = i;
    while (i < end && !isSpace(text[i]!) && !(commas && text[i] === ",")) i++;
    words.push({ text: text.slice(s, i), span: { start: s, end: i } });
  }
  return words;
}

/** The line node whose physical line contains `offset` (the end of a line counts as inside it). */
export function lineAt(doc: PolicyDocument, offset: number): LineNode | undefined {
  const lines = doc.lines;
  let lo = 0;
  let hi = lines.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const l = lines[mid]!;
    if (offset < l.lineSpan.start) hi = mid - 1;
    else if (offset > l.lineSpan.end) lo = mid + 1;
    else return l;
  }
  return undefined;
}

/** The line node for a 1-based physical line number. */
export function lineByNumber(doc: PolicyDocument, line: number): LineNode | undefined {
  const lines = doc.lines;
  const direct = lines[line - 1];
  if (direct && direct.line === line) return direct;
  // Lines are in order: a binary search (a line past the end is asked for often, e.g. a rule of an older text).
  let lo = 0;
  let hi = lines.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = lines[mid]!.line;
    if (at === line) return lines[mid];
    if (at < line) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/** True when `offset` lies inside `span` or touches its end. */
export function touches(span: Span, offset: number): boolean {
  return offset >= span.start && offset <= span.end;
}

/** The end of a line including its line terminator (the start of the next line, or the text end). */
export function lineEndWithTerminator(doc: PolicyDocument, line: LineNode): number {
  const idx = doc.lines.indexOf(line);
  const next = idx >= 0 ? doc.lines[idx + 1] : undefined;
  return next ? next.lineSpan.start : doc.text.length;
}

/** True when a qube token names dom0 (`dom0`, `@adminvm`, or the all-zero UUID). */
export function isDom0ish(text: string): boolean {
  return text === "dom0" || text === "@adminvm" || text === "uuid:00000000-0000-0000-0000-000000000000";
}

/** The rule line's word at `offset`, with its role. */
export type WordRole =
  | "service"
  | "argument"
  | "source"
  | "target"
  | "action"
  | "param"
  | "directive"
  | "directive-param"
  | "other";

/** Which column of a rule line a word is. */
export function roleOfWord(line: RuleLine, word: Word): WordRole {
  if (line.serviceWord === word) return "service";
  if (line.argumentWord === word) return "argument";
  if (line.sourceWord === word) return "source";
  if (line.targetWord === word) return "target";
  if (line.actionWord === word) return "action";
  return "param";
}

/** Lexical normalisation of an absolute POSIX path (`.` and `..` resolved, duplicate slashes removed): the loader's own. */
export const normalize = normalizePath;

/** Joins a relative path onto a directory, or returns an absolute one as is, normalised. */
export function resolvePath(dir: string, path: string): string {
  return normalize(path.startsWith("/") ? path : `${dir}/${path}`);
}

export { dirname, basename };

/** Levenshtein distance, capped for speed. */
export function editDistance(a: string, b: string, cap = 4): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      if (v < best) best = v;
    }
    if (best > cap) return cap + 1;
    prev = cur;
  }
  return prev[b.length]!;
}

/** The closest candidates to `word` (distance at most 2, or a case-insensitive match). */
export function closest(word: string, candidates: Iterable<string>, max = 3): string[] {
  const scored: Array<[number, string]> = [];
  const lower = word.toLowerCase();
  for (const c of candidates) {
    if (c === word) continue;
    const d = c.toLowerCase() === lower ? 0 : editDistance(word, c, 2);
    if (d <= 2) scored.push([d, c]);
  }
  scored.sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : 1));
  return scored.slice(0, max).map((s) => s[1]);
}

/** A stable text key of a qube token, for indexes. */
export function tokenKey(t: QubeToken): string {
  return isDom0ish(t.text) ? "dom0" : t.text;
}

/** Quotes user input for messages, as the style guide asks. */
export function code(text: string): string {
  return "`" + text + "`";
}
