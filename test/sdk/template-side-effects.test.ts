/**
 * What qubesd changes on its own when a plan runs, shown by `plan` and
 * `apply` from the rehearsal: qubes on the default netvm follow a new
 * `default_netvm`, and `service.clocksync` moves from the old clock qube to
 * the new one. The apply on the simulator then makes exactly those changes.
 * Also: `apply` exits 2 while changes stay deferred (running qubes).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Qubes, UnixSocketTransport } from "@qubes-kit/sdk";
import type { SimulatorServer } from "@qubes-kit/sdk/sim";
import { laptopOnSimulator } from "../helpers/laptop-sim.js";
import { runQkit } from "../helpers/qkit.js";

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });

beforeAll(async () => {
  ({ dir, server, env } = await laptopOnSimulator("qkit-effects-"));
});

afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The qubes whose netvm is at its default and is `netvm`, read through the SDK. */
async function followers(qubes: Qubes, netvm: string): Promise<string[]> {
  const out: string[] = [];
  for (const q of await qubes.list()) {
    if (q.class === "AdminVM") continue;
    const p = await qubes.qube(q.name).getProperty("netvm");
    if (p.isDefault && p.value === netvm) out.push(q.name);
  }
  return out.sort();
}

describe("qubesd's own changes in plan and apply", () => {
  it("apply exits 2 while changes wait for running qubes, and says so", async () => {
    const first = await qkit("template", "apply", "laptop.qubes.yaml", "--adopt", "--yes");
    expect([first.code, first.err]).toEqual([2, ""]);
    expect(first.out).toMatch(/; 3 deferred, so the system does not match the stack yet \(stop the qubes named, or use --restart=if-needed, and apply again\)\.\n$/);
    const again = await qkit("template", "apply", "laptop.qubes.yaml", "--yes");
    expect([again.code, again.out.split("\n").at(-2)]).toEqual([2, "Nothing to apply now: 3 steps deferred; the system does not match the stack yet."]);
  });

  it("lists the qubes that follow a new default_netvm and the clocksync move, then apply makes exactly those changes", async () => {
    const file = path.join(dir, "laptop.qubes.yaml");
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("clockvm: sys-net", "clockvm: sys-firewall").replace("default_netvm: sys-firewall", "default_netvm: sys-net"));
    const qubes = new Qubes({ transport: new UnixSocketTransport({ path: server.path }) });
    const follow = await followers(qubes, "sys-firewall");
    expect(follow.length).toBeGreaterThan(0);

    const json = await qkit("template", "plan", "laptop.qubes.yaml", "--json");
    expect(json.err).toBe("");
    const effects = JSON.parse(json.out).sideEffects as { qube: string; key: string; before: string; after: string }[];
    // In qube name order.
    expect(effects).toEqual(
      [
        ...follow.map((qube) => ({ qube, key: "netvm", before: "default (sys-firewall)", after: "default (sys-net)" })),
        { qube: "sys-firewall", key: "feature service.clocksync", before: "absent", after: '"1"' },
        { qube: "sys-net", key: "feature service.clocksync", before: '"1"', after: "absent" },
      ].sort((a, b) => (a.qube < b.qube ? -1 : a.qube > b.qube ? 1 : 0)),
    );

    const text = await qkit("template", "plan", "laptop.qubes.yaml");
    expect(text.out).toContain(
      `qubesd also changes, on its own (seen in the rehearsal):\n  ~ netvm default (sys-firewall) → default (sys-net): ${follow.join(", ")}\n  ~ feature service.clocksync absent → "1": sys-firewall\n  ~ feature service.clocksync "1" → absent: sys-net\n`,
    );

    const applied = await qkit("template", "apply", "laptop.qubes.yaml", "--yes");
    expect(applied.code).toBe(2);
    expect(applied.out).toContain("qubesd also changes, on its own (seen in the rehearsal):\n");
    for (const q of follow) expect((await qubes.qube(q).getProperty("netvm")).value).toBe("sys-net");
    expect(await qubes.qube("sys-firewall").features.get("service.clocksync")).toBe("1");
    expect(await qubes.qube("sys-net").features.get("service.clocksync")).toBeUndefined();
    expect(await followers(qubes, "sys-net")).toEqual(follow);
    expect(await followers(qubes, "sys-firewall")).toEqual([]);
  });

  it("a plan with nothing qubesd changes on its own prints no such block and has an empty list", async () => {
    const file = path.join(dir, "laptop.qubes.yaml");
    const text = fs.readFileSync(file, "utf8");
    const work = "  work:\n    class: AppVM\n    template: debian-13-xfce\n    label: blue\n";
    expect(text).toContain(work);
    fs.writeFileSync(file, text.replace(work, work.replace("label: blue", "label: purple")));
    const json = await qkit("template", "plan", "laptop.qubes.yaml", "--json");
    const plan = JSON.parse(json.out);
    expect(plan.steps.some((s: { key: string }) => s.key === "label")).toBe(true);
    expect(plan.sideEffects).toEqual([]);
    expect((await qkit("template", "plan", "laptop.qubes.yaml")).out).not.toContain("qubesd also changes");
  });

  it("shows a firewall change as the rules removed and added, and apply's progress as the rule counts", async () => {
    const file = path.join(dir, "laptop.qubes.yaml");
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("dsthost=mail.example.com proto=tcp dstports=993", "dsthost=mail.example.com proto=tcp dstports=465"));
    const plan = await qkit("template", "plan", "laptop.qubes.yaml");
    expect(plan.out).toMatch(
      /\n {6}~ firewall +(\d+) rules → \1 rules {4}⚠ grants access\n {10}- action=accept dsthost=mail\.example\.com proto=tcp dstports=993-993\n {10}\+ action=accept dsthost=mail\.example\.com proto=tcp dstports=465-465\n/,
    );
    const applied = await qkit("template", "apply", "laptop.qubes.yaml", "--yes");
    expect(applied.out).toMatch(/\] work\.fw (\d+) rules → \1 rules … ok \d+ ms\n/);
  });

  it("reads the features of a clock qube the stack does not declare, for the clocksync move", async () => {
    // Only a global: neither clock qube is declared here, so their features are read for the plan.
    fs.writeFileSync(path.join(dir, "clock.qubes.yaml"), "qkit: 1\nstack: clock\nglobal:\n  clockvm: sys-net\n");
    const json = await qkit("template", "plan", "clock.qubes.yaml", "--json", "--adopt", "--take-over");
    expect(json.err).toBe("");
    const plan = JSON.parse(json.out);
    expect(plan.scope.focus).toEqual(["sys-firewall", "sys-net"]);
    expect(plan.sideEffects).toEqual([
      { qube: "sys-firewall", key: "feature service.clocksync", before: '"1"', after: "absent" },
      { qube: "sys-net", key: "feature service.clocksync", before: "absent", after: '"1"' },
    ]);
  });

  it("warns when qubesd undoes a setting a step makes, and apply then exits 2 (the system does not match)", async () => {
    // The clock moves back to sys-net while sys-firewall, the clock qube now, declares clocksync: qubesd removes it again.
    const file = path.join(dir, "laptop.qubes.yaml");
    const text = fs.readFileSync(file, "utf8");
    const fw = "    features: { servicevm: true }\n    services: { qubes-updates-proxy: true }\n\n  sys-usb:";
    expect(text).toContain(fw);
    fs.writeFileSync(file, text.replace("clockvm: sys-firewall", "clockvm: sys-net").replace(fw, fw.replace("{ qubes-updates-proxy: true }", "{ qubes-updates-proxy: true, clocksync: true }")));
    const json = JSON.parse((await qkit("template", "plan", "laptop.qubes.yaml", "--json")).out);
    // sys-firewall has clocksync already (qubesd gave it with the clock): no step sets it, the stack declares it.
    const undone = (json.sideEffects as { managed?: true }[]).filter((e) => e.managed);
    expect(undone).toEqual([{ qube: "sys-firewall", key: "feature service.clocksync", before: '"1"', after: "absent", managed: true }]);
    const text2 = await qkit("template", "plan", "laptop.qubes.yaml");
    expect(text2.out).toMatch(/warning\[undone-by-qubesd\]: sys-firewall feature service\.clocksync: the stack declares "1", and qubesd changes it to absent as a consequence of the plan/);
    const applied = await qkit("template", "apply", "laptop.qubes.yaml", "--yes");
    expect(applied.out).toContain("qubesd changed 1 setting of the stack again (warning[undone-by-qubesd] above): the system does not match the stack.\n");
    expect(applied.code).toBe(2);
    // The plan after it wants the setting again: what the warning said.
    const again = JSON.parse((await qkit("template", "plan", "laptop.qubes.yaml", "--json")).out);
    expect(again.steps.some((s: { key: string }) => s.key === "feature service.clocksync")).toBe(true);
  });

  it("has sideEffects null in the JSON when no rehearsal ran", async () => {
    const json = JSON.parse((await qkit("template", "plan", "clock.qubes.yaml", "--json")).out);
    expect(json.errors.length).toBeGreaterThan(0);
    expect(json.sideEffects).toBeNull();
  });

  it("shows a changed policy file as the rules removed and added, marked when it grants", async () => {
    const file = path.join(dir, "laptop.qubes.yaml");
    const text = fs.readFileSync(file, "utf8");
    const rule = "qubes.OpenURL        *  vault    @anyvm    deny";
    expect(text).toContain(rule);
    fs.writeFileSync(file, text.replace(rule, rule.replace("deny", "ask")));
    const plan = await qkit("template", "plan", "laptop.qubes.yaml");
    expect(plan.out).toMatch(/\n {2}~ policy +40-qkit-laptop-machine\.policy +\d+ rules +⚠ grants access\n {10}- qubes\.OpenURL +\* +vault +@anyvm +deny\n {10}\+ qubes\.OpenURL +\* +vault +@anyvm +ask\n/);
    const json = JSON.parse((await qkit("template", "plan", "laptop.qubes.yaml", "--json")).out);
    expect(json.steps.find((s: { kind: string }) => s.kind === "write-policy").diff).toEqual([`- ${rule}`, `+ ${rule.replace("deny", "ask")}`]);
  });
});

