/**
 * Document symbols (an outline of rules and directives) and folding ranges.
 */
import type { Span } from "../diagnostics.js";
import type { PolicyDocument } from "../syntax/tree.js";
import { describeRule } from "./describe.js";

/** One outline entry. */
export interface DocumentSymbol {
  name: string;
  detail: string;
  kind: "rule" | "directive" | "section";
  /** The whole line (or the section). */
  span: Span;
  /** The part to select and reveal. */
  selectionSpan: Span;
  children?: DocumentSymbol[];
}

/** A foldable region: from the start of its first line to the end of its last line. */
export interface FoldingRange {
  span: Span;
  kind: "comment" | "region";
}

/**
 * The outline of a document: a section per comment header (a comment line
 * after a blank line or at the top, followed by rules), holding its rules and
 * directives. Never throws.
 */
export function documentSymbols(doc: PolicyDocument): DocumentSymbol[] {
  const top: DocumentSymbol[] = [];
  let section: DocumentSymbol | undefined;
  let prevKind: string = "blank";
  for (const line of doc.lines) {
    if (line.kind === "comment" && prevKind === "blank") {
      const title = line.text.trim().replace(/^#+\s*/, "");
      if (title) {
        section = { name: title.slice(0, 80), detail: "", kind: "section", span: line.span, selectionSpan: line.span, children: [] };
        top.push(section);
      }
    } else if (line.kind === "blank" && section && section.children!.length === 0) {
      // A comment paragraph without rules is not a section.
      top.splice(top.indexOf(section), 1);
      section = undefined;
    }
    let sym: DocumentSymbol | undefined;
    if (line.kind === "rule") {
      const words = line.words.map((w) => w.text);
      const name = doc.syntax === "service" ? words.slice(0, 2).join(" → ") : `${words[0] ?? ""} ${words[1] ?? ""}`.trim();
      const detail = line.rule ? describeRule(line.rule) : words.slice(2).join(" ");
      sym = { name: name || "(rule)", detail, kind: "rule", span: line.span, selectionSpan: line.words[0]?.span ?? line.span };
    } else if (line.kind === "directive") {
      sym = { name: [line.name.text, ...line.params.map((p) => p.text)].join(" "), detail: "directive", kind: "directive", span: line.span, selectionSpan: line.name.span };
    }
    if (sym) {
      if (section) {
        section.children!.push(sym);
        section.span = { start: section.span.start, end: line.span.end };
      } else top.push(sym);
    }
    prevKind = line.kind;
  }
  if (section && section.children!.length === 0) top.splice(top.indexOf(section), 1);
  return top;
}

/**
 * Folding ranges: each section of the outline (a comment header and its
 * rules, see {@link documentSymbols}), runs of two or more comment lines,
 * and blocks of consecutive rules and directives. A section's fold wins over
 * a comment run that starts on the same line.
 */
export function foldingRanges(doc: PolicyDocument): FoldingRange[] {
  const out: FoldingRange[] = [];
  let i = 0;
  const lines = doc.lines;
  while (i < lines.length) {
    const kind = lines[i]!.kind;
    if (kind === "blank") {
      i++;
      continue;
    }
    const group = kind === "comment" ? "comment" : "region";
    let j = i;
    while (j + 1 < lines.length) {
      const k = lines[j + 1]!.kind;
      if (k === "blank" || (k === "comment") !== (group === "comment")) break;
      j++;
    }
    if (j > i) out.push({ span: { start: lines[i]!.lineSpan.start, end: lines[j]!.lineSpan.end }, kind: group });
    i = j + 1;
  }
  const sections = documentSymbols(doc).filter((s) => s.kind === "section" && s.children && s.children.length > 0);
  const starts = new Set(sections.map((s) => s.span.start));
  return [...out.filter((f) => !starts.has(f.span.start)), ...sections.map((s) => ({ span: s.span, kind: "region" as const }))].sort((a, b) => a.span.start - b.span.start);
}

/** One symbol of the whole policy, for a workspace-wide search. */
export interface WorkspaceSymbol {
  /** The service (or the directive) the line is about. */
  name: string;
  /** The rest of the rule, in words. */
  detail: string;
  kind: "rule" | "directive";
  /** Absolute path of the file. */
  path: string;
  span: Span;
  /** The file name, shown as the container. */
  container: string;
}

/** True when every character of `query` appears in `text` in order (case-insensitive). */
export function fuzzy(query: string, text: string): boolean {
  let i = 0;
  const t = text.toLowerCase();
  for (const ch of query.toLowerCase()) {
    if (ch === " ") continue;
    i = t.indexOf(ch, i);
    if (i < 0) return false;
    i++;
  }
  return true;
}

/**
 * Workspace symbols: every rule and directive of every file of the policy
 * whose line or file name contains `query`, or whose service has the query's
 * characters in order (case-insensitive; empty matches everything), in file then line order, at
 * most `limit` of them. Never throws.
 */
export function workspaceSymbols(
  documents: Iterable<[path: string, doc: PolicyDocument]>,
  query: string,
  limit = 1000,
): WorkspaceSymbol[] {
  const out: WorkspaceSymbol[] = [];
  const sorted = [...documents].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [path, doc] of sorted) {
    const container = path.slice(path.lastIndexOf("/") + 1);
    for (const sym of documentSymbols(doc).flatMap((s) => (s.kind === "section" ? (s.children ?? []) : [s]))) {
      if (sym.kind === "section") continue;
      // The words of the line and the file name contain the query, or the service has its characters in order.
      const haystack = `${doc.text.slice(sym.span.start, sym.span.end)} ${container}`.toLowerCase();
      if (query && !haystack.includes(query.toLowerCase()) && !fuzzy(query, sym.name)) continue;
      out.push({ name: sym.name, detail: sym.detail, kind: sym.kind, path, span: sym.span, container });
      if (out.length >= limit) return out;
    }
  }
  return out;
}
