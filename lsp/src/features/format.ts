/** Formatting of a whole document or a range. */
import type { DocumentFormattingParams, DocumentRangeFormattingParams, TextEdit } from "vscode-languageserver";
import { formatDocument } from "@qubes-kit/language";
import { toRange, toSpan } from "../convert.js";
import type { ServerFeature } from "./types.js";

export const formatFeature: ServerFeature = {
  name: "format",
  capabilities: () => ({ documentFormattingProvider: true, documentRangeFormattingProvider: true }),
  requests: (ctx) => [
    {
      method: "textDocument/formatting",
      fallback: [],
      params: "textDocument",
      run(params: DocumentFormattingParams): TextEdit[] {
        const f = ctx.featureFor(params.textDocument.uri);
        if (f) return f.format(params.textDocument.uri);
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        return formatDocument(c.doc).map((e) => ({ range: toRange(c.td, e.span), newText: e.newText }));
      },
    },
    {
      method: "textDocument/rangeFormatting",
      fallback: [],
      params: "textDocument",
      run(params: DocumentRangeFormattingParams): TextEdit[] {
        const f = ctx.featureFor(params.textDocument.uri);
        if (f) return f.format(params.textDocument.uri, params.range);
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        return formatDocument(c.doc, { range: toSpan(c.td, params.range) }).map((e) => ({ range: toRange(c.td, e.span), newText: e.newText }));
      },
    },
  ],
};
