/**
 * Workspace symbols of domain templates, through the built server over stdio: the qubes a
 * stack declares (under `qubes:` and through bundle instances, at the `with:` value that names
 * them) and the rules of the stacks' and bundles' `rules:` blocks, next to the policy's own
 * rules, on the example machine (`examples/laptop`) plus a `30-user.policy` (issue 10: `sys-vpn`,
 * `vault-gpg` and `Gpg2` found nothing).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SymbolKind, type SymbolInformation } from "vscode-languageserver-protocol/node.js";
import { repoPath, startServer, type ServerSession } from "./e2e-support.js";

let root: string;
let server: ServerSession;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "qkit-stack-symbols-"));
  cpSync(repoPath("examples/laptop"), root, { recursive: true });
  writeFileSync(join(root, "policy.d/30-user.policy"), "qubes.Gpg * @tag:gpg-client @default ask default_target=vault\nqubes.Filecopy * work vault ask\n");
  server = await startServer(root, { system: { source: "file", file: join(root, "system.json") } });
});
afterAll(async () => {
  await server?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

const symbols = async (query: string) => (await server.connection.sendRequest("workspace/symbol", { query })) as SymbolInformation[];
const where = (s: SymbolInformation) => `${relative(root, new URL(s.location.uri).pathname)}:${s.location.range.start.line + 1}`;
const KIND: Record<number, string> = { [SymbolKind.Object]: "qube", [SymbolKind.Function]: "rule", [SymbolKind.Module]: "directive" };

/** [query, symbols that must be found: `kind name @ file:line` (1-based), symbols that must not] */
const CASES: Array<[string, string[], string[]]> = [
  ["sys-vpn", ["qube sys-vpn @ laptop.qubes.yaml:20"], []],
  ["vault-gpg", ["qube vault-gpg @ laptop.qubes.yaml:13"], ["qube vault @ laptop.qubes.yaml:109"]],
  ["Gpg2", ["rule qubes.Gpg2 * @ bundles/split-gpg.qubes.yaml:26", "rule qubes.Gpg2 * @ bundles/split-gpg.qubes.yaml:27"], ["rule qubes.Gpg * @ policy.d/30-user.policy:1"]],
  ["work", ["qube work @ laptop.qubes.yaml:127", "qube dvm-work @ laptop.qubes.yaml:120", "rule qubes.OpenInVM * @ laptop.qubes.yaml:154", "rule qubes.Filecopy * @ policy.d/30-user.policy:2"], []],
  ["UpdatesProxy", ["rule qubes.UpdatesProxy * @ laptop.qubes.yaml:156"], ["qube sys-firewall @ laptop.qubes.yaml:86"]],
  ["tpl-sys", ["qube tpl-sys @ laptop.qubes.yaml:46"], []],
];

describe("workspace symbols of stack files", () => {
  it.each(CASES)("query %s", async (query, present, absent) => {
    const found = (await symbols(query)).map((s) => `${KIND[s.kind] ?? s.kind} ${s.name} @ ${where(s)}`);
    for (const p of present) expect(found).toContain(p);
    for (const a of absent) expect(found).not.toContain(a);
  });

  it("every stack symbol points at its name (a qube) or its rule's line, with the stack file as the container", async () => {
    const all = (await symbols("")).filter((s) => s.location.uri.endsWith(".qubes.yaml"));
    expect(all.length).toBeGreaterThan(15);
    for (const s of all) {
      const file = new URL(s.location.uri).pathname;
      const line = readFileSync(file, "utf8").split("\n")[s.location.range.start.line]!;
      const text = line.slice(s.location.range.start.character, s.location.range.end.line === s.location.range.start.line ? s.location.range.end.character : undefined);
      expect(s.containerName?.startsWith(`${file.slice(file.lastIndexOf("/") + 1)} · `), where(s)).toBe(true);
      if (s.kind === SymbolKind.Object) expect(text, where(s)).toBe(s.name);
      else {
        expect(s.kind).toBe(SymbolKind.Function);
        expect(text.startsWith(s.name.split(" ")[0]!), `${where(s)}: ${text}`).toBe(true);
      }
    }
    // Each stack's qubes: the declared ones and the bundle instances'.
    const qubes = all.filter((s) => s.kind === SymbolKind.Object).map((s) => s.name);
    for (const q of ["debian-13-xfce", "sys-usb", "vault", "work", "vault-gpg", "sys-vpn"]) expect(qubes).toContain(q);
    // A bundle's parameterised qube names are not symbols of their own.
    expect(qubes.some((q) => q.includes("${"))).toBe(false);
  });

  it("sees a closed stack file's change on disk (cached analyses are dropped when a file they read changes)", async () => {
    expect((await symbols("vpn-extra")).length).toBe(0);
    const bundle = join(root, "bundles/vpn-chain.qubes.yaml");
    writeFileSync(bundle, readFileSync(bundle, "utf8").replace("qubes:\n", "qubes:\n  vpn-extra:\n    class: AppVM\n"));
    const found = (await symbols("vpn-extra")).map((s) => `${KIND[s.kind]} ${s.name} @ ${where(s)}`);
    // In the bundle itself, and through the stack that uses it (each file once).
    expect(found).toEqual(["qube vpn-extra @ bundles/vpn-chain.qubes.yaml:14"]);
    writeFileSync(join(root, "more.qubes.yaml"), "qkit: 1\nstack: more\nqubes:\n  vpn-extra-2:\n    class: AppVM\n");
    expect((await symbols("vpn-extra-2")).map(where)).toEqual(["more.qubes.yaml:4"]);
  });
});
