/**
 * Read-only documents for what the commands show (explanations of a decision, plans,
 * what-ifs): a `TextDocumentContentProvider` for the `qubes-explain:` scheme. VS Code opens
 * such documents read-only, never asks to save them, and drops them when their tab closes.
 */
import * as vscode from "vscode";
import { documentPath } from "./render.js";

/** The URI scheme of the read-only documents. */
export const EXPLAIN_SCHEME = "qubes-explain";

const contents = new Map<string, string>();
let counter = 0;

/** Registers the content provider and forgets a document's text when VS Code closes it. */
export function registerReadOnlyDocuments(context: vscode.ExtensionContext): void {
  context.subscriptions.push(
    vscode.workspace.registerTextDocumentContentProvider(EXPLAIN_SCHEME, {
      provideTextDocumentContent: (uri) => contents.get(uri.toString()) ?? "",
    }),
    vscode.workspace.onDidCloseTextDocument((doc) => {
      if (doc.uri.scheme === EXPLAIN_SCHEME) contents.delete(doc.uri.toString());
    }),
  );
}

/**
 * Opens `markdown` as a read-only Markdown document titled `title` beside the editor. Each call
 * makes a new document (a query string numbers them), so an earlier explanation stays as it was.
 */
export async function showReadOnly(title: string, markdown: string): Promise<vscode.TextDocument> {
  const uri = vscode.Uri.from({ scheme: EXPLAIN_SCHEME, path: documentPath(title), query: String(++counter) });
  contents.set(uri.toString(), markdown);
  const doc = await vscode.workspace.openTextDocument(uri);
  await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
  return doc;
}
