/**
 * The extension's pure renderers (`vscode-extension/src/render.ts`): decision summaries, the
 * explanation document and the decision-table webview. The contract with the real server's
 * answers is checked in `test/lsp/stdio-server.test.ts`.
 */
import { describe, expect, it } from "vitest";
import type { DecisionTableResult, EvaluateResult } from "@qubes-kit/lsp";
import {
  cellText,
  decisionTableHtml,
  describeDecision,
  describeRequest,
  escapeHtml,
  isConcreteQube,
  ruleColumns,
} from "../../vscode-extension/src/render.js";

type Decision = EvaluateResult["decision"];
const rule = { file: "30-user.policy", line: 3 };

describe("describeDecision", () => {
  const cases: Array<[string, Decision, string]> = [
    [
      "allow",
      { ok: true, action: "allow", target: "personal", user: null, notify: false, autostart: true, rule, intendedTarget: "personal", exec: {} },
      "allow: call goes to personal (30-user.policy:3)",
    ],
    [
      "allow as a user",
      { ok: true, action: "allow", target: "dom0", user: "root", notify: false, autostart: true, rule, intendedTarget: "@adminvm", exec: {} },
      "allow: call goes to dom0 as user root (30-user.policy:3)",
    ],
    [
      "ask",
      { ok: true, action: "ask", targetsForAsk: ["vault", "work"], defaultTarget: "vault", user: null, notify: false, autostart: true, rule, intendedTarget: "vault" },
      "ask: the user chooses among vault, work, default vault (30-user.policy:3)",
    ],
    [
      "deny",
      { ok: true, action: "deny", notify: true, rule, message: "denied by policy /etc/qubes/policy.d/30-user.policy:3", intendedTarget: "vault" },
      "deny: denied by policy /etc/qubes/policy.d/30-user.policy:3",
    ],
    [
      "engine error",
      { ok: false, stage: "load", error: "PolicySyntaxError", code: "invalid-action", message: "/etc/qubes/policy.d/40-x.policy:2: invalid action: alow" },
      "deny (PolicySyntaxError): /etc/qubes/policy.d/40-x.policy:2: invalid action: alow",
    ],
    [
      "implicit legacy rule",
      { ok: true, action: "deny", notify: true, rule: { file: "/etc/qubes-rpc/policy/svc+arg", line: null }, message: "denied by policy /etc/qubes-rpc/policy/svc+arg:None", intendedTarget: "x" },
      "deny: denied by policy /etc/qubes-rpc/policy/svc+arg:None",
    ],
  ];
  it.each(cases)("%s", (_name, decision, expected) => {
    expect(describeDecision(decision)).toBe(expected);
  });
});

describe("describeRequest", () => {
  it.each([
    [{ service: "qubes.Filecopy", argument: "+", source: "work", target: "vault" }, "qubes.Filecopy from work to vault"],
    [{ service: "qubes.Gpg", argument: "+key", source: "work", target: "" }, "qubes.Gpg+key from work to @default"],
  ])("%j", (request, expected) => {
    expect(describeRequest(request)).toBe(expected);
  });
});

describe("decisionTableHtml", () => {
  const location = { uri: "file:///p/30-user.policy", range: { start: { line: 1, character: 0 }, end: { line: 1, character: 5 } } };
  const table: DecisionTableResult = {
    version: 2,
    service: "qubes.Filecopy",
    argument: "+",
    sources: ["work", "<script>"],
    targets: ["vault", "@default"],
    systemSource: "file",
    offers: [["personal", "vault"]],
    rules: [{ file: "30-user.policy", line: 2, location }, { file: "30-user.policy", line: 4 }, { file: "30-user.policy", line: 3 }],
    kinds: [
      { action: "deny", message: "denied by policy /etc/qubes/policy.d/30-user.policy:2", rule: 0 },
      { action: "ask", offer: 0, target: "vault", rule: 1 },
      { action: "allow", rule: 2 },
      { action: "error", message: "invalid \"thing\" & <more></script>" },
    ],
    cells: [
      [0, 1],
      [2, 3],
    ],
  };
  const html = decisionTableHtml(table, { cspSource: "vscode-resource:", nonce: "N0NCE" });
  const titles = JSON.parse(/const titles = (.*);/.exec(html)![1]!) as string[];

  it("has one row per source and one colour class per cell", () => {
    expect(html.match(/<tr><th scope="row">/g)).toHaveLength(2);
    expect([...html.matchAll(/<td class="(\w+)"/g)].map((m) => m[1])).toEqual(["deny", "ask", "allow", "error"]);
    expect([...html.matchAll(/<td class="\w+" data-k="(\d+)"[^>]*>([^<]*)</g)].map((m) => `${m[1]} ${m[2]}`)).toEqual(["0 deny", "1 ask → vault", "2 allow", "3 error"]);
  });

  it("writes each kind's tooltip once", () => {
    expect(titles).toEqual([
      "denied by policy /etc/qubes/policy.d/30-user.policy:2 (30-user.policy:2)",
      "ask: personal, vault (default vault) (30-user.policy:4)",
      "allow (30-user.policy:3)",
      'invalid "thing" & <more></script>',
    ]);
  });

  it("escapes every name and message", () => {
    expect(html).not.toContain("<script>\n</");
    expect(html.match(/<\/script>/g)).toHaveLength(1);
    expect(html).toContain("<th scope=\"row\">&lt;script&gt;</th>");
  });

  it("allows only its own nonce-tagged script", () => {
    expect(html).toContain("script-src 'nonce-N0NCE'");
    expect(html.match(/<script\b/g)).toHaveLength(1);
    expect(html).toContain('<script nonce="N0NCE">');
  });

  it("makes only cells with a rule location clickable", () => {
    expect([...html.matchAll(/data-k="(\d+)" tabindex="0"/g)].map((m) => m[1])).toEqual(["0"]);
  });

  it("lists a long offer list once below the table, not in every cell", () => {
    const names = Array.from({ length: 300 }, (_, i) => `app-${String(i).padStart(3, "0")}`);
    const big: DecisionTableResult = {
      ...table,
      sources: names,
      targets: names,
      offers: [names],
      rules: [{ file: "30-user.policy", line: 15 }],
      kinds: [{ action: "ask", offer: 0, rule: 0 }],
      cells: names.map(() => names.map(() => 0)),
    };
    const page = decisionTableHtml(big, { cspSource: "vscode-resource:", nonce: "N" });
    // Its column, its row and the offer list: not one tooltip per cell.
    expect(page.split("app-299").length - 1).toBe(3);
    expect(page).toContain('<li id="offer-1" value="1">app-000, app-001,');
    expect(page).toContain("ask: 300 targets (offer list 1): app-000, app-001,");
    expect(page.length).toBeLessThan(300 * 300 * 40);
  });

  it("labels cells", () => {
    expect(cellText({ action: "ask", targets: ["a", "b"], target: "a" })).toEqual({ label: "ask → a", title: "ask: a, b (default a)" });
    expect(cellText({ action: "allow", target: "dom0", rule: { file: "f", line: null } })).toEqual({ label: "allow → dom0", title: "allow → dom0 (f:None)" });
  });
});

describe("rule helpers", () => {
  it.each([
    ["qubes.Filecopy  *  work  vault  allow target=x", { service: "qubes.Filecopy", argument: "*", source: "work", target: "vault" }],
    ["\tqubes.Gpg +key\u00a0@tag:a @default ask", { service: "qubes.Gpg", argument: "+key", source: "@tag:a", target: "@default" }],
    ["# qubes.Filecopy * work vault allow", undefined],
    ["!include-service a +b c d", undefined],
    ["qubes.Filecopy * work vault", undefined],
  ])("ruleColumns(%j)", (line, expected) => {
    expect(ruleColumns(line)).toEqual(expected);
  });

  it.each([
    ["work", true],
    ["uuid:1234", true],
    ["*", false],
    ["@anyvm", false],
    ["@dispvm:x", false],
  ])("isConcreteQube(%j) is %s", (token, expected) => {
    expect(isConcreteQube(token)).toBe(expected);
  });

  it("escapes HTML", () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  });
});
