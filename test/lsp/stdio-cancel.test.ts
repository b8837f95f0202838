/**
 * Cancellation over stdio: a request the client cancels with `$/cancelRequest` answers
 * `RequestCancelled` (-32800), and a long request (a large decision table) neither blocks the
 * other requests nor the server after it is cancelled.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CancellationTokenSource, CompletionRequest, DidOpenTextDocumentNotification, type CompletionItem } from "vscode-languageserver-protocol/node.js";
import { decisionTableCell, type DecisionTableResult } from "@qubes-kit/lsp";
import { startServer, TEST_SETTINGS, type ServerSession } from "./e2e-support.js";

let root: string;
let server: ServerSession;
let policyUri: string;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "qkit-lsp-cancel-"));
  mkdirSync(join(root, "policy.d"));
  const policy = ["qubes.Filecopy * work personal allow", "qubes.Filecopy * @anyvm @anyvm ask", "qubes.Filecopy * @anyvm @default ask default_target=personal", ""].join("\n");
  writeFileSync(join(root, "policy.d", "30-user.policy"), policy);
  server = await startServer(root, TEST_SETTINGS);
  policyUri = pathToFileURL(join(root, "policy.d", "30-user.policy")).href;
  await server.connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri: policyUri, languageId: "qrexecpolicy", version: 1, text: policy } });
  await server.waitForDiagnostics(policyUri);
});
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

/** A table big enough to take many slices of work: 1,500 sources × 200 targets. */
const bigTable = () => ({
  uri: policyUri,
  service: "qubes.Filecopy",
  sources: Array.from({ length: 1500 }, (_, i) => `src-${i}`),
  targets: Array.from({ length: 200 }, (_, i) => `dst-${i}`),
});

describe("$/cancelRequest", () => {
  it("answers RequestCancelled for a cancelled decision table, and other requests meanwhile", async () => {
    const source = new CancellationTokenSource();
    const order: string[] = [];
    const table = server.connection.sendRequest<DecisionTableResult>("qubes/decisionTable", bigTable(), source.token).then(
      () => (order.push("table"), undefined),
      (e: { code?: number; message?: string }) => (order.push("table"), e),
    );
    // Completion is answered while the table is being built.
    const items = await server.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: policyUri }, position: { line: 0, character: 0 } });
    order.push("completion");
    expect((Array.isArray(items) ? items : (items?.items ?? [])).map((i: CompletionItem) => i.label)).toContain("qubes.Filecopy");
    source.cancel();
    const error = await table;
    expect(order).toEqual(["completion", "table"]);
    expect(error?.code).toBe(-32800);
    expect(error?.message).toBe("request cancelled");
  });

  it("answers RequestCancelled for a request cancelled before it runs, or its result; never anything else", async () => {
    for (let i = 0; i < 5; i++) {
      const source = new CancellationTokenSource();
      const pending = server.connection.sendRequest("qubes/evaluate", { uri: policyUri, service: "qubes.Filecopy", source: "work", target: "personal" }, source.token);
      source.cancel();
      const outcome = await pending.then(
        (r) => ({ ok: r as { decision: { action?: string } } }),
        (e: { code?: number }) => ({ code: e.code }),
      );
      if ("code" in outcome) expect(outcome.code).toBe(-32800);
      else expect(outcome.ok.decision.action).toBe("allow");
    }
  });

  it("goes on serving after cancellations", async () => {
    const small = await server.connection.sendRequest<DecisionTableResult>("qubes/decisionTable", { uri: policyUri, service: "qubes.Filecopy", sources: ["work"], targets: ["personal"] });
    expect(decisionTableCell(small, 0, 0).action).toBe("allow");
    expect(server.exited()).toBe(false);
  });
});
