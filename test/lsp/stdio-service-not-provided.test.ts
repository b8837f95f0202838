/**
 * The built server over stdio, with a system model file that says what each qube advertises
 * (`supported_rpc`): a rule for a service that no qube it can call provides gets the
 * `service-not-provided` information, on the service word; editing the rule to a target that
 * provides the service, or another file's rule feeding an ask, clears it.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { createNodeFileSystem, loadSystemModel } from "@qubes-kit/lsp";
import { startSimulator } from "@qubes-kit/sdk/sim";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DiagnosticSeverity, DidChangeTextDocumentNotification } from "vscode-languageserver-protocol/node.js";
import { startServer, systemDomain, writeWorkspace, type ServerSession } from "./e2e-support.js";

const BASE = ["qubes.Filecopy", "qubes.OpenInVM", "qubes.VMShell"];
const SYSTEM = JSON.stringify({
  domains: {
    dom0: systemDomain("AdminVM", 0),
    work: systemDomain("AppVM", 1, { supported_rpc: BASE }),
    vault: systemDomain("AppVM", 2, { supported_rpc: [...BASE, "qubes.Gpg"].sort() }),
    "default-dvm": systemDomain("AppVM", 3, { template_for_dispvms: true, supported_rpc: BASE }),
    windows: systemDomain("StandaloneVM", 4),
  },
});
const POLICY = ["my.Backup * work vault allow", "qubes.Gpg * work vault allow", "qubes.Gpg * work @dispvm allow", "my.Backup * work windows allow", "my.Backup * work dom0 allow", ""].join("\n");

let session: ServerSession | undefined;
let root: string | undefined;
afterEach(async () => {
  await session?.close();
  if (root) rmSync(root, { recursive: true, force: true });
  session = root = undefined;
});

describe("service-not-provided over stdio", () => {
  it("reports rules whose reachable qubes all advertise other services, and follows edits", async () => {
    root = writeWorkspace("qkit-rpc-", { "system.json": SYSTEM, "policy.d/30-user.policy": POLICY });
    session = await startServer(root, { system: { source: "file", file: "system.json" } });
    const uri = session.open(join(root, "policy.d", "30-user.policy"), POLICY);
    const mine = (list: Array<{ code?: string | number }>) => list.filter((d) => d.code === "service-not-provided");
    const got = mine(await session.waitForDiagnostics(uri, (d) => mine(d).length > 0));
    expect(got.map((d) => [d.range.start.line, d.range.start.character, d.range.end.character, d.severity])).toEqual([
      [0, 0, 9, DiagnosticSeverity.Information],
      [2, 0, 9, DiagnosticSeverity.Information],
    ]);
    expect(got[0]!.message).toBe("no qube this rule can call provides `my.Backup`: `vault` does not advertise it, so the calls it lets through fail at the target");
    expect(got[1]!.message).toBe("no qube this rule can call provides `qubes.Gpg`: `default-dvm` does not advertise it, so the calls it lets through fail at the target");

    // Point the Gpg call at vault instead of a disposable: only the first finding stays.
    const fixed = POLICY.replace("qubes.Gpg * work @dispvm allow", "qubes.Gpg * work @dispvm allow target=vault");
    await session.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri, version: 2 }, contentChanges: [{ text: fixed }] });
    const after = mine(await session.waitForDiagnostics(uri, (d) => mine(d).length === 1));
    expect(after.map((d) => d.range.start.line)).toEqual([0]);
    expect(session.exited()).toBe(false);
  });
});

describe("the live system model carries what the qubes advertise", () => {
  it("a qubesd admin socket (the simulator): supported_rpc with the template chain", async () => {
    const raw = JSON.parse(readFileSync(fileURLToPath(new URL("../fixtures/sdk/services/system.json", import.meta.url)), "utf8"));
    const dir = mkdtempSync(join(tmpdir(), "qkit-rpc-sim-"));
    const server = await startSimulator({ socket: join(dir, "qubesd.sock"), system: raw });
    try {
      const r = await loadSystemModel({ system: { source: "socket", socket: join(dir, "qubesd.sock") } }, undefined, createNodeFileSystem());
      expect(r.error).toBeUndefined();
      const d = r.raw!.domains;
      expect(d["vault"]!["supported_rpc"]).toContain("qubes.Gpg");
      expect(d["default-dvm"]!["supported_rpc"]).toContain("qubes.Filecopy");
      expect(d["work"]!["supported_rpc"]).toContain("my.Backup");
      expect(d["work"]!["supported_rpc"]).not.toContain("qubes.VMShell");
      expect("supported_rpc" in d["windows"]!).toBe(false);
      expect("supported_rpc" in d["dom0"]!).toBe(false);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
