/**
 * Help while writing: document highlight, document links on include paths,
 * signature help for action parameters, inlay hints and workspace symbols
 * (the policy's rules and directives, and the stack files' qubes and rules).
 */
import {
  DocumentHighlightKind,
  InlayHintKind,
  SymbolKind,
  type CancellationToken,
  type DocumentHighlight,
  type DocumentHighlightParams,
  type DocumentLink,
  type DocumentLinkParams,
  type InlayHint,
  type InlayHintParams,
  type SignatureHelp,
  type SignatureHelpParams,
  type SymbolInformation,
  type WorkspaceSymbolParams,
} from "vscode-languageserver";
import { URI } from "vscode-uri";
import { documentHighlights, documentLinks, inlayHints, signatureHelp, workspaceSymbols, type PolicyDocument } from "@qubes-kit/language";
import { toRange, toSpan } from "../convert.js";
import { stackWorkspaceSymbols } from "./outline.js";
import type { ServerFeature } from "./types.js";

export const helpFeature: ServerFeature = {
  name: "help",
  capabilities: () => ({
    documentHighlightProvider: true,
    documentLinkProvider: { resolveProvider: false },
    signatureHelpProvider: { triggerCharacters: [" ", "="], retriggerCharacters: [" ", "=", ","] },
    inlayHintProvider: { resolveProvider: false },
    workspaceSymbolProvider: true,
  }),
  requests: (ctx) => [
    {
      method: "textDocument/documentHighlight",
      fallback: [],
      params: "position",
      run(params: DocumentHighlightParams): DocumentHighlight[] {
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        const snapshot = c.project.lastSnapshot();
        return documentHighlights(c.doc, c.td.offsetAt(params.position), { ...(snapshot ? { snapshot } : {}), path: c.path }).map((h) => ({
          range: toRange(c.td, h.span),
          kind: h.kind === "write" ? DocumentHighlightKind.Write : h.kind === "read" ? DocumentHighlightKind.Read : DocumentHighlightKind.Text,
        }));
      },
    },
    {
      method: "textDocument/documentLink",
      fallback: [],
      params: "textDocument",
      async run(params: DocumentLinkParams, token: CancellationToken): Promise<DocumentLink[]> {
        if (!ctx.documents.get(params.textDocument.uri) || ctx.featureFor(params.textDocument.uri)) return [];
        const project = ctx.projectFor(params.textDocument.uri);
        const snapshot = project.lastSnapshot() ?? (await ctx.analysed(project, token));
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        const out: DocumentLink[] = [];
        for (const l of documentLinks(c.doc, c.path, snapshot)) {
          const disk = c.project.toDisk(l.target);
          if (disk === null) continue;
          out.push({ range: toRange(c.td, l.span), target: l.kind === "file" ? ctx.uriOf(disk) : URI.file(disk).toString(), tooltip: l.tooltip });
        }
        return out;
      },
    },
    {
      method: "textDocument/signatureHelp",
      fallback: null,
      params: "position",
      run(params: SignatureHelpParams): SignatureHelp | null {
        const c = ctx.lineContext(params.textDocument.uri, params.position);
        if (!c || ctx.featureFor(params.textDocument.uri)) return null;
        const s = signatureHelp(c.doc, c.offset);
        if (!s) return null;
        return {
          signatures: [
            {
              label: s.label,
              documentation: { kind: "markdown", value: s.documentation },
              parameters: s.parameters.map((p) => ({ label: p.label, documentation: { kind: "markdown", value: p.documentation } })),
            },
          ],
          activeSignature: 0,
          // LSP reads an active parameter outside the list as the first one: none active is the first.
          activeParameter: Math.max(0, s.activeParameter),
        };
      },
    },
    {
      method: "textDocument/inlayHint",
      fallback: [],
      params: "textDocument",
      async run(params: InlayHintParams, token: CancellationToken): Promise<InlayHint[]> {
        if (!ctx.documents.get(params.textDocument.uri) || ctx.featureFor(params.textDocument.uri)) return [];
        const project = ctx.projectFor(params.textDocument.uri);
        const snapshot = project.lastSnapshot() ?? (await ctx.analysed(project, token));
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        const range = params.range ? toSpan(c.td, params.range) : undefined;
        return inlayHints(c.doc, { snapshot, path: c.path, ...(range ? { range } : {}) }).map((h) => ({
          position: c.td.positionAt(h.offset),
          label: h.label,
          ...(h.kind === "type" ? { kind: InlayHintKind.Type } : {}),
          tooltip: { kind: "markdown", value: h.tooltip },
          paddingLeft: h.kind === "note",
        }));
      },
    },
    {
      method: "workspace/symbol",
      fallback: [],
      params: "object",
      async run(params: WorkspaceSymbolParams, token: CancellationToken): Promise<SymbolInformation[]> {
        const query = typeof params.query === "string" ? params.query : "";
        const out: SymbolInformation[] = [];
        const seen = new Set<string>();
        for (const project of [...ctx.projects()]) {
          const snapshot = await ctx.analysed(project, token);
          const docs: Array<[string, PolicyDocument]> = [];
          for (const p of snapshot.files.keys()) {
            const d = snapshot.document(p);
            if (d) docs.push([p, d]);
          }
          for (const s of workspaceSymbols(docs, query, 1000 - out.length)) {
            const loc = ctx.locationOf(project, snapshot, s.path, s.span);
            if (!loc || seen.has(`${loc.uri}:${loc.range.start.line}`)) continue;
            seen.add(`${loc.uri}:${loc.range.start.line}`);
            out.push({ name: s.name, kind: s.kind === "rule" ? SymbolKind.Function : SymbolKind.Module, location: loc, containerName: `${s.container} · ${s.detail}` });
          }
          if (out.length >= 1000) break;
        }
        // Stack files: their qubes and the rules of their `rules:` blocks.
        out.push(...stackWorkspaceSymbols(ctx, query, 1000 - out.length));
        return out;
      },
    },
  ],
};
