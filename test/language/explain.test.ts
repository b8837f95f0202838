/**
 * `qkit policy explain` against the demo machine: each request of
 * `fixtures/language/explain/requests.txt` has its expected explanation in
 * `NAME.txt`. The decisions in them agree with the real engine (see
 * `test/fixtures/demo/`); the text around them is ours.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const dir = fileURLToPath(new URL("../fixtures/language/explain/", import.meta.url));
const demo = fileURLToPath(new URL("../../examples/demo/", import.meta.url));
const cli = fileURLToPath(new URL("../../sdk/dist/cli.js", import.meta.url));

const cases = readFileSync(dir + "requests.txt", "utf8")
  .split("\n")
  .filter((l) => l.trim() && !l.startsWith("#"))
  .map((l) => l.split("|").map((x) => x.trim()) as [string, string]);

describe("qkit policy explain", () => {
  it.each(cases)("%s", (name, args) => {
    const r = spawnSync(process.execPath, [cli, "policy", "explain", "--policy-dir", demo + "policy.d", "--system", demo + "system.json", ...args.split(/\s+/)], { encoding: "utf8" });
    // A target that is not a qube of the system is warned about (the daemon makes it @default).
    const warnings = name === "no-such-target" ? "qkit policy explain: warning: target `no-such-qube` is not a qube of the system in `" + demo + "system.json`: the daemon treats it as @default [unknown-qube]\n" : "";
    expect(r.stderr).toBe(warnings);
    expect(r.stdout).toBe(readFileSync(`${dir}${name}.txt`, "utf8"));
  });

  it("prints JSON with --json", () => {
    const r = spawnSync(process.execPath, [cli, "policy", "explain", "--policy-dir", demo + "policy.d", "--system", demo + "system.json", "qubes.Filecopy", "work", "vault", "--json"], { encoding: "utf8" });
    const x = JSON.parse(r.stdout);
    expect(x.decision).toMatchObject({ ok: true, action: "ask", rule: { file: "30-user.policy", line: 7 } });
    expect(x.deciding_rule).toMatchObject({ file: "30-user.policy", line: 7, text: "qubes.Filecopy * work vault ask default_target=vault" });
    expect(x.ask_contributions[0]).toMatchObject({ effect: "add", targets: ["vault"] });
  });
});
