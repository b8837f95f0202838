/**
 * Semantic tokens: the whole document, or the edits since the client's last
 * result (`full/delta`). The last result is kept per open document, with a
 * result id of our own; a delta for any other id answers the full tokens.
 */
import {
  SemanticTokensBuilder,
  type SemanticTokens,
  type SemanticTokensDelta,
  type SemanticTokensDeltaParams,
  type SemanticTokensEdit,
  type SemanticTokensParams,
} from "vscode-languageserver";
import { SEMANTIC_TOKEN_MODIFIERS, SEMANTIC_TOKEN_TYPES, semanticTokens } from "@qubes-kit/language";
import type { ServerContext, ServerFeature } from "./types.js";

/** The edit turning `before` into `after`: one replacement of the part between their common prefix and suffix. */
export function tokenEdits(before: readonly number[], after: readonly number[]): SemanticTokensEdit[] {
  let start = 0;
  const min = Math.min(before.length, after.length);
  while (start < min && before[start] === after[start]) start++;
  if (start === before.length && start === after.length) return [];
  let endB = before.length;
  let endA = after.length;
  while (endB > start && endA > start && before[endB - 1] === after[endA - 1]) (endB--, endA--);
  return [{ start, deleteCount: endB - start, data: after.slice(start, endA) }];
}

/** The encoded tokens of an open policy document, or `undefined` when it is not one. */
function encode(ctx: ServerContext, uri: string): number[] | undefined {
  const c = ctx.context(uri);
  if (!c) return undefined;
  const builder = new SemanticTokensBuilder();
  for (const t of semanticTokens(c.doc)) {
    const start = c.td.positionAt(t.span.start);
    const end = c.td.positionAt(t.span.end);
    if (end.line !== start.line) continue;
    let mods = 0;
    for (const m of t.modifiers) mods |= 1 << SEMANTIC_TOKEN_MODIFIERS.indexOf(m);
    builder.push(start.line, start.character, end.character - start.character, SEMANTIC_TOKEN_TYPES.indexOf(t.type), mods);
  }
  return builder.build().data;
}

export const semanticFeature: ServerFeature = {
  name: "semanticTokens",
  capabilities: () => ({
    semanticTokensProvider: {
      legend: { tokenTypes: [...SEMANTIC_TOKEN_TYPES], tokenModifiers: [...SEMANTIC_TOKEN_MODIFIERS] },
      full: { delta: true },
    },
  }),
  requests: (ctx) => {
    const last = new Map<string, { id: string; data: number[] }>();
    let counter = 0;
    ctx.documents.onDidClose((e) => last.delete(e.document.uri));
    const remember = (uri: string, data: number[]): string => {
      const id = String(++counter);
      last.set(uri, { id, data });
      return id;
    };
    return [
      {
        method: "textDocument/semanticTokens/full",
        fallback: { data: [] },
        params: "textDocument",
        run(params: SemanticTokensParams): SemanticTokens {
          const f = ctx.featureFor(params.textDocument.uri);
          if (f) return f.semanticTokens(params.textDocument.uri);
          const data = encode(ctx, params.textDocument.uri);
          if (!data) return { data: [] };
          return { resultId: remember(params.textDocument.uri, data), data };
        },
      },
      {
        method: "textDocument/semanticTokens/full/delta",
        fallback: { data: [] },
        params: "textDocument",
        run(params: SemanticTokensDeltaParams): SemanticTokens | SemanticTokensDelta {
          const uri = params.textDocument.uri;
          const f = ctx.featureFor(uri);
          if (f) return f.semanticTokens(uri);
          const data = encode(ctx, uri);
          if (!data) return { data: [] };
          const prev = last.get(uri);
          const id = remember(uri, data);
          if (!prev || prev.id !== params.previousResultId) return { resultId: id, data };
          return { resultId: id, edits: tokenEdits(prev.data, data) };
        },
      },
    ];
  },
};
