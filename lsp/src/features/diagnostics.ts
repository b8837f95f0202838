/**
 * Pull diagnostics (`textDocument/diagnostic`, `workspace/diagnostic`) for
 * every kind of document the server serves: policy files (from the current
 * analysis), stack files and policy test files (from their features, made
 * current first). Each report has a result id, so an unchanged document
 * answers `unchanged`. Announced to every client; a client that pulls gets
 * no pushes for the documents it pulls (see `pushes.ts`).
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
import type { AnalysisDiagnostic, PolicySnapshot } from "@qubes-kit/language";
import { toLspDiagnostic } from "../convert.js";
import type { PolicyProject } from "../project.js";
import type { DocumentFeature } from "../template/feature.js";
import type { ServerContext, ServerFeature } from "./types.js";

/** A document feature that computes a document's diagnostics on demand (policy tests). */
export interface PullableFeature extends DocumentFeature {
  /** The current diagnostics of a document it handles (waits for the policies it needs). */
  pullDiagnostics(uri: string, token: CancellationToken | undefined): Promise<Diagnostic[]>;
}

const isPullable = (f: DocumentFeature): f is PullableFeature => typeof (f as Partial<PullableFeature>).pullDiagnostics === "function";

/** A short stable hash of a diagnostics list (FNV-1a over its JSON). */
function hashOf(items: readonly Diagnostic[]): string {
  const text = JSON.stringify(items);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${text.length}-${h.toString(36)}`;
}

/** One policy file's converted report, kept while its inputs are the same objects. */
interface PolicyReport {
  list: readonly AnalysisDiagnostic[] | undefined;
  extra: readonly AnalysisDiagnostic[] | undefined;
  version: number | undefined;
  /** The parsed file the positions come from (closed files). */
  doc: unknown;
  items: Diagnostic[];
  id: string;
}

/** Converted reports per context (one server), by URI. */
const reports = new WeakMap<ServerContext, Map<string, PolicyReport>>();

/**
 * The report of one file of a project (with the policy-wide problems on open documents), reused
 * while the analysis hands on the same diagnostics and the document keeps its version.
 */
function policyReport(ctx: ServerContext, project: PolicyProject, snapshot: PolicySnapshot, virtual: string, uri: string): PolicyReport | undefined {
  let byUri = reports.get(ctx);
  if (!byUri) reports.set(ctx, (byUri = new Map()));
  const open = ctx.documents.get(uri);
  const list = snapshot.diagnostics.get(virtual);
  const extra = open ? snapshot.policyDiagnostics : undefined;
  const version = open?.version;
  const hit = byUri.get(uri);
  // Positions come from the text: the same list of a closed file read again (changed on disk) is converted again.
  const doc = open ? undefined : snapshot.document(virtual);
  if (hit && hit.list === list && hit.extra === extra && hit.version === version && hit.doc === doc) return hit;
  const disk = project.toDisk(virtual);
  if (disk === null) return undefined;
  const mapper = open ?? ctx.mapperForPath(project, snapshot, disk);
  if (!mapper) return undefined;
  const related = (path: string) => {
    const d = project.toDisk(path);
    const m = d === null ? undefined : ctx.mapperForPath(project, snapshot, d);
    return d !== null && m ? { uri: ctx.uriOf(d), mapper: m } : undefined;
  };
  const items = (list ?? []).map((d) => toLspDiagnostic(mapper, d, related));
  for (const d of extra ?? []) items.push(toLspDiagnostic(mapper, { ...d, span: { start: 0, end: 0 } }));
  const report: PolicyReport = { list, extra, version, doc, items, id: `${version ?? "disk"}-${hashOf(items)}` };
  byUri.set(uri, report);
  return report;
}

/** The report of a document another feature handles (stack file, policy test), from what it last computed. */
function featureReport(ctx: ServerContext, uri: string): { items: Diagnostic[]; id: string; version: number | null } {
  const l = ctx.pushes.latest(uri);
  if (!l) return { items: [], id: "none", version: ctx.documents.get(uri)?.version ?? null };
  return { items: [...l.diagnostics], id: `f${l.serial}`, version: l.version ?? null };
}

/** Makes a feature's diagnostics of a document current, and returns them. */
async function featureDiagnostics(ctx: ServerContext, f: DocumentFeature, uri: string, token: CancellationToken): Promise<{ items: Diagnostic[]; id: string }> {
  if (isPullable(f)) {
    const items = await f.pullDiagnostics(uri, token);
    const l = ctx.pushes.latest(uri);
    return { items, id: l && JSON.stringify(l.diagnostics) === JSON.stringify(items) ? `f${l.serial}` : `p-${hashOf(items)}` };
  }
  // Stack files validate once the policies they refer to are current.
  for (const p of [...ctx.projects()]) await ctx.analysed(p, token);
  f.validate();
  return featureReport(ctx, uri);
}

/** The document features of the server (one per kind of document it serves besides policies). */
function features(ctx: ServerContext): DocumentFeature[] {
  const out: DocumentFeature[] = [];
  for (const uri of ctx.pushes.known()) {
    const f = ctx.featureFor(uri);
    if (f && !out.includes(f)) out.push(f);
  }
  for (const d of ctx.documents.all()) {
    const f = ctx.featureFor(d.uri);
    if (f && !out.includes(f)) out.push(f);
  }
  return out;
}

export const diagnosticsFeature: ServerFeature = {
  name: "pullDiagnostics",
  capabilities: () => ({ diagnosticProvider: { identifier: "qubes-policy", interFileDependencies: true, workspaceDiagnostics: true } }),
  requests: (ctx) => [
    {
      method: "textDocument/diagnostic",
      fallback: { kind: "full", items: [] },
      params: "textDocument",
      async run(params: DocumentDiagnosticParams, token: CancellationToken): Promise<DocumentDiagnosticReport> {
        const uri = params.textDocument.uri;
        ctx.pushes.documentPulled(uri);
        const f = ctx.featureFor(uri);
        let items: Diagnostic[];
        let id: string;
        try {
          if (f) ({ items, id } = await featureDiagnostics(ctx, f, uri, token));
          else {
            const project = ctx.projectFor(uri);
            const snapshot = await ctx.analysed(project, token);
            const r = policyReport(ctx, project, snapshot, project.toVirtual(ctx.pathOfUri(uri)), uri);
            items = r?.items ?? [];
            id = r?.id ?? "none";
          }
        } catch (e) {
          // The client keeps an empty list (or the last one): it is asked to pull again if that is not what it should show.
          ctx.pushes.unanswered(uri);
          throw e;
        }
        ctx.pushes.answered(uri, items);
        if (params.previousResultId === id) return { kind: "unchanged", resultId: id };
        return { kind: "full", resultId: id, items };
      },
    },
    {
      method: "workspace/diagnostic",
      fallback: { items: [] },
      params: "object",
      async run(params: WorkspaceDiagnosticParams, token: CancellationToken): Promise<WorkspaceDiagnosticReport> {
        ctx.pushes.workspacePulled();
        const previous = new Map((Array.isArray(params.previousResultIds) ? params.previousResultIds : []).map((p) => [p?.uri, p?.value]));
        const out: WorkspaceDocumentDiagnosticReport[] = [];
        const done = new Set<string>();
        const report = (uri: string, id: string, version: number | null, items: () => Diagnostic[]) => {
          done.add(uri);
          ctx.pushes.answered(uri, items());
          out.push(previous.get(uri) === id ? { kind: "unchanged", uri, version, resultId: id } : { kind: "full", uri, version, resultId: id, items: items() });
        };
        for (const project of [...ctx.projects()]) {
          const snapshot = await ctx.analysed(project, token);
          const paths = new Set([...snapshot.files.keys(), ...snapshot.diagnostics.keys()]);
          for (const virtual of paths) {
            const disk = project.toDisk(virtual);
            if (disk === null) continue;
            const uri = ctx.uriOf(disk);
            if (done.has(uri) || ctx.featureFor(uri)) continue;
            const r = policyReport(ctx, project, snapshot, virtual, uri);
            if (r) report(uri, r.id, ctx.documents.get(uri)?.version ?? null, () => r.items);
          }
        }
        // Stack files and policy tests (every test file of the workspace), and files that lost their diagnostics.
        for (const f of features(ctx)) if (!isPullable(f)) f.validate();
        for (const uri of ctx.pushes.known()) {
          if (done.has(uri)) continue;
          const r = featureReport(ctx, uri);
          report(uri, r.id, r.version, () => r.items);
        }
        return { items: out };
      },
    },
  ],
};
