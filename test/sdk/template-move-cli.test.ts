/**
 * A rename (`moved_from: OLD`, design §11.2): the plan clones OLD under the new name (its
 * persistent volumes, settings, features, tags, firewall), moves the users the stack declares
 * over, removes OLD, and is resumable after an apply that stopped half-way. Over
 * `qkit sim serve`, through the CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { calls, Qubes } from "@qubes-kit/sdk";
import { simWorkspace, type SimWorkspace } from "../helpers/sim-workspace.js";

let ws: SimWorkspace;
let sim: Qubes;
const qkit = (...argv: string[]) => ws.qkit(...argv);
const write = (f: string, text: string) => ws.write(f, text);

beforeAll(async () => {
  ws = await simWorkspace("qkit-move-");
  sim = Qubes.local(ws.socket);
});

afterAll(() => ws.stop());

const stack = (name: string, ...qubes: string[]) => `qkit: 1\nstack: ${name}\nqubes:\n${qubes.join("")}`;
const appvm = (name: string, extra = "") => `  ${name}:\n    class: AppVM\n    template: debian-12\n    label: blue\n${extra}`;
const exists = async (name: string) => (await sim.run(calls.vmList())).some((q) => q.name === name);

describe("moved_from", () => {
  it("clones the qube under its new name with its data and settings, removes the old one, and is done", async () => {
    const body = "    netvm: none\n    memory: 600\n    features:\n      foo: bar\n    tags: [a, b]\n    firewall:\n      - action=accept dsthost=example.com\n      - action=drop\n    volumes:\n      private: { size: 3GiB }\n";
    write("m1.qubes.yaml", stack("m1", appvm("m1-old", body)));
    expect((await qkit("template", "apply", "m1.qubes.yaml", "--yes")).code).toBe(0);
    // Settings the stack does not declare move too.
    await sim.qube("m1-old").setProperty("vcpus", 3);
    await sim.qube("m1-old").features.set("other", "kept");
    write("m1.qubes.yaml", stack("m1", appvm("m1-new", `    moved_from: m1-old\n${body.replace("memory: 600", "memory: 700")}`)));

    // A policy file of the machine that names the former name: its rules stop matching (said, with where).
    write("policy.d/30-user.policy", "qubes.Filecopy * m1-old @anyvm deny\nqubes.Gpg * @anyvm @default ask default_target=@dispvm:m1-old\n");
    const plan = await qkit("template", "plan", "m1.qubes.yaml");
    expect([plan.code, plan.err]).toEqual([0, ""]);
    expect(plan.out).toContain("warning[moved-but-named]: qube 'm1-old' moves to 'm1-new', but the policy names 'm1-old' at 30-user.policy:1, 30-user.policy:2: those rules stop matching once it is gone; name 'm1-new' there");
    expect(plan.out).toMatch(
      /\n {2}\+ AppVM {6}m1-new  on debian-12 · label blue · moved from m1-old \(its private volume cloned, its settings copied\)\n {6}~ memory +600 → 700\n {2}- qube {7}m1-old  moved to m1-new: removed once its clone is made and its users use the new name \(its volumes' older revisions are not kept\)\n/,
    );
    expect(plan.out).toContain("Plan: 1 to move, 0 to create, 0 to change, 0 to destroy;");

    const applied = await qkit("template", "apply", "m1.qubes.yaml", "--yes");
    expect([applied.code, applied.err]).toEqual([0, ""]);
    expect(await exists("m1-old")).toBe(false);
    const q = sim.qube("m1-new");
    expect([await q.get("memory"), await q.get("vcpus"), await q.get("netvm"), await q.get("label")]).toEqual([700, 3, null, "blue"]);
    expect([await q.features.get("foo"), await q.features.get("other"), await q.features.get("x-qkit-stack"), await q.features.get("x-qkit-moved-from")]).toEqual(["bar", "kept", "m1", undefined]);
    expect((await q.tags.list()).filter((t) => t === "a" || t === "b").sort()).toEqual(["a", "b"]);
    expect((await sim.run(calls.firewallGet("m1-new"))).length).toBe(2);
    expect((await sim.run(calls.volumeInfo("m1-new", "private"))).size).toBe(3 * 1024 ** 3);

    const again = await qkit("template", "plan", "m1.qubes.yaml", "--detailed-exitcode");
    expect([again.code, again.out.includes("No changes. The system matches the stack.\n")]).toEqual([0, true]);
  });

  it("moves the declared users to the new name first, and refuses while an undeclared one still uses the old", async () => {
    const net = (name: string, extra = "") => appvm(name, `    provides_network: true\n    netvm: none\n${extra}`);
    const client = (netvm: string) => appvm("m2-client", `    netvm: ${netvm}\n`);
    write("m2.qubes.yaml", stack("m2", net("m2-net"), client("m2-net")));
    expect((await qkit("template", "apply", "m2.qubes.yaml", "--yes")).code).toBe(0);
    write("m2.qubes.yaml", stack("m2", net("m2-gw", "    moved_from: m2-net\n"), client("m2-gw")));
    const json = JSON.parse((await qkit("template", "plan", "m2.qubes.yaml", "--json")).out) as { steps: Array<{ id: string; requires: string[]; movedTo?: string; risk: string }> };
    const ids = json.steps.map((s) => s.id);
    const remove = json.steps.find((s) => s.id === "m2-net.remove")!;
    expect([remove.movedTo, remove.risk, remove.requires.includes("m2-client.p.netvm")]).toEqual(["m2-gw", "none", true]);
    expect(ids.indexOf("m2-gw.create")).toBeLessThan(ids.indexOf("m2-client.p.netvm"));
    expect(ids.indexOf("m2-client.p.netvm")).toBeLessThan(ids.indexOf("m2-net.remove"));
    expect((await qkit("template", "apply", "m2.qubes.yaml", "--yes")).code).toBe(0);
    expect([await sim.qube("m2-client").get("netvm"), await exists("m2-net"), await sim.qube("m2-gw").get("provides_network")]).toEqual(["m2-gw", false, true]);

    // A qube the stack does not declare still uses the old name: said at plan time, with what to do.
    write("m3.qubes.yaml", stack("m3", net("m3-net")));
    expect((await qkit("template", "apply", "m3.qubes.yaml", "--yes")).code).toBe(0);
    await sim.run(calls.create({ class: "AppVM", name: "m3-user", label: "red", template: "debian-12" }));
    await sim.qube("m3-user").setProperty("netvm", "m3-net");
    write("m3.qubes.yaml", stack("m3", net("m3-gw", "    moved_from: m3-net\n")));
    const refused = await qkit("template", "plan", "m3.qubes.yaml");
    expect(refused.code).toBe(1);
    expect(refused.out).toContain("error[removal-in-use]: the move of 'm3-net' to 'm3-gw' removes 'm3-net', but m3-user (netvm) still uses it after the plan; declare `netvm: m3-gw` on m3-user in the stack, or change it to 'm3-gw' by hand first");
    await sim.qube("m3-user").resetProperty("netvm");
  });

  it("moves a template: its qubes follow, and while one runs (its template cannot change) the removal waits too", async () => {
    const tpl = (name: string, extra = "") => `  ${name}:\n    class: TemplateVM\n    source: { empty: true }\n    label: black\n    netvm: none\n${extra}`;
    const app = (template: string) => `  m6-app:\n    class: AppVM\n    template: ${template}\n    label: red\n    netvm: none\n`;
    write("m6.qubes.yaml", stack("m6", tpl("m6-tpl"), app("m6-tpl")));
    expect((await qkit("template", "apply", "m6.qubes.yaml", "--yes")).code).toBe(0);
    await sim.qube("m6-app").start();
    write("m6.qubes.yaml", stack("m6", tpl("m6-base", "    moved_from: m6-tpl\n"), app("m6-base")));
    const json = JSON.parse((await qkit("template", "plan", "m6.qubes.yaml", "--json")).out) as { steps: Array<{ id: string; deferred?: string; calls: Array<{ method: string; arg?: string }> }>; errors: unknown[] };
    expect(json.errors).toEqual([]);
    const create = json.steps.find((s) => s.id === "m6-base.create")!;
    expect(create.calls.filter((c) => c.method === "admin.vm.volume.CloneTo").map((c) => c.arg)).toEqual(["root", "private"]);
    expect(json.steps.find((s) => s.id === "m6-app.p.template")!.deferred).toContain("m6-app is running");
    expect(json.steps.find((s) => s.id === "m6-tpl.remove")!.deferred).toContain("waits for m6-app.p.template");
    // A move is made in one apply: the clone waits too (the former qube is never left beside a clone it could diverge from).
    expect(create.deferred).toContain("the move of m6-tpl waits for m6-app.p.template");
    const applied = await qkit("template", "apply", "m6.qubes.yaml", "--yes");
    expect(applied.code).toBe(2);
    expect([await exists("m6-tpl"), await exists("m6-base"), await sim.qube("m6-app").get("template")]).toEqual([true, false, "m6-tpl"]);
    // Once it is stopped, the move ends.
    await sim.qube("m6-app").shutdown({ wait: true });
    expect((await qkit("template", "apply", "m6.qubes.yaml", "--yes")).code).toBe(0);
    expect([await exists("m6-tpl"), await sim.qube("m6-app").get("template")]).toEqual([false, "m6-base"]);
    expect((await qkit("template", "plan", "m6.qubes.yaml", "--detailed-exitcode")).code).toBe(0);
  });

  it("resumes an apply that stopped after the clone, or half-way through it", async () => {
    write("m4.qubes.yaml", stack("m4", appvm("m4-old", "    netvm: none\n    memory: 500\n")));
    expect((await qkit("template", "apply", "m4.qubes.yaml", "--yes")).code).toBe(0);
    write("m4.qubes.yaml", stack("m4", appvm("m4-new", "    moved_from: m4-old\n    netvm: none\n    memory: 500\n")));
    // As an apply that stopped right after `admin.vm.Create` and the ownership mark: no clone yet.
    await sim.run(calls.create({ class: "AppVM", name: "m4-new", label: "blue", template: "debian-12" }));
    await sim.qube("m4-new").features.set("x-qkit-moved-from", "cloning m4-old");
    await sim.qube("m4-new").features.set("x-qkit-stack", "m4");
    const redo = JSON.parse((await qkit("template", "plan", "m4.qubes.yaml", "--json")).out) as { steps: Array<{ id: string; before: string | null; calls: Array<{ method: string }> }>; errors: unknown[] };
    expect(redo.errors).toEqual([]);
    const create = redo.steps.find((s) => s.id === "m4-new.create")!;
    expect(create.before).toBe("an unfinished clone");
    expect(create.calls.map((c) => c.method)).not.toContain("admin.vm.Create.AppVM");
    expect(create.calls.map((c) => c.method)).toContain("admin.vm.volume.CloneTo");

    await sim.qube("m4-new").start();
    const runningNew = await qkit("template", "plan", "m4.qubes.yaml");
    expect([runningNew.code, runningNew.out.includes("error[move-running]: qube 'm4-new' is running, but its clone from 'm4-old' is not finished: stop it, and the next apply clones 'm4-old' again (its volumes are replaced)")]).toEqual([1, true]);
    await sim.qube("m4-new").shutdown({ wait: true });
    // As an apply that stopped after the clone was marked complete: only the removal is left.
    await sim.qube("m4-new").features.set("x-qkit-moved-from", "m4-old");
    await sim.qube("m4-new").setProperty("memory", 500);
    await sim.qube("m4-new").setProperty("netvm", null);
    // Unless the former qube runs again: what it writes now is not in the clone.
    await sim.qube("m4-old").start();
    const stale = await qkit("template", "plan", "m4.qubes.yaml", "--restart=if-needed");
    expect([stale.code, stale.out.includes("error[move-running]: qube 'm4-old' is running, and its clone 'm4-new' was made before")]).toEqual([1, true]);
    await sim.qube("m4-old").shutdown({ wait: true });
    const rest = JSON.parse((await qkit("template", "plan", "m4.qubes.yaml", "--json")).out) as { steps: Array<{ id: string }>; errors: unknown[] };
    expect(rest.errors).toEqual([]);
    expect(rest.steps.map((s) => s.id).filter((id) => !id.startsWith("global.") && !id.endsWith(".keys") && !id.endsWith(".keys-first"))).toEqual(["m4-old.remove", "m4-new.moved"]);
    expect((await qkit("template", "plan", "m4.qubes.yaml")).out).toContain("Plan: 1 to move, 0 to create, 0 to change, 0 to destroy;");
    expect((await qkit("template", "apply", "m4.qubes.yaml", "--yes")).code).toBe(0);
    expect([await exists("m4-old"), await sim.qube("m4-new").features.get("x-qkit-moved-from")]).toEqual([false, undefined]);
    expect((await qkit("template", "plan", "m4.qubes.yaml", "--detailed-exitcode")).code).toBe(0);
  });

  it("clones again a `source: { clone }` qube an apply created and stopped before cloning (marked or not yet)", async () => {
    const tpl = (name: string) => `  ${name}:\n    class: TemplateVM\n    label: black\n    source: { clone: debian-12 }\n`;
    write("c1.qubes.yaml", stack("c1", tpl("c1-tpl")));
    const fresh = JSON.parse((await qkit("template", "plan", "c1.qubes.yaml", "--json")).out) as { steps: Array<{ id: string; calls: Array<{ method: string; arg?: string }> }> };
    // The mark before anything else that can stop, and off once the volumes are cloned.
    const methods = fresh.steps.find((s) => s.id === "c1-tpl.create")!.calls.map((c) => `${c.method}${c.method.includes("feature") ? ` ${c.arg}` : ""}`);
    expect(methods.slice(0, 2)).toEqual(["admin.vm.Create.TemplateVM", "admin.vm.feature.Set x-qkit-cloning"]);
    expect(methods.lastIndexOf("admin.vm.volume.CloneTo")).toBeGreaterThan(0);
    expect(methods.indexOf("admin.vm.feature.Remove x-qkit-cloning")).toBeGreaterThan(methods.lastIndexOf("admin.vm.volume.CloneTo"));
    // As an apply that stopped at admin.vm.volume.CloneFrom: created, marked and owned, no volume cloned.
    await sim.run(calls.create({ class: "TemplateVM", name: "c1-tpl", label: "black" }));
    await sim.qube("c1-tpl").features.set("x-qkit-cloning", "debian-12");
    await sim.qube("c1-tpl").features.set("x-qkit-stack", "c1");
    const redo = JSON.parse((await qkit("template", "plan", "c1.qubes.yaml", "--json")).out) as { steps: Array<{ id: string; before: string | null; calls: Array<{ method: string; arg?: string }> }>; errors: unknown[] };
    expect(redo.errors).toEqual([]);
    const create = redo.steps.find((s) => s.id === "c1-tpl.create")!;
    expect(create.before).toBe("an unfinished clone");
    expect(create.calls.map((c) => c.method)).not.toContain("admin.vm.Create.TemplateVM");
    expect(create.calls.filter((c) => c.method === "admin.vm.volume.CloneTo").map((c) => c.arg)).toEqual(["root", "private"]);
    // Running, it is not cloned over.
    await sim.qube("c1-tpl").start();
    const running = await qkit("template", "plan", "c1.qubes.yaml");
    expect([running.code, running.out.includes("error[clone-running]: qube 'c1-tpl' is running, but its clone from 'debian-12' is not finished")]).toEqual([1, true]);
    await sim.qube("c1-tpl").shutdown({ wait: true });
    expect((await qkit("template", "apply", "c1.qubes.yaml", "--yes")).code).toBe(0);
    expect(await sim.qube("c1-tpl").features.get("x-qkit-cloning")).toBeUndefined();
    expect((await qkit("template", "plan", "c1.qubes.yaml", "--detailed-exitcode")).code).toBe(0);

    // Stopped between admin.vm.Create and the mark: the create record names it and no stack owns it.
    write("c2.qubes.yaml", stack("c2", tpl("c2-tpl")));
    await sim.run(calls.featureSet("dom0", "x-qkit-globals-c2", "qube:c2-tpl"));
    await sim.run(calls.create({ class: "TemplateVM", name: "c2-tpl", label: "black" }));
    const plan2 = JSON.parse((await qkit("template", "plan", "c2.qubes.yaml", "--json")).out) as { steps: Array<{ id: string; before: string | null; calls: Array<{ method: string }> }>; errors: unknown[]; warnings: Array<{ code: string }> };
    expect(plan2.errors).toEqual([]);
    expect(plan2.warnings.map((w) => w.code)).toContain("resumed-create");
    expect(plan2.steps.find((s) => s.id === "c2-tpl.create")!.calls.map((c) => c.method)).toContain("admin.vm.volume.CloneTo");
    expect(plan2.steps.map((s) => s.id)).toContain("c2-tpl.adopt");
    const applied2 = await qkit("template", "apply", "c2.qubes.yaml", "--yes");
    expect(applied2.err).toBe("");
    expect(applied2.code).toBe(0);
    expect((await qkit("template", "plan", "c2.qubes.yaml", "--detailed-exitcode")).code).toBe(0);
  });

  it("an expectation that names the former name fails for the move, not for --prune", async () => {
    write("m7.qubes.yaml", stack("m7", appvm("m7-old", "    netvm: none\n")));
    expect((await qkit("template", "apply", "m7.qubes.yaml", "--yes")).code).toBe(0);
    write("m7.qubes.yaml", stack("m7", appvm("m7-new", "    moved_from: m7-old\n    netvm: none\n")) + "expect:\n  - qubes.Gpg work m7-old => deny\n");
    const plan = JSON.parse((await qkit("template", "plan", "m7.qubes.yaml", "--json")).out) as { expectations?: { failed: { problem: string }[] } };
    expect(plan.expectations?.failed.map((f) => f.problem)).toEqual(["names qube 'm7-old', which this plan removes (it moves to 'm7-new'): the next check refuses it as an unknown qube; name 'm7-new' there"]);
  });

  it("refuses what it cannot carry out, each with what to do", async () => {
    write("m5.qubes.yaml", stack("m5", appvm("m5-old", "    netvm: none\n"), appvm("m5-other", "    netvm: none\n")));
    expect((await qkit("template", "apply", "m5.qubes.yaml", "--yes")).code).toBe(0);
    // Running: a clone needs it halted.
    await sim.qube("m5-old").start();
    write("m5.qubes.yaml", stack("m5", appvm("m5-new", "    moved_from: m5-old\n    netvm: none\n"), appvm("m5-other", "    netvm: none\n")));
    const running = await qkit("template", "plan", "m5.qubes.yaml");
    expect(running.code).toBe(1);
    expect(running.out).toContain("error[move-running]: qube 'm5-old' is running: moving it to 'm5-new' clones its volumes, which needs it halted; use --restart=if-needed to stop it, or stop it first");
    const stopFirst = JSON.parse((await qkit("template", "plan", "m5.qubes.yaml", "--restart=if-needed", "--json")).out) as { steps: Array<{ id: string; requires: string[] }> };
    expect(stopFirst.steps.find((s) => s.id === "m5-new.create")!.requires).toContain("m5-old.shutdown");
    // It ran: its clone runs once moved (state: any).
    expect(stopFirst.steps.map((s) => s.id)).toContain("m5-new.start");
    await sim.qube("m5-old").shutdown({ wait: true });
    // Both names exist, and the new one is no clone this stack made.
    write("m5.qubes.yaml", stack("m5", appvm("m5-other", "    moved_from: m5-old\n    netvm: none\n")));
    const both = await qkit("template", "plan", "m5.qubes.yaml");
    expect(both.code).toBe(1);
    expect(both.out).toContain("error[invalid-move]: qube 'm5-other' moves from 'm5-old', but both exist and 'm5-other' is not a clone this stack made; remove one of them, or remove moved_from and declare 'm5-old' on its own");
    // Another class: a move keeps the class (said by the checker, with the system).
    write("m5.qubes.yaml", stack("m5", `  m5-new:\n    class: StandaloneVM\n    moved_from: m5-old\n    label: blue\n`, appvm("m5-other", "    netvm: none\n")));
    const cls = await qkit("template", "plan", "m5.qubes.yaml");
    expect(cls.code).toBe(1);
    expect(cls.out).toContain("error[invalid-move]: m5-new moves from m5-old, which is an AppVM on this machine, but is declared as a StandaloneVM");
    // A qube no stack owns is moved only with --adopt, as one move (no adoption step of its own).
    await sim.run(calls.create({ class: "AppVM", name: "m5-stray", label: "blue", template: "debian-12" }));
    write("m7.qubes.yaml", stack("m7", appvm("m7-new", "    moved_from: m5-stray\n")));
    const unowned = await qkit("template", "plan", "m7.qubes.yaml");
    expect([unowned.code, unowned.out.includes("error[unowned-qube]: qube 'm5-stray' exists and is not managed by stack 'm7'; use --adopt to take it over")]).toEqual([1, true]);
    const adopted = await qkit("template", "plan", "m7.qubes.yaml", "--adopt");
    expect([adopted.code, adopted.out.includes("x-qkit-stack"), adopted.out.includes("Plan: 1 to move, 0 to create, 0 to change, 0 to destroy;")]).toEqual([0, false, true]);
    // Nothing to move: created as declared, with a warning.
    write("m5.qubes.yaml", stack("m5", appvm("m5-fresh", "    moved_from: m5-never\n    netvm: none\n"), appvm("m5-old", "    netvm: none\n"), appvm("m5-other", "    netvm: none\n")));
    const fresh = await qkit("template", "plan", "m5.qubes.yaml");
    expect(fresh.code).toBe(0);
    expect(fresh.out).toContain("warning[moved-from-missing]: qube 'm5-fresh' moves from 'm5-never', which does not exist: it is created as declared");
  });
});
