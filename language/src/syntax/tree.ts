/**
 * The tolerant syntax tree of one policy document.
 *
 * A document is a list of physical lines, as the engine numbers them. Every
 * line keeps its words with exact spans, so editors can point at any token,
 * and a line that the engine would reject still appears in the tree (with its
 * diagnostic) so that nothing the user wrote is lost.
 */
import type { Diagnostic, Span } from "../diagnostics.js";

/** Which grammar a document is written in. */
export type SyntaxKind =
  /** Qubes 4.1+ `policy.d` files and `!include`d files: `SERVICE ARG SOURCE TARGET ACTION [PARAMS]`. */
  | "policy"
  /** Legacy R4.0 service syntax (`!include-service` and `!compat-4.0` files): `SOURCE TARGET ACTION[,PARAMS]`. */
  | "service";

/** How physical lines end. */
export type NewlineMode =
  /** `\n`, `\r\n` and a lone `\r` all end a line (the daemon's file loader). */
  | "universal"
  /** Only `\n` ends a line (the in-memory loader used by `qubes-policy-lint`). */
  | "lf";

/** One whitespace-separated word of a line. */
export interface Word {
  /** The word as the engine sees it (after legacy `$`/`,` rewriting for service syntax). */
  text: string;
  /** Where the word is in the document. */
  span: Span;
}

/** The context a qube token is parsed in; it decides which tokens are valid. */
export type TokenContext = "source" | "target" | "redirect" | "intendedtarget";

/** The kinds of qube tokens, one per upstream token class. */
export type QubeTokenKind =
  | "name" // a qube name, `dom0` or `uuid:…`
  | "wildcard" // `*`
  | "adminvm" // `@adminvm`
  | "anyvm" // `@anyvm`
  | "default" // `@default`
  | "dispvm" // `@dispvm`
  | "type" // `@type:T`
  | "tag" // `@tag:T`
  | "dispvm-template" // `@dispvm:NAME`
  | "dispvm-tag"; // `@dispvm:@tag:T`

/** A parsed qube token. */
export interface QubeToken {
  kind: QubeTokenKind;
  /** The whole token text, e.g. `@tag:work`. */
  text: string;
  /** The part after the prefix (`work` for `@tag:work`), or the name itself; empty for keywords. */
  value: string;
}

/** The three actions. */
export type ActionName = "allow" | "deny" | "ask";

/** A `KEY=VALUE` action parameter as written. */
export interface ParamNode {
  key: string;
  value: string;
  /** Span of the whole `key=value` word. */
  span: Span;
}

/** The validated meaning of a rule line. */
export interface RuleNode {
  /** `null` for `*`. */
  service: string | null;
  /** `null` for `*`; otherwise starts with `+`. */
  argument: string | null;
  source: QubeToken;
  target: QubeToken;
  action: ActionName;
  /** `target=` (allow, ask). */
  redirect: QubeToken | null;
  /** `default_target=` (ask). */
  defaultTarget: QubeToken | null;
  /** `user=` as written, or `null`. */
  user: string | null;
  notify: boolean;
  autostart: boolean;
  /** The raw parameter words, in order. */
  rawParams: string[];
}

/** Fields shared by every line node. */
export interface LineBase {
  /** 1-based physical line number. */
  line: number;
  /** The physical line without its line ending. */
  lineSpan: Span;
  /** The stripped content of the line (empty span at the line start for blank lines). */
  span: Span;
}

/** A blank line. */
export interface BlankLine extends LineBase {
  kind: "blank";
}

/** A comment line (its first non-blank character is `#`). */
export interface CommentLine extends LineBase {
  kind: "comment";
  /** The comment text after `#`. */
  text: string;
}

/** The directives the engine knows. */
export type DirectiveName = "include" | "include-dir" | "include-service" | "compat-4.0";

/** A line starting with `!` (or `$include:` in service syntax). */
export interface DirectiveLine extends LineBase {
  kind: "directive";
  /** The directive word, e.g. `!include`. */
  name: Word;
  /** The known directive, or `null` for an invalid one. */
  directive: DirectiveName | null;
  params: Word[];
  /** For `!include-service`: the validated service (`null` = `*`) and argument, when valid. */
  service?: string | null;
  argument?: string | null;
}

/** A rule line. */
export interface RuleLine extends LineBase {
  kind: "rule";
  /** All words of the line. */
  words: Word[];
  /** Column words, when present: service and argument are absent in service syntax. */
  serviceWord?: Word;
  argumentWord?: Word;
  sourceWord?: Word;
  targetWord?: Word;
  actionWord?: Word;
  /** `KEY=VALUE` words (words without `=` appear with an empty key and the diagnostic). */
  params: ParamNode[];
  /** The rule, when the line is valid. */
  rule: RuleNode | null;
}

/** Any line. */
export type LineNode = BlankLine | CommentLine | DirectiveLine | RuleLine;

/** A parsed document: every physical line plus the diagnostics, never thrown. */
export interface PolicyDocument {
  text: string;
  syntax: SyntaxKind;
  newlines: NewlineMode;
  lines: LineNode[];
  /** Line-level diagnostics, in line order (at most one error per line: the engine's first). */
  diagnostics: Diagnostic[];
}
