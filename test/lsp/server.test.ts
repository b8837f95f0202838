/**
 * In-process protocol tests of the language server: a real connection over
 * streams, a temporary workspace on disk, and the requests an editor sends.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { CodeAction, CodeLens, CompletionItem, DocumentSymbol, FoldingRange, Hover, Location, SemanticTokens, TextEdit } from "vscode-languageserver";
import {
  DecisionTableRequest,
  EvaluateRequest,
  ExplainRequest,
  SystemModelRequest,
  type DecisionTableResult,
  type EvaluateResult,
  type ExplainResult,
  type SystemModelResult,
  decisionTableCell,
} from "@qubes-kit/lsp";
import { FIXTURES } from "./helpers/fixture.js";
import { startClient, type TestClient } from "./helpers/client.js";

const FILES: Record<string, string> = {
  "policy.d/10-gpg.policy": "qubes.Gpg  *  @tag:gpg-client  @tag:gpg-server  allow\nqubes.Gpg  *  work  @default  ask default_target=vault\n",
  "policy.d/30-user.policy": [
    "!include include/common",
    "qubes.Filecopy  *  @anyvm  vault     deny notify=no",
    "qubes.Filecopy  *  work    personal  allow",
    "qubes.Filecopy  *  work    vault     allow",
    "qubes.OpenURL   *  @anyvm  @default  alow",
    "",
  ].join("\n"),
  "policy.d/include/common": "qubes.GetDate  *  @anyvm  @default  allow target=dom0\n",
  "policy.d/90-default.policy": "* * @anyvm @anyvm deny\n",
  "system.json": readFileSync(FIXTURES + "system.json", "utf8"),
};

const pos = (line: number, character: number) => ({ line, character });

describe("language server over a connection", () => {
  let c: TestClient;
  const doc = (rel: string) => ({ textDocument: { uri: c.uri(rel) } });

  beforeAll(async () => {
    c = await startClient(FILES, { system: { source: "file", file: "system.json" } });
    await c.open("policy.d/30-user.policy");
  });
  afterAll(() => c.close());

  test("initialize advertises the features", () => {
    const caps = c.init.capabilities;
    expect(caps.completionProvider).toBeDefined();
    expect(caps.hoverProvider).toBe(true);
    expect(caps.definitionProvider).toBe(true);
    expect(caps.referencesProvider).toBe(true);
    expect(caps.documentFormattingProvider).toBe(true);
    expect(caps.codeActionProvider).toBeDefined();
    expect(caps.codeLensProvider).toBeDefined();
    expect(caps.semanticTokensProvider?.legend.tokenTypes).toContain("function");
  });

  test("diagnostics of the open file, with codes and exact ranges", () => {
    const diags = c.diagnostics.get(c.uri("policy.d/30-user.policy"))!;
    expect(diags.map((d) => `${d.range.start.line}:${d.range.start.character}-${d.range.end.character} ${d.code}`)).toEqual([
      "3:0-42 shadowed-rule",
      "4:37-41 invalid-action",
    ]);
    const shadowed = diags.find((d) => d.code === "shadowed-rule")!;
    expect(shadowed.source).toBe("qubes-policy");
    expect(shadowed.relatedInformation?.[0]?.location.range.start.line).toBe(1);
  });

  test("an edit re-validates; a change in an included file re-validates its includer", async () => {
    await c.change("policy.d/30-user.policy", FILES["policy.d/30-user.policy"]!.replace("alow", "allow target=@dispvm"));
    expect(c.diagnostics.get(c.uri("policy.d/30-user.policy"))!.map((d) => d.code)).toEqual(["shadowed-rule"]);
    await c.open("policy.d/include/common");
    await c.change("policy.d/include/common", "qubes.Filecopy  *  work  @anyvm  deny\n");
    // The rule at 30-user.policy:3 is now shadowed by the included rule too.
    expect(c.diagnostics.get(c.uri("policy.d/30-user.policy"))!.map((d) => `${d.range.start.line} ${d.code}`)).toEqual(["2 shadowed-rule", "3 shadowed-rule"]);
    await c.change("policy.d/include/common", FILES["policy.d/include/common"]!);
    expect(c.diagnostics.get(c.uri("policy.d/30-user.policy"))!.map((d) => `${d.range.start.line} ${d.code}`)).toEqual(["3 shadowed-rule"]);
  });

  test("completion offers the system's qubes and tags", async () => {
    await c.change("policy.d/30-user.policy", "qubes.Gpg * @tag:\n");
    const items = await c.request<CompletionItem[]>("textDocument/completion", { ...doc("policy.d/30-user.policy"), position: pos(0, 17) });
    expect(items.map((i) => i.label).sort()).toEqual(["@tag:dvm-ok", "@tag:gpg-client", "@tag:gpg-server", "@tag:net"]);
    expect(items[0]!.textEdit).toMatchObject({ range: { start: pos(0, 12), end: pos(0, 17) } });
    await c.change("policy.d/30-user.policy", FILES["policy.d/30-user.policy"]!);
  });

  test("hover says what the rule decides", async () => {
    const h = await c.request<Hover>("textDocument/hover", { ...doc("policy.d/30-user.policy"), position: pos(2, 20) });
    expect(JSON.stringify(h.contents)).toContain("This rule allows qubes.Filecopy from work to personal");
  });

  test("definition of an include path opens the included file", async () => {
    const locs = await c.request<Location[]>("textDocument/definition", { ...doc("policy.d/30-user.policy"), position: pos(0, 12) });
    expect(locs).toEqual([{ uri: c.uri("policy.d/include/common"), range: { start: pos(0, 0), end: pos(0, 0) } }]);
  });

  test("definition of a qube name opens its entry in the system model file", async () => {
    const locs = await c.request<Location[]>("textDocument/definition", { ...doc("policy.d/30-user.policy"), position: pos(2, 20) });
    expect(locs).toHaveLength(1);
    expect(locs[0]!.uri).toBe(c.uri("system.json"));
    const line = FILES["system.json"]!.split("\n")[locs[0]!.range.start.line]!;
    expect(line.slice(locs[0]!.range.start.character, locs[0]!.range.end.character)).toBe('"work"');
  });

  test("references of a qube name span files", async () => {
    const locs = await c.request<Location[]>("textDocument/references", { ...doc("policy.d/30-user.policy"), position: pos(2, 20), context: { includeDeclaration: true } });
    const uris = new Set(locs.map((l) => l.uri));
    expect(uris).toEqual(new Set([c.uri("policy.d/30-user.policy"), c.uri("policy.d/10-gpg.policy")]));
    expect(locs).toHaveLength(3);
  });

  test("document symbols, folding and semantic tokens", async () => {
    const symbols = await c.request<DocumentSymbol[]>("textDocument/documentSymbol", doc("policy.d/30-user.policy"));
    expect(symbols.length).toBe(5);
    const folds = await c.request<FoldingRange[]>("textDocument/foldingRange", doc("policy.d/30-user.policy"));
    expect(folds).toEqual([{ startLine: 0, endLine: 4, kind: "region" }]);
    const tokens = await c.request<SemanticTokens>("textDocument/semanticTokens/full", doc("policy.d/30-user.policy"));
    expect(tokens.data.length % 5).toBe(0);
    expect(tokens.data.length).toBeGreaterThan(20);
  });

  test("formatting aligns the block", async () => {
    const edits = await c.request<TextEdit[]>("textDocument/formatting", { ...doc("policy.d/30-user.policy"), options: { tabSize: 2, insertSpaces: true } });
    expect(edits.length).toBeGreaterThan(0);
    expect(edits.every((e) => e.range.start.line === e.range.end.line)).toBe(true);
  });

  test("quick fix for the misspelt action", async () => {
    const diags = c.diagnostics.get(c.uri("policy.d/30-user.policy"))!;
    const actions = await c.request<CodeAction[]>("textDocument/codeAction", {
      ...doc("policy.d/30-user.policy"),
      range: { start: pos(4, 38), end: pos(4, 38) },
      context: { diagnostics: diags },
    });
    const fix = actions.find((a) => a.title === "replace with `allow`")!;
    expect(fix.edit?.changes?.[c.uri("policy.d/30-user.policy")]).toEqual([{ range: { start: pos(4, 37), end: pos(4, 41) }, newText: "allow" }]);
  });

  test("code lenses on rules", async () => {
    const lenses = await c.request<CodeLens[]>("textDocument/codeLens", doc("policy.d/30-user.policy"));
    expect(lenses.map((l) => l.command?.title)).toContain("allows qubes.Filecopy from work to personal");
    expect(lenses[0]!.command?.command).toBe("qubesPolicy.simulateRule");
  });

  test("qubes/evaluate decides with the system model and points at the rule", async () => {
    await c.change("policy.d/30-user.policy", FILES["policy.d/30-user.policy"]!.replace("alow", "allow target=@dispvm"));
    const r = await c.request<EvaluateResult>(EvaluateRequest.method, { uri: c.uri("policy.d/30-user.policy"), service: "qubes.Filecopy", source: "work", target: "personal" });
    expect(r.decision).toMatchObject({ ok: true, action: "allow", target: "personal" });
    expect(r.location).toEqual({ uri: c.uri("policy.d/30-user.policy"), range: { start: pos(2, 0), end: pos(2, 42) } });
    expect(r.systemSource).toBe("file");
    const inc = await c.request<EvaluateResult>(EvaluateRequest.method, { service: "qubes.GetDate", source: "work" });
    expect(inc.decision).toMatchObject({ ok: true, action: "allow", target: "dom0" });
    expect(inc.location?.uri).toBe(c.uri("policy.d/include/common"));
  });

  test("custom requests refuse missing or mistyped parameters with InvalidParams", async () => {
    for (const [method, params] of [
      [EvaluateRequest.method, {}],
      [EvaluateRequest.method, { service: 5, source: null }],
      [ExplainRequest.method, { service: "qubes.Filecopy" }],
      [DecisionTableRequest.method, {}],
    ] as const) {
      const err = await c.request(method, params).then(
        () => undefined,
        (e: { code?: number; message?: string }) => e,
      );
      expect(err, `${method} ${JSON.stringify(params)}`).toMatchObject({ code: -32602 });
    }
  });

  test("qubes/explain returns the trace with locations", async () => {
    const r = await c.request<ExplainResult>(ExplainRequest.method, { uri: c.uri("policy.d/30-user.policy"), service: "qubes.Filecopy+x", source: "work", target: "vault" });
    expect(r.request).toMatchObject({ service: "qubes.Filecopy", argument: "+x" });
    expect(r.decision).toMatchObject({ ok: true, action: "deny" });
    expect(r.summary).toBe("denies qubes.Filecopy from any qube except dom0 to vault without notification");
    expect(r.steps).toEqual([]);
    const t = await c.request<ExplainResult>(ExplainRequest.method, { service: "qubes.Filecopy", source: "work", target: "personal" });
    expect(t.steps).toHaveLength(1);
    expect(t.steps[0]).toMatchObject({ rule: "qubes.Filecopy  *  @anyvm  vault     deny notify=no", file: "30-user.policy", line: 2, matched: false, failed: "target" });
    expect(t.steps[0]!.location?.range.start.line).toBe(1);
  });

  test("qubes/systemModel lists what the server knows", async () => {
    const r = await c.request<SystemModelResult>(SystemModelRequest.method, {});
    expect(r.source).toBe("file");
    expect(r.qubes.map((q) => q.name)).toContain("work");
    expect(r.tags).toEqual(["dvm-ok", "gpg-client", "gpg-server", "net"]);
    expect(r.services).toContain("qubes.Filecopy");
  });

  test("qubes/decisionTable", async () => {
    const r = await c.request<DecisionTableResult>(DecisionTableRequest.method, { uri: c.uri("policy.d/30-user.policy"), service: "qubes.Filecopy", sources: ["work"], targets: ["personal", "vault"] });
    expect(r.version).toBe(2);
    expect([0, 1].map((j) => decisionTableCell(r, 0, j).action)).toEqual(["allow", "deny"]);
    expect(decisionTableCell(r, 0, 1).rule?.location?.range.start.line).toBe(1);
  });

  test("survives documents of any shape", async () => {
    const nasty = ["\u0000\uffff\ud800", "!include ../../../../etc/passwd\n", "!include 30-user.policy\n", "\r\r\r\n\n\u2028@tag:", "x".repeat(100_000)];
    for (const text of nasty) {
      await c.change("policy.d/30-user.policy", text);
      const items = await c.request<CompletionItem[]>("textDocument/completion", { ...doc("policy.d/30-user.policy"), position: pos(0, 3) });
      expect(Array.isArray(items)).toBe(true);
      await c.request("textDocument/hover", { ...doc("policy.d/30-user.policy"), position: pos(0, 1) });
      await c.request("textDocument/formatting", { ...doc("policy.d/30-user.policy"), options: { tabSize: 2, insertSpaces: true } });
    }
    // Unsaved documents are policies of their own.
    await c.rpc.sendNotification("textDocument/didOpen", { textDocument: { uri: "untitled:Untitled-1", languageId: "qrexecpolicy", version: 1, text: "qubes.A * work vault alow\n" } });
    await c.settle();
    expect(c.diagnostics.get("untitled:Untitled-1")?.map((d) => d.code)).toEqual(["invalid-action"]);
    // Requests for unknown documents answer empty results.
    expect(await c.request("textDocument/completion", { textDocument: { uri: "file:///nowhere/x.policy" }, position: pos(0, 0) })).toEqual([]);
  });
});

describe("without a system model", () => {
  test("name checks are off and evaluate says why", async () => {
    const c = await startClient({ "policy.d/30-user.policy": "qubes.Filecopy * wrok vault allow\n" });
    try {
      await c.open("policy.d/30-user.policy");
      expect(c.diagnostics.get(c.uri("policy.d/30-user.policy")) ?? []).toEqual([]);
      const r = await c.request<EvaluateResult>(EvaluateRequest.method, { service: "qubes.Filecopy", source: "wrok", target: "vault" });
      expect(r.systemSource).toBe("none");
      expect(r.note).toContain("no system model");
    } finally {
      c.close();
    }
  });

  test("a workspace mirroring etc/qubes/policy.d resolves absolute includes inside it", async () => {
    const c = await startClient({
      "etc/qubes/policy.d/30-user.policy": "!include /etc/qubes/policy.d/include/x\n!include-service qubes.L * /etc/qubes-rpc/policy/legacy\n",
      "etc/qubes/policy.d/include/x": "qubes.A * @anyvm @anyvm deny\n",
      "etc/qubes-rpc/policy/legacy": "$anyvm $anyvm allow,target=dom0\n",
    });
    try {
      await c.open("etc/qubes/policy.d/30-user.policy");
      expect(c.diagnostics.get(c.uri("etc/qubes/policy.d/30-user.policy")) ?? []).toEqual([]);
      const locs = await c.request<Location[]>("textDocument/definition", { textDocument: { uri: c.uri("etc/qubes/policy.d/30-user.policy") }, position: pos(1, 45) });
      expect(locs[0]?.uri).toBe(c.uri("etc/qubes-rpc/policy/legacy"));
    } finally {
      c.close();
    }
  });
});
