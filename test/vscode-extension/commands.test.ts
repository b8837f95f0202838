/**
 * The extension's commands (`vscode-extension/src/commands.ts`) against the real language
 * server: `vscode` is replaced by a small fake that answers quick picks from a script and
 * records what the user would see; the language client is a thin wrapper around a
 * `vscode-languageserver-protocol` connection to `lsp/dist/server.cjs --stdio`.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { DidChangeTextDocumentNotification } from "vscode-languageserver-protocol/node.js";
import { POLICY_DIR, startServer, type ServerSession } from "../lsp/e2e-support.js";

/** What the fake `vscode` saw, and the answers it gives. */
/** The content providers the extension registered, by scheme. */
const providers = new Map<string, { provideTextDocumentContent(uri: unknown): string }>();
const ui = {
  answers: [] as string[],
  picks: [] as Array<{ title: string; labels: string[] }>,
  info: [] as Array<{ message: string; buttons: string[] }>,
  errors: [] as string[],
  warnings: [] as string[],
  /** The documents shown: every one comes from the read-only `qubes-explain:` provider. */
  documents: [] as Array<{ language: string; content: string; scheme: string; path: string }>,
  shown: [] as unknown[],
  webviews: [] as Array<{ title: string; html: string }>,
  activeEditor: undefined as unknown,
};

class FakeDocument {
  readonly lines: string[];
  constructor(
    readonly uri: { toString(): string; fsPath: string },
    readonly languageId: string,
    text: string,
  ) {
    this.lines = text.split("\n");
  }
  get lineCount() {
    return this.lines.length;
  }
  lineAt(i: number) {
    return { text: this.lines[i] ?? "" };
  }
}

function fileUri(s: string) {
  const path = s.startsWith("file://") ? fileURLToPath(s) : s;
  const href = pathToFileURL(path).href;
  return { fsPath: path, toString: () => href };
}

vi.mock("vscode", () => ({
  ViewColumn: { Beside: -2 },
  TextEditorRevealType: { InCenterIfOutsideViewport: 2 },
  Uri: {
    parse: (s: string) => fileUri(s),
    from: (c: { scheme: string; path: string; query?: string }) => ({ ...c, toString: () => `${c.scheme}:${c.path}?${c.query ?? ""}` }),
  },
  commands: {
    registerCommand: (name: string, fn: (...args: unknown[]) => unknown) => {
      registered.set(name, fn);
      return { dispose() {} };
    },
  },
  window: {
    get activeTextEditor() {
      return ui.activeEditor;
    },
    showErrorMessage: async (m: string) => void ui.errors.push(m),
    showWarningMessage: async (m: string) => void ui.warnings.push(m),
    showInformationMessage: async (message: string, ...buttons: string[]) => {
      ui.info.push({ message, buttons });
      return undefined;
    },
    createQuickPick: () => {
      const accept: Array<() => void> = [];
      const qp = {
        title: "",
        placeholder: "",
        items: [] as Array<{ label: string }>,
        value: "",
        selectedItems: [] as Array<{ label: string }>,
        matchOnDescription: false,
        onDidAccept: (cb: () => void) => accept.push(cb),
        onDidHide: () => undefined,
        dispose: () => undefined,
        show: () => {
          ui.picks.push({ title: qp.title, labels: qp.items.map((i) => i.label) });
          const answer = ui.answers.shift();
          if (answer === undefined) throw new Error(`no scripted answer for quick pick "${qp.title}"`);
          qp.selectedItems = qp.items.filter((i) => i.label === answer);
          qp.value = answer;
          queueMicrotask(() => accept.forEach((cb) => cb()));
        },
      };
      return qp;
    },
    showTextDocument: async (what: unknown) => {
      ui.shown.push(what);
      return { revealRange: () => undefined };
    },
    createWebviewPanel: (_id: string, title: string) => {
      const panel = {
        webview: {
          cspSource: "vscode-webview:",
          set html(value: string) {
            ui.webviews.push({ title, html: value });
          },
          onDidReceiveMessage: () => ({ dispose() {} }),
        },
      };
      return panel;
    },
  },
  workspace: {
    registerTextDocumentContentProvider: (scheme: string, provider: { provideTextDocumentContent(uri: unknown): string }) => {
      providers.set(scheme, provider);
      return { dispose() {} };
    },
    onDidCloseTextDocument: () => ({ dispose() {} }),
    openTextDocument: async (arg: { scheme?: string; path?: string; fsPath?: string }) => {
      if (arg.fsPath) return new FakeDocument(fileUri(arg.fsPath), "qrexecpolicy", readFileSync(arg.fsPath, "utf8"));
      const provider = providers.get(arg.scheme ?? "");
      if (!provider) throw new Error(`no content provider for ${String(arg.scheme)}: (an untitled, editable document?)`);
      const content = provider.provideTextDocumentContent(arg);
      ui.documents.push({ language: arg.path?.endsWith(".md") ? "markdown" : "", content, scheme: arg.scheme!, path: arg.path! });
      return { uri: arg };
    },
  },
}));

const registered = new Map<string, (...args: unknown[]) => unknown>();
let server: ServerSession;
const user = `${POLICY_DIR}/30-user.policy`;
const broken = `${POLICY_DIR}/40-broken.policy`;

beforeAll(async () => {
  server = await startServer();
  // The policy only loads once the broken file is fixed (in the editor, not on disk).
  const uri = server.open(broken);
  await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
    textDocument: { uri, version: 2 },
    contentChanges: [{ text: "# fixed in the editor\n" }],
  });
  server.open(user);
  const client = {
    isRunning: () => !server.exited(),
    sendRequest: (method: string, params: unknown) => server.connection.sendRequest(method, params),
    protocol2CodeConverter: { asLocation: (l: { uri: string; range: unknown }) => ({ uri: fileUri(l.uri), range: l.range }) },
  };
  const { registerCommands } = await import("../../vscode-extension/src/commands.js");
  const { registerReadOnlyDocuments } = await import("../../vscode-extension/src/read-only.js");
  registerReadOnlyDocuments({ subscriptions: [] } as never);
  registerCommands({ subscriptions: [] } as never, () => client as never);
});
afterAll(async () => {
  await server?.close();
});
beforeEach(() => {
  for (const list of [ui.answers, ui.picks, ui.info, ui.errors, ui.warnings, ui.documents, ui.shown, ui.webviews]) list.length = 0;
  ui.activeEditor = { document: new FakeDocument(fileUri(user), "qrexecpolicy", readFileSync(user, "utf8")), selection: { active: { line: 0 } } };
});

describe("extension commands", () => {
  it("registers the three commands and the code-lens command", () => {
    expect([...registered.keys()].sort()).toEqual([
      "qubesPolicy.explainAtCursor",
      "qubesPolicy.showDecisionTable",
      "qubesPolicy.simulate",
      "qubesPolicy.simulateRule",
    ]);
  });

  it("Simulate a call: picks service, source and target from the system model and shows the decision", async () => {
    ui.answers.push("qubes.Filecopy", "work", "personal");
    await registered.get("qubesPolicy.simulate")!();
    expect(ui.errors).toEqual([]);
    expect(ui.picks.map((p) => p.title)).toEqual([
      "Simulate a qrexec call (1/3): service",
      "Simulate (2/3): calling qube",
      "Simulate (3/3): target",
    ]);
    expect(ui.picks[0]!.labels).toContain("qubes.Filecopy");
    expect(ui.picks[1]!.labels).toEqual(expect.arrayContaining(["work", "vault", "dom0"]));
    expect(ui.picks[2]!.labels).toEqual(expect.arrayContaining(["@default", "@dispvm", "@dispvm:default-dvm", "personal"]));
    expect(ui.info).toEqual([{ message: "allow: call goes to personal (30-user.policy:3)", buttons: ["Go to rule", "Add a rule for this call…"] }]);
    expect(ui.documents).toHaveLength(1);
    expect(ui.documents[0]!.language).toBe("markdown");
    // A read-only document (content provider), titled by the request.
    expect(ui.documents[0]!.scheme).toBe("qubes-explain");
    expect(ui.documents[0]!.path).toBe("/Qubes qubes.Filecopy from work to personal.md");
    expect(ui.documents[0]!.content).toContain("# Qubes policy: qubes.Filecopy from work to personal");
  });

  it("Explain the decision at cursor: takes the columns of the rule under the cursor", async () => {
    // Line 4 of 30-user.policy (0-based 3) is `qubes.Filecopy  *  @anyvm  @anyvm  ask`: only the qubes are asked for.
    (ui.activeEditor as { selection: { active: { line: number } } }).selection.active.line = 3;
    ui.answers.push("personal", "work");
    await registered.get("qubesPolicy.explainAtCursor")!();
    expect(ui.errors).toEqual([]);
    expect(ui.picks.map((p) => p.title)).toEqual(["Simulate (2/3): calling qube", "Simulate (3/3): target"]);
    expect(ui.info[0]!.message).toMatch(/^ask: the user chooses among .*work.* \(30-user\.policy:4\)$/);
  });

  it("the code lens simulates a rule with concrete qubes without asking anything", async () => {
    // Line 3 of 30-user.policy is `qubes.Filecopy  *  work    personal  allow`.
    await registered.get("qubesPolicy.simulateRule")!(pathToFileURL(user).href, 3);
    expect(ui.picks).toEqual([]);
    expect(ui.info[0]!.message).toBe("allow: call goes to personal (30-user.policy:3)");
  });

  it("Show decision table: renders the service's table in a webview", async () => {
    ui.answers.push("qubes.Filecopy");
    await registered.get("qubesPolicy.showDecisionTable")!();
    expect(ui.errors).toEqual([]);
    expect(ui.webviews).toHaveLength(1);
    expect(ui.webviews[0]!.title).toBe("Qubes: qubes.Filecopy");
    const html = ui.webviews[0]!.html;
    expect(html).toContain('<th scope="row">work</th>');
    // work → personal goes where it was asked: "allow" (a redirect would read "allow → X").
    expect(html).toMatch(/<td class="allow"[^>]*>allow<\/td>/);
    expect(html).toMatch(/<td class="deny"/);
  });

  it("says so when the language server is not running", async () => {
    const client = { isRunning: () => false };
    const { registerCommands } = await import("../../vscode-extension/src/commands.js");
  const { registerReadOnlyDocuments } = await import("../../vscode-extension/src/read-only.js");
  registerReadOnlyDocuments({ subscriptions: [] } as never);
    registerCommands({ subscriptions: [] } as never, () => client as never);
    await registered.get("qubesPolicy.simulate")!();
    expect(ui.errors).toEqual(["Qubes: the policy language server is not running"]);
  });
});
