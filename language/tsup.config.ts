import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  dts: { compilerOptions: { composite: false, incremental: false } },
  sourcemap: true,
  clean: true,
  target: "es2022",
  platform: "neutral",
  // Chevrotain (and the lodash-es modules it imports) is bundled in: as
  // separate ES modules they take about 300 ms to resolve and load, ten times
  // the cost of one file. The core then has no run-time dependency at all.
  noExternal: [/.*/],
  treeshake: true,
});
