/**
 * A class change replaces the qube only with `--allow-replace` (design §11.2): removed, then
 * created again under its name as declared, one `-/+` block in the plan, never a protected qube,
 * refused while another qube still uses it. Over `qkit sim serve`, through the CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Qubes } from "@qubes-kit/sdk";
import { simWorkspace, type SimWorkspace } from "../helpers/sim-workspace.js";

let ws: SimWorkspace;
let socket: string;
const qkit = (...argv: string[]) => ws.qkit(...argv);
const write = (f: string, text: string) => ws.write(f, text);

beforeAll(async () => {
  ws = await simWorkspace("qkit-replace-");
  socket = ws.socket;
});

afterAll(() => ws.stop());

const appvm = (name: string, extra = "") => `  ${name}:\n    class: AppVM\n    template: debian-12\n    label: red\n    netvm: none\n${extra}`;
const standalone = (name: string, extra = "") => `  ${name}:\n    class: StandaloneVM\n    source: { empty: true }\n    label: blue\n    netvm: none\n${extra}`;
const stack = (name: string, ...qubes: string[]) => `qkit: 1\nstack: ${name}\nqubes:\n${qubes.join("")}`;

describe("class change (--allow-replace)", () => {
  it("is an error without the flag, and with it one -/+ block: removed, then created as declared", async () => {
    write("r1.qubes.yaml", stack("r1", appvm("r1-q", "    memory: 600\n")));
    expect((await qkit("template", "apply", "r1.qubes.yaml", "--yes")).code).toBe(0);
    write("r1.qubes.yaml", stack("r1", standalone("r1-q", "    memory: 700\n")));

    const refused = await qkit("template", "plan", "r1.qubes.yaml");
    expect(refused.code).toBe(1);
    expect(refused.out).toContain(
      "r1.qubes.yaml:4:3: error[class-change]: qube 'r1-q' is a AppVM on the system but declared as StandaloneVM; a class change replaces the qube (removed, then created again: its volumes and their data are lost): use --allow-replace to replace it, or keep its class, or use another name",
    );

    const plan = await qkit("template", "plan", "r1.qubes.yaml", "--allow-replace");
    expect(plan.code).toBe(0);
    expect(plan.out).toContain("  -/+ StandaloneVM r1-q  label blue · netvm none    ⚠ replaces the AppVM: its volumes and their data are lost\n      + memory              700\n");
    expect(plan.out).toContain("Plan: 1 to create, 0 to change, 1 to destroy");
    const json = JSON.parse((await qkit("template", "plan", "r1.qubes.yaml", "--allow-replace", "--json")).out) as { steps: Array<{ id: string; kind: string; replace?: boolean; requires: string[] }>; options: { allowReplace?: boolean } };
    const ids = json.steps.map((s) => s.id);
    const remove = json.steps.find((s) => s.id === "r1-q.remove")!;
    const create = json.steps.find((s) => s.id === "r1-q.create")!;
    expect([remove.kind, remove.replace, create.requires.includes("r1-q.remove"), json.options.allowReplace]).toEqual(["remove", true, true, true]);
    expect(ids.indexOf("r1-q.remove")).toBeLessThan(ids.indexOf("r1-q.create"));

    const applied = await qkit("template", "apply", "r1.qubes.yaml", "--allow-replace", "--yes");
    expect([applied.code, applied.err]).toEqual([0, ""]);
    const q = Qubes.local(socket).qube("r1-q");
    expect([await q.get("klass"), await q.get("label"), await q.get("memory")]).toEqual(["StandaloneVM", "blue", 700]);
    expect(await q.features.get("x-qkit-stack")).toBe("r1");
    const again = await qkit("template", "plan", "r1.qubes.yaml", "--detailed-exitcode");
    expect(again.code).toBe(0);
    expect(again.out).toContain("No changes. The system matches the stack.\n");
  });

  it("never replaces a protected qube", async () => {
    write("r2.qubes.yaml", stack("r2", appvm("r2-q", "    protect: true\n")));
    expect((await qkit("template", "apply", "r2.qubes.yaml", "--yes")).code).toBe(0);
    write("r2.qubes.yaml", stack("r2", standalone("r2-q", "    protect: true\n")));
    const plan = await qkit("template", "plan", "r2.qubes.yaml", "--allow-replace");
    expect(plan.code).toBe(1);
    expect(plan.out).toContain("error[protected]: qube 'r2-q' is a AppVM on the system but declared as StandaloneVM; a class change replaces the qube and loses its data, and it is protected: remove `protect: true` and use --allow-replace, or keep its class");
  });

  it("is refused while another qube uses it, with its users", async () => {
    const net = (cls: string) => (cls === "AppVM" ? appvm("r3-net", "    provides_network: true\n") : standalone("r3-net", "    provides_network: true\n"));
    const client = `  r3-client:\n    class: AppVM\n    template: debian-12\n    label: red\n    netvm: r3-net\n`;
    write("r3.qubes.yaml", stack("r3", net("AppVM"), client));
    expect((await qkit("template", "apply", "r3.qubes.yaml", "--yes")).code).toBe(0);
    write("r3.qubes.yaml", stack("r3", net("StandaloneVM"), client));
    const plan = await qkit("template", "plan", "r3.qubes.yaml", "--allow-replace");
    expect(plan.code).toBe(1);
    expect(plan.out).toMatch(/error\[removal-in-use\]: .*r3-net.*r3-client \(netvm\)/);
  });
});
