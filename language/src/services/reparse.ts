/**
 * Incremental parsing: a new text of a document, parsed by re-parsing only
 * the lines an edit touched.
 *
 * The policy language is line-oriented: what a line parses to depends on that
 * line's text alone (and on the document's syntax and newline mode). So the
 * lines before an edit are reused as they are (the same objects), the lines
 * the edit touched (plus one on each side, for line endings that merge or
 * split, such as `\r` followed by an inserted `\n`) are parsed again, and the
 * lines after it are shifted (new line objects with moved spans, sharing
 * their `rule`, whose tokens carry no position).
 *
 * INVARIANT: `reparseDocument(previous, text, options)` is deeply equal to
 * `parseDocument(text, options)` (a property test checks it after random
 * edits, line endings included).
 */
import type { Diagnostic } from "../diagnostics.js";
import { parseDocument, type ParseOptions } from "../syntax/parse.js";
import type { LineNode, PolicyDocument, RuleLine, Word } from "../syntax/tree.js";

/**
 * Parses `text` reusing `previous` (a parse of an earlier version of the same
 * document with the same options). Falls back to a full parse when the
 * previous parse was made with another syntax or newline mode.
 */
export function reparseDocument(previous: PolicyDocument, text: string, options: ParseOptions = {}): PolicyDocument {
  const steps = reparseDocumentSteps(previous, text, options);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

/** Lines shifted between two steps of {@link reparseDocumentSteps}. */
const SHIFTS_PER_STEP = 250;

/**
 * {@link reparseDocument} in steps: it yields every 250 lines it moves (an edit near the top
 * of a long document moves every later line), so that a server answers requests in between.
 */
export function* reparseDocumentSteps(previous: PolicyDocument, text: string, options: ParseOptions = {}): Generator<void, PolicyDocument, void> {
  const syntax = options.syntax ?? "policy";
  const newlines = options.newlines ?? "universal";
  if (previous.syntax !== syntax || previous.newlines !== newlines) return parseDocument(text, options);
  const old = previous.text;
  if (old === text) return previous;
  // The changed region: a common prefix and a common suffix that do not overlap.
  const min = Math.min(old.length, text.length);
  let prefix = 0;
  while (prefix < min && old.charCodeAt(prefix) === text.charCodeAt(prefix)) prefix++;
  let suffix = 0;
  while (suffix < min - prefix && old.charCodeAt(old.length - 1 - suffix) === text.charCodeAt(text.length - 1 - suffix)) suffix++;
  const lines = previous.lines;
  const n = lines.length;
  // First and last touched lines (0-based), widened by one line on each side.
  const first = Math.max(0, lineIndexAt(lines, prefix) - 1);
  let last = Math.min(n - 1, lineIndexAt(lines, old.length - suffix) + 1);
  const start = lines[first]!.lineSpan.start;
  const oldEnd = last + 1 < n ? lines[last + 1]!.lineSpan.start : old.length;
  // A region that runs to the end of the text takes the empty last line after a final terminator
  // with it (its parse makes that line again), e.g. when an inserted `\n` joins a `\r` before it.
  if (oldEnd === old.length) last = n - 1;
  const delta = text.length - old.length;
  const newEnd = oldEnd + delta;
  // A full parse is as cheap when most of the document changed.
  if (newEnd - start > text.length / 2) return parseDocument(text, options);

  const region = parseDocument(text.slice(start, newEnd), options);
  const regionLines = region.lines;
  // Unless the region runs to the end of the text, it ends with a line terminator, after which its
  // parse has an empty last line that belongs to the next line of the document.
  const regionCount = newEnd < text.length ? regionLines.length - 1 : regionLines.length;
  const lineShift = first; // region line k (1-based) is document line first + k
  const lineDelta = regionCount - (last - first + 1);

  const out: LineNode[] = new Array(first + regionCount + (n - last - 1));
  let k = 0;
  for (let i = 0; i < first; i++) out[k++] = lines[i]!;
  // Lines of the region that the edit did not change (the context lines around it) keep their
  // nodes, so that their rules stay the same objects for the later stages' caches.
  const oldLineText = (i: number) => old.slice(lines[i]!.lineSpan.start, i + 1 < n ? lines[i + 1]!.lineSpan.start : old.length);
  const newLineText = (i: number) => text.slice(start + regionLines[i]!.lineSpan.start, i + 1 < regionLines.length ? start + regionLines[i + 1]!.lineSpan.start : newEnd);
  let lead = 0;
  while (lead < regionCount && first + lead <= last && lines[first + lead]!.lineSpan.start === start + regionLines[lead]!.lineSpan.start && oldLineText(first + lead) === newLineText(lead)) lead++;
  let trail = 0;
  while (
    trail < regionCount - lead &&
    last - trail >= first + lead &&
    lines[last - trail]!.lineSpan.start + delta === start + regionLines[regionCount - 1 - trail]!.lineSpan.start &&
    oldLineText(last - trail) === newLineText(regionCount - 1 - trail)
  )
    trail++;
  for (let i = 0; i < regionCount; i++) {
    if (i < lead) out[k++] = lines[first + i]!;
    else if (i >= regionCount - trail) {
      const o = lines[last - (regionCount - 1 - i)]!;
      out[k++] = delta === 0 && lineDelta === 0 ? o : shiftLine(o, delta, lineDelta);
    } else out[k++] = shiftLine(regionLines[i]!, start, lineShift);
  }
  if (delta === 0 && lineDelta === 0) for (let i = last + 1; i < n; i++) out[k++] = lines[i]!;
  else {
    for (let i = last + 1; i < n; i++) {
      out[k++] = shiftLine(lines[i]!, delta, lineDelta);
      if ((i - last) % SHIFTS_PER_STEP === 0) yield;
    }
  }

  // Diagnostics are reported line by line, in order.
  const firstLine = first + 1;
  const lastLine = last + 1;
  const diagnostics: Diagnostic[] = [];
  for (const d of previous.diagnostics) if (d.line < firstLine) diagnostics.push(d);
  for (const d of region.diagnostics) if (d.line <= regionCount) diagnostics.push(shiftDiagnostic(d, start, lineShift));
  for (const d of previous.diagnostics) if (d.line > lastLine) diagnostics.push(delta === 0 && lineDelta === 0 ? d : shiftDiagnostic(d, delta, lineDelta));
  return { text, syntax, newlines, lines: out, diagnostics };
}

/** The index of the line that contains `offset` (the last line starting at or before it). */
function lineIndexAt(lines: readonly LineNode[], offset: number): number {
  let lo = 0;
  let hi = lines.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lines[mid]!.lineSpan.start <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function shiftWord(w: Word, by: number): Word {
  return { text: w.text, span: { start: w.span.start + by, end: w.span.end + by } };
}

/**
 * A copy of a line node moved by `by` characters and `lines` lines (unchanged parts shared). It
 * makes as few objects as it can (every later line of a long document is moved by an edit): the
 * content span is the line span's object when they are equal, an empty parameter list is shared,
 * and a parameter's span is its word's, as the parser makes them.
 */
function shiftLine(l: LineNode, by: number, lines: number): LineNode {
  const line = l.line + lines;
  const lineSpan = { start: l.lineSpan.start + by, end: l.lineSpan.end + by };
  const span = l.span.start === l.lineSpan.start && l.span.end === l.lineSpan.end ? lineSpan : { start: l.span.start + by, end: l.span.end + by };
  switch (l.kind) {
    case "blank":
      return { kind: "blank", line, lineSpan, span };
    case "comment":
      return { kind: "comment", line, lineSpan, span, text: l.text };
    case "directive": {
      const name = shiftWord(l.name, by);
      const out: LineNode = { kind: "directive", line, lineSpan, span, name, directive: l.directive, params: l.params.map((w) => shiftWord(w, by)) };
      if ("service" in l) out.service = l.service ?? null;
      if ("argument" in l) out.argument = l.argument ?? null;
      return out;
    }
    case "rule": {
      const old = l.words;
      const words: Word[] = new Array(old.length);
      for (let i = 0; i < old.length; i++) words[i] = shiftWord(old[i]!, by);
      // The column words are elements of `words`: keep them so.
      const same = (w: Word | undefined) => (w === undefined ? undefined : words[old.indexOf(w)]);
      let params = l.params;
      if (params.length) {
        params = new Array(l.params.length);
        for (let i = 0; i < l.params.length; i++) {
          const p = l.params[i]!;
          let at = -1;
          for (let k = 0; k < old.length && at < 0; k++) if (old[k]!.span === p.span) at = k;
          params[i] = { key: p.key, value: p.value, span: at >= 0 ? words[at]!.span : { start: p.span.start + by, end: p.span.end + by } };
        }
      }
      const out: RuleLine = { kind: "rule", line, lineSpan, span, words, params, rule: l.rule };
      // The keys the parser sets, in its order (one object shape).
      if ("serviceWord" in l) out.serviceWord = same(l.serviceWord);
      if ("argumentWord" in l) out.argumentWord = same(l.argumentWord);
      if ("sourceWord" in l) out.sourceWord = same(l.sourceWord);
      if ("targetWord" in l) out.targetWord = same(l.targetWord);
      if ("actionWord" in l) out.actionWord = same(l.actionWord);
      return out;
    }
  }
}

function shiftDiagnostic(d: Diagnostic, by: number, lines: number): Diagnostic {
  return { ...d, span: { start: d.span.start + by, end: d.span.end + by }, line: d.line + lines };
}
