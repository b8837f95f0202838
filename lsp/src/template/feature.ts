/**
 * The stack-file feature of the server (`*.qubes.yaml`): diagnostics,
 * completion, hover, definition, references, code lenses and semantic tokens
 * of the template services in `@qubes-kit/language`, adapted to the protocol.
 * Registered by `server-core.ts` from its feature table: a handler there
 * hands a request to the first feature that {@link DocumentFeature.handles}
 * the document's URI.
 */
import {
  CodeActionKind,
  CompletionItemKind,
  InsertTextFormat,
  MarkupKind,
  SemanticTokensBuilder,
  type CodeAction,
  type CodeLens,
  type CompletionItem,
  type CompletionParams,
  type Connection,
  type Diagnostic,
  type DefinitionParams,
  type Hover,
  type HoverParams,
  type Location,
  type ReferenceParams,
  type SemanticTokens,
  type Range,
  type TextEdit,
  type TextDocuments,
} from "vscode-languageserver";
import type { TextDocument } from "vscode-languageserver-textdocument";
import {
  analyzeTemplate,
  findReferences,
  SEMANTIC_TOKEN_MODIFIERS,
  SEMANTIC_TOKEN_TYPES,
  completeTemplate,
  devicePortQuery,
  templateDiagnostics,
  hoverTemplate,
  templateCodeActions,
  templateDefinition,
  templateFormatEdits,
  templateLenses,
  templateReferences,
  templateSemanticTokens,
  templateSymbolAt,
  type AnalysisDiagnostic,
  type LiveDevice,
  type PolicySnapshot,
  type SystemInfo,
  type TemplateAnalysis,
  type TemplateCompletionKind,
  type Utf8Problem,
} from "@qubes-kit/language";
import { COMPLETION_KIND, mapperFor, toLspDiagnostic, toRange, toSpan, type PositionMapper } from "../convert.js";
import type { HostFileSystem } from "../host.js";
import { TEMPLATE_PLAN_COMMAND, TEMPLATE_WHATIF_COMMAND } from "../protocol.js";


/** The language id of stack files. */
export const TEMPLATE_LANGUAGE_ID = "qubes-template";

/** True for a stack file's URI or path (`*.qubes.yaml`, `*.qubes.yml`). */
export function isTemplatePath(uriOrPath: string): boolean {
  return /\.qubes\.ya?ml$/i.test(uriOrPath.replace(/[?#].*$/, ""));
}

/** What the server shares with a document feature. */
export interface FeatureContext {
  connection: Connection;
  documents: TextDocuments<TextDocument>;
  fs: HostFileSystem;
  /** The live system model, when one is configured and loaded. */
  system(): SystemInfo | null;
  /** The installed kernels and storage pools of the system model, when it lists them. */
  storage?(): { kernels?: readonly string[]; pools?: readonly string[] };
  /** Reads the devices a backend offers (for port completion), when the host can reach a machine. */
  loadDevices?(backend: string, devclass: string): Promise<readonly LiveDevice[]>;
  /** The disk path of a URI (unsaved documents get a private folder). */
  pathOf(uri: string): string;
  /** The URI of a disk path (the open document's URI when it is open). */
  uriOf(path: string): string;
  /** The workspace policy a stack file sits next to, with a way to place its locations. */
  policyFor(path: string): { snapshot: PolicySnapshot; locate(virtual: string, span: { start: number; end: number }): Location | undefined } | undefined;
  log(message: string): void;
}

/** A per-document feature of the server, selected by URI. */
export interface DocumentFeature {
  readonly name: string;
  handles(uri: string): boolean;
  /** Recomputes and publishes the diagnostics of the open documents it handles that changed. */
  validate(): void;
  changed(uri: string): void;
  closed(uri: string): void;
  completion(params: CompletionParams): Promise<CompletionItem[]>;
  hover(params: HoverParams): Hover | null;
  definition(params: DefinitionParams): Location[];
  references(params: ReferenceParams): Location[];
  codeLens(uri: string): CodeLens[];
  semanticTokens(uri: string): SemanticTokens;
  /** Quick fixes of the policy blocks in a range. */
  codeActions(uri: string, range: Range): CodeAction[];
  /** Formatting edits (of the policy blocks), for the whole document or a range. */
  format(uri: string, range?: Range): TextEdit[];
  /** The analysis of an open (or on-disk) stack file. */
  analysis(uri: string): TemplateAnalysis | undefined;
}

const KIND: Record<TemplateCompletionKind, CompletionItemKind> = {
  ...COMPLETION_KIND,
  key: CompletionItemKind.Field,
  property: CompletionItemKind.Property,
  class: CompletionItemKind.Class,
  label: CompletionItemKind.Color,
  enum: CompletionItemKind.EnumMember,
  feature: CompletionItemKind.Field,
  device: CompletionItemKind.Unit,
};

/** Creates the stack-file feature. */
export function createTemplateFeature(ctx: FeatureContext): DocumentFeature {
  const cache = new Map<string, { version: number; text: string; system: SystemInfo | null; devices: number; analysis: TemplateAnalysis }>();
  /** Devices read from the machine, by `backend:devclass` (kept until the system model is reloaded). */
  const devices = new Map<string, readonly LiveDevice[]>();
  let devicesVersion = 0;
  let devicesSystem: SystemInfo | null = null;
  const allDevices = (): LiveDevice[] => {
    if (devicesSystem !== ctx.system()) {
      devices.clear();
      devicesSystem = ctx.system();
      devicesVersion++;
    }
    return [...devices.values()].flat();
  };
  const dirty = new Set<string>();
  const published = new Map<string, string>();

  const readFile = (path: string): string | undefined => {
    const uri = ctx.uriOf(path);
    const open = ctx.documents.get(uri);
    return open ? open.getText() : ctx.fs.readFile(path);
  };

  /** Where a file `readFile` read from disk is not UTF-8 (an open document is the editor's text: never). */
  const notUtf8 = (path: string): Utf8Problem | undefined => (ctx.documents.get(ctx.uriOf(path)) ? undefined : ctx.fs.notUtf8?.(path));

  /** A stack file that is not open, as a mapper with its URI (a TextDocument's `uri` is read-only). */
  function closedMapper(uri: string, text: string): PositionMapper & { uri: string } {
    const m = mapperFor(text);
    return { uri, positionAt: (offset) => m.positionAt(offset), offsetAt: (position) => m.offsetAt(position) };
  }

  function analysisOf(uri: string): { td: PositionMapper & { uri: string }; a: TemplateAnalysis } | undefined {
    const td = ctx.documents.get(uri);
    const path = ctx.pathOf(uri);
    const text = td ? td.getText() : ctx.fs.readFile(path);
    if (text === undefined) return undefined;
    const system = ctx.system();
    const version = td?.version ?? -1;
    const known = allDevices();
    const hit = cache.get(uri);
    if (hit && hit.version === version && hit.text === text && hit.system === system && hit.devices === devicesVersion) return { td: td ?? closedMapper(uri, text), a: hit.analysis };
    const readDir = (dir: string): string[] | undefined => {
      const names = new Set(ctx.fs.readDir(dir) ?? []);
      // Unsaved stack files of the folder count too.
      for (const d of ctx.documents.all()) {
        const p = ctx.pathOf(d.uri);
        if (p.startsWith(dir + "/") && !p.slice(dir.length + 1).includes("/")) names.add(p.slice(dir.length + 1));
      }
      return [...names];
    };
    const { kernels, pools } = ctx.storage?.() ?? {};
    const a = analyzeTemplate(path, text, { system, readFile, notUtf8, readDir, devices: known, ...(kernels ? { kernels } : {}), ...(pools ? { pools } : {}) });
    if (td) cache.set(uri, { version, text, system, devices: devicesVersion, analysis: a });
    return { td: td ?? closedMapper(uri, text), a };
  }

  const mappers = new Map<string, { text: string; mapper: PositionMapper }>();
  function locationIn(a: TemplateAnalysis, path: string, span: { start: number; end: number }): Location | undefined {
    const uri = ctx.uriOf(path);
    const open = ctx.documents.get(uri);
    if (open) return { uri: open.uri, range: toRange(open, span) };
    const text = path === a.path ? a.text : readFile(path);
    if (text === undefined) return undefined;
    let m = mappers.get(path);
    if (!m || m.text !== text) mappers.set(path, (m = { text, mapper: mapperFor(text) }));
    return { uri, range: toRange(m.mapper, span) };
  }

  /** The diagnostics of an analysis, computed once (hover asks for their help texts). */
  const diagnosticsOf = (() => {
    const memo = new WeakMap<TemplateAnalysis, AnalysisDiagnostic[]>();
    return (a: TemplateAnalysis): AnalysisDiagnostic[] => {
      let d = memo.get(a);
      if (!d) memo.set(a, (d = templateDiagnostics(a)));
      return d;
    };
  })();

  function publish(uri: string): void {
    const r = analysisOf(uri);
    if (!r) return;
    const list: AnalysisDiagnostic[] = diagnosticsOf(r.a);
    // Related places (the other declaration, the bundle's use site) are other stack files.
    const related = (path: string): { uri: string; mapper: PositionMapper } | undefined => {
      const open = ctx.documents.get(ctx.uriOf(path));
      if (open) return { uri: open.uri, mapper: open };
      const text = path === r.a.path ? r.a.text : readFile(path);
      return text === undefined ? undefined : { uri: ctx.uriOf(path), mapper: mapperFor(text) };
    };
    const diagnostics: Diagnostic[] = list.map((d) => toLspDiagnostic(r.td, d, related));
    const sig = JSON.stringify(diagnostics);
    if (published.get(uri) === sig) return;
    published.set(uri, sig);
    void ctx.connection.sendDiagnostics({ uri, diagnostics });
  }

  return {
    name: "template",
    handles: (uri) => isTemplatePath(uri),
    changed(uri) {
      dirty.add(uri);
      // Other stack files may include or use this one: their analyses are stale too.
      cache.clear();
      // A change in one file of a stack can change the diagnostics of the others.
      for (const d of ctx.documents.all()) if (d.uri !== uri && isTemplatePath(d.uri)) dirty.add(d.uri);
    },
    closed(uri) {
      cache.delete(uri);
      dirty.delete(uri);
      if (published.has(uri)) {
        published.delete(uri);
        void ctx.connection.sendDiagnostics({ uri, diagnostics: [] });
      }
    },
    validate() {
      for (const d of ctx.documents.all()) {
        if (!isTemplatePath(d.uri)) continue;
        if (!dirty.has(d.uri) && published.has(d.uri) && cache.get(d.uri)?.system === ctx.system()) continue;
        dirty.delete(d.uri);
        try {
          publish(d.uri);
        } catch (e) {
          ctx.log(`qubes-template: diagnostics of ${d.uri} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
      }
    },
    async completion(params) {
      let r = analysisOf(params.textDocument.uri);
      if (!r) return [];
      const offset = r.td.offsetAt(params.position);
      // A device port: read what the backend offers first (once per backend and class).
      const want = devicePortQuery(r.a, offset);
      if (want && ctx.loadDevices && !devices.has(`${want.backend}:${want.devclass}`)) {
        try {
          const list = await ctx.loadDevices(want.backend, want.devclass);
          devices.set(`${want.backend}:${want.devclass}`, list);
        } catch (e) {
          devices.set(`${want.backend}:${want.devclass}`, []);
          ctx.log(`qubes-template: cannot read the devices of ${want.backend} (${want.devclass}): ${e instanceof Error ? e.message : String(e)}`);
        }
        devicesVersion++;
        r = analysisOf(params.textDocument.uri);
        if (!r) return [];
      }
      return completeTemplate(r.a, offset).map((item) => {
        const out: CompletionItem = {
          label: item.label,
          kind: KIND[item.kind] ?? CompletionItemKind.Text,
          textEdit: { range: toRange(r.td, item.span), newText: item.insertText ?? item.label },
          insertTextFormat: InsertTextFormat.PlainText,
        };
        if (item.detail) out.detail = item.detail;
        if (item.documentation) out.documentation = { kind: MarkupKind.Markdown, value: item.documentation };
        if (item.filterText) out.filterText = item.filterText;
        if (item.sortText) out.sortText = item.sortText;
        return out;
      });
    },
    hover(params) {
      const r = analysisOf(params.textDocument.uri);
      if (!r) return null;
      const offset = r.td.offsetAt(params.position);
      const h = hoverTemplate(r.a, offset);
      // Help texts of the diagnostics under the cursor come with the hover.
      const helps = diagnosticsOf(r.a)
        .filter((d) => d.help && d.span.start <= offset && offset <= d.span.end)
        .map((d) => `*${d.code}*: ${d.help}`);
      if (!h && !helps.length) return null;
      return {
        contents: { kind: MarkupKind.Markdown, value: [...(h ? [h.markdown] : []), ...helps].join("\n\n") },
        ...(h ? { range: toRange(r.td, h.span) } : {}),
      };
    },
    definition(params) {
      const r = analysisOf(params.textDocument.uri);
      if (!r) return [];
      return templateDefinition(r.a, r.td.offsetAt(params.position))
        .map((l) => locationIn(r.a, l.path, l.span))
        .filter((l): l is Location => l !== undefined);
    },
    references(params) {
      const r = analysisOf(params.textDocument.uri);
      if (!r) return [];
      const offset = r.td.offsetAt(params.position);
      const out = templateReferences(r.a, offset, { includeDeclaration: params.context?.includeDeclaration !== false })
        .map((l) => locationIn(r.a, l.path, l.span))
        .filter((l): l is Location => l !== undefined);
      // The workspace's own policy (a `policy.d` next to the stack) names the same qubes.
      const at = templateSymbolAt(r.a, offset);
      const policy = at ? ctx.policyFor(r.a.path) : undefined;
      if (at && policy) {
        for (const l of findReferences({ kind: at.kind, name: at.name }, policy.snapshot)) {
          const loc = policy.locate(l.path, l.span);
          if (loc) out.push(loc);
        }
      }
      return out;
    },
    codeLens(uri) {
      const r = analysisOf(uri);
      if (!r) return [];
      return templateLenses(r.a).map((l) => ({
        range: toRange(r.td, l.span),
        command: { title: l.title, command: l.command === "plan" ? TEMPLATE_PLAN_COMMAND : TEMPLATE_WHATIF_COMMAND, arguments: [uri] },
      }));
    },
    semanticTokens(uri) {
      const r = analysisOf(uri);
      if (!r) return { data: [] };
      const builder = new SemanticTokensBuilder();
      const tokens = templateSemanticTokens(r.a).sort((x, y) => x.span.start - y.span.start);
      for (const t of tokens) {
        const start = r.td.positionAt(t.span.start);
        const end = r.td.positionAt(t.span.end);
        if (end.line !== start.line || end.character <= start.character) continue;
        let mods = 0;
        for (const m of t.modifiers) mods |= 1 << SEMANTIC_TOKEN_MODIFIERS.indexOf(m);
        builder.push(start.line, start.character, end.character - start.character, SEMANTIC_TOKEN_TYPES.indexOf(t.type), mods);
      }
      return builder.build();
    },
    codeActions(uri, range) {
      const r = analysisOf(uri);
      if (!r) return [];
      return templateCodeActions(r.a, toSpan(r.td, range)).map((a) => ({
        title: a.title,
        kind: a.kind === "quickfix" ? CodeActionKind.QuickFix : CodeActionKind.RefactorRewrite,
        diagnostics: a.diagnostics.map((d) => toLspDiagnostic(r.td, d)),
        edit: { changes: { [uri]: a.edits.map((e) => ({ range: toRange(r.td, e.span), newText: e.newText })) } },
        ...(a.isPreferred ? { isPreferred: true } : {}),
      }));
    },
    format(uri, range) {
      const r = analysisOf(uri);
      if (!r) return [];
      return templateFormatEdits(r.a, range ? toSpan(r.td, range) : undefined).map((e) => ({ range: toRange(r.td, e.span), newText: e.newText }));
    },
    analysis: (uri) => analysisOf(uri)?.a,
  };
}
