/**
 * The order of plan steps (netvm chains, disposable templates, swapped
 * providers, removals), running qubes and restarts, policy tokens, and the
 * property "plan(apply(plan)) is empty" over random small stacks.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { applyPlan, dirPolicyTarget, executePlan, planStack, rehearse, type Plan, type StackConnection } from "@qubes-kit/sdk";
import type { QubeDecl } from "@qubes-kit/language";
import { DEFAULT, connectSim, demoSimulator, mismatches, policyFile, qube, readFor, stack } from "../fixtures/template/apply/stacks.js";

const ids = (p: Plan) => p.steps.map((s) => s.id);
const before = (p: Plan, a: string, b: string) => {
  const i = ids(p).indexOf(a);
  const j = ids(p).indexOf(b);
  expect(i, `${a} in ${ids(p).join(" ")}`).toBeGreaterThanOrEqual(0);
  expect(j, `${b} in ${ids(p).join(" ")}`).toBeGreaterThanOrEqual(0);
  expect(i, `${a} before ${b}: ${ids(p).join(" ")}`).toBeLessThan(j);
};

async function applyAll(model: Parameters<typeof planStack>[0], conn: StackConnection, options: Parameters<typeof planStack>[2] = {}) {
  const { plan } = await planStack(model, conn, options);
  expect(plan.errors).toEqual([]);
  const outcome = await applyPlan(plan, conn);
  if (outcome.status !== "applied" || outcome.result.failure) throw new Error(`${outcome.status}: ${JSON.stringify(outcome.status === "rehearsal-failed" ? outcome.rehearsal.failure?.summary : outcome.status === "applied" ? outcome.result.failure?.summary : "")}`);
  return plan;
}

describe("ordering", () => {
  it("prunes a provider after the pruned qubes that name it (qubesd refuses to remove a qube in use)", async () => {
    const conn = connectSim(demoSimulator());
    await applyAll(
      stack("chain", [
        qube("qa", "AppVM", { label: "red", template: "debian-12", provides_network: true, netvm: "sys-firewall" }),
        qube("qc", "AppVM", { label: "red", template: "debian-12", provides_network: true, netvm: "qa" }),
        qube("qe", "AppVM", { label: "red", template: "debian-12", netvm: "qc" }),
      ]),
      conn,
    );
    const plan = await applyAll(stack("chain", [qube("qb", "AppVM", { label: "blue", template: "debian-12" })]), conn, { prune: true });
    before(plan, "qe.remove", "qc.remove");
    before(plan, "qc.remove", "qa.remove");
  });

  it("creates a network provider before its clients whatever the declaration order", async () => {
    const conn = connectSim(demoSimulator());
    const s = stack("net", [
      qube("client", "AppVM", { label: "red", template: "debian-12", netvm: "vpn2" }),
      qube("vpn2", "AppVM", { label: "orange", template: "debian-12", netvm: "vpn1", provides_network: true }),
      qube("vpn1", "AppVM", { label: "orange", template: "debian-12", provides_network: true, netvm: "sys-firewall" }),
    ]);
    const plan = await applyAll(s, conn);
    before(plan, "vpn1.p.provides_network", "vpn2.p.netvm");
    before(plan, "vpn2.p.provides_network", "client.p.netvm");
    before(plan, "vpn2.p.netvm", "client.p.netvm");
    expect((await planStack(s, conn)).plan.steps).toEqual([]);
  });

  it("creates templates, then disposable templates, then their disposables, then globals", async () => {
    const conn = connectSim(demoSimulator());
    const s = stack(
      "dvm",
      [
        qube("disp1", "DispVM", { label: "red", template: "dvm1" }),
        qube("dvm1", "AppVM", { label: "red", template: "tpl1", template_for_dispvms: true }),
        qube("tpl1", "TemplateVM", { label: "black" }),
        qube("user1", "AppVM", { label: "blue", template: "tpl1", default_dispvm: "dvm1" }),
      ],
      { global: { default_dispvm: "dvm1", management_dispvm: "dvm1" } },
    );
    const plan = await applyAll(s, conn);
    before(plan, "tpl1.create", "dvm1.create");
    before(plan, "dvm1.p.template_for_dispvms", "disp1.create");
    before(plan, "dvm1.p.template_for_dispvms", "user1.p.default_dispvm");
    before(plan, "user1.p.default_dispvm", "global.default_dispvm");
    expect(mismatches(s, await readFor(s, conn))).toEqual([]);
    expect((await planStack(s, conn)).plan.steps).toEqual([]);
  });

  it("swaps two providers without a transient netvm loop", async () => {
    const conn = connectSim(demoSimulator());
    const v1 = stack("swap", [
      qube("pa", "AppVM", { label: "red", template: "debian-12", provides_network: true, netvm: "sys-firewall" }),
      qube("pb", "AppVM", { label: "red", template: "debian-12", provides_network: true, netvm: "pa" }),
    ]);
    await applyAll(v1, conn);
    const v2 = stack("swap", [
      qube("pa", "AppVM", { label: "red", template: "debian-12", provides_network: true, netvm: "pb" }),
      qube("pb", "AppVM", { label: "red", template: "debian-12", provides_network: true, netvm: "sys-firewall" }),
    ]);
    const plan = await applyAll(v2, conn);
    before(plan, "pb.p.netvm", "pa.p.netvm");
    expect((await planStack(v2, conn)).plan.steps).toEqual([]);
  });

  it("re-points dependents before a provider is removed, and removes only with absent or --prune", async () => {
    const conn = connectSim(demoSimulator());
    const v1 = stack("rm", [
      qube("prov", "AppVM", { label: "red", template: "debian-12", provides_network: true, netvm: "sys-firewall" }),
      qube("cl", "AppVM", { label: "red", template: "debian-12", netvm: "prov" }),
      qube("spare", "AppVM", { label: "red", template: "debian-12" }),
    ]);
    await applyAll(v1, conn);
    const v2 = stack("rm", [qube("prov", "AppVM", { absent: true } as never, { absent: true }), qube("cl", "AppVM", { label: "red", template: "debian-12", netvm: "sys-firewall" })]);
    const { plan } = await planStack(v2, conn);
    expect(plan.orphans).toEqual(["spare"]);
    expect(ids(plan)).not.toContain("spare.remove");
    before(plan, "cl.p.netvm", "prov.remove");
    await applyAll(v2, conn);
    expect(Object.keys((await readFor(v2, conn)).qubes)).not.toContain("prov");
    const pruned = await applyAll(v2, conn, { prune: true });
    expect(ids(pruned)).toContain("spare.remove");
    expect((await planStack(v2, conn, { prune: true })).plan.steps).toEqual([]);
  });
});

describe("creation defaults", () => {
  it("creates a new AppVM without a template on the stack's default_template (qubesd reads it at creation), after the template", async () => {
    const conn = connectSim(demoSimulator());
    const s = stack("defaults", [qube("w", "AppVM", { label: "blue" }), qube("tpl-n", "TemplateVM", { label: "black" }, { source: { clone: "debian-12" } })], {
      global: { default_template: "tpl-n", default_pool_private: "varlibqubes" },
    });
    const plan = await applyAll(s, conn);
    before(plan, "tpl-n.create", "global.default_template");
    before(plan, "global.default_template", "w.create");
    before(plan, "global.default_pool_private", "w.create");
    const w = (await readFor(s, conn)).qubes["w"];
    expect(w?.properties["template"]?.value).toBe("tpl-n");
    expect((await planStack(s, conn)).plan.steps).toEqual([]);
  });

  it("a global naming a qube the stack creates waits for it, whatever else waits (a clone cycle is one error, nothing ordered around it)", async () => {
    const conn = connectSim(demoSimulator());
    const s = stack(
      "cycle",
      [
        qube("tpl-y", "TemplateVM", { label: "black" }, { source: { clone: "tpl-z" } }),
        qube("tpl-z", "TemplateVM", { label: "black" }, { source: { clone: "tpl-x" } }),
        qube("tpl-x", "TemplateVM", { label: "black" }, { source: { clone: "tpl-y" } }),
        qube("w", "AppVM", { label: "blue", template: "tpl-x" }),
      ],
      { global: { default_template: "tpl-x" } },
    );
    const { plan } = await planStack(s, conn);
    expect(plan.errors.map((e) => [e.code, e.message])).toEqual([
      ["clone-cycle", "qube 'tpl-x' is to be cloned from 'tpl-y', cloned from 'tpl-z', cloned from 'tpl-x': none of them exists on the system, so none can be cloned first; clone one of them from a qube that exists"],
    ]);
    // Broken by an existing qube, the same stack plans: the chain is cloned in order.
    const fixed = stack("cycle", [...s.qubes.slice(0, 2), qube("tpl-x", "TemplateVM", { label: "black" }, { source: { clone: "debian-12" } }), s.qubes[3]!], { global: { default_template: "tpl-y" } });
    const ok = await applyAll(fixed, conn);
    before(ok, "tpl-x.create", "tpl-z.create");
    before(ok, "tpl-z.create", "tpl-y.create");
    before(ok, "tpl-y.create", "global.default_template");
  });
});

describe("what qubesd leaves", () => {
  it("a property set to none reads back empty: not a setting qubesd undid (kernel: none, netvm: none)", async () => {
    const conn = connectSim(demoSimulator());
    const s = (props: QubeDecl["properties"]) => stack("none", [qube("q", "AppVM", { label: "red", template: "debian-12", ...props })]);
    await applyAll(s({}), conn);
    const { plan, live } = await planStack(s({ kernel: null, netvm: null }), conn);
    expect(plan.steps.filter((x) => x.kind === "set-property").map((x) => [x.id, x.after])).toEqual([
      ["q.p.kernel", "none"],
      ["q.p.netvm", "none"],
    ]);
    const r = await rehearse(plan, live);
    expect(r.result.failure).toBeUndefined();
    expect(r.sideEffects.filter((e) => e.undoes)).toEqual([]);
    await applyAll(s({ kernel: null, netvm: null }), conn);
    expect((await planStack(s({ kernel: null, netvm: null }), conn)).plan.steps).toEqual([]);
  });
});

describe("moves that use each other", () => {
  it("renames a template, a network provider on it and a disposable template behind that provider in one apply", async () => {
    const conn = connectSim(demoSimulator());
    const v1 = stack(
      "mv",
      [
        qube("tplx", "TemplateVM", { label: "black", memory: 700 }, { source: { clone: "debian-12" } }),
        qube("netx", "AppVM", { label: "orange", template: "tplx", provides_network: true, netvm: "sys-firewall" }),
        qube("dx", "AppVM", { label: "red", template: "tplx", template_for_dispvms: true, netvm: "netx" }),
        qube("c1", "AppVM", { label: "blue", template: "tplx", netvm: "netx", default_dispvm: "dx" }),
      ],
      { global: { default_dispvm: "dx" } },
    );
    await applyAll(v1, conn);
    const v2 = stack(
      "mv",
      [
        qube("tply", "TemplateVM", { label: "black", memory: 700 }, { source: { clone: "debian-12" }, moved_from: "tplx" }),
        qube("nety", "AppVM", { label: "orange", template: "tply", provides_network: true, netvm: "sys-firewall" }, { moved_from: "netx" }),
        qube("dy", "AppVM", { label: "red", template: "tply", template_for_dispvms: true, netvm: "nety" }, { moved_from: "dx" }),
        qube("c1", "AppVM", { label: "blue", template: "tply", netvm: "nety", default_dispvm: "dy" }),
      ],
      { global: { default_dispvm: "dy" } },
    );
    // Each removal waits for the users of what it removes, never for another move's end (that made a loop).
    const plan = await applyAll(v2, conn);
    before(plan, "dx.remove", "netx.remove");
    before(plan, "netx.remove", "tplx.remove");
    before(plan, "netx.remove", "nety.moved");
    expect(mismatches(v2, await readFor(v2, conn))).toEqual([]);
    expect((await planStack(v2, conn)).plan.steps).toEqual([]);
  });
});

describe("globals without a default", () => {
  it("a default_kernel the stack no longer declares is left as it is (qubesd has no default to reset it to)", async () => {
    const conn = connectSim(demoSimulator());
    const { live } = await planStack(stack("k", []), conn);
    const kernel = live.globals["default_kernel"]?.value;
    expect(typeof kernel === "string" && kernel !== "").toBe(true);
    await applyAll(stack("k", [], { global: { default_kernel: kernel as string, default_netvm: "sys-net" } }), conn);
    // Both no longer declared: default_netvm goes back to its default, default_kernel stays.
    const { plan } = await planStack(stack("k", []), conn);
    expect(plan.errors).toEqual([]);
    expect(plan.steps.filter((x) => x.kind === "reset-global").map((x) => x.key)).toEqual(["default_netvm"]);
    await applyAll(stack("k", []), conn);
    const after = (await planStack(stack("k", []), conn)).live.globals["default_kernel"];
    expect([after?.value, after?.default]).toEqual([kernel, false]);
  });
});

describe("running qubes", () => {
  it("defers needs-halt changes of running qubes unless --restart=if-needed", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const s = stack("run", [qube("r1", "AppVM", { label: "red", template: "debian-12", memory: 500 }, { state: "running" })]);
    await applyAll(s, conn);
    expect(sim.app.domains.get("r1")!.power).toBe("Running");
    const v2 = stack("run", [qube("r1", "AppVM", { label: "red", template: "fedora-41", memory: 600, maxmem: 4000 }, { state: "running" })]);
    const { plan } = await planStack(v2, conn);
    const t = plan.steps.find((x) => x.id === "r1.p.template")!;
    expect(t.deferred).toBe("r1 is running: template change waits for it to stop; use --restart=if-needed to stop it now");
    expect(plan.restartToTakeEffect).toEqual(["r1"]);
    expect(plan.summary.deferred).toBe(2);
    const r = await applyPlan(plan, conn);
    expect(r.status === "applied" && [r.result.applied, r.result.deferred]).toEqual([plan.steps.length - 2, 2]);
    expect(sim.app.domains.get("r1")!.getProp("template")).toBe("debian-12");
    const restart = await planStack(v2, conn, { restart: "if-needed" });
    before(restart.plan, "r1.shutdown", "r1.p.template");
    before(restart.plan, "r1.p.template", "r1.restart");
    await applyAll(v2, conn, { restart: "if-needed" });
    expect([sim.app.domains.get("r1")!.getProp("template"), sim.app.domains.get("r1")!.power]).toEqual(["fedora-41", "Running"]);
    expect((await planStack(v2, conn)).plan.steps).toEqual([]);
  });
});

describe("deferred changes", () => {
  it("do not hold back unrelated steps such as a removal", async () => {
    const conn = connectSim(demoSimulator());
    const v1 = stack("df", [qube("d1", "AppVM", { label: "red", template: "debian-12" }, { state: "running" }), qube("d2", "AppVM", { label: "red", template: "debian-12" })]);
    await applyAll(v1, conn);
    const v2 = stack("df", [qube("d1", "AppVM", { label: "red", template: "fedora-41" }, { state: "running" }), qube("d2", "AppVM", {}, { absent: true })]);
    const { plan } = await planStack(v2, conn);
    expect(plan.steps.filter((x) => x.deferred).map((x) => x.id)).toEqual(["d1.p.template"]);
    expect(plan.steps.find((x) => x.id === "d2.remove")?.deferred).toBeUndefined();
  });
});

describe("state: halted", () => {
  it("stops a running qube only with --restart=if-needed", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const s = stack("st", [qube("work", "AppVM", {}, { state: "halted" })]);
    const { plan } = await planStack(s, conn, { adopt: true });
    expect(plan.steps.find((x) => x.id === "work.stop")?.deferred).toBe("work is running: state halted waits for it to stop; use --restart=if-needed to stop it now");
    await applyAll(s, conn, { adopt: true });
    expect(sim.app.domains.get("work")!.power).toBe("Running");
    await applyAll(s, conn, { restart: "if-needed" });
    expect(sim.app.domains.get("work")!.power).toBe("Halted");
    expect((await planStack(s, conn)).plan.steps).toEqual([]);
  });
});

describe("running clients", () => {
  it("starts a halted provider before a running qube is attached to it (qubesd refuses to attach to a stopped netvm)", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const s = stack("att", [
      qube("work", "AppVM", { netvm: "prov2" }),
      qube("prov2", "AppVM", { label: "orange", template: "debian-12", provides_network: true, netvm: "sys-firewall" }, { features: { servicevm: "1" } }),
    ]);
    const plan = await applyAll(s, conn, { adopt: true });
    before(plan, "prov2.f.servicevm", "prov2.start-for-netvm");
    before(plan, "prov2.start-for-netvm", "work.p.netvm");
    expect(sim.app.domains.get("prov2")!.power).toBe("Running");
    expect((await planStack(s, conn)).plan.steps).toEqual([]);
  });
});

describe("policy files", () => {
  it("writes with the token read at plan time: a concurrent change is a conflict, never overwritten", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const v1 = stack("pol", [], { policy: [policyFile("main", "qubes.Gpg * work vault allow\n")] });
    await applyAll(v1, conn);
    expect(sim.policy.read("40-qkit-pol-main.policy")?.toString()).toBe("# managed by qkit stack pol; edits are overwritten by `qkit template apply`\nqubes.Gpg * work vault allow\n");
    const v2 = stack("pol", [], { policy: [policyFile("main", "qubes.Gpg * work vault deny\n")] });
    const { plan } = await planStack(v2, conn);
    const edited = "# managed by qkit stack pol; edits are overwritten by `qkit template apply`\nqubes.Gpg * work vault ask\n";
    await conn.policy.replace("40-qkit-pol-main", false, edited, (await conn.policy.get("40-qkit-pol-main", false))!.token);
    const r = await executePlan(plan, conn);
    expect(r.failure?.summary).toMatch(/^step 1\/1 policy\.40-qkit-pol-main failed: policy\.Replace 40-qkit-pol-main: PolicyAdminTokenException: Token mismatch$/);
    expect(sim.policy.read("40-qkit-pol-main.policy")?.toString()).toBe(edited);
  });

  it("refuses a same-named file it did not write, removes files it owns that are no longer declared, and works on a directory", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkit-pol-"));
    fs.writeFileSync(path.join(dir, "40-qkit-d-x.policy"), "qubes.Gpg * work vault allow\n");
    const sim = demoSimulator();
    const conn: StackConnection = { qubes: connectSim(sim).qubes, policy: dirPolicyTarget(dir) };
    const s = stack("d", [], { policy: [policyFile("x", "qubes.Gpg * work vault deny\n"), policyFile("y", "qubes.Gpg * work vault deny\n", 50)] });
    const { plan } = await planStack(s, conn);
    expect(plan.errors.map((e) => e.code)).toEqual(["policy-not-owned"]);
    fs.unlinkSync(path.join(dir, "40-qkit-d-x.policy"));
    await applyAll(s, conn);
    expect(fs.readdirSync(dir).sort()).toEqual(["40-qkit-d-x.policy", "50-qkit-d-y.policy"]);
    const s2 = stack("d", [], { policy: [policyFile("y", "qubes.Gpg * work vault deny\n", 50)] });
    const p2 = await applyAll(s2, conn);
    expect(p2.steps.map((x) => x.kind)).toEqual(["remove-policy"]);
    expect(fs.readdirSync(dir)).toEqual(["50-qkit-d-y.policy"]);
    expect((await planStack(s2, conn)).plan.steps).toEqual([]);
  });
});

describe("policy files that move or go", () => {
  // A later file asks for every copy from work; the stack's file denies the copies to vault before it.
  const user = { "70-later.policy": "qubes.Filecopy * work @anyvm ask\n" };
  const deny = "qubes.Filecopy * work vault deny\n";

  it("a file moved to another priority is written before the old one goes: no moment between has neither", async () => {
    const sim = demoSimulator(user);
    const conn = connectSim(sim);
    await applyAll(stack("m", [], { policy: [policyFile("home", deny, 40)] }), conn);
    const { plan } = await planStack(stack("m", [], { policy: [policyFile("home", deny, 10)] }), conn);
    expect(plan.steps.map((x) => [x.id, x.risk])).toEqual([
      ["policy.10-qkit-m-home", "none"],
      // Alone, removing the deny would let work copy to vault again (ask): it is marked so, and goes last.
      ["policy.40-qkit-m-home", "grants-access"],
    ]);
    before(plan, "policy.10-qkit-m-home", "policy.40-qkit-m-home");
    await applyAll(stack("m", [], { policy: [policyFile("home", deny, 10)] }), conn);
    expect(sim.policy.read("40-qkit-m-home.policy")).toBeUndefined();
    expect(sim.policy.read("10-qkit-m-home.policy")?.toString()).toContain(deny);
  });

  it("a file of deny rules the stack no longer declares goes with the grants, marked so; one of allow rules goes first, marked as revoking", async () => {
    const conn = connectSim(demoSimulator(user));
    await applyAll(stack("g", [], { policy: [policyFile("deny", deny, 40), policyFile("allow", "qubes.Gpg * work vault allow\n", 45)] }), conn);
    const { plan } = await planStack(stack("g", [qube("newq", "AppVM", { label: "red", template: "debian-12" })], { policy: [] }), conn);
    const risk = Object.fromEntries(plan.steps.map((x) => [x.id, x.risk]));
    expect(risk["policy.40-qkit-g-deny"]).toBe("grants-access");
    expect(risk["policy.45-qkit-g-allow"]).toBe("revokes-access");
    // The revocation before the new qube, the grant after it.
    before(plan, "policy.45-qkit-g-allow", "newq.create");
    before(plan, "newq.create", "policy.40-qkit-g-deny");
  });
});

describe("a qube declared absent that the stack's policy still names", () => {
  it("is removed, with a warning naming the policy file and rule", async () => {
    const conn = connectSim(demoSimulator());
    const rules = "qubes.Gpg * work gone1 allow\n";
    await applyAll(stack("ab", [qube("gone1", "AppVM", { label: "red", template: "debian-12" })], { policy: [policyFile("gpg", rules)] }), conn);
    const { plan } = await planStack(stack("ab", [qube("gone1", "AppVM", {}, { absent: true })], { policy: [policyFile("gpg", rules)] }), conn);
    expect(plan.steps.map((x) => x.kind)).toContain("remove");
    expect(plan.warnings.filter((w) => w.code === "absent-but-named").map((w) => w.message)).toEqual(["qube 'gone1' is declared absent and removed, but policy file 'gpg' (rule 1) still names it; remove it there too"]);
  });
});

describe("property: plan(apply(plan)) is empty", () => {
  const names = ["qa", "qb", "qc", "qd"];
  const arbQube = (name: string, i: number): fc.Arbitrary<QubeDecl> =>
    fc
      .record({
        memory: fc.option(fc.constantFrom(300, 400, 800), { nil: undefined }),
        vcpus: fc.option(fc.constantFrom(1, 2, DEFAULT), { nil: undefined }),
        provides: fc.boolean(),
        netvm: fc.option(fc.constantFrom("sys-firewall", null, DEFAULT, ...names.slice(0, i)), { nil: undefined }),
        features: fc.dictionary(fc.constantFrom("f1", "f2", "service.s1"), fc.constantFrom("1", "", null), { maxKeys: 2 }),
        tags: fc.option(fc.uniqueArray(fc.constantFrom("ta", "tb", "tc"), { maxLength: 2 }), { nil: undefined }),
        firewall: fc.option(fc.constantFrom(["action=accept"], ["action=drop"], ["action=accept dsthost=1.2.3.4 proto=tcp dstports=443", "action=drop"]), { nil: undefined }),
        label: fc.constantFrom("red", "blue"),
      })
      .map((r) => {
        const properties: QubeDecl["properties"] = { label: r.label, template: "debian-12" };
        if (r.memory !== undefined) properties["memory"] = r.memory;
        if (r.vcpus !== undefined) properties["vcpus"] = r.vcpus;
        if (r.provides) properties["provides_network"] = true;
        if (r.netvm !== undefined) properties["netvm"] = r.netvm;
        const extra: Partial<QubeDecl> = { features: r.features };
        if (r.tags) extra.tags = r.tags;
        if (r.firewall) extra.firewall = r.firewall;
        return qube(name, "AppVM", properties, extra);
      });
  const arbStack = fc
    .tuple(...names.map((n, i) => fc.option(arbQube(n, i), { nil: undefined })))
    .map((qs) => {
      const declared = qs.filter((q): q is QubeDecl => q !== undefined);
      const has = new Set(declared.filter((q) => q.properties["provides_network"] === true).map((q) => q.name));
      // A netvm must provide network: point others at sys-firewall.
      for (const q of declared) if (typeof q.properties["netvm"] === "string" && q.properties["netvm"] !== "sys-firewall" && !has.has(q.properties["netvm"])) q.properties["netvm"] = "sys-firewall";
      return stack("prop", declared);
    });

  it("holds for random sequences of two stacks applied in turn", async () => {
    await fc.assert(
      fc.asyncProperty(arbStack, arbStack, async (s1, s2) => {
        const conn = connectSim(demoSimulator());
        for (const s of [s1, s2]) {
          await applyAll(s, conn, { prune: true });
          expect(mismatches(s, await readFor(s, conn))).toEqual([]);
          const again = await planStack(s, conn, { prune: true });
          expect(again.plan.steps.map((x) => `${x.id}: ${x.before} -> ${x.after}`)).toEqual([]);
        }
      }),
      { numRuns: 25 },
    );
  });
});

describe("devices", () => {
  it("assigns by selector and by port, changes the mode in place, and unassigns what is no longer declared", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const pci = (devs: NonNullable<QubeDecl["devices"]>["pci"]) => stack("dev", [qube("net2", "AppVM", { label: "red", template: "debian-12", virt_mode: "hvm", provides_network: true, netvm: null }, { devices: { pci: devs } })]);
    const v1 = pci([
      { devclass: "pci", backend: "dom0", match: { class: "network" }, mode: "required", options: { "no-strict-reset": "True" } },
      { devclass: "pci", backend: "dom0", port: "00_14.0", mode: "auto-attach", options: {} },
    ]);
    const p1 = await applyAll(v1, conn);
    before(p1, "net2.p.virt_mode", "net2.d.pci.dom0+00_1c.0-00_00.0");
    expect(sim.app.domains.get("net2")!.assignments.map((a) => `${a.portId} ${a.deviceId} ${a.mode} ${JSON.stringify(a.options)}`).sort()).toEqual([
      '00_14.0 * auto-attach []',
      '00_1c.0-00_00.0 0x8086:0x2723::p028000 required [["no-strict-reset","True"]]',
    ]);
    expect((await planStack(v1, conn)).plan.steps).toEqual([]);
    const v2 = pci([{ devclass: "pci", backend: "dom0", match: { class: "network" }, mode: "ask-to-attach", options: { "no-strict-reset": "True" } }]);
    const p2 = await applyAll(v2, conn);
    expect(p2.steps.map((s) => `${s.kind} ${s.key}`)).toEqual(["unassign-device pci dom0:00_14.0", "set-device-mode pci dom0:00_1c.0-00_00.0", "record-keys x-qkit-keys"]);
    expect((await planStack(v2, conn)).plan.steps).toEqual([]);
    const v3 = stack("dev", [qube("net2", "AppVM", { label: "red", template: "debian-12", virt_mode: "hvm", provides_network: true, netvm: null })]);
    const p3 = await applyAll(v3, conn);
    expect(p3.steps.map((s) => s.kind)).toEqual(["unassign-device", "record-keys"]);
    expect(sim.app.domains.get("net2")!.assignments).toEqual([]);
  });

  it("reports a selector that matches nothing, with what to do", async () => {
    const conn = connectSim(demoSimulator());
    const s = stack("dev", [qube("a1", "AppVM", { label: "red", template: "debian-12" }, { devices: { pci: [{ devclass: "pci", backend: "dom0", match: { class: "audio" }, mode: "required", options: {} }] } })]);
    expect((await planStack(s, conn)).plan.errors).toEqual([{ code: "device-not-found", message: "a1: no pci device of 'dom0' matches {\"class\":\"audio\"}; check the selector against `qvm-device pci list`" }]);
  });
});

describe("settings qubesd rewrites", () => {
  it("refuses service.meminfo-writer (qubesd turns it into maxmem), which would never converge", async () => {
    const conn = connectSim(demoSimulator());
    const s = stack("mw", [qube("m1", "AppVM", { label: "red", template: "debian-12" }, { features: { "service.meminfo-writer": "" } })]);
    expect((await planStack(s, conn)).plan.errors.map((e) => e.code)).toEqual(["rewritten-feature"]);
  });
});

describe("bad input", () => {
  it("never throws on malformed models: problems are plan errors", async () => {
    const { computePlan, planScope } = await import("@qubes-kit/sdk");
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const live = await readFor(stack("x", []), conn);
    const junk = fc.oneof(fc.constant(undefined), fc.constant(null), fc.integer(), fc.string(), fc.boolean(), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { maxKeys: 3 }));
    const arbQube = fc.record(
      {
        name: fc.oneof(fc.constantFrom("work", "new1", "dom0", "sys-net", "bad name"), fc.string({ maxLength: 8 })),
        class: fc.oneof(fc.constantFrom("AppVM", "TemplateVM", "DispVM", "StandaloneVM", "AdminVM"), fc.string()),
        properties: fc.oneof(junk, fc.dictionary(fc.constantFrom("label", "memory", "netvm", "template", "vcpus", "kernel", "xid", "virt_mode"), junk, { maxKeys: 4 })),
        features: fc.oneof(junk, fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string(), fc.constant(null), fc.integer()), { maxKeys: 3 })),
        tags: junk,
        firewall: fc.oneof(junk, fc.array(fc.string(), { maxLength: 3 })),
        devices: junk,
        volumes: fc.oneof(junk, fc.dictionary(fc.constantFrom("private", "root", "x"), fc.record({ size: fc.oneof(fc.integer(), fc.string()) }), { maxKeys: 2 })),
        notes: junk,
        absent: fc.oneof(fc.boolean(), junk),
        ignore_changes: junk,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(arbQube, { maxLength: 4 }), junk, junk, async (qubes, global, policy) => {
        const model = { ...stack("junk", []), qubes, global, policy } as never;
        const plan = computePlan(model, live, planScope(model, live));
        expect(Array.isArray(plan.errors)).toBe(true);
        expect(Array.isArray(plan.steps)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
