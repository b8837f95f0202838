/**
 * The one seam between the language core's offsets and LSP positions
 * (P5: spans are UTF-16 offsets, end exclusive; LSP uses line/character).
 */
import { TextDocument } from "vscode-languageserver-textdocument";
import type { AnalysisDiagnostic, CompletionKind, Severity, Span } from "@qubes-kit/language";
import {
  CompletionItemKind,
  DiagnosticSeverity,
  DiagnosticTag,
  type Diagnostic as LspDiagnostic,
  type Position,
  type Range,
} from "vscode-languageserver-types";

/** Something that maps offsets to positions (a `TextDocument`). */
export interface PositionMapper {
  positionAt(offset: number): Position;
  offsetAt(position: Position): number;
}

/** A span as an LSP range. */
export function toRange(doc: PositionMapper, span: Span): Range {
  return { start: doc.positionAt(span.start), end: doc.positionAt(span.end) };
}

/** An LSP range as a span. */
export function toSpan(doc: PositionMapper, range: Range): Span {
  return { start: doc.offsetAt(range.start), end: doc.offsetAt(range.end) };
}

/** A text as a position mapper. */
export function mapperFor(text: string): PositionMapper {
  return TextDocument.create("file:///x", "qrexecpolicy", 0, text);
}

const SEVERITY: Record<Severity, DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  info: DiagnosticSeverity.Information,
  hint: DiagnosticSeverity.Hint,
};

/** The `source` of every diagnostic the server publishes. */
export const DIAGNOSTIC_SOURCE = "qubes-policy";

/** A core diagnostic as an LSP diagnostic. `related` maps a related path to its URI and mapper. */
export function toLspDiagnostic(
  doc: PositionMapper,
  d: AnalysisDiagnostic,
  related?: (path: string) => { uri: string; mapper: PositionMapper } | undefined,
): LspDiagnostic {
  const out: LspDiagnostic = {
    range: toRange(doc, d.span),
    severity: SEVERITY[d.severity] ?? DiagnosticSeverity.Error,
    code: d.code,
    source: DIAGNOSTIC_SOURCE,
    message: d.message,
    // No `data`: the quick fixes and the help text (the hover's) come from the snapshot, whose
    // diagnostics carry them, not from what the client sends back; a large file's notification,
    // sent again after every key, is a sixth smaller without it.
  };
  const tag = tagOf(d.code);
  if (tag !== undefined) out.tags = [tag];
  if (related && d.related?.length) {
    const infos = [];
    for (const r of d.related) {
      const target = related(r.path);
      if (target) infos.push({ location: { uri: target.uri, range: toRange(target.mapper, r.span) }, message: r.message });
    }
    if (infos.length) out.relatedInformation = infos;
  }
  return out;
}

/** The tags {@link toLspDiagnostic} gives a code. */
function tagOf(code: string): DiagnosticTag | undefined {
  if (code === "shadowed-rule") return DiagnosticTag.Unnecessary;
  if (code === "legacy-token-in-new-format" || code === "compat-transitional") return DiagnosticTag.Deprecated;
  return undefined;
}

function samePosition(doc: PositionMapper, offset: number, p: Position): boolean {
  const q = doc.positionAt(offset);
  return q.line === p.line && q.character === p.character;
}

/**
 * True when `toLspDiagnostic(doc, d, related)` would say the same as `old` (their JSON values are
 * equal), found without building it: a warning that moved in the text but not in LSP positions
 * (an edit earlier on its line's neighbours) is recognised at the cost of a few lookups.
 * INVARIANT: equals `sameLspDiagnostic(toLspDiagnostic(doc, d, related), old)` (property test in
 * `test/lsp/convert.test.ts`).
 */
export function matchesLspDiagnostic(
  old: LspDiagnostic,
  doc: PositionMapper,
  d: AnalysisDiagnostic,
  related?: (path: string) => { uri: string; mapper: PositionMapper } | undefined,
): boolean {
  if (old.message !== d.message || old.code !== d.code || old.severity !== (SEVERITY[d.severity] ?? DiagnosticSeverity.Error) || old.source !== DIAGNOSTIC_SOURCE) return false;
  if (!samePosition(doc, d.span.start, old.range.start) || !samePosition(doc, d.span.end, old.range.end)) return false;
  // The keys a conversion makes, and only those.
  const tag = tagOf(d.code);
  const infos = related && d.related?.length ? d.related : undefined;
  let keys = 5; // range, severity, code, source, message
  if (tag !== undefined) {
    if (!Array.isArray(old.tags) || old.tags.length !== 1 || old.tags[0] !== tag) return false;
    keys++;
  }
  if (infos) {
    const list = old.relatedInformation;
    let k = 0;
    for (const r of infos) {
      const target = related!(r.path);
      if (!target) continue;
      const o = list?.[k++];
      if (!o || o.message !== r.message || o.location.uri !== target.uri || keyCount(o) !== 2 || keyCount(o.location) !== 2) return false;
      if (!samePosition(target.mapper, r.span.start, o.location.range.start) || !samePosition(target.mapper, r.span.end, o.location.range.end)) return false;
    }
    if (k > 0) {
      if (list?.length !== k) return false;
      keys++;
    }
  }
  if (keyCount(old) !== keys || keyCount(old.range) !== 2) return false;
  return true;
}

/** `Object.keys(o).length` of a plain object, without making the array (this runs for every warning after every key). */
function keyCount(o: object): number {
  let n = 0;
  for (const k in o) if (Object.prototype.hasOwnProperty.call(o, k)) n++;
  return n;
}

/** The protocol's item kind of each completion kind of the policy services. */
export const COMPLETION_KIND: Record<CompletionKind, CompletionItemKind> = {
  service: CompletionItemKind.Function,
  argument: CompletionItemKind.Value,
  qube: CompletionItemKind.Variable,
  keyword: CompletionItemKind.Keyword,
  prefix: CompletionItemKind.Keyword,
  tag: CompletionItemKind.EnumMember,
  type: CompletionItemKind.Class,
  "dispvm-template": CompletionItemKind.Class,
  action: CompletionItemKind.Operator,
  param: CompletionItemKind.Property,
  value: CompletionItemKind.Value,
  directive: CompletionItemKind.Module,
  file: CompletionItemKind.File,
};

/** Deep equality of JSON values (plain objects, arrays, strings, numbers, booleans, null). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/** True when two LSP diagnostics say the same (their JSON values are equal). */
export function sameLspDiagnostic(a: LspDiagnostic, b: LspDiagnostic): boolean {
  if (a === b) return true;
  const ra = a.range;
  const rb = b.range;
  if (ra.start.line !== rb.start.line || ra.start.character !== rb.start.character || ra.end.line !== rb.end.line || ra.end.character !== rb.end.character) return false;
  if (a.message !== b.message || a.code !== b.code || a.severity !== b.severity) return false;
  return sameJson(a, b);
}
