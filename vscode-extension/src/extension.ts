/**
 * The VS Code entry point: starts the bundled qrexec policy language server over stdio
 * (policy files and stack files, `*.qubes.yaml`), registers the Qubes commands (policy
 * simulation in `commands.ts`, stack plan and what-if in `template-commands.ts`), and follows the server's `qubes/documentSyntax`
 * notification (a legacy file opened under the new-format language is switched). Everything else (diagnostics, completion, hover,
 * formatting, evaluation) happens in the server; the commands live in `commands.ts`.
 */
import * as vscode from "vscode";
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from "vscode-languageclient/node.js";
import { registerCommands } from "./commands.js";
import { registerTemplateCommands } from "./template-commands.js";

let client: LanguageClient | undefined;

/** Starts the language client; VS Code calls this on the first policy file. */
export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const module = context.asAbsolutePath("dist/server.cjs");
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.stdio },
    debug: { module, transport: TransportKind.stdio, options: { execArgv: ["--nolazy", "--inspect=6009"] } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", language: "qrexecpolicy" },
      { scheme: "file", language: "qrexecpolicy-service" },
      { scheme: "untitled", language: "qrexecpolicy" },
      { scheme: "untitled", language: "qrexecpolicy-service" },
      { scheme: "file", language: "qubes-template" },
      { scheme: "untitled", language: "qubes-template" },
      // Policy test files: failing calls as diagnostics (the server knows them by name).
      { scheme: "file", pattern: "**/*.policytest.{yaml,yml}" },
    ],
    synchronize: {
      configurationSection: "qubesPolicy",
      fileEvents: vscode.workspace.createFileSystemWatcher("**/{*.policy,policy.d/include/**,qubes-rpc/policy/**,*.qubes.yaml,*.qubes.yml,*.policytest.yaml,*.policytest.yml}"),
    },
    initializationOptions: { settings: vscode.workspace.getConfiguration("qubesPolicy") },
  };
  // The id `qubesPolicy` makes the client honour the `qubesPolicy.trace.server` setting.
  client = new LanguageClient("qubesPolicy", "Qubes qrexec policy", serverOptions, clientOptions);
  registerCommands(context, () => client);
  registerTemplateCommands(context, () => client);
  await client.start();
  // The server says when a document is read in the other grammar (a legacy file loaded by
  // `!include-service` from `policy.d/include/`): switch its language so highlighting matches.
  client.onNotification("qubes/documentSyntax", (params: { uri: string; languageId: string }) => {
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === params.uri);
    if (doc && doc.languageId !== params.languageId) void vscode.languages.setTextDocumentLanguage(doc, params.languageId);
  });
}

/** Stops the language server when the extension is deactivated. */
export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
