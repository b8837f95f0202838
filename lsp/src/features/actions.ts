/** Code actions: quick fixes and rewrites of the core, as workspace edits. */
import { CodeActionKind, type CancellationToken, type CodeAction as LspCodeAction, type CodeActionParams, type WorkspaceEdit } from "vscode-languageserver";
import { URI } from "vscode-uri";
import { codeActions } from "@qubes-kit/language";
import { toLspDiagnostic, toRange, toSpan } from "../convert.js";
import type { ServerFeature } from "./types.js";

export const actionsFeature: ServerFeature = {
  name: "codeAction",
  capabilities: () => ({ codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix, CodeActionKind.RefactorRewrite] } }),
  requests: (ctx) => [
    {
      method: "textDocument/codeAction",
      fallback: [],
      params: "textDocument",
      async run(params: CodeActionParams, token: CancellationToken): Promise<LspCodeAction[]> {
        const f = ctx.featureFor(params.textDocument.uri);
        if (f) return f.codeActions(params.textDocument.uri, params.range);
        if (!ctx.documents.get(params.textDocument.uri)) return [];
        const snapshot = await ctx.analysed(ctx.projectFor(params.textDocument.uri), token);
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        const diags = snapshot.diagnostics.get(c.path) ?? [];
        const span = toSpan(c.td, params.range);
        const canRename = ctx.clientCaps.workspace?.workspaceEdit?.resourceOperations?.includes("rename") === true;
        const out: LspCodeAction[] = [];
        for (const a of codeActions(c.doc, c.path, span, diags, { snapshot })) {
          let edit: WorkspaceEdit | undefined;
          if (a.rename) {
            if (!canRename) continue;
            const from = c.project.toDisk(a.rename.from);
            const to = c.project.toDisk(a.rename.to);
            if (from === null || to === null) continue;
            edit = { documentChanges: [{ kind: "rename", oldUri: ctx.uriOf(from), newUri: URI.file(to).toString() }] };
          } else if (a.edits) {
            const changes: NonNullable<WorkspaceEdit["changes"]> = {};
            for (const [path, edits] of Object.entries(a.edits)) {
              const disk = c.project.toDisk(path);
              if (disk === null) continue;
              const mapper = path === c.path ? c.td : ctx.mapperForPath(c.project, snapshot, disk);
              if (!mapper) continue;
              changes[path === c.path ? c.td.uri : ctx.uriOf(disk)] = edits.map((e) => ({ range: toRange(mapper, e.span), newText: e.newText }));
            }
            edit = { changes };
          }
          if (!edit) continue;
          out.push({
            title: a.title,
            kind: a.kind === "quickfix" ? CodeActionKind.QuickFix : CodeActionKind.RefactorRewrite,
            diagnostics: a.diagnostics.map((d) => toLspDiagnostic(c.td, d)),
            edit,
            ...(a.isPreferred ? { isPreferred: true } : {}),
          });
        }
        return out;
      },
    },
  ],
};
