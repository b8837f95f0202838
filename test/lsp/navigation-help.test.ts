/**
 * Navigation and help over a real connection (the client library speaking
 * JSON-RPC to the server): rename (policy and stack files), prepareRename
 * refusals, workspace symbols, document links, highlight, definition of
 * services and tags, signature help, inlay hints, pull diagnostics, semantic
 * token deltas, executeCommand and the quick fixes.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type {
  CodeAction,
  CodeLens,
  DocumentDiagnosticReport,
  DocumentHighlight,
  DocumentLink,
  InlayHint,
  Location,
  SemanticTokens,
  SemanticTokensDelta,
  SignatureHelp,
  SymbolInformation,
  TextEdit,
  WorkspaceDiagnosticReport,
  WorkspaceEdit,
} from "vscode-languageserver";
import { TextDocument } from "vscode-languageserver-textdocument";
import { ExplainRequest, SERVER_COMMANDS, SIMULATE_RULE_COMMAND, type AddRuleResult, type ExplainResult } from "@qubes-kit/lsp";
import { FIXTURES } from "./helpers/fixture.js";
import { startClient, type TestClient } from "./helpers/client.js";

const FILES: Record<string, string> = {
  "policy.d/10-gpg.policy": "qubes.Gpg  *  @tag:gpg-client  @tag:gpg-server  allow\nqubes.Gpg  *  work  @default  ask default_target=vault\n",
  "policy.d/30-user.policy": [
    "!include include/common",
    "qubes.Filecopy  *  @anyvm  vault     deny notify=no",
    "qubes.Filecopy  *  work    personal  allow",
    "qubes.Filecopy  *  work    vault     allow",
    "qubes.OpenURL   *  work    @dispvm   allow",
    "qubes.VMShell   *  work    personal  allow notify=yes",
    "qubes.VMShell   *  work    vault     allow target=vault",
    "qubes.VMShell   *  work    sys-net   ask default_target=vault",
    "!include-dir include",
    "",
  ].join("\n"),
  "policy.d/include/common": "qubes.GetDate  *  @anyvm  @default  allow target=dom0\n",
  "policy.d/90-default.policy": "* * @anyvm @anyvm deny\n",
  "stacks/work.qubes.yaml": [
    "qubes:",
    "  work:",
    "    class: AppVM",
    "    tags: [gpg-client]",
    "  mail:",
    "    class: AppVM",
    "    netvm: \"work\"",
    "policy:",
    "  - file: office",
    "    priority: 40",
    "    rules: |",
    "      qubes.Filecopy  *  work  @tag:gpg-client  ask",
    "",
  ].join("\n"),
  "system.json": readFileSync(FIXTURES + "system.json", "utf8"),
};

const pos = (line: number, character: number) => ({ line, character });
/** Applies LSP text edits to a text. */
const apply = (text: string, edits: TextEdit[]) => TextDocument.applyEdits(TextDocument.create("file:///x", "x", 0, text), edits);

describe("navigation and help", () => {
  let c: TestClient;
  const doc = (rel: string) => ({ textDocument: { uri: c.uri(rel) } });
  beforeAll(async () => {
    c = await startClient(FILES, { system: { source: "file", file: "system.json" } });
    await c.open("policy.d/30-user.policy");
    await c.open("policy.d/10-gpg.policy");
  });
  afterAll(() => c.close());

  test("the server announces every feature", () => {
    const caps = c.init.capabilities;
    expect(caps.renameProvider).toEqual({ prepareProvider: true });
    expect(caps.workspaceSymbolProvider).toBe(true);
    expect(caps.documentLinkProvider).toBeTruthy();
    expect(caps.documentHighlightProvider).toBe(true);
    expect(caps.signatureHelpProvider?.triggerCharacters).toContain(" ");
    expect(caps.inlayHintProvider).toBeTruthy();
    expect(caps.diagnosticProvider).toMatchObject({ workspaceDiagnostics: true });
    expect(caps.semanticTokensProvider?.full).toEqual({ delta: true });
    expect(caps.executeCommandProvider?.commands).toEqual([SIMULATE_RULE_COMMAND, SERVER_COMMANDS.simulateRule, SERVER_COMMANDS.addRuleForCall]);
  });

  test("rename a qube: every policy file and every stack file, with the stack's quotes kept", async () => {
    const prep = await c.request<{ range: unknown; placeholder: string }>("textDocument/prepareRename", { ...doc("policy.d/30-user.policy"), position: pos(2, 20) });
    expect(prep.placeholder).toBe("work");
    const edit = await c.request<WorkspaceEdit>("textDocument/rename", { ...doc("policy.d/30-user.policy"), position: pos(2, 20), newName: "office" });
    const changes = edit.changes!;
    expect(Object.keys(changes).sort()).toEqual([c.uri("policy.d/10-gpg.policy"), c.uri("policy.d/30-user.policy"), c.uri("stacks/work.qubes.yaml")].sort());
    expect(apply(FILES["policy.d/10-gpg.policy"]!, changes[c.uri("policy.d/10-gpg.policy")]!)).toBe(FILES["policy.d/10-gpg.policy"]!.replace("  work  ", "  office  "));
    expect(apply(FILES["policy.d/30-user.policy"]!, changes[c.uri("policy.d/30-user.policy")]!)).toBe(FILES["policy.d/30-user.policy"]!.replace(/ work {4}/g, " office    "));
    expect(apply(FILES["stacks/work.qubes.yaml"]!, changes[c.uri("stacks/work.qubes.yaml")]!)).toBe(FILES["stacks/work.qubes.yaml"]!.replace(/\bwork\b/g, "office"));
  });

  test("rename from a stack file: its declaration, values and rules blocks, and the workspace's policy", async () => {
    await c.open("stacks/work.qubes.yaml");
    const prep = await c.request<{ placeholder: string }>("textDocument/prepareRename", { ...doc("stacks/work.qubes.yaml"), position: pos(6, 13) });
    expect(prep.placeholder).toBe("work");
    const edit = await c.request<WorkspaceEdit>("textDocument/rename", { ...doc("stacks/work.qubes.yaml"), position: pos(1, 3), newName: "office" });
    expect(apply(FILES["stacks/work.qubes.yaml"]!, edit.changes![c.uri("stacks/work.qubes.yaml")]!)).toBe(FILES["stacks/work.qubes.yaml"]!.replace(/\bwork\b/g, "office"));
    expect(apply(FILES["policy.d/10-gpg.policy"]!, edit.changes![c.uri("policy.d/10-gpg.policy")]!)).toContain("qubes.Gpg  *  office  @default");
    const err = await c.request("textDocument/rename", { ...doc("stacks/work.qubes.yaml"), position: pos(1, 3), newName: "mail" }).then(
      () => undefined,
      (e: { message: string }) => e,
    );
    expect(err?.message).toMatch(/Qube already exists: mail/);
  });

  test("rename a tag, from @tag: and from @dispvm-less places", async () => {
    const edit = await c.request<WorkspaceEdit>("textDocument/rename", { ...doc("policy.d/10-gpg.policy"), position: pos(0, 20), newName: "gpg-users" });
    expect(apply(FILES["policy.d/10-gpg.policy"]!, edit.changes![c.uri("policy.d/10-gpg.policy")]!)).toContain("@tag:gpg-users  @tag:gpg-server");
    const stack = apply(FILES["stacks/work.qubes.yaml"]!, edit.changes![c.uri("stacks/work.qubes.yaml")]!);
    expect(stack).toContain("tags: [gpg-users]");
    expect(stack).toContain("work  @tag:gpg-users  ask");
  });

  const refusals: Array<[string, string, { line: number; character: number }, string, number, RegExp]> = [
    ["an invalid qube name, in the engine's words", "policy.d/30-user.policy", pos(2, 20), "2work", -32600, /VM name cannot start with hyphen, underscore, dot or numbers/],
    ["a name ending in -dm", "policy.d/30-user.policy", pos(2, 20), "work-dm", -32600, /VM name cannot end with -dm/],
    ["a qube that exists in the system model", "policy.d/30-user.policy", pos(2, 20), "vault", -32600, /Qube already exists: vault/],
    ["a qube a stack declares", "policy.d/30-user.policy", pos(2, 29), "mail", -32600, /Qube already exists: mail/],
    ["a tag with a dot", "policy.d/10-gpg.policy", pos(0, 20), "gpg.client", -32600, /Invalid character in tag/],
  ];
  test.each(refusals)("rename refuses %s", async (_name, rel, position, newName, code, message) => {
    const err = await c.request("textDocument/rename", { ...doc(rel), position, newName }).then(
      () => undefined,
      (e: { code: number; message: string }) => e,
    );
    expect(err).toMatchObject({ code });
    expect(err!.message).toMatch(message);
  });

  const notRenamable: Array<[string, string, { line: number; character: number }, RegExp]> = [
    ["a service", "policy.d/30-user.policy", pos(1, 3), /is a service/],
    ["an action", "policy.d/30-user.policy", pos(1, 40), /only a qube name or a tag/],
    ["dom0", "policy.d/include/common", pos(0, 50), /dom0/],
    ["a keyword", "policy.d/30-user.policy", pos(1, 20), /only a qube name or a tag/],
  ];
  test.each(notRenamable)("prepareRename refuses %s with a message", async (_n, rel, position, message) => {
    if (rel === "policy.d/include/common") await c.open(rel);
    const err = await c.request("textDocument/prepareRename", { ...doc(rel), position }).then(
      () => undefined,
      (e: { message: string }) => e,
    );
    expect(err?.message).toMatch(message);
  });

  test("workspace symbols find rules of every file by service, columns or file name", async () => {
    const all = await c.request<SymbolInformation[]>("workspace/symbol", { query: "" });
    expect(all.length).toBeGreaterThanOrEqual(12);
    const gpg = await c.request<SymbolInformation[]>("workspace/symbol", { query: "gpg" });
    const inPolicy = gpg.filter((s) => s.location.uri.includes("/policy.d/"));
    expect(inPolicy.map((s) => s.name)).toEqual(["qubes.Gpg *", "qubes.Gpg *"]);
    expect(inPolicy[0]!.location.uri).toBe(c.uri("policy.d/10-gpg.policy"));
    // Stack files add their qubes and the rules of their `rules:` blocks (here the rule naming @tag:gpg-client).
    expect(gpg.filter((s) => !inPolicy.includes(s)).map((s) => [s.name, s.location.uri, s.location.range.start.line])).toEqual([["qubes.Filecopy *", c.uri("stacks/work.qubes.yaml"), 11]]);
    const date = await c.request<SymbolInformation[]>("workspace/symbol", { query: "GetDate" });
    expect(date.map((s) => s.location.uri)).toEqual([c.uri("policy.d/include/common")]);
  });

  test("document links on !include and !include-dir paths", async () => {
    const links = await c.request<DocumentLink[]>("textDocument/documentLink", doc("policy.d/30-user.policy"));
    expect(links.map((l) => [l.range.start.line, l.target])).toEqual([
      [0, c.uri("policy.d/include/common")],
      [8, c.uri("policy.d/include")],
    ]);
  });

  test("document highlight marks every occurrence in the file, the sources as writes", async () => {
    const hs = await c.request<DocumentHighlight[]>("textDocument/documentHighlight", { ...doc("policy.d/30-user.policy"), position: pos(2, 20) });
    expect(hs.map((h) => [h.range.start.line, h.kind])).toEqual([2, 3, 4, 5, 6, 7].map((l) => [l, 3]));
    const vault = await c.request<DocumentHighlight[]>("textDocument/documentHighlight", { ...doc("policy.d/30-user.policy"), position: pos(1, 27) });
    expect(vault.map((h) => h.range.start.line)).toEqual([1, 3, 6, 6, 7]);
  });

  test("definition of a service lists its rules in every file; of a tag, the qubes that carry it", async () => {
    const svc = await c.request<Location[]>("textDocument/definition", { ...doc("policy.d/10-gpg.policy"), position: pos(0, 3) });
    expect(svc.map((l) => [l.uri, l.range.start.line])).toEqual([
      [c.uri("policy.d/10-gpg.policy"), 0],
      [c.uri("policy.d/10-gpg.policy"), 1],
    ]);
    const tag = await c.request<Location[]>("textDocument/definition", { ...doc("policy.d/10-gpg.policy"), position: pos(0, 38) });
    expect(tag.map((l) => l.uri)).toEqual([c.uri("system.json")]);
    const text = FILES["system.json"]!;
    const line = text.split("\n")[tag[0]!.range.start.line]!;
    expect(line).toContain('"vault"');
    // `@type:` goes to every qube of the class, `@dispvm:NAME` to the template's entry.
    await c.open("policy.d/60-types.policy", "qubes.A  *  @type:TemplateVM  @dispvm:default-dvm  allow\n");
    const type = await c.request<Location[]>("textDocument/definition", { ...doc("policy.d/60-types.policy"), position: pos(0, 20) });
    expect(type.map((l) => text.split("\n")[l.range.start.line]!.trim())).toEqual(['"fedora-41": {']);
    const dvm = await c.request<Location[]>("textDocument/definition", { ...doc("policy.d/60-types.policy"), position: pos(0, 40) });
    expect(dvm.map((l) => text.split("\n")[l.range.start.line]!.trim())).toEqual(['"default-dvm": {']);
  });

  const signatures: Array<[string, number, number, string, number]> = [
    ["after allow and a space", 5, 43, "allow target=QUBE user=USER notify=yes|no autostart=yes|no", 0],
    ["on notify=", 5, 50, "allow target=QUBE user=USER notify=yes|no autostart=yes|no", 2],
    ["on a half-typed key", 6, 46, "allow target=QUBE user=USER notify=yes|no autostart=yes|no", 0],
    ["after deny", 1, 47, "deny notify=yes|no", 0],
  ];
  test.each(signatures)("signature help %s", async (_n, line, character, label, active) => {
    const s = await c.request<SignatureHelp>("textDocument/signatureHelp", { ...doc("policy.d/30-user.policy"), position: pos(line, character) });
    expect(s.signatures[0]!.label).toBe(label);
    expect(s.activeParameter).toBe(active);
  });

  test("no signature help before the action", async () => {
    expect(await c.request("textDocument/signatureHelp", { ...doc("policy.d/30-user.policy"), position: pos(2, 5) })).toBeNull();
  });

  test("inlay hints: @dispvm's template for the rule's sources, shadowed rules", async () => {
    const hints = await c.request<InlayHint[]>("textDocument/inlayHint", { ...doc("policy.d/30-user.policy"), range: { start: pos(0, 0), end: pos(20, 0) } });
    const labels = hints.map((h) => [h.position.line, h.label]);
    expect(labels).toContainEqual([4, ": default-dvm"]);
    expect(labels).toContainEqual([3, "shadowed by 30-user.policy:2"]);
  });

  test("pull diagnostics: full with a result id, then unchanged", async () => {
    const first = await c.request<DocumentDiagnosticReport & { resultId: string; items: Array<{ code: string }> }>("textDocument/diagnostic", doc("policy.d/30-user.policy"));
    expect(first.kind).toBe("full");
    expect(first.items.map((d) => d.code)).toEqual(c.diagnostics.get(c.uri("policy.d/30-user.policy"))!.map((d) => d.code));
    const again = await c.request<DocumentDiagnosticReport>("textDocument/diagnostic", { ...doc("policy.d/30-user.policy"), previousResultId: first.resultId });
    expect(again).toEqual({ kind: "unchanged", resultId: first.resultId });
    const ws = await c.request<WorkspaceDiagnosticReport>("workspace/diagnostic", { previousResultIds: [{ uri: c.uri("policy.d/30-user.policy"), value: first.resultId }] });
    const mine = ws.items.find((i) => i.uri === c.uri("policy.d/30-user.policy"));
    expect(mine?.kind).toBe("unchanged");
    expect(ws.items.some((i) => i.uri === c.uri("policy.d/90-default.policy"))).toBe(true);
  });

  test("semantic tokens: a delta after an edit applies to the full tokens of the new text", async () => {
    await c.open("policy.d/scratch.policy", "qubes.A  *  work  vault  allow\n");
    const full = await c.request<SemanticTokens>("textDocument/semanticTokens/full", doc("policy.d/scratch.policy"));
    expect(full.resultId).toBeTruthy();
    await c.change("policy.d/scratch.policy", "qubes.A  *  work  vault  allow\nqubes.B  *  @tag:x  @dispvm  allow\n");
    const delta = await c.request<SemanticTokensDelta>("textDocument/semanticTokens/full/delta", { ...doc("policy.d/scratch.policy"), previousResultId: full.resultId });
    expect(delta.edits).toBeDefined();
    const data = [...full.data];
    for (const e of [...delta.edits].reverse()) data.splice(e.start, e.deleteCount, ...(e.data ?? []));
    const now = await c.request<SemanticTokens>("textDocument/semanticTokens/full", doc("policy.d/scratch.policy"));
    expect(data).toEqual(now.data);
    // An unknown result id answers the full tokens.
    const stale = await c.request<SemanticTokens>("textDocument/semanticTokens/full/delta", { ...doc("policy.d/scratch.policy"), previousResultId: "nope" });
    expect(stale.data).toEqual(now.data);
  });

  test("the code lenses' command runs in the server outside VS Code", async () => {
    const lenses = await c.request<CodeLens[]>("textDocument/codeLens", doc("policy.d/30-user.policy"));
    expect(lenses[0]!.command!.command).toBe(SIMULATE_RULE_COMMAND);
    expect(c.init.capabilities.executeCommandProvider?.commands).toContain(lenses[0]!.command!.command);
    const shown: string[] = [];
    c.rpc.onNotification("window/showMessage", (p: { message: string }) => shown.push(p.message));
    const r = await c.request<ExplainResult>("workspace/executeCommand", { command: lenses[1]!.command!.command, arguments: lenses[1]!.command!.arguments });
    expect(r.request).toMatchObject({ service: "qubes.Filecopy", source: "work", target: "personal" });
    expect(r.decision).toMatchObject({ ok: true, action: "allow" });
    await c.settle();
    expect(shown).toEqual(["qubes.Filecopy from work to personal: allow (target personal) by 30-user.policy:3"]);
  });

  test("executeCommand refuses unknown commands and bad arguments", async () => {
    for (const params of [{ command: "nope" }, { command: SERVER_COMMANDS.simulateRule, arguments: ["x"] }, { command: SERVER_COMMANDS.addRuleForCall, arguments: [{ service: "a" }] }]) {
      const err = await c.request("workspace/executeCommand", params).then(
        () => undefined,
        (e: { code: number }) => e,
      );
      expect(err, JSON.stringify(params)).toMatchObject({ code: -32602 });
    }
  });

  test("an explanation offers 'add a rule for this call', which edits the policy through applyEdit", async () => {
    const r = await c.request<ExplainResult>(ExplainRequest.method, { uri: c.uri("policy.d/30-user.policy"), service: "qubes.Filecopy", source: "personal", target: "work" });
    expect(r.decision).toMatchObject({ action: "deny" });
    expect(r.addRule?.map((a) => a.title)).toEqual([
      "add a rule: allow this call (`qubes.Filecopy + personal work allow`)",
      "add a rule: deny this call (`qubes.Filecopy + personal work deny`)",
      "add a rule: ask this call (`qubes.Filecopy + personal work ask`)",
    ]);
    let applied: WorkspaceEdit | undefined;
    c.rpc.onRequest("workspace/applyEdit", (p: { edit: WorkspaceEdit }) => {
      applied = p.edit;
      return { applied: true };
    });
    const res = await c.request<AddRuleResult>("workspace/executeCommand", { command: r.addRule![0]!.command, arguments: r.addRule![0]!.arguments });
    expect(res).toMatchObject({ applied: true, rule: "qubes.Filecopy  +  personal  work  allow" });
    const edits = applied!.changes![c.uri("policy.d/90-default.policy")]!;
    const after = apply(FILES["policy.d/90-default.policy"]!, edits);
    expect(after).toBe("qubes.Filecopy  +  personal  work  allow\n* * @anyvm @anyvm deny\n");
  });

  test.each([
    ["null", null, "the editor did not apply the edit: add the rule by hand"],
    ["a refusal with its reason", { applied: false, failureReason: "file is read-only" }, "file is read-only"],
    ["an answer without `applied`", {}, "the editor did not apply the edit: add the rule by hand"],
  ])("'add a rule' reports an editor that answers applyEdit with %s as not applied, without an error message", async (_name, answer, error) => {
    const r = await c.request<ExplainResult>(ExplainRequest.method, { uri: c.uri("policy.d/30-user.policy"), service: "qubes.Filecopy", source: "personal", target: "work" });
    c.rpc.onRequest("workspace/applyEdit", () => answer);
    const shown: string[] = [];
    c.rpc.onNotification("window/showMessage", (p: { message: string }) => shown.push(p.message));
    const res = await c.request<AddRuleResult>("workspace/executeCommand", { command: r.addRule![0]!.command, arguments: r.addRule![0]!.arguments });
    expect(res).toMatchObject({ applied: false, rule: "qubes.Filecopy  +  personal  work  allow", error });
    expect(shown).toEqual([]);
  });
});

describe("a workspace that mirrors /etc", () => {
  test("a service's definition includes its implementation under /etc/qubes-rpc", async () => {
    const c = await startClient({
      "etc/qubes/policy.d/30-user.policy": "qubes.Gpg  *  work  vault  allow\nqubes.Other  *  work  vault  allow\n",
      "etc/qubes-rpc/qubes.Gpg": "#!/bin/sh\nexec qubes-gpg-server\n",
    });
    try {
      await c.open("etc/qubes/policy.d/30-user.policy");
      const defs = await c.request<Location[]>("textDocument/definition", { textDocument: { uri: c.uri("etc/qubes/policy.d/30-user.policy") }, position: pos(0, 3) });
      expect(defs.map((d) => [d.uri, d.range.start.line])).toEqual([
        [c.uri("etc/qubes-rpc/qubes.Gpg"), 0],
        [c.uri("etc/qubes/policy.d/30-user.policy"), 0],
      ]);
      const other = await c.request<Location[]>("textDocument/definition", { textDocument: { uri: c.uri("etc/qubes/policy.d/30-user.policy") }, position: pos(1, 3) });
      expect(other.map((d) => d.uri)).toEqual([c.uri("etc/qubes/policy.d/30-user.policy")]);
    } finally {
      c.close();
    }
  });
});

describe("quick fixes", () => {
  let c: TestClient;
  beforeAll(async () => {
    c = await startClient(FILES, { system: { source: "file", file: "system.json" } });
  });
  afterAll(() => c.close());

  const cases: Array<[string, string, number, string[], string]> = [
    ["a yes/no value", "qubes.C  *  work  vault  allow notify=true\n", 0, ["replace with `notify=yes`", "replace with `notify=no`"], "qubes.C  *  work  vault  allow notify=yes\n"],
    ["an unknown key", "qubes.D  *  work  vault  allow targt=vault\n", 0, ["replace with `target=vault` (did you mean `target`?)", "remove `targt=vault`"], "qubes.D  *  work  vault  allow target=vault\n"],
    [
      "a key the action does not take",
      "qubes.E  *  work  vault  allow default_target=vault\n",
      0,
      ["remove `default_target=vault` (`allow` does not take `default_target=`)", "change the action to ask"],
      "qubes.E  *  work  vault  allow\n",
    ],
    [
      "a shadowed rule that can move",
      "qubes.A  *  @anyvm  @anyvm  deny\nqubes.A  *  work  vault  allow\n",
      1,
      ["remove the shadowed rule", "move the rule above the broader rule at line 1 (only the calls it matches change: they get `allow`)"],
      "qubes.A  *  @anyvm  @anyvm  deny\n",
    ],
  ];
  test.each(cases)("%s", async (_name, text, line, titles, preferredResult) => {
    const rel = `policy.d/50-fix-${titles.length}-${line}-${text.length}.policy`;
    await c.open(rel, text);
    const actions = await c.request<CodeAction[]>("textDocument/codeAction", {
      textDocument: { uri: c.uri(rel) },
      range: { start: pos(line, 0), end: pos(line, 200) },
      context: { diagnostics: [] },
    });
    expect(actions.map((a) => a.title)).toEqual(titles);
    const first = actions.find((a) => a.isPreferred) ?? actions[0]!;
    expect(apply(text, first.edit!.changes![c.uri(rel)]!)).toBe(preferredResult);
  });

  test("the move puts the rule above the broader one and changes only its own calls", async () => {
    const text = "qubes.M  *  @anyvm  @anyvm  deny\nqubes.M  *  work  vault  allow\n";
    await c.open("policy.d/51-move.policy", text);
    const actions = await c.request<CodeAction[]>("textDocument/codeAction", { textDocument: { uri: c.uri("policy.d/51-move.policy") }, range: { start: pos(1, 0), end: pos(1, 5) }, context: { diagnostics: [] } });
    const move = actions.find((a) => a.title.startsWith("move"))!;
    expect(apply(text, move.edit!.changes![c.uri("policy.d/51-move.policy")]!)).toBe("qubes.M  *  work  vault  allow\nqubes.M  *  @anyvm  @anyvm  deny\n");
  });

  test("no move when an ask rule of the service could see the change", async () => {
    const text = "qubes.B  *  work  @default  ask\nqubes.B  *  @anyvm  @anyvm  deny\nqubes.B  *  work  vault  allow\n";
    await c.open("policy.d/52-ask.policy", text);
    const actions = await c.request<CodeAction[]>("textDocument/codeAction", { textDocument: { uri: c.uri("policy.d/52-ask.policy") }, range: { start: pos(2, 0), end: pos(2, 5) }, context: { diagnostics: [] } });
    expect(actions.map((a) => a.title).filter((t) => t.startsWith("move"))).toEqual([]);
  });
});

describe("robustness of the new requests", () => {
  let c: TestClient;
  const failures: string[] = [];
  beforeAll(async () => {
    c = await startClient(FILES, { system: { source: "file", file: "system.json" } });
    c.rpc.onNotification("window/logMessage", (p: { message: string }) => {
      if (/ failed: /.test(p.message)) failures.push(p.message);
    });
    c.rpc.onRequest("workspace/applyEdit", () => ({ applied: false, failureReason: "test" }));
    await c.open("policy.d/70-fuzz.policy", "");
  });
  afterAll(() => c.close());

  const WORDS = ["qubes.A", "*", "+x", "work", "vault", "@anyvm", "@default", "@dispvm", "@dispvm:default-dvm", "@tag:gpg-client", "@type:AppVM", "allow", "deny", "ask", "target=vault", "notify=maybe", "targt=x", "!include", "!include-dir", "include", "$tag:x", "allow,target=dom0", "#", "\t", "\u0000", "\ud800", "é"];
  const line = fc.array(fc.oneof(fc.constantFrom(...WORDS), fc.string({ maxLength: 6 })), { maxLength: 8 }).map((ws) => ws.join(" "));

  test("any text, any position: an answer or a refusal, never a failure", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 6 }), fc.nat(8), fc.nat(80), fc.string({ maxLength: 12 }), async (lines, l, ch, newName) => {
        await c.change("policy.d/70-fuzz.policy", lines.join("\n"));
        const textDocument = { uri: c.uri("policy.d/70-fuzz.policy") };
        const position = pos(l, ch);
        const calls: Array<[string, unknown]> = [
          ["textDocument/prepareRename", { textDocument, position }],
          ["textDocument/rename", { textDocument, position, newName }],
          ["textDocument/documentHighlight", { textDocument, position }],
          ["textDocument/documentLink", { textDocument }],
          ["textDocument/signatureHelp", { textDocument, position }],
          ["textDocument/inlayHint", { textDocument, range: { start: pos(0, 0), end: pos(l, ch) } }],
          ["textDocument/diagnostic", { textDocument }],
          ["textDocument/semanticTokens/full/delta", { textDocument, previousResultId: String(l) }],
          ["textDocument/codeAction", { textDocument, range: { start: pos(0, 0), end: position }, context: { diagnostics: [] } }],
          ["textDocument/definition", { textDocument, position }],
          ["workspace/symbol", { query: newName }],
          ["workspace/executeCommand", { command: SERVER_COMMANDS.simulateRule, arguments: [textDocument.uri, l + 1] }],
          ["workspace/executeCommand", { command: SERVER_COMMANDS.addRuleForCall, arguments: [{ uri: textDocument.uri, service: "qubes.A", source: "work", target: newName, action: "allow" }] }],
        ];
        for (const [method, params] of calls) {
          await c.request(method, params).catch((e: { code: number }) => {
            // Refusals the client is meant to see: InvalidRequest (rename) and InvalidParams.
            expect([-32600, -32602], `${method}: ${JSON.stringify(e)}`).toContain(e.code);
          });
        }
        expect(failures).toEqual([]);
      }),
      { numRuns: 40 },
    );
  });

  test("parameters of the wrong shape are refused with InvalidParams", async () => {
    for (const [method, params] of [
      ["textDocument/rename", { textDocument: {}, position: pos(0, 0), newName: "x" }],
      ["textDocument/rename", { textDocument: { uri: c.uri("policy.d/70-fuzz.policy") }, position: { line: -1, character: 0 }, newName: "x" }],
      ["textDocument/signatureHelp", { textDocument: { uri: 5 }, position: pos(0, 0) }],
      ["textDocument/inlayHint", null],
      ["workspace/symbol", [1, 2]],
    ] as const) {
      const err = await c.request(method, params).then(
        () => undefined,
        (e: { code: number }) => e,
      );
      expect(err, `${method} ${JSON.stringify(params)}`).toMatchObject({ code: -32602 });
    }
  });
});
