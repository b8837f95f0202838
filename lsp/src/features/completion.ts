/**
 * Completion: the cursor's line parsed alone, answered from the last snapshot at once.
 *
 * An answer is sent after nearly every key, so each item carries only what the list needs:
 * no `insertTextFormat` (plain text is the default), no `filterText` or edit text equal to the
 * label, the edit range once for the whole list (`itemDefaults.editRange`) when the client takes
 * list defaults, and the documentation only on `completionItem/resolve` when the client resolves
 * it (`completionItem.resolveSupport` lists `documentation`); other clients get it in the item.
 */
import { MarkupKind, type CompletionItem as LspCompletionItem, type CompletionList, type CompletionParams, type Range } from "vscode-languageserver";
import { complete, type CompletionContext, type PolicyDocument } from "@qubes-kit/language";
import type { TextDocument } from "vscode-languageserver-textdocument";
import { COMPLETION_KIND, toRange } from "../convert.js";
import type { RequestHandler, ServerContext, ServerFeature } from "./types.js";

/** At most this many documentation texts are numbered for resolve (they are static text: actions, parameters, directives). */
const MAX_DOCS = 4096;

const sameRange = (a: Range, b: Range) =>
  a.start.line === b.start.line && a.start.character === b.start.character && a.end.line === b.end.line && a.end.character === b.end.character;

/**
 * What completion needs of the server: the client's capabilities, the cursor's line and what to
 * complete from. The server core gives it; so does the stdio front (`threads.ts`), which answers
 * completion on its own thread from the data the analysis thread sends it (`P` is its project key).
 */
export interface CompletionHost<P> {
  readonly clientCaps: ServerContext["clientCaps"];
  readonly retriggerCommand: boolean;
  featureFor: ServerContext["featureFor"];
  lineContext(uri: string, position: { line: number; character: number }): { td: TextDocument; project: P; doc: PolicyDocument; lineStart: number; offset: number } | undefined;
  /** What completion answers from for a project (its vocabulary built, or the last snapshot). */
  completionContext(project: P): CompletionContext;
}

export const completionFeature: ServerFeature = {
  name: "completion",
  capabilities: () => ({ completionProvider: { triggerCharacters: ["@", ":", "=", "!", "."], resolveProvider: true } }),
  requests: (ctx) => completionRequests(ctx),
};

/** The `textDocument/completion` and `completionItem/resolve` handlers over a {@link CompletionHost}. */
export function completionRequests<P>(ctx: CompletionHost<P>): RequestHandler[] {
  {
    // Documentation texts by number; an item to be resolved carries `data: { doc: number }`.
    const docs: string[] = [];
    const docNumbers = new Map<string, number>();
    const docNumber = (text: string): number | undefined => {
      let n = docNumbers.get(text);
      if (n === undefined && docs.length < MAX_DOCS) {
        n = docs.push(text) - 1;
        docNumbers.set(text, n);
      }
      return n;
    };
    const lazyDocs = () => ctx.clientCaps.textDocument?.completion?.completionItem?.resolveSupport?.properties?.includes("documentation") === true;
    const listDefaults = () => ctx.clientCaps.textDocument?.completion?.completionList?.itemDefaults?.includes("editRange") === true;
    return [
      {
        method: "textDocument/completion",
        fallback: [],
        params: "position",
        run(params: CompletionParams): LspCompletionItem[] | CompletionList | Promise<LspCompletionItem[]> {
          const f = ctx.featureFor(params.textDocument.uri);
          if (f) return f.completion(params);
          const c = ctx.lineContext(params.textDocument.uri, params.position);
          if (!c) return [];
          const found = complete(c.doc, c.offset, ctx.completionContext(c.project));
          const lazy = lazyDocs();
          // The list's edit range: the first item's (every item but a parameter key followed by a value shares it).
          const first = found[0];
          const editRange = first && listDefaults() ? toRange(c.td, { start: first.span.start + c.lineStart, end: first.span.end + c.lineStart }) : undefined;
          let last: { start: number; end: number; range: Range } | undefined;
          const items = found.map((item): LspCompletionItem => {
            // Items of one answer share their span object: converted once.
            if (last?.start !== item.span.start || last.end !== item.span.end) {
              last = { start: item.span.start, end: item.span.end, range: toRange(c.td, { start: item.span.start + c.lineStart, end: item.span.end + c.lineStart }) };
            }
            const range = last.range;
            const text = item.insertText ?? item.label;
            const out: LspCompletionItem = { label: item.label, kind: COMPLETION_KIND[item.kind] };
            if (item.detail) out.detail = item.detail;
            if (!editRange || !sameRange(range, editRange)) out.textEdit = { range, newText: text };
            else if (text !== item.label) out.textEditText = text;
            if (item.filterText && item.filterText !== item.label) out.filterText = item.filterText;
            if (item.sortText) out.sortText = item.sortText;
            if (item.documentation) {
              const n = lazy ? docNumber(item.documentation) : undefined;
              if (n !== undefined) out.data = { doc: n };
              else out.documentation = { kind: MarkupKind.Markdown, value: item.documentation };
            }
            if (item.retrigger && ctx.retriggerCommand) out.command = { title: "suggest", command: "editor.action.triggerSuggest" };
            return out;
          });
          return editRange ? { isIncomplete: false, itemDefaults: { editRange }, items } : items;
        },
      },
      {
        method: "completionItem/resolve",
        fallback: null,
        params: "object",
        run(item: LspCompletionItem): LspCompletionItem {
          // An item of ours with a documentation number gets its text; any other item comes back as it is.
          const data = item.data as { doc?: unknown } | null | undefined;
          const n = typeof data === "object" && data !== null ? data.doc : undefined;
          if (item.documentation !== undefined || typeof n !== "number" || !Number.isInteger(n) || n < 0 || n >= docs.length) return item;
          return { ...item, documentation: { kind: MarkupKind.Markdown, value: docs[n]! } };
        },
      },
    ];
  }
}
