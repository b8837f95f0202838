/**
 * Every command that reads the live system reports a qubesd it cannot reach
 * alike: one line in the connection's wording with its code, exit 2
 * (`policy check --system live` as the auditor's commands), and `--timeout`
 * is milliseconds everywhere.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const fixtures = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "qkit-audit-live-fail-"));
const missing = join(dir, "nonexist.sock");
const silent = join(dir, "silent.sock");
let server: Server;
const sockets: Socket[] = [];

beforeAll(async () => {
  // A qubesd that accepts the connection and never answers.
  server = createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => server.listen(silent, r));
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const COMMANDS: [string, string[]][] = [
  ["policy check", ["policy", "check", "demo/policy.d", "--system", "live"]],
  ["policy who-can", ["policy", "who-can", "qubes.Filecopy", "--policy-dir", "demo/policy.d", "--system", "live"]],
  ["policy what-can", ["policy", "what-can", "work", "--policy-dir", "demo/policy.d", "--system", "live"]],
  ["policy diff", ["policy", "diff", "demo/policy.d", "demo-edited/policy.d", "--system", "live"]],
];

describe("an unreachable live system", () => {
  it.each(COMMANDS)("%s: no socket is [connect-failed], exit 2, one line naming the socket", async (name, argv) => {
    const r = await runQkit(argv, { cwd: fixtures, env: { QUBESD_SOCKET: missing } });
    expect(r.code).toBe(2);
    expect(r.err).toBe(`qkit ${name}: cannot connect to qubesd at \`${missing}\`: No such file or directory; is qubesd (or \`qkit sim serve --socket ${missing}\`) running? check QUBESD_SOCKET [connect-failed]\n`);
    expect(r.out).toBe("");
  });

  it.each(COMMANDS)("%s: --timeout is milliseconds: a silent qubesd is [timeout], exit 2", async (name, argv) => {
    const t0 = Date.now();
    const r = await runQkit([...argv, "--socket", silent, "--timeout", "300"], { cwd: fixtures });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`^qkit ${name}: [^\\n]*300 ms[^\\n]* \\[timeout\\]\\n$`));
    // Read as milliseconds: well under the 300 seconds a SECONDS reading would wait.
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it("policy check's usage says --timeout MS, as the other commands", async () => {
    const r = await runQkit(["policy", "check", "--help"], { cwd: fixtures });
    expect(r.out).toMatch(/--timeout MS/);
    expect(r.out).not.toMatch(/--timeout SECONDS/);
  });
});
