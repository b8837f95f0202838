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
import { Diagnostic, type Span } from "../diagnostics.js";
import { allTokens, CommentLine as CommentLineToken, DirectiveLine as DirectiveLineToken, lexerFor, Newline, RuleLine as RuleLineToken, terminatorLength } from "./lexer.js";
import { isPyWhitespace } from "./python.js";
import {
  buildRule,
  fieldSpan,
  isLineError,
  newTokenCache,
  validateServiceArgument,
  type Fields,
  type LineError,
  type ServiceArgument,
  type RuleOriginFields,
  type TokenCache,
} from "./rule.js";
import type { DirectiveLine, DirectiveName, LineNode, NewlineMode, ParamNode, PolicyDocument, RuleLine, RuleNode, SyntaxKind, Word } from "./tree.js";

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
}

/** One physical line as the scanner reports it. */
export interface ScannedLine {
  /** 1-based line number. */
  line: number;
  lineStart: number;
  lineEnd: number;
  kind: "blank" | "comment" | "directive" | "rule";
  /** The stripped content. */
  start: number;
  end: number;
}

/**
 * Calls `onLine` for every physical line of `text`, in order, exactly as
 * grouping the Chevrotain lexer's tokens does ({@link scanLinesLexed}, the
 * reference, which a property test compares it with), in one pass over char
 * codes without token objects: the loader's linear pass. Returns the number
 * of lines.
 */
export function scanLines(text: string, newlines: NewlineMode, onLine: (l: ScannedLine) => void): number {
  const cr = newlines === "universal";
  const n = text.length;
  const l: ScannedLine = { line: 0, lineStart: 0, lineEnd: 0, kind: "blank", start: 0, end: 0 };
  let line = 0;
  let pos = 0;
  let crAt = -1;
  while (pos < n) {
    // Leading blanks (the lexer's skipped `Blank`): Python whitespace other than a line ending.
    let i = pos;
    let c = text.charCodeAt(i);
    while (c !== 10 && !(cr && c === 13) && isPyWhitespace(c)) {
      if (++i === n) break;
      c = text.charCodeAt(i);
    }
    if (i === n) break;
    l.line = ++line;
    l.lineStart = pos;
    if (c === 10 || (cr && c === 13)) {
      // A blank line: its `Newline` token.
      l.lineEnd = i;
      l.kind = "blank";
      l.start = l.end = pos;
      onLine(l);
      pos = i + (c === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1);
      continue;
    }
    // A content line, from its first non-blank character to its line ending.
    let stop = text.indexOf("\n", i);
    if (stop < 0) stop = n;
    if (cr) {
      // The next `\r`, searched again only once passed: the scan stays linear.
      if (crAt < i) {
        crAt = text.indexOf("\r", i);
        if (crAt < 0) crAt = n;
      }
      if (crAt < stop) stop = crAt;
    }
    let end = stop;
    while (end > i && isPyWhitespace(text.charCodeAt(end - 1))) end--;
    l.lineEnd = stop;
    l.kind = c === 35 ? "comment" : c === 33 ? "directive" : "rule";
    l.start = i;
    l.end = end;
    onLine(l);
    if (stop === n) return line;
    pos = stop + (text.charCodeAt(stop) === 13 && text.charCodeAt(stop + 1) === 10 ? 2 : 1);
  }
  // The text ends with a line ending or blanks (or is empty): one last, blank line.
  l.line = ++line;
  l.lineStart = pos;
  l.lineEnd = n;
  l.kind = "blank";
  l.start = l.end = pos;
  onLine(l);
  return line;
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

  constructor() {
    super(allTokens, { recoveryEnabled: false, maxLookahead: 1 });
    this.performSelfAnalysis();
  }

  readonly document = this.RULE("document", () => {
    this.MANY(() => this.SUBRULE(this.line));
  });

  readonly line = this.RULE("line", () => {
    const t = this.OR([
      { ALT: () => this.CONSUME(Newline) },
      { ALT: () => this.CONSUME(CommentLineToken) },
      { ALT: () => this.CONSUME(DirectiveLineToken) },
      { ALT: () => this.CONSUME(RuleLineToken) },
    ]);
    this.ACTION(() => this.grouper!.token(t));
  });

  /** Parses `tokens`, reporting each line to `grouper`; false if the grammar rejected them (it cannot). */
  run(tokens: IToken[], grouper: LineGrouper): boolean {
    this.grouper = grouper;
    this.input = tokens;
    this.document();
    this.grouper = undefined;
    return this.errors.length === 0;
  }
}

let documentParser: DocumentParser | undefined;

/** {@link scanLines} through the Chevrotain document grammar (the editor path). */
function parseLines(text: string, newlines: NewlineMode, onLine: (l: ScannedLine) => void): number {
  const tokens = lexerFor(newlines).tokenize(text).tokens;
  const lines: ScannedLine[] = [];
  const collect = (l: ScannedLine) => lines.push({ ...l });
  const g = new LineGrouper(text, newlines, collect);
  const p = (documentParser ??= new DocumentParser());
  if (!p.run(tokens, g)) {
    // INVARIANT: unreachable (every token sequence is a document); fall back to the linear pass.
    return scanLines(text, newlines, onLine);
  }
  g.finish();
  for (const l of lines) onLine(l);
  return lines.length;
}

/**
 * Splits `text[start, end)` (already stripped) on Python whitespace into `f`.
 * With `fast`, lines of plain ASCII take a single-pass split.
 */
export function splitFields(text: string, start: number, end: number, f: Fields, fast = false): void {
  if (fast) {
    // One pass over char codes for lines of printable ASCII, spaces and tabs
    // (where Python's whitespace is just space and tab); anything else takes
    // the general path below.
    // The arrays are reused from line to line: callers copy what they keep.
    const texts = f.texts;
    texts.length = 0;
    const starts = f.starts;
    starts.length = 0;
    let i = start;
    let plain = true;
    outer: while (i < end) {
      let c = text.charCodeAt(i);
      if (c === 32 || c === 9) {
        i++;
        continue;
      }
      const s = i;
      for (;;) {
        if (c < 0x21 || c > 0x7e) {
          if (c === 32 || c === 9) break;
          plain = false;
          break outer;
        }
        if (++i >= end) break;
        c = text.charCodeAt(i);
      }
      texts.push(text.slice(s, i));
      starts.push(s);
    }
    if (plain) {
      f.src = undefined;
      return;
    }
  }
  f.src = undefined;
  f.texts = [];
  f.starts.length = 0;
  let i = start;
  while (i < end) {
    while (i < end && isPyWhitespace(text.charCodeAt(i))) i++;
    if (i >= end) break;
    const s = i;
    while (i < end && !isPyWhitespace(text.charCodeAt(i))) i++;
    f.texts.push(text.slice(s, i));
    f.starts.push(s);
  }
}

/**
 * Service syntax: the textual `$include:` → `!include `, `$` → `@`, `,` → ` `
 * rewriting of the engine, then splitting. The rewriting keeps every offset,
 * so spans still point into the original text. Returns false when the
 * rewritten line does not start with a word (it starts with a comma).
 */
export function splitLegacyFields(text: string, start: number, end: number, f: Fields): boolean {
  const line = text.slice(start, end).replaceAll("$include:", "!include ").replaceAll("$", "@").replaceAll(",", " ");
  splitFields(line, 0, line.length, f);
  for (let k = 0; k < f.starts.length; k++) f.starts[k]! += start;
  return f.starts.length > 0 && f.starts[0] === start;
}

const DIRECTIVES: Record<string, DirectiveName> = {
  "!include": "include",
  "!include-dir": "include-dir",
  "!include-service": "include-service",
  "!compat-4.0": "compat-4.0",
};
const PARAM_COUNT: Record<DirectiveName, number> = { include: 1, "include-dir": 1, "include-service": 3, "compat-4.0": 0 };

/** A checked directive: which one, and the service/argument for `!include-service`. */
export interface DirectiveCheck {
  directive: DirectiveName | null;
  service?: string | null;
  argument?: string | null;
  error?: LineError;
}

/** Checks a directive line (fields already split), in the engine's order. */
export function checkDirective(f: Fields, syntax: SyntaxKind, lineSpan: Span): DirectiveCheck {
  const name = f.texts[0]!;
  const known = DIRECTIVES[name];
  // In service syntax only `!include` (also written `$include:`) exists.
  if (known === undefined || (syntax === "service" && known !== "include")) {
    return {
      directive: null,
      error: {
        code: "invalid-directive",
        message: "invalid directive",
        span: fieldSpan(f, 0),
        help: syntax === "service" ? "legacy service files only know `!include PATH` (or `$include:PATH`)" : "the directives are `!include`, `!include-dir`, `!include-service` and `!compat-4.0`",
      },
    };
  }
  if (f.texts.length - 1 !== PARAM_COUNT[known]) {
    const help =
      known === "include-service"
        ? "write `!include-service SERVICE ARGUMENT PATH`"
        : known === "compat-4.0"
          ? "`!compat-4.0` takes no parameters"
          : `write \`${name} PATH\` (paths cannot contain spaces)`;
    return { directive: known, error: { code: "invalid-number-of-params", message: "invalid number of params", span: lineSpan, help } };
  }
  if (known === "include-service") {
    const sa = validateServiceArgument(f.texts[1]!, f.texts[2]!, fieldSpan(f, 1), fieldSpan(f, 2));
    if (isLineError(sa)) return { directive: known, error: sa };
    return { directive: known, service: sa.service, argument: sa.argument };
  }
  return { directive: known };
}

/**
 * Checks a rule line (fields already split). `sa` is the service and argument
 * of a service-syntax file; `null` means the policy syntax (columns 1 and 2).
 */
export function checkRule(f: Fields, sa: ServiceArgument | null, lineSpan: Span, cache?: TokenCache, params?: ParamNode[], origin?: RuleOriginFields | false): RuleNode | LineError {
  const policy = sa === null;
  if (f.texts.length < (policy ? 5 : 3)) {
    return {
      code: "wrong-number-of-fields",
      message: "wrong number of fields",
      // A copy: callers may reuse `lineSpan` from line to line.
      span: { start: lineSpan.start, end: lineSpan.end },
      help:
        (policy ? "a rule is `SERVICE ARGUMENT SOURCE TARGET ACTION [PARAMS]`" : "a rule is `SOURCE TARGET ACTION[,PARAMS]`") +
        (f.texts[0]?.charCodeAt(0) === 0xfeff ? "; the file starts with a byte order mark, which the engine does not skip" : ""),
    };
  }
  if (policy) {
    const service = f.texts[0]!;
    const argument = f.texts[1]!;
    let byArg = cache?.serviceArgument.get(service);
    let r: ServiceArgument | LineError | undefined = byArg?.get(argument);
    if (r === undefined) {
      r = validateServiceArgument(service, argument, fieldSpan(f, 0), fieldSpan(f, 1));
      if (isLineError(r)) return r;
      if (cache) {
        if (!byArg) cache.serviceArgument.set(service, (byArg = new Map()));
        byArg.set(argument, r);
      }
    }
    return buildRule(r, f, 2, cache, params, origin);
  }
  return buildRule(sa, f, 0, cache, params, origin);
}

function words(f: Fields): Word[] {
  const out: Word[] = new Array(f.texts.length);
  for (let k = 0; k < f.texts.length; k++) out[k] = { text: f.texts[k]!, span: fieldSpan(f, k) };
  return out;
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
  const sa: ServiceArgument | null = syntax === "service" ? { service: options.service ?? null, argument: options.argument ?? null } : null;
  const f: Fields = { texts: [], starts: [] };
  const cache = newTokenCache();
  const report = (err: LineError, line: number) => {
    const d = Diagnostic.create(err.code, err.message, err.span, line);
    if (err.help) d.help = err.help;
    if (options.file !== undefined) d.file = options.file;
    diagnostics.push(d);
  };
  parseLines(text, newlines, (l) => {
    const lineSpan = { start: l.lineStart, end: l.lineEnd };
    const span = { start: l.start, end: l.end };
    if (l.kind === "blank") {
      lines.push({ kind: "blank", line: l.line, lineSpan, span });
      return;
    }
    if (l.kind === "comment") {
      lines.push({ kind: "comment", line: l.line, lineSpan, span, text: text.slice(l.start + 1, l.end) });
      return;
    }
    let directive = l.kind === "directive";
    if (syntax === "service") directive = splitLegacyFields(text, l.start, l.end, f) && f.texts[0]!.startsWith("!");
    else splitFields(text, l.start, l.end, f);
    if (directive) {
      const check = checkDirective(f, syntax, span);
      const ws = words(f);
      const node: DirectiveLine = { kind: "directive", line: l.line, lineSpan, span, name: ws[0]!, directive: check.directive, params: ws.slice(1) };
      if (check.error) report(check.error, l.line);
      else if (check.directive === "include-service") {
        node.service = check.service ?? null;
        node.argument = check.argument ?? null;
      }
      lines.push(node);
      return;
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
      report(r, l.line);
      // Keep every parameter visible to editors, also those after the error.
      for (let k = base + 3 + node.params.length; k < ws.length; k++) {
        const w = ws[k]!;
        const eq = w.text.indexOf("=");
        node.params.push(eq < 0 ? { key: "", value: w.text, span: w.span } : { key: w.text.slice(0, eq), value: w.text.slice(eq + 1), span: w.span });
      }
    } else {
      node.rule = r;
    }
    lines.push(node);
  });
  return { text, syntax, newlines, lines, diagnostics };
}
