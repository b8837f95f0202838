/** Completion: the cursor's line parsed alone, answered from the last snapshot at once. */
import { InsertTextFormat, MarkupKind, type CompletionItem as LspCompletionItem, type CompletionParams } from "vscode-languageserver";
import { complete } from "@qubes-kit/language";
import { COMPLETION_KIND, toRange } from "../convert.js";
import type { ServerFeature } from "./types.js";

export const completionFeature: ServerFeature = {
  name: "completion",
  capabilities: () => ({ completionProvider: { triggerCharacters: ["@", ":", "=", "!", "."], resolveProvider: false } }),
  requests: (ctx) => [
    {
      method: "textDocument/completion",
      fallback: [],
      params: "position",
      run(params: CompletionParams): LspCompletionItem[] | Promise<LspCompletionItem[]> {
        const f = ctx.featureFor(params.textDocument.uri);
        if (f) return f.completion(params);
        const c = ctx.lineContext(params.textDocument.uri, params.position);
        if (!c) return [];
        const snapshot = ctx.completionSnapshot(c.project) ?? c.project.lastSnapshot();
        const shift = (span: { start: number; end: number }) => ({ start: span.start + c.lineStart, end: span.end + c.lineStart });
        return complete(c.doc, c.offset, snapshot ? { snapshot } : {}).map((item): LspCompletionItem => {
          item = { ...item, span: shift(item.span) };
          const out: LspCompletionItem = {
            label: item.label,
            kind: COMPLETION_KIND[item.kind],
            textEdit: { range: toRange(c.td, item.span), newText: item.insertText ?? item.label },
            insertTextFormat: InsertTextFormat.PlainText,
          };
          if (item.detail) out.detail = item.detail;
          if (item.documentation) out.documentation = { kind: MarkupKind.Markdown, value: item.documentation };
          if (item.filterText) out.filterText = item.filterText;
          if (item.sortText) out.sortText = item.sortText;
          if (item.retrigger && ctx.retriggerCommand) out.command = { title: "suggest", command: "editor.action.triggerSuggest" };
          return out;
        });
      },
    },
  ],
};
