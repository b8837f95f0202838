/**
 * Every command that reads a system model file judges it alike: a model whose
 * bytes are not UTF-8 is refused with `[not-utf8]` (qubesd writes it in
 * UTF-8; read with U+FFFD, a qube's name would be one no policy names), and
 * a qube whose tags are not a list of names with `[bad-system-model]` (the
 * template tools: `[invalid-system]`), exit 2, one line on standard error,
 * nothing on standard output. `policy eval` reads tags as the engine does
 * (it decides such a model exactly), so only the bytes are refused there.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const qube = (type: string, uuid: string, tags: unknown = []) => ({ internal: null, tags, type, template_for_dispvms: false, default_dispvm: null, icon: "appvm-blue", label: "0x3465a4", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid });

function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), "qkit-model-alike-"));
  mkdirSync(join(dir, "policy.d"));
  writeFileSync(join(dir, "policy.d", "30-user.policy"), "qubes.Filecopy * work vault allow\nqubes.Filecopy * @anyvm @anyvm deny\n");
  const domains = { dom0: qube("AdminVM", "00000000-0000-0000-0000-000000000000"), work: qube("AppVM", "6c2f6a4e-3b7a-4d7e-9d43-4d3c1f5a0a01"), vault: qube("AppVM", "6c2f6a4e-3b7a-4d7e-9d43-4d3c1f5a0a02") };
  // A qube named `wörk` in Latin-1: byte 0xf6 where UTF-8 needs two.
  const text = JSON.stringify({ domains: { ...domains, "w\u00f6rk": qube("AppVM", "6c2f6a4e-3b7a-4d7e-9d43-4d3c1f5a0a03") } });
  writeFileSync(join(dir, "latin1.json"), Buffer.from(text, "latin1"));
  writeFileSync(join(dir, "tags.json"), JSON.stringify({ domains: { ...domains, vault: qube("AppVM", "6c2f6a4e-3b7a-4d7e-9d43-4d3c1f5a0a02", "work") } }));
  writeFileSync(join(dir, "laptop.qubes.yaml"), "format: 1\nstack: s\nqubes:\n  work: { class: AppVM }\n");
  return dir;
}

// [command words before `--system FILE`, after it, whether the tags are refused, the code they are refused with]
const COMMANDS: [string[], string[], boolean, string][] = [
  [["policy", "check", "policy.d"], [], true, "bad-system-model"],
  [["policy", "diff", "policy.d", "policy.d"], [], true, "bad-system-model"],
  [["policy", "who-can", "qubes.Filecopy", "--policy-dir", "policy.d"], [], true, "bad-system-model"],
  [["policy", "what-can", "work", "--policy-dir", "policy.d"], [], true, "bad-system-model"],
  [["policy", "table", "qubes.Filecopy", "--policy-dir", "policy.d"], [], true, "bad-system-model"],
  [["policy", "flip", "qubes.Filecopy", "work", "vault", "--policy-dir", "policy.d"], [], true, "bad-system-model"],
  [["flow", "work", "vault", "--policy-dir", "policy.d"], [], true, "bad-system-model"],
  [["policy", "eval", "--policy-dir", "policy.d"], ["qubes.Filecopy", "work", "vault"], false, ""],
  [["template", "whatif", "laptop.qubes.yaml"], [], true, "invalid-system"],
];

describe("a system model file, judged alike by every command", () => {
  it.each(COMMANDS)("%j: bytes that are not UTF-8 are refused", async (before, after) => {
    const dir = workspace();
    const r = await runQkit([...before, "--system", "latin1.json", ...after], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err.split("\n").filter(Boolean)).toHaveLength(1);
    expect(r.err).toMatch(/latin1\.json.* is not UTF-8 text: byte 0xf6 at offset \d+ \(invalid start byte\).*\[not-utf8\]\n$/);
  });

  it.each(COMMANDS)("%j: tags that are not a list of names", async (before, after, refused, code) => {
    const dir = workspace();
    const r = await runQkit([...before, "--system", "tags.json", ...after], { cwd: dir });
    if (!refused) {
      expect(r.err).not.toContain("bad-system-model");
      expect([0, 1, 3]).toContain(r.code);
      return;
    }
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toBe(`${r.err.split(":")[0]}: the system model \`tags.json\`: qube \`vault\` has tags "work", not a list of names; fix the entry or make the model again with \`qkit system snapshot\` [${code}]\n`);
  });
});
