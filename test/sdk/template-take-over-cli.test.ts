/**
 * `--take-over` in `qkit template plan --json`: the steps that take a qube or
 * a global property from another stack say so (`risk: "take-over"` on the
 * qube's ownership step, `takeOverFrom` on every step that takes something),
 * as the text marks them `take over from stack 'X' ⚠`. An `--adopt` of a qube
 * no stack owns is no take-over.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SimulatorServer } from "@qubes-kit/sdk/sim";
import { laptopOnSimulator } from "../helpers/laptop-sim.js";
import { runQkit } from "../helpers/qkit.js";

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });

interface Step {
  id: string;
  kind: string;
  risk: string;
  before: string | null;
  after: string | null;
  takeOverFrom?: string;
}

beforeAll(async () => {
  ({ dir, server, env } = await laptopOnSimulator("qkit-takeover-"));
});

afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("plan --json marks a take-over", () => {
  it("an --adopt of unowned qubes is no take-over", async () => {
    const r = await qkit("template", "plan", "laptop.qubes.yaml", "--adopt", "--json");
    expect(r.err).toBe("");
    const steps = JSON.parse(r.out).steps as Step[];
    const adopt = steps.find((s) => s.id === "work.adopt")!;
    expect(adopt).toMatchObject({ kind: "adopt", risk: "none", before: null, after: "laptop" });
    expect(steps.filter((s) => s.takeOverFrom !== undefined || s.risk === "take-over")).toEqual([]);
  });

  it("a qube and global properties taken from another stack", async () => {
    expect((await qkit("template", "apply", "laptop.qubes.yaml", "--adopt", "--yes")).code).toBe(2);
    // `work` and the globals updatevm (another value) and default_template (the same value) are stack laptop's.
    fs.writeFileSync(path.join(dir, "other.qubes.yaml"), "qkit: 1\nstack: other\nglobal:\n  updatevm: sys-net\n  default_template: debian-13-xfce\nqubes:\n  work:\n    class: AppVM\n    label: blue\n");
    const refused = await qkit("template", "plan", "other.qubes.yaml", "--json");
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.out).errors.map((e: { code: string }) => e.code)).toEqual(["owned-by-other-stack", "owned-by-other-stack", "owned-by-other-stack"]);

    const r = await qkit("template", "plan", "other.qubes.yaml", "--take-over", "--json");
    expect([r.code, r.err]).toEqual([0, ""]);
    const steps = JSON.parse(r.out).steps as Step[];
    const byId = new Map(steps.map((s) => [s.id, s]));
    expect(byId.get("work.adopt")).toMatchObject({ kind: "adopt", risk: "take-over", takeOverFrom: "laptop", before: "laptop", after: "other" });
    // The global whose value changes, and stack laptop's record that drops both globals.
    expect(byId.get("global.updatevm")).toMatchObject({ kind: "set-global", before: "sys-firewall", after: "sys-net", takeOverFrom: "laptop" });
    expect(byId.get("global.keys-laptop")).toMatchObject({ kind: "record-keys", takeOverFrom: "laptop" });
    // This stack's own record takes nothing from anyone.
    expect(byId.get("global.keys")!.takeOverFrom).toBeUndefined();
    expect(steps.filter((s) => s.takeOverFrom !== undefined).map((s) => s.id).sort()).toEqual(["global.keys-laptop", "global.updatevm", "work.adopt"]);

    const text = await qkit("template", "plan", "other.qubes.yaml", "--take-over");
    expect(text.out).toMatch(/\n {2}~ qube +work +take over from stack 'laptop' ⚠\n/);
    expect(text.out).toMatch(/\n {6}~ updatevm +sys-firewall → sys-net {4}⚠ take over from stack 'laptop'\n/);
  });
});
