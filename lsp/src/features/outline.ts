/**
 * Document symbols and folding ranges: the file's outline; and the stack
 * files' part of the workspace symbols (declared qubes and the rules of their
 * `rules:` blocks), which `help.ts` adds to the policy's.
 */
import {
  FoldingRangeKind,
  SymbolKind,
  type DocumentSymbol as LspDocumentSymbol,
  type DocumentSymbolParams,
  type FoldingRange,
  type FoldingRangeParams,
  type SymbolInformation,
} from "vscode-languageserver";
import { documentSymbols, foldingRanges, templateWorkspaceSymbols, type DocumentSymbol } from "@qubes-kit/language";
import { mapperFor, toRange, type PositionMapper } from "../convert.js";
import { workspaceStacks } from "./rename.js";
import type { ServerContext, ServerFeature } from "./types.js";

/**
 * Workspace symbols of the workspace's stack files (and the bundles they
 * use): qubes (`Object`, at their key or the `with:` value naming them) and
 * rules (`Function`, at their line), with the stack file as the container.
 */
export function stackWorkspaceSymbols(ctx: ServerContext, query: string, limit: number): SymbolInformation[] {
  if (limit <= 0) return [];
  const mappers = new Map<string, PositionMapper | undefined>();
  const mapperOf = (path: string) => {
    if (!mappers.has(path)) {
      const open = ctx.documents.get(ctx.uriOf(path));
      const text = open ? undefined : ctx.host.fs.readFile(path);
      mappers.set(path, open ?? (text !== undefined ? mapperFor(text) : undefined));
    }
    return mappers.get(path);
  };
  const out: SymbolInformation[] = [];
  for (const s of templateWorkspaceSymbols(workspaceStacks(ctx), query, limit)) {
    const m = mapperOf(s.path);
    if (!m) continue;
    out.push({
      name: s.name,
      kind: s.kind === "rule" ? SymbolKind.Function : SymbolKind.Object,
      location: { uri: ctx.uriOf(s.path), range: toRange(m, s.span) },
      containerName: `${s.container} · ${s.detail}`,
    });
  }
  return out;
}

export const outlineFeature: ServerFeature = {
  name: "outline",
  capabilities: () => ({ documentSymbolProvider: true, foldingRangeProvider: true }),
  requests: (ctx) => [
    {
      method: "textDocument/documentSymbol",
      fallback: [],
      params: "textDocument",
      run(params: DocumentSymbolParams): LspDocumentSymbol[] {
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        const conv = (s: DocumentSymbol): LspDocumentSymbol => ({
          name: s.name,
          detail: s.detail,
          kind: s.kind === "rule" ? SymbolKind.Function : s.kind === "directive" ? SymbolKind.Module : SymbolKind.Namespace,
          range: toRange(c.td, s.span),
          selectionRange: toRange(c.td, s.selectionSpan),
          ...(s.children ? { children: s.children.map(conv) } : {}),
        });
        return documentSymbols(c.doc).map(conv);
      },
    },
    {
      method: "textDocument/foldingRange",
      fallback: [],
      params: "textDocument",
      run(params: FoldingRangeParams): FoldingRange[] {
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        return foldingRanges(c.doc).map((f) => ({
          startLine: c.td.positionAt(f.span.start).line,
          endLine: c.td.positionAt(f.span.end).line,
          kind: f.kind === "comment" ? FoldingRangeKind.Comment : FoldingRangeKind.Region,
        }));
      },
    },
  ],
};
