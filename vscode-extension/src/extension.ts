/**
 * The VS Code entry point: starts the bundled qrexec policy language server over stdio
 * (policy files and stack files, `*.qubes.yaml`; one server per workspace folder in a
 * multi-root window, `clients.ts`), registers the Qubes commands (policy simulation in
 * `commands.ts`, stack plan and what-if in `template-commands.ts`) and the read-only
 * `qubes-explain:` documents they open (`read-only.ts`). Everything else (diagnostics,
 * completion, hover, formatting, evaluation) happens in the server.
 *
 * In an untrusted workspace the servers run with everything that reads this machine turned
 * off (`settings.ts`); granting trust restarts them with the full settings.
 */
import * as vscode from "vscode";
import { Clients } from "./clients.js";
import { registerCommands } from "./commands.js";
import { registerReadOnlyDocuments } from "./read-only.js";
import { registerTemplateCommands } from "./template-commands.js";

let clients: Clients | undefined;

/** Starts the language clients; VS Code calls this on the first policy or stack file. */
export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const all = new Clients(context);
  clients = all;
  context.subscriptions.push(all);
  registerReadOnlyDocuments(context);
  registerCommands(context, (uri) => all.clientFor(uri));
  registerTemplateCommands(context, (uri) => all.clientFor(uri));
  context.subscriptions.push(
    vscode.workspace.onDidChangeWorkspaceFolders(() => void all.update()),
    vscode.workspace.onDidGrantWorkspaceTrust(() => void all.restart()),
  );
  await all.update();
}

/** Stops the language servers when the extension is deactivated. */
export async function deactivate(): Promise<void> {
  clients?.dispose();
  clients = undefined;
}
