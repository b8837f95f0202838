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
    // `@qubes-kit/language`, imported at run time: its engine entry
    // (`@qubes-kit/language/engine`, no parser generator, no analysis) for
    // `policy eval` and `policy check --engine-only`, the full entry for the
    // rest; both share their chunks, so values and classes are the same.
    entry: { cli: "src/cli/main.ts" },
    format: ["esm"],
    external: ["@qubes-kit/language", "@qubes-kit/language/engine"],
    noExternal: [/^(?!@qubes-kit\/language(?:\/engine)?$)/],
    treeshake: true,
    sourcemap: true,
    target: "node20",
    platform: "node",
    banner: { js: "#!/usr/bin/env node" },
  },
]);
