/**
 * The Qubes commands: each asks the language server (custom requests typed in
 * `lsp/src/protocol.ts`) and shows the answer; no policy logic lives here.
 */
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node.js";
import type {
  AddRuleResult,
  DecisionTableParams,
  DecisionTableResult,
  EvaluateParams,
  ExplainResult,
  SystemModelResult,
} from "@qubes-kit/lsp";
import { decisionTableHtml, describeDecision, decisionCellAt, describeRequest, explanationMarkdown, isConcreteQube, ruleColumns } from "./render.js";
import { showReadOnly } from "./read-only.js";

// The method names of `lsp/src/protocol.ts`, repeated here so the bundle does not pull in the server.
const SYSTEM_MODEL = "qubes/systemModel";
const EXPLAIN = "qubes/explain";
const DECISION_TABLE = "qubes/decisionTable";
const EXECUTE_COMMAND = "workspace/executeCommand";
/** The command of the server's code lenses (`SIMULATE_RULE_COMMAND`), with `[uri, line]`. */
const SIMULATE_RULE = "qubesPolicy.simulateRule";
const POLICY_LANGUAGES = new Set(["qrexecpolicy", "qrexecpolicy-service"]);

/** The client of the document `uri` (else of the active editor's document). */
type ClientGetter = (uri?: string) => LanguageClient | undefined;

/** Registers `qubesPolicy.simulate`, `qubesPolicy.explainAtCursor`, `qubesPolicy.showDecisionTable` and the code-lens command. */
export function registerCommands(context: vscode.ExtensionContext, getClient: ClientGetter): void {
  const run = (name: string, body: (client: LanguageClient, ...args: unknown[]) => Promise<void>) =>
    vscode.commands.registerCommand(name, async (...args: unknown[]) => {
      // The code lens names its document; the other commands work on the active editor's.
      const client = getClient(name === SIMULATE_RULE && typeof args[0] === "string" ? args[0] : undefined);
      if (!client || !client.isRunning()) {
        void vscode.window.showErrorMessage("Qubes: the policy language server is not running");
        return;
      }
      try {
        await body(client, ...args);
      } catch (e) {
        void vscode.window.showErrorMessage(`Qubes: ${e instanceof Error ? e.message : String(e)}`);
      }
    });
  context.subscriptions.push(
    run("qubesPolicy.simulate", (client) => simulate(client, {})),
    run("qubesPolicy.explainAtCursor", (client) => explainAtCursor(client)),
    run(SIMULATE_RULE, (client, uri, line) => simulateRule(client, String(uri), Number(line))),
    run("qubesPolicy.showDecisionTable", (client) => showDecisionTable(client)),
  );
}

/** The URI of the active policy editor, which selects the policy the server uses. */
function activePolicyUri(): string | undefined {
  const editor = vscode.window.activeTextEditor;
  return editor && POLICY_LANGUAGES.has(editor.document.languageId) ? editor.document.uri.toString() : undefined;
}

async function systemModel(client: LanguageClient, uri: string | undefined): Promise<SystemModelResult> {
  const model = await client.sendRequest<SystemModelResult | null>(SYSTEM_MODEL, uri ? { uri } : {});
  if (!model) throw new Error("the language server returned no system model");
  return model;
}

/** Lets the user pick one of `items` or type any other value; `undefined` when cancelled. */
async function pick(title: string, items: vscode.QuickPickItem[], placeholder: string): Promise<string | undefined> {
  const qp = vscode.window.createQuickPick();
  qp.title = title;
  qp.placeholder = placeholder;
  qp.items = items;
  qp.matchOnDescription = true;
  return new Promise((resolve) => {
    let done = false;
    const finish = (value: string | undefined) => {
      if (done) return;
      done = true;
      resolve(value);
      qp.dispose();
    };
    qp.onDidAccept(() => finish(qp.selectedItems[0]?.label ?? (qp.value.trim() || undefined)));
    qp.onDidHide(() => finish(undefined));
    qp.show();
  });
}

function qubeItems(model: SystemModelResult, role: "source" | "target"): vscode.QuickPickItem[] {
  const items: vscode.QuickPickItem[] = [];
  if (role === "target") {
    items.push(
      { label: "@default", description: "no target given by the caller" },
      { label: "@dispvm", description: "a new disposable from the source's default template" },
      { label: "@adminvm", description: "dom0" },
      ...model.dispvmTemplates.map((t) => ({ label: `@dispvm:${t}`, description: "a new disposable from this template" })),
    );
  }
  for (const q of model.qubes) {
    const tags = q.tags.length ? ` · tags ${q.tags.join(", ")}` : "";
    items.push({ label: q.name, description: `${q.type ?? "unknown type"}${tags}` });
  }
  return items;
}

interface Prefill {
  service?: string | undefined;
  argument?: string | undefined;
  source?: string | undefined;
  target?: string | undefined;
  uri?: string | undefined;
}

/** Asks for what is missing from `prefill`, then runs `qubes/explain` and shows the result. */
async function simulate(client: LanguageClient, prefill: Prefill): Promise<void> {
  const uri = prefill.uri ?? activePolicyUri();
  const model = await systemModel(client, uri);
  if (model.error) void vscode.window.showWarningMessage(`Qubes: ${model.error}`);
  const service =
    prefill.service ??
    (await pick("Simulate a qrexec call (1/3): service", model.services.map((s) => ({ label: s })), "service name, e.g. qubes.Filecopy (+argument allowed)"));
  if (!service) return;
  const noQubes = model.qubes.length === 0 ? " (no system model: type a name)" : "";
  const source = prefill.source ?? (await pick("Simulate (2/3): calling qube", qubeItems(model, "source"), `source qube${noQubes}`));
  if (!source) return;
  const target = prefill.target ?? (await pick("Simulate (3/3): target", qubeItems(model, "target"), `intended target${noQubes}`));
  if (target === undefined) return;
  const params: EvaluateParams = { service, source, target, ...(prefill.argument ? { argument: prefill.argument } : {}), ...(uri ? { uri } : {}) };
  const result = await client.sendRequest<ExplainResult | null>(EXPLAIN, params);
  if (!result) throw new Error("no policy found to evaluate: open a file of a policy.d folder");
  await showExplanation(client, result);
}

const GO_TO_RULE = "Go to rule";
const ADD_RULE = "Add a rule for this call…";

async function showExplanation(client: LanguageClient, result: ExplainResult): Promise<void> {
  await showReadOnly(`Qubes ${describeRequest(result.request)}`, explanationMarkdown(result));
  const location = result.location;
  const buttons = [...(location ? [GO_TO_RULE] : []), ...(result.addRule?.length ? [ADD_RULE] : [])];
  const choice = await vscode.window.showInformationMessage(describeDecision(result.decision), ...buttons);
  if (choice === GO_TO_RULE && location) await revealLocation(client, location);
  if (choice === ADD_RULE) await addRuleForCall(client, result);
}

/**
 * "Add a rule for this call": picks one of the explanation's `qkit.addRuleForCall` commands and
 * runs it on the server (`workspace/executeCommand`), which adds the rule through
 * `workspace/applyEdit`; then shows the rule added and where, or why nothing was added.
 */
async function addRuleForCall(client: LanguageClient, result: ExplainResult): Promise<void> {
  const commands = result.addRule ?? [];
  const picked = await vscode.window.showQuickPick(
    commands.map((c) => ({ label: c.title, command: c })),
    { title: `Add a rule for ${describeRequest(result.request)}`, placeHolder: "what the new rule does with this call" },
  );
  if (!picked) return;
  const r = await client.sendRequest<AddRuleResult | null>(EXECUTE_COMMAND, { command: picked.command.command, arguments: picked.command.arguments });
  if (!r || !r.applied) {
    void vscode.window.showErrorMessage(`Qubes: ${r?.error ?? "the server added no rule"}${r?.rule ? `; the rule: ${r.rule}` : ""}`);
    return;
  }
  if (r.location) await revealLocation(client, r.location);
  void vscode.window.showInformationMessage(`Qubes: added \`${r.rule ?? ""}\``);
}

async function revealLocation(client: LanguageClient, location: NonNullable<ExplainResult["location"]>): Promise<void> {
  const converted = client.protocol2CodeConverter.asLocation(location);
  const editor = await vscode.window.showTextDocument(converted.uri, { selection: converted.range });
  editor.revealRange(converted.range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
}

/** Simulates the rule on a line (1-based), asking for the columns that are not a single qube. */
async function simulateRule(client: LanguageClient, uri: string, line: number): Promise<void> {
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.parse(uri));
  const text = line >= 1 && line <= doc.lineCount ? doc.lineAt(line - 1).text : "";
  const columns = doc.languageId === "qrexecpolicy" ? ruleColumns(text) : undefined;
  if (!columns) {
    await simulate(client, { uri });
    return;
  }
  await simulate(client, {
    uri,
    service: columns.service === "*" ? undefined : columns.service,
    argument: columns.argument === "*" ? undefined : columns.argument,
    source: isConcreteQube(columns.source) ? columns.source : undefined,
    target: isConcreteQube(columns.target) || columns.target === "@default" || columns.target.startsWith("@dispvm") || columns.target === "@adminvm" ? columns.target : undefined,
  });
}

/** Explains the rule under the cursor (or runs a free simulation when the cursor is not on a rule). */
async function explainAtCursor(client: LanguageClient): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || !POLICY_LANGUAGES.has(editor.document.languageId)) {
    await simulate(client, {});
    return;
  }
  await simulateRule(client, editor.document.uri.toString(), editor.selection.active.line + 1);
}

/** Asks for a service and shows its sources × targets table in a webview. */
async function showDecisionTable(client: LanguageClient): Promise<void> {
  const uri = activePolicyUri();
  const model = await systemModel(client, uri);
  if (model.error) void vscode.window.showWarningMessage(`Qubes: ${model.error}`);
  const service = await pick("Decision table: service", model.services.map((s) => ({ label: s })), "service name (+argument allowed)");
  if (!service) return;
  const params: DecisionTableParams = { service, ...(uri ? { uri } : {}) };
  const table = await client.sendRequest<DecisionTableResult | null>(DECISION_TABLE, params);
  if (!table) throw new Error("no policy found: open a file of a policy.d folder");
  const title = `Qubes: ${table.service}${table.argument !== "+" ? table.argument : ""}`;
  const panel = vscode.window.createWebviewPanel("qubesPolicy.decisionTable", title, vscode.ViewColumn.Beside, { enableScripts: true });
  panel.webview.html = decisionTableHtml(table, { cspSource: panel.webview.cspSource, nonce: nonce() });
  panel.webview.onDidReceiveMessage((msg: { row?: number; col?: number }) => {
    const location = decisionCellAt(table, msg.row ?? -1, msg.col ?? -1)?.rule?.location;
    if (location) void revealLocation(client, location);
  });
}

function nonce(): string {
  const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  let out = "";
  for (let i = 0; i < 32; i++) out += chars[Math.floor(Math.random() * chars.length)];
  return out;
}
