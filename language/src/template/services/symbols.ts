/**
 * Workspace symbols of stack files: the qubes a stack declares (under
 * `qubes:`, and through bundle instances, where their names are written in
 * `with:`), and the rules of the embedded `rules: |` blocks, at the YAML key
 * or line that holds them. The policy's own files are `services/symbols.ts`.
 *
 * Pure; never throws.
 */
import type { Span } from "../../diagnostics.js";
import { fuzzy, workspaceSymbols } from "../../services/symbols.js";
import { resolveStackPath, type TemplateAnalysis } from "./analysis.js";
import { blockToSource, type StackIndex } from "./stack-index.js";

/** One symbol of a stack file. */
export interface TemplateWorkspaceSymbol {
  /** The qube's name, or the rule's service and argument. */
  name: string;
  /** The qube's class (and the bundle instance declaring it), or the rest of the rule in words. */
  detail: string;
  kind: "qube" | "rule";
  /** Absolute path of the stack (or bundle) file. */
  path: string;
  /** The qube's key (or the `with:` value naming a bundle's qube), or the rule's line. */
  span: Span;
  /** The stack file's name. */
  container: string;
}

const baseName = (p: string) => p.slice(p.lastIndexOf("/") + 1);

/** A bundle qube's name with the instance's parameters substituted, and the `with:` value that spells it when the name is one parameter. */
function instanceQubes(file: string, idx: StackIndex, files: ReadonlyMap<string, StackIndex>): Array<{ name: string; span: Span; detail: string }> {
  const out: Array<{ name: string; span: Span; detail: string }> = [];
  for (const use of idx.uses) {
    const bundle = use.bundle ? files.get(resolveStackPath(file, use.bundle.value)) : undefined;
    if (!bundle) continue;
    for (const q of bundle.qubes) {
      if (!q.name.includes("${")) continue;
      const name = q.name.replace(/\$\{([A-Za-z_][A-Za-z0-9_-]*)\}/g, (m, p: string) => use.with.get(p)?.value ?? bundle.params.get(p)?.default ?? m);
      if (name.includes("${")) continue;
      const only = /^\$\{([A-Za-z_][A-Za-z0-9_-]*)\}$/.exec(q.name);
      const span = (only && use.with.get(only[1]!)?.span) ?? use.as?.span ?? use.bundle?.span ?? use.span;
      const via = `bundle ${bundle.stack ?? use.bundle?.value ?? "?"}${use.as ? ` as ${use.as.value}` : ""}`;
      out.push({ name, span, detail: `${q.class ?? "AppVM"} · ${via}` });
    }
  }
  return out;
}

/**
 * The workspace symbols of the stacks `analyses` reach (each file once, in
 * path order) whose name (or rule line, or file name) contains `query`
 * (case-insensitive; the characters of the query in order also match a name),
 * at most `limit` of them.
 */
export function templateWorkspaceSymbols(analyses: Iterable<TemplateAnalysis>, query: string, limit = 1000): TemplateWorkspaceSymbol[] {
  const byPath = new Map<string, { a: TemplateAnalysis; idx: StackIndex }>();
  for (const a of analyses) for (const [path, idx] of a.files) if (!byPath.has(path)) byPath.set(path, { a, idx });
  const q = query.toLowerCase();
  const matches = (name: string, container: string) => !q || name.toLowerCase().includes(q) || container.toLowerCase().includes(q) || fuzzy(query, name);
  const out: TemplateWorkspaceSymbol[] = [];
  for (const path of [...byPath.keys()].sort()) {
    const { a, idx } = byPath.get(path)!;
    const container = baseName(path);
    const qubes: TemplateWorkspaceSymbol[] = [];
    for (const qb of idx.qubes) if (!qb.name.includes("${")) qubes.push({ name: qb.name, detail: qb.class ?? "AppVM", kind: "qube", path, span: qb.span, container });
    for (const iq of instanceQubes(path, idx, a.files)) qubes.push({ ...iq, kind: "qube", path, container });
    const rules: TemplateWorkspaceSymbol[] = [];
    for (const block of idx.policyBlocks) {
      const doc = a.blockDocument(path, block);
      if (!doc) continue;
      for (const s of workspaceSymbols([[a.blockPath(path, block), doc]], query, limit)) {
        if (s.kind !== "rule") continue;
        rules.push({ name: s.name, detail: s.detail, kind: "rule", path, span: { start: blockToSource(block, s.span.start), end: blockToSource(block, s.span.end) }, container });
      }
    }
    for (const s of [...qubes.filter((x) => matches(x.name, container)), ...rules].sort((x, y) => x.span.start - y.span.start)) {
      out.push(s);
      if (out.length >= limit) return out;
    }
  }
  return out;
}
