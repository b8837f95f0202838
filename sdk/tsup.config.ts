import { defineConfig } from "tsup";

export default defineConfig([
  {
    entry: ["src/index.ts"],
    format: ["esm", "cjs"],
    dts: { compilerOptions: { composite: false, incremental: false } },
    sourcemap: true,
    clean: true,
    target: "node20",
    platform: "node",
  },
  {
    // The CLI is one self-contained file: start-up time counts for every
    // `qkit` run, and resolving many ES modules costs more than the work.
    entry: { cli: "src/cli/main.ts" },
    format: ["esm"],
    noExternal: [/.*/],
    treeshake: true,
    sourcemap: true,
    target: "node20",
    platform: "node",
    banner: { js: "#!/usr/bin/env node" },
  },
]);
