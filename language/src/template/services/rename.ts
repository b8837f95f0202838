/**
 * The stack files' part of a rename: every place a stack names the qube or
 * tag (declarations, values that name a qube, tags, and the policy tokens of
 * its `rules:` blocks). A quoted YAML scalar keeps its quotes; a value that
 * does not spell the name (`${param}` interpolations) is left alone.
 */
import type { Span } from "../../diagnostics.js";
import type { FileLocation } from "../../services/navigation.js";
import type { TemplateAnalysis } from "./analysis.js";
import { qubeDeclarations, referencesTo } from "./navigation.js";

/** An occurrence of a name in a stack file, as rename edits it and references list it. */
export interface TemplateOccurrence extends FileLocation {
  /** A qube's key under `qubes:` (left out of references without declarations). */
  declaration: boolean;
}

/**
 * Every occurrence of a qube or tag in the stack (its files, bundles and
 * policy blocks), at the name itself (inside quotes when quoted): the one
 * list both rename and find references use, so they agree.
 */
export function templateOccurrences(a: TemplateAnalysis, kind: "qube" | "tag", name: string, readFile: (path: string) => string | undefined): TemplateOccurrence[] {
  const out: TemplateOccurrence[] = [];
  const texts = new Map<string, string | undefined>();
  const textOf = (path: string) => {
    if (!texts.has(path)) texts.set(path, path === a.path ? a.text : readFile(path));
    return texts.get(path);
  };
  const declarations = new Set(kind === "qube" ? qubeDeclarations(a, name).map((l) => `${l.path}\0${l.span.start}`) : []);
  for (const l of referencesTo(a, kind, name, { includeDeclaration: true })) {
    const text = textOf(l.path);
    if (text === undefined) continue;
    const span = nameSpan(text, l.span, name);
    if (span) out.push({ path: l.path, span, declaration: declarations.has(`${l.path}\0${l.span.start}`) });
  }
  return out;
}

/** Where the name itself is written in each occurrence (inside quotes when quoted). */
export function templateRenameLocations(a: TemplateAnalysis, kind: "qube" | "tag", name: string, readFile: (path: string) => string | undefined): FileLocation[] {
  return templateOccurrences(a, kind, name, readFile).map(({ path, span }) => ({ path, span }));
}

/** The span of `name` in `text[span]`: the whole span, or its inside when quoted. */
function nameSpan(text: string, span: Span, name: string): Span | undefined {
  const written = text.slice(span.start, span.end);
  if (written === name) return span;
  const q = written[0];
  if ((q === '"' || q === "'") && written.endsWith(q!) && written.slice(1, -1) === name) return { start: span.start + 1, end: span.end - 1 };
  // A block's token or a key followed by its colon: the name must start the span.
  if (written.startsWith(name) && !/[A-Za-z0-9_.-]/.test(written[name.length] ?? "")) return { start: span.start, end: span.start + name.length };
  return undefined;
}

/** The qubes a stack declares (a rename onto one of them is refused). */
export function declaredQubes(a: TemplateAnalysis): string[] {
  const out: string[] = [];
  for (const idx of a.files.values()) for (const q of idx.qubes) out.push(q.name);
  for (const name of a.bundleQubes.keys()) out.push(name);
  return out;
}
