/**
 * Line nodes of a parsed document, made from the scanner's lines: the plain
 * nodes of the editor (every word and span an object, made at once), and the
 * lean nodes of a one-shot analysis (`parseDocument`'s `lean` option).
 *
 * A lean node keeps a line's positions as numbers and its validated rule;
 * its spans, words and parameters are made when first asked for, by reading
 * the line again with the very code that makes the plain node (so they are
 * equal to the plain node's, which a property test checks). A 100,000-rule
 * policy then holds about a tenth of the objects: on a large policy, copying
 * the plain nodes in the garbage collector was most of `qkit policy check`.
 */
import { Diagnostic, type Span } from "../diagnostics.js";
import { checkDirective, checkRule, splitFields, splitLegacyFields, type ScannedLine } from "./lines.js";
import { fieldSpan, isLineError, newTokenCache, type Fields, type LineError, type RuleOriginFields, type ServiceArgument, type TokenCache } from "./rule.js";
import type { BlankLine, CommentLine, DirectiveLine, LineNode, NewlineMode, ParamNode, RuleLine, RuleNode, SyntaxKind, Word } from "./tree.js";

/** What reading one line of a document needs to know of the document. */
export interface DocumentContext {
  readonly text: string;
  readonly syntax: SyntaxKind;
  /** What ends a line. */
  readonly newlines: NewlineMode;
  /** Service syntax: the service and argument its rules get; `null` in policy syntax. */
  readonly sa: ServiceArgument | null;
}

/** Reports a line's first error. */
export type LineReport = (err: LineError, line: number) => void;

/** Makes the reporter of {@link parseDocument}: diagnostics with the file name, in line order. */
export function lineReporter(diagnostics: Diagnostic[], file: string | undefined): LineReport {
  return (err, line) => {
    const d = Diagnostic.create(err.code, err.message, err.span, line);
    if (err.help) d.help = err.help;
    if (file !== undefined) d.file = file;
    diagnostics.push(d);
  };
}

function words(f: Fields): Word[] {
  const out: Word[] = new Array(f.texts.length);
  for (let k = 0; k < f.texts.length; k++) out[k] = { text: f.texts[k]!, span: fieldSpan(f, k) };
  return out;
}

/** A fresh, empty {@link Fields}. */
export function newFields(): Fields {
  return { texts: [], starts: [] };
}

/**
 * The plain node of one scanned line (the editor's), reporting the line's
 * error to `report` (`null`: not reported). `f` and `cache` are scratch
 * state shared from line to line.
 */
export function plainLine(ctx: DocumentContext, l: ScannedLine, f: Fields, cache: TokenCache, report: LineReport | null): LineNode {
  const text = ctx.text;
  const lineSpan = { start: l.lineStart, end: l.lineEnd };
  const span = { start: l.start, end: l.end };
  if (l.kind === "blank") return { kind: "blank", line: l.line, lineSpan, span };
  if (l.kind === "comment") return { kind: "comment", line: l.line, lineSpan, span, text: text.slice(l.start + 1, l.end) };
  const sa = ctx.sa;
  let directive = l.kind === "directive";
  if (ctx.syntax === "service") directive = splitLegacyFields(text, l.start, l.end, f) && f.texts[0]!.startsWith("!");
  else splitFields(text, l.start, l.end, f);
  if (directive) {
    const check = checkDirective(f, ctx.syntax, span);
    const ws = words(f);
    const node: DirectiveLine = { kind: "directive", line: l.line, lineSpan, span, name: ws[0]!, directive: check.directive, params: ws.slice(1) };
    if (check.error) report?.(check.error, l.line);
    else if (check.directive === "include-service") {
      node.service = check.service ?? null;
      node.argument = check.argument ?? null;
    }
    return node;
  }
  const ws = words(f);
  const node: RuleLine = { kind: "rule", line: l.line, lineSpan, span, words: ws, params: [], rule: null };
  const base = sa === null ? 2 : 0;
  if (sa === null) {
    node.serviceWord = ws[0];
    node.argumentWord = ws[1];
  }
  node.sourceWord = ws[base];
  node.targetWord = ws[base + 1];
  node.actionWord = ws[base + 2];
  const r = checkRule(f, sa, span, cache, node.params);
  if (isLineError(r)) {
    report?.(r, l.line);
    // Keep every parameter visible to editors, also those after the error.
    for (let k = base + 3 + node.params.length; k < ws.length; k++) {
      const w = ws[k]!;
      const eq = w.text.indexOf("=");
      node.params.push(eq < 0 ? { key: "", value: w.text, span: w.span } : { key: w.text.slice(0, eq), value: w.text.slice(eq + 1), span: w.span });
    }
  } else {
    node.rule = r;
  }
  return node;
}

/**
 * Where the physical line holding the content at `s` starts: after the line
 * ending before it (the scanner's). Only blanks lie between the two, so a
 * lean node keeps its content's positions and finds its line's from them.
 */
function lineStartOf(ctx: DocumentContext, s: number): number {
  const text = ctx.text;
  const cr = ctx.newlines === "universal";
  for (let i = s; ; i--) {
    if (i === 0) return 0;
    const c = text.charCodeAt(i - 1);
    if (c === 10 || (cr && c === 13)) return i;
  }
}

/** Where the physical line holding the content ending at `e` ends, before its line ending (the scanner's). */
function lineEndOf(ctx: DocumentContext, e: number): number {
  const text = ctx.text;
  const cr = ctx.newlines === "universal";
  let i = e;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (cr && c === 13)) return i;
  }
  return i;
}

/** What every lean line keeps: its number and its content's positions (a blank line's: its start, twice). */
abstract class LeanLine {
  constructor(
    protected readonly ctx: DocumentContext,
    readonly line: number,
    protected readonly s: number,
    protected readonly e: number,
  ) {}
  get lineSpan(): Span {
    return { start: lineStartOf(this.ctx, this.s), end: lineEndOf(this.ctx, this.e) };
  }
  get span(): Span {
    return { start: this.s, end: this.e };
  }
}

/** A blank line, lean. */
class LeanBlankLine extends LeanLine implements BlankLine {
  readonly kind = "blank" as const;
}

/** A comment line, lean: its text is cut when asked for. */
class LeanCommentLine extends LeanLine implements CommentLine {
  readonly kind = "comment" as const;
  get text(): string {
    return this.ctx.text.slice(this.s + 1, this.e);
  }
}

/** The plain nodes of lean rule lines read again (few: only lines a finding points into). */
const plainOf = new WeakMap<LeanRuleLine, RuleLine>();

/** A valid rule line, lean: the rule at once, the words and parameters when asked for. */
class LeanRuleLine extends LeanLine implements RuleLine {
  readonly kind = "rule" as const;
  constructor(ctx: DocumentContext, line: number, s: number, e: number, readonly rule: RuleNode) {
    super(ctx, line, s, e);
  }
  /** The plain node of the line, read again (once). */
  private node(): RuleLine {
    const known = plainOf.get(this);
    if (known) return known;
    const l: ScannedLine = { line: this.line, lineStart: lineStartOf(this.ctx, this.s), lineEnd: lineEndOf(this.ctx, this.e), kind: "rule", start: this.s, end: this.e };
    const node = plainLine(this.ctx, l, newFields(), newTokenCache(), null);
    // INVARIANT: a line read again reads the same (a valid rule line stays one).
    if (node.kind !== "rule" || node.rule === null) throw new Error(`internal error: line ${this.line} read again is not the rule it was`);
    plainOf.set(this, node);
    return node;
  }
  get words(): Word[] {
    return this.node().words;
  }
  get serviceWord(): Word | undefined {
    return this.node().serviceWord;
  }
  get argumentWord(): Word | undefined {
    return this.node().argumentWord;
  }
  get sourceWord(): Word | undefined {
    return this.node().sourceWord;
  }
  get targetWord(): Word | undefined {
    return this.node().targetWord;
  }
  get actionWord(): Word | undefined {
    return this.node().actionWord;
  }
  get params(): ParamNode[] {
    return this.node().params;
  }
}

/**
 * The loader's fields of a lean rule before a load claims it: a lean rule is
 * made with every field of a loaded rule (`PolicyRule`), so that the first
 * load that places it (see {@link claimRule}) fills them in and uses the
 * rule itself, instead of making a copy of it for each rule of the policy.
 */
const UNCLAIMED: RuleOriginFields = Object.freeze({ index: -1, origin: Object.freeze({ file: "", path: "", line: null }), via: Object.freeze([]) as readonly never[] });

/**
 * The rule of a lean line as the loaded rule at `index`, when it is still
 * unclaimed (no load placed it yet) and gets the service and argument it
 * already has; otherwise `undefined` (the caller makes a copy). The rule
 * object then carries the load's fields too: one object for the line's rule
 * and the policy's rule.
 */
export function claimRule(rule: RuleNode, service: string | null, argument: string | null, index: number, origin: RuleOriginFields["origin"], via: RuleOriginFields["via"]): RuleNode | undefined {
  const r = rule as RuleNode & { index?: number; origin?: RuleOriginFields["origin"]; via?: RuleOriginFields["via"] };
  if (r.index !== -1 || r.origin !== UNCLAIMED.origin || rule.service !== service || rule.argument !== argument) return undefined;
  r.index = index;
  r.origin = origin;
  r.via = via;
  return rule;
}

/** A span object reused for the line being read (the checks copy what they keep). */
const scratchSpan: Span = { start: 0, end: 0 };

/**
 * The lean node of one scanned line, or `undefined` for a line that gets a
 * plain node (a directive, a line with an error: few, and their diagnostics
 * are made with the plain node). Reports nothing.
 */
export function leanLine(ctx: DocumentContext, l: ScannedLine, f: Fields, cache: TokenCache): LineNode | undefined {
  switch (l.kind) {
    case "blank":
      return new LeanBlankLine(ctx, l.line, l.start, l.end);
    case "comment":
      return new LeanCommentLine(ctx, l.line, l.start, l.end);
    case "directive":
      if (ctx.syntax === "policy") return undefined;
  }
  if (ctx.syntax === "service") {
    if (splitLegacyFields(ctx.text, l.start, l.end, f) && f.texts[0]!.startsWith("!")) return undefined;
  } else splitFields(ctx.text, l.start, l.end, f, true);
  scratchSpan.start = l.start;
  scratchSpan.end = l.end;
  const r = checkRule(f, ctx.sa, scratchSpan, cache, undefined, UNCLAIMED);
  if (isLineError(r)) return undefined;
  return new LeanRuleLine(ctx, l.line, l.start, l.end, r);
}

/** Documents made of lean nodes (see {@link leanLine}). */
const leanDocuments = new WeakSet<object>();

/** Marks a document as made of lean nodes. */
export function markLean(doc: object): void {
  leanDocuments.add(doc);
}

/**
 * True when a document was parsed with the `lean` option: its nodes make
 * spans and words on demand, so an editor that compares nodes by identity
 * (an incremental reparse) should parse the text afresh instead.
 */
export function isLeanDocument(doc: object): boolean {
  return leanDocuments.has(doc);
}
