import { defineConfig } from "vitest/config";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// A worker writes a Node.js diagnostic report here on SIGUSR2: the stall
// watchdog of test/summary-reporter.ts asks for one to show where a stuck
// worker is. The variable is read by the reporter, in this same process.
process.env.QKIT_WORKER_REPORT_DIR ??= mkdtempSync(join(tmpdir(), "qkit-vitest-reports-"));
const reportArgs = ["--report-on-signal", "--report-signal=SIGUSR2", `--report-directory=${process.env.QKIT_WORKER_REPORT_DIR}`];

export default defineConfig({
  resolve: {
    // Exact matches: `@qubes-kit/sdk` must not swallow its subpaths.
    alias: [
      { find: /^@qubes-kit\/language$/, replacement: src("./language/src/index.ts") },
      { find: /^@qubes-kit\/language\/engine$/, replacement: src("./language/src/engine.ts") },
      { find: /^@qubes-kit\/sdk$/, replacement: src("./sdk/src/index.ts") },
      { find: /^@qubes-kit\/sdk\/sim$/, replacement: src("./sdk/src/sim-entry.ts") },
      { find: /^@qubes-kit\/sdk\/node$/, replacement: src("./sdk/src/node.ts") },
      { find: /^@qubes-kit\/lsp$/, replacement: src("./lsp/src/index.ts") },
    ],
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    execArgv: reportArgs,
    // fast-check: a time limit for every property, QKIT_FC_SEED to replay one.
    setupFiles: ["./test/helpers/fast-check-setup.ts"],
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});
