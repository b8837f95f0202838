/**
 * Policy tests in the editor, over stdio with the real client library: the
 * built server on a workspace with a policy, a system model and test files
 * (`*.policytest.yaml`). Diagnostics on a test file for its failing calls
 * (with the deciding rule as related information) and its problems; code
 * lenses "decided by N tests" on the rules of the policy, updated when a test
 * file or the policy changes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodeLensRequest, DidChangeTextDocumentNotification, DidChangeWatchedFilesNotification, FileChangeType, type CodeLens, type Diagnostic } from "vscode-languageserver-protocol/node.js";
import { startServer, until, writeWorkspace, type ServerSession } from "./e2e-support.js";

const dom = (type: string, extra: Record<string, unknown> = {}) => ({
  internal: null,
  tags: [],
  type,
  template_for_dispvms: false,
  default_dispvm: "default-dvm",
  icon: "x",
  label: "0xcc0000",
  guivm: "dom0",
  relayvm: null,
  transport_rpc: null,
  power_state: "Running",
  uuid: null,
  ...extra,
});

const POLICY = [
  "qubes.Filecopy * work vault deny",
  "qubes.Filecopy * work @anyvm ask",
  "qubes.OpenURL * @anyvm @dispvm allow",
  "qubes.Backup * work vault allow",
  "* * @anyvm @anyvm deny",
  "",
].join("\n");

const TESTS = [
  "policy: ../policy.d",
  "system: ../system.json",
  "tests:",
  "  - qubes.Filecopy work vault => deny",
  "  - qubes.Filecopy work personal => allow",
  "  - call: qubes.Filecopy work -> personal",
  "    decision: ask",
  "    targets_include: [personal]",
  "",
].join("\n");

const FILES: Record<string, string> = {
  "policy.d/30-user.policy": POLICY,
  "system.json": JSON.stringify({
    domains: {
      dom0: dom("AdminVM", { uuid: "00000000-0000-0000-0000-000000000000" }),
      work: dom("AppVM", { uuid: "00000000-0000-0000-0000-000000000001" }),
      personal: dom("AppVM", { uuid: "00000000-0000-0000-0000-000000000002" }),
      vault: dom("AppVM", { uuid: "00000000-0000-0000-0000-000000000003" }),
      "default-dvm": dom("AppVM", { template_for_dispvms: true, uuid: "00000000-0000-0000-0000-000000000004" }),
    },
  }),
  "tests/basic.policytest.yaml": TESTS,
  "tests/bad.policytest.yaml": "policy: ../policy.d\nsystem: ../system.json\ncolour: red\ntests:\n  - qubes.Filecopy work vault => maybe\n",
  "tests/missing.policytest.yaml": "policy: ../nowhere.d\nsystem: ../system.json\ntests:\n  - qubes.Filecopy work vault => deny\n",
  // A policy of its own, so its calls leave the lenses of policy.d alone.
  "names.d/30-user.policy": POLICY,
  "tests/names.policytest.yaml": "policy: ../names.d\nsystem: ../system.json\ntests:\n  - qubes.Filecopy wrok vault => deny\n  - qubes.Filecopy work vualt => deny\n  - qubes.Filecoyp work vault => deny\n  - qubes.Unnamed work vault => deny\n",
};

let root: string;
let server: ServerSession;
const uri = (rel: string) => pathToFileURL(join(root, rel)).href;
const versions = new Map<string, number>();

async function change(rel: string, text: string): Promise<void> {
  const v = (versions.get(rel) ?? 1) + 1;
  versions.set(rel, v);
  await server.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: uri(rel), version: v }, contentChanges: [{ text }] });
}

/** The code lenses of a policy file that come from tests, as `line: title`. */
async function testLenses(rel: string): Promise<string[]> {
  const lenses = (await server.connection.sendRequest(CodeLensRequest.type, { textDocument: { uri: uri(rel) } })) as CodeLens[] | null;
  return (lenses ?? []).filter((l) => /test/.test(l.command?.title ?? "")).map((l) => `${l.range.start.line}: ${l.command!.title}`);
}


beforeAll(async () => {
  root = writeWorkspace("qkit-policytest-", FILES);
  server = await startServer(root, {});
});
afterAll(async () => {
  await server?.close();
});

const summary = (d: Diagnostic[]) => d.map((x) => ({ code: x.code, line: x.range.start.line, message: x.message }));

describe("policy test files in the editor", () => {
  it("shows a failing call at its entry, with the deciding rule as related information", async () => {
    const u = server.open(join(root, "tests/basic.policytest.yaml"), TESTS, "yaml");
    const d = await server.waitForDiagnostics(u, (l) => l.length > 0);
    expect(summary(d)).toEqual([{ code: "policy-test-failed", line: 4, message: "expected allow, got ask (decided by 30-user.policy:2)" }]);
    expect(d[0]!.severity).toBe(1);
    const rule = (line: number, text: string) => ({ uri: uri("policy.d/30-user.policy"), range: { start: { line, character: 0 }, end: { line, character: text.length } } });
    // The deciding rule, then where the offered targets came from (the earlier deny takes vault away).
    expect(d[0]!.relatedInformation).toEqual([
      { location: rule(1, "qubes.Filecopy * work @anyvm ask"), message: "decided here: ask offering @dispvm:default-dvm, default-dvm, personal (qubes.Filecopy * work @anyvm ask)" },
      { location: rule(0, "qubes.Filecopy * work vault deny"), message: "takes away vault" },
      { location: rule(1, "qubes.Filecopy * work @anyvm ask"), message: "offers @dispvm, @dispvm:default-dvm, default-dvm, personal, work" },
    ]);
  });

  it("reports malformed test files and a policy directory that does not exist", async () => {
    const bad = server.open(join(root, "tests/bad.policytest.yaml"), FILES["tests/bad.policytest.yaml"], "yaml");
    const d = await server.waitForDiagnostics(bad, (l) => l.length > 0);
    expect(d.map((x) => [x.code, x.range.start.line])).toEqual([
      ["bad-test-file-key", 2],
      ["bad-expectation", 4],
    ]);
    expect(d[0]!.message).toBe("unknown key `colour`: expected policy, system or tests");
    const missing = server.open(join(root, "tests/missing.policytest.yaml"), FILES["tests/missing.policytest.yaml"], "yaml");
    const m = await server.waitForDiagnostics(missing, (l) => l.length > 0);
    expect(summary(m)).toEqual([{ code: "no-policy", line: 0, message: "the policy directory `../nowhere.d` (relative to the test file) is not a directory" }]);
    await server.closeDocument(bad);
    await server.closeDocument(missing);
  });

  it("fails calls that name unknown qubes or a near-miss service, in `qkit policy eval`'s wording (as `qkit policy test` does)", async () => {
    const u = server.open(join(root, "tests/names.policytest.yaml"), FILES["tests/names.policytest.yaml"], "yaml");
    const d = await server.waitForDiagnostics(u, (l) => l.length > 0);
    expect(summary(d)).toEqual([
      { code: "unknown-qube", line: 3, message: "source `wrok` is not a qube of the system: the daemon never receives a call from it; check the name; did you mean `work`?" },
      { code: "unknown-qube", line: 4, message: "target `vualt` is not a qube of the system: the daemon treats it as @default; did you mean `vault`?" },
      { code: "policy-test-failed", line: 4, message: "expected deny, got ask (decided by 30-user.policy:2)" },
      { code: "unknown-service", line: 5, message: "service `qubes.Filecoyp` is named by no rule of the policy (only `*` rules decide it); did you mean `qubes.Filecopy`?" },
    ]);
  });

  it("puts 'decided by N tests' on the rules of the policy the tests use", async () => {
    server.open(join(root, "policy.d/30-user.policy"), POLICY);
    const lenses = await until(() => testLenses("policy.d/30-user.policy"), (l) => l.length === 5);
    expect(lenses).toEqual([
      "0: decided by 1 test", // a deny rule: keeping targets off the ask list is not contributing
      "1: decided by 2 tests, contributes ask targets to 2 tests",
      "2: no test decides this rule",
      "3: no test decides this rule",
      "4: no test decides this rule",
    ]);
  });

  it("follows edits of a test file", async () => {
    await change("tests/basic.policytest.yaml", TESTS + "  - qubes.Backup work vault => allow\n  - qubes.OpenURL work @dispvm => allow\n");
    const lenses = await until(() => testLenses("policy.d/30-user.policy"), (l) => l[3] === "3: decided by 1 test");
    expect(lenses).toEqual([
      "0: decided by 1 test", // a deny rule: keeping targets off the ask list is not contributing
      "1: decided by 2 tests, contributes ask targets to 2 tests",
      "2: decided by 1 test",
      "3: decided by 1 test",
      "4: no test decides this rule",
    ]);
  });

  it("follows edits of the policy: a fixed rule clears the failure", async () => {
    await change("policy.d/30-user.policy", POLICY.replace("qubes.Filecopy * work @anyvm ask", "qubes.Filecopy * work personal allow\nqubes.Filecopy * work @anyvm ask"));
    const d = await server.waitForDiagnostics(uri("tests/basic.policytest.yaml"), (l) => l.length > 0 && l[0]!.range.start.line !== 4);
    // Now the map-form test (ask offering personal) fails: personal is allowed first.
    expect(summary(d)).toEqual([{ code: "policy-test-failed", line: 5, message: "expected ask, got allow to personal (decided by 30-user.policy:2)" }]);
    const lenses = await until(() => testLenses("policy.d/30-user.policy"), (l) => l[1] === "1: decided by 2 tests");
    expect(lenses[1]).toBe("1: decided by 2 tests");
  });

  it("finds a test file written to disk (not open) once the client says it changed", async () => {
    const rel = "tests/more/catchall.policytest.yaml";
    mkdirSync(join(root, "tests/more"), { recursive: true });
    writeFileSync(join(root, rel), "policy: ../../policy.d\nsystem: ../../system.json\ntests:\n  - qubes.Other work vault => deny\n  - qubes.Other personal vault => deny\n");
    await server.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: uri(rel), type: FileChangeType.Created }] });
    const lenses = await until(() => testLenses("policy.d/30-user.policy"), (l) => l.some((x) => x.endsWith("decided by 2 tests") && x.startsWith("5:")));
    expect(lenses.find((x) => x.startsWith("5:"))).toBe("5: decided by 2 tests");
  });
});
