/**
 * Interactive first, over stdio with the built server: while the user types, the edited
 * document's diagnostics are published at once and the other files' follow when the edits pause
 * (they share the pipe with every answer to the client); messages are read and dispatched
 * unchanged by the counting reader that lets them go before analysis.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DidChangeTextDocumentNotification, DidOpenTextDocumentNotification, StreamMessageReader, StreamMessageWriter, type Message } from "vscode-languageserver-protocol/node.js";
import { CountingReader } from "@qubes-kit/lsp";
import { startServer, TEST_SETTINGS, type ServerSession } from "./e2e-support.js";

let root: string;
let server: ServerSession;
const A = ["qubes.Filecopy * @anyvm @anyvm deny", ""].join("\n");
const B = ["qubes.Filecopy * work vault allow", ""].join("\n");
let aUri: string;
let bUri: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "qkit-lsp-priority-"));
  mkdirSync(join(root, "policy.d"));
  writeFileSync(join(root, "policy.d", "10-a.policy"), A);
  writeFileSync(join(root, "policy.d", "20-b.policy"), B);
  server = await startServer(root, TEST_SETTINGS);
  aUri = pathToFileURL(join(root, "policy.d", "10-a.policy")).href;
  bUri = pathToFileURL(join(root, "policy.d", "20-b.policy")).href;
  await server.connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri: aUri, languageId: "qrexecpolicy", version: 1, text: A } });
  await server.waitForDiagnostics(bUri, (d) => d.some((x) => x.message.includes("10-a.policy:1")));
});
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

describe("interactive first", () => {
  it("publishes the edited document before the closed files it changes, and the closed files once the edits pause", async () => {
    const before = server.publishes.length;
    const publishes = () => server.publishes.slice(before).map((p) => ({ uri: p.uri, version: p.version, messages: p.diagnostics.map((d) => d.message) }));
    // A line above the broader rule moves it: the closed file's warning names its new line.
    const edit = (version: number, text: string) =>
      server.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: aUri, version }, contentChanges: [{ text }] });
    await edit(2, "# one\n" + A);
    await edit(3, "# one\n# two\n" + A);
    const b = await server.waitForDiagnostics(bUri, (d) => d.some((x) => x.message.includes("10-a.policy:3")));
    expect(b.map((d) => d.code)).toEqual(["shadowed-rule"]);
    const firstA = publishes().findIndex((p) => p.uri === aUri);
    const firstB = publishes().findIndex((p) => p.uri === bUri);
    expect(firstA).toBeGreaterThanOrEqual(0);
    expect(firstB).toBeGreaterThan(firstA);
    // The closed file got the diagnostics of the last text only (its intermediate state waited and was replaced).
    expect(publishes().filter((p) => p.uri === bUri).map((p) => p.messages.join())).toEqual([b.map((d) => d.message).join()]);
    // The open document's publishes carry its versions, the last one included.
    expect(publishes().filter((p) => p.uri === aUri).at(-1)?.version).toBe(3);
  });
});

describe("CountingReader", () => {
  it("hands on every message unchanged, counting each before it is dispatched", async () => {
    const stream = new PassThrough();
    const reader = new CountingReader(new StreamMessageReader(stream));
    const seen: Array<{ count: number; message: Message }> = [];
    let count = 0;
    reader.arrived = () => count++;
    reader.listen((message) => seen.push({ count, message }));
    const writer = new StreamMessageWriter(stream);
    const sent = [
      { jsonrpc: "2.0", method: "textDocument/didChange", params: { n: 1 } },
      { jsonrpc: "2.0", id: 7, method: "textDocument/completion", params: { n: 2 } },
      { jsonrpc: "2.0", method: "$/cancelRequest", params: { id: 7 } },
    ];
    for (const m of sent) await writer.write(m as Message);
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.map((s) => s.message)).toEqual(sent);
    expect(seen.map((s) => s.count)).toEqual([1, 2, 3]);
    reader.dispose();
  });
});
