/**
 * The line-level reading of policy text that the loader needs, without the
 * Chevrotain parser of `parseDocument`: the one-pass line scanner, the word
 * splitting with Python's whitespace rules, and the engine's checks of a
 * directive line and a rule line. `parse.ts` re-exports all of it; the
 * loader imports it from here, so the engine entry
 * (`@qubes-kit/language/engine`) does not load Chevrotain.
 */
import type { Span } from "../diagnostics.js";
import { isPyWhitespace } from "./python.js";
import {
  buildRule,
  fieldSpan,
  isLineError,
  validateServiceArgument,
  type Fields,
  type LineError,
  type ServiceArgument,
  type RuleOriginFields,
  type TokenCache,
} from "./rule.js";
import type { DirectiveName, NewlineMode, ParamNode, RuleNode, SyntaxKind } from "./tree.js";

/**
 * Lines that {@link scanLines} passes over without reporting them: each
 * match of the sticky `pattern` at the start of a line must be that whole
 * line through its `\n` (never a line ending in `\r`). `skipped` counts them.
 */
export interface LineSkip {
  pattern: RegExp;
  skipped: number;
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
 * grouping the Chevrotain lexer's tokens does (`scanLinesLexed` in `parse.ts`, the
 * reference, which a property test compares it with), in one pass over char
 * codes without token objects: the loader's linear pass. Returns the number
 * of lines. With `skip`, the lines its pattern matches are counted (in the
 * line numbers and in `skip.skipped`) but not reported.
 */
export function scanLines(text: string, newlines: NewlineMode, onLine: (l: ScannedLine) => void, skip?: LineSkip): number {
  const cr = newlines === "universal";
  const n = text.length;
  const l: ScannedLine = { line: 0, lineStart: 0, lineEnd: 0, kind: "blank", start: 0, end: 0 };
  let line = 0;
  let pos = 0;
  let crAt = -1;
  const pass = skip?.pattern;
  while (pos < n) {
    if (pass !== undefined) {
      // Whole lines the caller passes over: counted, not reported.
      pass.lastIndex = pos;
      while (pass.test(text)) {
        pos = pass.lastIndex;
        line++;
        skip!.skipped++;
        pass.lastIndex = pos;
      }
      if (pos >= n) break;
    }
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
 * The service string of the rules of a service already met: one string
 * object for all of them, whatever their argument. Rules compared by
 * service (the stream's tables, one pass over every rule) then compare two
 * pointers, where strings cut from different lines are compared character
 * by character.
 */
function sharedService(byArg: Map<string, ServiceArgument>, service: string | null): string | null {
  for (const sa of byArg.values()) return sa.service;
  return service;
}

/** Likewise one string object per argument text, across services. */
function sharedArgument(cache: TokenCache, argument: string): string {
  const known = cache.argument.get(argument);
  if (known !== undefined) return known;
  cache.argument.set(argument, argument);
  return argument;
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
        else r = { service: sharedService(byArg, r.service), argument: r.argument };
        if (r.argument !== null) r.argument = sharedArgument(cache, r.argument);
        byArg.set(argument, r);
      }
    }
    return buildRule(r, f, 2, cache, params, origin);
  }
  return buildRule(sa, f, 0, cache, params, origin);
}
