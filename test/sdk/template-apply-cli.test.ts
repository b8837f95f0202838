/**
 * `qkit template plan|apply|drift` over a real socket served by
 * `qkit sim serve`: exit codes, --json, --out and a saved plan, the stale
 * check, confirmation, the journal, and drift.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Qubes } from "@qubes-kit/sdk";
import { runQkit, runQkitOnTerminal, serveSim } from "../helpers/qkit.js";
import { HERE } from "../fixtures/template/apply/stacks.js";

let dir: string;
let socket: string;
let server: Promise<number>;
let env: NodeJS.ProcessEnv;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkit-tpl-"));
  socket = path.join(dir, "qubesd.sock");
  fs.copyFileSync(path.join(HERE, "system.json"), path.join(dir, "system.json"));
  fs.copyFileSync(path.join(HERE, "laptop.json"), path.join(dir, "laptop.json"));
  fs.mkdirSync(path.join(dir, "policy.d"));
  fs.writeFileSync(path.join(dir, "policy.d", "30-user.policy"), "qubes.Filecopy * work @default ask\n");
  env = { QUBESD_SOCKET: socket, XDG_STATE_HOME: path.join(dir, "state") };
  server = (await serveSim(socket, ["--system", "system.json", "--policy-dir", "policy.d"], dir)).done;
});

afterAll(async () => {
  process.emit("SIGTERM");
  await server;
});

describe("qkit template over a socket", () => {
  it("plans, refuses to apply without a terminal or --yes, applies, and then has nothing to do", async () => {
    const plan = await qkit("template", "plan", "laptop.json", "--detailed-exitcode");
    expect([plan.code, plan.err]).toEqual([2, ""]);
    expect(plan.out).toMatch(/^Read \d+ qubes and 1 policy file \(the policy admin api\)\n/);
    expect(plan.out).toContain("  + AppVM      vpn    on debian-12 · label orange\n");
    expect(plan.out).toContain("Plan: 2 to create, 0 to change, 0 to destroy; 1 policy file, 0 global properties.\nBookkeeping: the stack's record on dom0 (no setting changes)\nPolicy: 1 decision changes (1 grant); `qkit template whatif laptop.json` lists them.\nRehearsal on a simulated copy of the system: 13 steps ok.\n");
    const json = await qkit("template", "plan", "laptop.json", "--json");
    expect(json.code).toBe(0);
    const data = JSON.parse(json.out);
    expect([data.qkitPlan, data.stack, data.fingerprint.slice(0, 7)]).toEqual([1, "laptop", "sha256:"]);
    // First the stack's record on dom0 names the qubes it creates (an apply cut between a creation and its ownership mark then resumes).
    expect(data.steps[0]).toMatchObject({ id: "global.keys-create", kind: "record-keys", calls: [{ method: "admin.vm.feature.Set", dest: "dom0", arg: "x-qkit-globals-laptop", payload: "qube:vpn qube:work2" }] });
    expect(data.steps[1]).toMatchObject({ id: "vpn.create", kind: "create", target: "qube vpn", calls: [{ method: "admin.vm.Create.AppVM", dest: "dom0", arg: "debian-12", payload: "name=vpn label=orange" }, { method: "admin.vm.feature.Set", arg: "x-qkit-stack", payload: "laptop" }, { method: "admin.vm.feature.Set", arg: "x-qkit-keys", payload: "f:servicevm fw p:label p:netvm p:provides_network p:template" }] });

    const refused = await qkit("template", "apply", "laptop.json");
    expect([refused.code, refused.err]).toEqual([1, "qkit template apply: refusing to change the system without a terminal to ask on; pass --yes to apply without asking [confirmation-required]\n"]);

    const applied = await qkit("template", "apply", "laptop.json", "--yes");
    expect([applied.code, applied.err]).toEqual([0, ""]);
    expect(applied.out).toMatch(/Rehearsal on a simulated copy of the system: \d+ steps ok\.\n/);
    const journal = /^Journal: (.*)$/m.exec(applied.out)![1]!;
    expect(journal.startsWith(path.join(dir, "state", "qkit", "apply-"))).toBe(true);
    const entries = fs.readFileSync(journal, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(entries[0]).toMatchObject({ event: "apply-start", stack: "laptop" });
    expect(entries.at(-1)).toMatchObject({ event: "apply-done" });
    expect(entries.filter((e) => e.event === "call").every((e) => e.ok === true)).toBe(true);
    expect(applied.out).toMatch(/\[ ?2\/\d+\] vpn\.create AppVM · on debian-12 · label orange … ok \d+ ms\n/);
    expect(fs.readFileSync(path.join(dir, "policy.d", "40-qkit-laptop-gpg.policy"), "utf8")).toBe("# managed by qkit stack laptop; edits are overwritten by `qkit template apply`\nqubes.Gpg2 * work2 vault allow\n");

    const again = await qkit("template", "plan", "laptop.json", "--detailed-exitcode");
    expect([again.code, again.out.split("\n").slice(2).join("\n")]).toEqual([0, "No changes. The system matches the stack.\n"]);
    expect((await qkit("template", "drift", "laptop.json")).code).toBe(0);
  });

  it("reports drift after a change by hand (exit 2), and puts it back", async () => {
    const qubes = Qubes.local(socket);
    await qubes.qube("work2").setProperty("memory", 1024);
    const drift = await qkit("template", "drift", "laptop.json");
    expect([drift.code, drift.out]).toEqual([2, "drift: qube work2 memory: 1024 (stack: 800)\nDrift: 1 managed setting differs from the stack.\n"]);
    const json = JSON.parse((await qkit("template", "drift", "laptop.json", "--json")).out);
    expect(json.drift.map((s: { id: string }) => s.id)).toEqual(["work2.p.memory"]);
    expect((await qkit("template", "apply", "laptop.json", "--yes")).code).toBe(0);
    expect((await qkit("template", "drift", "laptop.json")).code).toBe(0);
  });

  it("applies a saved plan, and refuses it once the system changed", async () => {
    const changed = JSON.parse(fs.readFileSync(path.join(dir, "laptop.json"), "utf8"));
    changed.qubes[1].properties.memory = 900;
    fs.writeFileSync(path.join(dir, "laptop2.json"), JSON.stringify(changed));
    expect((await qkit("template", "plan", "laptop2.json", "--out", "p1.json")).code).toBe(0);
    expect((await qkit("template", "plan", "laptop2.json", "--out", "p2.json")).code).toBe(0);
    const ok = await qkit("template", "apply", "p1.json", "--yes");
    expect([ok.code, ok.err]).toEqual([0, ""]);
    expect(ok.out).toContain("Applied 1 step.");
    const stale = await qkit("template", "apply", "p2.json", "--yes");
    expect([stale.code, stale.err]).toEqual([1, "qkit template apply: the plan is stale: the system changed since it was made (qube work2: memory); run `qkit template plan` again [stale-plan]\n"]);
    expect((await qkit("template", "apply", "p2.json", "--yes", "--adopt")).code).toBe(2);
  });

  it("applies a saved plan whatever its file name (`--out PLAN` takes any name)", async () => {
    const changed = JSON.parse(fs.readFileSync(path.join(dir, "laptop.json"), "utf8"));
    const name = changed.qubes[1].name as string;
    for (const [file, memory] of [["tonight.plan", 700], ["tonight", 650]] as const) {
      changed.qubes[1].properties.memory = memory;
      fs.writeFileSync(path.join(dir, "laptop3.json"), JSON.stringify(changed));
      expect((await qkit("template", "plan", "laptop3.json", "--out", file)).code).toBe(0);
      const applied = await qkit("template", "apply", file, "--yes");
      expect([applied.code, applied.err]).toEqual([0, ""]);
      expect(applied.out).toContain("Applied 1 step.");
      expect(await Qubes.local(socket).qube(name).get("memory")).toBe(memory);
    }
    expect((await qkit("template", "apply", "laptop.json", "--yes")).code).toBe(0);
  });

  it("never overwrites a stack file with --out, and cannot-write errors are one line with a code", async () => {
    const stack = fs.readFileSync(path.join(dir, "laptop.json"), "utf8");
    fs.writeFileSync(path.join(dir, "keep.json"), stack);
    const clobber = await qkit("template", "plan", "laptop.json", "--out", "keep.json");
    expect([clobber.code, clobber.err]).toEqual([1, "qkit template plan: keep.json exists and is not a saved plan; choose another --out file [file-exists]\n"]);
    expect(fs.readFileSync(path.join(dir, "keep.json"), "utf8")).toBe(stack);
    // A previous saved plan is replaced.
    expect((await qkit("template", "plan", "laptop.json", "--out", "again.plan")).code).toBe(0);
    expect((await qkit("template", "plan", "laptop.json", "--out", "again.plan")).code).toBe(0);
    const noDir = await qkit("template", "plan", "laptop.json", "--out", "no/such/dir/p.json");
    expect([noDir.code, noDir.err]).toEqual([1, "qkit template plan: cannot write no/such/dir/p.json: No such file or directory; check that its directory exists and is writable [cannot-write]\n"]);
    fs.mkdirSync(path.join(dir, "plans"), { recursive: true });
    const isDir = await qkit("template", "plan", "laptop.json", "--out", "plans");
    expect([isDir.code, isDir.err]).toEqual([1, "qkit template plan: plans is a directory; give --out a file name [cannot-write]\n"]);
    const changed = JSON.parse(stack);
    changed.qubes[1].properties.memory = 600;
    fs.writeFileSync(path.join(dir, "laptop4.json"), JSON.stringify(changed));
    fs.writeFileSync(path.join(dir, "afile"), "");
    const journal = await qkit("template", "apply", "laptop4.json", "--yes", "--journal", "afile/j.ndjson");
    expect(journal.code).toBe(1);
    expect(journal.err).toMatch(/^qkit template apply: cannot write the journal \S+afile\/j\.ndjson: (Not a directory|File exists); nothing was changed; pass --journal FILE in a writable directory \[cannot-write\]\n$/);
    expect((await qkit("template", "plan", "laptop4.json", "--detailed-exitcode")).code).toBe(2);
  });

  it("refuses a --policy-dir that is not a directory on plan, apply and drift (never reads it as an empty policy)", async () => {
    fs.writeFileSync(path.join(dir, "notadir"), "");
    for (const [verb, extra] of [["plan", []], ["apply", ["--yes"]], ["drift", []]] as const) {
      for (const bad of ["no-such-dir", "notadir"]) {
        const r = await qkit("template", verb, "laptop.json", "--policy-dir", bad, ...extra);
        expect([r.code, r.out, r.err]).toEqual([1, "", `qkit template ${verb}: --policy-dir ${path.join(dir, bad)} is not a directory; give the policy directory (in dom0 /etc/qubes/policy.d) [not-a-directory]\n`]);
      }
    }
    expect(fs.existsSync(path.join(dir, "no-such-dir"))).toBe(false);
  });

  it("answers errors in one line with a code", async () => {
    // A file that cannot be read: the OS's wording and exit 2 in every subcommand, before anything connects.
    for (const verb of ["plan", "apply", "drift", "check", "whatif"])
      expect(await qkit("template", verb, "missing.json")).toMatchObject({ code: 2, err: `qkit template ${verb}: cannot read missing.json: No such file or directory; check the path [file-not-found]\n` });
    expect(await qkit("template", "plan", ".")).toMatchObject({ code: 2, err: "qkit template plan: . is a directory; give a stack file (*.qubes.yaml) or a saved plan [is-a-directory]\n" });
    // --json of a stack that does not check still prints a document (errors with their places, no steps).
    fs.writeFileSync(path.join(dir, "typo.qubes.yaml"), "qkit: 1\nstack: typo\nqubes:\n  a:\n    class: AppVM\n    label: red\n    labl: red\n");
    const typo = await qkit("template", "plan", "typo.qubes.yaml", "--json");
    expect(typo.code).toBe(1);
    expect(JSON.parse(typo.out)).toMatchObject({ qkitPlan: 1, ok: false, stack: "typo", errors: [{ code: "unknown-key", at: "typo.qubes.yaml:7:5" }], steps: [], sideEffects: null });
    // A plan's errors say where in the stack file they are.
    fs.writeFileSync(path.join(dir, "own.qubes.yaml"), "qkit: 1\nstack: own\nqubes:\n  work:\n    class: AppVM\n    label: red\n");
    expect((await qkit("template", "plan", "own.qubes.yaml")).out).toContain("\nown.qubes.yaml:4:3: error[unowned-qube]: qube 'work' exists and is not managed by stack 'own'");
    fs.writeFileSync(path.join(dir, "bad.json"), "{");
    expect((await qkit("template", "plan", "bad.json")).err).toBe("qkit template plan: bad.json is not valid JSON (bad.json:1:2: expected a property name in double quotes (the file ends here)); fix it or write a *.qubes.yaml file [invalid-json]\n");
    // The message says where, never what: a file named by mistake may be a secret.
    fs.writeFileSync(path.join(dir, "secret.json"), "root:*:20000:0:99999:7:::\n");
    expect((await qkit("template", "plan", "secret.json")).err).toBe("qkit template plan: secret.json is not valid JSON (secret.json:1:1: expected a value); fix it or write a *.qubes.yaml file [invalid-json]\n");
    expect((await qkit("sim", "serve", "--socket", path.join(dir, "s.sock"), "--system", "secret.json")).err).toBe("qkit sim serve: the system file `secret.json` is not valid JSON (secret.json:1:1: expected a value); give a GetSystemInfo answer (`qkit system snapshot`) [system-invalid]\n");
    expect((await qkit("template", "plan")).code).toBe(2);
    expect((await qkit("template", "plan", "laptop.json", "--restart=sometimes")).err).toBe("qkit template plan: --restart must be never or if-needed, got `sometimes` [usage]\n");
    const owned = JSON.parse(fs.readFileSync(path.join(dir, "laptop.json"), "utf8"));
    owned.stack = "other";
    fs.writeFileSync(path.join(dir, "other.json"), JSON.stringify(owned));
    const conflict = await qkit("template", "plan", "other.json", "--detailed-exitcode");
    expect(conflict.code).toBe(1);
    expect(conflict.out).toContain("error[owned-by-other-stack]: qube 'vpn' is owned by stack 'laptop' (feature x-qkit-stack); remove it from one of the stacks, or use --take-over to take it from stack 'laptop'\n");
    const down = await runQkit(["template", "plan", "laptop.json"], { cwd: dir, env: { QUBESD_SOCKET: path.join(dir, "nothing.sock") } });
    expect(down.code).toBe(1);
    expect(down.err.split("\n").length).toBe(2);
  });
});

describe("qkit template with a *.qubes.yaml stack", () => {
  it("checks, plans, applies, and then has nothing to do", async () => {
    fs.copyFileSync(path.join(HERE, "desk.qubes.yaml"), path.join(dir, "desk.qubes.yaml"));
    const plan = await qkit("template", "plan", "desk.qubes.yaml", "--detailed-exitcode");
    expect([plan.code, plan.err]).toEqual([2, ""]);
    expect(plan.out).toContain("Plan: 5 to create, 0 to change, 0 to destroy; 1 policy file, 1 global property.\n");
    const applied = await qkit("template", "apply", "desk.qubes.yaml", "--yes");
    expect([applied.code, applied.err]).toEqual([0, ""]);
    const again = await qkit("template", "plan", "desk.qubes.yaml", "--detailed-exitcode");
    // qubesd (and the simulator, which answers as it does) gives no colour for a label created since it
    // started: the stack recorded the colour it created the label with, so the plan compares with that.
    expect([again.code, again.out.split("\n").slice(2).join("\n")]).toEqual([0, "No changes. The system matches the stack.\n"]);
    // Declared with another colour now: an error (qubesd cannot change a label's colour), not a warning.
    fs.writeFileSync(path.join(dir, "desk-red.qubes.yaml"), fs.readFileSync(path.join(dir, "desk.qubes.yaml"), "utf8").replace("0x008080", "0xff0000"));
    const recoloured = await qkit("template", "plan", "desk-red.qubes.yaml");
    expect([recoloured.code, recoloured.out.split("\n")[2]]).toEqual([1, "desk-red.qubes.yaml:6:3: error[label-colour]: label 'teal' exists with colour 0x008080 (this stack created it so), not 0xff0000; qubesd cannot change a label's colour: use another label name"]);
    const qubes = Qubes.local(socket);
    expect(await qubes.qube("office").features.get("x-qkit-keys")).toBe("notes p:label p:memory p:netvm p:template t:desk-user v:private.size");
    expect((await qubes.qube("vpn-desk").features.get("service.qubes-updates-proxy"))).toBe("1");
  });

  it("prints the checker's diagnostics and changes nothing when the stack has errors", async () => {
    fs.writeFileSync(path.join(dir, "broken.qubes.yaml"), "qkit: 1\nstack: broken\nqubes:\n  q:\n    class: AppVM\n    label: red\n    memroy: 3\n");
    const r = await qkit("template", "plan", "broken.qubes.yaml");
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^broken\.qubes\.yaml:7:5: error\[unknown-key\]: /);
    expect(r.err).toBe("qkit template plan: 1 error in the stack; nothing was changed [invalid-stack]\n");
  });
});

describe("qkit template --policy-dir", () => {
  it("reads and writes the policy in a directory, and refuses a malformed model with the field", async () => {
    const pd = path.join(dir, "local-policy");
    fs.mkdirSync(pd);
    const model = { format: 1, stack: "pd", qubes: [], policy: [{ file: "only", priority: 35, rules: "qubes.Gpg * work vault deny\n" }] };
    fs.writeFileSync(path.join(dir, "pd.json"), JSON.stringify(model));
    const applied = await qkit("template", "apply", "pd.json", "--policy-dir", "local-policy", "--yes");
    expect([applied.code, applied.err]).toEqual([0, ""]);
    expect(fs.readdirSync(pd)).toEqual(["35-qkit-pd-only.policy"]);
    expect(fs.existsSync(path.join(dir, "policy.d", "35-qkit-pd-only.policy"))).toBe(false);
    expect((await qkit("template", "plan", "pd.json", "--policy-dir", "local-policy", "--detailed-exitcode")).code).toBe(0);
    expect((await qkit("template", "drift", "pd.json", "--policy-dir", "local-policy")).code).toBe(0);
    fs.writeFileSync(path.join(pd, "35-qkit-pd-only.policy"), "# managed by qkit stack pd; edits are overwritten by `qkit template apply`\nqubes.Gpg * work vault allow\n");
    const drift = await qkit("template", "drift", "pd.json", "--policy-dir", "local-policy");
    // Counted alike on both sides, with the lines that differ (- live, + stack).
    expect([drift.code, drift.out.split("\n").slice(0, 3)]).toEqual([2, ["drift: policy 35-qkit-pd-only.policy: 1 rule (stack: 1 rule)", "    - qubes.Gpg * work vault allow", "    + qubes.Gpg * work vault deny"]]);
    fs.writeFileSync(path.join(dir, "junk.json"), JSON.stringify({ format: 1, stack: "junk", qubes: [{ name: "q", class: "AppVM", properties: { memory: [1] } }] }));
    const junk = await qkit("template", "plan", "junk.json");
    expect([junk.code, junk.out, junk.err]).toEqual([1, "junk.json: error[invalid-model]: qube 'q': properties must map names to values\n", "qkit template plan: 1 error in the stack model; nothing was changed [invalid-stack]\n"]);
  });
});

describe("qkit template plan rehearses", () => {
  it("fails a plan that qubesd would refuse, with the step and qubesd's message, before anything is applied", async () => {
    const model = { format: 1, stack: "reh", qubes: [{ name: "reh1", class: "AppVM", properties: { label: "red", template: "debian-12", netvm: "work" } }] };
    fs.writeFileSync(path.join(dir, "reh.json"), JSON.stringify(model));
    const plan = await qkit("template", "plan", "reh.json", "--detailed-exitcode");
    expect(plan.code).toBe(1);
    expect(plan.err).toMatch(/^qkit template plan: the rehearsal on a simulated copy of the system refused step 3\/4 reh1\.p\.netvm: admin\.vm\.property\.Set netvm on reh1: Qubes\w+Error: .*; apply would refuse this plan \[rehearsal-failed\]\n$/);
    const apply = await qkit("template", "apply", "reh.json", "--yes");
    expect(apply.code).toBe(1);
    expect(apply.err).toMatch(/\[rehearsal-failed\]\n$/);
    expect(await Qubes.local(socket).has("reh1")).toBe(false);
  });
});

describe("qkit template apply on a terminal", () => {
  const onTerminal = (answer: string, argv: string[]) => runQkitOnTerminal(answer, argv, { cwd: dir, env });

  it("asks before changing anything, and only 'yes' applies", async () => {
    const model = { format: 1, stack: "tty", qubes: [{ name: "tty1", class: "AppVM", properties: { label: "red", template: "debian-12" } }] };
    fs.writeFileSync(path.join(dir, "tty.json"), JSON.stringify(model));
    const no = await onTerminal("y\n", ["template", "apply", "tty.json"]);
    expect([no.code, no.err]).toEqual([1, "Apply 3 steps? Only 'yes' is accepted: qkit template apply: not applied.\n"]);
    expect(await Qubes.local(socket).has("tty1")).toBe(false);
    const yes = await onTerminal("yes\n", ["template", "apply", "tty.json"]);
    expect(yes.code).toBe(0);
    expect(await Qubes.local(socket).has("tty1")).toBe(true);
  });
});
