/**
 * The meaning of one line: a rule or a directive, checked in the engine's order.
 *
 * Each check that fails produces the engine's message for it, so the first
 * diagnostic of a line is exactly what the daemon would report for it.
 */
import type { DiagnosticCode, Span } from "../diagnostics.js";
import { pyListRepr, pyRepr, pyTupleRepr, pyCompare } from "./python.js";
import { parseQubeToken } from "./tokens.js";
import type { ActionName, ParamNode, QubeToken, RuleNode } from "./tree.js";

/** A failed check: code, engine message, and where. */
export interface LineError {
  code: DiagnosticCode;
  message: string;
  span: Span;
  help?: string;
}

const SERVICE_CHARS = /^[A-Za-z0-9._-]*$/;
const ARGUMENT_CHARS = /^[A-Za-z0-9+._-]*$/;

function invalidChars(s: string, allowed: RegExp): string[] {
  const set = new Set<string>();
  for (const ch of s) if (!allowed.test(ch)) set.add(ch);
  return [...set].sort(pyCompare);
}

const ONE_SERVICE_CHAR = /^[A-Za-z0-9._-]$/;
const ONE_ARGUMENT_CHAR = /^[A-Za-z0-9+._-]$/;

/** Validated service and argument (`null` stands for `*`). */
export interface ServiceArgument {
  service: string | null;
  argument: string | null;
}

/**
 * Upstream's `validate_service_and_argument`, check for check. Spans point at
 * the offending word (the service word for the `* service` rule).
 */
export function validateServiceArgument(
  service: string,
  argument: string,
  serviceSpan: Span,
  argumentSpan: Span,
): ServiceArgument | LineError {
  const svc = service === "*" ? null : service;
  if (svc !== null && !SERVICE_CHARS.test(svc)) {
    return {
      code: "invalid-service",
      message: `service ${pyRepr(svc)} contains invalid characters: ${pyTupleRepr(invalidChars(svc, ONE_SERVICE_CHAR))}`,
      span: serviceSpan,
      help: "service names may contain only letters, digits, `.`, `_` and `-`",
    };
  }
  const arg = argument === "*" ? null : argument;
  if (arg !== null) {
    if (!ARGUMENT_CHARS.test(arg)) {
      return {
        code: "invalid-argument",
        message: `argument ${pyRepr(arg)} contains invalid characters: ${pyTupleRepr(invalidChars(arg, ONE_ARGUMENT_CHAR))}`,
        span: argumentSpan,
        help: "arguments may contain only letters, digits, `+`, `.`, `_` and `-`",
      };
    }
    if (!arg.startsWith("+")) {
      return {
        code: "argument-without-plus",
        message: `argument ${pyRepr(arg)} does not start with +`,
        span: argumentSpan,
        help: "write the argument as `+VALUE`, or `*` for any argument",
      };
    }
    if (svc === null) {
      return {
        code: "argument-for-any-service",
        message: "only * argument allowed for * service",
        span: argumentSpan,
        help: "a rule for every service (`*`) must also use `*` as its argument",
      };
    }
  }
  return { service: svc, argument: arg };
}

function isError(x: unknown): x is LineError {
  return typeof x === "object" && x !== null && "code" in x && "message" in x;
}

/**
 * The words of one line as parallel arrays (no per-word objects on the hot
 * path). `starts` may be left empty by a fast split, with `src` saying where
 * the words came from; {@link ensureStarts} fills it when a span is needed.
 */
export interface Fields {
  texts: string[];
  starts: number[];
  src?: { text: string; start: number } | undefined;
}

/** Fills `f.starts` when a fast split left it empty. */
export function ensureStarts(f: Fields): void {
  if (f.starts.length === f.texts.length || !f.src) return;
  const { text, start } = f.src;
  f.starts.length = 0;
  let pos = start;
  for (const w of f.texts) {
    const at = text.indexOf(w, pos);
    f.starts.push(at);
    pos = at + w.length;
  }
}

/** The span of word `i`. */
export function fieldSpan(f: Fields, i: number): Span {
  ensureStarts(f);
  return { start: f.starts[i]!, end: f.starts[i]! + f.texts[i]!.length };
}

function fieldsSpan(f: Fields, from: number, fallback: Span): Span {
  ensureStarts(f);
  const n = f.texts.length;
  if (from >= n) return fallback;
  return { start: f.starts[from]!, end: f.starts[n - 1]! + f.texts[n - 1]!.length };
}

/** Interned tokens and checked names: the same text in the same context is one shared, immutable object. */
export interface TokenCache {
  source: Map<string, QubeToken | LineError>;
  target: Map<string, QubeToken | LineError>;
  redirect: Map<string, QubeToken | LineError>;
  /** Service/argument pairs already validated, by service then argument. */
  serviceArgument: Map<string, Map<string, ServiceArgument>>;
  /** One string per argument text met (see `lines.ts` `checkRule`). */
  argument: Map<string, string>;
  /** One string per parameter word (`notify=yes`, `user=root` …) and `user=` value met: rules keep them. */
  words: Map<string, string>;
}

/** A fresh cache (one per load or parse). */
export function newTokenCache(): TokenCache {
  return { source: new Map(), target: new Map(), redirect: new Map(), serviceArgument: new Map(), argument: new Map(), words: new Map() };
}

function token(text: string, context: "source" | "target" | "redirect", f: Fields, at: number, cache: TokenCache | undefined): QubeToken | LineError {
  const map = cache?.[context];
  let r = map?.get(text);
  if (r === undefined) {
    const p = parseQubeToken(text, context);
    r = p.token ?? { code: p.code!, message: p.error!, span: { start: 0, end: 0 } };
    map?.set(text, r);
  }
  if (isError(r)) return { code: r.code, message: r.message, span: fieldSpan(f, at) };
  return r;
}

const ACTIONS: ReadonlySet<string> = new Set(["allow", "deny", "ask"]);

/** The action of a valid action word, as the literal (one string for every rule, compared by pointer), not the word cut from the line. */
function actionName(text: string): ActionName {
  return text === "allow" ? "allow" : text === "deny" ? "deny" : "ask";
}
const ALLOWED_KEYS: Record<ActionName, ReadonlySet<string>> = {
  deny: new Set(["notify"]),
  allow: new Set(["target", "user", "notify", "autostart"]),
  ask: new Set(["target", "default_target", "user", "notify", "autostart"]),
};
const CLASS_NAME: Record<ActionName, string> = { allow: "Allow", deny: "Deny", ask: "Ask" };
const NO_PARAMS: string[] = [];

/** The parameter keys each action accepts. */
export function paramsFor(action: ActionName): string[] {
  return [...ALLOWED_KEYS[action]];
}

/**
 * Builds a rule from its columns (`f.texts[i]` is the source), as upstream's
 * `Rule.__init__` does: source, target, action, parameter syntax, duplicates,
 * `notify`/`autostart` values, keys allowed for the action, `target=` then
 * `default_target=`, and the `@default` check. The first failure is returned.
 * When `params` is given, every parsed `key=value` word is appended to it.
 */
export function buildRule(sa: ServiceArgument, f: Fields, i: number, cache?: TokenCache, params?: ParamNode[], origin?: RuleOriginFields | false): RuleNode | LineError {
  const texts = f.texts;
  const source = token(texts[i]!, "source", f, i, cache);
  if (isError(source)) return source;
  const target = token(texts[i + 1]!, "target", f, i + 1, cache);
  if (isError(target)) return target;
  const actionText = texts[i + 2]!;
  if (!ACTIONS.has(actionText)) {
    return {
      code: "invalid-action",
      message: `invalid action: ${actionText}`,
      span: fieldSpan(f, i + 2),
      help: actionText.includes(",") ? "parameters are separated by spaces, not commas" : "the action is one of `allow`, `deny`, `ask`",
    };
  }
  const action = actionName(actionText);
  const first = i + 3;
  const n = texts.length;
  let redirectText: string | undefined;
  let redirectAt = -1;
  let defaultText: string | undefined;
  let defaultAt = -1;
  let user: string | null = null;
  let notify: boolean | undefined;
  let autostart: boolean | undefined;
  let notifyAt = -1;
  let autostartAt = -1;
  let badKey = false;
  if (first < n) {
    // Parameters are few: a linear scan of the keys seen beats a Set.
    let seen: string | string[] | undefined;
    for (let k = first; k < n; k++) {
      const w = texts[k]!;
      const eq = w.indexOf("=");
      if (eq < 0) {
        params?.push({ key: "", value: w, span: fieldSpan(f, k) });
        return {
          code: "invalid-param-syntax",
          message: `invalid action parameter syntax: ${pyRepr(w)}`,
          span: fieldSpan(f, k),
          help: w.startsWith("#") ? "comments must be on a line of their own" : "parameters have the form `key=value`",
        };
      }
      const key = w.slice(0, eq);
      const value = w.slice(eq + 1);
      params?.push({ key, value, span: fieldSpan(f, k) });
      if (seen === undefined) seen = key;
      else {
        if (typeof seen === "string") seen = [seen];
        if (seen.includes(key)) return { code: "duplicate-param", message: `parameter given twice: ${pyRepr(key)}`, span: fieldSpan(f, k) };
        seen.push(key);
      }
      switch (key) {
        case "target":
          redirectText = value;
          redirectAt = k;
          break;
        case "default_target":
          defaultText = value;
          defaultAt = k;
          break;
        case "user":
          user = value;
          break;
        case "notify":
          notifyAt = k;
          break;
        case "autostart":
          autostartAt = k;
          break;
      }
      if (!ALLOWED_KEYS[action].has(key)) badKey = true;
    }
    for (let pass = 0; pass < 2; pass++) {
      const k = pass === 0 ? notifyAt : autostartAt;
      if (k < 0) continue;
      const w = texts[k]!;
      const eq = w.indexOf("=");
      const key = w.slice(0, eq);
      const value = w.slice(eq + 1);
      if (value !== "yes" && value !== "no") {
        return { code: "invalid-yes-no", message: `${pyRepr(key)} is ${pyRepr(value)}, but can be only 'yes' or 'no'`, span: fieldSpan(f, k) };
      }
      if (k === notifyAt) notify = value === "yes";
      else autostart = value === "yes";
    }
    if (badKey) {
      const allowed = ALLOWED_KEYS[action];
      return {
        code: "invalid-params-for-action",
        message: `invalid parameters for action ${CLASS_NAME[action]}: ${pyListRepr(texts.slice(first))}`,
        span: fieldsSpan(f, first, fieldSpan(f, i + 2)),
        help: `\`${action}\` accepts ${[...allowed].map((k) => `\`${k}=\``).join(", ")}`,
      };
    }
  }
  let redirect: QubeToken | null = null;
  let defaultTarget: QubeToken | null = null;
  if (redirectText !== undefined) {
    const r = token(redirectText, "redirect", f, redirectAt, cache);
    if (isError(r)) return r;
    redirect = r;
  }
  if (defaultText !== undefined) {
    const r = token(defaultText, "redirect", f, defaultAt, cache);
    if (isError(r)) return r;
    defaultTarget = r;
  }
  if (target.kind === "default" && action === "allow" && redirect === null) {
    return {
      code: "default-target-required",
      message: "allow action for @default rule must specify target= option",
      span: fieldSpan(f, i + 2),
      help: "add `target=QUBE`, or use `ask`",
    };
  }
  if (origin === false) return VALID;
  const rawParams = first < n ? (cache ? sharedWords(cache.words, texts, first) : texts.slice(first)) : NO_PARAMS;
  if (user !== null && cache) user = sharedWord(cache.words, user);
  const notifyValue = notify ?? action === "deny";
  const autostartValue = autostart ?? true;
  if (origin) {
    // One object literal with every field, so all rules share one shape.
    return {
      service: sa.service,
      argument: sa.argument,
      source,
      target,
      action,
      redirect,
      defaultTarget,
      user,
      notify: notifyValue,
      autostart: autostartValue,
      rawParams,
      index: origin.index,
      origin: origin.origin,
      via: origin.via,
    } as RuleNode;
  }
  return { service: sa.service, argument: sa.argument, source, target, action, redirect, defaultTarget, user, notify: notifyValue, autostart: autostartValue, rawParams };
}

/** One string object per text (the first one met). */
function sharedWord(words: Map<string, string>, text: string): string {
  const known = words.get(text);
  if (known !== undefined) return known;
  words.set(text, text);
  return text;
}

/** `texts.slice(from)`, each word as its {@link sharedWord}. */
function sharedWords(words: Map<string, string>, texts: readonly string[], from: number): string[] {
  const out: string[] = new Array(texts.length - from);
  for (let k = from; k < texts.length; k++) out[k - from] = sharedWord(words, texts[k]!);
  return out;
}

/** What {@link buildRule} returns for a valid rule when asked only to validate (`origin === false`). */
const VALID = Object.freeze({}) as RuleNode;

/** The loader's fields of a rule, set when the rule is created. */
export interface RuleOriginFields {
  index: number;
  origin: { file: string; path: string; line: number | null };
  via: readonly { file: string; path: string; line: number | null }[];
}

export { isError as isLineError };
