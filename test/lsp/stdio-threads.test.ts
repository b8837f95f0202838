/**
 * The stdio server's two threads (lsp/src/threads.ts): the front answers completion on its own
 * thread from the data the analysis sends it. Differential: at every position of the workspace's
 * policy files (new syntax, legacy, and a line of each kind typed into a scratch file), the
 * answer and the resolved items equal those of the same server on one thread
 * (`QKIT_LSP_THREADS=0`). And the process ends as an LSP server must, in both modes: 0 after
 * `shutdown`, 1 without, also when the client just closes its end or its process is gone.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

/** The answer without the front's mark on its items (`data.f`: their resolve comes back to the front). */
function unmarked(r: CompletionItem[] | CompletionList | null): CompletionItem[] | CompletionList | null {
  for (const item of items(r)) {
    const d = item.data as { f?: number } | undefined;
    if (d && typeof d === "object" && "f" in d) {
      expect(d.f).toBe(1);
      const { f: _f, ...rest } = d;
      item.data = rest;
    }
  }
  return r;
}

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
        // Resolved documentation (numbered per server) is the same text.
        const first = items(x).find((i) => i.data !== undefined);
        if (first) {
          const second = items(y).find((i) => i.label === first.label)!;
          const [rx, ry] = await Promise.all([a.connection.sendRequest(CompletionResolveRequest.type, first), b.connection.sendRequest(CompletionResolveRequest.type, second)]);
          expect(ry.documentation).toEqual(rx.documentation);
        }
        expect(unmarked(y), `${path}:${position.line + 1}:${position.character}`).toEqual(x);
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
    expect(unmarked(y)).toEqual(x);
  });

  it("follows edits: the same answers after every change (incremental, several per message, a whole-text one), and none applied from a malformed change", async () => {
    const path = `${SCRATCH_DIR}/72-threads-edits.policy`;
    let text = "qubes.Filecopy  *  work  vault  allow\n";
    const uris = [lazyOne.open(path, text), lazyTwo.open(path, text)];
    await Promise.all([lazyOne.waitForDiagnostics(uris[0]!), lazyTwo.waitForDiagnostics(uris[1]!)]);
    const edits: Array<{ changes: object[]; version?: number | null; after?: string }> = [
      { changes: [{ range: { start: { line: 1, character: 0 }, end: { line: 1, character: 0 } }, text: "qubes.Gpg  *  @tag:" }], after: "qubes.Filecopy  *  work  vault  allow\nqubes.Gpg  *  @tag:" },
      // No version, or null: refused by the worker, so not applied by the front either.
      { changes: [{ text: "!include " }], version: null },
      { changes: [{ text: "!include " }] },
      {
        changes: [
          { range: { start: { line: 1, character: 14 }, end: { line: 1, character: 19 } }, text: "work  " },
          { range: { start: { line: 0, character: 0 }, end: { line: 0, character: 14 } }, text: "qubes.OpenURL" },
        ],
        after: "qubes.OpenURL  *  work  vault  allow\nqubes.Gpg  *  work  ",
      },
      { changes: [{ text: "!include-dir \nqubes.Filecopy  *  @anyvm  @dispvm:" }], after: "!include-dir \nqubes.Filecopy  *  @anyvm  @dispvm:" },
    ];
    let version = 1;
    for (const e of edits) {
      const v = e.version === undefined ? ++version : e.version;
      for (const [s, uri] of [
        [lazyOne, uris[0]!],
        [lazyTwo, uris[1]!],
      ] as const) {
        await s.connection.sendNotification("textDocument/didChange", { textDocument: e.version === undefined ? { uri, version: v } : { uri, version: v }, contentChanges: e.changes });
      }
      if (e.after !== undefined) text = e.after;
      for (const position of positions(text)) {
        const [x, y] = await Promise.all([
          lazyOne.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: uris[0]! }, position }),
          lazyTwo.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: uris[1]! }, position }),
        ]);
        expect(unmarked(y), `after ${JSON.stringify(e.changes).slice(0, 60)} at ${position.line}:${position.character}`).toEqual(x);
      }
    }
    // The last text is the one both completed on: `@dispvm:` offers the disposable templates.
    const end = { line: 1, character: text.split("\n")[1]!.length };
    expect(items(await lazyTwo.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: uris[1]! }, position: end })).map((i) => i.label)).toContain("@dispvm:default-dvm");
  });

  it("leaves stack files and policy test files to their features in the worker (resolve included)", async () => {
    const cases = [
      { path: `${SCRATCH_DIR}/../threads.qubes.yaml`, text: "qkit: 1\nstack: t\nqubes:\n  q:\n    class: AppVM\n    label: \n" },
      { path: `${SCRATCH_DIR}/../threads.policytest.yaml`, text: "policy: policy.d\ntests:\n  - call: qubes.Filecopy work -> vault\n    expect: \n" },
    ];
    for (const { path, text } of cases) {
      const uris = [lazyOne.open(path, text), lazyTwo.open(path, text)];
      for (const position of positions(text)) {
        const [x, y] = await Promise.all([
          lazyOne.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: uris[0]! }, position }),
          lazyTwo.connection.sendRequest(CompletionRequest.type, { textDocument: { uri: uris[1]! }, position }),
        ]);
        expect(y, `${path} ${position.line}:${position.character}`).toEqual(x);
        for (const item of items(x).filter((i) => i.data !== undefined).slice(0, 3)) {
          const [rx, ry] = await Promise.all([lazyOne.connection.sendRequest(CompletionResolveRequest.type, item), lazyTwo.connection.sendRequest(CompletionResolveRequest.type, item)]);
          expect(ry).toEqual(rx);
        }
      }
      await Promise.all([lazyOne.closeDocument(uris[0]!), lazyTwo.closeDocument(uris[1]!)]);
    }
  });

  it("answers RequestCancelled to a completion cancelled before its answer, as one thread does", async () => {
    const path = `${SCRATCH_DIR}/73-threads-cancel.policy`;
    const text = "qubes.Filecopy  *  work  \n";
    const uris = [one.open(path, text), two.open(path, text)];
    await Promise.all([one.waitForDiagnostics(uris[0]!), two.waitForDiagnostics(uris[1]!)]);
    // The request and its cancel in one write (as a client sends them when the user types on at
    // once), so both servers read them together whatever the machine's load; the answer is read
    // off the server's stdout beside the client connection (which does not know the id).
    const frame = (m: object) => {
      const body = JSON.stringify({ jsonrpc: "2.0", ...m });
      return `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    };
    const outcome = (s: ServerSession, uri: string, id: number) =>
      new Promise<number | string>((resolve) => {
        let seen = "";
        const tap = (d: Buffer) => {
          seen += d.toString("utf8");
          const at = seen.indexOf(`"id":${id},`);
          if (at < 0) return;
          s.process.stdout.off("data", tap);
          const error = /"error":\{"code":(-?\d+)/.exec(seen.slice(at).split("Content-Length")[0]!);
          resolve(error ? Number(error[1]) : "answered");
        };
        s.process.stdout.on("data", tap);
        const position = { line: 0, character: text.length - 1 };
        s.process.stdin.write(frame({ id, method: "textDocument/completion", params: { textDocument: { uri }, position } }) + frame({ method: "$/cancelRequest", params: { id } }));
      });
    expect([await outcome(one, uris[0]!, 90001), await outcome(two, uris[1]!, 90002)]).toEqual([-32800, -32800]);
  });

  it("a document moved to another project by a new one is answered from the new project at once", async () => {
    // `other/x.policy` is open in project `other/`; opening a file of `etc/qubes/policy.d` makes a
    // project whose root (the mirrored `/`) covers it too, and it moves there.
    const ws = mkdtempSync(join(tmpdir(), "qkit-threads-move-"));
    try {
      fs.mkdirSync(join(ws, "etc/qubes/policy.d"), { recursive: true });
      fs.mkdirSync(join(ws, "other"), { recursive: true });
      fs.writeFileSync(join(ws, "etc/qubes/policy.d/20-big.policy"), Array.from({ length: 3000 }, (_, i) => `my.Service${i % 50}  +arg${i}  @anyvm  @anyvm  deny\n`).join(""));
      fs.writeFileSync(join(ws, "other/10-small.policy"), Array.from({ length: 20 }, (_, i) => `other.Svc${i}  *  @anyvm  @anyvm  deny\n`).join(""));
      const labels = (r: CompletionItem[] | CompletionList | null) => items(r).map((i) => i.label);
      const run = async (threads: boolean) => {
        const s = await startServer(join(ws, "other"), {}, { threads });
        try {
          const x = s.open(join(ws, "other/x.policy"), "\n");
          await s.waitForDiagnostics(x);
          const pos = { textDocument: { uri: x }, position: { line: 0, character: 0 } };
          await new Promise((r) => setTimeout(r, 500));
          const before = labels(await s.connection.sendRequest(CompletionRequest.type, pos));
          s.open(join(ws, "etc/qubes/policy.d/y.policy"), "\n");
          const right = labels(await s.connection.sendRequest(CompletionRequest.type, pos));
          return { before: before.some((l) => l.startsWith("other.")), right: right.some((l) => l.startsWith("other.")) };
        } finally {
          await s.close();
        }
      };
      const [two, one] = [await run(true), await run(false)];
      expect(one).toEqual({ before: true, right: false });
      expect(two).toEqual(one);
    } finally {
      rmSync(ws, { recursive: true, force: true });
    }
  });

  it("answers completion on the front: its trace has the handler, the worker's has none", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qkit-threads-trace-"));
    const trace = join(dir, "trace.json");
    const s = await startServer(undefined, undefined, { env: { QKIT_LSP_TRACE: trace } });
    try {
      const uri = s.open(`${SCRATCH_DIR}/74-threads-trace.policy`, "qubes.Filecopy  *  \n");
      await s.waitForDiagnostics(uri);
      await s.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position: { line: 0, character: 19 } });
      await s.close();
      const front = JSON.parse(readFileSync(trace, "utf8")) as unknown[][];
      const worker = JSON.parse(readFileSync(`${trace}.worker`, "utf8")) as unknown[][];
      const handled = (events: unknown[][]) => events.filter((e) => e[1] === "begin" && e[2] === "textDocument/completion").length;
      expect([handled(front), handled(worker)]).toEqual([1, 0]);
      // The worker analysed the document (its turns are in its own trace).
      expect(worker.some((e) => e[1] === "slice")).toBe(true);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the process ends with the LSP exit code", () => {
  /** Runs the server, initializes it, then does `steps`; resolves with its exit code and whether `shutdown` was answered. */
  function run(steps: Array<"shutdown" | "exit" | "close" | "client-gone">, threads: boolean): Promise<{ code: number | null; answered: boolean }> {
    requireServerBuild();
    // A stand-in for the editor's process (`--clientProcessId`), killed for "client-gone".
    const client = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
    const env = { ...process.env, QKIT_LSP_THREADS: threads ? "1" : "0" };
    const child = spawn(process.execPath, [SERVER, "--stdio", `--clientProcessId=${client.pid}`], { stdio: "pipe", env });
    child.on("exit", () => client.kill());
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => (out += d));
    const send = (m: object) => {
      const s = JSON.stringify({ jsonrpc: "2.0", ...m });
      child.stdin.write(`Content-Length: ${Buffer.byteLength(s)}\r\n\r\n${s}`);
    };
    send({ id: 1, method: "initialize", params: { processId: null, rootUri: null, capabilities: {} } });
    send({ method: "initialized", params: {} });
    const answeredShutdown = async () => {
      for (let i = 0; i < 200 && !/"id":2[,}]/.test(out); i++) await new Promise((r) => setTimeout(r, 10));
    };
    void (async () => {
      for (const s of steps) {
        if (s === "shutdown") send({ id: 2, method: "shutdown" });
        // `exit` after the answer to `shutdown`, as the protocol has clients do; `close` at once.
        if (s === "exit") {
          if (steps.includes("shutdown")) await answeredShutdown();
          send({ method: "exit" });
        }
        if (s === "close") child.stdin.end();
        if (s === "client-gone") setTimeout(() => client.kill("SIGKILL"), 300);
      }
    })();
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
    // The editor died: the library's watch (every 3 s) ends the server, 0 after shutdown.
    [["shutdown", "client-gone"], 0, true],
    [["client-gone"], 1, false],
  ] as const)("%j → exit code %i, on two threads and on one", async (steps, code, answered) => {
    const [two, one] = await Promise.all([run([...steps], true), run([...steps], false)]);
    expect({ two, one }).toEqual({ two: { code, answered }, one: { code, answered } });
  });
});
