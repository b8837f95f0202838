import { defineConfig } from "vitest/config";
export default defineConfig({
  resolve: { alias: { "@qubes-kit/language": "/tmp/simstub/lang.ts", "@qubes-kit/sdk": "/work/main/sdk/src/sim/index.ts" } },
  test: { root: "/work/main", include: ["test/sdk/sim-*.test.ts"], testTimeout: 60000, pool: "forks" },
});
