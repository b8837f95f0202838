/**
 * The language clients: one bundled server per workspace folder in a multi-root window, so
 * each folder's (resource-scoped) settings reach the server that handles that folder's
 * documents; one server for everything when the window has one folder or none.
 *
 * Diagnostics are pulled (`textDocument/diagnostic` for open documents, `workspace/diagnostic`
 * for the rest of the folder, policy test files included): the server then pushes none, so no
 * list is shown twice.
 *
 * Each client answers the server's `workspace/configuration` with its folder's settings as
 * `serverSettings` makes them (workspace trust applied), and shows the server's
 * `qubes/systemModelStatus` errors as a notification with an "Open settings" action.
 */
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  TransportKind,
  type DocumentSelector,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node.js";
import type { SystemModelStatusParams } from "@qubes-kit/lsp";
import { restrictedByTrust, SECTION, serverSettings, systemModelMessage } from "./settings.js";

/** The languages the server handles. */
const LANGUAGES = ["qrexecpolicy", "qrexecpolicy-service", "qubes-template"];
/** Policy test files: failing calls as diagnostics (the server knows them by name, whatever their language). */
const POLICY_TESTS = "**/*.policytest.{yaml,yml}";
/** The files whose changes the server hears about. */
const WATCHED = "**/{*.policy,policy.d/include/**,qubes-rpc/policy/**,*.qubes.yaml,*.qubes.yml,*.policytest.yaml,*.policytest.yml,*.json}";
// Notification methods of `lsp/src/protocol.ts`, repeated so the bundle does not pull in the server.
const DOCUMENT_SYNTAX = "qubes/documentSyntax";
const SYSTEM_MODEL_STATUS = "qubes/systemModelStatus";
/** The key of the client for untitled documents in a multi-root window. */
const UNTITLED = "untitled:";
/** The action of the system-model notification. */
export const OPEN_SETTINGS = "Open settings";

/**
 * The running clients, keyed by workspace folder URI (`""`: the client for everything in a
 * window with one folder or none; `untitled:`: untitled documents of a multi-root window).
 * In a multi-root window, a file outside every folder has no server: add its folder to the
 * workspace (or open it in a window of its own).
 */
export class Clients implements vscode.Disposable {
  private readonly clients = new Map<string, LanguageClient>();
  private readonly shownErrors = new Map<string, string>();
  /** The server commands registered as VS Code commands (once per window). */
  private readonly routed = new Set<string>();
  private readonly output = vscode.window.createOutputChannel("Qubes qrexec policy");
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly context: vscode.ExtensionContext) {}

  /** Starts the clients the window's folders call for (stopping the ones it no longer does). */
  update(): Promise<void> {
    this.chain = this.chain.then(() => this.reconcile()).catch((e) => this.output.appendLine(`qubes: ${String(e)}`));
    return this.chain;
  }

  /** Stops every client and starts them again (trust granted: the settings change meaning). */
  restart(): Promise<void> {
    this.chain = this.chain
      .then(async () => {
        await this.stopAll();
        await this.reconcile();
      })
      .catch((e) => this.output.appendLine(`qubes: ${String(e)}`));
    return this.chain;
  }

  /** The client of the document `uri` (a string or a `Uri`), else of the active editor's document, else any. */
  clientFor(uri?: string | vscode.Uri): LanguageClient | undefined {
    const single = this.clients.get("");
    if (single) return single;
    const target = typeof uri === "string" ? safeParse(uri) : (uri ?? vscode.window.activeTextEditor?.document.uri);
    if (target?.scheme === "untitled") return this.clients.get(UNTITLED);
    const folder = target ? vscode.workspace.getWorkspaceFolder(target) : undefined;
    if (folder) return this.clients.get(folder.uri.toString());
    return this.clients.values().next().value;
  }

  /** Stops every language server (deactivation waits for this). */
  async stop(): Promise<void> {
    this.chain = this.chain.then(() => this.stopAll());
    await this.chain;
  }

  dispose(): void {
    void this.stop().finally(() => this.output.dispose());
  }

  private async reconcile(): Promise<void> {
    const folders = vscode.workspace.workspaceFolders ?? [];
    const wanted = new Map<string, vscode.WorkspaceFolder | undefined>();
    if (folders.length <= 1) wanted.set("", folders[0]);
    else {
      for (const f of folders) wanted.set(f.uri.toString(), f);
      // Untitled documents belong to no folder: one more server, with the window's settings.
      wanted.set(UNTITLED, undefined);
    }
    for (const [key, client] of [...this.clients]) {
      if (wanted.has(key)) continue;
      this.clients.delete(key);
      await client.stop().catch(() => undefined);
    }
    for (const [key, folder] of wanted) {
      if (this.clients.has(key)) continue;
      // The single client of a one-folder window serves every document; its folder's settings apply.
      const client = key === UNTITLED ? this.create(undefined, false) : this.create(folder, key === "");
      this.clients.set(key, client);
      await client.start();
    }
  }

  private async stopAll(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.stop().catch(() => undefined)));
  }

  private create(folder: vscode.WorkspaceFolder | undefined, everything: boolean): LanguageClient {
    const module = this.context.asAbsolutePath("dist/server.cjs");
    const serverOptions: ServerOptions = {
      run: { module, transport: TransportKind.stdio },
      debug: { module, transport: TransportKind.stdio, options: { execArgv: ["--nolazy", "--inspect=6009"] } },
    };
    const settings = () => this.settingsFor(folder);
    const languages: DocumentSelector = everything
      ? LANGUAGES.flatMap((language) => [{ scheme: "file", language }, { scheme: "untitled", language }])
      : folder
        ? LANGUAGES.map((language) => ({ scheme: "file", language, pattern: new vscode.RelativePattern(folder, "**/*") }))
        : LANGUAGES.map((language) => ({ scheme: "untitled", language }));
    const tests: DocumentSelector = everything
      ? [{ scheme: "file", pattern: POLICY_TESTS }]
      : folder
        ? // The client takes VS Code's RelativePattern here (as for the languages above).
          [{ scheme: "file", pattern: new vscode.RelativePattern(folder, POLICY_TESTS) } as unknown as { scheme: string; pattern: string }]
        : [];
    const documentSelector: DocumentSelector = [...languages, ...tests];
    const clientOptions: LanguageClientOptions = {
      documentSelector,
      ...(folder && !everything ? { workspaceFolder: folder } : {}),
      outputChannel: this.output,
      synchronize: {
        fileEvents: vscode.workspace.createFileSystemWatcher(folder && !everything ? new vscode.RelativePattern(folder, WATCHED) : WATCHED),
      },
      initializationOptions: { settings: settings() },
      middleware: {
        // The untitled documents' server sees every folder and would repeat their diagnostics:
        // it keeps the (pulled) ones of its untitled documents and pulls no workspace report, so
        // what it pushes for files on disk is dropped here.
        ...(!everything && !folder
          ? {
              handleDiagnostics: (uri: vscode.Uri, diagnostics: vscode.Diagnostic[], next: (uri: vscode.Uri, diagnostics: vscode.Diagnostic[]) => void) => {
                if (uri.scheme === "untitled") next(uri, diagnostics);
              },
              provideWorkspaceDiagnostics: () => ({ items: [] }),
            }
          : {}),
        workspace: {
          // The server asks for the `qubesPolicy` section (and nothing else): answer with this
          // folder's settings, trust applied, whatever scope the request names.
          configuration: (params) => params.items.map((item) => (item.section === SECTION ? settings() : null)),
        },
      },
    };
    // The id `qubesPolicy` makes the client honour the `qubesPolicy.trace.server` setting.
    const name = everything ? "Qubes qrexec policy" : folder ? `Qubes qrexec policy (${folder.name})` : "Qubes qrexec policy (untitled)";
    const client = new LanguageClient("qubesPolicy", name, serverOptions, clientOptions);
    this.routeServerCommands(client);
    client.onNotification(DOCUMENT_SYNTAX, (params: { uri: string; languageId: string }) => {
      // A legacy file read by `!include-service` from `policy.d/include/`: switch its language so highlighting matches.
      const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === params.uri);
      if (doc && doc.languageId !== params.languageId) void vscode.languages.setTextDocumentLanguage(doc, params.languageId);
    });
    client.onNotification(SYSTEM_MODEL_STATUS, (status: SystemModelStatusParams) => this.systemModelStatus(status, folder, everything));
    return client;
  }

  /**
   * The server's `workspace/executeCommand` commands are VS Code commands, which exist once per
   * window: every client would register them again (and the second client's start would fail).
   * Register each once, sending it to the client of the document it names (else of the active
   * editor's document).
   */
  private routeServerCommands(client: LanguageClient): void {
    const feature = client.getFeature(ExecuteCommandRequest.method) as unknown as {
      register(data: { registerOptions?: { commands?: string[] } }): void;
    };
    feature.register = (data) => {
      for (const command of data.registerOptions?.commands ?? []) {
        if (this.routed.has(command)) continue;
        this.routed.add(command);
        try {
          this.context.subscriptions.push(
            vscode.commands.registerCommand(command, (...args: unknown[]) => {
              const uri = args.find((a): a is string => typeof a === "string" && /^[a-z][a-z0-9+.-]*:/.test(a));
              return this.clientFor(uri)?.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
            }),
          );
        } catch (e) {
          this.output.appendLine(`qubes: cannot register the server command ${command}: ${String(e)}`);
        }
      }
    };
  }

  private settingsFor(folder: vscode.WorkspaceFolder | undefined) {
    const raw = vscode.workspace.getConfiguration(undefined, folder?.uri).get(SECTION);
    const trusted = vscode.workspace.isTrusted;
    if (!trusted) {
      const off = restrictedByTrust(raw);
      if (off.length) this.output.appendLine(`qubes: untrusted workspace, turned off: ${off.join(", ")}`);
    }
    return serverSettings(raw, trusted);
  }

  private systemModelStatus(status: SystemModelStatusParams, folder: vscode.WorkspaceFolder | undefined, everything: boolean): void {
    const key = folder?.uri.toString() ?? "";
    const message = systemModelMessage(status, everything ? undefined : folder?.name);
    if (!message) {
      this.shownErrors.delete(key);
      return;
    }
    // The same error again (a reload that failed the same way) is not shown twice.
    if (this.shownErrors.get(key) === message) return;
    this.shownErrors.set(key, message);
    this.output.appendLine(message);
    void vscode.window.showWarningMessage(message, OPEN_SETTINGS).then((choice) => {
      if (choice === OPEN_SETTINGS) void vscode.commands.executeCommand("workbench.action.openSettings", `${SECTION}.system`);
    });
  }
}

function safeParse(uri: string): vscode.Uri | undefined {
  try {
    return vscode.Uri.parse(uri, true);
  } catch {
    return undefined;
  }
}
