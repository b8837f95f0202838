/**
 * Plan and apply of stacks against the simulator, in process: apply, then
 * the system holds the stack, then the next plan is empty.
 */
import { describe, expect, it } from "vitest";
import { applyPlan, planStack, renderPlan, type Transport } from "@qubes-kit/sdk";
import { DEFAULT, connectSim, demoSimulator, mismatches, policyFile, qube, readFor, stack } from "../fixtures/template/apply/stacks.js";

const machine = stack(
  "laptop",
  [
    qube("tpl-sys", "TemplateVM", { label: "black", memory: 600 }, { source: { clone: "debian-12" } }),
    qube("dvm-sys", "AppVM", { label: "red", template: "tpl-sys", template_for_dispvms: true, netvm: null }, { features: { "appmenus-dispvm": "1" } }),
    qube("sys-vpn", "AppVM", { label: "orange", template: "tpl-sys", provides_network: true, netvm: "sys-firewall" }, { firewall: ["action=accept dsthost=10.0.0.1 proto=udp dstports=1194", "action=drop"] }),
    qube("vault-gpg", "AppVM", { label: "black", template: "debian-12", netvm: null }, { tags: ["gpg-server"], notes: "keys live here" }),
    qube("work2", "AppVM", { label: "blue", template: "debian-12", netvm: "sys-vpn", memory: 800, default_dispvm: "dvm-sys" }, {
      tags: ["gpg-client"],
      features: { "service.split-gpg2-client": "1", "gui-allow-fullscreen": "" },
      volumes: { private: { size: 4 * 1024 ** 3 } },
    }),
    qube("disp-sys", "DispVM", { label: "red", template: "dvm-sys" }),
  ],
  { policy: [policyFile("gpg", "qubes.Gpg2 * work2 vault-gpg allow\n")], global: { default_dispvm: "dvm-sys" } },
);

describe("template apply on the simulator", () => {
  it("creates a machine, the system then holds the stack, and a second plan is empty", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const { plan } = await planStack(machine, conn);
    expect(plan.errors).toEqual([]);
    const text = renderPlan(plan);
    expect(text).toContain("Plan: 6 to create");
    const outcome = await applyPlan(plan, conn);
    if (outcome.status !== "applied") throw new Error(JSON.stringify(outcome, null, 1).slice(0, 3000));
    expect(outcome.result.failure?.summary).toBeUndefined();
    expect(mismatches(machine, await readFor(machine, conn))).toEqual([]);
    const again = await planStack(machine, conn);
    expect(again.plan.errors).toEqual([]);
    expect(again.plan.steps.map((s) => `${s.id}: ${s.before} -> ${s.after}`)).toEqual([]);
    expect(renderPlan(again.plan)).toContain("No changes.");
  });
});

describe("drift", () => {
  it("is empty right after apply and lists managed settings changed by hand", async () => {
    const { driftStack } = await import("@qubes-kit/sdk");
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const { plan } = await planStack(machine, conn);
    expect((await applyPlan(plan, conn)).status).toBe("applied");
    expect((await driftStack(machine, conn)).drift).toEqual([]);
    const work2 = conn.qubes.qube("work2");
    await work2.setProperty("memory", 1200);
    await work2.tags.add("extra");
    await work2.features.set("service.split-gpg2-client", "");
    await work2.features.set("unmanaged-feature", "1");
    await conn.qubes.qube("sys-vpn").firewall.set(["action=accept"]);
    const r = await driftStack(machine, conn);
    expect(r.drift.map((s) => `${s.object} ${s.key}: ${s.before} -> ${s.after}`).sort()).toEqual([
      'sys-vpn firewall: action=accept -> action=accept dst4=10.0.0.1/32 proto=udp dstports=1194-1194\naction=drop',
      "work2 feature service.split-gpg2-client: \"\" -> \"1\"",
      "work2 memory: 1200 -> 800",
      "work2 tag extra: present -> absent (tags: does not list it)",
    ]);
  });
});

describe("failure in the middle, and resume", () => {
  it("stops at the first refused step with qubesd's message; the next plan holds only what is left", async () => {
    const { executePlan, memoryJournal } = await import("@qubes-kit/sdk");
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const { plan } = await planStack(machine, conn);
    // Someone creates a qube with a declared name after the plan was made.
    await conn.qubes.createQube({ class: "AppVM", name: "disp-sys", label: "green", template: "debian-12" });
    const journal = memoryJournal();
    const r = await executePlan(plan, conn, { journal });
    expect(r.failure?.summary).toMatch(/^step \d+\/\d+ disp-sys\.create failed: admin\.vm\.Create\.DispVM dvm-sys: QubesVMAlreadyExistsError: Qube already exists: disp-sys$/);
    expect(r.applied).toBeGreaterThan(5);
    expect(journal.entries.at(-2)).toMatchObject({ event: "call", step: "disp-sys.create", ok: false, error: { type: "QubesVMAlreadyExistsError" } });
    // The re-plan sees what exists: the unowned disp-sys is an error until it is removed.
    const blocked = await planStack(machine, conn);
    expect(blocked.plan.errors.map((e) => e.code)).toEqual(["unowned-qube"]);
    await conn.qubes.removeQube("disp-sys");
    const resume = await planStack(machine, conn);
    expect(resume.plan.errors).toEqual([]);
    expect(resume.plan.steps.some((s) => s.kind === "create" && s.object !== "disp-sys")).toBe(false);
    expect((await applyPlan(resume.plan, conn)).status).toBe("applied");
    expect(mismatches(machine, await readFor(machine, conn))).toEqual([]);
    expect((await planStack(machine, conn)).plan.steps).toEqual([]);
  });

  it("resumes a qube created by an apply that stopped before marking it as the stack's", async () => {
    const { adminPolicyTarget, executePlan, memoryJournal, PolicyAdmin, Qubes } = await import("@qubes-kit/sdk");
    const { simulatorTransport } = await import("@qubes-kit/sdk/sim");
    const sim = demoSimulator();
    const inner = simulatorTransport(sim);
    // qubesd refuses the ownership mark of the new qube once (right after admin.vm.Create).
    let refused = 0;
    const transport: Transport = {
      description: "a qubesd that refuses one call",
      call(req, o) {
        if (req.method === "admin.vm.feature.Set" && req.dest === "new1" && req.arg === "x-qkit-stack" && refused++ === 0)
          return (async function* () {
            yield new TextEncoder().encode("2\0QubesException\0\0refused once by the test\0");
          })();
        return inner.call(req, o);
      },
      runService: inner.runService?.bind(inner),
    };
    const conn = { qubes: new Qubes({ transport }), policy: adminPolicyTarget(new PolicyAdmin(transport)) };
    const s = stack("mine", [qube("new1", "AppVM", { label: "red", template: "debian-12", memory: 700 })]);
    const { plan } = await planStack(s, conn);
    // The creation is recorded before admin.vm.Create, and dropped from the record at the end.
    const record = plan.steps.find((x) => x.id === "global.keys-create")!;
    expect(record.after).toBe("qube:new1");
    expect(plan.steps.find((x) => x.id === "new1.create")!.requires).toContain("global.keys-create");
    const r = await executePlan(plan, conn, { journal: memoryJournal() });
    expect(r.failure?.summary).toMatch(/new1\.create failed: .*QubesException: refused once by the test$/);
    expect(sim.app.domains.has("new1")).toBe(true);
    expect(await conn.qubes.qube("new1").features.get("x-qkit-stack")).toBeUndefined();
    // The next plan marks it (no --adopt, no unowned-qube error) and converges.
    const again = await planStack(s, conn);
    expect(again.plan.errors).toEqual([]);
    expect(again.plan.warnings.map((w) => w.code)).toContain("resumed-create");
    expect(again.plan.steps.find((x) => x.object === "new1")!.kind).toBe("adopt");
    expect((await applyPlan(again.plan, conn)).status).toBe("applied");
    expect(await conn.qubes.qube("new1").features.get("x-qkit-stack")).toBe("mine");
    expect(await conn.qubes.qube("dom0").features.get("x-qkit-globals-mine")).toBeUndefined();
    expect(mismatches(s, await readFor(s, conn))).toEqual([]);
    expect((await planStack(s, conn)).plan.steps).toEqual([]);
    // A recorded name is not a licence: a same-named qube of another class stays someone else's.
    const other = stack("mine", [qube("new2", "TemplateVM", { label: "red" })]);
    await conn.qubes.qube("dom0").features.set("x-qkit-globals-mine", "qube:new2");
    await conn.qubes.createQube({ class: "AppVM", name: "new2", label: "red", template: "debian-12" });
    expect((await planStack(other, conn)).plan.errors.map((e) => e.code)).toEqual(["unowned-qube"]);
  });

  it("refuses at plan time to remove a qube that stays in use, naming its users", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const v1 = stack("p", [qube("p-dvm", "AppVM", { label: "red", template: "debian-12", template_for_dispvms: true }), qube("p-a", "AppVM", { label: "red", template: "debian-12" })]);
    expect((await applyPlan((await planStack(v1, conn)).plan, conn)).status).toBe("applied");
    // Used by hand outside the stack, and by the global default.
    await conn.qubes.qube("work").setProperty("default_dispvm", "p-dvm");
    const defaultDispvm = (await conn.qubes.get("default_dispvm")) as string;
    await conn.qubes.setProperty("default_dispvm", "p-dvm");
    const v2 = stack("p", [qube("p-a", "AppVM", { label: "red", template: "debian-12" }), qube("p-new", "DispVM", { label: "red", template: "p-dvm" })]);
    const { plan } = await planStack(v2, conn, { prune: true });
    expect(plan.errors).toEqual([
      {
        code: "removal-in-use",
        message: "the plan removes qube 'p-dvm', but p-new (template, to be created), the global default_dispvm, work (default_dispvm) still use it after the plan (qubesd refuses to remove a qube in use); point them at another qube first, or keep 'p-dvm' declared",
      },
    ]);
    // Pointed elsewhere (and the disposable no longer declared): the removal plans and applies.
    await conn.qubes.qube("work").resetProperty("default_dispvm");
    await conn.qubes.setProperty("default_dispvm", defaultDispvm);
    const v3 = stack("p", [qube("p-a", "AppVM", { label: "red", template: "debian-12" })]);
    const ok = await planStack(v3, conn, { prune: true });
    expect(ok.plan.errors).toEqual([]);
    expect((await applyPlan(ok.plan, conn)).status).toBe("applied");
    expect(sim.app.domains.has("p-dvm")).toBe(false);
  });

  it("marks a firewall change by what it does to access: a reset to accept-all grants, an added drop rule revokes", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const fw = (rules?: string[]) => stack("fw", [qube("fw-a", "AppVM", { label: "red", template: "debian-12" }, rules ? { firewall: rules } : {})]);
    const v1 = fw(["action=accept dsthost=10.0.0.1 proto=udp dstports=1194", "action=drop"]);
    const first = (await planStack(v1, conn)).plan;
    // A new qube's firewall restricts qubesd's accept-all default.
    expect(first.steps.find((x) => x.kind === "set-firewall")!.risk).toBe("revokes-access");
    expect((await applyPlan(first, conn)).status).toBe("applied");
    const risk = async (m: ReturnType<typeof fw>) => (await planStack(m, conn)).plan.steps.find((x) => x.kind === "set-firewall")?.risk;
    expect(await risk(fw())).toBe("grants-access");
    const back = renderPlan((await planStack(fw(), conn)).plan);
    expect(back).toMatch(/~ firewall +2 rules → action=accept \(no longer declared\) {4}⚠ grants access/);
    // The rules' diff shows rules only: the note is on the line above.
    expect(back).toContain("\n          - action=accept dst4=10.0.0.1/32 proto=udp dstports=1194-1194\n          - action=drop\n          + action=accept\n");
    expect(await risk(fw(["action=drop dsthost=10.0.0.2", "action=accept dsthost=10.0.0.1 proto=udp dstports=1194", "action=drop"]))).toBe("revokes-access");
    expect(await risk(fw(["action=drop"]))).toBe("revokes-access");
    expect(await risk(fw(["action=accept dsthost=10.0.0.1 proto=udp dstports=1194", "action=accept dsthost=10.0.0.3", "action=drop"]))).toBe("grants-access");
    expect(renderPlan((await planStack(fw(["action=drop"]), conn)).plan)).toMatch(/~ firewall +2 rules → action=drop {4}revokes access/);
    // No rules at all: qubesd refuses an empty list, so the plan says so.
    expect((await planStack(fw([]), conn)).plan.errors.map((e) => e.code)).toEqual(["invalid-firewall-rule"]);
    // A reorder is not worked out: it may let through what was dropped, so it is marked.
    expect(await risk(fw(["action=drop", "action=accept dsthost=10.0.0.1 proto=udp dstports=1194"]))).toBe("grants-access");
    expect(await risk(fw(["action=accept dsthost=10.0.0.1 proto=udp dstports=1194"]))).toBe("grants-access");
  });

  it("rehearses on a copy whose qubes keep their live qid, so ip and what derives from it are the live values", async () => {
    const { readLight, simulatorFromLive, Qubes } = await import("@qubes-kit/sdk");
    const { simulatorTransport } = await import("@qubes-kit/sdk/sim");
    const sim = demoSimulator();
    const conn = connectSim(sim);
    // A gap in the numbers: a copy that numbered the qubes afresh would give q3 another qid (and ip).
    for (const n of ["q1", "q2", "q3"]) await conn.qubes.createQube({ class: "AppVM", name: n, label: "red", template: "debian-12" });
    await conn.qubes.removeQube("q1");
    await conn.qubes.removeQube("q2");
    const live = await readLight(conn.qubes, conn.policy);
    const copy = new Qubes({ transport: simulatorTransport(simulatorFromLive(live)) });
    for (const n of ["q3", "work", "sys-net"]) {
      expect([n, await copy.qube(n).get("qid")]).toEqual([n, await conn.qubes.qube(n).get("qid")]);
      expect([n, await copy.qube(n).get("ip")]).toEqual([n, await conn.qubes.qube(n).get("ip")]);
    }
    // A qube created in the rehearsal takes the number qubesd would give it (the lowest free one).
    await copy.createQube({ class: "AppVM", name: "q4", label: "red", template: "debian-12" });
    await conn.qubes.createQube({ class: "AppVM", name: "q4", label: "red", template: "debian-12" });
    expect(await copy.qube("q4").get("qid")).toBe(await conn.qubes.qube("q4").get("qid"));
  });

  it("rehearses a stack rule that includes an include file it does not manage", async () => {
    const sim = demoSimulator({ "30-user.policy": "qubes.Filecopy * work @default ask\n", "include/extra": "qubes.Inc * @anyvm @anyvm allow\n" });
    const conn = connectSim(sim);
    const s = stack("inc", [], { policy: [policyFile("main", "!include include/extra\nqubes.Inc * work vault deny\n")] });
    const { plan } = await planStack(s, conn);
    expect(plan.errors).toEqual([]);
    expect((await applyPlan(plan, conn)).status).toBe("applied");
    expect((await planStack(s, conn)).plan.steps).toEqual([]);
  });

  it("says when --take-over takes a global from another stack", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const g = (name: string) => stack(name, [], { global: { default_dispvm: "default-dvm" } });
    expect((await applyPlan((await planStack(g("ga"), conn)).plan, conn)).status).toBe("applied");
    expect((await planStack(g("gb"), conn)).plan.errors.map((e) => e.code)).toEqual(["owned-by-other-stack"]);
    const taken = (await planStack(g("gb"), conn, { takeOver: true })).plan;
    expect(taken.errors).toEqual([]);
    expect(taken.warnings).toContainEqual({ code: "take-over", message: "global property 'default_dispvm' is taken over from stack 'ga' (--take-over): 'ga' no longer manages it and will refuse to plan it" });
    expect(renderPlan(taken)).toContain("warning[take-over]: global property 'default_dispvm' is taken over from stack 'ga'");
  });

  it("refuses a plan the rehearsal rejects, before any call reaches the system", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    // `work` does not provide network: qubesd refuses it as a netvm.
    const bad = stack("bad", [qube("c1", "AppVM", { label: "red", template: "debian-12", netvm: "work" })]);
    const { plan } = await planStack(bad, conn);
    expect(plan.errors).toEqual([]);
    const outcome = await applyPlan(plan, conn);
    expect(outcome.status).toBe("rehearsal-failed");
    if (outcome.status !== "rehearsal-failed") return;
    expect(outcome.rehearsal.failure!.summary).toMatch(/^step \d+\/\d+ c1\.p\.netvm failed: admin\.vm\.property\.Set netvm on c1: Qubes\w*Error: .*provide.* network/);
    expect(outcome.rehearsal.failure!.step.id).toBe("c1.p.netvm");
    expect(sim.app.domains.has("c1")).toBe(false);
  });

  it("refuses a stale plan", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const { plan } = await planStack(machine, conn);
    await conn.qubes.qube("work").setProperty("memory", 999);
    expect((await applyPlan(plan, conn)).status).toBe("applied");
    const again = await planStack(machine, conn);
    await conn.qubes.qube("vault-gpg").tags.add("x");
    expect((await applyPlan({ ...again.plan, steps: [] }, conn)).status).toBe("stale");
  });
});

describe("ownership", () => {
  it("never touches an unowned qube without --adopt; with it, takes the qube over", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const s = stack("mine", [qube("work", "AppVM", { memory: 1000 }, { tags: ["gpg-client", "mine"] })]);
    const { plan } = await planStack(s, conn);
    expect(plan.errors).toEqual([{ code: "unowned-qube", message: "qube 'work' exists and is not managed by stack 'mine'; use --adopt to take it over, or rename the declaration" }]);
    expect((await applyPlan(plan, conn)).status).toBe("errors");
    const adopted = await planStack(s, conn, { adopt: true });
    expect(adopted.plan.errors).toEqual([]);
    expect(adopted.plan.steps[0]!.kind).toBe("adopt");
    expect((await applyPlan(adopted.plan, conn)).status).toBe("applied");
    expect(await conn.qubes.qube("work").features.get("x-qkit-stack")).toBe("mine");
    expect((await planStack(s, conn)).plan.steps).toEqual([]);
    const other = stack("other", [qube("work", "AppVM", { memory: 500 })]);
    expect((await planStack(other, conn)).plan.errors.map((e) => e.message)).toEqual([
      "qube 'work' is owned by stack 'mine' (feature x-qkit-stack); remove it from one of the stacks, or use --take-over to take it from stack 'mine'",
    ]);
    // --adopt takes only qubes no stack owns; --take-over takes it from the other stack, and says so.
    expect((await planStack(other, conn, { adopt: true })).plan.errors.map((e) => e.code)).toEqual(["owned-by-other-stack"]);
    const taken = await planStack(other, conn, { takeOver: true });
    expect(taken.plan.errors).toEqual([]);
    expect(renderPlan(taken.plan)).toMatch(/~ qube +work +take over from stack 'mine' ⚠/);
    expect((await applyPlan(taken.plan, conn)).status).toBe("applied");
    expect(await conn.qubes.qube("work").features.get("x-qkit-stack")).toBe("other");
  });

  it("records a new key before its setting changes, so a half-done apply still knows what it set", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const v1 = stack("k", [qube("k1", "AppVM", { label: "red", template: "debian-12" })]);
    expect((await applyPlan((await planStack(v1, conn)).plan, conn)).status).toBe("applied");
    expect(await conn.qubes.qube("k1").features.get("x-qkit-keys")).toBe("p:label p:template");
    const v2 = stack("k", [qube("k1", "AppVM", { label: "red", template: "debian-12", vcpus: 3 })]);
    const { plan } = await planStack(v2, conn);
    expect(plan.steps.map((x) => `${x.id} ${x.after}`)).toEqual(["k1.keys-first p:label p:template p:vcpus", "k1.p.vcpus 3"]);
  });

  it("resets a setting whose key was removed from the file", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const v1 = stack("s", [qube("q1", "AppVM", { label: "red", template: "debian-12", memory: 700, vcpus: 3 }, { features: { a: "1" }, tags: ["t1"], firewall: ["action=drop"] })]);
    expect((await applyPlan((await planStack(v1, conn)).plan, conn)).status).toBe("applied");
    const v2 = stack("s", [qube("q1", "AppVM", { label: "red", template: "debian-12", vcpus: 3 })]);
    const { plan } = await planStack(v2, conn);
    expect(plan.steps.map((s) => `${s.kind} ${s.key}`)).toEqual(["remove-tag tag t1", "reset-property memory", "remove-feature feature a", "set-firewall firewall", "record-keys x-qkit-keys"]);
    expect((await applyPlan(plan, conn)).status).toBe("applied");
    const q = sim.app.domains.get("q1")!;
    expect([q.isDefault("memory"), q.features.has("a"), q.tags.has("t1"), q.firewall]).toEqual([true, false, false, ["action=accept"]]);
    expect((await planStack(v2, conn)).plan.steps).toEqual([]);
  });

  it("ignores words in the keys record that are no key, warns, and drops them from the record", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const v1 = stack("s", [qube("q1", "AppVM", { label: "red", template: "debian-12", memory: 700 })]);
    expect((await applyPlan((await planStack(v1, conn)).plan, conn)).status).toBe("applied");
    const q = sim.app.domains.get("q1")!;
    const good = q.features.get("x-qkit-keys");
    q.setFeature("x-qkit-keys", `${good} {"json":1} p:`);
    const { plan } = await planStack(v1, conn);
    expect(plan.errors).toEqual([]);
    expect(plan.warnings).toEqual([
      { code: "ownership-record", message: `qube 'q1': its x-qkit-keys feature holds '{"json":1}', 'p:', which qkit never writes; ignored, and dropped from the record by the next apply` },
    ]);
    // Bookkeeping only: no setting changes, the record is written back without the strange words.
    expect(plan.steps.map((s) => [s.kind, s.after])).toEqual([["record-keys", good]]);
    expect((await applyPlan(plan, conn)).status).toBe("applied");
    expect(q.features.get("x-qkit-keys")).toBe(good);
    const again = (await planStack(v1, conn)).plan;
    expect([again.steps, again.warnings ?? []]).toEqual([[], []]);
  });
});

describe("labels the stack created", () => {
  it("are recorded before they are created, and removed with --prune once no longer declared and no longer used", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const v1 = stack("s", [qube("q1", "AppVM", { label: "teal", template: "debian-12" })], { labels: { teal: "0x008080" } });
    const { plan } = await planStack(v1, conn);
    const ids = plan.steps.map((s) => s.id);
    expect(ids.indexOf("global.keys-labels")).toBeLessThan(ids.indexOf("label.teal"));
    expect((await applyPlan(plan, conn)).status).toBe("applied");
    const record = () => sim.app.domains.get("dom0")!.features.get("x-qkit-globals-s");
    expect(record()).toBe("label-colour:teal=0x008080 label:teal");
    expect((await planStack(v1, conn)).plan.steps).toEqual([]);

    // No longer declared; q1 moves to another label in the same plan.
    const v2 = stack("s", [qube("q1", "AppVM", { label: "red", template: "debian-12" })]);
    const kept = (await planStack(v2, conn)).plan;
    expect(kept.warnings).toEqual([{ code: "orphan-label", message: "label 'teal' was created by stack 's' and is no longer declared; --prune removes it" }]);
    expect(kept.steps.map((s) => s.kind)).not.toContain("remove-label");
    const pruned = (await planStack(v2, conn, { prune: true })).plan;
    expect(pruned.warnings ?? []).toEqual([]);
    const order = pruned.steps.map((s) => s.id);
    expect(order.indexOf("q1.p.label")).toBeGreaterThanOrEqual(0);
    expect(order.indexOf("label.teal.remove")).toBeGreaterThan(order.indexOf("q1.p.label"));
    // qubesd cannot read back the colour of a label created through admin.label.Create (an AttributeError): none is shown.
    expect(renderPlan(pruned)).toMatch(/\n {2}- label +teal +destroy\n/);
    expect((await applyPlan(pruned, conn)).status).toBe("applied");
    expect([...sim.app.labels.values()].map((l) => l.name)).not.toContain("teal");
    expect(record()).toBeUndefined();
    const after = (await planStack(v2, conn, { prune: true })).plan;
    expect([after.steps, after.warnings ?? []]).toEqual([[], []]);
  });

  it("keeps a label recorded while its removal is deferred, and drops the record only after the label is gone", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const record = () => sim.app.domains.get("dom0")!.features.get("x-qkit-globals-s");
    const v1 = stack("s", [qube("p1", "AppVM", { label: "teal", template: "debian-12" }, { state: "running" })], { labels: { teal: "0x008080" } });
    expect((await applyPlan((await planStack(v1, conn)).plan, conn)).status).toBe("applied");
    expect([sim.app.domains.get("p1")!.power, record()]).toEqual(["Running", "label-colour:teal=0x008080 label:teal"]);
    // p1 runs: its removal, and so the label's, wait; the label stays in the record.
    const v2 = stack("s", []);
    const deferred = (await planStack(v2, conn, { prune: true })).plan;
    expect(deferred.steps.filter((s) => s.deferred).map((s) => s.id).sort()).toEqual(["label.teal.remove", "p1.remove", "p1.shutdown"]);
    expect(deferred.steps.map((s) => s.id)).not.toContain("global.keys");
    expect(renderPlan(deferred)).toContain("Deferred: 2 changes (running: p1; use --restart=if-needed)");
    expect((await applyPlan(deferred, conn)).status).toBe("applied");
    expect(record()).toBe("label-colour:teal=0x008080 label:teal");
    // Once p1 may stop: the label goes, then its record entry.
    const done = (await planStack(v2, conn, { prune: true, restart: "if-needed" })).plan;
    const ids = done.steps.map((s) => s.id);
    expect(ids.indexOf("label.teal.remove")).toBeGreaterThan(ids.indexOf("p1.remove"));
    expect(ids.indexOf("global.keys")).toBeGreaterThan(ids.indexOf("label.teal.remove"));
    expect((await applyPlan(done, conn)).status).toBe("applied");
    expect([[...sim.app.labels.values()].some((l) => l.name === "teal"), record()]).toEqual([false, undefined]);
  });

  it("records a label another stack created as used, and the creator's --prune then keeps it", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const a1 = stack("a", [qube("qa", "AppVM", { label: "teal", template: "debian-12" })], { labels: { teal: "0x008080" } });
    expect((await applyPlan((await planStack(a1, conn)).plan, conn)).status).toBe("applied");
    // Stack b declares the label a created (no qube of b uses it): it records it as used.
    const b1 = stack("b", [qube("qb", "AppVM", { label: "red", template: "debian-12" })], { labels: { teal: "0x008080" } });
    expect((await applyPlan((await planStack(b1, conn)).plan, conn)).status).toBe("applied");
    const dom0 = sim.app.domains.get("dom0")!;
    expect([dom0.features.get("x-qkit-globals-a"), dom0.features.get("x-qkit-globals-b")]).toEqual(["label-colour:teal=0x008080 label:teal", "label-use:teal"]);
    expect((await planStack(b1, conn)).plan.steps).toEqual([]);
    // a no longer declares it and moves qa off it: --prune keeps the label for b.
    const a2 = stack("a", [qube("qa", "AppVM", { label: "red", template: "debian-12" })]);
    const plan = (await planStack(a2, conn, { prune: true })).plan;
    expect(plan.steps.map((x) => x.kind)).not.toContain("remove-label");
    expect(plan.warnings).toEqual([{ code: "label-used-by-other-stack", message: "label 'teal' is no longer declared here but stack 'b' declares it; kept" }]);
    expect((await applyPlan(plan, conn)).status).toBe("applied");
    expect([...sim.app.labels.values()].some((l) => l.name === "teal")).toBe(true);
    // Once b stops declaring it, its record forgets it, and a's --prune removes the label.
    expect((await applyPlan((await planStack(stack("b", [qube("qb", "AppVM", { label: "red", template: "debian-12" })]), conn)).plan, conn)).status).toBe("applied");
    expect(dom0.features.get("x-qkit-globals-b")).toBeUndefined();
    const last = (await planStack(a2, conn, { prune: true })).plan;
    expect(last.steps.map((x) => x.id)).toContain("label.teal.remove");
    expect((await applyPlan(last, conn)).status).toBe("applied");
    expect([...sim.app.labels.values()].some((l) => l.name === "teal")).toBe(false);
  });

  it("keeps a label that a qube outside the stack still uses, and says so", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const v1 = stack("s", [qube("q1", "AppVM", { label: "teal", template: "debian-12" })], { labels: { teal: "0x008080" } });
    expect((await applyPlan((await planStack(v1, conn)).plan, conn)).status).toBe("applied");
    await conn.qubes.createQube({ class: "AppVM", name: "other", label: "teal", template: "debian-12" });
    const v2 = stack("s", [qube("q1", "AppVM", { label: "red", template: "debian-12" })]);
    const plan = (await planStack(v2, conn, { prune: true })).plan;
    expect(plan.steps.map((s) => s.kind)).not.toContain("remove-label");
    expect(plan.warnings).toEqual([
      { code: "label-in-use", message: "label 'teal' is no longer declared but other still uses it after this plan (qubesd refuses to remove a label in use); kept" },
    ]);
    expect((await applyPlan(plan, conn)).status).toBe("applied");
    expect(sim.app.domains.get("dom0")!.features.get("x-qkit-globals-s")).toBe("label-colour:teal=0x008080 label:teal");
  });
});

describe("a new qube without network", () => {
  it("loses its network in its create step, right after admin.vm.Create and its ownership mark, never later in the apply", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const model = stack("s", [qube("vault2", "AppVM", { label: "black", template: "debian-12", netvm: null, memory: 600 })]);
    const { plan } = await planStack(model, conn);
    const create = plan.steps.find((s) => s.id === "vault2.create")!;
    expect(create.calls.slice(0, 3).map((c) => `${c.method}${c.arg ? `+${c.arg}` : ""} ${c.payload}`)).toEqual([
      "admin.vm.Create.AppVM+debian-12 name=vault2 label=black",
      "admin.vm.feature.Set+x-qkit-stack s",
      "admin.vm.property.Set+netvm ",
    ]);
    expect(plan.steps.map((s) => s.id)).not.toContain("vault2.p.netvm");
    expect(renderPlan(plan)).toContain("+ AppVM      vault2  on debian-12 · label black · netvm none\n");
    expect((await applyPlan(plan, conn)).status).toBe("applied");
    const q = sim.app.domains.get("vault2")!;
    expect([q.isDefault("netvm"), q.getProp("netvm")]).toEqual([false, null]);
    expect((await planStack(model, conn)).plan.steps).toEqual([]);
  });
});

describe("the clock qube's clocksync", () => {
  it("warns when the plan removes service.clocksync from the qube that stays the clockvm, not when the clock moves", async () => {
    const sim = demoSimulator();
    const conn = connectSim(sim);
    const base = (features: Record<string, string>, clockvm: string) =>
      stack("s", [qube("q1", "AppVM", { label: "red", template: "debian-12" }, { features }), qube("q2", "AppVM", { label: "red", template: "debian-12" })], { global: { clockvm } });
    expect((await applyPlan((await planStack(base({ "service.clocksync": "1" }, "q1"), conn)).plan, conn)).status).toBe("applied");
    const dropped = (await planStack(base({}, "q1"), conn)).plan;
    expect(dropped.steps.map((x) => x.id)).toContain("q1.f.service.clocksync");
    expect(dropped.warnings).toEqual([
      { code: "clockvm-clocksync", message: "qube 'q1' is the clock qube (clockvm), and step q1.f.service.clocksync removes its service.clocksync: no qube would keep the time; keep the service there, or make another qube the clockvm" },
    ]);
    expect(renderPlan(dropped)).toContain("warning[clockvm-clocksync]: qube 'q1' is the clock qube");
    const disabled = (await planStack(base({ "service.clocksync": "" }, "q1"), conn)).plan;
    expect(disabled.warnings?.map((w) => w.code)).toEqual(["clockvm-clocksync"]);
    const moved = (await planStack(base({}, "q2"), conn)).plan;
    expect(moved.warnings ?? []).toEqual([]);
  });
});


describe("the plan's text", () => {
  it("shows an empty value as \"\", never as nothing", async () => {
    const conn = connectSim(demoSimulator());
    const plan = (await planStack(stack("s", [qube("e1", "AppVM", { label: "red", template: "debian-12", kernel: "" }, { features: { "x-empty": "" } })]), conn)).plan;
    const text = renderPlan(plan);
    expect(text).toMatch(/p\.kernel +""\n|kernel +""\n/);
    expect(text).toMatch(/x-empty +""\n/);
  });
});
