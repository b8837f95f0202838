/**
 * Architecture invariants about imports, checked on the source:
 * - `language/` imports no vscode, no LSP, no Node built-ins, and not the SDK;
 * - only `lsp/` imports `vscode-languageserver`;
 * - only `vscode-extension/` imports `vscode` / `vscode-languageclient`.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (/\.(ts|mts|cts)$/.test(name) && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) out.push((m[1] ?? m[2] ?? m[3])!);
  return out;
}

function violations(pkg: string, forbidden: (spec: string) => boolean): string[] {
  return sources(join(root, pkg, "src")).flatMap((f) => importsOf(f).filter(forbidden).map((s) => `${f.slice(root.length)} imports ${s}`));
}

const NODE_BUILTINS = /^(node:|fs$|fs\/|path$|os$|child_process$|net$|http|https$|stream|url$|util$|crypto$|events$|buffer$|readline$|worker_threads$)/;

describe("architecture invariants", () => {
  it("language/ is pure: no vscode, LSP, Node built-ins or SDK", () => {
    expect(violations("language", (s) => /^vscode/.test(s) || NODE_BUILTINS.test(s) || s.startsWith("@qubes-kit/sdk") || s.startsWith("@qubes-kit/lsp"))).toEqual([]);
  });

  it("only lsp/ imports vscode-languageserver", () => {
    for (const pkg of ["language", "sdk", "vscode-extension"]) {
      expect(violations(pkg, (s) => s.startsWith("vscode-languageserver") && !s.startsWith("vscode-languageserver-protocol") && !s.startsWith("vscode-languageserver-types"))).toEqual([]);
    }
  });

  it("only vscode-extension/ imports vscode and vscode-languageclient", () => {
    for (const pkg of ["language", "sdk", "lsp"]) {
      expect(violations(pkg, (s) => s === "vscode" || s.startsWith("vscode-languageclient"))).toEqual([]);
    }
  });

  it("the SDK does not import the language server", () => {
    expect(violations("sdk", (s) => s.startsWith("@qubes-kit/lsp"))).toEqual([]);
  });

  it("finds imports at all (the check itself works)", () => {
    expect(importsOf(join(root, "sdk/src/cli/policy-audit.ts"))).toContain("@qubes-kit/language");
  });
});
