/**
 * `parseDocument`: the tolerant parse of one policy document, and the line
 * scanner the loader shares with it.
 *
 * The Chevrotain lexer (`lexer.ts`) yields one token per non-blank line and
 * the line ends, which a linear pass groups into physical lines
 * (`document := line (Newline line)*`, `line := content?`); each
 * line is then split into words with Python's whitespace rules and
 * interpreted as a comment, a directive or a rule with the engine's checks
 * (`rule.ts`). Nothing here throws: every problem becomes a diagnostic on its
 * line, and the rest of the document still parses.
 */
import { EmbeddedActionsParser, tokenMatcher, type IToken } from "chevrotain";
import type { Diagnostic } from "../diagnostics.js";
import { allTokens, CommentLine as CommentLineToken, DirectiveLine as DirectiveLineToken, lexerFor, Newline, RuleLine as RuleLineToken, terminatorLength } from "./lexer.js";
import { isPyWhitespace } from "./python.js";
import { scanLines, type ScannedLine } from "./lines.js";
import { leanLine, lineReporter, newFields, plainLine, markLean, type DocumentContext } from "./nodes.js";
import { newTokenCache, type TokenCache } from "./rule.js";
// The chevrotain-free line reading lives in `lines.ts` (the engine entry loads it without this file).
export { checkDirective, checkRule, scanLines, splitFields, splitLegacyFields, type DirectiveCheck, type ScannedLine } from "./lines.js";
import type { LineNode, NewlineMode, PolicyDocument, SyntaxKind } from "./tree.js";

/** Options of {@link parseDocument}. */
export interface ParseOptions {
  /** The grammar (default `policy`). */
  syntax?: SyntaxKind;
  /** What ends a line (default `universal`, as the daemon reads files). */
  newlines?: NewlineMode;
  /** The file name to put on diagnostics. */
  file?: string;
  /** Service syntax only: the service and argument the rules get (default `*`/`*`, shown as `null`). */
  service?: string | null;
  argument?: string | null;
  /**
   * Read the lines with the loader's one-pass scanner ({@link scanLines})
   * instead of the Chevrotain lexer and document grammar: the same lines
   * (property-tested against the lexer's), so the same document, without a
   * token per line. For one analysis with no edits to follow (`qkit policy
   * check`), where lexing and parsing every line was a quarter of the time
   * on a large policy; the editor keeps the grammar.
   */
  linear?: boolean;
  /**
   * Lean line nodes (implies `linear`): positions kept as numbers and the
   * validated rule, with spans, words and parameters made when first asked
   * for (see `nodes.ts`); equal to the plain nodes through every property
   * of the tree's interfaces, but not by identity (a span asked for twice is
   * two objects). For one analysis with no edits to follow.
   */
  lean?: boolean;
  /**
   * @internal The cache of validated tokens, services and arguments to use (default: a fresh one):
   * documents parsed with one cache share their token objects and strings (a one-shot analysis of a
   * policy of many files). Its entries depend on the text only.
   */
  tokens?: TokenCache;
}

/**
 * {@link scanLines} by the Chevrotain lexer's tokens: the reference the
 * one-pass scanner is tested against.
 */
export function scanLinesLexed(text: string, newlines: NewlineMode, onLine: (l: ScannedLine) => void): number {
  const tokens = lexerFor(newlines).tokenize(text).tokens;
  // The line structure is regular: a blank line is a `Newline` token; a
  // content line is one token that includes its line ending. So the loader
  // groups with one linear pass over the token vector (parseDocument, the
  // editor path, runs the same tokens through the Chevrotain grammar below).
  const g = new LineGrouper(text, newlines, onLine);
  for (let k = 0; k < tokens.length; k++) g.token(tokens[k]!);
  return g.finish();
}

/**
 * Turns line tokens, in order, into {@link ScannedLine}s. Shared by the
 * linear pass of the loader and the Chevrotain parser of `parseDocument`.
 */
class LineGrouper {
  private readonly l: ScannedLine = { line: 0, lineStart: 0, lineEnd: 0, kind: "blank", start: 0, end: 0 };
  private lineStart = 0;
  private line = 0;
  // INVARIANT: true while the text after `lineStart` still forms a (possibly empty) line.
  private open = true;

  constructor(
    private readonly text: string,
    private readonly newlines: NewlineMode,
    private readonly onLine: (l: ScannedLine) => void,
  ) {}

  token(t: IToken): void {
    const l = this.l;
    const start = t.startOffset;
    const image = t.image;
    l.line = ++this.line;
    l.lineStart = this.lineStart;
    if (tokenMatcher(t, Newline)) {
      l.lineEnd = start;
      l.kind = "blank";
      l.start = l.end = this.lineStart;
      this.onLine(l);
      this.lineStart = start + image.length;
      return;
    }
    const term = terminatorLength(image, this.newlines);
    const stop = start + image.length - term;
    let end = stop;
    while (end > start && isPyWhitespace(this.text.charCodeAt(end - 1))) end--;
    const c = this.text.charCodeAt(start);
    l.lineEnd = stop;
    l.kind = c === 35 ? "comment" : c === 33 ? "directive" : "rule";
    l.start = start;
    l.end = end;
    this.onLine(l);
    this.lineStart = start + image.length;
    if (term === 0) this.open = false;
  }

  /** Emits the last (empty) line when the text ends with a line ending; returns the line count. */
  finish(): number {
    if (this.open) {
      const l = this.l;
      l.line = ++this.line;
      l.lineStart = this.lineStart;
      l.lineEnd = this.text.length;
      l.kind = "blank";
      l.start = l.end = this.lineStart;
      this.onLine(l);
    }
    return this.line;
  }
}

/**
 * The document grammar, for the editor path:
 * `document := line*`, `line := Newline | CommentLine | DirectiveLine | RuleLine`.
 * Every token sequence the lexer produces is a sentence of it, so parsing
 * never fails; the embedded actions hand each line to a {@link LineGrouper}.
 */
class DocumentParser extends EmbeddedActionsParser {
  private grouper: LineGrouper | undefined;
  /** The token of the line being parsed, for {@link emit}. */
  private last: IToken | undefined;

  constructor() {
    super(allTokens, { recoveryEnabled: false, maxLookahead: 1 });
    this.performSelfAnalysis();
  }

  // The alternatives and the action are made once, not on every line: the grammar runs once per
  // line of a document, and a fresh array of closures each time was most of what a parse allocated.
  private readonly lineKinds = [
    { ALT: () => this.CONSUME(Newline) },
    { ALT: () => this.CONSUME(CommentLineToken) },
    { ALT: () => this.CONSUME(DirectiveLineToken) },
    { ALT: () => this.CONSUME(RuleLineToken) },
  ];
  private readonly emit = (): void => this.grouper!.token(this.last!);

  readonly document = this.RULE("document", () => {
    this.MANY(() => this.SUBRULE(this.line));
  });

  readonly line = this.RULE("line", () => {
    this.last = this.OR(this.lineKinds);
    this.ACTION(this.emit);
  });

  /** Parses `tokens`, reporting each line to `grouper`; false if the grammar rejected them (it cannot). */
  run(tokens: IToken[], grouper: LineGrouper): boolean {
    this.grouper = grouper;
    this.input = tokens;
    this.document();
    this.grouper = undefined;
    this.last = undefined;
    return this.errors.length === 0;
  }
}

let documentParser: DocumentParser | undefined;

/**
 * {@link scanLines} through the Chevrotain document grammar (the editor
 * path): each line is handed to `onLine` as the grammar reaches it.
 */
function parseLines(text: string, newlines: NewlineMode, onLine: (l: ScannedLine) => void): number {
  const tokens = lexerFor(newlines).tokenize(text).tokens;
  const g = new LineGrouper(text, newlines, onLine);
  const p = (documentParser ??= new DocumentParser());
  // INVARIANT: every token sequence the lexer makes is a document, so the grammar never rejects one
  // (lines were handed over as it went: a rejection would leave them half done, and is a bug).
  if (!p.run(tokens, g)) throw new Error("internal error: the document grammar rejected the lexer's tokens");
  return g.finish();
}

/**
 * Parses one policy document. Never throws; returns every physical line and
 * the engine's first error of each line as a diagnostic.
 */
export function parseDocument(text: string, options: ParseOptions = {}): PolicyDocument {
  const syntax = options.syntax ?? "policy";
  const newlines = options.newlines ?? "universal";
  const diagnostics: Diagnostic[] = [];
  const lines: LineNode[] = [];
  const ctx: DocumentContext = { text, syntax, newlines, sa: syntax === "service" ? { service: options.service ?? null, argument: options.argument ?? null } : null };
  const f = newFields();
  const cache = options.tokens ?? newTokenCache();
  const report = lineReporter(diagnostics, options.file);
  const scan = options.linear || options.lean ? scanLines : parseLines;
  if (options.lean) {
    scan(text, newlines, (l) => {
      lines.push(leanLine(ctx, l, f, cache) ?? plainLine(ctx, l, f, cache, report));
    });
    const doc: PolicyDocument = { text, syntax, newlines, lines, diagnostics };
    markLean(doc);
    return doc;
  }
  scan(text, newlines, (l) => {
    lines.push(plainLine(ctx, l, f, cache, report));
  });
  return { text, syntax, newlines, lines, diagnostics };
}
