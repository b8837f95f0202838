/**
 * The stack commands (`vscode-extension/src/template-commands.ts`: "Plan against this
 * machine", "What-if") against the real language server over stdio, configured to plan
 * against the offline simulator seeded from the fixture's system snapshot. `vscode` is a small
 * fake that records what the user would see.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { repoPath, startServer, type ServerSession } from "../lsp/e2e-support.js";

const ui = {
  info: [] as string[],
  warnings: [] as string[],
  errors: [] as string[],
  /** The documents shown: every one comes from the read-only `qubes-explain:` provider. */
  documents: [] as Array<{ language: string; content: string; scheme: string; path: string }>,
  activeEditor: undefined as unknown,
  trusted: true,
};
/** The content providers the extension registered, by scheme. */
const providers = new Map<string, { provideTextDocumentContent(uri: unknown): string }>();

vi.mock("vscode", () => ({
  ViewColumn: { Beside: -2 },
  ProgressLocation: { Notification: 15 },
  Uri: {
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
    showInformationMessage: async (m: string) => void ui.info.push(m),
    withProgress: async (_options: unknown, task: () => Promise<unknown>) => task(),
    showTextDocument: async () => ({}),
  },
  workspace: {
    get isTrusted() {
      return ui.trusted;
    },
    registerTextDocumentContentProvider: (scheme: string, provider: { provideTextDocumentContent(uri: unknown): string }) => {
      providers.set(scheme, provider);
      return { dispose() {} };
    },
    onDidCloseTextDocument: () => ({ dispose() {} }),
    openTextDocument: async (uri: { scheme: string; path: string }) => {
      const provider = providers.get(uri.scheme);
      if (!provider) throw new Error(`no content provider for ${uri.scheme}: (an untitled, editable document?)`);
      const content = provider.provideTextDocumentContent(uri);
      ui.documents.push({ language: uri.path.endsWith(".md") ? "markdown" : "", content, scheme: uri.scheme, path: uri.path });
      return { uri };
    },
  },
}));

const registered = new Map<string, (...args: unknown[]) => unknown>();
const WS = repoPath("test/lsp/template-fixtures/ws");
let server: ServerSession;

const STACK = `qkit: 1
stack: demo
qubes:
  work:
    class: AppVM
    template: fedora-42-xfce
    label: blue
    memory: 800
policy:
  - file: demo
    rules: |
      qubes.Filecopy  *  work  personal  ask default_target=personal
expect:
  - call: qubes.Filecopy work -> personal
    decision: ask
`;

beforeAll(async () => {
  server = await startServer(WS, { system: { source: "file", file: `${WS}/system-info.json` } });
  const client = {
    isRunning: () => !server.exited(),
    sendRequest: (method: string, params: unknown) => server.connection.sendRequest(method, params),
  };
  const { registerTemplateCommands } = await import("../../vscode-extension/src/template-commands.js");
  const { registerReadOnlyDocuments } = await import("../../vscode-extension/src/read-only.js");
  registerReadOnlyDocuments({ subscriptions: [] } as never);
  registerTemplateCommands({ subscriptions: [] } as never, () => client as never);
});
afterAll(async () => {
  await server?.close();
});
beforeEach(() => {
  ui.info = [];
  ui.warnings = [];
  ui.errors = [];
  ui.documents = [];
  ui.activeEditor = undefined;
});

let n = 0;
function openStack(text: string): string {
  n += 1;
  return server.open(`${WS}/cmd-${n}.qubes.yaml`, text, "qubes-template");
}

describe("Plan against this machine", () => {
  it("shows the plan of the code lens's stack as a Markdown document and sums it up", async () => {
    const uri = openStack(STACK);
    await registered.get("qubesTemplate.plan")!(uri);
    expect(ui.errors).toEqual([]);
    expect(ui.documents).toHaveLength(1);
    const doc = ui.documents[0]!;
    expect(doc.language).toBe("markdown");
    // A read-only document named after the stack file, not an untitled buffer.
    expect(doc.scheme).toBe("qubes-explain");
    expect(doc.path).toMatch(/^\/Plan cmd-\d+\.qubes\.yaml\.md$/);
    expect(doc.content).toContain("# Plan: cmd-");
    expect(doc.content).toContain("an offline simulator seeded from system-info.json");
    expect(doc.content).toMatch(/\| \+ \| qube work \| create \|/);
    expect(doc.content).toMatch(/\| ~ \| qube work \| memory \| .* \| 800 \|/);
    expect(doc.content).toContain("Nothing was changed.");
    expect(ui.info).toEqual(["Qubes: Plan: 1 to create, 0 to change, 0 to destroy; 1 policy file, 0 global properties"]);
  });

  it("plans the active stack editor when run from the palette", async () => {
    const uri = openStack(STACK);
    ui.activeEditor = { document: { languageId: "qubes-template", uri: { toString: () => uri } } };
    await registered.get("qubesTemplate.plan")!();
    expect(ui.documents[0]?.content).toContain("qube work");
  });

  it("shows the stack's errors and warns instead of planning", async () => {
    const uri = openStack(STACK.replace("label: blue", "label: blu"));
    await registered.get("qubesTemplate.plan")!(uri);
    expect(ui.documents[0]?.content).toContain("unknown-label");
    expect(ui.warnings).toEqual(["Qubes: 1 error in the stack: fix them before planning"]);
  });

  it("refuses in an untrusted workspace: plan reads the machine", async () => {
    const uri = openStack(STACK);
    ui.trusted = false;
    try {
      await registered.get("qubesTemplate.plan")!(uri);
      await registered.get("qubesTemplate.whatif")!(uri);
    } finally {
      ui.trusted = true;
    }
    expect(ui.documents).toEqual([]);
    expect(ui.errors).toEqual([
      "Qubes: plan and what-if read this machine, which an untrusted workspace may not do; trust the workspace first (Manage Workspace Trust)",
      "Qubes: plan and what-if read this machine, which an untrusted workspace may not do; trust the workspace first (Manage Workspace Trust)",
    ]);
  });

  it("says what to do without a stack file", async () => {
    await registered.get("qubesTemplate.plan")!();
    expect(ui.errors).toEqual(["Qubes: open a stack file (*.qubes.yaml) first"]);
    expect(ui.documents).toEqual([]);
  });
});

describe("What-if", () => {
  it("shows the expectations and the decisions that change", async () => {
    const uri = openStack(STACK);
    await registered.get("qubesTemplate.whatif")!(uri);
    const doc = ui.documents[0]!.content;
    expect(doc).toContain("## Expectations");
    expect(doc).toContain("✓ `qubes.Filecopy work -> personal");
    expect(doc).toMatch(/\| \+ \| qubes\.Filecopy \| work \| personal \| .* \| ask/);
    expect(ui.info[0]).toMatch(/^Qubes: What-if: all 1 expectations hold; \d+ decisions? change$/);
  });

  it("warns when an expectation fails", async () => {
    const uri = openStack(STACK.replace("decision: ask", "decision: deny"));
    await registered.get("qubesTemplate.whatif")!(uri);
    expect(ui.documents[0]!.content).toContain("✗ `qubes.Filecopy work -> personal");
    expect(ui.warnings[0]).toMatch(/^Qubes: What-if: 1 of 1 expectations fail/);
  });
});

describe("the packaged schema is what `qkit template schema` prints", () => {
  it("equals the CLI's output", async () => {
    const { spawnSync } = await import("node:child_process");
    const run = spawnSync(process.execPath, [repoPath("sdk/dist/cli.js"), "template", "schema"], { encoding: "utf8" });
    expect(run.status).toBe(0);
    const packaged = JSON.parse(readFileSync(repoPath("vscode-extension/dist/schemas/qubes-template.schema.json"), "utf8"));
    expect(packaged).toEqual(JSON.parse(run.stdout));
  });
});
