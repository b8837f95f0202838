/**
 * The server survives garbage: hostile documents, nonsense parameters, unknown methods and
 * malformed JSON-RPC frames on its stdin. After each round it must still answer a normal
 * request, and its process must still be running.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CodeLensRequest,
  CompletionRequest,
  DocumentFormattingRequest,
  DocumentSymbolRequest,
  FoldingRangeRequest,
  HoverRequest,
  ResponseError,
  SemanticTokensRequest,
} from "vscode-languageserver-protocol/node.js";
import { SCRATCH_DIR, startServer, type ServerSession } from "./e2e-support.js";

let server: ServerSession;
let probe: string;
beforeAll(async () => {
  server = await startServer();
  probe = server.open(`${SCRATCH_DIR}/00-probe.policy`, "qubes.Filecopy  *  @anyvm  @anyvm  deny\n");
});
afterAll(async () => {
  await server?.close();
});

let counter = 0;
function open(text: string): string {
  counter += 1;
  return server.open(`${SCRATCH_DIR}/60-garbage-${counter}.policy`, text);
}

/** Sends a request and returns its result or its error, never throwing. */
async function settle(method: string, params: unknown): Promise<{ result?: unknown; error?: ResponseError<unknown> }> {
  try {
    return { result: await server.connection.sendRequest(method, params) };
  } catch (e) {
    if (e instanceof ResponseError) return { error: e };
    throw e;
  }
}

/** The server is alive: the process runs and a hover on a valid rule answers. */
async function expectAlive(): Promise<void> {
  expect(server.exited(), `server exited; log: ${server.log.join("").slice(-2000)}`).toBe(false);
  const hover = await server.connection.sendRequest(HoverRequest.type, { textDocument: { uri: probe }, position: { line: 0, character: 22 } });
  expect(hover).not.toBeNull();
}

/** Every feature request an editor sends while the user types, at one position. */
async function pokeEverything(uri: string, position: { line: number; character: number }): Promise<void> {
  const textDocument = { uri };
  await Promise.all([
    settle(CompletionRequest.method, { textDocument, position }),
    settle(HoverRequest.method, { textDocument, position }),
    settle(DocumentFormattingRequest.method, { textDocument, options: { tabSize: 2, insertSpaces: true } }),
    settle(DocumentSymbolRequest.method, { textDocument }),
    settle(FoldingRangeRequest.method, { textDocument }),
    settle(SemanticTokensRequest.method, { textDocument }),
    settle(CodeLensRequest.method, { textDocument }),
  ]);
}

describe("hostile documents", () => {
  const documents: Array<[string, string]> = [
    ["empty", ""],
    ["NUL and control characters", "\0\x01\x02 * \x1b[31m @anyvm\0 @anyvm allow\0\n\x7f"],
    ["lone surrogates", "qubes.\ud800Filecopy * @anyvm \udc00 allow target=\ud83d\n"],
    ["a BOM and mixed newlines", "\ufeff# c\r\nqubes.A * @anyvm @anyvm allow\rqubes.B * @anyvm @anyvm deny\n\r\n"],
    ["one 200 000 character line", "qubes.X * " + "@tag:".repeat(40_000) + "\n"],
    ["5 000 rules", "qubes.Y  *  @anyvm  @anyvm  allow target=@dispvm:x user=u notify=yes\n".repeat(5_000)],
    ["directive soup", "!include\n!include-dir\n!include-service\n!compat-4.0 x\n!include /dev/zero\n!include-dir /proc\n!include ../../../../../../etc/passwd\n$include:x\n"],
    ["self include", "!include 60-garbage-8.policy\n!include include/../60-garbage-8.policy\n"],
    ["binary junk", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)).toString("latin1")],
    ["only whitespace", " \t\v\f\u00a0\u2028\u3000\x1c\n".repeat(100)],
  ];
  it.each(documents)("%s", async (_name, text) => {
    const uri = open(text);
    await server.waitForDiagnostics(uri);
    const lines = text.split(/\r\n|\r|\n/);
    const last = lines.length - 1;
    for (const position of [
      { line: 0, character: 0 },
      { line: 0, character: 5 },
      { line: last, character: lines[last]!.length },
      { line: last + 10, character: 3 },
      { line: 0, character: 1_000_000 },
    ]) {
      await pokeEverything(uri, position);
    }
    await server.closeDocument(uri);
    await expectAlive();
  });

  it("random policy-like text never takes the server down", async () => {
    const alphabet = fc.constantFrom(..."qubes.Filecopy*+@anyvm:tag:type:dispvm=allow deny ask target user notify\t\n#!$,\u00a0\r\0\ud800".split(""));
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: alphabet, maxLength: 300 }), fc.nat(400), async (text, offset) => {
        const uri = open(text);
        const before = text.slice(0, offset);
        const line = before.split("\n").length - 1;
        await pokeEverything(uri, { line, character: offset - (before.lastIndexOf("\n") + 1) });
        await server.closeDocument(uri);
        return !server.exited();
      }),
      { numRuns: 60, seed: 20261127 },
    );
    await expectAlive();
  });
});

describe("nonsense requests", () => {
  const requests: Array<[string, string, unknown]> = [
    ["completion on an unknown document", CompletionRequest.method, { textDocument: { uri: "file:///nowhere/x.policy" }, position: { line: 0, character: 0 } }],
    ["hover with a negative position", HoverRequest.method, { textDocument: { uri: "file:///nowhere/x.policy" }, position: { line: -1, character: -5 } }],
    ["hover without params", HoverRequest.method, null],
    ["formatting with a non-file URI", DocumentFormattingRequest.method, { textDocument: { uri: "untitled:Untitled-1" }, options: {} }],
    ["evaluate without params", "qubes/evaluate", null],
    ["evaluate with wrong types", "qubes/evaluate", { service: 42, source: ["work"], target: { x: 1 }, argument: "no-plus" }],
    ["explain with an unknown uri", "qubes/explain", { uri: "file:///nowhere/policy.d/x.policy", service: "qubes.Filecopy", source: "work" }],
    ["decision table for garbage", "qubes/decisionTable", { service: "\0", sources: [null, 1], targets: "x" }],
    ["system model with garbage", "qubes/systemModel", { uri: 12 }],
  ];
  it.each(requests)("%s", async (_name, method, params) => {
    await settle(method, params);
    await expectAlive();
  });

  it("answers an unknown method with MethodNotFound", async () => {
    const { error } = await settle("qubes/noSuchThing", {});
    expect(error?.code).toBe(-32601);
    await expectAlive();
  });
});

describe("malformed frames on stdin", () => {
  const frames: Array<[string, string]> = [
    ["invalid JSON body", "Content-Length: 10\r\n\r\n{not json}"],
    ["a JSON array", "Content-Length: 2\r\n\r\n[]"],
    ["a request without a method", 'Content-Length: 25\r\n\r\n{"jsonrpc":"2.0","id":99}'],
    ["a notification with wrong params", 'Content-Length: 72\r\n\r\n{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"x":[1,2,3]}}'],
  ];
  it.each(frames)("%s", async (_name, frame) => {
    server.process.stdin.write(frame);
    await expectAlive();
  });
});
