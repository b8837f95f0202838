import { fileURLToPath } from "node:url";
import { defineConfig } from "tsup";

/** The bundles compile the workspace packages from source, so they never depend on stale builds. */
const alias = {
  "@qubes-kit/language": fileURLToPath(new URL("../language/src/index.ts", import.meta.url)),
  "@qubes-kit/sdk/sim": fileURLToPath(new URL("../sdk/src/sim-entry.ts", import.meta.url)),
  "@qubes-kit/sdk": fileURLToPath(new URL("../sdk/src/index.ts", import.meta.url)),
};

export default defineConfig([
  // The library: ESM + CJS with types; dependencies stay external.
  {
    entry: { index: "src/index.ts" },
    format: ["esm", "cjs"],
    dts: { compilerOptions: { composite: false } },
    sourcemap: true,
    clean: true,
    target: "node20",
    platform: "node",
  },
  // The `qkit-lsp` binary: one self-contained CJS file (the VS Code extension ships it as is).
  {
    entry: { server: "src/server.ts" },
    format: ["cjs"],
    outExtension: () => ({ js: ".cjs" }),
    noExternal: [/.*/],
    sourcemap: true,
    clean: false,
    target: "node20",
    platform: "node",
    banner: { js: "#!/usr/bin/env node" },
    esbuildOptions(options) {
      options.alias = alias;
    },
  },
  // The browser / web worker entry.
  {
    entry: { browser: "src/browser.ts" },
    format: ["esm"],
    noExternal: [/.*/],
    sourcemap: true,
    clean: false,
    target: "es2022",
    platform: "browser",
    esbuildOptions(options) {
      options.alias = alias;
    },
  },
]);
