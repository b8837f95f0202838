/** Document symbols and folding ranges: the file's outline. */
import { FoldingRangeKind, SymbolKind, type DocumentSymbol as LspDocumentSymbol, type DocumentSymbolParams, type FoldingRange, type FoldingRangeParams } from "vscode-languageserver";
import { documentSymbols, foldingRanges, type DocumentSymbol } from "@qubes-kit/language";
import { toRange } from "../convert.js";
import type { ServerFeature } from "./types.js";

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
