/**
 * An error on a bundle's line says which instance it was read for: `template check` prints the
 * instance's `use:` site under it (`note:`), and `--json` gives it as `related` (design §9: errors
 * point at both the use site and the bundle line).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

describe("template check: errors inside a bundle instance", () => {
  it("name the instance's use: site, in text and JSON", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qkit-bundle-rel-"));
    mkdirSync(join(dir, "inc"));
    writeFileSync(join(dir, "inc", "mem.qubes.yaml"), "qkit: 1\nbundle: mem\nparams:\n  name: { type: name }\n  size: { type: int, default: 400 }\nqubes:\n  ${name}:\n    class: AppVM\n    template: debian-12\n    label: red\n    memory: ${size}\n");
    writeFileSync(join(dir, "s.qubes.yaml"), "qkit: 1\nstack: s\nuse:\n  - bundle: inc/mem.qubes.yaml\n    as: good\n    with: { name: q1 }\n  - bundle: inc/mem.qubes.yaml\n    as: bad\n    with: { name: q2, size: -4 }\n");
    const r = await runQkit(["template", "check", "s.qubes.yaml"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.out).toContain("inc/mem.qubes.yaml:11:13: error[invalid-property-value]: memory must be positive (QubesPropertyValueError)\n  help: qubesd refuses this value for memory\n  note: in bundle instance bad (inc/mem.qubes.yaml): s.qubes.yaml:7:5\n");
    const j = await runQkit(["template", "check", "s.qubes.yaml", "--json"], { cwd: dir });
    const diags = (JSON.parse(j.out) as { files: { diagnostics: { code: string; related?: unknown }[] }[] }).files.flatMap((f) => f.diagnostics);
    expect(diags.find((d) => d.code === "invalid-property-value")!.related).toEqual([{ file: "s.qubes.yaml", line: 7, column: 5, message: "in bundle instance bad (inc/mem.qubes.yaml)" }]);
  });

  it("template plan lists a stack's errors with their help, without the notes about qubes the machine must have", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qkit-plan-errors-"));
    writeFileSync(join(dir, "e.qubes.yaml"), "qkit: 1\nstack: e\nqubes:\n  a1:\n    class: AppVM\n    template: some-tpl\n    label: red\n    memory: -5\n");
    // The stack is refused before any connection is made.
    const r = await runQkit(["template", "plan", "e.qubes.yaml", "--socket", join(dir, "none.sock")], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.out).toBe("e.qubes.yaml:8:13: error[invalid-property-value]: memory must be positive (QubesPropertyValueError)\n  help: qubesd refuses this value for memory\n");
    expect(r.err).toBe("qkit template plan: 1 error in the stack; nothing was changed [invalid-stack]\n");
  });
});
