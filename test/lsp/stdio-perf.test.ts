/**
 * The built server over stdio (`lsp/dist/server.cjs --stdio`): diagnostics carry the
 * document version they belong to, `qubes/decisionTable` accepts `SERVICE+ARG` and refuses
 * bad `sources`/`targets` with `InvalidParams`, and a client that never answers
 * `workspace/configuration` (Neovim before 0.8) configures the server through
 * `initializationOptions`.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createProtocolConnection,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  type PublishDiagnosticsParams,
} from "vscode-languageserver-protocol/node.js";
import { decisionTableCell, type DecisionTableResult } from "@qubes-kit/lsp";
import { requireServerBuild, SERVER, startServer, type ServerSession } from "./e2e-support.js";

/** A small workspace of our own: a policy that loads, and its system model. */
function makeWorkspace(): { root: string; policyDir: string; systemFile: string } {
  const root = mkdtempSync(join(tmpdir(), "qkit-lsp-perf-"));
  const policyDir = join(root, "policy.d");
  mkdirSync(policyDir, { recursive: true });
  writeFileSync(
    join(policyDir, "30-user.policy"),
    [
      "qubes.StartApp  +firefox  work      @dispvm   allow",
      "qubes.StartApp  +firefox  @anyvm    personal  ask default_target=personal",
      "qubes.StartApp  *         @anyvm    @anyvm    deny",
      "qubes.Filecopy  *         work      personal  allow",
      "",
    ].join("\n"),
  );
  const domain = (extra: object) => ({ internal: null, tags: [], type: "AppVM", template_for_dispvms: false, default_dispvm: "default-dvm", icon: "appvm-red", label: "0xcc0000", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Running", ...extra });
  const systemFile = join(root, "system.json");
  writeFileSync(
    systemFile,
    JSON.stringify({
      domains: {
        dom0: { ...domain({ type: "AdminVM", guivm: null }), uuid: "00000000-0000-0000-0000-000000000000" },
        work: { ...domain({}), uuid: "1b9b0d3c-0a39-4a4c-9a5d-000000000001" },
        personal: { ...domain({}), uuid: "1b9b0d3c-0a39-4a4c-9a5d-000000000002" },
        "default-dvm": { ...domain({ template_for_dispvms: true }), uuid: "1b9b0d3c-0a39-4a4c-9a5d-000000000003" },
      },
    }),
  );
  return { root, policyDir, systemFile };
}

describe("versions, decision tables", () => {
  let ws: ReturnType<typeof makeWorkspace>;
  let server: ServerSession;
  const published: PublishDiagnosticsParams[] = [];
  const waiters: Array<() => void> = [];
  /** Waits until some publication satisfies `predicate` (this replaces the session's own listener). */
  const publishedWhere = async (predicate: (p: PublishDiagnosticsParams) => boolean): Promise<void> => {
    const deadline = Date.now() + 20_000;
    while (!published.some(predicate)) {
      if (Date.now() > deadline) throw new Error(`no such publication; got ${JSON.stringify(published.slice(-3))}`);
      await new Promise<void>((r) => (waiters.push(r), setTimeout(r, 250)));
    }
  };
  beforeAll(async () => {
    ws = makeWorkspace();
    server = await startServer(ws.root, { system: { source: "file", file: ws.systemFile } });
    server.connection.onNotification(PublishDiagnosticsNotification.type, (p) => {
      published.push(p);
      for (const w of waiters.splice(0)) w();
    });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(ws.root, { recursive: true, force: true });
  });

  it("publishes diagnostics with the version of the text they belong to", async () => {
    const uri = pathToFileURL(join(ws.policyDir, "50-typing.policy")).href;
    const texts = ["qubes.Gpg * work personal allow\n", "qubes.Gpg * work personal alow\n", "qubes.Gpg * work personal al\n", "qubes.Gpg * work personal allow\nqubes.Gpg * @bogus personal deny\n"];
    await server.connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: "qrexecpolicy", version: 1, text: texts[0]! } });
    for (let v = 2; v <= texts.length; v++) {
      await server.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri, version: v }, contentChanges: [{ text: texts[v - 1]! }] });
    }
    await publishedWhere((p) => p.uri === uri && p.version === texts.length);
    const mine = published.filter((p) => p.uri === uri);
    // Every publication names a version that was sent, in order; the last one is the current text.
    for (const p of mine) expect(p.version).toBeGreaterThanOrEqual(1);
    expect(mine.map((p) => p.version)).toEqual([...mine.map((p) => p.version)].sort((a, b) => a! - b!));
    const last = mine[mine.length - 1]!;
    expect(last.version).toBe(texts.length);
    expect(last.diagnostics.map((d) => [d.code, d.range.start.line])).toEqual([["invalid-token", 1]]);
    // A publication labelled 2 or 3 carries that text's error.
    for (const p of mine.filter((x) => x.version === 2 || x.version === 3)) expect(p.diagnostics.map((d) => d.code)).toContain("invalid-action");
    // Back to a policy that loads, for the decision tables below.
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri, version: 9 }, contentChanges: [{ text: "# nothing yet\n" }] });
    await publishedWhere((p) => p.uri === uri && p.version === 9);
    expect(published.filter((p) => p.uri === uri && p.version === 9).pop()?.diagnostics).toEqual([]);
  });

  it("decides `SERVICE+ARG` in the service exactly as the split form", async () => {
    const uri = pathToFileURL(join(ws.policyDir, "30-user.policy")).href;
    const joined = await server.connection.sendRequest<DecisionTableResult>("qubes/decisionTable", { uri, service: "qubes.StartApp+firefox" });
    const split = await server.connection.sendRequest<DecisionTableResult>("qubes/decisionTable", { uri, service: "qubes.StartApp", argument: "+firefox" });
    expect(joined).toEqual(split);
    expect(joined.service).toBe("qubes.StartApp");
    expect(joined.argument).toBe("+firefox");
    const cell = (t: DecisionTableResult, s: string, d: string) => decisionTableCell(t, t.sources.indexOf(s), t.targets.indexOf(d));
    expect(cell(joined, "work", "@dispvm").action).toBe("allow");
    expect(cell(joined, "work", "personal").action).toBe("ask");
    expect(cell(joined, "personal", "work").action).toBe("deny");
    // Another argument falls through to the `*` rule.
    const other = await server.connection.sendRequest<DecisionTableResult>("qubes/decisionTable", { uri, service: "qubes.StartApp+xterm" });
    expect(other.argument).toBe("+xterm");
    expect(cell(other, "work", "personal").action).toBe("deny");
    expect(other.cells.flat().filter((k) => other.kinds[k]!.action === "allow" || other.kinds[k]!.action === "ask")).toEqual([]);
  });

  it.each([
    ["sources as a string", { sources: "work" }],
    ["sources with a number", { sources: ["work", 1] }],
    ["sources with null", { sources: [null] }],
    ["an empty source name", { sources: [""] }],
    ["targets as an object", { targets: { work: true } }],
    ["targets with a nested list", { targets: [["work"]] }],
  ])("refuses %s with InvalidParams", async (_name, bad) => {
    const uri = pathToFileURL(join(ws.policyDir, "30-user.policy")).href;
    const error = await server.connection.sendRequest("qubes/decisionTable", { uri, service: "qubes.Filecopy", ...bad }).then(
      () => undefined,
      (e: { code?: number; message?: string }) => e,
    );
    expect(error?.code).toBe(-32602);
    expect(error?.message).toMatch(/^`(sources|targets)` must be an array of qube names/);
    // And the server goes on answering.
    const ok = await server.connection.sendRequest<DecisionTableResult>("qubes/decisionTable", { uri, service: "qubes.Filecopy", sources: ["work"], targets: ["personal"] });
    expect(ok.cells.length).toBe(1);
    expect(decisionTableCell(ok, 0, 0)).toEqual(expect.objectContaining({ action: "allow", target: "personal" }));
  });
});

describe("settings through initializationOptions (clients without workspace/configuration)", () => {
  const forms: Array<[string, (s: object) => object]> = [
    ["{ settings }", (s) => ({ settings: s })],
    ["{ qubesPolicy }", (s) => ({ qubesPolicy: s })],
    ["{ settings: { qubesPolicy } }", (s) => ({ settings: { qubesPolicy: s } })],
    ["the settings themselves", (s) => s],
  ];
  it.each(forms)("honours %s", async (_name, wrap) => {
    requireServerBuild();
    const ws = makeWorkspace();
    const child = spawn(process.execPath, [SERVER, "--stdio"], { stdio: "pipe" });
    const connection = createProtocolConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
    const got = new Map<string, PublishDiagnosticsParams>();
    const waiters: Array<() => void> = [];
    connection.onNotification(PublishDiagnosticsNotification.type, (p) => {
      got.set(p.uri, p);
      for (const w of waiters.splice(0)) w();
    });
    // A client that does not implement workspace/configuration: asking it would be an error.
    connection.onRequest(() => {
      throw new Error("this client answers no requests");
    });
    connection.listen();
    try {
      const rootUri = pathToFileURL(ws.root).href;
      const settings = { system: { source: "file", file: "system.json" }, analysis: { "unknown-qube": "error", "shadowed-rule": "off" } };
      await connection.sendRequest(InitializeRequest.type, { processId: process.pid, rootUri, capabilities: {}, workspaceFolders: null, initializationOptions: wrap(settings) });
      await connection.sendNotification(InitializedNotification.type, {});
      const uri = pathToFileURL(join(ws.policyDir, "60-new.policy")).href;
      // `ghost` is unknown only with the system model; the second rule is shadowed (but that rule is off).
      const text = "qubes.Filecopy * ghost work allow\nqubes.Filecopy * ghost work deny\n";
      await connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: "qrexecpolicy", version: 1, text } });
      const deadline = Date.now() + 20_000;
      const want = (p: PublishDiagnosticsParams | undefined) => p !== undefined && p.diagnostics.some((d) => d.code === "unknown-qube");
      while (!want(got.get(uri)) && Date.now() < deadline) await new Promise<void>((r) => (waiters.push(r), setTimeout(r, 200)));
      const diagnostics = got.get(uri)?.diagnostics ?? [];
      expect(diagnostics.map((d) => [d.code, d.severity, d.range.start.line])).toEqual([
        ["unknown-qube", 1, 0],
        ["unknown-qube", 1, 1],
      ]);
    } finally {
      await Promise.race([connection.sendRequest(ShutdownRequest.type).catch(() => undefined), new Promise((r) => setTimeout(r, 3000))]);
      await connection.sendNotification(ExitNotification.type).catch(() => undefined);
      child.kill();
      connection.dispose();
      rmSync(ws.root, { recursive: true, force: true });
    }
  });
});
