/**
 * Pull diagnostics (`textDocument/diagnostic`, `workspace/diagnostic`),
 * alongside the pushed ones: the same findings, with a result id per
 * document so an unchanged document answers `unchanged`. Announced to every
 * client but VS Code's, whose client would show pushed and pulled lists twice.
 */
import type {
  CancellationToken,
  Diagnostic,
  DocumentDiagnosticParams,
  DocumentDiagnosticReport,
  WorkspaceDiagnosticParams,
  WorkspaceDiagnosticReport,
  WorkspaceDocumentDiagnosticReport,
} from "vscode-languageserver";
import type { PolicySnapshot } from "@qubes-kit/language";
import { toLspDiagnostic } from "../convert.js";
import type { PolicyProject } from "../project.js";
import type { ServerContext, ServerFeature } from "./types.js";

/** A short stable hash of a diagnostics list (FNV-1a over its JSON). */
function resultId(items: readonly Diagnostic[], version: number | undefined): string {
  const text = JSON.stringify(items);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${version ?? "disk"}-${text.length}-${h.toString(36)}`;
}

/** The diagnostics of one file of a project, converted (with the policy-wide ones on open documents). */
function itemsOf(ctx: ServerContext, project: PolicyProject, snapshot: PolicySnapshot, virtual: string, uri: string): Diagnostic[] | undefined {
  const disk = project.toDisk(virtual);
  if (disk === null) return undefined;
  const mapper = ctx.documents.get(uri) ?? ctx.mapperForPath(project, snapshot, disk);
  if (!mapper) return undefined;
  const related = (path: string) => {
    const d = project.toDisk(path);
    const m = d === null ? undefined : ctx.mapperForPath(project, snapshot, d);
    return d !== null && m ? { uri: ctx.uriOf(d), mapper: m } : undefined;
  };
  const list = (snapshot.diagnostics.get(virtual) ?? []).map((d) => toLspDiagnostic(mapper, d, related));
  if (ctx.documents.get(uri)) for (const d of snapshot.policyDiagnostics) list.push(toLspDiagnostic(mapper, { ...d, span: { start: 0, end: 0 } }));
  return list;
}

export const diagnosticsFeature: ServerFeature = {
  name: "pullDiagnostics",
  capabilities: (ctx) => (ctx.retriggerCommand ? {} : { diagnosticProvider: { identifier: "qubes-policy", interFileDependencies: true, workspaceDiagnostics: true } }),
  requests: (ctx) => [
    {
      method: "textDocument/diagnostic",
      fallback: { kind: "full", items: [] },
      params: "textDocument",
      async run(params: DocumentDiagnosticParams, token: CancellationToken): Promise<DocumentDiagnosticReport> {
        const uri = params.textDocument.uri;
        // Stack files publish their own diagnostics.
        if (ctx.featureFor(uri)) return { kind: "full", items: [] };
        const project = ctx.projectFor(uri);
        const snapshot = await ctx.analysed(project, token);
        const items = itemsOf(ctx, project, snapshot, project.toVirtual(ctx.pathOfUri(uri)), uri) ?? [];
        const id = resultId(items, ctx.documents.get(uri)?.version);
        if (params.previousResultId === id) return { kind: "unchanged", resultId: id };
        return { kind: "full", resultId: id, items };
      },
    },
    {
      method: "workspace/diagnostic",
      fallback: { items: [] },
      params: "object",
      async run(params: WorkspaceDiagnosticParams, token: CancellationToken): Promise<WorkspaceDiagnosticReport> {
        const previous = new Map((Array.isArray(params.previousResultIds) ? params.previousResultIds : []).map((p) => [p.uri, p.value]));
        const out: WorkspaceDocumentDiagnosticReport[] = [];
        const done = new Set<string>();
        for (const project of [...ctx.projects()]) {
          const snapshot = await ctx.analysed(project, token);
          const paths = new Set([...snapshot.files.keys(), ...snapshot.diagnostics.keys()]);
          for (const virtual of paths) {
            const disk = project.toDisk(virtual);
            if (disk === null) continue;
            const uri = ctx.uriOf(disk);
            if (done.has(uri)) continue;
            done.add(uri);
            const items = itemsOf(ctx, project, snapshot, virtual, uri);
            if (!items) continue;
            const version = ctx.documents.get(uri)?.version ?? null;
            const id = resultId(items, version ?? undefined);
            out.push(previous.get(uri) === id ? { kind: "unchanged", uri, version, resultId: id } : { kind: "full", uri, version, resultId: id, items });
          }
        }
        return { items: out };
      },
    },
  ],
};
