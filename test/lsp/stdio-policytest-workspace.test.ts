/**
 * Policy tests of the whole workspace, over stdio with the real client library: every
 * `*.policytest.yaml` under the workspace folder gets its diagnostics whether it is open or
 * not, found at start and kept current through `workspace/didChangeWatchedFiles`, and run
 * again when the policy or a system model changes. The "decided by N tests" lenses are
 * refreshed (`workspace/codeLens/refresh`) after policy edits, and a lens asked for right
 * after an edit is never on a stale line (property test over random edits).
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodeLensRequest, DidChangeTextDocumentNotification, DidChangeWatchedFilesNotification, FileChangeType, type CodeLens, type Diagnostic } from "vscode-languageserver-protocol/node.js";
import { startServer, systemDomain, until, writeWorkspace, type ServerSession } from "./e2e-support.js";

const SYSTEM = JSON.stringify({
  domains: {
    dom0: systemDomain("AdminVM", 0),
    work: systemDomain("AppVM", 1),
    personal: systemDomain("AppVM", 2),
    vault: systemDomain("AppVM", 3),
    "default-dvm": systemDomain("AppVM", 4, { template_for_dispvms: true }),
  },
});

const POLICY = [
  "# user policy",
  "qubes.Filecopy * work vault deny",
  "qubes.Filecopy * work @anyvm ask",
  "",
  "qubes.Backup * work vault allow",
  "* * @anyvm @anyvm deny",
  "",
].join("\n");

const head = (system = "../system.json") => `policy: ../policy.d\nsystem: ${system}\ntests:\n`;
const FILES: Record<string, string> = {
  "policy.d/30-user.policy": POLICY,
  "system.json": SYSTEM,
  "system2.json": SYSTEM,
  // Passes as the policy is.
  "tests/a.policytest.yaml": `${head()}  - qubes.Filecopy work vault => deny\n  - qubes.Backup work vault => allow\n`,
  // Fails as the policy is (line 3: deny by the catch-all).
  "tests/b.policytest.yaml": `${head()}  - qubes.Backup work personal => allow\n`,
  // Malformed.
  "tests/deep/broken.policytest.yaml": `${head("../../system.json")}colour: red\n`,
  // Another system model (rewritten by a test).
  "tests/c.policytest.yaml": `${head("../system2.json")}  - qubes.Backup work vault => allow\n`,
};

let root: string;
let server: ServerSession;
const uri = (rel: string) => pathToFileURL(join(root, rel)).href;
const POLICY_URI = () => uri("policy.d/30-user.policy");
let version = 1;

async function changePolicy(text: string): Promise<void> {
  version++;
  await server.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: POLICY_URI(), version }, contentChanges: [{ text }] });
}
async function diskChanged(rel: string, type: FileChangeType): Promise<void> {
  await server.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: uri(rel), type }] });
}
const summary = (d: Diagnostic[]) => d.map((x) => `${x.range.start.line}: ${x.code}`);

/** The test lenses of the policy file, as `line: title`. */
async function testLenses(): Promise<string[]> {
  const lenses = (await server.connection.sendRequest(CodeLensRequest.type, { textDocument: { uri: POLICY_URI() } })) as CodeLens[] | null;
  return (lenses ?? []).filter((l) => /test/.test(l.command?.title ?? "")).map((l) => `${l.range.start.line}: ${l.command!.title}`);
}


beforeAll(async () => {
  root = writeWorkspace("qkit-policytest-ws-", FILES);
  server = await startServer(root, {}, { capabilities: { workspace: { codeLens: { refreshSupport: true }, didChangeWatchedFiles: { dynamicRegistration: true } } } });
});
afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

describe("policy test files of the whole workspace", () => {
  it("publishes the diagnostics of every test file found at start, none of them open", async () => {
    const b = await server.waitForDiagnostics(uri("tests/b.policytest.yaml"), (d) => d.length > 0);
    expect(summary(b)).toEqual(["3: policy-test-failed"]);
    expect(b[0]!.message).toBe("expected allow, got deny (decided by 30-user.policy:6)");
    expect(b[0]!.relatedInformation?.[0]?.location.uri).toBe(POLICY_URI());
    const broken = await server.waitForDiagnostics(uri("tests/deep/broken.policytest.yaml"), (d) => d.length > 0);
    expect(summary(broken)).toEqual(["2: bad-test-file", "3: bad-test-file-key"]);
    // Passing files get nothing (or an empty list).
    expect(server.diagnostics.get(uri("tests/a.policytest.yaml")) ?? []).toEqual([]);
    expect(server.diagnostics.get(uri("tests/c.policytest.yaml")) ?? []).toEqual([]);
  });

  it("runs closed test files again after a policy edit, and asks for the lenses again", async () => {
    server.open(join(root, "policy.d/30-user.policy"), POLICY);
    await until(testLenses, (l) => l.length === 4);
    const refreshes = server.refreshes.filter((m) => m === "workspace/codeLens/refresh").length;
    // Allow the failing call and break a passing one.
    await changePolicy(POLICY.replace("qubes.Filecopy * work vault deny", "qubes.Filecopy * work vault allow").replace("* * @anyvm", "qubes.Backup * work personal allow\n* * @anyvm"));
    const b = await server.waitForDiagnostics(uri("tests/b.policytest.yaml"), (d) => d.length === 0);
    expect(b).toEqual([]);
    const a = await server.waitForDiagnostics(uri("tests/a.policytest.yaml"), (d) => d.length > 0);
    expect(summary(a)).toEqual(["3: policy-test-failed"]);
    expect(a[0]!.message).toBe("expected deny, got allow to vault (decided by 30-user.policy:2)");
    await until(() => server.refreshes.filter((m) => m === "workspace/codeLens/refresh").length, (n) => n > refreshes);
    expect(await until(testLenses, (l) => l.some((x) => x.startsWith("5:")))).toEqual([
      "1: decided by 1 test",
      "2: no test decides this rule",
      "4: decided by 2 tests",
      "5: decided by 1 test",
      "6: no test decides this rule",
    ]);
    await changePolicy(POLICY);
    await server.waitForDiagnostics(uri("tests/a.policytest.yaml"), (d) => d.length === 0);
  });

  it("runs test files again when their system model changes on disk", async () => {
    writeFileSync(join(root, "system2.json"), "{ not json");
    await diskChanged("system2.json", FileChangeType.Changed);
    const c = await server.waitForDiagnostics(uri("tests/c.policytest.yaml"), (d) => d.length > 0);
    expect(summary(c)).toEqual(["1: no-system"]);
    expect(c[0]!.message).toMatch(/^the system model `\.\.\/system2\.json` is not valid JSON \(\.\.\/system2\.json:1:3: expected a property name in double quotes\)$/);
    writeFileSync(join(root, "system2.json"), SYSTEM);
    await diskChanged("system2.json", FileChangeType.Changed);
    expect(await server.waitForDiagnostics(uri("tests/c.policytest.yaml"), (d) => d.length === 0)).toEqual([]);
  });

  it("finds test files created on disk and clears those deleted", async () => {
    writeFileSync(join(root, "tests/new.policytest.yaml"), `${head()}  - qubes.Filecopy work vault => allow\n`);
    await diskChanged("tests/new.policytest.yaml", FileChangeType.Created);
    const d = await server.waitForDiagnostics(uri("tests/new.policytest.yaml"), (l) => l.length > 0);
    expect(summary(d)).toEqual(["3: policy-test-failed"]);
    rmSync(join(root, "tests/new.policytest.yaml"));
    rmSync(join(root, "tests/deep/broken.policytest.yaml"));
    await diskChanged("tests/new.policytest.yaml", FileChangeType.Deleted);
    await diskChanged("tests/deep/broken.policytest.yaml", FileChangeType.Deleted);
    expect(await server.waitForDiagnostics(uri("tests/new.policytest.yaml"), (l) => l.length === 0)).toEqual([]);
    expect(await server.waitForDiagnostics(uri("tests/deep/broken.policytest.yaml"), (l) => l.length === 0)).toEqual([]);
  });

  it("keeps a test file's diagnostics when it is closed", async () => {
    const rel = "tests/b.policytest.yaml";
    const opened = server.open(join(root, rel), `${head()}  - qubes.Backup work personal => allow\n  - qubes.Backup work vault => deny\n`, "yaml");
    const d = await server.waitForDiagnostics(opened, (l) => l.length === 2);
    expect(summary(d)).toEqual(["3: policy-test-failed", "4: policy-test-failed"]);
    await server.closeDocument(opened);
    // Back to the text on disk: one failure.
    expect(summary(await server.waitForDiagnostics(opened, (l) => l.length === 1))).toEqual(["3: policy-test-failed"]);
  });

  it("never puts a lens on a stale line: asked right after inserting or removing comment lines, each lens is on its rule", async () => {
    await changePolicy(POLICY);
    const base = await until(testLenses, (l) => l.length === 4 && l[0]!.startsWith("1:"));
    expect(base).toEqual(["1: decided by 1 test", "2: no test decides this rule", "4: decided by 2 tests", "5: decided by 1 test"]);
    const ruleLines = POLICY.split("\n");
    const titles = new Map(base.map((l) => [ruleLines[Number(l.split(":")[0])]!, l.slice(l.indexOf(":") + 2)]));
    let lines = [...ruleLines];
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ at: fc.nat(), remove: fc.boolean(), text: fc.constantFrom("", "# note", "  # indented") }), { minLength: 1, maxLength: 3 }), async (edits) => {
        for (const e of edits) {
          const removable = lines.map((l, i) => (l.startsWith("qubes.") || l.startsWith("* ") ? -1 : i)).filter((i) => i >= 0 && i < lines.length - 1);
          if (e.remove && removable.length) lines.splice(removable[e.at % removable.length]!, 1);
          else lines.splice(e.at % lines.length, 0, e.text);
          await changePolicy(lines.join("\n"));
        }
        // Asked at once (the tests have not run on this text yet) and once they have: the same answer.
        const expected = lines.flatMap((l, i) => (titles.has(l) ? [`${i}: ${titles.get(l)}`] : []));
        const now = await testLenses();
        for (const l of now) expect(expected).toContain(l);
        expect(await until(testLenses, (l) => JSON.stringify(l) === JSON.stringify(expected))).toEqual(expected);
      }),
      { numRuns: 12 },
    );
    lines = [...ruleLines];
  });
});
