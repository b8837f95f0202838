import { defineConfig } from "tsup";

export default defineConfig([
  {
    // The main entry (the client), the simulator and the Node-only helpers.
    entry: { index: "src/index.ts", sim: "src/sim-entry.ts", node: "src/node.ts" },
    format: ["esm", "cjs"],
    dts: { compilerOptions: { composite: false, incremental: false } },
    sourcemap: true,
    clean: true,
    target: "node20",
    platform: "node",
  },
  {
    // The CLI is one file plus lazily loaded chunks: start-up time counts for
    // every `qkit` run, and resolving many ES modules costs more than the
    // work. The language core is not bundled a second time: it is the built
    // `@qubes-kit/language` (itself one file), imported at run time.
    entry: { cli: "src/cli/main.ts" },
    format: ["esm"],
    external: ["@qubes-kit/language"],
    noExternal: [/^(?!@qubes-kit\/language$)/],
    treeshake: true,
    sourcemap: true,
    target: "node20",
    platform: "node",
    banner: { js: "#!/usr/bin/env node" },
  },
]);
