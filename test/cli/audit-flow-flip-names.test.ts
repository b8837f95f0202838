/**
 * Typos in `qkit flow` and `qkit policy flip`, and `@dispvm:X` of no qube in
 * flip and in policy test calls: the names eval and who-can flag, with "did
 * you mean", through the shared check (`callNameProblems`). Data-driven: each
 * case is a command line and the exact warning or refusal lines.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const audit = fileURLToPath(new URL("../fixtures/audit/", import.meta.url));
const IN = ["--policy-dir", "demo/policy.d", "--system", "demo/system.json"];
const dir = mkdtempSync(join(tmpdir(), "qkit-names-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CASES: { name: string; argv: string[]; code: number; lines: string[] }[] = [
  {
    name: "flip: a misspelt service",
    argv: ["policy", "flip", "qubes.Filecpy", "work", "vault", ...IN],
    code: 0,
    lines: ["qkit policy flip: warning: service `qubes.Filecpy` is named by no rule of the policy (only `*` rules decide it); did you mean `qubes.Filecopy`? [unknown-service]"],
  },
  {
    name: "flip: a misspelt source",
    argv: ["policy", "flip", "qubes.Filecopy", "wrk", "vault", ...IN],
    code: 0,
    lines: ["qkit policy flip: warning: source `wrk` is not a qube of the system: the daemon never receives a call from it; check the name; did you mean `work`? [unknown-qube]"],
  },
  {
    name: "flip: @dispvm: of no qube",
    argv: ["policy", "flip", "qubes.OpenInVM", "work", "@dispvm:work-dv", ...IN],
    code: 0,
    lines: ["qkit policy flip: warning: target `@dispvm:work-dv`: `work-dv` is not a qube of the system, so the engine refuses the call; did you mean `work-dvm`? [unknown-qube]"],
  },
  { name: "flip: known names, no warning", argv: ["policy", "flip", "qubes.Filecopy", "work", "vault", ...IN], code: 0, lines: [] },
  {
    name: "flow: a misspelt qube",
    argv: ["flow", "wrk", "vault", ...IN],
    code: 2,
    lines: ["qkit flow: `wrk` is not a qube of the system model (nor @network, nor @dispvm:X of a disposable template); did you mean `work`? [unknown-qube]"],
  },
  {
    name: "flow: a misspelt --avoid",
    argv: ["flow", "work", "vault", "--avoid", "sys-usbb", ...IN],
    code: 2,
    lines: ["qkit flow: --avoid: `sys-usbb` is not a qube of the system model; did you mean `sys-usb`? [unknown-qube]"],
  },
];

describe("typos in flow and flip", () => {
  it.each(CASES)("$name", async (c) => {
    const r = await runQkit(c.argv, { cwd: audit });
    expect(r.err.split("\n").filter((l) => l.startsWith("qkit "))).toEqual(c.lines);
    if (c.code === 2) expect(r.code).toBe(2);
    else expect(r.code).not.toBe(2);
  });

  it("policy test: a call to @dispvm:X of no qube fails with [unknown-qube]", async () => {
    writeFileSync(join(dir, "d.policytest.yaml"), `policy: ${audit}demo/policy.d\nsystem: ${audit}demo/system.json\ntests:\n  - qubes.OpenInVM work @dispvm:nosuch => deny\n`);
    const r = await runQkit(["policy", "test", "d.policytest.yaml"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.out.split("\n")[0]).toBe("FAIL d.policytest.yaml:4: qubes.OpenInVM work -> @dispvm:nosuch: target `@dispvm:nosuch`: `nosuch` is not a qube of the system, so the engine refuses the call [unknown-qube]");
  });
});

describe("flow to or from the outside network on a machine where nothing reaches it", () => {
  // The demo model has no wiring: @network is joined to nothing, so the answer is "no path" (exit 1),
  // after the warning that says why, never a refusal of the name.
  it.each([
    [["flow", "work", "@network"], "no flow from work to @network: no path at all\n"],
    [["flow", "@network", "work"], "no flow from @network to work: no path at all\n"],
    [["flow", "--from", "@network"], "nothing is reachable from @network\n"],
  ])("qkit %j", async (argv, out) => {
    const r = await runQkit([...argv, ...IN], { cwd: audit });
    expect([r.code, r.out]).toEqual([1, out]);
    expect(r.err).toMatch(/^warning: the system model has no netvm, firewall or devices: .* \[flow-no-wiring\]\n$/);
  });
});
