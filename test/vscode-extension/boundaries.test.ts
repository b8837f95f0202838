/**
 * The extension is a thin client (ARCHITECTURE invariant): it may use the server's protocol
 * types, but never server or language code at run time, which would be bundled into
 * `dist/extension.cjs` a second time next to `dist/server.cjs`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const src = fileURLToPath(new URL("../../vscode-extension/src/", import.meta.url));
const files = readdirSync(src).filter((f) => f.endsWith(".ts"));

/** Every `import`/`export ... from "@qubes-kit/..."` statement that is not type-only. */
function valueImports(text: string): string[] {
  const statements = text.match(/^(?:import|export)\s[^;]*?from\s+["']@qubes-kit\/[^"']+["']/gm) ?? [];
  return statements.filter((s) => !/^(?:import|export)\s+type\s/.test(s));
}

describe("vscode-extension boundaries", () => {
  it("finds the sources", () => {
    expect(files).toEqual(expect.arrayContaining(["extension.ts", "commands.ts", "render.ts"]));
  });

  it.each(files)("%s imports @qubes-kit packages only as types", (file) => {
    expect(valueImports(readFileSync(src + file, "utf8"))).toEqual([]);
  });

  it("the check sees a value import", () => {
    expect(valueImports('import { startServer } from "@qubes-kit/lsp";\nimport type { X } from "@qubes-kit/lsp";')).toEqual([
      'import { startServer } from "@qubes-kit/lsp"',
    ]);
  });
});
