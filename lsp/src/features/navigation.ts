/** Go to definition and find references, across every file of the policy. */
import type { CancellationToken, DefinitionParams, Location, ReferenceParams } from "vscode-languageserver";
import { URI } from "vscode-uri";
import { definition, references, symbolAt } from "@qubes-kit/language";
import { mapperFor, toRange } from "../convert.js";
import type { ServerFeature } from "./types.js";

export const navigationFeature: ServerFeature = {
  name: "navigation",
  capabilities: () => ({ definitionProvider: true, referencesProvider: true }),
  requests: (ctx) => [
    {
      method: "textDocument/definition",
      fallback: [],
      params: "position",
      async run(params: DefinitionParams, token: CancellationToken): Promise<Location[]> {
        const f = ctx.featureFor(params.textDocument.uri);
        if (f) return f.definition(params);
        if (!ctx.documents.get(params.textDocument.uri)) return [];
        const snapshot = await ctx.analysed(ctx.projectFor(params.textDocument.uri), token);
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        const offset = c.td.offsetAt(params.position);
        const found = definition(c.doc, offset, { snapshot, path: c.path })
          .map((l) => ctx.locationOf(c.project, snapshot, l.path, l.span))
          .filter((l): l is Location => l !== undefined);
        if (found.length) return found;
        // A qube name goes to its entry in the system model snapshot file, when that is the source.
        const at = symbolAt(c.doc, offset, { snapshot, path: c.path });
        const systemFile = ctx.systemFilePath;
        if (at?.ref.kind !== "qube" || ctx.settings.system?.source !== "file" || !systemFile) return [];
        const text = ctx.host.fs.readFile(systemFile);
        const key = text?.indexOf(JSON.stringify(at.ref.name) + ":") ?? -1;
        const i = key >= 0 ? key : (text?.indexOf(JSON.stringify(at.ref.name) + " :") ?? -1);
        if (!text || i < 0) return [];
        const m = mapperFor(text);
        return [{ uri: URI.file(systemFile).toString(), range: toRange(m, { start: i, end: i + JSON.stringify(at.ref.name).length }) }];
      },
    },
    {
      method: "textDocument/references",
      fallback: [],
      params: "position",
      async run(params: ReferenceParams, token: CancellationToken): Promise<Location[]> {
        const f = ctx.featureFor(params.textDocument.uri);
        if (f) return f.references(params);
        if (!ctx.documents.get(params.textDocument.uri)) return [];
        const snapshot = await ctx.analysed(ctx.projectFor(params.textDocument.uri), token);
        const c = ctx.context(params.textDocument.uri);
        if (!c) return [];
        const offset = c.td.offsetAt(params.position);
        return references(c.doc, offset, { snapshot, path: c.path })
          .map((l) => (l.path === c.path ? { uri: c.td.uri, range: toRange(c.td, l.span) } : ctx.locationOf(c.project, snapshot, l.path, l.span)))
          .filter((l): l is Location => l !== undefined);
      },
    },
  ],
};
