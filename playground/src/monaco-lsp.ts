/**
 * The client adapter between Monaco and the language server: documents are synchronised
 * with `didOpen`/`didChange`/`didClose`, diagnostics become markers, and Monaco's completion,
 * hover, quick-fix, formatting and semantic-token providers ask the server. Positions: LSP is 0-based,
 * Monaco 1-based; both count UTF-16 code units, so only the base changes.
 */
import * as monaco from "monaco-editor/esm/vs/editor/editor.api.js";
import type { RpcClient } from "./rpc.js";

/** The language id of qrexec policy files in the page. */
export const POLICY_LANGUAGE = "qrexecpolicy";
/** The owner of the server's markers. */
export const MARKER_OWNER = "qkit-lsp";

interface LspPosition {
  line: number;
  character: number;
}
interface LspRange {
  start: LspPosition;
  end: LspPosition;
}
interface LspTextEdit {
  range: LspRange;
  newText: string;
}
interface LspDiagnostic {
  range: LspRange;
  severity?: number;
  code?: string | number;
  source?: string;
  message: string;
  tags?: number[];
}
interface LspCodeAction {
  title: string;
  kind?: string;
  isPreferred?: boolean;
  edit?: { changes?: Record<string, LspTextEdit[]>; documentChanges?: unknown[] };
}
type LspMarkup = string | { kind?: string; value: string; language?: string };
interface LspCompletionItem {
  label: string;
  kind?: number;
  detail?: string;
  documentation?: LspMarkup;
  sortText?: string;
  filterText?: string;
  insertText?: string;
  insertTextFormat?: number;
  textEdit?: LspTextEdit | { newText: string; insert: LspRange; replace: LspRange };
  additionalTextEdits?: LspTextEdit[];
  preselect?: boolean;
  command?: { title: string; command: string };
}

/** An LSP range as a Monaco range. */
export function toMonacoRange(r: LspRange): monaco.IRange {
  return { startLineNumber: r.start.line + 1, startColumn: r.start.character + 1, endLineNumber: r.end.line + 1, endColumn: r.end.character + 1 };
}

/** A Monaco position as an LSP position. */
export function toLspPosition(p: monaco.IPosition): LspPosition {
  return { line: p.lineNumber - 1, character: p.column - 1 };
}

function toLspRange(r: monaco.IRange): LspRange {
  return { start: { line: r.startLineNumber - 1, character: r.startColumn - 1 }, end: { line: r.endLineNumber - 1, character: r.endColumn - 1 } };
}

const SEVERITY: Record<number, monaco.MarkerSeverity> = {
  1: monaco.MarkerSeverity.Error,
  2: monaco.MarkerSeverity.Warning,
  3: monaco.MarkerSeverity.Info,
  4: monaco.MarkerSeverity.Hint,
};

/** LSP `CompletionItemKind` (1-based) → Monaco's enum. */
const K = monaco.languages.CompletionItemKind;
const KIND: Record<number, monaco.languages.CompletionItemKind> = {
  1: K.Text, 2: K.Method, 3: K.Function, 4: K.Constructor, 5: K.Field, 6: K.Variable, 7: K.Class, 8: K.Interface,
  9: K.Module, 10: K.Property, 11: K.Unit, 12: K.Value, 13: K.Enum, 14: K.Keyword, 15: K.Snippet, 16: K.Color,
  17: K.File, 18: K.Reference, 19: K.Folder, 20: K.EnumMember, 21: K.Constant, 22: K.Struct, 23: K.Event,
  24: K.Operator, 25: K.TypeParameter,
};

function markdown(value: LspMarkup | undefined): monaco.IMarkdownString | string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (value.kind === "markdown") return { value: value.value };
  if (value.language) return { value: "```" + value.language + "\n" + value.value + "\n```" };
  return value.value;
}

function toEdit(e: LspTextEdit): monaco.languages.TextEdit {
  return { range: toMonacoRange(e.range), text: e.newText };
}

/** A diagnostic as the page lists it (the problems panel). */
export interface ListedDiagnostic {
  uri: string;
  line: number;
  column: number;
  severity: "error" | "warning" | "info" | "hint";
  code: string;
  message: string;
}

/**
 * Answers the server's `workspace/applyEdit` (a command such as "add a rule for this call"):
 * text edits of open models only, each model's edits at once (one undo step); nothing is
 * changed when any file is not open or the edit is of another kind.
 */
export function applyWorkspaceEdit(params: unknown): { applied: boolean; failureReason?: string } {
  const edit = (params as { edit?: { changes?: Record<string, LspTextEdit[]>; documentChanges?: unknown[] } } | null)?.edit;
  if (!edit || edit.documentChanges || !edit.changes || typeof edit.changes !== "object") return { applied: false, failureReason: "the playground applies text edits of its open files only" };
  const plan: Array<[monaco.editor.ITextModel, LspTextEdit[]]> = [];
  for (const [uri, list] of Object.entries(edit.changes)) {
    const model = monaco.editor.getModel(monaco.Uri.parse(uri));
    if (!model) return { applied: false, failureReason: `${uri} is not a file of the playground` };
    if (!Array.isArray(list)) return { applied: false, failureReason: `the edit of ${uri} is not a list of text edits` };
    plan.push([model, list]);
  }
  for (const [model, list] of plan) {
    model.pushStackElement();
    model.pushEditOperations([], list.map((e) => ({ range: toMonacoRange(e.range), text: e.newText })), () => null);
    model.pushStackElement();
  }
  return { applied: true };
}

/** Keeps Monaco and the server in step. */
export class MonacoLanguageClient {
  private readonly versions = new Map<string, number>();
  private readonly listeners: Array<(all: ListedDiagnostic[]) => void> = [];
  private readonly diagnostics = new Map<string, ListedDiagnostic[]>();
  /** The server's diagnostics as it sent them, per URI (the context of code-action requests). */
  private readonly raw = new Map<string, LspDiagnostic[]>();
  private legend: monaco.languages.SemanticTokensLegend = { tokenTypes: [], tokenModifiers: [] };

  constructor(private readonly rpc: RpcClient) {
    rpc.onNotification("textDocument/publishDiagnostics", (p) => this.publish(p as { uri: string; diagnostics: LspDiagnostic[] }));
    rpc.onRequest("workspace/applyEdit", (p) => applyWorkspaceEdit(p));
  }

  /** `initialize` + `initialized`, with the settings as initialization options; registers the providers. */
  async start(settings: object): Promise<void> {
    const result = await this.rpc.request<{ capabilities: { semanticTokensProvider?: { legend: monaco.languages.SemanticTokensLegend }; completionProvider?: { triggerCharacters?: string[] } } }>(
      "initialize",
      {
        processId: null,
        clientInfo: { name: "qkit-playground" },
        rootUri: null,
        workspaceFolders: null,
        initializationOptions: { qubesPolicy: settings },
        capabilities: {
          textDocument: {
            synchronization: { dynamicRegistration: false, didSave: false },
            publishDiagnostics: { relatedInformation: false, tagSupport: { valueSet: [1, 2] } },
            completion: { completionItem: { snippetSupport: true, documentationFormat: ["markdown", "plaintext"] } },
            hover: { contentFormat: ["markdown", "plaintext"] },
            formatting: {},
            codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ["quickfix", "refactor.rewrite"] } }, isPreferredSupport: true },
            rangeFormatting: {},
            semanticTokens: { requests: { full: true }, tokenTypes: [], tokenModifiers: [], formats: ["relative"] },
          },
          workspace: { applyEdit: true, workspaceEdit: { documentChanges: false } },
        },
      },
    );
    this.legend = result.capabilities.semanticTokensProvider?.legend ?? this.legend;
    this.rpc.notify("initialized", {});
    this.registerProviders(result.capabilities.completionProvider?.triggerCharacters ?? []);
  }

  /** Opens a model on the server and follows its changes until it is disposed. */
  track(model: monaco.editor.ITextModel): monaco.IDisposable {
    const uri = model.uri.toString();
    this.versions.set(uri, model.getVersionId());
    this.rpc.notify("textDocument/didOpen", { textDocument: { uri, languageId: "qrexecpolicy", version: model.getVersionId(), text: model.getValue() } });
    const change = model.onDidChangeContent(() => {
      this.versions.set(uri, model.getVersionId());
      this.rpc.notify("textDocument/didChange", { textDocument: { uri, version: model.getVersionId() }, contentChanges: [{ text: model.getValue() }] });
    });
    return {
      dispose: () => {
        change.dispose();
        this.versions.delete(uri);
        this.diagnostics.delete(uri);
        this.raw.delete(uri);
        this.rpc.notify("textDocument/didClose", { textDocument: { uri } });
        this.emit();
      },
    };
  }

  /** Calls `listener` with every diagnostic of every open file whenever they change. */
  onDiagnostics(listener: (all: ListedDiagnostic[]) => void): void {
    this.listeners.push(listener);
  }

  private publish(params: { uri: string; diagnostics: LspDiagnostic[] }): void {
    const model = monaco.editor.getModel(monaco.Uri.parse(params.uri));
    if (!model || !this.versions.has(params.uri)) return;
    const markers: monaco.editor.IMarkerData[] = params.diagnostics.map((d) => ({
      ...toMonacoRange(d.range),
      severity: SEVERITY[d.severity ?? 1] ?? monaco.MarkerSeverity.Error,
      message: d.message,
      code: d.code === undefined ? undefined : String(d.code),
      source: d.source,
      tags: d.tags?.filter((t) => t === 1 || t === 2) as monaco.MarkerTag[] | undefined,
    }));
    monaco.editor.setModelMarkers(model, MARKER_OWNER, markers);
    this.raw.set(params.uri, params.diagnostics);
    const names = ["error", "warning", "info", "hint"] as const;
    this.diagnostics.set(
      params.uri,
      params.diagnostics.map((d) => ({
        uri: params.uri,
        line: d.range.start.line + 1,
        column: d.range.start.character + 1,
        severity: names[(d.severity ?? 1) - 1] ?? "error",
        code: d.code === undefined ? "" : String(d.code),
        message: d.message,
      })),
    );
    this.emit();
  }

  private emit(): void {
    const all = [...this.diagnostics.values()].flat();
    for (const l of this.listeners) l(all);
  }

  private registerProviders(triggerCharacters: string[]): void {
    const rpc = this.rpc;
    const doc = (model: monaco.editor.ITextModel) => ({ uri: model.uri.toString() });
    monaco.languages.registerCompletionItemProvider(POLICY_LANGUAGE, {
      triggerCharacters,
      async provideCompletionItems(model, position, context) {
        const answer = await rpc.request<LspCompletionItem[] | { isIncomplete: boolean; items: LspCompletionItem[] } | null>("textDocument/completion", {
          textDocument: doc(model),
          position: toLspPosition(position),
          context: { triggerKind: context.triggerKind + 1, triggerCharacter: context.triggerCharacter },
        });
        const items = Array.isArray(answer) ? answer : (answer?.items ?? []);
        const word = model.getWordUntilPosition(position);
        const fallback: monaco.IRange = { startLineNumber: position.lineNumber, endLineNumber: position.lineNumber, startColumn: word.startColumn, endColumn: word.endColumn };
        return {
          incomplete: !Array.isArray(answer) && answer?.isIncomplete === true,
          suggestions: items.map((item) => {
            const edit = item.textEdit;
            const range = !edit ? fallback : "range" in edit ? toMonacoRange(edit.range) : { insert: toMonacoRange(edit.insert), replace: toMonacoRange(edit.replace) };
            return {
              label: item.label,
              kind: KIND[item.kind ?? 1] ?? K.Text,
              detail: item.detail,
              documentation: markdown(item.documentation),
              sortText: item.sortText,
              filterText: item.filterText,
              preselect: item.preselect,
              insertText: edit?.newText ?? item.insertText ?? item.label,
              insertTextRules: item.insertTextFormat === 2 ? monaco.languages.CompletionItemInsertTextRule.InsertAsSnippet : undefined,
              range,
              additionalTextEdits: item.additionalTextEdits?.map(toEdit),
            };
          }),
        };
      },
    });
    monaco.languages.registerHoverProvider(POLICY_LANGUAGE, {
      async provideHover(model, position) {
        const hover = await rpc.request<{ contents: LspMarkup | LspMarkup[]; range?: LspRange } | null>("textDocument/hover", { textDocument: doc(model), position: toLspPosition(position) });
        if (!hover) return null;
        const contents = (Array.isArray(hover.contents) ? hover.contents : [hover.contents]).map((c) => {
          const m = markdown(c);
          return typeof m === "string" ? { value: m } : m!;
        });
        return { contents, range: hover.range ? toMonacoRange(hover.range) : undefined };
      },
    });
    const options = (o: monaco.languages.FormattingOptions) => ({ tabSize: o.tabSize, insertSpaces: o.insertSpaces });
    monaco.languages.registerDocumentFormattingEditProvider(POLICY_LANGUAGE, {
      async provideDocumentFormattingEdits(model, o) {
        return ((await rpc.request<LspTextEdit[] | null>("textDocument/formatting", { textDocument: doc(model), options: options(o) })) ?? []).map(toEdit);
      },
    });
    monaco.languages.registerDocumentRangeFormattingEditProvider(POLICY_LANGUAGE, {
      async provideDocumentRangeFormattingEdits(model, range, o) {
        return ((await rpc.request<LspTextEdit[] | null>("textDocument/rangeFormatting", { textDocument: doc(model), range: toLspRange(range), options: options(o) })) ?? []).map(toEdit);
      },
    });
    const raw = this.raw;
    monaco.languages.registerCodeActionProvider(
      POLICY_LANGUAGE,
      {
        async provideCodeActions(model, range) {
          const uri = model.uri.toString();
          const lspRange = toLspRange(range);
          const before = (a: LspPosition, b: LspPosition) => a.line < b.line || (a.line === b.line && a.character <= b.character);
          const diagnostics = (raw.get(uri) ?? []).filter((d) => before(d.range.start, lspRange.end) && before(lspRange.start, d.range.end));
          const actions = await rpc.request<LspCodeAction[] | null>("textDocument/codeAction", { textDocument: { uri }, range: lspRange, context: { diagnostics } });
          const out: monaco.languages.CodeAction[] = [];
          for (const a of actions ?? []) {
            // Only text edits: a file rename (`documentChanges`) has no meaning for the page's fixed tabs.
            if (!a.edit?.changes || a.edit.documentChanges) continue;
            const edits: monaco.languages.IWorkspaceTextEdit[] = [];
            for (const [target, list] of Object.entries(a.edit.changes)) {
              for (const e of list) edits.push({ resource: monaco.Uri.parse(target), textEdit: toEdit(e), versionId: undefined });
            }
            out.push({ title: a.title, kind: a.kind, isPreferred: a.isPreferred, edit: { edits } });
          }
          return { actions: out, dispose() {} };
        },
      },
      { providedCodeActionKinds: ["quickfix", "refactor.rewrite"] },
    );
    const legend = this.legend;
    monaco.languages.registerDocumentSemanticTokensProvider(POLICY_LANGUAGE, {
      getLegend: () => legend,
      async provideDocumentSemanticTokens(model) {
        const tokens = await rpc.request<{ data: number[]; resultId?: string } | null>("textDocument/semanticTokens/full", { textDocument: doc(model) });
        return tokens ? { data: new Uint32Array(tokens.data), resultId: tokens.resultId } : null;
      },
      releaseDocumentSemanticTokens() {},
    });
  }
}

/**
 * The policy language in Monaco: comment syntax, and a Monarch tokenizer for the colours
 * before the server's semantic tokens arrive (and for lines it does not classify).
 */
export function registerPolicyLanguage(): void {
  monaco.languages.register({ id: POLICY_LANGUAGE, extensions: [".policy"], aliases: ["qrexec policy"] });
  monaco.languages.setLanguageConfiguration(POLICY_LANGUAGE, { comments: { lineComment: "#" }, wordPattern: /[^\s=]+/ });
  monaco.languages.setMonarchTokensProvider(POLICY_LANGUAGE, {
    defaultToken: "",
    tokenizer: {
      root: [
        [/^\s*#.*$/, "comment"],
        [/^\s*![\w-]+/, "keyword.directive"],
        [/\b(allow|deny|ask)\b/, "keyword"],
        [/@(anyvm|adminvm|default|dispvm)\b/, "keyword"],
        [/@(tag|type|dispvm|uuid):[^\s]*/, "type"],
        [/\b[\w-]+=/, "attribute.name"],
        [/\*/, "keyword"],
      ],
    },
  });
  monaco.editor.defineTheme("qkit", {
    base: "vs",
    inherit: true,
    colors: {},
    rules: [
      { token: "comment", foreground: "6a737d", fontStyle: "italic" },
      { token: "keyword", foreground: "0000c0" },
      { token: "keyword.directive", foreground: "af00db" },
      { token: "type", foreground: "267f99" },
      { token: "attribute.name", foreground: "a31515" },
      // Semantic token types of the server's legend.
      { token: "function", foreground: "795e26" },
      { token: "string", foreground: "a31515" },
      { token: "variable", foreground: "001080" },
      { token: "enumMember", foreground: "098658" },
      { token: "class", foreground: "267f99", fontStyle: "bold" },
      { token: "property", foreground: "a31515" },
      { token: "number", foreground: "098658" },
      { token: "macro", foreground: "af00db" },
    ],
  });
}
