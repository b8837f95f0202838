#!/usr/bin/env node
/**
 * `npm test`: `vitest run` with the arguments given, and one remedy for a
 * fault that is vitest's, not the tests': when its worker pool wedges (every
 * worker idle, no test running, nothing finishing; see
 * test/summary-reporter.ts), the reporter stops the idle workers so the run
 * goes on, and the files they held are run once more here. The run passes
 * only if nothing else failed and those files pass on the second run; both
 * runs are printed, and the last line counts them together
 * (`tests: N passed, N failed`).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const vitest = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url));
const args = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), "qkit-test-"));

function run(argv, name) {
  const file = join(dir, `${name}.json`);
  const r = spawnSync(process.execPath, [vitest, "run", ...argv], { stdio: "inherit", env: { ...process.env, QKIT_TEST_RESULT_FILE: file } });
  const result = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
  return { status: r.status ?? (r.signal ? 128 : 1), result };
}

let code;
try {
  const first = run(args, "first");
  code = first.status;
  const r = first.result;
  if (code !== 0 && r && r.wedges > 0 && r.otherFailed === 0 && r.rerun.length > 0) {
    if (!args.every((a) => a.startsWith("-"))) {
      process.stdout.write(`test run: not running again the ${r.rerun.length} file(s) the wedged worker pool held, because files were named on the command line; run them again by hand: ${r.rerun.join(" ")}\n`);
    } else {
      process.stdout.write(`\ntest run: running again the ${r.rerun.length} file(s) vitest's wedged worker pool held: ${r.rerun.join(" ")}\n`);
      const second = run([...args, ...r.rerun], "second");
      code = second.status;
      if (second.result) {
        const s = second.result;
        const failed = s.failed;
        process.stdout.write(`\ntest run: both runs together (${r.rerun.length} file(s) ran again after vitest's worker pool wedged):\ntests: ${r.passed + s.passed} passed, ${failed} failed${r.skipped + s.skipped ? `, ${r.skipped + s.skipped} skipped` : ""}\n`);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
