/**
 * Colour rules of `qkit policy check`: colour only on a terminal, never with
 * `NO_COLOR`, always with `FORCE_COLOR` (which overrides `NO_COLOR`, as in
 * Node), never in the machine formats; and the same exit status either way.
 * The built CLI runs under a real pseudo-terminal (`script`) where one exists,
 * and in process with a stream that says it is a terminal.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { main } from "../../sdk/src/cli/main.js";

const CASE = fileURLToPath(new URL("../fixtures/check/errors/", import.meta.url));
const CLI = fileURLToPath(new URL("../../sdk/dist/cli.js", import.meta.url));
const ESC = "\x1b[";

async function inProcess(args: string[], env: NodeJS.ProcessEnv, tty: boolean): Promise<{ code: number; out: string; err: string }> {
  const stdout = Object.assign(new PassThrough(), { isTTY: tty });
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d) => (out += d));
  stderr.on("data", (d) => (err += d));
  const code = await main(["policy", "check", ...args], { stdout, stderr, stdin: new PassThrough(), env, cwd: CASE });
  return { code, out, err };
}

describe("qkit policy check colour", () => {
  it.each([
    ["a terminal", {}, true, true],
    ["a pipe", {}, false, false],
    ["a terminal with NO_COLOR", { NO_COLOR: "1" }, true, false],
    ["a pipe with FORCE_COLOR", { FORCE_COLOR: "1" }, false, true],
    ["a terminal with FORCE_COLOR=0", { FORCE_COLOR: "0" }, true, false],
    ["a pipe with FORCE_COLOR and NO_COLOR", { FORCE_COLOR: "1", NO_COLOR: "1" }, false, true],
    ["a dumb terminal", { TERM: "dumb" }, true, false],
  ])("on %s", async (_what, env, tty, colour) => {
    const r = await inProcess(["policy.d"], env, tty);
    expect(r.code).toBe(1);
    expect(r.out.includes(ESC)).toBe(colour);
    // Without the escapes, the same text.
    const plain = await inProcess(["policy.d"], {}, false);
    expect(r.out.replace(/\x1b\[[0-9;]*m/g, "")).toBe(plain.out);
  });

  it.each(["json", "sarif", "github"])("never in --format %s, even with FORCE_COLOR on a terminal", async (format) => {
    const r = await inProcess(["--format", format, "policy.d"], { FORCE_COLOR: "1" }, true);
    expect(r.code).toBe(1);
    expect(r.out).not.toContain(ESC);
  });

  it("never in a file written with --output", async () => {
    const { mkdtempSync, readFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const file = join(mkdtempSync(join(tmpdir(), "qkit-color-")), "out.txt");
    const r = await inProcess(["--output", file, "policy.d"], { FORCE_COLOR: "1" }, true);
    expect(r.code).toBe(1);
    expect(readFileSync(file, "utf8")).toContain("error[invalid-action]");
    expect(readFileSync(file, "utf8")).not.toContain(ESC);
  });

  it.runIf(existsSync("/usr/bin/script") && process.platform === "linux")("the built CLI under a real terminal: colour, unless NO_COLOR", () => {
    const run = (env: NodeJS.ProcessEnv) => {
      const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} policy check policy.d`;
      const base = { ...process.env };
      delete base["FORCE_COLOR"];
      delete base["NO_COLOR"];
      return spawnSync("/usr/bin/script", ["-qefc", cmd, "/dev/null"], { cwd: CASE, env: { ...base, TERM: "xterm", ...env }, encoding: "utf8" });
    };
    const tty = run({});
    expect(tty.status).toBe(1);
    expect(tty.stdout).toContain(`${ESC}1;31merror[invalid-action]`);
    const no = run({ NO_COLOR: "1" });
    expect(no.status).toBe(1);
    expect(no.stdout).toContain("error[invalid-action]");
    expect(no.stdout).not.toContain(ESC);
    const piped = spawnSync(process.execPath, [CLI, "policy", "check", "policy.d"], { cwd: CASE, env: { PATH: process.env["PATH"] ?? "" }, encoding: "utf8" });
    expect(piped.status).toBe(1);
    expect(piped.stdout).not.toContain(ESC);
    const forced = spawnSync(process.execPath, [CLI, "policy", "check", "policy.d"], { cwd: CASE, env: { PATH: process.env["PATH"] ?? "", FORCE_COLOR: "1" }, encoding: "utf8" });
    expect(forced.stdout).toContain(ESC);
  });
});
