/**
 * Go to definition and find references for qube names in stack files: a
 * qube's declaration under `qubes:` (in any file of the stack), the values
 * that name it (`template`, `netvm`, `default_dispvm`, device backends, global
 * properties, `source.clone`, bundle parameters of type `qube`/`name`/
 * `list<qube>` and their defaults, `expect:` entries), and the policy tokens
 * of the `rules: |` blocks; tags in `tags:` lists and in bundle parameters of
 * type `tag` (`with:` values and defaults).
 * References in the workspace's own `policy.d` are the language server's to
 * add (it holds that policy): {@link templateSymbolAt} gives the name.
 */
import type { Span } from "../../diagnostics.js";
import { findReferences, symbolAt, type FileLocation } from "../../services/navigation.js";
import type { TemplateAnalysis } from "./analysis.js";
import { blockAt, blockToSource, type PolicyBlock } from "./stack-index.js";

/** The qube name at `offset` outside policy blocks: a declaration key or a value that names a qube. */
export function qubeAt(a: TemplateAnalysis, offset: number): { name: string; span: Span; declaration: boolean } | undefined {
  for (const q of a.index.qubes) if (offset >= q.span.start && offset <= q.span.end) return { name: q.name, span: q.span, declaration: true };
  for (const r of a.index.references) if (offset >= r.span.start && offset <= r.span.end) return { name: r.value, span: r.span, declaration: false };
  return undefined;
}

/** The symbol (a qube or tag name) at `offset`, in YAML or inside a policy block. */
export function templateSymbolAt(a: TemplateAnalysis, offset: number): { kind: "qube" | "tag"; name: string; span: Span } | undefined {
  const inBlock = blockAt(a.index, offset);
  if (inBlock) {
    const doc = a.blockDocument(a.path, inBlock.block);
    const at = doc ? symbolAt(doc, inBlock.offset, { snapshot: a.policy(), path: a.blockPath(a.path, inBlock.block) }) : undefined;
    if (!at || (at.ref.kind !== "qube" && at.ref.kind !== "tag")) return undefined;
    return { kind: at.ref.kind, name: at.ref.name, span: { start: blockToSource(inBlock.block, at.span.start), end: blockToSource(inBlock.block, at.span.end) } };
  }
  const q = qubeAt(a, offset);
  if (q) return { kind: "qube", name: q.name, span: q.span };
  for (const q2 of a.index.qubes) for (const t of q2.tags) if (offset >= t.span.start && offset <= t.span.end) return { kind: "tag", name: t.value, span: t.span };
  for (const t of a.index.tagReferences) if (offset >= t.span.start && offset <= t.span.end) return { kind: "tag", name: t.value, span: t.span };
  return undefined;
}

/** Where a qube is declared in the stack (any of its files). */
export function qubeDeclarations(a: TemplateAnalysis, name: string): FileLocation[] {
  const out: FileLocation[] = [];
  for (const [path, idx] of a.files) for (const q of idx.qubes) if (q.name === name) out.push({ path, span: q.span });
  return out;
}

/** Where a bundle instance's qube is declared: the bundle's `${param}` key (go to definition only; rename edits the `with:` value). */
function bundleDeclaration(a: TemplateAnalysis, name: string): FileLocation[] {
  const q = a.bundleQubes.get(name);
  if (!q) return [];
  for (const [path, idx] of a.files) if (idx.qubes.includes(q)) return [{ path, span: q.span }];
  return [];
}

/** Go to definition at `offset`: the qube's declaration in the stack. */
export function templateDefinition(a: TemplateAnalysis, offset: number): FileLocation[] {
  const at = templateSymbolAt(a, offset);
  if (!at || at.kind !== "qube") return [];
  const declared = qubeDeclarations(a, at.name);
  return declared.length ? declared : bundleDeclaration(a, at.name);
}

/** Every occurrence of a qube or tag name in the stack's files and their policy blocks. */
export function templateReferences(a: TemplateAnalysis, offset: number, options: { includeDeclaration?: boolean } = {}): FileLocation[] {
  const at = templateSymbolAt(a, offset);
  if (!at) return [];
  return referencesTo(a, at.kind, at.name, options);
}

/** Every occurrence of a named qube or tag in the stack. */
export function referencesTo(a: TemplateAnalysis, kind: "qube" | "tag", name: string, options: { includeDeclaration?: boolean } = {}): FileLocation[] {
  const out: FileLocation[] = [];
  for (const [path, idx] of a.files) {
    for (const q of idx.qubes) {
      if (kind === "qube" && q.name === name && options.includeDeclaration !== false) out.push({ path, span: q.span });
      if (kind === "tag") for (const t of q.tags) if (t.value === name) out.push({ path, span: t.span });
    }
    if (kind === "qube") for (const r of idx.references) if (r.value === name) out.push({ path, span: r.span });
    if (kind === "tag") for (const r of idx.tagReferences) if (r.value === name) out.push({ path, span: r.span });
  }
  // Policy tokens: the blocks are files of the stack's own policy; map them back.
  const blocks = new Map<string, { file: string; block: PolicyBlock }>();
  for (const [file, idx] of a.files) for (const block of idx.policyBlocks) blocks.set(a.blockPath(file, block), { file, block });
  for (const loc of findReferences({ kind, name }, a.policy())) {
    const b = blocks.get(loc.path);
    if (!b) continue;
    out.push({ path: b.file, span: { start: blockToSource(b.block, loc.span.start), end: blockToSource(b.block, loc.span.end) } });
  }
  out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : x.span.start - y.span.start));
  return out.filter((l, i) => i === 0 || l.path !== out[i - 1]!.path || l.span.start !== out[i - 1]!.span.start);
}
