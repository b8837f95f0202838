/**
 * Protocol-level end-to-end tests: the built `lsp/dist/server.cjs --stdio`, spawned as an
 * editor spawns it, driven by the real `vscode-languageserver-protocol` client over its
 * stdin/stdout, on the dom0-like workspace in `test/fixtures/e2e/workspace/`.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CompletionRequest,
  DidChangeTextDocumentNotification,
  DocumentFormattingRequest,
  HoverRequest,
  TextDocument,
  type CompletionItem,
  type CompletionList,
  type Diagnostic,
  type TextEdit,
} from "vscode-languageserver-protocol/node.js";
import { decisionTableCell, type DecisionTableResult, type ExplainResult, type SystemModelResult } from "@qubes-kit/lsp";
import { decisionTableHtml, describeDecision, explanationMarkdown } from "../../vscode-extension/src/render.js";
import { POLICY_DIR, SCRATCH_DIR, startServer, type ServerSession } from "./e2e-support.js";

let server: ServerSession;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.close();
});

/** Splits a `$0` cursor marker out of a fixture text. */
function cursor(marked: string): { text: string; position: { line: number; character: number } } {
  const at = marked.indexOf("$0");
  if (at < 0) throw new Error("fixture has no $0 cursor");
  const text = marked.slice(0, at) + marked.slice(at + 2);
  const before = text.slice(0, at);
  const line = before.split("\n").length - 1;
  return { text, position: { line, character: at - (before.lastIndexOf("\n") + 1) } };
}

let scratch = 0;
/**
 * Opens `text` as a new unsaved file of a second policy directory (one that does not exist on
 * disk), so that half-typed lines do not break the workspace policy used by other tests.
 */
function openScratch(text: string): string {
  scratch += 1;
  return server.open(`${SCRATCH_DIR}/25-scratch-${scratch}.policy`, text);
}

function labels(result: CompletionItem[] | CompletionList | null): string[] {
  const items = Array.isArray(result) ? result : (result?.items ?? []);
  return items.map((i) => i.label);
}

describe("initialize", () => {
  it("announces the features an editor needs", () => {
    const { capabilities, serverInfo } = server.initializeResult;
    expect(serverInfo?.name).toBe("qkit-lsp");
    expect(capabilities.textDocumentSync).toBeDefined();
    expect(capabilities.completionProvider).toBeDefined();
    expect(capabilities.hoverProvider).toBeTruthy();
    expect(capabilities.documentFormattingProvider).toBeTruthy();
  });
});

describe("diagnostics", () => {
  it("reports the engine's errors at the offending tokens of a file on disk", async () => {
    const path = `${POLICY_DIR}/40-broken.policy`;
    const text = readFileSync(path, "utf8");
    const uri = server.open(path);
    const diagnostics = await server.waitForDiagnostics(uri, (d) => d.length >= 2);
    const doc = TextDocument.create(uri, "qrexecpolicy", 1, text);
    const seen = diagnostics
      .filter((d) => d.severity === 1)
      .map((d: Diagnostic) => ({ code: d.code, message: d.message, text: doc.getText(d.range), line: d.range.start.line }));
    expect(seen).toEqual([
      { code: "invalid-action", message: "invalid action: alow", text: "alow", line: 1 },
      { code: "invalid-token", message: "invalid source token: '@bogus'", text: "@bogus", line: 2 },
    ]);
    expect(diagnostics.every((d) => d.source === "qubes-policy")).toBe(true);
  });

  it("publishes no errors for a valid file", async () => {
    const uri = server.open(`${POLICY_DIR}/30-user.policy`);
    const diagnostics = await server.waitForDiagnostics(uri);
    expect(diagnostics.filter((d) => d.severity === 1)).toEqual([]);
  });

  it("reads a file included with !include-service in the legacy syntax, whatever the editor's language id", async () => {
    // include/admin-list is `$tag:net  $adminvm  allow,target=dom0`: valid legacy syntax, three fields.
    const announced = new Promise<{ uri: string; syntax: string; languageId: string }>((resolve) =>
      server.connection.onNotification("qubes/documentSyntax", (p: { uri: string; syntax: string; languageId: string }) => resolve(p)),
    );
    const uri = server.open(`${POLICY_DIR}/include/admin-list`, undefined, "qrexecpolicy");
    const diagnostics = await server.waitForDiagnostics(uri);
    expect(diagnostics.filter((d) => d.severity === 1)).toEqual([]);
    // The client is told to switch the document to the legacy language, for highlighting.
    expect(await announced).toEqual({ uri, syntax: "service", languageId: "qrexecpolicy-service" });
  });

  it("follows edits: a fixed line loses its diagnostic", async () => {
    const uri = openScratch("qubes.Filecopy  *  work  vault  alow\n");
    await server.waitForDiagnostics(uri, (d) => d.some((x) => x.code === "invalid-action"));
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version: 2 },
      contentChanges: [{ text: "qubes.Filecopy  *  work  vault  allow\n" }],
    });
    const after = await server.waitForDiagnostics(uri, (d) => !d.some((x) => x.code === "invalid-action"));
    expect(after.filter((d) => d.severity === 1)).toEqual([]);
  });
});

describe("completion", () => {
  // Each case: a line with the cursor `$0`, labels that must be offered, labels that must not.
  const cases: Array<[string, string, string[], string[]]> = [
    ["service column", "qubes.$0", ["qubes.Filecopy", "qubes.Gpg"], ["allow"]],
    ["source column", "qubes.Filecopy  *  $0", ["@anyvm", "*", "@tag:", "work", "vault"], ["@default", "@dispvm", "allow"]],
    ["target column", "qubes.Filecopy  *  work  $0", ["@default", "@dispvm", "@dispvm:default-dvm", "vault"], ["allow"]],
    ["action column", "qubes.Filecopy  *  work  vault  $0", ["allow", "deny", "ask"], ["@anyvm"]],
    ["ask parameters", "qubes.Filecopy  *  work  vault  ask  $0", ["target=", "default_target=", "user=", "notify=", "autostart="], []],
  ];
  it.each(cases)("%s", async (_name, marked, present, absent) => {
    const { text, position } = cursor(marked);
    const uri = openScratch(text + "\n");
    const result = await server.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position });
    const got = labels(result);
    expect(got).toEqual(expect.arrayContaining(present));
    for (const label of absent) expect(got).not.toContain(label);
  });
});

describe("hover", () => {
  it("explains a qube keyword with the qubes of the system model", async () => {
    const { text, position } = cursor("qubes.Filecopy  *  @any$0vm  vault  deny\n");
    const uri = openScratch(text);
    const hover = await server.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position });
    const value = typeof hover?.contents === "object" && "value" in hover.contents ? hover.contents.value : JSON.stringify(hover?.contents);
    expect(value).toContain("@anyvm");
    expect(value).toContain("work");
    expect(hover?.range).toEqual({ start: { line: 0, character: 19 }, end: { line: 0, character: 25 } });
  });
});

describe("formatting", () => {
  const messy = [
    "# Comments stay as they are.",
    "qubes.Filecopy * work   vault allow",
    "   qubes.Gpg\t+key  @tag:gpg-client @default   ask default_target=vault   notify=yes",
    "!include   include/common",
    "",
  ].join("\n");

  function apply(text: string, edits: TextEdit[]): string {
    return TextDocument.applyEdits(TextDocument.create("file:///x", "qrexecpolicy", 1, text), edits);
  }
  const fields = (text: string) => text.split("\n").map((l) => l.trim().split(/\s+/).join(" "));

  it("keeps every field, changes only whitespace and is idempotent", async () => {
    const uri = openScratch(messy);
    const options = { tabSize: 4, insertSpaces: true };
    const edits = await server.connection.sendRequest(DocumentFormattingRequest.type, { textDocument: { uri }, options });
    expect(edits?.length ?? 0).toBeGreaterThan(0);
    const formatted = apply(messy, edits ?? []);
    expect(formatted).not.toBe(messy);
    expect(fields(formatted)).toEqual(fields(messy));
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version: 2 },
      contentChanges: [{ text: formatted }],
    });
    const again = await server.connection.sendRequest(DocumentFormattingRequest.type, { textDocument: { uri }, options });
    expect(apply(formatted, again ?? [])).toBe(formatted);
  });
});

describe("qubes/evaluate", () => {
  const evaluate = (params: object) => server.connection.sendRequest("qubes/evaluate", params) as Promise<any>;
  const broken = `${POLICY_DIR}/40-broken.policy`;

  it("denies every call while one file of the policy has a syntax error, as the daemon does", async () => {
    const uri = server.open(broken);
    const result = await evaluate({ uri, service: "qubes.Filecopy", source: "work", target: "personal" });
    expect(result.decision).toMatchObject({
      ok: false,
      error: "PolicySyntaxError",
      message: "/etc/qubes/policy.d/40-broken.policy:2: invalid action: alow",
    });
  });

  it("decides against the edited (unsaved) policy once it is fixed", async () => {
    const uri = server.open(broken);
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version: 5 },
      contentChanges: [{ text: "# fixed in the editor\n" }],
    });
    const allow = await evaluate({ uri, service: "qubes.Filecopy", source: "work", target: "personal" });
    expect(allow.decision).toMatchObject({ ok: true, action: "allow", target: "personal", rule: { file: "30-user.policy", line: 3 } });
    expect(allow.location.uri).toMatch(/30-user\.policy$/);
    expect(allow.location.range.start.line).toBe(2);
    const deny = await evaluate({ uri, service: "qubes.Filecopy", source: "work", target: "vault" });
    expect(deny.decision).toMatchObject({ ok: true, action: "deny", message: "denied by policy /etc/qubes/policy.d/30-user.policy:2" });
    // The conformance case `ask-list` of the demo corpus.
    const ask = await evaluate({ uri, service: "qubes.Filecopy", source: "personal", target: "work" });
    expect(ask.decision.action).toBe("ask");
    expect(new Set(ask.decision.targetsForAsk)).toEqual(
      new Set(["@dispvm:default-dvm", "default-dvm", "disp1234", "fedora-41", "sys-net", "untrusted", "work"]),
    );
    // Put the file back as it is on disk for the other tests.
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version: 6 },
      contentChanges: [{ text: readFileSync(broken, "utf8") }],
    });
  });
});

describe("the custom requests the VS Code commands use", () => {
  // These answers go through the extension's own renderers, so a change of shape on
  // either side breaks here rather than in the editor.
  const fixed = async () => {
    const uri = server.open(`${POLICY_DIR}/40-broken.policy`);
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version: 10 },
      contentChanges: [{ text: "# fixed in the editor\n" }],
    });
    return uri;
  };
  const restore = async (uri: string) => {
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version: 11 },
      contentChanges: [{ text: readFileSync(`${POLICY_DIR}/40-broken.policy`, "utf8") }],
    });
  };

  it("qubes/systemModel lists the qubes, the disposable templates and the services", async () => {
    const uri = server.open(`${POLICY_DIR}/30-user.policy`);
    const model = (await server.connection.sendRequest("qubes/systemModel", { uri })) as SystemModelResult;
    expect(model.source).toBe("file");
    expect(model.qubes.map((q) => q.name)).toEqual(expect.arrayContaining(["dom0", "work", "vault", "default-dvm"]));
    expect(model.dispvmTemplates).toContain("default-dvm");
    expect(model.services).toEqual(expect.arrayContaining(["qubes.Filecopy", "qubes.Gpg"]));
  });

  it("qubes/explain renders as the simulation document", async () => {
    const uri = await fixed();
    try {
      const result = (await server.connection.sendRequest("qubes/explain", { uri, service: "qubes.Filecopy", source: "work", target: "personal" })) as ExplainResult;
      expect(describeDecision(result.decision)).toBe("allow: call goes to personal (30-user.policy:3)");
      // Rules of other services are skipped; the vault deny rule is considered and fails on its target.
      expect(result.steps.map((s) => [s.line, s.matched, s.failed])).toEqual([[2, false, "target"]]);
      const markdown = explanationMarkdown(result);
      if (process.env.QKIT_DEBUG) console.log(markdown);
      expect(markdown).toContain("# Qubes policy: qubes.Filecopy from work to personal");
      expect(markdown).toContain("**Decision:** allow: call goes to personal");
      expect(markdown).toContain("| 1 | `qubes.Filecopy  *  @anyvm  vault     deny notify=no` | 30-user.policy:2 |");
    } finally {
      await restore(uri);
    }
  });

  it("qubes/decisionTable renders as the webview table", async () => {
    const uri = await fixed();
    try {
      const table = (await server.connection.sendRequest("qubes/decisionTable", {
        uri,
        service: "qubes.Filecopy",
        sources: ["work", "personal"],
        targets: ["vault", "personal"],
      })) as DecisionTableResult;
      expect(table.cells.map((row, i) => row.map((_, j) => decisionTableCell(table, i, j).action))).toEqual([
        ["deny", "allow"],
        ["deny", "ask"],
      ]);
      const html = decisionTableHtml(table, { cspSource: "vscode-webview:", nonce: "abc" });
      expect([...html.matchAll(/<td class="(\w+)"/g)].map((m) => m[1])).toEqual(["deny", "allow", "deny", "ask"]);
    } finally {
      await restore(uri);
    }
  });
});
