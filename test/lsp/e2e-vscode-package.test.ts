/**
 * Packages the VS Code extension with its real script (`npm run package -w vscode-extension`:
 * esbuild bundle + `vsce package`) and checks the `.vsix` as VS Code would install it:
 * exactly the expected files, no `node_modules`, a manifest whose contributions point at
 * files that exist, an extension bundle that loads with only `vscode` provided, and a
 * server bundle that runs on its own from a folder with no `node_modules` around it.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import Module, { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { inflateRawSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createProtocolConnection,
  DidOpenTextDocumentNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  StreamMessageReader,
  StreamMessageWriter,
  type Diagnostic,
} from "vscode-languageserver-protocol/node.js";
import { repoPath, requireServerBuild } from "./e2e-support.js";

const VSIX = repoPath("vscode-extension/qubes-kit-vscode.vsix");

/** Reads every entry of a zip archive (stored or deflated), from its central directory. */
function readZip(buffer: Buffer): Map<string, Buffer> {
  let eocd = buffer.length - 22;
  while (eocd >= 0 && buffer.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error("not a zip archive: no end of central directory record");
  const count = buffer.readUInt16LE(eocd + 10);
  let at = buffer.readUInt32LE(eocd + 16);
  const entries = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    if (buffer.readUInt32LE(at) !== 0x02014b50) throw new Error(`bad central directory entry ${i}`);
    const method = buffer.readUInt16LE(at + 10);
    const compressedSize = buffer.readUInt32LE(at + 20);
    const nameLength = buffer.readUInt16LE(at + 28);
    const extraLength = buffer.readUInt16LE(at + 30);
    const commentLength = buffer.readUInt16LE(at + 32);
    const local = buffer.readUInt32LE(at + 42);
    const name = buffer.toString("utf8", at + 46, at + 46 + nameLength);
    const dataStart = local + 30 + buffer.readUInt16LE(local + 26) + buffer.readUInt16LE(local + 28);
    const data = buffer.subarray(dataStart, dataStart + compressedSize);
    entries.set(name, method === 0 ? Buffer.from(data) : inflateRawSync(data));
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

let entries: Map<string, Buffer>;
const temp = mkdtempSync(join(tmpdir(), "qkit-vsix-"));

beforeAll(() => {
  requireServerBuild();
  const run = spawnSync("npm", ["run", "package", "-w", "vscode-extension"], { cwd: repoPath(""), encoding: "utf8", timeout: 50_000 });
  if (run.status !== 0) throw new Error(`npm run package -w vscode-extension failed (${run.status}):\n${run.stdout}\n${run.stderr}`);
  entries = readZip(readFileSync(VSIX));
});
afterAll(() => rmSync(temp, { recursive: true, force: true }));

describe("the packaged .vsix", () => {
  it("holds exactly the manifest, the docs, the licence, the icon, the two bundles, the grammars and the stack schema", () => {
    expect([...entries.keys()].sort()).toEqual([
      "[Content_Types].xml",
      "extension.vsixmanifest",
      "extension/LICENSE.txt",
      "extension/changelog.md",
      "extension/dist/extension.cjs",
      "extension/dist/schemas/qubes-template.schema.json",
      "extension/dist/server.cjs",
      "extension/dist/syntaxes/qrexecpolicy-service.tmLanguage.json",
      "extension/dist/syntaxes/qrexecpolicy.tmLanguage.json",
      "extension/dist/syntaxes/qubes-template.tmLanguage.json",
      "extension/icon.png",
      "extension/language-configuration.json",
      "extension/package.json",
      "extension/readme.md",
      "extension/template-language-configuration.json",
    ]);
  });

  it("has a manifest whose contributions point at packaged files", () => {
    const manifest = JSON.parse(entries.get("extension/package.json")!.toString("utf8"));
    const packaged = (p: string) => entries.has(`extension/${p.replace(/^\.\//, "")}`);
    expect(packaged(manifest.main)).toBe(true);
    expect(manifest.contributes.languages.map((l: { id: string }) => l.id)).toEqual(["qrexecpolicy", "qrexecpolicy-service", "qubes-template"]);
    // Editors with the YAML extension validate stack files against the packaged schema.
    for (const v of manifest.contributes.yamlValidation) {
      expect(packaged(v.url)).toBe(true);
      const schema = JSON.parse(entries.get(`extension/${v.url.replace(/^\.\//, "")}`)!.toString("utf8"));
      expect(schema.$schema).toMatch(/json-schema/);
    }
    expect(manifest.contributes.yamlValidation.flatMap((v: { fileMatch: string[] }) => v.fileMatch)).toContain("*.qubes.yaml");
    for (const language of manifest.contributes.languages) expect(packaged(language.configuration)).toBe(true);
    for (const grammar of manifest.contributes.grammars) {
      expect(packaged(grammar.path)).toBe(true);
      const json = JSON.parse(entries.get(`extension/${grammar.path.replace(/^\.\//, "")}`)!.toString("utf8"));
      expect(json.scopeName).toBe(grammar.scopeName);
    }
    expect(manifest.contributes.commands.map((c: { command: string }) => c.command)).toEqual(
      expect.arrayContaining(["qubesPolicy.simulate", "qubesPolicy.explainAtCursor", "qubesPolicy.showDecisionTable", "qubesPolicy.simulateRule", "qubesTemplate.plan", "qubesTemplate.whatif"]),
    );
    expect(Object.keys(manifest.contributes.configuration.properties)).toEqual(
      expect.arrayContaining([
        "qubesPolicy.system.source",
        "qubesPolicy.system.file",
        "qubesPolicy.system.socket",
        "qubesPolicy.runtimeDir",
        "qubesPolicy.legacyDir",
        "qubesPolicy.trace.server",
      ]),
    );
    expect(manifest.contributes.configuration.properties["qubesPolicy.system.source"].enum).toEqual(["none", "file", "socket", "qrexec"]);
  });

  it("ships an extension bundle that needs only `vscode` and Node built-ins", () => {
    const code = entries.get("extension/dist/extension.cjs")!.toString("utf8");
    const required = new Set([...code.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!));
    const builtins = new Set(Module.builtinModules);
    expect([...required].filter((m) => m !== "vscode" && !builtins.has(m.replace(/^node:/, "")))).toEqual([]);

    // Load it with a stub `vscode` module: it must evaluate and export activate/deactivate.
    const file = join(temp, "extension.cjs");
    writeFileSync(file, code);
    const stub: unknown = new Proxy(function () {}, { get: (_t, key) => (key === "__esModule" ? false : stub), apply: () => stub, construct: () => stub as object });
    const load = (Module as unknown as { _load: (request: string, parent: unknown, isMain: boolean) => unknown })._load;
    (Module as unknown as { _load: typeof load })._load = (request, parent, isMain) => (request === "vscode" ? stub : load(request, parent, isMain));
    try {
      const ext = createRequire(file)(file) as { activate?: unknown; deactivate?: unknown };
      expect(typeof ext.activate).toBe("function");
      expect(typeof ext.deactivate).toBe("function");
    } finally {
      (Module as unknown as { _load: typeof load })._load = load;
    }
  });

  it("ships a server bundle that runs alone, with no node_modules around it", async () => {
    const dir = join(temp, "alone", "extension", "dist");
    mkdirSync(dir, { recursive: true });
    const server = join(dir, "server.cjs");
    writeFileSync(server, entries.get("extension/dist/server.cjs")!);
    const policyDir = join(temp, "alone", "policy.d");
    mkdirSync(policyDir);
    const policy = join(policyDir, "30-user.policy");
    writeFileSync(policy, "qubes.Filecopy  *  @anyvm  @anyvm  alow\n");

    // NODE_PATH is cleared and the cwd is the temp folder, so nothing can be found outside the bundle.
    const child = spawn(process.execPath, [server, "--stdio"], { cwd: dirname(dir), env: { PATH: process.env.PATH ?? "" }, stdio: "pipe" });
    const connection = createProtocolConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
    const diagnostics = new Promise<Diagnostic[]>((resolve) => {
      connection.onNotification(PublishDiagnosticsNotification.type, (p) => {
        if (p.diagnostics.length) resolve(p.diagnostics);
      });
    });
    connection.listen();
    try {
      const init = await connection.sendRequest(InitializeRequest.type, {
        processId: process.pid,
        rootUri: pathToFileURL(join(temp, "alone")).href,
        capabilities: {},
        workspaceFolders: null,
      });
      expect(init.serverInfo?.name).toBe("qkit-lsp");
      await connection.sendNotification("initialized", {});
      await connection.sendNotification(DidOpenTextDocumentNotification.type, {
        textDocument: { uri: pathToFileURL(policy).href, languageId: "qrexecpolicy", version: 1, text: readFileSync(policy, "utf8") },
      });
      const got = await diagnostics;
      expect(got.map((d) => d.message)).toContain("invalid action: alow");
    } finally {
      connection.dispose();
      child.kill();
    }
  });
});
