/**
 * Qube tokens (`@anyvm`, `@tag:work`, `vault` …) and the contexts they are valid in.
 *
 * The rules follow the engine's token class hierarchy: each token kind is
 * valid in a fixed set of contexts, exact tokens are tried before prefixes,
 * and a prefix whose rest starts with `@` hands over to the next prefix (this
 * is how `@dispvm:@tag:x` is recognised).
 */
import { pyRepr } from "./python.js";
import type { QubeToken, QubeTokenKind, TokenContext } from "./tree.js";

const S = 1;
const T = 2;
const R = 4;
const I = 8;
const CONTEXT_BIT: Record<TokenContext, number> = { source: S, target: T, redirect: R, intendedtarget: I };

/** Exact tokens in the engine's definition order, with the contexts they are valid in. */
const EXACTS: ReadonlyArray<readonly [string, QubeTokenKind, number]> = [
  ["*", "wildcard", S | T],
  ["@adminvm", "adminvm", S | T | R | I],
  ["@anyvm", "anyvm", S | T],
  ["@default", "default", T | I],
  ["@dispvm", "dispvm", T | R | I],
];

/** Prefix tokens in the engine's definition order. */
const PREFIXES: ReadonlyArray<readonly [string, QubeTokenKind, number]> = [
  ["@type:", "type", S | T],
  ["@tag:", "tag", S | T],
  ["@dispvm:", "dispvm-template", S | T | R | I],
  ["@dispvm:@tag:", "dispvm-tag", S | T],
];

/** The result of parsing a token: a token, or the engine's error message (without a file prefix). */
export type TokenParse = { token: QubeToken; error?: undefined; code?: undefined } | { token?: undefined; error: string; code: "empty-token" | "invalid-token" };

/** The kinds valid in a context, for completion. */
export function tokenKindsFor(context: TokenContext): QubeTokenKind[] {
  const bit = CONTEXT_BIT[context];
  const kinds: QubeTokenKind[] = ["name"];
  for (const [, kind, ctx] of EXACTS) if (ctx & bit) kinds.push(kind);
  for (const [, kind, ctx] of PREFIXES) if (ctx & bit) kinds.push(kind);
  return kinds;
}

/** Parses a qube token in a context, exactly as the engine does. Never throws. */
export function parseQubeToken(text: string, context: TokenContext): TokenParse {
  if (text.length === 0) return { error: `invalid empty ${context} token`, code: "empty-token" };
  if (text[0] !== "@" && text !== "*") return { token: { kind: "name", text, value: text } };
  const bit = CONTEXT_BIT[context];
  for (const [exact, kind, ctx] of EXACTS) {
    if (ctx & bit && text === exact) return { token: { kind, text, value: "" } };
  }
  for (const [prefix, kind, ctx] of PREFIXES) {
    if (!(ctx & bit) || !text.startsWith(prefix)) continue;
    const value = text.slice(prefix.length);
    if (value.length === 0) return { error: `invalid empty ${prefix} token: ${pyRepr(text)}`, code: "empty-token" };
    if (value[0] === "@") continue;
    return { token: { kind, text, value } };
  }
  return { error: `invalid ${context} token: ${pyRepr(text)}`, code: "invalid-token" };
}

/** The zero UUID that stands for dom0. */
export const DOM0_UUID_TOKEN = "uuid:00000000-0000-0000-0000-000000000000";

/** True for the three spellings of dom0: `@adminvm`, `dom0` and the zero UUID. */
export function isDom0Token(text: string | null | undefined): boolean {
  return text === "@adminvm" || text === "dom0" || text === DOM0_UUID_TOKEN;
}
