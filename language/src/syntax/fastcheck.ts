/**
 * A fast path for validation only (`checkPolicy`): one regular expression
 * that accepts the common shapes of valid rule lines, so that most lines of
 * a large policy are validated without being split into words.
 *
 * INVARIANT: the expression accepts a line only if `checkRule` accepts it
 * (a property test checks this on random lines). Everything it does not
 * accept, valid or not, takes the exact path, which decides.
 */

// Printable ASCII only: any other character (Python's other whitespace,
// non-ASCII) sends the line to the exact path.
const W = "[ \\t]+";
const END = "(?=[ \\t]*(?:[\\r\\n]|$))";
/** A token value that is not empty and does not start with `@` (what a prefix needs). */
const VALUE = "[\\x21-\\x3f\\x41-\\x7e][\\x21-\\x7e]*";
/** A qube name: does not start with `@`, and is not `*` alone. */
const NAME = `(?!\\*${END}|\\*[ \\t])[\\x21-\\x3f\\x41-\\x7e][\\x21-\\x7e]*`;
const TOKEN_END = `(?=[ \\t]|${END})`;

const SOURCE = `(?:\\*|@anyvm|@adminvm|@type:${VALUE}|@tag:${VALUE}|@dispvm:${VALUE}|@dispvm:@tag:${VALUE}|${NAME})${TOKEN_END}`;
// `@default` has a branch of its own: with `allow` it needs `target=`.
const TARGET = `(?:\\*|@anyvm|@adminvm|@dispvm|@type:${VALUE}|@tag:${VALUE}|@dispvm:${VALUE}|@dispvm:@tag:${VALUE}|${NAME})${TOKEN_END}`;
const REDIRECT = `(?:@adminvm|@dispvm|@dispvm:${VALUE}|${NAME})${TOKEN_END}`;
const YESNO = `(?:yes|no)${TOKEN_END}`;

const SERVICE_ARG = `(?:\\*${W}\\*|[A-Za-z0-9._-]+${W}(?:\\*|\\+[A-Za-z0-9+._-]*))${TOKEN_END}`;

const DENY = `deny(?:${W}notify=${YESNO})?`;
const ALLOW_PARAM = `(?:target=${REDIRECT}|user=[\\x21-\\x7e]*${TOKEN_END}|notify=${YESNO}|autostart=${YESNO})`;
const ASK_PARAM = `(?:target=${REDIRECT}|default_target=${REDIRECT}|user=[\\x21-\\x7e]*${TOKEN_END}|notify=${YESNO}|autostart=${YESNO})`;
const ALLOW = `allow(?:${W}${ALLOW_PARAM})*`;
const ASK = `ask(?:${W}${ASK_PARAM})*`;
/** `allow` with at least one `target=` (what an `@default` target requires). */
const ALLOW_REDIRECTED = `allow(?:${W}${ALLOW_PARAM})*?${W}target=${REDIRECT}(?:${W}${ALLOW_PARAM})*`;

const RULE = new RegExp(
  `${SERVICE_ARG}${W}${SOURCE}${W}(?:${TARGET}${W}(?:${DENY}|${ALLOW}|${ASK})|@default${TOKEN_END}${W}(?:${DENY}|${ALLOW_REDIRECTED}|${ASK}))${END}`,
  "y",
);

/**
 * The columns after the service and argument, as `RULE` takes them, and no
 * parameter given twice: after the action, a look-ahead refuses a key that
 * comes again later on the line. Its capture groups are numbered from
 * `group` on (each look-ahead has its own back reference).
 */
function afterService(group: number): string {
  const keys = "(target|user|notify|autostart|default_target)";
  const once = () => `(?![^\\n]*[ \\t]${keys}=[^\\n]*[ \\t]\\${group++}=)`;
  // Built in the order they appear in the pattern: groups are numbered by position.
  const allow = `allow${once()}(?:${W}${ALLOW_PARAM})*`;
  const ask = `ask${once()}(?:${W}${ASK_PARAM})*`;
  const allowRedirected = `allow${once()}(?:${W}${ALLOW_PARAM})*?${W}target=${REDIRECT}(?:${W}${ALLOW_PARAM})*`;
  const askDefault = `ask${once()}(?:${W}${ASK_PARAM})*`;
  return `${W}${SOURCE}${W}(?:${TARGET}${W}(?:${DENY}|${allow}|${ask})|@default${TOKEN_END}${W}(?:${DENY}|${allowRedirected}|${askDefault}))`;
}

const linePatterns = new Map<string | undefined, RegExp>();

/**
 * A sticky pattern that matches one whole physical line, from its start
 * through its `\n`, when the line is a rule (indented by spaces and tabs at
 * most, no `\r`) that {@link fastValidRule} accepts. With `except`, rules whose service is `except` or `*`
 * (the ones that may decide a request for `except`) never match. The loader
 * passes over such lines without looking at them (`scanLines`' `skip`).
 *
 * INVARIANT: it matches a line only if `fastValidRule` accepts its stripped
 * text (a property test checks this on random lines).
 */
export function ruleLinePattern(except?: string): RegExp {
  let re = linePatterns.get(except);
  if (re === undefined) {
    const service =
      except === undefined ? SERVICE_ARG : `(?!(?:\\*|${except.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&")})[ \\t])${SERVICE_ARG}`;
    re = new RegExp(`[ \\t]*${service}${afterService(1)}[ \\t]*\\n`, "y");
    // A few services at most in one process (one per loaded policy); bounded all the same.
    if (linePatterns.size >= 64) linePatterns.clear();
    linePatterns.set(except, re);
  }
  return re;
}

/**
 * True when the rule line `text[start, end)` (stripped, policy syntax) is
 * certainly valid. False means "take the exact path", not "invalid".
 */
export function fastValidRule(text: string, start: number, end: number): boolean {
  RULE.lastIndex = start;
  if (!RULE.test(text) || RULE.lastIndex !== end) return false;
  // No parameter given twice (the exact path reports `parameter given twice`).
  // Only lines with two `=` or more can repeat one, so most lines stop here.
  const eq = text.indexOf("=", start);
  if (eq < 0 || eq >= end) return true;
  const eq2 = text.indexOf("=", eq + 1);
  if (eq2 < 0 || eq2 >= end) return true;
  const keys = text
    .slice(start, end)
    .split(/[ \t]+/)
    .slice(5)
    .map((w) => w.slice(0, w.indexOf("=")));
  return new Set(keys).size === keys.length;
}
