/**
 * The web playground page: Monaco editors for the policy files and the system model, our
 * language server in a web worker, a call simulator (`qubes/explain`), the decision table
 * (`qubes/decisionTable`) and a shareable link (the state, compressed, in the fragment).
 */
import * as monaco from "monaco-editor/esm/vs/editor/editor.api.js";
// Only the editor features the page uses (not the whole editor.main set of contributions).
import "monaco-editor/esm/vs/editor/browser/coreCommands.js";
import "monaco-editor/esm/vs/editor/browser/widget/codeEditor/codeEditorWidget.js";
import "monaco-editor/esm/vs/editor/contrib/clipboard/browser/clipboard.js";
import "monaco-editor/esm/vs/editor/contrib/codeAction/browser/codeActionContributions.js";
import "monaco-editor/esm/vs/editor/contrib/comment/browser/comment.js";
import "monaco-editor/esm/vs/editor/contrib/contextmenu/browser/contextmenu.js";
import "monaco-editor/esm/vs/editor/contrib/cursorUndo/browser/cursorUndo.js";
import "monaco-editor/esm/vs/editor/contrib/find/browser/findController.js";
import "monaco-editor/esm/vs/editor/contrib/format/browser/formatActions.js";
import "monaco-editor/esm/vs/editor/contrib/gotoError/browser/gotoError.js";
import "monaco-editor/esm/vs/editor/contrib/hover/browser/hoverContribution.js";
import "monaco-editor/esm/vs/editor/contrib/semanticTokens/browser/documentSemanticTokens.js";
import "monaco-editor/esm/vs/editor/contrib/snippet/browser/snippetController2.js";
import "monaco-editor/esm/vs/editor/contrib/suggest/browser/suggestController.js";
import "monaco-editor/esm/vs/editor/contrib/wordOperations/browser/wordOperations.js";
import "monaco-editor/esm/vs/editor/common/standaloneStrings.js";
import "monaco-editor/esm/vs/base/browser/ui/codicons/codiconStyles.js";
import type { AddRuleResult, DecisionTableResult, ExplainResult, SystemModelResult } from "@qubes-kit/lsp";
import { cellText, decisionCellAt, describeDecision, describeRequest, escapeHtml, ruleColumns } from "../../vscode-extension/src/render.js";
import { jsonErrorOffset } from "./json-offset.js";
import type { SystemMessage } from "./messages.js";
import { MonacoLanguageClient, POLICY_LANGUAGE, registerPolicyLanguage, type ListedDiagnostic } from "./monaco-lsp.js";
import { RpcClient, RpcError } from "./rpc.js";
import { decodeState, encodeState, type PlaygroundState } from "./share.js";

declare const __PLAYGROUND_DEFAULTS__: PlaygroundState;

const POLICY_DIR = "/etc/qubes/policy.d";
const SYSTEM_PATH = "/playground/system.json";
const SYSTEM_URI = monaco.Uri.file(SYSTEM_PATH);
const STORAGE_KEY = "qkit-playground-v1";
/** A file name relative to the policy directory: a top-level file or one under `include/`. */
const FILE_NAME = /^(include\/)?[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;

(self as unknown as { MonacoEnvironment: monaco.Environment }).MonacoEnvironment = {
  getWorker: () => new Worker("editor.worker.js", { name: "monaco-editor" }),
};

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const status = (text: string, kind: "ok" | "error" | "busy" = "ok") => {
  const el = $("status");
  el.textContent = text;
  el.dataset["kind"] = kind;
};

/** One-line text of a failed request. */
function failure(e: unknown): string {
  if (e instanceof RpcError) return `the language server answered ${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------- state and editors

interface OpenFile {
  name: string;
  model: monaco.editor.ITextModel;
  sync: monaco.IDisposable;
  view?: monaco.editor.ICodeEditorViewState | null;
}

const files: OpenFile[] = [];
let systemModel: monaco.editor.ITextModel;
let systemView: monaco.editor.ICodeEditorViewState | null = null;
/** The tab shown: a policy file name, or `null` for the system model. */
let current: string | null = null;
let editor: monaco.editor.IStandaloneCodeEditor;
let client: MonacoLanguageClient;
let rpc: RpcClient;
let worker: Worker;

const uriOf = (name: string) => monaco.Uri.file(`${POLICY_DIR}/${name}`);

function state(): PlaygroundState {
  return { files: files.map((f) => ({ name: f.name, text: f.model.getValue() })), system: systemModel.getValue() };
}

let saveTimer: ReturnType<typeof setTimeout> | undefined;
/** Keeps the work in the browser's storage, so a reload never loses it. */
function scheduleSave(): void {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(state()));
    } catch {
      // Storage full or disabled: the work stays in the page; the share link still holds it.
    }
  }, 400);
}

function addFile(name: string, text: string): OpenFile {
  const model = monaco.editor.createModel(text, POLICY_LANGUAGE, uriOf(name));
  const file: OpenFile = { name, model, sync: client.track(model) };
  model.onDidChangeContent(scheduleSave);
  files.push(file);
  files.sort((a, b) => a.name.localeCompare(b.name));
  return file;
}

function removeFile(name: string): void {
  const i = files.findIndex((f) => f.name === name);
  if (i < 0) return;
  const [file] = files.splice(i, 1);
  file!.sync.dispose();
  file!.model.dispose();
  if (current === name) show(files[0]?.name ?? null);
  else renderTabs();
  scheduleSave();
}

/** Shows a file (or the system model, `null`) in the editor. */
function show(name: string | null): void {
  const old = current === null ? undefined : files.find((f) => f.name === current);
  if (old) old.view = editor.saveViewState();
  else if (current === null && editor.getModel() === systemModel) systemView = editor.saveViewState();
  current = name;
  const file = name === null ? undefined : files.find((f) => f.name === name);
  editor.setModel(file ? file.model : systemModel);
  const view = file ? file.view : systemView;
  if (view) editor.restoreViewState(view);
  renderTabs();
  editor.focus();
}

function renderTabs(): void {
  const tabs = $("tabs");
  tabs.replaceChildren();
  const tab = (label: string, selected: boolean, onClick: () => void, extra?: HTMLElement) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tab";
    b.textContent = label;
    b.setAttribute("role", "tab");
    b.setAttribute("aria-selected", String(selected));
    b.dataset["file"] = label;
    b.addEventListener("click", onClick);
    const wrap = document.createElement("span");
    wrap.className = "tab-wrap";
    wrap.append(b);
    if (extra) wrap.append(extra);
    tabs.append(wrap);
  };
  for (const f of files) {
    let close: HTMLElement | undefined;
    if (files.length > 1) {
      const button = document.createElement("button");
      button.type = "button";
      close = button;
      close.className = "tab-close";
      close.title = `remove ${f.name}`;
      close.textContent = "×";
      close.addEventListener("click", () => {
        if (confirm(`Remove ${f.name} from the playground? Its text is lost unless a share link holds it.`)) removeFile(f.name);
      });
    }
    tab(f.name, current === f.name, () => show(f.name), close);
  }
  tab("system.json", current === null, () => show(null));
}

// ---------------------------------------------------------------- the system model

let systemTimer: ReturnType<typeof setTimeout> | undefined;
let systemQubes: string[] = [];

/** Checks the system model's JSON (a marker where it breaks), then hands it to the server. */
function pushSystem(): void {
  const text = systemModel.getValue();
  const markers: monaco.editor.IMarkerData[] = [];
  let problem: string | undefined;
  try {
    const value = JSON.parse(text) as { domains?: unknown };
    if (typeof value !== "object" || value === null || typeof value.domains !== "object" || value.domains === null) {
      problem = 'system.json: not a system model: expected an object with "domains" (as `qkit system snapshot --json` writes) [system-not-a-model]';
    }
  } catch (e) {
    const message = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ");
    const pos = systemModel.getPositionAt(jsonErrorOffset(text) ?? text.length);
    markers.push({ severity: monaco.MarkerSeverity.Error, message, startLineNumber: pos.lineNumber, startColumn: pos.column, endLineNumber: pos.lineNumber, endColumn: pos.column + 1 });
    problem = `system.json:${pos.lineNumber}:${pos.column}: not valid JSON: ${message}; fix it, the simulator uses no system model until then [system-json-invalid]`;
  }
  monaco.editor.setModelMarkers(systemModel, "system-json", markers);
  $("system-problem").textContent = problem ?? "";
  const message: SystemMessage = { playground: "system", path: SYSTEM_PATH, text };
  worker.postMessage(message);
  rpc.notify("workspace/didChangeWatchedFiles", { changes: [{ uri: SYSTEM_URI.toString(), type: 2 }] });
  void refreshSystem();
}

async function refreshSystem(): Promise<void> {
  try {
    const model = await rpc.request<SystemModelResult>("qubes/systemModel", { uri: files[0]?.model.uri.toString() });
    systemQubes = model.qubes.map((q) => q.name);
    fill("qubes-list", [...systemQubes, "@default", "@adminvm", "@dispvm", ...model.dispvmTemplates.map((t) => `@dispvm:${t}`)]);
    fill("sources-list", systemQubes);
    fill("services-list", model.services);
    status(model.error ? `system model: ${model.error}` : `system model: ${model.qubes.length} qubes`, model.error ? "error" : "ok");
  } catch (e) {
    status(`cannot read the system model: ${failure(e)}; edit system.json to retry [system-unreadable]`, "error");
  }
}

function fill(id: string, values: string[]): void {
  const list = $(id);
  list.replaceChildren(
    ...[...new Set(values)].map((v) => {
      const o = document.createElement("option");
      o.value = v;
      return o;
    }),
  );
}

// ---------------------------------------------------------------- problems panel

function renderProblems(all: ListedDiagnostic[]): void {
  const list = $("problems");
  const shown = all.filter((d) => d.severity !== "hint");
  $("problems-count").textContent = String(shown.length);
  list.replaceChildren(
    ...shown.map((d) => {
      const li = document.createElement("li");
      li.className = d.severity;
      const name = d.uri.slice(monaco.Uri.file(POLICY_DIR + "/").toString().length);
      li.textContent = `${decodeURIComponent(name)}:${d.line}:${d.column} ${d.severity}[${d.code}]: ${d.message}`;
      li.tabIndex = 0;
      const go = () => reveal(decodeURIComponent(name), d.line, d.column);
      li.addEventListener("click", go);
      li.addEventListener("keydown", (e) => e.key === "Enter" && go());
      return li;
    }),
  );
}

function reveal(name: string, line: number, column = 1): void {
  if (!files.some((f) => f.name === name)) return;
  show(name);
  editor.setPosition({ lineNumber: line, column });
  editor.revealLineInCenter(line);
}

// ---------------------------------------------------------------- simulator and table

const value = (id: string) => $<HTMLInputElement>(id).value.trim();
/** A qrexec argument as the engine takes it: `+` and the text (`+` alone when empty). */
const argument = (id: string) => {
  const v = value(id);
  return v === "" ? undefined : v.startsWith("+") ? v : `+${v}`;
};

async function simulate(): Promise<void> {
  const out = $("sim-result");
  const service = value("sim-service");
  const source = value("sim-source");
  if (!service || !source) {
    out.innerHTML = `<p class="error">give a service (e.g. qubes.Filecopy) and a source qube to simulate a call [simulate-incomplete]</p>`;
    return;
  }
  out.innerHTML = `<p class="busy">deciding…</p>`;
  try {
    const r = await rpc.request<ExplainResult>("qubes/explain", {
      uri: files[0]?.model.uri.toString(),
      service,
      argument: argument("sim-argument"),
      source,
      target: value("sim-target"),
    });
    const d = r.decision;
    const action = d.ok ? d.action : "deny";
    const parts = [
      `<p class="request">${escapeHtml(describeRequest(r.request))}</p>`,
      `<p id="sim-decision" class="decision ${action}" data-action="${action}">${escapeHtml(describeDecision(d))}</p>`,
    ];
    if (r.summary) parts.push(`<p class="summary">${escapeHtml(r.summary)}</p>`);
    const ex = r.explanation;
    if (ex?.intendedTarget !== undefined) parts.push(`<p>intended target: <code>${escapeHtml(ex.intendedTarget)}</code>${ex.targetNote ? ` (${escapeHtml(ex.targetNote)})` : ""}</p>`);
    const notes = [...(ex?.resolution ?? []), ...(ex?.askNotes ?? [])];
    if (notes.length) parts.push(`<ul class="notes">${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>`);
    if (r.note) parts.push(`<p class="note">${escapeHtml(r.note)}</p>`);
    if (r.steps.length) {
      const rows = r.steps
        .map((s, i) => {
          const where = `${s.file}:${s.line ?? "None"}`;
          return `<tr class="${s.matched ? "matched" : ""}"><td>${i + 1}</td><td><code>${escapeHtml(s.rule)}</code></td><td><a href="#" data-file="${escapeHtml(s.file)}" data-line="${s.line ?? ""}">${escapeHtml(where)}</a></td><td>${s.matched ? "<strong>matched</strong>" : escapeHtml(s.reason)}</td></tr>`;
        })
        .join("");
      parts.push(`<table class="steps"><thead><tr><th>#</th><th>rule</th><th>where</th><th>result</th></tr></thead><tbody>${rows}</tbody></table>`);
    }
    if (ex?.skipped) parts.push(`<p class="note">${ex.skipped} rule${ex.skipped === 1 ? "" : "s"} of other services skipped.</p>`);
    // "Add a rule for this call": the server's commands, run through workspace/executeCommand (it edits the policy through workspace/applyEdit).
    if (r.addRule?.length) {
      const buttons = r.addRule.map((c, i) => `<button type="button" class="add-rule" data-add-rule="${i}">${escapeHtml(c.title)}</button>`).join(" ");
      parts.push(`<p class="add-rules">${buttons}</p><p id="add-rule-result" class="add-rule-result"></p>`);
    }
    out.innerHTML = parts.join("\n");
    lastAddRule = r.addRule ?? [];
  } catch (e) {
    out.innerHTML = `<p class="error">${escapeHtml(failure(e))}</p>`;
  }
}

/** The "add a rule for this call" commands of the last simulation. */
let lastAddRule: NonNullable<ExplainResult["addRule"]> = [];

/** Runs one of the last simulation's "add a rule" commands, then decides the call again. */
async function addRuleForCall(index: number): Promise<void> {
  const command = lastAddRule[index];
  if (!command) return;
  const say = (html: string) => {
    const el = document.getElementById("add-rule-result");
    if (el) el.innerHTML = html;
  };
  try {
    const r = await rpc.request<AddRuleResult | null>("workspace/executeCommand", { command: command.command, arguments: command.arguments });
    if (!r || !r.applied) {
      say(`<span class="error">${escapeHtml(r?.error ?? "the server added no rule")}${r?.rule ? `: add <code>${escapeHtml(r.rule)}</code> by hand` : ""}</span>`);
      return;
    }
    const name = r.location ? fileName(monaco.Uri.parse(r.location.uri).path) : undefined;
    const line = r.location ? r.location.range.start.line + 1 : 0;
    if (name && line > 0) reveal(name, line);
    await simulate();
    say(`added <code>${escapeHtml(r.rule ?? "")}</code>${name ? ` to ${escapeHtml(name)}:${line}` : ""}`);
  } catch (e) {
    say(`<span class="error">${escapeHtml(failure(e))}</span>`);
  }
}

/** The file name (relative to the policy directory) of a rule reference's path, if it is one of ours. */
function fileName(file: string): string | undefined {
  const rel = file.startsWith(POLICY_DIR + "/") ? file.slice(POLICY_DIR.length + 1) : file;
  return files.some((f) => f.name === rel) ? rel : undefined;
}

async function decisionTable(): Promise<void> {
  const out = $("table-result");
  const service = value("table-service");
  if (!service) {
    out.innerHTML = `<p class="error">give a service (e.g. qubes.Filecopy) to draw its decision table [table-incomplete]</p>`;
    return;
  }
  out.innerHTML = `<p class="busy">deciding every call…</p>`;
  try {
    const t = await rpc.request<DecisionTableResult>("qubes/decisionTable", { uri: files[0]?.model.uri.toString(), service, argument: argument("table-argument") });
    const head = t.targets.map((x) => `<th scope="col">${escapeHtml(x)}</th>`).join("");
    // Each kind of cell is written once (label, tooltip, rule link); a cell is its kind's text.
    const kindHtml = t.kinds.map((k, n) => {
      const cell = decisionCellAt({ ...t, cells: [[n]], targets: [""] }, 0, 0)!;
      const { label, title } = cellText(cell, k.offer);
      const shown = k.action === "allow" && k.target === undefined ? "allow" : label;
      const tip = k.action === "allow" && k.target === undefined ? `allow${cell.rule ? ` (${cell.rule.file}:${cell.rule.line ?? "None"})` : ""}` : title;
      const link = cell.rule ? ` data-file="${escapeHtml(cell.rule.file)}" data-line="${cell.rule.line ?? ""}"` : "";
      return `<td class="${cell.action}" title="${escapeHtml(tip)}"${link}>${escapeHtml(shown)}</td>`;
    });
    const rows = t.sources
      .map((s, i) => {
        let cells = "";
        for (let j = 0; j < t.targets.length; j++) cells += kindHtml[t.cells[i]?.[j] ?? -1] ?? `<td>—</td>`;
        return `<tr><th scope="row">${escapeHtml(s)}</th>${cells}</tr>`;
      })
      .join("");
    const long = [...new Set(t.kinds.filter((k) => k.action === "ask" && k.offer !== undefined && (t.offers[k.offer]?.length ?? 0) > 12).map((k) => k.offer!))].sort((a, b) => a - b);
    const offers = long.length ? `<h3>Offer lists of the asks</h3><ol class="offers">${long.map((o) => `<li value="${o + 1}">${escapeHtml(t.offers[o]!.join(", "))}</li>`).join("")}</ol>` : "";
    const note = t.note ? `<p class="note">${escapeHtml(t.note)}</p>` : "";
    out.innerHTML = `${note}<p class="caption">${escapeHtml(t.service)}${t.argument !== "+" ? escapeHtml(t.argument) : ""}: source (rows) → target (columns); click a cell to see its rule</p><div class="table-scroll"><table id="decision-table" class="decisions"><thead><tr><th></th>${head}</tr></thead><tbody>${rows}</tbody></table></div>${offers}`;
  } catch (e) {
    out.innerHTML = `<p class="error">${escapeHtml(failure(e))}</p>`;
  }
}

/** Clicks on `[data-file][data-line]` in the result panels open that rule. */
function followRuleLinks(container: HTMLElement): void {
  container.addEventListener("click", (e) => {
    const el = (e.target as HTMLElement).closest<HTMLElement>("[data-file]");
    if (!el) return;
    e.preventDefault();
    const name = fileName(el.dataset["file"] ?? "");
    const line = Number(el.dataset["line"]);
    if (name && line > 0) reveal(name, line);
  });
}

/** Fills the simulator from the rule under the cursor (concrete qubes only). */
function fromCursor(): void {
  const model = editor.getModel();
  const pos = editor.getPosition();
  if (!model || !pos || model === systemModel) return;
  const cols = ruleColumns(model.getLineContent(pos.lineNumber));
  if (!cols) {
    $("sim-result").innerHTML = `<p class="error">line ${pos.lineNumber} is not a rule: put the cursor on a rule line [not-a-rule]</p>`;
    return;
  }
  const concrete = (t: string) => (t !== "*" && !t.startsWith("@") ? t : "");
  $<HTMLInputElement>("sim-service").value = cols.service === "*" ? "" : cols.service;
  $<HTMLInputElement>("sim-argument").value = cols.argument === "*" ? "" : cols.argument;
  $<HTMLInputElement>("sim-source").value = concrete(cols.source);
  const special = cols.target === "@default" || cols.target === "@adminvm" || cols.target.startsWith("@dispvm");
  $<HTMLInputElement>("sim-target").value = special ? cols.target : concrete(cols.target);
}

// ---------------------------------------------------------------- sharing

async function share(): Promise<void> {
  const fragment = await encodeState(state());
  history.replaceState(null, "", `#${fragment}`);
  const url = location.href;
  const box = $<HTMLInputElement>("share-url");
  box.value = url;
  box.hidden = false;
  box.select();
  let copied = false;
  try {
    await navigator.clipboard.writeText(url);
    copied = true;
  } catch {
    // No clipboard permission (or no secure context): the link is in the box, selected.
  }
  $("share-note").textContent = `${copied ? "link copied" : "link ready: copy it from the box"} (${url.length} characters; the policy travels in the fragment, which no server sees)`;
}

/** The state to open with: the link's, else the last work in this browser, else the example. */
async function initialState(): Promise<{ state: PlaygroundState; note?: string }> {
  const decoded = await decodeState(location.hash);
  if ("state" in decoded) return { state: decoded.state, note: "opened the shared link" };
  const note = "error" in decoded ? decoded.error : undefined;
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved) {
      const s = JSON.parse(saved) as PlaygroundState;
      if (Array.isArray(s.files) && s.files.length && typeof s.system === "string" && s.files.every((f) => typeof f?.name === "string" && typeof f?.text === "string")) {
        return { state: s, note: note ?? "restored your last work in this browser" };
      }
    }
  } catch {
    // Unreadable storage: fall back to the example.
  }
  return { state: __PLAYGROUND_DEFAULTS__, note };
}

// ---------------------------------------------------------------- start

async function main(): Promise<void> {
  registerPolicyLanguage();
  status("starting the language server…", "busy");
  const settings = { policyDir: POLICY_DIR, system: { source: "file", file: SYSTEM_PATH }, codeLens: false };
  worker = new Worker("server.worker.js", { name: "qkit-lsp" });
  worker.addEventListener("error", (e) => status(`the language server worker failed: ${e.message}; reload the page (your work is kept in this browser) [server-failed]`, "error"));
  rpc = new RpcClient(worker);
  rpc.onNotification("window/logMessage", (p) => console.debug("[qkit-lsp]", (p as { message: string }).message));
  rpc.onRequest("client/registerCapability", () => null);
  rpc.onRequest("window/workDoneProgress/create", () => null);
  rpc.onRequest("workspace/configuration", (p) => ((p as { items: unknown[] }).items ?? []).map(() => settings));
  client = new MonacoLanguageClient(rpc);
  client.onDiagnostics(renderProblems);

  const { state: start, note } = await initialState();
  if (note) $("share-note").textContent = note;
  worker.postMessage({ playground: "system", path: SYSTEM_PATH, text: start.system } satisfies SystemMessage);
  await client.start(settings);

  systemModel = monaco.editor.createModel(start.system, "json", SYSTEM_URI);
  systemModel.onDidChangeContent(() => {
    scheduleSave();
    clearTimeout(systemTimer);
    systemTimer = setTimeout(pushSystem, 300);
  });
  const refused: string[] = [];
  for (const f of start.files) {
    if (FILE_NAME.test(f.name) && !files.some((g) => g.name === f.name)) addFile(f.name, f.text);
    else refused.push(f.name);
  }
  if (refused.length) {
    const names = refused.map((n) => JSON.stringify(n)).join(", ");
    $("share-note").textContent = `not opened: ${names} (a file name is NAME.policy or include/NAME, once); the link still holds ${refused.length === 1 ? "it" : "them"} [file-name-invalid]`;
  }
  if (!files.length) addFile("30-user.policy", "");

  editor = monaco.editor.create($("editor"), {
    model: files[0]!.model,
    theme: "qkit",
    automaticLayout: true,
    minimap: { enabled: false },
    fontSize: 13,
    wordBasedSuggestions: "off",
    "semanticHighlighting.enabled": true,
    renderWhitespace: "selection",
    scrollBeyondLastLine: false,
    fixedOverflowWidgets: true,
  });
  current = files[0]!.name;
  renderTabs();
  pushSystem();

  $("format").addEventListener("click", () => void editor.getAction("editor.action.formatDocument")?.run());
  $("share").addEventListener("click", () => void share());
  $("reset").addEventListener("click", () => {
    if (!confirm("Replace all files and the system model with the example? Your text is lost unless a share link holds it.")) return;
    for (const f of [...files]) {
      f.sync.dispose();
      f.model.dispose();
    }
    files.length = 0;
    for (const f of __PLAYGROUND_DEFAULTS__.files) addFile(f.name, f.text);
    systemModel.setValue(__PLAYGROUND_DEFAULTS__.system);
    show(files[0]!.name);
    history.replaceState(null, "", location.pathname);
  });
  $("add-file").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $<HTMLInputElement>("new-file");
    const name = input.value.trim();
    const problem = !FILE_NAME.test(name)
      ? `${name || "(empty)"}: a file name is NAME.policy or include/NAME (letters, digits, _ . + -) [file-name-invalid]`
      : files.some((f) => f.name === name)
        ? `${name} already exists: pick another name [file-exists]`
        : undefined;
    $("add-file-problem").textContent = problem ?? "";
    if (problem) return;
    addFile(name, name.startsWith("include/") ? "# rules for !include " + name + "\n" : "");
    input.value = "";
    show(name);
  });
  $("sim-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void simulate();
  });
  $("sim-cursor").addEventListener("click", fromCursor);
  $("table-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void decisionTable();
  });
  followRuleLinks($("sim-result"));
  $("sim-result").addEventListener("click", (e) => {
    const button = (e.target as HTMLElement).closest<HTMLElement>("[data-add-rule]");
    if (button) void addRuleForCall(Number(button.dataset["addRule"]));
  });
  followRuleLinks($("table-result"));
  document.body.dataset["ready"] = "true";
}

main().catch((e) => status(`the playground failed to start: ${failure(e)}; reload the page (your work is kept in this browser) [start-failed]`, "error"));
