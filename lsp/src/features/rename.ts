/**
 * Rename a qube or a tag across every policy file of the project and every
 * stack file (`*.qubes.yaml`) of the workspace, with `prepareRename`: the
 * names are checked by the language core (`services/rename.ts`) and a refusal
 * answers an error the editor shows (`InvalidRequest` with its one-line message).
 */
import {
  ErrorCodes,
  ResponseError,
  type CancellationToken,
  type PrepareRenameParams,
  type Range,
  type RenameParams,
  type TextEdit as LspTextEdit,
  type WorkspaceEdit,
} from "vscode-languageserver";
import {
  analyzeTemplate,
  declaredQubes,
  findReferences,
  isRenameRefusal,
  prepareRename,
  renameError,
  renameTargetOf,
  templateOccurrences,
  templateSymbolAt,
  type PolicySnapshot,
  type RenameRefusal,
  type RenameTarget,
  type TemplateAnalysis,
} from "@qubes-kit/language";
import { mapperFor, toRange, type PositionMapper } from "../convert.js";
import type { PolicyProject } from "../project.js";
import { isTemplatePath } from "../template/feature.js";
import type { ServerContext, ServerFeature } from "./types.js";

/** Refuses with the core's message; the editor shows it. */
function refuse(r: RenameRefusal): never {
  throw new ResponseError(ErrorCodes.InvalidRequest, r.message, { code: r.code });
}

/** The rename target at a position, in a policy or a stack file. */
function targetAt(ctx: ServerContext, uri: string, position: { line: number; character: number }): { target: RenameTarget; mapper: PositionMapper } | RenameRefusal | undefined {
  const td = ctx.documents.get(uri);
  if (!td) return undefined;
  const offset = td.offsetAt(position);
  const f = ctx.featureFor(uri);
  if (f) {
    const a = f.analysis(uri);
    const at = a ? templateSymbolAt(a, offset) : undefined;
    if (!at) {
      // The service of an `expect:` call is refused as in a policy rule.
      const svc = a?.index.expectServices.find((x) => offset >= x.span.start && offset <= x.span.end);
      if (svc) return renameTargetOf("service", svc.value, svc.span, svc.value) as RenameRefusal;
      return { code: "rename-not-a-name", message: "only a qube name or a tag can be renamed here; put the cursor on one" };
    }
    // A bundle's `${param}` stands for whatever each instance gives: the name is the value in `with:` (or the default).
    if (at.name.includes("${")) {
      return { code: "rename-not-a-name", message: `\`${at.name}\` is a bundle parameter, not a ${at.kind === "tag" ? "tag" : "qube name"}: rename the value given to it in \`with:\` or its default` };
    }
    // A quoted scalar: the name is inside the quotes.
    let span = at.span;
    const written = td.getText().slice(span.start, span.end);
    if (/^(["']).*\1$/.test(written)) span = { start: span.start + 1, end: span.end - 1 };
    const t = renameTargetOf(at.kind, at.name, span, at.name);
    return isRenameRefusal(t) ? t : { target: t, mapper: td };
  }
  const c = ctx.context(uri);
  if (!c) return undefined;
  const snapshot = c.project.lastSnapshot();
  const t = prepareRename(c.doc, offset, { ...(snapshot ? { snapshot } : {}), path: c.path });
  return isRenameRefusal(t) ? t : { target: t, mapper: td };
}

/** Stack files of the workspace: the open ones and those found under the workspace folders (bounded walk). */
export function workspaceStackFiles(ctx: ServerContext, limit = 5000): string[] {
  const found = new Set<string>();
  for (const d of ctx.documents.all()) if (isTemplatePath(d.uri)) found.add(ctx.pathOfUri(d.uri));
  let visited = 0;
  const walk = (dir: string, depth: number) => {
    if (depth > 8 || visited > limit) return;
    for (const name of ctx.host.fs.readDir(dir) ?? []) {
      if (++visited > limit) return;
      if (name.startsWith(".") || name === "node_modules") continue;
      const p = `${dir === "/" ? "" : dir}/${name}`;
      if (isTemplatePath(name)) {
        if (ctx.host.fs.stat(p) === "file") found.add(p);
      } else if (ctx.host.fs.stat(p) === "dir") walk(p, depth + 1);
    }
  };
  for (const folder of ctx.folders) walk(folder, 0);
  return [...found].sort();
}

/** An analysis of a closed stack file, with every file it read (and what it read) to tell when it is stale. */
interface CachedStack {
  analysis: TemplateAnalysis;
  reads: Map<string, string | undefined>;
  system: unknown;
}
const closedStacks = new WeakMap<ServerContext, Map<string, CachedStack>>();

/**
 * The stack files of the workspace, analysed: open ones through their
 * feature (which caches them), closed ones cached here until a file they read
 * (the stack, its includes and bundles, or one they looked for) changes or the
 * system model does.
 */
export function workspaceStacks(ctx: ServerContext): TemplateAnalysis[] {
  const stacks: TemplateAnalysis[] = [];
  const readFile = stackReader(ctx);
  let cache = closedStacks.get(ctx);
  if (!cache) closedStacks.set(ctx, (cache = new Map()));
  const paths = workspaceStackFiles(ctx);
  const live = new Set(paths);
  for (const p of [...cache.keys()]) if (!live.has(p)) cache.delete(p);
  for (const path of paths) {
    const u = ctx.uriOf(path);
    if (ctx.documents.get(u)) {
      const a = ctx.featureFor(u)?.analysis(u);
      if (a) stacks.push(a);
      continue;
    }
    const hit = cache.get(path);
    if (hit && hit.system === ctx.system && [...hit.reads].every(([p, t]) => readFile(p) === t)) {
      stacks.push(hit.analysis);
      continue;
    }
    const text = readFile(path);
    if (text === undefined) continue;
    const reads = new Map<string, string | undefined>([[path, text]]);
    const recording = (p: string) => {
      const t = readFile(p);
      reads.set(p, t);
      return t;
    };
    const analysis = analyzeTemplate(path, text, { system: ctx.system, readFile: recording });
    cache.set(path, { analysis, reads, system: ctx.system });
    stacks.push(analysis);
  }
  return stacks;
}

/** Reads a file as the editor has it (open documents first). */
function stackReader(ctx: ServerContext): (p: string) => string | undefined {
  return (p: string) => ctx.documents.get(ctx.uriOf(p))?.getText() ?? ctx.host.fs.readFile(p);
}

/** One place a qube or tag is named: what rename edits and references list. */
export interface SymbolOccurrence {
  uri: string;
  range: Range;
  /** A qube's key under `qubes:` of a stack. */
  declaration: boolean;
}

/**
 * Every occurrence of a qube or tag, seen from the document `uri`: the files
 * of its policy (for a stack file, the `policy.d` next to it), and every stack
 * file of the workspace with its bundles and `rules:` blocks. Rename edits
 * exactly these ranges and find references lists exactly these locations.
 */
export async function symbolOccurrences(
  ctx: ServerContext,
  uri: string,
  target: { kind: "qube" | "tag"; name: string },
  token: CancellationToken,
): Promise<{ occurrences: SymbolOccurrence[]; stacks: TemplateAnalysis[]; snapshot: PolicySnapshot | undefined }> {
  const disk = ctx.pathOfUri(uri);
  const project: PolicyProject | undefined = ctx.featureFor(uri) ? ctx.workspacePolicyFor(disk) : ctx.projectFor(uri);
  const snapshot: PolicySnapshot | undefined = project ? await ctx.analysed(project, token) : undefined;
  const stacks = workspaceStacks(ctx);
  const readFile = stackReader(ctx);
  const occurrences: SymbolOccurrence[] = [];
  const seen = new Set<string>();
  const add = (u: string, range: Range, declaration: boolean) => {
    const key = `${u}\0${range.start.line}:${range.start.character}`;
    if (seen.has(key)) return;
    seen.add(key);
    occurrences.push({ uri: u, range, declaration });
  };
  // The policy's files (the open document as the editor has it).
  if (project && snapshot) {
    const c = ctx.featureFor(uri) ? undefined : ctx.context(uri);
    for (const l of findReferences(target, snapshot, c ? { path: c.path, document: c.doc } : undefined)) {
      if (c && l.path === c.path) {
        add(c.td.uri, toRange(c.td, l.span), false);
        continue;
      }
      const d = project.toDisk(l.path);
      if (d === null) continue;
      const mapper = ctx.mapperForPath(project, snapshot, d);
      if (mapper) add(ctx.uriOf(d), toRange(mapper, l.span), false);
    }
  }
  // Every stack file (and the files it includes).
  const mappers = new Map<string, PositionMapper | undefined>();
  const mapperOf = (path: string) => {
    if (!mappers.has(path)) {
      const open = ctx.documents.get(ctx.uriOf(path));
      const text = open ? undefined : readFile(path);
      mappers.set(path, open ?? (text !== undefined ? mapperFor(text) : undefined));
    }
    return mappers.get(path);
  };
  for (const a of stacks) {
    for (const l of templateOccurrences(a, target.kind, target.name, readFile)) {
      const mapper = mapperOf(l.path);
      if (mapper) add(ctx.uriOf(l.path), toRange(mapper, l.span), l.declaration);
    }
  }
  return { occurrences, stacks, snapshot };
}

/** The workspace edit of a rename (policy files of `project`, and every stack file). */
async function renameEdit(ctx: ServerContext, uri: string, target: RenameTarget, newName: string, token: CancellationToken): Promise<WorkspaceEdit> {
  const { occurrences, stacks, snapshot } = await symbolOccurrences(ctx, uri, target, token);
  // The stacks' declared qubes also count as existing.
  const existing = new Set<string>();
  for (const k of ctx.system?.domains.keys() ?? []) if (!k.startsWith("uuid:")) existing.add(k);
  for (const a of stacks) for (const q of declaredQubes(a)) existing.add(q);
  const inPolicy = target.kind === "qube" && snapshot !== undefined && findReferences({ kind: "qube", name: newName }, snapshot).length > 0;
  const err = renameError(target, newName, { existing, inPolicy });
  if (err) refuse(err);
  const changes: Record<string, LspTextEdit[]> = {};
  for (const o of occurrences) (changes[o.uri] ??= []).push({ range: o.range, newText: newName });
  for (const list of Object.values(changes)) list.sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
  return { changes };
}

export const renameFeature: ServerFeature = {
  name: "rename",
  capabilities: () => ({ renameProvider: { prepareProvider: true } }),
  requests: (ctx) => [
    {
      method: "textDocument/prepareRename",
      fallback: null,
      params: "position",
      run(params: PrepareRenameParams): { range: Range; placeholder: string } | null {
        const t = targetAt(ctx, params.textDocument.uri, params.position);
        if (!t) return null;
        if ("code" in t) refuse(t);
        return { range: toRange(t.mapper, t.target.span), placeholder: t.target.name };
      },
    },
    {
      method: "textDocument/rename",
      fallback: null,
      params: "position",
      async run(params: RenameParams, token: CancellationToken): Promise<WorkspaceEdit | null> {
        if (typeof params.newName !== "string") throw new ResponseError(ErrorCodes.InvalidParams, "`newName` must be a string");
        const t = targetAt(ctx, params.textDocument.uri, params.position);
        if (!t) return null;
        if ("code" in t) refuse(t);
        return renameEdit(ctx, params.textDocument.uri, t.target, params.newName.trim(), token);
      },
    },
  ],
};
