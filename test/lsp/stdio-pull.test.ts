/**
 * Pull diagnostics over stdio with the real client library, for every kind of document the
 * server serves (policy files, stack files, policy test files), and the LSP 3.17 rule that a
 * client that pulls a document's diagnostics gets no pushes for it:
 *
 * - a client like VS Code's (announces `textDocument.diagnostic` and pulls the workspace):
 *   full reports with result ids, `unchanged` when nothing changed, closed files in the
 *   workspace report, no pushes in effect once it pulls, and a `workspace/diagnostic/refresh`
 *   request when a policy edit changes a closed file's diagnostics;
 * - a client that pulls its open documents only (Neovim 0.10): pushes for closed files only,
 *   and a document closed gets its diagnostics pushed.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DidChangeTextDocumentNotification,
  DocumentDiagnosticRequest,
  WorkspaceDiagnosticRequest,
  type ClientCapabilities,
  type Diagnostic,
  type DocumentDiagnosticReport,
  type WorkspaceDocumentDiagnosticReport,
} from "vscode-languageserver-protocol/node.js";
import { startServer, systemDomain, until, writeWorkspace, type ServerSession } from "./e2e-support.js";


const POLICY = "qubes.Filecopy * work ghost allow\nqubes.Backup * work vault allow\n* * @anyvm @anyvm deny\n";
const STACK = "qkit: 1\nstack: s\nqubes:\n  tpl:\n    class: TemplateVM\n    label: black\n    source: { empty: true }\n  w:\n    class: AppVM\n    template: tpl\n    label: red\n    memroy: 400\n";
const TEST = "policy: ../policy.d\nsystem: ../system.json\ntests:\n  - qubes.Backup work personal => allow\n";
const FILES: Record<string, string> = {
  "policy.d/30-user.policy": POLICY,
  "policy.d/40-closed.policy": "qubes.Gpg * work phantom deny\n",
  "stack.qubes.yaml": STACK,
  "tests/open.policytest.yaml": TEST,
  "tests/closed.policytest.yaml": TEST,
  "system.json": JSON.stringify({
    domains: { dom0: systemDomain("AdminVM", 0), work: systemDomain("AppVM", 1), personal: systemDomain("AppVM", 2), vault: systemDomain("AppVM", 3), "default-dvm": systemDomain("AppVM", 4, { template_for_dispvms: true }) },
  }),
};

/** A client that pulls (VS Code's client library announces this). */
const PULLS: ClientCapabilities = { textDocument: { diagnostic: { dynamicRegistration: false, relatedDocumentSupport: false } }, workspace: { diagnostics: { refreshSupport: true } } };

const makeWorkspace = (): string => writeWorkspace("qkit-pull-", FILES);

type FullReport = { kind: "full"; resultId?: string; items: Diagnostic[] };
const codes = (d: readonly Diagnostic[]) => d.map((x) => `${x.range.start.line}: ${x.code}`);


/** The diagnostics in effect from pushes, per URI (the last push). */
function pushedNow(server: ServerSession): Map<string, Diagnostic[]> {
  const out = new Map<string, Diagnostic[]>();
  for (const p of server.publishes) out.set(p.uri, p.diagnostics);
  return out;
}

describe("a client that pulls every document (VS Code)", () => {
  let root: string;
  let server: ServerSession;
  let version = 1;
  const uri = (rel: string) => pathToFileURL(join(root, rel)).href;
  const pull = (rel: string, previousResultId?: string) =>
    server.connection.sendRequest(DocumentDiagnosticRequest.type, { textDocument: { uri: uri(rel) }, ...(previousResultId ? { previousResultId } : {}) }) as Promise<DocumentDiagnosticReport>;
  const pullWorkspace = (previous: Array<{ uri: string; value: string }> = []) =>
    server.connection.sendRequest(WorkspaceDiagnosticRequest.type, { previousResultIds: previous }) as Promise<{ items: WorkspaceDocumentDiagnosticReport[] }>;

  beforeAll(async () => {
    root = makeWorkspace();
    server = await startServer(root, { system: { source: "file", file: join(root, "system.json") } }, { name: "Visual Studio Code", capabilities: PULLS });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("is offered pull diagnostics, with workspace reports", () => {
    expect(server.initializeResult.capabilities.diagnosticProvider).toEqual({ identifier: "qubes-policy", interFileDependencies: true, workspaceDiagnostics: true });
  });

  it.each([
    ["a policy file", "policy.d/30-user.policy", POLICY, "qrexecpolicy", ["0: unknown-qube"]],
    ["a stack file", "stack.qubes.yaml", STACK, "qubes-template", ["11: unknown-key"]],
    ["a policy test file", "tests/open.policytest.yaml", TEST, "yaml", ["3: policy-test-failed"]],
  ])("pulls %s: a full report with a result id, then unchanged; nothing pushed for it", async (_kind, rel, text, languageId, expected) => {
    server.open(join(root, rel), text, languageId);
    const first = (await pull(rel)) as FullReport;
    expect(first.kind).toBe("full");
    expect(codes(first.items)).toEqual(expected);
    expect(first.resultId).toEqual(expect.any(String));
    expect(await pull(rel, first.resultId)).toEqual({ kind: "unchanged", resultId: first.resultId });
    // Whatever was pushed for it (before it was opened) has been taken back.
    await new Promise((r) => setTimeout(r, 300));
    expect(pushedNow(server).get(uri(rel)) ?? []).toEqual([]);
  });

  it("follows edits: a pulled report is of the current text", async () => {
    version++;
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: uri("stack.qubes.yaml"), version }, contentChanges: [{ text: STACK.replace("memroy", "memory") }] });
    const report = (await pull("stack.qubes.yaml")) as FullReport;
    expect(report.items).toEqual([]);
  });

  it("gets closed files in the workspace report, and no pushes once it pulls the workspace", async () => {
    const report = await pullWorkspace();
    const byUri = new Map(report.items.map((r) => [r.uri, r]));
    const closedPolicy = byUri.get(uri("policy.d/40-closed.policy")) as FullReport | undefined;
    expect(closedPolicy?.kind).toBe("full");
    expect(closedPolicy!.items.length).toBeGreaterThan(0);
    const closedTest = byUri.get(uri("tests/closed.policytest.yaml")) as FullReport | undefined;
    expect(codes(closedTest?.items ?? [])).toEqual(["3: policy-test-failed"]);
    // The open ones are there too (the same lists as their own pulls).
    expect(codes((byUri.get(uri("policy.d/30-user.policy")) as FullReport).items)).toEqual(["0: unknown-qube"]);
    // Asked again with the result ids: nothing changed.
    const again = await pullWorkspace(report.items.map((r) => ({ uri: r.uri, value: r.resultId! })));
    expect(again.items.filter((r) => r.kind !== "unchanged").map((r) => r.uri)).toEqual([]);
    // No push is left in effect: the client shows each list once.
    await new Promise((r) => setTimeout(r, 300));
    expect([...pushedNow(server)].filter(([, d]) => d.length > 0).map(([u]) => u)).toEqual([]);
  });

  it("asks for a refresh when the client did not get a document's list (a pull lost or failed)", async () => {
    const refreshes = server.refreshes.filter((m) => m === "workspace/diagnostic/refresh").length;
    // Opened, and never pulled: the server sees that the client shows nothing for it.
    server.open(join(root, "policy.d/50-new.policy"), "qubes.Gpg * work ghost2 deny\n");
    await until(() => server.refreshes.filter((m) => m === "workspace/diagnostic/refresh").length, (n) => n > refreshes);
    expect(server.refreshes.filter((m) => m === "workspace/diagnostic/refresh").length).toBeGreaterThan(refreshes);
    expect(codes(((await pull("policy.d/50-new.policy")) as FullReport).items)).toContain("0: unknown-qube");
    await server.closeDocument(uri("policy.d/50-new.policy"));
  });

  it("asks for a refresh when a policy edit changes a closed test file, whose next report shows it", async () => {
    const before = await pullWorkspace();
    const refreshes = server.refreshes.filter((m) => m === "workspace/diagnostic/refresh").length;
    const pushes = server.publishes.length;
    version++;
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri: uri("policy.d/30-user.policy"), version },
      contentChanges: [{ text: `qubes.Backup * work personal allow\n${POLICY}` }],
    });
    await until(() => server.refreshes.filter((m) => m === "workspace/diagnostic/refresh").length, (n) => n > refreshes);
    const after = await until(
      () => pullWorkspace(before.items.map((r) => ({ uri: r.uri, value: r.resultId! }))),
      (r) => r.items.some((x) => x.uri === uri("tests/closed.policytest.yaml") && x.kind === "full"),
    );
    const closedTest = after.items.find((x) => x.uri === uri("tests/closed.policytest.yaml")) as FullReport;
    expect(closedTest.items).toEqual([]);
    // The open test file's own pull agrees, and nothing non-empty was pushed meanwhile.
    expect(((await pull("tests/open.policytest.yaml")) as FullReport).items).toEqual([]);
    expect(server.publishes.slice(pushes).filter((p) => p.diagnostics.length > 0)).toEqual([]);
  });
});

describe("a client that pulls its open documents only (Neovim 0.10)", () => {
  let root: string;
  let server: ServerSession;
  const uri = (rel: string) => pathToFileURL(join(root, rel)).href;

  beforeAll(async () => {
    root = makeWorkspace();
    server = await startServer(root, { system: { source: "file", file: join(root, "system.json") } }, { name: "Neovim", capabilities: { textDocument: { diagnostic: { dynamicRegistration: false } } } });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("gets pushes for closed files, none for open ones, and the diagnostics of a document it closes", async () => {
    // Closed files: pushed (a policy file and a test file).
    await server.waitForDiagnostics(uri("policy.d/40-closed.policy"), (d) => d.length > 0);
    await server.waitForDiagnostics(uri("tests/closed.policytest.yaml"), (d) => d.length > 0);
    // The policy file was pushed before it was opened: opening it takes that back, and it is pulled.
    const pushed = await server.waitForDiagnostics(uri("policy.d/30-user.policy"), (d) => d.length > 0);
    expect(codes(pushed)).toEqual(["0: unknown-qube"]);
    const opened = server.open(join(root, "policy.d/30-user.policy"), POLICY);
    await server.waitForDiagnostics(opened, (d) => d.length === 0);
    const report = (await server.connection.sendRequest(DocumentDiagnosticRequest.type, { textDocument: { uri: opened } })) as FullReport;
    expect(codes(report.items)).toEqual(["0: unknown-qube"]);
    // An edit of the open document pushes nothing non-empty for it.
    const n = server.publishes.length;
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: opened, version: 2 }, contentChanges: [{ text: `qubes.X * work ghost deny\n${POLICY}` }] });
    const edited = (await server.connection.sendRequest(DocumentDiagnosticRequest.type, { textDocument: { uri: opened } })) as FullReport;
    expect(codes(edited.items)).toEqual(["0: unknown-qube", "1: unknown-qube"]);
    expect(server.publishes.slice(n).filter((p) => p.uri === opened && p.diagnostics.length > 0)).toEqual([]);
    // Closed: the client drops its pulled list, so the server pushes the file's diagnostics (of its text on disk, once analysed).
    await server.closeDocument(opened);
    expect(codes(await server.waitForDiagnostics(opened, (d) => d.length === 1))).toEqual(["0: unknown-qube"]);
  });
});
