/**
 * Go to definition and find references, across every file of the policy.
 * Definition: an include path opens the file; a service lists its rules in
 * every file (and its implementation under `/etc/qubes-rpc` when the policy's
 * file system has it); a qube or `@dispvm:NAME` goes to its entry in the
 * system model file, a tag (or `@type:`) to the entries of the qubes that
 * carry it (are of it).
 * References of a qube or tag are the places a rename edits: the policy's
 * files and every stack file of the workspace (`rename.ts`), whichever kind
 * of file the search starts in.
 */
import type { CancellationToken, DefinitionParams, Location, ReferenceParams } from "vscode-languageserver";
import { URI } from "vscode-uri";
import { definition, qubesMatching, references, serviceDefinitions, symbolAt, templateSymbolAt } from "@qubes-kit/language";
import { mapperFor, toRange } from "../convert.js";
import { symbolOccurrences } from "./rename.js";
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
        const at = symbolAt(c.doc, offset, { snapshot, path: c.path });
        if (!at) return [];
        // A service: its implementation in /etc/qubes-rpc when known, and its rules in every file.
        if (at.ref.kind === "service") {
          return serviceDefinitions(at.ref.name, snapshot, { path: c.path, document: c.doc })
            .map((l) => (l.path === c.path ? { uri: c.td.uri, range: toRange(c.td, l.span) } : ctx.locationOf(c.project, snapshot, l.path, l.span)))
            .filter((l): l is Location => l !== undefined);
        }
        // A qube (also `@dispvm:NAME`) goes to its entry in the system model file; a tag or type to the entries of its qubes.
        const systemFile = ctx.systemFilePath;
        if (ctx.settings.system?.source !== "file" || !systemFile || !ctx.system) return [];
        const ref = at.ref;
        const names =
          ref.kind === "qube" ? [ref.name] : ref.kind === "tag" || ref.kind === "type" ? qubesMatching({ kind: ref.kind, text: `@${ref.kind}:${ref.name}`, value: ref.name }, ctx.system) : [];
        const text = ctx.host.fs.readFile(systemFile);
        if (!text || !names.length) return [];
        const m = mapperFor(text);
        const out: Location[] = [];
        for (const name of names) {
          const key = JSON.stringify(name);
          const i = [`${key}:`, `${key} :`].map((k) => text.indexOf(k)).find((x) => x >= 0);
          if (i !== undefined) out.push({ uri: URI.file(systemFile).toString(), range: toRange(m, { start: i, end: i + key.length }) });
        }
        return out;
      },
    },
    {
      method: "textDocument/references",
      fallback: [],
      params: "position",
      async run(params: ReferenceParams, token: CancellationToken): Promise<Location[]> {
        const uri = params.textDocument.uri;
        const withDeclarations = params.context?.includeDeclaration !== false;
        // Qubes and tags: exactly the places a rename edits (policy files and every stack file of the workspace).
        const named = async (at: { kind: string; name: string } | undefined): Promise<Location[] | undefined> => {
          if (!at || (at.kind !== "qube" && at.kind !== "tag")) return undefined;
          const { occurrences } = await symbolOccurrences(ctx, uri, { kind: at.kind, name: at.name }, token);
          return occurrences.filter((o) => withDeclarations || !o.declaration).map((o) => ({ uri: o.uri, range: o.range }));
        };
        const f = ctx.featureFor(uri);
        if (f) {
          const td = ctx.documents.get(uri);
          const a = td ? f.analysis(uri) : undefined;
          const found = a && td ? await named(templateSymbolAt(a, td.offsetAt(params.position))) : undefined;
          return found ?? f.references(params);
        }
        if (!ctx.documents.get(uri)) return [];
        const snapshot = await ctx.analysed(ctx.projectFor(uri), token);
        const c = ctx.context(uri);
        if (!c) return [];
        const offset = c.td.offsetAt(params.position);
        const sym = symbolAt(c.doc, offset, { snapshot, path: c.path });
        const found = sym && sym.ref.kind !== "file" ? await named(sym.ref) : undefined;
        if (found) return found;
        return references(c.doc, offset, { snapshot, path: c.path })
          .map((l) => (l.path === c.path ? { uri: c.td.uri, range: toRange(c.td, l.span) } : ctx.locationOf(c.project, snapshot, l.path, l.span)))
          .filter((l): l is Location => l !== undefined);
      },
    },
  ],
};
