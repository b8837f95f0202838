/**
 * "Add a rule for this call" and the simulator's request parameters over a
 * real connection: the rule goes above the `!include-service` line that
 * decides the call (never after the catch-all), fields no real call can have
 * are refused with `InvalidParams` in the parser's or the CLI's wording, the
 * offered commands say what the rule does, and unknown qubes get the CLI's
 * `[unknown-qube]` note.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { TextEdit, WorkspaceEdit } from "vscode-languageserver";
import { TextDocument } from "vscode-languageserver-textdocument";
import { DecisionTableRequest, EvaluateRequest, ExplainRequest, SERVER_COMMANDS, type AddRuleResult, type EvaluateResult, type ExplainResult } from "@qubes-kit/lsp";
import { FIXTURES } from "./helpers/fixture.js";
import { startClient, type TestClient } from "./helpers/client.js";

const FILES: Record<string, string> = {
  "policy.d/20-admin.policy": "# admin\n!include-service qubes.GetDate * include/getdate-legacy\n",
  "policy.d/include/getdate-legacy": "# legacy\n$anyvm  $default  allow,target=$adminvm\n",
  "policy.d/30-user.policy": "qubes.Filecopy  *  work  personal  allow\n",
  "policy.d/90-default.policy": "*  *  *  *  deny\n",
  "system.json": readFileSync(FIXTURES + "system.json", "utf8"),
};
const apply = (text: string, edits: TextEdit[]) => TextDocument.applyEdits(TextDocument.create("file:///x", "x", 0, text), edits);

describe("add a rule for this call, and the simulator's parameters", () => {
  let c: TestClient;
  let applied: WorkspaceEdit | undefined;
  const user = () => c.uri("policy.d/30-user.policy");
  const refusal = (method: string, params: unknown) =>
    c.request(method, params).then(
      () => undefined,
      (e: { code: number; message: string }) => e,
    );
  beforeAll(async () => {
    c = await startClient(FILES, { system: { source: "file", file: "system.json" } });
    await c.open("policy.d/30-user.policy");
    c.rpc.onRequest("workspace/applyEdit", (p: { edit: WorkspaceEdit }) => {
      applied = p.edit;
      return { applied: true };
    });
  });
  afterAll(() => c.close());

  test("a call decided by an !include-service legacy file: the rule goes above the include line, and then decides it", async () => {
    applied = undefined;
    const res = await c.request<AddRuleResult>("workspace/executeCommand", {
      command: SERVER_COMMANDS.addRuleForCall,
      arguments: [{ uri: user(), service: "qubes.GetDate", source: "work", target: "@default", action: "ask" }],
    });
    expect(res).toMatchObject({ applied: true, rule: "qubes.GetDate  +  work  @default  ask", location: { uri: c.uri("policy.d/20-admin.policy"), range: { start: { line: 1 } } } });
    const after = apply(FILES["policy.d/20-admin.policy"]!, applied!.changes![c.uri("policy.d/20-admin.policy")]!);
    expect(after).toBe("# admin\nqubes.GetDate  +  work  @default  ask\n!include-service qubes.GetDate * include/getdate-legacy\n");
    // The server decides the edited policy as asked.
    await c.open("policy.d/20-admin.policy", after);
    const d = await c.request<EvaluateResult>(EvaluateRequest.method, { uri: user(), service: "qubes.GetDate", source: "work", target: "@default" });
    expect(d.decision).toMatchObject({ action: "ask", rule: { file: "20-admin.policy", line: 2 } });
    await c.open("policy.d/20-admin.policy", FILES["policy.d/20-admin.policy"]!);
  });

  test.each([
    ["an argument without +", { service: "qubes.StartApp", argument: "firefox" }, /argument `firefox` has no leading `\+`.*\[argument-without-plus\]$/],
    ["the service *", { service: "*" }, /a call names one service.*\[invalid-service\]$/],
    ["a space in the service", { service: "qubes.X y" }, /service 'qubes.X y' contains invalid characters: \(' ',\).*\[invalid-service\]$/],
    ["a newline in the source", { source: "work\nqubes.Y * @anyvm @anyvm" }, /VM name contains illegal characters.*\[invalid-source\]$/],
    ["a space in the source", { source: "wo rk" }, /source "wo rk" is not a qube name.*\[invalid-source\]$/],
    ["a rule token as the source", { source: "@anyvm" }, /rule token, not a qube.*\[invalid-source\]$/],
  ])("%s: every request refuses it with InvalidParams, one line", async (_name, change, message) => {
    const call = { uri: user(), service: "qubes.Filecopy", source: "work", target: "personal", ...change };
    for (const [method, params] of [
      [EvaluateRequest.method, call],
      [ExplainRequest.method, call],
      ["workspace/executeCommand", { command: SERVER_COMMANDS.addRuleForCall, arguments: [{ ...call, action: "deny" }] }],
    ] as const) {
      const e = await refusal(method, params);
      expect(e, method).toMatchObject({ code: -32602 });
      expect(e!.message, method).toMatch(message);
      expect(e!.message).not.toMatch(/\n/);
    }
  });

  test.each([
    ["an argument without +", { service: "qubes.StartApp", argument: "firefox" }, /\[argument-without-plus\]$/],
    ["a space in the service", { service: "a b" }, /\[invalid-service\]$/],
    ["a rule token in sources", { service: "qubes.Filecopy", sources: ["@anyvm"] }, /^in `sources`: .*\[invalid-source\]$/],
    ["a bad token in targets", { service: "qubes.Filecopy", targets: ["@anyvm"] }, /^in `targets`: invalid intendedtarget token: '@anyvm'.*\[invalid-target\]$/],
  ])("the decision table refuses %s", async (_name, params, message) => {
    const e = await refusal(DecisionTableRequest.method, { uri: user(), ...params });
    expect(e).toMatchObject({ code: -32602 });
    expect(e!.message).toMatch(message);
  });

  test("unknown qubes are decided with the CLI's [unknown-qube] note, and no 'add a rule' command", async () => {
    const r = await c.request<ExplainResult>(ExplainRequest.method, { uri: user(), service: "qubes.Filecopy", source: "wrok", target: "nosuch" });
    expect(r.note).toMatch(/source `wrok` is not a qube of the system: the daemon never receives a call from it; check the name; did you mean `work`\? \[unknown-qube\]/);
    expect(r.note).toMatch(/target `nosuch` is not a qube of the system: the daemon treats it as @default \[unknown-qube\]/);
    expect(r.addRule).toEqual([]);
    const t = await c.request<{ note?: string }>(DecisionTableRequest.method, { uri: user(), service: "qubes.Filecopy", sources: ["nosuch", "work"], targets: ["vault"] });
    expect(t.note).toMatch(/^source `nosuch` is not a qube of the system.*\[unknown-qube\]$/);
    const ok = await c.request<EvaluateResult>(EvaluateRequest.method, { uri: user(), service: "qubes.Filecopy", source: "work", target: "personal" });
    expect(ok.note).toBeUndefined();
  });

  test("an explanation to @default offers no allow; each title says the rule it adds", async () => {
    const r = await c.request<ExplainResult>(ExplainRequest.method, { uri: user(), service: "qubes.Filecopy", source: "work" });
    expect(r.addRule?.map((a) => a.title)).toEqual(["add a rule: deny this call (`qubes.Filecopy + work @default deny`)", "add a rule: ask this call (`qubes.Filecopy + work @default ask`)"]);
    const res = await c.request<AddRuleResult>("workspace/executeCommand", { command: SERVER_COMMANDS.addRuleForCall, arguments: [{ uri: user(), service: "qubes.Filecopy", source: "work", target: "", action: "allow" }] });
    expect(res).toMatchObject({ applied: false });
    expect(res.error).toMatch(/needs a named target.*\[allow-without-target\]$/);
  });

  test("@dispvm from a qube with no default disposable template is refused with the engine's reason, nothing is edited", async () => {
    applied = undefined;
    const res = await c.request<AddRuleResult>("workspace/executeCommand", { command: SERVER_COMMANDS.addRuleForCall, arguments: [{ uri: user(), service: "qubes.VMExec", source: "vault", target: "@dispvm", action: "allow" }] });
    expect(res).toMatchObject({ applied: false });
    expect(res.error).toMatch(/the engine refuses it.*\[rule-would-not-decide\]$/);
    expect(applied).toBeUndefined();
  });

  test("the unknown-command error names every command the server runs", async () => {
    const e = await refusal("workspace/executeCommand", { command: "nope" });
    expect(e?.message).toContain("qubesPolicy.simulateRule");
    expect(e?.message).toContain(SERVER_COMMANDS.addRuleForCall);
  });
});
