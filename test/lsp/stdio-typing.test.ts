/**
 * Typing into a long policy over stdio: the built server reuses what an edit did not change
 * (per-line findings moved with their lines, converted diagnostics kept when their LSP place is
 * the same, their JSON text kept by the writer), and what it publishes for each version is
 * exactly what a fresh server publishes for that text.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DidChangeTextDocumentNotification, DidOpenTextDocumentNotification, type Diagnostic } from "vscode-languageserver-protocol/node.js";
import { startServer, systemDomain, writeWorkspace, type ServerSession } from "./e2e-support.js";

/** Rules with many shadowed ones (so later lines carry warnings that typing above moves), and per-line warnings. */
const RULES = [
  "qubes.Filecopy * work personal allow",
  "qubes.Filecopy * work personal deny",
  "qubes.Filecopy * @anyvm @anyvm deny",
  "qubes.Gpg * work vault allow",
  "qubes.Gpg * ghost vault allow",
  "qubes.Gpg * @anyvm vault ask default_target=vault",
  "qubes.StartApp * @dispvm:default-dvm work allow",
  "qubes.StartApp +firefox work @dispvm allow",
  "qubes.startapp * work personal allow",
  "* * @anyvm @anyvm deny",
];

/** A deterministic sequence of edits (a seeded generator): single keys, new lines, whole rules, deletions. */
function edits(seed: number, count: number, lines: number): Array<{ line: number; character: number; remove: number; text: string }> {
  let x = seed;
  const next = (n: number) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % n;
  };
  const out = [];
  let n = lines;
  for (let i = 0; i < count; i++) {
    const kind = next(5);
    const line = next(n);
    if (kind === 0) {
      out.push({ line, character: 0, remove: 0, text: "\n" });
      n++;
    } else if (kind === 1) {
      out.push({ line, character: 0, remove: 0, text: RULES[next(RULES.length)]! + "\n" });
      n++;
    } else if (kind === 2) out.push({ line, character: 0, remove: 1, text: "" });
    else out.push({ line, character: next(8), remove: 0, text: "x*# \t"[next(5)]! });
  }
  return out;
}

/** Applies an LSP range edit on one line to a text. */
function apply(text: string, e: { line: number; character: number; remove: number; text: string }): string {
  const lines = text.split("\n");
  const line = Math.min(e.line, lines.length - 1);
  let at = 0;
  for (let i = 0; i < line; i++) at += lines[i]!.length + 1;
  const character = Math.min(e.character, lines[line]!.length);
  const start = at + character;
  const end = Math.min(start + e.remove, at + lines[line]!.length);
  return text.slice(0, start) + e.text + text.slice(end);
}

describe("typing into a long policy", () => {
  let root: string;
  let server: ServerSession;
  const system = { domains: { dom0: systemDomain("AdminVM", 0), work: systemDomain("AppVM", 1), personal: systemDomain("AppVM", 2), vault: systemDomain("AppVM", 3), "default-dvm": systemDomain("AppVM", 4, { template_for_dispvms: true }) } };
  const initial = Array.from({ length: 240 }, (_, i) => RULES[i % RULES.length]).join("\n") + "\n";
  beforeAll(async () => {
    root = writeWorkspace("qkit-lsp-typing-", { "policy.d/10-before.policy": initial, "policy.d/50-typed.policy": initial, "policy.d/90-after.policy": initial, "system.json": JSON.stringify(system) });
    server = await startServer(root, { system: { source: "file", file: join(root, "system.json") } });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** The diagnostics a fresh server publishes for the typed file with this text. */
  async function fresh(text: string): Promise<Diagnostic[]> {
    const other = await startServer(root, { system: { source: "file", file: join(root, "system.json") } });
    try {
      const uri = pathToFileURL(join(root, "policy.d/50-typed.policy")).href;
      await other.connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: "qrexecpolicy", version: 1, text } });
      const deadline = Date.now() + 30_000;
      for (;;) {
        const p = other.publishes.find((x) => x.uri === uri && x.version === 1);
        if (p) return p.diagnostics;
        if (Date.now() > deadline) throw new Error("the fresh server published nothing");
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await other.close();
    }
  }

  it("publishes for every checked version what a fresh server publishes for that text", async () => {
    const uri = pathToFileURL(join(root, "policy.d/50-typed.policy")).href;
    await server.connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: "qrexecpolicy", version: 1, text: initial } });
    let text = initial;
    let version = 1;
    const checks = new Map<number, string>();
    const list = edits(7, 60, 240);
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      const lines = text.split("\n");
      const line = Math.min(e.line, lines.length - 1);
      const character = Math.min(e.character, lines[line]!.length);
      const end = Math.min(character + e.remove, lines[line]!.length);
      text = apply(text, { ...e, line, character });
      version++;
      await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
        textDocument: { uri, version },
        contentChanges: [{ range: { start: { line, character }, end: { line, character: end } }, text: e.text }],
      });
      // Some versions are waited for (the others are typed on, as a user does).
      if (i % 15 === 14 || i === list.length - 1) {
        checks.set(version, text);
        const deadline = Date.now() + 30_000;
        while (!server.publishes.some((p) => p.uri === uri && p.version === version)) {
          if (Date.now() > deadline) throw new Error(`no diagnostics for version ${version}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
    expect(checks.size).toBe(4);
    for (const [v, t] of checks) {
      const got = server.publishes.filter((p) => p.uri === uri && p.version === v).pop()!.diagnostics;
      expect(got.length).toBeGreaterThan(100);
      expect(got).toEqual(await fresh(t));
    }
  }, 180_000);
});
