/**
 * The catalogue's direction of each service, as `qkit flow` answers it: a
 * policy with the one rule `SERVICE * CALLER TARGET allow` on a system with no
 * network and no devices, and the question "can data move from CALLER to
 * TARGET" and back (data-driven: `test/fixtures/flow/catalogue/cases.json`,
 * each case with the reason from the Qubes documentation or the upstream
 * policy). Every built-in entry's note says why.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { BUILTIN_SERVICE_FLOWS } from "@qubes-kit/language";
import { runQkit } from "../helpers/qkit.js";

const cases = JSON.parse(readFileSync(fileURLToPath(new URL("../fixtures/flow/catalogue/cases.json", import.meta.url)), "utf8")) as {
  service: string;
  caller: string;
  target: string;
  flows: string[];
  why: string;
}[];
const root = mkdtempSync(join(tmpdir(), "qkit-flow-cat-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const system = { domains: { dom0: { type: "AdminVM", tags: [], netvm: null }, work: { type: "AppVM", tags: [], netvm: null }, vault: { type: "AppVM", tags: [], netvm: null } } };

describe("the flow catalogue's directions", () => {
  it.each(cases)("$service from $caller to $target: $flows ($why)", async (c) => {
    const dir = join(root, c.service);
    mkdirSync(join(dir, "policy.d"), { recursive: true });
    writeFileSync(join(dir, "policy.d", "30-one.policy"), `${c.service} * ${c.caller} ${c.target} allow\n`);
    writeFileSync(join(dir, "system.json"), JSON.stringify(system));
    const inputs = ["--policy-dir", "policy.d", "--system", "system.json"];
    const forward = await runQkit(["flow", c.caller, c.target, ...inputs], { cwd: dir });
    const backward = await runQkit(["flow", c.target, c.caller, ...inputs], { cwd: dir });
    expect(forward.err).toBe("");
    expect(backward.err).toBe("");
    const got = [...(forward.code === 0 ? ["caller → target"] : []), ...(backward.code === 0 ? ["target → caller"] : [])];
    expect([forward.code, backward.code].every((x) => x === 0 || x === 1)).toBe(true);
    expect(got).toEqual(c.flows);
  });

  it("every Admin API entry is marked control, and every built-in entry has a note", () => {
    for (const e of BUILTIN_SERVICE_FLOWS) {
      expect(e.note.length, e.pattern).toBeGreaterThan(10);
      if (e.pattern.startsWith("admin.")) expect([e.pattern, e.control]).toEqual([e.pattern, true]);
    }
  });
});
