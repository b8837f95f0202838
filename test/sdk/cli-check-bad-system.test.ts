/**
 * `qkit policy check --system FILE` refuses a model whose qube entries are not
 * objects (exit 2, `[bad-system-model]`, the audit commands' wording) in every
 * format, instead of reporting internal errors of the rules that read them;
 * the language server says it in its system-model status.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const ENTRIES: Array<[string, unknown, string]> = [
  ["null", null, "null"],
  ["a string", "AppVM", '"AppVM"'],
  ["a list", ["AppVM"], '["AppVM"]'],
  ["a number", 3, "3"],
];

function workspace(entry: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), "qkit-bad-system-"));
  mkdirSync(join(dir, "policy.d"));
  writeFileSync(join(dir, "policy.d", "30-user.policy"), "qubes.Filecopy * @tag:x @type:AppVM allow\nqubes.Filecopy * work @dispvm:foo allow\n");
  const system = {
    domains: {
      dom0: { internal: null, tags: [], type: "AdminVM", template_for_dispvms: false, default_dispvm: null, icon: "adminvm-black", label: "0x000000", guivm: null, relayvm: null, transport_rpc: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000" },
      work: { internal: null, tags: [], type: "AppVM", template_for_dispvms: false, default_dispvm: null, icon: "appvm-blue", label: "0x3465a4", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: "6c2f6a4e-3b7a-4d7e-9d43-4d3c1f5a0a01" },
      vault: entry,
    },
  };
  writeFileSync(join(dir, "system.json"), JSON.stringify(system));
  return dir;
}

describe("qkit policy check --system with a malformed qube", () => {
  for (const [what, entry, shown] of ENTRIES) {
    for (const format of ["text", "json", "sarif", "github"]) {
      it(`refuses a qube that is ${what} (--format ${format})`, async () => {
        const dir = workspace(entry);
        const r = await runQkit(["policy", "check", "--format", format, "--system", "system.json", "policy.d"], { cwd: dir });
        expect(r.code).toBe(2);
        expect(r.out).toBe("");
        expect(r.err).toBe(
          `qkit policy check: the system model \`system.json\`: qube \`vault\` is ${shown}, not an object of properties (\`type\`, \`tags\`, \`template_for_dispvms\`, ...); fix the entry or make the model again with \`qkit system snapshot\` [bad-system-model]\n`,
        );
      });
    }
  }

  it("checks a well-formed model as before", async () => {
    const dir = workspace({ internal: null, tags: ["x"], type: "AppVM", template_for_dispvms: false, default_dispvm: null, icon: "appvm-black", label: "0x000000", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Halted", uuid: "6c2f6a4e-3b7a-4d7e-9d43-4d3c1f5a0a02" });
    const r = await runQkit(["policy", "check", "--system", "system.json", "policy.d"], { cwd: dir });
    expect(r.err).not.toContain("internal-error");
    expect(r.err + r.out).not.toContain("bad-system-model");
  });
});
