/**
 * Offsets of a diagnostic as lines and columns, the way the daemon counts
 * lines (universal newlines: `\n`, `\r\n` and a lone `\r` each end a line).
 */
import type { Span } from "../diagnostics.js";
import type { ReportLocation } from "./types.js";

function isBreak(c: number): boolean {
  return c === 10 || c === 13;
}

/** The offset where the line holding `offset` starts. */
function lineStart(text: string, offset: number): number {
  let i = Math.max(0, Math.min(offset, text.length));
  while (i > 0 && !isBreak(text.charCodeAt(i - 1))) i--;
  return i;
}

/** The offset where the line holding `offset` ends (before its line ending). */
function lineEnd(text: string, offset: number): number {
  let i = Math.max(0, Math.min(offset, text.length));
  while (i < text.length && !isBreak(text.charCodeAt(i))) i++;
  return i;
}

/**
 * The line and column range of a span. `line` is the diagnostic's own line
 * (the engine's count); the end line adds the line endings inside the span.
 * Without the text, the span is taken to start the line.
 */
export function locateSpan(text: string | undefined, span: Span, line: number): Omit<ReportLocation, "file"> {
  if (text === undefined) return { line, column: 1, endLine: line, endColumn: 1 + Math.max(0, span.end - span.start) };
  const start = Math.max(0, Math.min(span.start, text.length));
  const end = Math.max(start, Math.min(span.end, text.length));
  const column = start - lineStart(text, start) + 1;
  let endLine = line;
  let lastStart = lineStart(text, start);
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
      // A span that ends right after a line ending ends on its line, not the next.
      if (i + 1 >= end) break;
      endLine++;
      lastStart = i + 1;
    }
  }
  let endOffset = end;
  // Line endings at the end of a span are not part of what it points at.
  while (endOffset > start && isBreak(text.charCodeAt(endOffset - 1))) endOffset--;
  const endColumn = endLine === line ? Math.max(column, endOffset - lineStart(text, start) + 1) : endOffset - lastStart + 1;
  return { line, column, endLine, endColumn };
}

/** The text of the line holding `offset` (without its line ending). */
export function sourceLineAt(text: string, offset: number): string {
  return text.slice(lineStart(text, offset), lineEnd(text, offset));
}
