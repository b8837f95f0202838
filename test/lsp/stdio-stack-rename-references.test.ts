/**
 * Rename and find references of qubes and tags across the policy and the domain templates,
 * through the built server over stdio: the example machine (`examples/laptop`) plus a
 * `30-user.policy`, a second stack with the mapping form of `expect:` and quoted names, and a
 * bundle with `list<qube>` and `tag` parameters.
 *
 * The oracle is the text itself: every whole-word occurrence of the name outside comments in
 * the workspace's policy and stack files. From every one of those places, rename must edit
 * exactly them and references must list exactly them (so rename and references agree), and
 * after the edits the stack's resolved model is the old one with the name replaced: nothing
 * the stack generates changes meaning (issue 10: a tag rename that left a bundle's `with:`
 * behind silently moved `work` out of the split-GPG rules).
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Location, TextEdit, WorkspaceEdit } from "vscode-languageserver-protocol/node.js";
import { checkStack, createMemoryFileSystem } from "@qubes-kit/language";
import { repoPath, startServer, type ServerSession } from "./e2e-support.js";

const EXTRA_FILES: Record<string, string> = {
  "policy.d/30-user.policy": [
    "qubes.Filecopy * work vault ask default_target=vault",
    "qubes.Gpg * @tag:gpg-client @default ask default_target=vault",
    "qubes.OpenURL * work @default allow target=@dispvm:dvm-work",
    "qubes.VaultPing * @tag:gpg-client vault-gpg allow",
    "",
  ].join("\n"),
  "checks.qubes.yaml": [
    "qkit: 1",
    "stack: checks",
    "use:",
    "  - bundle: ./bundles/mark.qubes.yaml",
    "    as: mark",
    "    with:",
    '      clients: [work, "sys-firewall"]',
    "      mark: 'gpg-client'",
    "expect:",
    '  - call: "qubes.Filecopy work -> vault"',
    "    decision: ask",
    "    target: vault",
    '    targets_include: [vault, "work"]',
    "  - call: qubes.OpenInVM work -> @dispvm:dvm-work",
    "    decision: allow",
    "  - qubes.Gpg2 vault-gpg @default => deny  # work is not asked here",
    "",
  ].join("\n"),
  "bundles/mark.qubes.yaml": [
    "qkit: 1",
    "bundle: mark",
    "params:",
    "  clients: { type: list<qube> }",
    "  mark: { type: tag, default: gpg-client }",
    "policy:",
    "  - file: mark",
    "    rules: |",
    "      qubes.Mark  *  @tag:${mark}  @default  deny",
    "",
  ].join("\n"),
};

let root: string;
let server: ServerSession;
const uriOf = (rel: string) => pathToFileURL(join(root, rel)).href;
const relOf = (uri: string) => relative(root, new URL(uri).pathname);

/** The workspace's policy and stack files (relative paths), sorted. */
function textFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".qubes.yaml") || relative(root, p).startsWith("policy.d/")) out.push(relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

interface Place {
  file: string;
  line: number;
  character: number;
}
const key = (p: Place) => `${p.file}:${p.line + 1}:${p.character}`;

/** Every whole-word occurrence of `name` outside comments (`#` to the end of the line) in the workspace's files. */
function oracle(name: string): { all: string[]; declarations: string[] } {
  const all: string[] = [];
  const declarations: string[] = [];
  const word = new RegExp(`(?<![A-Za-z0-9_.-])${name.replace(/[.]/g, "\\.")}(?![A-Za-z0-9_.-])`, "g");
  for (const file of textFiles()) {
    readFileSync(join(root, file), "utf8")
      .split("\n")
      .forEach((text, line) => {
        const code = text.replace(/(^|\s)#.*$/, "");
        for (const m of code.matchAll(word)) {
          const k = key({ file, line, character: m.index! });
          all.push(k);
          if (file.endsWith(".qubes.yaml") && new RegExp(`^  ${name}:\\s*$`).test(code)) declarations.push(k);
        }
      });
  }
  return { all: all.sort(), declarations };
}

const placeOf = (k: string): { uri: string; position: { line: number; character: number } } => {
  const m = /^(.*):(\d+):(\d+)$/.exec(k)!;
  return { uri: uriOf(m[1]!), position: { line: Number(m[2]) - 1, character: Number(m[3]) } };
};

const keysOfLocations = (ls: Location[]) => ls.map((l) => key({ file: relOf(l.uri), line: l.range.start.line, character: l.range.start.character })).sort();

/** The stack's model as JSON, with the comment lines of its policy files left out (rename leaves comments alone). */
function modelOf(entry: string): string {
  const fs = createMemoryFileSystem(new Map(textFiles().map((f) => [`/ws/${f}`, readFileSync(join(root, f), "utf8")])));
  const r = checkStack(fs, `/ws/${entry}`);
  expect(r.model, JSON.stringify(r.diagnostics.filter((d) => d.severity === "error"))).toBeDefined();
  // Where things are written moves with the names' lengths: leave the offsets out.
  const json = JSON.stringify(r.model, (k, v: unknown) => (["provenance", "keyProvenance", "rulesOffset", "globalProvenance", "labelProvenance"].includes(k) ? undefined : v));
  const model = JSON.parse(json) as { policy: Array<{ rules: string }> };
  for (const p of model.policy) p.rules = p.rules.split("\n").filter((l) => !l.trimStart().startsWith("#")).join("\n");
  return JSON.stringify(model);
}

/** Applies a workspace edit to the files on disk. */
function apply(edit: WorkspaceEdit): void {
  for (const [uri, edits] of Object.entries(edit.changes ?? {})) {
    const path = new URL(uri).pathname;
    const lines = readFileSync(path, "utf8").split("\n");
    const sorted = [...(edits as TextEdit[])].sort((a, b) => b.range.start.line - a.range.start.line || b.range.start.character - a.range.start.character);
    for (const e of sorted) {
      expect(e.range.start.line).toBe(e.range.end.line);
      const l = lines[e.range.start.line]!;
      lines[e.range.start.line] = l.slice(0, e.range.start.character) + e.newText + l.slice(e.range.end.character);
    }
    writeFileSync(path, lines.join("\n"));
  }
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "qkit-stack-rename-"));
  cpSync(repoPath("examples/laptop"), root, { recursive: true });
  for (const [rel, text] of Object.entries(EXTRA_FILES)) writeFileSync(join(root, rel), text);
  server = await startServer(root, { system: { source: "file", file: join(root, "system.json") } });
  for (const f of textFiles()) server.open(join(root, f), undefined, f.endsWith(".qubes.yaml") ? "qubes-template" : "qrexecpolicy");
  await server.waitForDiagnostics(uriOf("laptop.qubes.yaml"));
});
afterAll(async () => {
  await server?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** [what, name, kind, places the oracle must find (a sample: the lines)] */
const CASES: Array<[string, string, "qube" | "tag", string[]]> = [
  ["a tag, in `tags:`, bundle `with:` values and defaults of type tag, and @tag: tokens", "gpg-client", "tag", ["laptop.qubes.yaml:15:18", "laptop.qubes.yaml:136:11", "bundles/split-gpg.qubes.yaml:9:36"]],
  ["a qube, in declarations, rules blocks, expect entries of both forms and list<qube> values", "work", "qube", ["laptop.qubes.yaml:127:2", "laptop.qubes.yaml:159:15", "checks.qubes.yaml:10:26"]],
  ["a qube named by a redirect, an expect's resolved target and a bundle default", "sys-firewall", "qube", ["laptop.qubes.yaml:156:71", "laptop.qubes.yaml:164:49", "bundles/vpn-chain.qubes.yaml:10:35"]],
  ["a qube a bundle instance declares", "vault-gpg", "qube", ["laptop.qubes.yaml:13:14", "laptop.qubes.yaml:159:36", "bundles/split-gpg.qubes.yaml:7:37"]],
  ["a qube of @dispvm:NAME tokens and expect calls", "dvm-work", "qube", ["laptop.qubes.yaml:120:2", "laptop.qubes.yaml:163:49", "checks.qubes.yaml:14:41"]],
  ["a qube named as an expect target and in ask rules", "vault", "qube", ["laptop.qubes.yaml:109:2", "checks.qubes.yaml:12:12"]],
];

describe("rename and references across policy and stack files", () => {
  it.each(CASES)("%s: the oracle sees the issue's places (%s)", (_what, name, _kind, sample) => {
    const { all } = oracle(name);
    for (const s of sample) expect(all).toContain(s);
  });

  it.each(CASES)("%s: from every place it is written, rename edits exactly those places and references list exactly them (%s)", async (_what, name) => {
    const { all, declarations } = oracle(name);
    expect(all.length).toBeGreaterThan(2);
    const newName = `${name}-renamed`;
    for (const start of all) {
      const { uri, position } = placeOf(start);
      const edit = (await server.connection.sendRequest("textDocument/rename", { textDocument: { uri }, position, newName })) as WorkspaceEdit;
      const edits = Object.entries(edit.changes ?? {}).flatMap(([u, es]) => es.map((e) => ({ ...e, uri: u })));
      expect(edits.every((e) => e.newText === newName && e.range.end.character - e.range.start.character === name.length), start).toBe(true);
      expect(keysOfLocations(edits.map((e) => ({ uri: e.uri, range: e.range }))), `rename from ${start}`).toEqual(all);
      const refs = (await server.connection.sendRequest("textDocument/references", { textDocument: { uri }, position, context: { includeDeclaration: true } })) as Location[];
      expect(keysOfLocations(refs), `references from ${start}`).toEqual(all);
      const noDecl = (await server.connection.sendRequest("textDocument/references", { textDocument: { uri }, position, context: { includeDeclaration: false } })) as Location[];
      expect(keysOfLocations(noDecl), `references without declarations from ${start}`).toEqual(all.filter((k) => !declarations.includes(k)));
    }
  });

  it("prepareRename on an expect entry answers the name's range; on its service, the service refusal", async () => {
    const text = readFileSync(join(root, "laptop.qubes.yaml"), "utf8").split("\n");
    const line = text.findIndex((l) => l.includes("qubes.Gpg2 work @default"));
    const ok = (await server.connection.sendRequest("textDocument/prepareRename", { textDocument: { uri: uriOf("laptop.qubes.yaml") }, position: { line, character: text[line]!.indexOf("work") + 2 } })) as {
      range: { start: { character: number } };
      placeholder: string;
    };
    expect(ok.placeholder).toBe("work");
    expect(ok.range.start.character).toBe(text[line]!.indexOf("work"));
    const err = await server.connection
      .sendRequest("textDocument/prepareRename", { textDocument: { uri: uriOf("laptop.qubes.yaml") }, position: { line, character: text[line]!.indexOf("Gpg2") } })
      .then(
        () => undefined,
        (e: { message: string; data?: { code?: string } }) => e,
      );
    expect(err?.message).toBe("`qubes.Gpg2` is a service; only qube names and tags can be renamed");
    expect(err?.data?.code).toBe("rename-not-a-name");
  });

  it("refuses to rename a bundle's `${param}` qube name, and says where the name is", async () => {
    const bundle = readFileSync(join(root, "bundles/split-gpg.qubes.yaml"), "utf8").split("\n");
    const line = bundle.findIndex((l) => l.startsWith("  ${server}:"));
    const err = await server.connection
      .sendRequest("textDocument/rename", { textDocument: { uri: uriOf("bundles/split-gpg.qubes.yaml") }, position: { line, character: 4 }, newName: "keys" })
      .then(
        () => undefined,
        (e: { message: string; data?: { code?: string } }) => e,
      );
    expect(err?.message).toBe("`${server}` is a bundle parameter, not a qube name: rename the value given to it in `with:` or its default");
    expect(err?.data?.code).toBe("rename-not-a-name");
  });
});

describe("applying a rename keeps the meaning of every stack", () => {
  // Runs last in this file: it edits the workspace on disk.
  it.each([
    ["gpg-client", "gpg-user", "policy.d/30-user.policy"],
    ["work", "job", "laptop.qubes.yaml"],
    ["sys-firewall", "sys-fw", "laptop.qubes.yaml"],
    ["vault-gpg", "keys", "checks.qubes.yaml"],
  ])("renaming %s to %s (started in %s) turns each stack's model into the old one with the new name", async (name, newName, from) => {
    const stacks = ["laptop.qubes.yaml", "checks.qubes.yaml"];
    const word = new RegExp(`(?<![A-Za-z0-9_.-])${name}(?![A-Za-z0-9_.-])`, "g");
    const before = stacks.map((s) => modelOf(s).replace(word, newName));
    const start = oracle(name).all.find((k) => k.startsWith(`${from}:`))!;
    const { uri, position } = placeOf(start);
    const edit = (await server.connection.sendRequest("textDocument/rename", { textDocument: { uri }, position, newName })) as WorkspaceEdit;
    apply(edit);
    // The server sees the files as the editor has them: give it the new texts before anything can fail.
    for (const u of Object.keys(edit.changes ?? {})) {
      await server.closeDocument(u);
      const rel = relOf(u);
      server.open(join(root, rel), undefined, rel.endsWith(".qubes.yaml") ? "qubes-template" : "qrexecpolicy");
    }
    expect(oracle(name).all).toEqual([]);
    expect(stacks.map((s) => modelOf(s))).toEqual(before);
  });
});
