/** Code lenses: what each rule decides, with a command to simulate a call it decides. */
import type { CancellationToken, CodeLens, CodeLensParams } from "vscode-languageserver";
import { codeLenses } from "@qubes-kit/language";
import { toRange } from "../convert.js";
import { SIMULATE_RULE_COMMAND } from "../protocol.js";
import type { ServerFeature } from "./types.js";

export const lensFeature: ServerFeature = {
  name: "codeLens",
  capabilities: () => ({ codeLensProvider: { resolveProvider: false } }),
  requests: (ctx) => [
    {
      method: "textDocument/codeLens",
      fallback: [],
      params: "textDocument",
      async run(params: CodeLensParams, token: CancellationToken): Promise<CodeLens[]> {
        if (ctx.settings.codeLens === false) return [];
        const f = ctx.featureFor(params.textDocument.uri);
        if (f) return f.codeLens(params.textDocument.uri);
        if (!ctx.documents.get(params.textDocument.uri)) return [];
        const project = ctx.projectFor(params.textDocument.uri);
        // Lenses follow the last snapshot (they only name lines); the first one is waited for.
        const snapshot = project.lastSnapshot() ?? (await ctx.analysed(project, token));
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        const lenses: CodeLens[] = codeLenses(c.doc, { snapshot, path: c.path }).map((l) => ({
          range: toRange(c.td, { start: l.span.start, end: l.span.start }),
          // VS Code's extension runs this command itself (with prompts); in other editors the server runs it (`workspace/executeCommand`).
          command: { title: l.title, command: SIMULATE_RULE_COMMAND, arguments: [c.td.uri, l.line] },
        }));
        // "decided by N tests" from the policy test files that use this policy.
        return lenses.concat(ctx.testLenses(project, snapshot, c.path, { doc: c.doc, mapper: c.td }));
      },
    },
  ],
};
