/**
 * `qkit policy check` writing a large report to a pipe, as the built CLI
 * does for a user (`qkit policy check DIR | less`, `| head`): standard
 * output is written synchronously as strings, waits for a slow reader
 * (a non-blocking pipe's partial writes and `EAGAIN`), and stops quietly,
 * with the check's exit status, when the reader goes away (`EPIPE`).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("../../sdk/dist/cli.js", import.meta.url));

/** A policy whose check reports a few thousand shadowed rules (about 2 MB of text, with non-ASCII source lines). */
function bigPolicy(): string {
  const dir = mkdtempSync(join(tmpdir(), "qkit-pipe-"));
  mkdirSync(join(dir, "policy.d"));
  const lines = ["qubes.Filecopy * @anyvm @anyvm deny"];
  for (let i = 0; i < 4000; i++) lines.push(`qubes.Filecopy\t*\twörk-${i}\tvault-${i % 50}\tallow`);
  writeFileSync(join(dir, "policy.d", "30-big.policy"), lines.join("\n") + "\n");
  return dir;
}

describe("qkit policy check to a pipe", () => {
  let dir = "";
  let expected = "";
  beforeAll(() => {
    dir = bigPolicy();
    const file = join(dir, "report.txt");
    const r = spawnSync(process.execPath, [CLI, "policy", "check", "--output", file, "policy.d"], { cwd: dir, encoding: "utf8" });
    expect(r.status).toBe(0);
    expected = readFileSync(file, "utf8");
    expect(expected.length).toBeGreaterThan(1_000_000);
    expect(expected).toContain("wörk-3999");
  });

  it("a slow reader gets every byte, the same as --output writes", async () => {
    const child = spawn(process.execPath, [CLI, "policy", "check", "policy.d"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    // Read with pauses: the pipe fills up and the writer must wait for the reader.
    child.stdout.on("data", (d: Buffer) => {
      chunks.push(d);
      if (chunks.length % 4 === 0) {
        child.stdout.pause();
        setTimeout(() => child.stdout.resume(), 15);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(Buffer.concat(chunks).toString("utf8")).toBe(expected);
  }, 60_000);

  it("a reader that goes away (| head) ends the check quietly, with its exit status", () => {
    // The check's own status (bash's PIPESTATUS), not head's; nothing on standard error.
    const r = spawnSync("bash", ["-c", `"${process.execPath}" "${CLI}" policy check policy.d 2>err.txt | head -c 1000 > /dev/null; echo "\${PIPESTATUS[0]}"`], { cwd: dir, encoding: "utf8" });
    expect(r.stdout.trim()).toBe("0");
    expect(readFileSync(join(dir, "err.txt"), "utf8")).toBe("");
  }, 60_000);
});
