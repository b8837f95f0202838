/**
 * The stdio server's two threads (lsp/src/threads.ts): the front answers completion on its own
 * thread from the data the analysis sends it. Differential: at every position of the workspace's
 * policy files (new syntax, legacy, and a line of each kind typed into a scratch file), the
 * answer and the resolved items equal those of the same server on one thread
 * (`QKIT_LSP_THREADS=0`). And the process ends as an LSP server must: 0 after `shutdown`, 1
 * without, also when the client just closes its end.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompletionRequest, CompletionResolveRequest, type CompletionItem, type CompletionList } from "vscode-languageserver-protocol/node.js";
import { POLICY_DIR, SCRATCH_DIR, SERVER, requireServerBuild, startServer, type ServerSession } from "./e2e-support.js";

/** What VS Code says about completion (lazy documentation, list defaults). */
const VSCODE_COMPLETION = {
  textDocument: {
    completion: {
      completionItem: { snippetSupport: true, documentationFormat: ["markdown", "plaintext"], resolveSupport: { properties: ["documentation"] } },
      completionList: { itemDefaults: ["editRange", "data"] },
    },
  },
};

const FILES = ["10-gpg.policy", "30-user.policy", "40-broken.policy", "90-default.policy", "include/admin-list", "include/common"].map((f) => `${POLICY_DIR}/${f}`);
/** Lines typed into a scratch file of their own: every column, parameters, directives, a comment. */
const TYPED = [
  "qubes.Filecopy  +arg  @tag:work  @dispvm:default-dvm  ask  default_target=vault  target=@dispvm:default-dvm  notify=yes",
  "qubes.Gpg  *  @anyvm  @default  allow target=vault user=root autostart=no",
  "!include include/common",
  "!include-dir include",
  "!include-service qubes.Filecopy  +  include/admin-list",
  "# a comment @anyvm",
  "qubes.StartApp  +firefox  @type:AppVM  @dispvm:@tag:x  deny",
];

let one: ServerSession;
let two: ServerSession;
let lazyOne: ServerSession;
let lazyTwo: ServerSession;
beforeAll(async () => {
  [one, two, lazyOne, lazyTwo] = await Promise.all([
    startServer(undefined, undefined, { threads: false }),
    startServer(),
    startServer(undefined, undefined, { threads: false, capabilities: VSCODE_COMPLETION, name: "Visual Studio Code" }),
    startServer(undefined, undefined, { capabilities: VSCODE_COMPLETION, name: "Visual Studio Code" }),
  ]);
}, 30_000);
afterAll(async () => {
  await Promise.all([one, two, lazyOne, lazyTwo].map((s) => s?.close()));
});

/** Every position worth asking at: each word's start, middle and end, and the line's end. */
function positions(text: string): Array<{ line: number; character: number }> {
  const out: Array<{ line: number; character: number }> = [];
  text.split("\n").forEach((line, n) => {
    const cols = new Set<number>([0, line.length]);
    for (const m of line.matchAll(/\S+/g)) {
      cols.add(m.index!);
      cols.add(m.index! + Math.floor(m[0].length / 2));
      cols.add(m.index! + m[0].length);
    }
    for (const c of cols) out.push({ line: n, character: c });
  });
  return out;
}

const items = (r: CompletionItem[] | CompletionList | null) => (Array.isArray(r) ? r : (r?.items ?? []));

describe("the front answers completion as the one-thread server", () => {
  const cases = [
    ...FILES.map((path) => ({ name: path.slice(POLICY_DIR.length + 1), path, text: readFileSync(path, "utf8") })),
    ...TYPED.map((line, i) => ({ name: `typed: ${line.slice(0, 40)}`, path: `${SCRATCH_DIR}/70-threads-${i}.policy`, text: line + "\n" })),
  ];
  it.each(cases)("$name", async ({ path, text }) => {
    for (const [a, b] of [
      [one, two],
      [lazyOne, lazyTwo],
    ] as const) {
      const uris = [a.open(path, text), b.open(path, text)];
      await Promise.all([a.waitForDiagnostics(uris[0]!), b.waitForDiagnostics(uris[1]!)]);
      let compared = 0;
      for (const position of positions(text)) {
        const [x, y] = await Promise.all([
          a.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: uris[0]! }, position }),
          b.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: uris[1]! }, position }),
        ]);
        expect(y, `${path}:${position.line + 1}:${position.character}`).toEqual(x);
        // Resolved documentation (numbered per server) is the same text.
        const first = items(x).find((i) => i.data !== undefined);
        if (first) {
          const second = items(y).find((i) => i.label === first.label)!;
          const [rx, ry] = await Promise.all([a.connection.sendRequest(CompletionResolveRequest.type, first), b.connection.sendRequest(CompletionResolveRequest.type, second)]);
          expect(ry.documentation).toEqual(rx.documentation);
        }
        compared += items(x).length;
      }
      await Promise.all([a.closeDocument(uris[0]!), b.closeDocument(uris[1]!)]);
      expect(compared).toBeGreaterThan(0);
    }
  });

  it("answers for a document opened just before, from the analysis' vocabulary (asked of the worker)", async () => {
    const path = `${SCRATCH_DIR}/71-threads-fresh.policy`;
    const text = "qubes.Filecopy  *  work  \n";
    const position = { line: 0, character: text.length - 1 };
    const uris = [one.open(path, text), two.open(path, text)];
    // No wait for the diagnostics: the front has no data of this document yet.
    const [x, y] = await Promise.all([
      one.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: uris[0]! }, position }),
      two.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: uris[1]! }, position }),
    ]);
    expect(items(y).map((i) => i.label)).toContain("vault");
    expect(y).toEqual(x);
  });
});

describe("the process ends with the LSP exit code", () => {
  /** Runs the server, initializes it, then does `steps`; resolves with its exit code and whether `shutdown` was answered. */
  function run(steps: Array<"shutdown" | "exit" | "close">): Promise<{ code: number | null; answered: boolean }> {
    requireServerBuild();
    const child = spawn(process.execPath, [SERVER, "--stdio"], { stdio: "pipe" });
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => (out += d));
    const send = (m: object) => {
      const s = JSON.stringify({ jsonrpc: "2.0", ...m });
      child.stdin.write(`Content-Length: ${Buffer.byteLength(s)}\r\n\r\n${s}`);
    };
    send({ id: 1, method: "initialize", params: { processId: null, rootUri: null, capabilities: {} } });
    send({ method: "initialized", params: {} });
    for (const s of steps) {
      if (s === "shutdown") send({ id: 2, method: "shutdown" });
      if (s === "exit") send({ method: "exit" });
      if (s === "close") child.stdin.end();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`the server did not exit after ${steps.join(", ")}`));
      }, 10_000);
      child.on("exit", (code) => {
        clearTimeout(timer);
        resolve({ code, answered: out.includes('"id":2,') || out.includes('"id":2}') });
      });
    });
  }

  it.each([
    [["shutdown", "exit"], 0, true],
    [["exit"], 1, false],
    [["shutdown", "close"], 0, true],
    [["close"], 1, false],
  ] as const)("%j → exit code %i", async (steps, code, answered) => {
    expect(await run([...steps])).toEqual({ code, answered });
  });
});
