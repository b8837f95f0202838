/**
 * A system model file that lists the installed kernels and the storage pools
 * (`qkit system snapshot` writes them) makes the editor check `kernel:` and
 * pool names in stack files as `qkit template check --system` does, and
 * complete the installed kernels. Through the built server over stdio.
 */
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompletionRequest, type CompletionItem, type CompletionList } from "vscode-languageserver-protocol/node.js";
import { startServer, type ServerSession } from "./e2e-support.js";

const KERNEL = "6.12.40-1.qubes.fc41";
let dir: string;
let server: ServerSession;

beforeAll(async () => {
  dir = mkdtempSync(path.join(realpathSync(tmpdir()), "qkit-lsp-storage-"));
  const domains = {
    dom0: { tags: [], type: "AdminVM", template_for_dispvms: false, default_dispvm: null, icon: "adminvm-black", label: "black", power_state: "Running", internal: false, uuid: "00000000-0000-0000-0000-000000000000" },
    "debian-12": { tags: [], type: "TemplateVM", template_for_dispvms: false, default_dispvm: null, icon: "templatevm-black", label: "black", power_state: "Halted", internal: false, uuid: "11111111-1111-4111-8111-111111111111" },
  };
  writeFileSync(path.join(dir, "system.json"), JSON.stringify({ domains, pools: ["linux-kernel", "varlibqubes"], kernels: [KERNEL] }));
  server = await startServer(dir, { system: { source: "file", file: path.join(dir, "system.json") } });
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("kernels and pools from the system model file", () => {
  it("reports a kernel and a pool the file does not list, in qubesd's words", async () => {
    const text = "qkit: 1\nstack: s\nqubes:\n  work:\n    class: AppVM\n    template: debian-12\n    label: blue\n    kernel: '5.0'\n    pools: { private: nopool }\n";
    const uri = server.open(path.join(dir, "s.qubes.yaml"), text, "qubes-template");
    const diagnostics = await server.waitForDiagnostics(uri, (d) => d.some((x) => x.code === "unknown-kernel"));
    expect(diagnostics.map((d) => [d.code, d.message]).sort()).toEqual([
      ["unknown-kernel", "Kernel '5.0' not installed (QubesPropertyValueError)"],
      ["unknown-pool", "no such storage pool: nopool"],
    ]);
  });

  it("completes the installed kernels, and an installed kernel is clean", async () => {
    const text = "qkit: 1\nstack: t\nqubes:\n  work:\n    class: AppVM\n    template: debian-12\n    label: blue\n    kernel: \n";
    const uri = server.open(path.join(dir, "t.qubes.yaml"), text, "qubes-template");
    const r = (await server.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position: { line: 7, character: 12 } })) as CompletionItem[] | CompletionList | null;
    const items = Array.isArray(r) ? r : (r?.items ?? []);
    expect(items.map((i) => i.label)).toContain(KERNEL);
    const ok = server.open(path.join(dir, "u.qubes.yaml"), text.replace("kernel: \n", `kernel: ${KERNEL}\n`), "qubes-template");
    const diagnostics = await server.waitForDiagnostics(ok, () => true);
    expect(diagnostics.map((d) => d.code)).toEqual([]);
  });
});
