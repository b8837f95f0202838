/**
 * The stack-file commands: "Plan against this machine" (`qubesTemplate.plan`) and
 * "What-if" (`qubesTemplate.whatif`). Each asks the language server (the custom requests
 * `qubes/templatePlan` and `qubes/templateWhatif`, which run the SDK against the configured
 * machine) and shows the answer as a Markdown document; nothing runs here and nothing is
 * applied.
 */
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node.js";
import type { TemplatePlanResult, TemplateWhatifResult } from "@qubes-kit/lsp";
import { showReadOnly } from "./read-only.js";
import { planMarkdown, planSummary, whatifMarkdown, whatifSummary } from "./template-render.js";

// The method names of `lsp/src/protocol.ts`, repeated here so the bundle does not pull in the server.
const TEMPLATE_PLAN = "qubes/templatePlan";
const TEMPLATE_WHATIF = "qubes/templateWhatif";
/** The language id of stack files. */
export const TEMPLATE_LANGUAGE = "qubes-template";

/** The client of the document `uri` (else of the active editor's document). */
type ClientGetter = (uri?: string) => LanguageClient | undefined;

/** The stack file a command is about: the code lens's argument, else the active editor's document. */
function stackUri(arg: unknown): string | undefined {
  if (typeof arg === "string" && arg !== "") return arg;
  if (arg && typeof arg === "object" && "toString" in arg && typeof (arg as { scheme?: unknown }).scheme === "string") return String(arg);
  const editor = vscode.window.activeTextEditor;
  return editor && editor.document.languageId === TEMPLATE_LANGUAGE ? editor.document.uri.toString() : undefined;
}

/** Shows a plan or what-if as a read-only Markdown document named after the stack file. */
async function show(title: string, uri: string, markdown: string): Promise<void> {
  let file = uri.slice(uri.lastIndexOf("/") + 1);
  try {
    file = decodeURIComponent(file);
  } catch {
    // Not percent-encoded text: the name as it is.
  }
  await showReadOnly(`${title} ${file}`, markdown);
}

/** Registers `qubesTemplate.plan` and `qubesTemplate.whatif`. */
export function registerTemplateCommands(context: vscode.ExtensionContext, getClient: ClientGetter): void {
  const run = (name: string, body: (client: LanguageClient, uri: string) => Promise<void>) =>
    vscode.commands.registerCommand(name, async (arg?: unknown) => {
      const uri = stackUri(arg);
      if (!uri) {
        void vscode.window.showErrorMessage("Qubes: open a stack file (*.qubes.yaml) first");
        return;
      }
      if (!vscode.workspace.isTrusted) {
        void vscode.window.showErrorMessage("Qubes: plan and what-if read this machine, which an untrusted workspace may not do; trust the workspace first (Manage Workspace Trust)");
        return;
      }
      const client = getClient(uri);
      if (!client || !client.isRunning()) {
        void vscode.window.showErrorMessage("Qubes: the language server is not running");
        return;
      }
      try {
        await body(client, uri);
      } catch (e) {
        void vscode.window.showErrorMessage(`Qubes: ${e instanceof Error ? e.message : String(e)}`);
      }
    });
  context.subscriptions.push(
    run("qubesTemplate.plan", async (client, uri) => {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: "Qubes: reading the machine and planning…" },
        () => client.sendRequest<TemplatePlanResult>(TEMPLATE_PLAN, { uri }),
      );
      await show("Plan", uri, planMarkdown(result));
      const line = planSummary(result);
      if (result.error || result.plan?.errors.length) void vscode.window.showWarningMessage(`Qubes: ${line}`);
      else void vscode.window.showInformationMessage(`Qubes: ${line}`);
    }),
    run("qubesTemplate.whatif", async (client, uri) => {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: "Qubes: evaluating the policy after apply…" },
        () => client.sendRequest<TemplateWhatifResult>(TEMPLATE_WHATIF, { uri }),
      );
      await show("What-if", uri, whatifMarkdown(result));
      const line = whatifSummary(result);
      if (result.error || result.ok === false) void vscode.window.showWarningMessage(`Qubes: ${line}`);
      else void vscode.window.showInformationMessage(`Qubes: ${line}`);
    }),
  );
}
