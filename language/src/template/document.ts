/**
 * One `*.qubes.yaml` file: the `yaml` Document with node ranges, the YAML-level
 * checks of the strict profile (syntax, duplicate keys, anchors, aliases,
 * merge keys, explicit tags, several documents), and the position accessors
 * editors need. Schema checks (unknown keys, types) are the checker's.
 *
 * Tolerant: {@link parseStackText} never throws.
 */
import { isAlias, isMap, isNode, isScalar, isSeq, parseDocument, type Document, type Node, type Pair } from "yaml";
import type { Span } from "../diagnostics.js";
import { computeLineStarts, lineIndexOf } from "./lines.js";
import { coarseSegments, scalarSegments, type EmbeddedPolicy } from "./policy.js";
import { policyFileHeader, policyFileName } from "./model.js";
import type { TemplateDiagnostic } from "./types.js";
import { firstUnclosed } from "./unclosed.js";

export { computeLineStarts, lineIndexOf };

/** The role of a file, from its top-level keys. */
export type StackDocumentKind = "stack" | "bundle" | "fragment" | "invalid";

/** One step of a key path: a mapping key, or a sequence index. */
export type KeyPathStep = string | number;

/** What is at an offset: the innermost node, its key path from the root, and whether the offset is on a mapping key. */
export interface NodeAtOffset {
  node: Node;
  path: KeyPathStep[];
  /** The offset is on the key of the last step (not on its value). */
  onKey: boolean;
  /** The pair holding the node, when it is a mapping key or value. */
  pair?: Pair;
}

/** A parsed stack, include or bundle file. */
export interface StackDocument {
  path: string;
  text: string;
  /** The `yaml` Document (YAML 1.2 core schema, duplicate keys kept, no merge keys). */
  yaml: Document.Parsed;
  kind: StackDocumentKind;
  /** YAML-level diagnostics of the strict profile. */
  diagnostics: TemplateDiagnostic[];
  /**
   * Where the parser's recovery from a syntax error may have misread the text: each syntax
   * error's span, and for an unclosed bracket or quote everything from it to its last
   * follow-on error. Schema checks say nothing about nodes that meet these spans.
   */
  syntaxDamage: Span[];
  /** Offsets of the line starts (0-based lines). */
  lineStarts: number[];
  /** 1-based line and 0-based UTF-16 column of an offset. */
  positionAt(offset: number): { line: number; column: number };
  /** The innermost node at an offset (keys included), with its key path. */
  nodeAt(offset: number): NodeAtOffset | undefined;
  /** The key path at an offset (`["qubes", "work", "memory"]`), also between nodes (by indentation is not guessed: the innermost node). */
  keyPathAt(offset: number): KeyPathStep[];
  /** The node at a key path, if present. */
  nodeAtPath(path: readonly KeyPathStep[]): Node | undefined;
  /**
   * The `rules` blocks of this file as written (bundle parameters not
   * substituted; the path is known when the file names its stack and the
   * entry its file). For editor services on the slice; {@link checkStack}
   * gives the expanded blocks of a whole stack.
   */
  policyBlocks(): EmbeddedPolicy[];
}

/** The span of a node (its value range, without trailing comments). */
export function nodeSpan(node: Node | null | undefined, fallback: Span = { start: 0, end: 0 }): Span {
  const r = node?.range;
  if (!r) return fallback;
  return { start: r[0], end: Math.max(r[0], r[1]) };
}

/** A diagnostic factory bound to one file. */
export function diagnosticAt(
  doc: { path: string; lineStarts: readonly number[] },
  code: string,
  severity: TemplateDiagnostic["severity"],
  message: string,
  span: Span,
  help?: string,
): TemplateDiagnostic {
  const d: TemplateDiagnostic = { code, severity, message: oneLineText(message), file: doc.path, span, line: lineIndexOf(doc.lineStarts, span.start) + 1 };
  if (help) d.help = oneLineText(help);
  return d;
}

/**
 * A message is one line: values quoted from the file (a multi-line scalar, a tab, a control
 * character) are shown escaped, as `\n`, `\t` or `\u0007`.
 */
export function oneLineText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) =>
    c === "\n" ? "\\n" : c === "\r" ? "\\r" : c === "\t" ? "\\t" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

const YAML_CODE_HELP: Record<string, string> = {
  BAD_INDENT: "check the indentation: nested keys need more spaces than their parent",
  MISSING_CHAR: "close the quote or bracket",
  BLOCK_AS_IMPLICIT_KEY: "put the key on its own line, followed by `:`",
  TAB_AS_INDENT: "indent with spaces, not tabs",
};

/**
 * Parses one file. Never throws; every YAML error and every violation of the
 * strict profile at the YAML level is a diagnostic with a range.
 */
export function parseStackText(text: string, path: string): StackDocument {
  const safeText = typeof text === "string" ? text : String(text ?? "");
  const lineStarts = computeLineStarts(safeText);
  let yaml: Document.Parsed;
  let failure: unknown;
  try {
    yaml = parseDocument(safeText, {
      version: "1.2",
      schema: "core",
      merge: false,
      uniqueKeys: false,
      prettyErrors: false,
      strict: true,
      keepSourceTokens: false,
    });
  } catch (e) {
    // INVARIANT: never throws; `yaml` does not throw on input, but a bug there must not take the checker down.
    failure = e;
    yaml = parseDocument("", { version: "1.2" });
  }
  const loc = { path, lineStarts };
  const diagnostics: TemplateDiagnostic[] = [];
  // Said, never an empty stack in silence.
  if (failure !== undefined) diagnostics.push(unreadableYaml(loc, firstLine(failure instanceof Error ? failure.message : String(failure)), { start: 0, end: 0 }));
  const syntaxDamage: Span[] = [];
  const clamp = (n: number) => Math.max(0, Math.min(safeText.length, n));
  // An unclosed bracket or quote: the parser reports it where it gives up (the next line) and
  // then misreads the rest into more errors. One error at the bracket says it; the errors after
  // it are follow-ons of the same cause.
  const syntax = yaml.errors.filter((e) => e.code !== "MULTIPLE_DOCS");
  const open = syntax.length ? firstUnclosed(safeText) : undefined;
  const cause = open && syntax.some((e) => e.pos[0] >= open.offset) ? open : undefined;
  for (const e of yaml.errors) {
    const start = clamp(e.pos[0]);
    const end = Math.max(start, clamp(e.pos[1]));
    if (e.code === "MULTIPLE_DOCS") {
      diagnostics.push(multipleDocuments(loc, safeText, start, yaml.directives?.docStart === true));
      continue;
    }
    if (cause && start >= cause.offset) {
      if (!diagnostics.some((d) => d.span.start === cause.offset && d.code === "yaml-syntax-error")) {
        diagnostics.push(diagnosticAt(loc, "yaml-syntax-error", "error", cause.message, { start: cause.offset, end: cause.offset + 1 }, cause.help));
        syntaxDamage.push({ start: cause.offset, end });
      }
      const damage = syntaxDamage[syntaxDamage.length - 1]!;
      damage.end = Math.max(damage.end, end);
      continue;
    }
    if (TOO_DEEP.test(e.message)) {
      diagnostics.push(unreadableYaml(loc, e.message, { start, end }));
      syntaxDamage.push({ start, end });
      continue;
    }
    const near = safeText.slice(Math.max(0, start - 40), end + 2);
    const help = near.includes("${") && /[[{]/.test(near) ? "inside { } or [ ], quote a value that uses a parameter: \"${name}\"" : YAML_CODE_HELP[e.code];
    diagnostics.push(diagnosticAt(loc, "yaml-syntax-error", "error", firstLine(e.message), { start, end }, help));
    syntaxDamage.push({ start, end });
  }
  for (const w of yaml.warnings) {
    if (w.code === "TAG_RESOLVE_FAILED") continue; // reported as `yaml-tag` below, with the node's range
    const start = clamp(w.pos[0]);
    diagnostics.push(diagnosticAt(loc, "yaml-warning", "warning", firstLine(w.message), { start, end: Math.max(start, clamp(w.pos[1])) }));
  }
  profileChecks(yaml.contents, loc, safeText, diagnostics);
  const kind = documentKind(yaml);
  if (yaml.errors.length === 0 && yaml.contents !== null && !isMap(yaml.contents)) {
    diagnostics.push(
      diagnosticAt(loc, "not-a-mapping", "error", "a stack file must be a mapping of keys (qkit, stack, qubes, ...)", nodeSpan(yaml.contents), "start the file with `qkit: 1` and `stack: NAME` (or `bundle: NAME`)"),
    );
  }

  let blocks: EmbeddedPolicy[] | undefined;
  const doc: StackDocument = {
    path,
    text: safeText,
    yaml,
    kind,
    diagnostics,
    syntaxDamage,
    lineStarts,
    positionAt(offset) {
      const i = lineIndexOf(lineStarts, offset);
      return { line: i + 1, column: offset - lineStarts[i]! };
    },
    nodeAt(offset) {
      return findNode(yaml.contents, offset, []);
    },
    keyPathAt(offset) {
      return findNode(yaml.contents, offset, [])?.path ?? [];
    },
    policyBlocks() {
      blocks ??= rawPolicyBlocks(doc);
      return blocks;
    },
    nodeAtPath(p) {
      let cur: unknown = yaml.contents;
      for (const step of p) {
        if (isMap(cur)) {
          const pair = cur.items.find((it) => isScalar(it.key) && String(it.key.value) === String(step));
          cur = pair?.value;
        } else if (isSeq(cur) && typeof step === "number") cur = cur.items[step];
        else return undefined;
      }
      return isNode(cur) ? cur : undefined;
    },
  };
  return doc;
}

/**
 * A second document (`---`, or text after `...`): one line for the admin, not the
 * library's hint about its JavaScript API.
 */
function multipleDocuments(loc: { path: string; lineStarts: number[] }, text: string, start: number, explicitStart: boolean): TemplateDiagnostic {
  const line = lineIndexOf(loc.lineStarts, start) + 1;
  if (text.startsWith("---", start)) {
    const which = explicitStart ? "the second `---`" : "the `---`";
    return diagnosticAt(loc, "yaml-multiple-documents", "error", `a stack file holds one YAML document: remove ${which} at line ${line} or split the file`, { start, end: start + 3 }, "YAML starts a new document at each `---` line; each stack, include or bundle file is one document");
  }
  const eol = text.indexOf("\n", start);
  return diagnosticAt(loc, "yaml-multiple-documents", "error", `a stack file holds one YAML document: a second one starts at line ${line}, after \`...\`; remove the \`...\` or split the file`, { start, end: eol < 0 ? text.length : eol }, "YAML ends a document at a `...` line; each stack, include or bundle file is one document");
}

/** The parser's message as one short, printable line (its quoted token may be any bytes of the file). */
/** The parser's own recursion ran out: a document nested thousands of levels deep. */
const TOO_DEEP = /Maximum call stack size exceeded|too much recursion/;

/** A document the YAML parser could not read at all (nested too deep, or the parser failed). */
function unreadableYaml(loc: Parameters<typeof diagnosticAt>[0], message: string, span: Span): TemplateDiagnostic {
  return TOO_DEEP.test(message)
    ? diagnosticAt(loc, "yaml-syntax-error", "error", "the YAML nests too deeply to be read (thousands of levels)", span, "a stack nests a few levels: look for indentation that grows on every line, or a generated file")
    : diagnosticAt(loc, "yaml-syntax-error", "error", `the YAML parser failed: ${message}`, span, "check the file's syntax near the start; please report this file as a qkit bug");
}

function firstLine(s: string): string {
  const l = (s.split("\n")[0] ?? s).replace(/ at line \d+, column \d+:?$/, "").trim();
  // eslint-disable-next-line no-control-regex
  const printable = l.replace(/[\u0000-\u001f\u007f-\u009f\ufffd]/g, (c) => (c === "\ufffd" ? "\\ufffd" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
  return printable.length > 160 ? printable.slice(0, 157) + "..." : printable;
}

function documentKind(yaml: Document.Parsed): StackDocumentKind {
  const c = yaml.contents;
  if (!isMap(c)) return "invalid";
  const keys = new Set(c.items.map((p) => (isScalar(p.key) ? String(p.key.value) : "")));
  if (keys.has("bundle")) return "bundle";
  if (keys.has("stack")) return "stack";
  return "fragment";
}

/** The YAML-level rules of the strict profile, over every node. */
function profileChecks(root: unknown, loc: { path: string; lineStarts: number[] }, text: string, out: TemplateDiagnostic[]): void {
  const seenAnchors = new Set<number>();
  const walk = (n: unknown, depth: number): void => {
    if (depth > 200 || n === null || n === undefined) return;
    if (isAlias(n)) {
      out.push(diagnosticAt(loc, "yaml-alias", "error", `aliases are not allowed: *${n.source}`, nodeSpan(n), "write the value out in full (every value has one place in a stack file)"));
      return;
    }
    if (!isNode(n)) return;
    const anchor = (n as { anchor?: string }).anchor;
    if (anchor && n.range && !seenAnchors.has(n.range[0])) {
      seenAnchors.add(n.range[0]);
      const span = anchorSpan(text, n.range[0], anchor);
      out.push(diagnosticAt(loc, "yaml-anchor", "error", `anchors are not allowed: &${anchor}`, span, "remove the anchor; repeat the value, or use a bundle for shared declarations"));
    }
    const tag = (n as { tag?: string }).tag;
    if (tag && n.range) {
      const src = tagSource(tag);
      const at = text.lastIndexOf(src.startsWith("!!") ? "!!" : "!", n.range[0]);
      const span = at >= 0 && at >= text.lastIndexOf("\n", n.range[0]) - 0 && at < n.range[0] ? { start: at, end: Math.max(at, n.range[1]) } : nodeSpan(n);
      out.push(diagnosticAt(loc, "yaml-tag", "error", `explicit tags are not allowed: ${src}`, span, "remove the tag; values are typed by the key they belong to"));
    }
    if (isMap(n)) {
      const seen = new Map<string, Pair>();
      for (const p of n.items) {
        const k = p.key;
        if (isScalar(k) && k.value === "<<" && k.type === "PLAIN") {
          out.push(diagnosticAt(loc, "yaml-merge-key", "error", "merge keys (<<) are not allowed", nodeSpan(k), "write the keys out in full; use a bundle for shared declarations"));
        } else if (isScalar(k)) {
          const name = String(k.value);
          const prev = seen.get(name);
          if (prev) {
            const d = diagnosticAt(loc, "duplicate-key", "error", `duplicate key: ${name}`, nodeSpan(k), "remove one of the two entries (YAML keeps only the last one silently)");
            d.related = [{ file: loc.path, span: nodeSpan(prev.key as Node), message: "first defined here" }];
            out.push(d);
          } else seen.set(name, p);
        } else if (k !== null && k !== undefined && !isAlias(k)) {
          out.push(diagnosticAt(loc, "complex-key", "error", "keys must be plain strings", nodeSpan(k as Node), "write the key as a string"));
        }
        walk(p.key, depth + 1);
        walk(p.value, depth + 1);
      }
    } else if (isSeq(n)) {
      for (const it of n.items) walk(it, depth + 1);
    }
  };
  walk(root, 0);
}

function tagSource(tag: string): string {
  return tag.startsWith("tag:yaml.org,2002:") ? `!!${tag.slice("tag:yaml.org,2002:".length)}` : tag;
}

/** The `&name` in the source before a node (the node's range starts after its properties). */
function anchorSpan(text: string, nodeStart: number, anchor: string): Span {
  const from = Math.max(0, nodeStart - anchor.length - 200);
  const i = text.lastIndexOf(`&${anchor}`, nodeStart);
  if (i >= from && i >= 0) return { start: i, end: i + anchor.length + 1 };
  return { start: nodeStart, end: nodeStart };
}

function contains(node: Node | null | undefined, offset: number): boolean {
  const r = node?.range;
  return !!r && r[0] <= offset && offset <= r[1];
}

function findNode(n: unknown, offset: number, path: KeyPathStep[]): NodeAtOffset | undefined {
  if (!isNode(n) || !contains(n, offset)) return undefined;
  if (isMap(n)) {
    for (const p of n.items) {
      const key = isScalar(p.key) ? String(p.key.value) : "";
      if (isNode(p.key) && contains(p.key, offset)) return { node: p.key, path: [...path, key], onKey: true, pair: p };
      if (isNode(p.value) && contains(p.value, offset)) {
        const inner = findNode(p.value, offset, [...path, key]);
        if (inner) return inner.pair || inner.path.length > path.length + 1 ? inner : { ...inner, pair: p };
      }
    }
  } else if (isSeq(n)) {
    for (let i = 0; i < n.items.length; i++) {
      const inner = findNode(n.items[i], offset, [...path, i]);
      if (inner) return inner;
    }
  }
  return { node: n, path, onKey: false };
}

function scalarText(n: unknown): string | undefined {
  return isScalar(n) && (typeof n.value === "string" || typeof n.value === "number") ? String(n.value) : undefined;
}

function rawPolicyBlocks(doc: StackDocument): EmbeddedPolicy[] {
  const out: EmbeddedPolicy[] = [];
  const root = doc.yaml.contents;
  if (!isMap(root)) return out;
  const get = (m: unknown, key: string) => (isMap(m) ? m.items.find((p) => isScalar(p.key) && p.key.value === key)?.value : undefined);
  const stack = doc.kind === "stack" || doc.kind === "fragment" ? scalarText(get(root, "stack")) : undefined;
  const prio = scalarText(get(get(root, "options"), "policy_priority"));
  const policy = get(root, "policy");
  if (!isSeq(policy)) return out;
  for (const entry of policy.items) {
    const rules = get(entry, "rules");
    if (!isScalar(rules) || (rules.value !== null && typeof rules.value !== "string")) continue;
    const text = rules.value === null ? "" : (rules.value as string);
    const name = scalarText(get(entry, "file")) ?? "";
    const span = nodeSpan(rules);
    const segs = text === "" ? [] : scalarSegments(doc.text, doc.lineStarts, rules);
    const include = isScalar(get(entry, "include")) && (get(entry, "include") as { value: unknown }).value === true;
    const priority = Number(scalarText(get(entry, "priority")) ?? prio ?? 40);
    const valid = stack !== undefined && /^[a-z0-9][a-z0-9_-]*$/.test(stack) && /^[a-z0-9][a-z0-9_-]*$/.test(name) && Number.isInteger(priority) && priority >= 0 && priority <= 99;
    const path = valid ? `/etc/qubes/policy.d/${policyFileName(stack!, { file: name, priority, rules: text, ...(include ? { include } : {}) })}` : "";
    out.push({ file: doc.path, name, path, text, header: policyFileHeader(stack ?? "?"), segments: segs ?? coarseSegments(text.length, span), span, exact: segs !== undefined });
  }
  return out;
}
