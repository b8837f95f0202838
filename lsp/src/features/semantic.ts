/** Semantic tokens of a whole document. */
import { SemanticTokensBuilder, type SemanticTokens, type SemanticTokensParams } from "vscode-languageserver";
import { SEMANTIC_TOKEN_MODIFIERS, SEMANTIC_TOKEN_TYPES, semanticTokens } from "@qubes-kit/language";
import type { ServerFeature } from "./types.js";

export const semanticFeature: ServerFeature = {
  name: "semanticTokens",
  capabilities: () => ({
    semanticTokensProvider: {
      legend: { tokenTypes: [...SEMANTIC_TOKEN_TYPES], tokenModifiers: [...SEMANTIC_TOKEN_MODIFIERS] },
      full: true,
    },
  }),
  requests: (ctx) => [
    {
      method: "textDocument/semanticTokens/full",
      fallback: { data: [] },
      params: "textDocument",
      run(params: SemanticTokensParams): SemanticTokens {
        const f = ctx.featureFor(params.textDocument.uri);
        if (f) return f.semanticTokens(params.textDocument.uri);
        const c = ctx.context(params.textDocument.uri);
        if (!c) return { data: [] };
        const builder = new SemanticTokensBuilder();
        for (const t of semanticTokens(c.doc)) {
          const start = c.td.positionAt(t.span.start);
          const end = c.td.positionAt(t.span.end);
          if (end.line !== start.line) continue;
          let mods = 0;
          for (const m of t.modifiers) mods |= 1 << SEMANTIC_TOKEN_MODIFIERS.indexOf(m);
          builder.push(start.line, start.character, end.character - start.character, SEMANTIC_TOKEN_TYPES.indexOf(t.type), mods);
        }
        return builder.build();
      },
    },
  ],
};
