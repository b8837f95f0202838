/**
 * Formatting: columns aligned per block of rules (a block runs until a blank
 * line, a directive or a line with an error; comment lines inside it belong
 * to it, as in the standard Qubes files where each rule has its comment),
 * one space in directives, comments and blank lines kept (trailing
 * whitespace removed).
 * Lines with errors are left exactly as they are. Only whitespace inside
 * lines changes, so the formatted document has the same rules.
 */
import type { Span } from "../diagnostics.js";
import type { LineNode, PolicyDocument, RuleLine } from "../syntax/tree.js";
import { isSpace } from "./util.js";

/** A replacement of a span by new text. */
export interface TextEdit {
  span: Span;
  newText: string;
}

/** Formatting options. */
export interface FormatOptions {
  /** Spaces between columns (default 2). */
  gap?: number;
  /** Format only the lines touching this span (blocks are still measured whole). */
  range?: Span;
}

function strip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isSpace(s[a]!)) a++;
  while (b > a && isSpace(s[b - 1]!)) b--;
  return s.slice(a, b);
}

/** The words of a rule line as written in the document (legacy `$` kept). */
function ruleWords(doc: PolicyDocument, line: RuleLine): string[] {
  return line.words.map((w) => doc.text.slice(w.span.start, w.span.end));
}

/** The formatted text of every line (without line terminators), in line order. */
export function formatLines(doc: PolicyDocument, options: FormatOptions = {}): string[] {
  const gap = " ".repeat(Math.max(1, options.gap ?? 2));
  const errorLines = new Set(doc.diagnostics.filter((d) => d.severity === "error").map((d) => d.line));
  const fixed = doc.syntax === "service" ? 3 : 5;
  const out: string[] = doc.lines.map((l) => doc.text.slice(l.lineSpan.start, l.lineSpan.end));
  // INVARIANT: only whitespace between words changes. In legacy syntax the `$include:` rewrite
  // changes a `:` into a space and a `,` separates words like a space, so such lines are never touched.
  const formattable = (l: LineNode): l is RuleLine =>
    l.kind === "rule" &&
    l.rule !== null &&
    !errorLines.has(l.line) &&
    !(doc.syntax === "service" && /\$include:|,/.test(doc.text.slice(l.lineSpan.start, l.lineSpan.end)));
  let i = 0;
  while (i < doc.lines.length) {
    const line = doc.lines[i]!;
    if (errorLines.has(line.line)) {
      i++;
      continue;
    }
    if (line.kind === "blank") {
      // INVARIANT: the number of lines never changes. Emptying a blank line between a lone `\r`
      // and a `\n` would turn the two terminators into one `\r\n`, so such a line is kept.
      const prevEndsCr = line.lineSpan.start > 0 && doc.text[line.lineSpan.start - 1] === "\r";
      if (!(prevEndsCr && doc.text[line.lineSpan.end] === "\n")) out[i] = "";
      i++;
      continue;
    }
    if (line.kind === "comment") {
      out[i] = strip(out[i]!);
      i++;
      continue;
    }
    if (line.kind === "directive") {
      if (line.directive !== null && doc.syntax === "policy") out[i] = [line.name, ...line.params].map((w) => doc.text.slice(w.span.start, w.span.end)).join(" ");
      i++;
      continue;
    }
    if (!formattable(line)) {
      i++;
      continue;
    }
    // A block: formattable rule lines, with the comment lines among them, up to a
    // blank line, a directive, or a line that is not formattable.
    let j = i;
    let last = i;
    while (j < doc.lines.length) {
      const l = doc.lines[j]!;
      if (formattable(l)) last = j;
      else if (!(l.kind === "comment" && !errorLines.has(l.line))) break;
      j++;
    }
    // Trailing comments after the last rule are left to the main loop.
    j = last + 1;
    const members = doc.lines.slice(i, j);
    for (let k = i; k < j; k++) if (doc.lines[k]!.kind === "comment") out[k] = strip(out[k]!);
    const block = members.filter((l): l is RuleLine => l.kind === "rule");
    const indexOf = new Map(block.map((l) => [l, doc.lines.indexOf(l)] as const));
    const words = block.map((l) => ruleWords(doc, l));
    const widths: number[] = [];
    for (const ws of words) {
      const hasParams = ws.length > fixed;
      const cols = hasParams ? fixed : fixed - 1;
      for (let c = 0; c < cols; c++) widths[c] = Math.max(widths[c] ?? 0, ws[c]!.length);
    }
    words.forEach((ws, k) => {
      let s = "";
      for (let c = 0; c < ws.length; c++) {
        const w = ws[c]!;
        if (c === ws.length - 1) s += w;
        else if (c < fixed) s += w.padEnd(widths[c] ?? w.length) + gap;
        else s += w + " ";
      }
      out[indexOf.get(block[k]!)!] = s;
    });
    i = j;
  }
  return out;
}

/** The edits that format a document (one per changed line). Never throws. */
export function formatDocument(doc: PolicyDocument, options: FormatOptions = {}): TextEdit[] {
  const lines = formatLines(doc, options);
  const edits: TextEdit[] = [];
  doc.lines.forEach((l, k) => {
    if (options.range && (l.lineSpan.end < options.range.start || l.lineSpan.start > options.range.end)) return;
    const old = doc.text.slice(l.lineSpan.start, l.lineSpan.end);
    if (old !== lines[k]) edits.push({ span: l.lineSpan, newText: lines[k]! });
  });
  return edits;
}

/** Applies non-overlapping edits to a text. */
export function applyEdits(text: string, edits: readonly TextEdit[]): string {
  const sorted = [...edits].sort((a, b) => b.span.start - a.span.start);
  let out = text;
  for (const e of sorted) out = out.slice(0, e.span.start) + e.newText + out.slice(e.span.end);
  return out;
}

/** The formatted text of a whole document. */
export function formatText(doc: PolicyDocument, options: FormatOptions = {}): string {
  return applyEdits(doc.text, formatDocument(doc, options));
}
