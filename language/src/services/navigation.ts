/**
 * Go to definition and find references: include paths, qube names, tags,
 * types and services, across every file of the policy.
 */
import type { Span } from "../diagnostics.js";
import type { LineNode, PolicyDocument, RuleLine, Word } from "../syntax/tree.js";
import { dirname, isDom0ish, lineAt, resolvePath, touches } from "./util.js";
import type { PolicySnapshot } from "./workspace.js";

/** A place in a file. */
export interface FileLocation {
  /** Absolute path. */
  path: string;
  span: Span;
}

/** The thing a reference search looks for. */
export type SymbolRef =
  | { kind: "qube"; name: string }
  | { kind: "tag"; name: string }
  | { kind: "type"; name: string }
  | { kind: "service"; name: string }
  | { kind: "file"; path: string };

/**
 * Resolves an include path the way the daemon does: relative paths against
 * the directory of the top-level policy file (the policy or runtime
 * directory, never the including file's own directory), or against the
 * legacy directory for legacy files.
 */
export function resolveIncludePath(snapshot: PolicySnapshot, fromPath: string, target: string): string {
  const dir = dirname(fromPath);
  let base = snapshot.policyDir;
  if (snapshot.runtimeDir && (dir === snapshot.runtimeDir || fromPath.startsWith(snapshot.runtimeDir + "/"))) base = snapshot.runtimeDir;
  else if (dir === snapshot.legacyDir) base = snapshot.legacyDir;
  const resolved = resolvePath(base, target);
  return snapshot.fs.realPath ? safeRealPath(snapshot, resolved) : resolved;
}

function safeRealPath(snapshot: PolicySnapshot, p: string): string {
  try {
    return snapshot.fs.realPath!(p);
  } catch {
    return p;
  }
}

/** The span of the part of a word after `skip` characters. */
function tail(w: Word, skip: number): Span {
  return { start: w.span.start + skip, end: w.span.end };
}

/** Every symbol occurrence of a line, with its span. */
function occurrences(line: LineNode, snapshot: PolicySnapshot | undefined, path: string | undefined): Array<[SymbolRef, Span, Span?]> {
  // [symbol, the name's span, the span where the cursor finds it when wider (the whole `@tag:NAME` word)]
  const out: Array<[SymbolRef, Span, Span?]> = [];
  if (line.kind === "directive") {
    if (line.directive === "include-service" && line.params[0]) out.push([{ kind: "service", name: line.params[0].text }, line.params[0].span]);
    const last = line.params[line.params.length - 1];
    if (last && line.directive && line.directive !== "compat-4.0" && snapshot && path) {
      out.push([{ kind: "file", path: resolveIncludePath(snapshot, path, last.text) }, last.span]);
    }
    return out;
  }
  if (line.kind !== "rule") return out;
  if (line.serviceWord && line.serviceWord.text !== "*") out.push([{ kind: "service", name: line.serviceWord.text }, line.serviceWord.span]);
  const qubeWord = (w: Word | undefined, text: string, skip: number) => {
    if (!w || text === "" || text === "*") return;
    const word = tail(w, skip);
    if (text.startsWith("@dispvm:@tag:")) out.push([{ kind: "tag", name: text.slice(13) }, tail(w, skip + 13), word]);
    else if (text.startsWith("@dispvm:")) out.push([{ kind: "qube", name: text.slice(8) }, tail(w, skip + 8), word]);
    else if (text.startsWith("@tag:")) out.push([{ kind: "tag", name: text.slice(5) }, tail(w, skip + 5), word]);
    else if (text.startsWith("@type:")) out.push([{ kind: "type", name: text.slice(6) }, tail(w, skip + 6), word]);
    else if (!text.startsWith("@")) out.push([{ kind: "qube", name: isDom0ish(text) ? "dom0" : text }, tail(w, skip)]);
    else if (text === "@adminvm") out.push([{ kind: "qube", name: "dom0" }, tail(w, skip)]);
  };
  qubeWord(line.sourceWord, line.sourceWord?.text ?? "", 0);
  qubeWord(line.targetWord, line.targetWord?.text ?? "", 0);
  for (const p of line.params) {
    if (p.key === "target" || p.key === "default_target") {
      const w: Word = { text: p.value, span: p.span };
      qubeWord(w, p.value, p.key.length + 1);
    }
  }
  return out;
}

/** The symbol under the cursor, if any. */
export function symbolAt(doc: PolicyDocument, offset: number, ctx: { snapshot?: PolicySnapshot; path?: string } = {}): { ref: SymbolRef; span: Span } | undefined {
  const line = lineAt(doc, offset);
  if (!line) return undefined;
  for (const [ref, span, word] of occurrences(line, ctx.snapshot, ctx.path)) {
    if (touches(word ?? span, offset)) return { ref, span };
  }
  return undefined;
}

function sameRef(a: SymbolRef, b: SymbolRef): boolean {
  if (a.kind !== b.kind) return false;
  return a.kind === "file" ? a.path === (b as { path: string }).path : a.name === (b as { name: string }).name;
}

/**
 * Go to definition: an include path goes to the included file (or the
 * `.policy` files of an included directory). Other symbols have no
 * definition inside the policy; the language server may map qube names to
 * the system model.
 */
export function definition(doc: PolicyDocument, offset: number, ctx: { snapshot: PolicySnapshot; path: string }): FileLocation[] {
  const at = symbolAt(doc, offset, ctx);
  if (!at || at.ref.kind !== "file") return [];
  const fs = ctx.snapshot.fs;
  const kind = fs.stat(at.ref.path);
  if (kind === "file") return [{ path: at.ref.path, span: { start: 0, end: 0 } }];
  if (kind === "dir") {
    return (fs.readDir(at.ref.path) ?? [])
      .filter((n) => n.endsWith(".policy") && !n.startsWith("."))
      .sort()
      .map((n) => ({ path: `${at.ref.kind === "file" ? at.ref.path : ""}/${n}`, span: { start: 0, end: 0 } }));
  }
  return [];
}

/**
 * Find references: every occurrence of the symbol under the cursor in every
 * file of the policy (and in `doc` itself). Include paths find every
 * directive that includes the same file.
 */
export function references(doc: PolicyDocument, offset: number, ctx: { snapshot: PolicySnapshot; path: string; includeDeclaration?: boolean }): FileLocation[] {
  const at = symbolAt(doc, offset, ctx);
  if (!at) return [];
  return findReferences(at.ref, ctx.snapshot, { path: ctx.path, document: doc });
}

/** Every occurrence of a symbol in the policy's files (plus one extra document, usually the open one). */
export function findReferences(ref: SymbolRef, snapshot: PolicySnapshot, extra?: { path: string; document: PolicyDocument }): FileLocation[] {
  const out: FileLocation[] = [];
  const docs = new Map<string, PolicyDocument>();
  for (const p of snapshot.files.keys()) {
    const d = snapshot.document(p);
    if (d) docs.set(p, d);
  }
  if (extra) docs.set(extra.path, extra.document);
  for (const [path, document] of docs) {
    for (const line of document.lines) {
      if (line.kind !== "rule" && line.kind !== "directive") continue;
      for (const [r, span] of occurrences(line, snapshot, path)) {
        if (sameRef(r, ref)) out.push({ path, span });
      }
    }
  }
  return out;
}

/** The rule line at a 1-based line number, when it is one. */
export function ruleLineAt(doc: PolicyDocument, line: number): RuleLine | undefined {
  const l = doc.lines[line - 1];
  return l && l.kind === "rule" ? l : undefined;
}

/** One highlighted occurrence in the open document. */
export interface Highlight {
  span: Span;
  /** `write` where the symbol is the call's source or the include path; `read` elsewhere. */
  kind: "read" | "write" | "text";
}

/**
 * Document highlight: every occurrence, in this document, of the qube, tag,
 * type, service or included file under the cursor. Never throws.
 */
export function documentHighlights(doc: PolicyDocument, offset: number, ctx: { snapshot?: PolicySnapshot; path?: string } = {}): Highlight[] {
  const at = symbolAt(doc, offset, ctx);
  if (!at) return [];
  const out: Highlight[] = [];
  for (const line of doc.lines) {
    if (line.kind !== "rule" && line.kind !== "directive") continue;
    for (const [r, span] of occurrences(line, ctx.snapshot, ctx.path)) {
      if (!sameRef(r, at.ref)) continue;
      const isSource = line.kind === "rule" && line.sourceWord !== undefined && span.start >= line.sourceWord.span.start && span.end <= line.sourceWord.span.end;
      out.push({ span, kind: isSource ? "write" : "read" });
    }
  }
  return out;
}

/**
 * Where a service is defined: the rule lines (and `!include-service`
 * directives) that mention it in every file of the policy, first-match order
 * by file, and the service's implementation under `/etc/qubes-rpc` when the
 * file system has it (dom0's catalogue of services it provides).
 */
export function serviceDefinitions(name: string, snapshot: PolicySnapshot, extra?: { path: string; document: PolicyDocument }): FileLocation[] {
  const out: FileLocation[] = [];
  for (const dir of ["/etc/qubes-rpc", "/usr/local/etc/qubes-rpc"]) {
    try {
      if (snapshot.fs.stat(`${dir}/${name}`) === "file") out.push({ path: `${dir}/${name}`, span: { start: 0, end: 0 } });
    } catch {
      // An unreadable catalogue is no definition.
    }
  }
  return out.concat(findReferences({ kind: "service", name }, snapshot, extra));
}
