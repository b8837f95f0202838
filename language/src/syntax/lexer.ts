/**
 * The Chevrotain lexer of policy text.
 *
 * Policy files are line-oriented: what a line is (comment, directive or rule)
 * is decided by its first non-blank character, and its fields are separated
 * by Python whitespace. The lexer therefore produces one token per non-blank
 * line (`CommentLine`, `DirectiveLine`, `RuleLine`, each including its line
 * ending) and a `Newline` token for each blank line; leading blanks are
 * skipped. Splitting a line into words (with exact
 * offsets) happens in `words.ts`. Every input lexes without error: any
 * character is either a blank, a line end, or part of a line token.
 *
 * The patterns are hand-written matchers over char codes with
 * `start_chars_hint`s, and positions are tracked as offsets only: on this
 * grammar that is an order of magnitude faster than one token per word.
 *
 * What ends a line depends on the loader being imitated: the daemon's file
 * loader uses universal newlines (`\n`, `\r\n`, a lone `\r`), the in-memory
 * loader (`qubes-policy-lint`) only `\n`.
 */
import { createToken, Lexer, type CustomPatternMatcherReturn, type TokenType } from "chevrotain";
import { isPyWhitespace } from "./python.js";
import type { NewlineMode } from "./tree.js";

function result(image: string): CustomPatternMatcherReturn {
  return [image] as unknown as CustomPatternMatcherReturn;
}

// The next `\r` after the last search, per text: lexing moves forward, so
// remembering it keeps the search for line ends linear (and native).
let crText: string | undefined;
let crFrom = 0;
let crAt = -1;

/** The end of the line that contains `offset` (the offset of its line ending, or the text length). */
function lineEnd(text: string, offset: number, crIsNewline: boolean): number {
  const n = text.length;
  const lf = text.indexOf("\n", offset);
  const nl = lf < 0 ? n : lf;
  if (!crIsNewline) return nl;
  // INVARIANT: there is no `\r` in text[crFrom, crAt) of `crText`. (The same
  // text may be lexed again from the start, e.g. a file included twice.)
  if (crText !== text || offset < crFrom || crAt < offset) {
    const cr = text.indexOf("\r", offset);
    crAt = cr < 0 ? n : cr;
    crFrom = offset;
    crText = text;
  }
  return crAt < nl ? crAt : nl;
}

/**
 * A content line, from its first non-blank character through its line
 * ending (one token per line: the ending is part of the image).
 */
function lineMatcher(kind: "comment" | "directive" | "rule", crIsNewline: boolean) {
  return (text: string, offset: number): CustomPatternMatcherReturn | null => {
    const c = text.charCodeAt(offset);
    if (c !== c /* NaN: end of text */ || c === 10 || (crIsNewline && c === 13) || isPyWhitespace(c)) return null;
    if (kind === "comment" ? c !== 35 : kind === "directive" ? c !== 33 : c === 35 || c === 33) return null;
    let end = lineEnd(text, offset, crIsNewline);
    const t = text.charCodeAt(end);
    if (t === 10) end++;
    else if (t === 13 && crIsNewline) end += text.charCodeAt(end + 1) === 10 ? 2 : 1;
    return result(text.slice(offset, end));
  };
}

/** The length of the line ending at the end of a content token's image (0 at the end of the text). */
export function terminatorLength(image: string, mode: NewlineMode): number {
  const n = image.length;
  const last = image.charCodeAt(n - 1);
  if (mode === "lf") return last === 10 ? 1 : 0;
  if (last === 10) return n > 1 && image.charCodeAt(n - 2) === 13 ? 2 : 1;
  return last === 13 ? 1 : 0;
}

function blankMatcher(crIsNewline: boolean) {
  return (text: string, offset: number): CustomPatternMatcherReturn | null => {
    const n = text.length;
    let i = offset;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 10 || (crIsNewline && c === 13) || !isPyWhitespace(c)) break;
    }
    return i === offset ? null : result(text.slice(offset, i));
  };
}

function matchUniversalNewline(text: string, offset: number): CustomPatternMatcherReturn | null {
  const c = text.charCodeAt(offset);
  if (c === 10) return result("\n");
  if (c === 13) return result(text.charCodeAt(offset + 1) === 10 ? "\r\n" : "\r");
  return null;
}

function matchLfNewline(text: string, offset: number): CustomPatternMatcherReturn | null {
  return text.charCodeAt(offset) === 10 ? result("\n") : null;
}

/** A line whose first non-blank character is `#`. */
export const CommentLine = createToken({ name: "CommentLine", pattern: { exec: lineMatcher("comment", true) }, line_breaks: true, start_chars_hint: ["#"] });
/** A line whose first non-blank character is `!`. */
export const DirectiveLine = createToken({ name: "DirectiveLine", pattern: { exec: lineMatcher("directive", true) }, line_breaks: true, start_chars_hint: ["!"] });
/** Any other non-blank line. */
export const RuleLine = createToken({ name: "RuleLine", pattern: { exec: lineMatcher("rule", true) }, line_breaks: true });
/** A line ending. */
export const Newline = createToken({ name: "Newline", pattern: { exec: matchUniversalNewline }, line_breaks: true, start_chars_hint: ["\n", "\r"] });
const Blank = createToken({ name: "Blank", pattern: { exec: blankMatcher(true) }, group: Lexer.SKIPPED, line_breaks: false });

// The `lf` variants: `\r` is an ordinary blank there. Categories make them the same grammar symbols.
const CommentLineLf = createToken({ name: "CommentLineLf", pattern: { exec: lineMatcher("comment", false) }, categories: [CommentLine], line_breaks: true });
const DirectiveLineLf = createToken({ name: "DirectiveLineLf", pattern: { exec: lineMatcher("directive", false) }, categories: [DirectiveLine], line_breaks: true });
const RuleLineLf = createToken({ name: "RuleLineLf", pattern: { exec: lineMatcher("rule", false) }, categories: [RuleLine], line_breaks: true });
const NewlineLf = createToken({ name: "NewlineLf", pattern: { exec: matchLfNewline }, categories: [Newline], line_breaks: true });
const BlankLf = createToken({ name: "BlankLf", pattern: { exec: blankMatcher(false) }, group: Lexer.SKIPPED, line_breaks: false });

/** Every token type (the parser's vocabulary). */
export const allTokens: TokenType[] = [CommentLine, DirectiveLine, RuleLine, Newline, Blank, CommentLineLf, DirectiveLineLf, RuleLineLf, NewlineLf, BlankLf];

const lexerConfig = { positionTracking: "onlyOffset" as const, ensureOptimizations: false, skipValidations: true };

let lexers: Record<NewlineMode, Lexer> | undefined;

/** The lexer for a newline mode (one shared instance each, built on first use). */
export function lexerFor(mode: NewlineMode): Lexer {
  // Rule lines first: they are most of a policy, and the patterns are mutually exclusive (by first character).
  lexers ??= {
    universal: new Lexer([RuleLine, Newline, Blank, CommentLine, DirectiveLine], lexerConfig),
    lf: new Lexer([RuleLineLf, NewlineLf, BlankLf, CommentLineLf, DirectiveLineLf], lexerConfig),
  };
  return lexers[mode];
}
