import { defineConfig } from "tsup";

export default defineConfig({
  // Two entries: the whole core, and `engine` (load, decide, print; no
  // Chevrotain, no analysis, templates, audit or flow) for programs whose
  // start-up counts (`qkit policy eval`). Code splitting, in both formats,
  // puts what they share in one chunk: a process that loads both gets the
  // same functions and classes, and the engine entry compiles a tenth of the code.
  entry: { index: "src/index.ts", engine: "src/engine.ts" },
  splitting: true,
  format: ["esm", "cjs"],
  dts: { compilerOptions: { composite: false, incremental: false } },
  sourcemap: true,
  clean: true,
  target: "es2022",
  platform: "neutral",
  // Chevrotain (and the lodash-es modules it imports) is bundled in: as
  // separate ES modules they take about 300 ms to resolve and load, ten times
  // the cost of one file (here: of the full entry's own file). The core then
  // has no run-time dependency at all.
  noExternal: [/.*/],
  treeshake: true,
});
