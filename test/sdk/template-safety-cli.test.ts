/**
 * Apply safety over `qkit sim serve` (findings of the hands-on review, issue 7):
 * the journal never appends to a file that is not a qkit journal (F7).
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
const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
const write = (f: string, text: string) => fs.writeFileSync(path.join(dir, f), text);

const names = async () => (await Qubes.local(socket).list()).map((q) => q.name);

/** A one-qube stack. */
function stack(name: string, qube: string, memory: number, extra = ""): string {
  return `qkit: 1\nstack: ${name}\nqubes:\n  ${qube}:\n    class: AppVM\n    template: debian-12\n    label: red\n    netvm: none\n    memory: ${memory}\n${extra}`;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkit-tplsafe-"));
  socket = path.join(dir, "qubesd.sock");
  fs.copyFileSync(path.join(HERE, "system.json"), path.join(dir, "system.json"));
  fs.mkdirSync(path.join(dir, "policy.d"));
  fs.writeFileSync(path.join(dir, "policy.d", "30-user.policy"), "qubes.Filecopy * work @default ask\n");
  env = { QUBESD_SOCKET: socket, XDG_STATE_HOME: path.join(dir, "state") };
  server = (await serveSim(socket, ["--system", "system.json", "--policy-dir", "policy.d"], dir)).done;
});

afterAll(async () => {
  process.emit("SIGTERM");
  await server;
});

describe("apply --journal (F7)", () => {
  it("refuses the stack file itself and any existing file that is not a qkit journal, changing nothing", async () => {
    write("j7.qubes.yaml", stack("j7", "j7-a", 500));
    write("notes.txt", "my notes\nline two\n");
    write("other.json", `{"qkitPlan": 1, "steps": []}\n`);
    write("noline", "{}");
    const cases: Array<[string, string]> = [
      ["j7.qubes.yaml", "qkit template apply: --journal j7.qubes.yaml is the stack file; nothing was changed; give --journal a new file name [not-a-journal]\n"],
      ["./j7.qubes.yaml", "qkit template apply: --journal ./j7.qubes.yaml is the stack file; nothing was changed; give --journal a new file name [not-a-journal]\n"],
      ["notes.txt", "qkit template apply: --journal notes.txt exists and is not a qkit journal; nothing was changed; give --journal a new file name or an earlier journal [not-a-journal]\n"],
      ["other.json", "qkit template apply: --journal other.json exists and is not a qkit journal; nothing was changed; give --journal a new file name or an earlier journal [not-a-journal]\n"],
      ["noline", "qkit template apply: --journal noline exists and is not a qkit journal; nothing was changed; give --journal a new file name or an earlier journal [not-a-journal]\n"],
      ["policy.d", "qkit template apply: --journal policy.d exists and is not a qkit journal; nothing was changed; give --journal a new file name or an earlier journal [not-a-journal]\n"],
    ];
    const before = new Map(["j7.qubes.yaml", "notes.txt", "other.json", "noline"].map((f) => [f, read(f)]));
    for (const [journal, err] of cases) {
      const r = await qkit("template", "apply", "j7.qubes.yaml", "--yes", "--journal", journal);
      expect([journal, r.code, r.err]).toEqual([journal, 1, err]);
    }
    for (const [f, text] of before) expect(read(f)).toBe(text);
    expect((await names()).includes("j7-a")).toBe(false);
  });

  it("also refuses a saved plan file as the journal, and a symlink to the stack file", async () => {
    write("j7b.qubes.yaml", stack("j7b", "j7b-a", 500));
    expect((await qkit("template", "plan", "j7b.qubes.yaml", "--out", "j7b.plan")).code).toBe(0);
    const plan = read("j7b.plan");
    const r = await qkit("template", "apply", "j7b.plan", "--yes", "--journal", "j7b.plan");
    expect([r.code, r.err]).toEqual([1, "qkit template apply: --journal j7b.plan is the file being applied; nothing was changed; give --journal a new file name [not-a-journal]\n"]);
    fs.symlinkSync(path.join(dir, "j7b.qubes.yaml"), path.join(dir, "link.ndjson"));
    const l = await qkit("template", "apply", "j7b.qubes.yaml", "--yes", "--journal", "link.ndjson");
    expect([l.code, l.err]).toEqual([1, "qkit template apply: --journal link.ndjson is the stack file; nothing was changed; give --journal a new file name [not-a-journal]\n"]);
    expect(read("j7b.plan")).toBe(plan);
    expect(read("j7b.qubes.yaml")).toBe(stack("j7b", "j7b-a", 500));
  });

  it("creates a new journal, appends to an earlier journal (also one from before the marker) and to an empty file", async () => {
    write("j7c.qubes.yaml", stack("j7c", "j7c-a", 500));
    const first = await qkit("template", "apply", "j7c.qubes.yaml", "--yes", "--journal", "logs/j7c.ndjson");
    expect([first.code, first.err]).toEqual([0, ""]);
    write("j7c.qubes.yaml", stack("j7c", "j7c-a", 600));
    const second = await qkit("template", "apply", "j7c.qubes.yaml", "--yes", "--journal", "logs/j7c.ndjson");
    expect([second.code, second.err]).toEqual([0, ""]);
    const entries = read("logs/j7c.ndjson").trim().split("\n").map((l) => JSON.parse(l));
    expect(entries.filter((e) => e.event === "apply-start")).toMatchObject([{ qkitJournal: 1, stack: "j7c" }, { qkitJournal: 1, stack: "j7c" }]);
    expect(entries.filter((e) => e.event === "apply-done")).toHaveLength(2);
    // A journal written before the marker existed starts with an apply-start record.
    const old = `{"time":"2026-12-06T08:59:20.298Z","event":"apply-start","stack":"s1","fingerprint":"sha256:00","steps":1}\n`;
    write("old.ndjson", old);
    write("empty.ndjson", "");
    for (const [journal, memory] of [["old.ndjson", 700], ["empty.ndjson", 800]] as const) {
      write("j7c.qubes.yaml", stack("j7c", "j7c-a", memory));
      const r = await qkit("template", "apply", "j7c.qubes.yaml", "--yes", "--journal", journal);
      expect([journal, r.code, r.err]).toEqual([journal, 0, ""]);
      expect(await Qubes.local(socket).qube("j7c-a").get("memory")).toBe(memory);
    }
    expect(read("old.ndjson").startsWith(old)).toBe(true);
    expect(JSON.parse(read("old.ndjson").split("\n")[1]!)).toMatchObject({ event: "apply-start", qkitJournal: 1, stack: "j7c" });
    expect(JSON.parse(read("empty.ndjson").split("\n")[0]!)).toMatchObject({ event: "apply-start", qkitJournal: 1 });
  });
});

describe("expect: entries in plan and apply (F1)", () => {
  const SAFETY = path.join(HERE, "..", "safety");
  const failLine = "  FAIL qubes.Filecopy ex-a -> vault => deny: expected deny, got allow to vault (deciding rule 40-qkit-ex-main.policy:2)\n";
  const refusal = (verb: string, tail: string) => `qkit template ${verb}: 1 of 2 expectations fails after apply (qubes.Filecopy ex-a -> vault => deny); ${tail}; fix the stack or its expect: entries, or pass --ignore-expect [expectation-failed]\n`;

  it("plan shows the failing expectation and exits 1; apply refuses and changes nothing; --ignore-expect goes on", async () => {
    fs.copyFileSync(path.join(SAFETY, "expect.qubes.yaml"), path.join(dir, "ex.qubes.yaml"));
    const plan = await qkit("template", "plan", "ex.qubes.yaml", "--detailed-exitcode");
    expect([plan.code, plan.err]).toEqual([1, refusal("plan", "apply would refuse this plan")]);
    expect(plan.out).toContain("Plan: 1 to create, 0 to change, 0 to destroy; 1 policy file, 0 global properties.\nBookkeeping: the stack's record on dom0 (no setting changes)\nPolicy: 2 decisions change (2 grant); `qkit template whatif ex.qubes.yaml` lists them.\nWhat-if: 1/2 expectations hold; 1 fails:\n" + failLine);
    const json = JSON.parse((await qkit("template", "plan", "ex.qubes.yaml", "--json")).out);
    expect(json.expectations).toEqual({ total: 2, failed: [{ expect: "qubes.Filecopy ex-a -> vault => deny", problem: "expected deny, got allow to vault", rule: "40-qkit-ex-main.policy:2" }] });

    const apply = await qkit("template", "apply", "ex.qubes.yaml", "--yes");
    expect([apply.code, apply.err]).toEqual([1, refusal("apply", "nothing was changed")]);
    expect(apply.out).toContain(failLine);
    expect((await names()).includes("ex-a")).toBe(false);
    expect(fs.existsSync(path.join(dir, "policy.d", "40-qkit-ex-main.policy"))).toBe(false);

    // A saved plan carries the result: applying it is refused the same way.
    await qkit("template", "plan", "ex.qubes.yaml", "--out", "ex.plan");
    const saved = await qkit("template", "apply", "ex.plan", "--yes");
    expect([saved.code, saved.err]).toEqual([1, refusal("apply", "nothing was changed")]);
    expect((await names()).includes("ex-a")).toBe(false);

    const ignored = await qkit("template", "plan", "ex.qubes.yaml", "--detailed-exitcode", "--ignore-expect");
    expect([ignored.code, ignored.err]).toEqual([2, ""]);
    expect(ignored.out).toContain(failLine);
    const applied = await qkit("template", "apply", "ex.plan", "--yes", "--ignore-expect");
    expect([applied.code, applied.err]).toEqual([0, ""]);
    expect((await names()).includes("ex-a")).toBe(true);
  });

  it("says that every expectation holds", async () => {
    const fixed = fs.readFileSync(path.join(SAFETY, "expect.qubes.yaml"), "utf8").replace("qubes.Filecopy * ex-a vault allow", "qubes.Filecopy * ex-a vault deny");
    write("ex.qubes.yaml", fixed);
    const plan = await qkit("template", "plan", "ex.qubes.yaml", "--detailed-exitcode");
    expect([plan.code, plan.err]).toEqual([2, ""]);
    expect(plan.out).toContain("What-if: 2/2 expectations hold\n");
    expect((await qkit("template", "apply", "ex.qubes.yaml", "--yes")).code).toBe(0);
    const again = await qkit("template", "plan", "ex.qubes.yaml", "--detailed-exitcode");
    expect([again.code, again.out.split("\n").slice(2).join("\n")]).toEqual([0, "No changes. The system matches the stack.\nWhat-if: 2/2 expectations hold\n"]);
  });
});

describe("protect: true and --prune (F2, F2b)", () => {
  const SAFETY = path.join(HERE, "..", "safety");
  const full = () => fs.readFileSync(path.join(SAFETY, "protect.qubes.yaml"), "utf8");
  /** The stack without the blocks of `drop`. */
  const without = (...drop: string[]) => {
    let text = full();
    for (const q of drop) text = text.replace(new RegExp(`  ${q}:\\n(    .*\\n)+`), "");
    return text;
  };

  it("records protect with the keys, and --prune never removes a protected qube once its block is gone", async () => {
    write("pr.qubes.yaml", full());
    expect((await qkit("template", "apply", "pr.qubes.yaml", "--yes")).code).toBe(0);
    expect(await Qubes.local(socket).qube("pr-keep").features.get("x-qkit-keys")).toBe("p:label p:netvm p:template protect");
    write("pr.qubes.yaml", without("pr-keep"));
    const plan = await qkit("template", "plan", "pr.qubes.yaml", "--prune", "--detailed-exitcode");
    expect([plan.code, plan.err]).toEqual([0, ""]);
    expect(plan.out).toContain("warning[protected]: qube 'pr-keep' is protected (an earlier apply recorded `protect: true` in x-qkit-keys), so --prune leaves it; to remove it, declare it again with `absent: true` and apply\n");
    expect(plan.out).toContain("Owned but no longer declared (kept: protected, or installed by the package manager): pr-keep\n");
    const json = JSON.parse((await qkit("template", "plan", "pr.qubes.yaml", "--prune", "--json")).out);
    expect(json.warnings.map((w: { code: string }) => w.code)).toEqual(["protected"]);
    expect(json.steps).toEqual([]);
    const apply = await qkit("template", "apply", "pr.qubes.yaml", "--prune", "--yes");
    expect([apply.code, apply.err]).toEqual([0, ""]);
    expect((await names()).includes("pr-keep")).toBe(true);
    // Released by declaring it absent: removed.
    write("pr.qubes.yaml", full().replace("    protect: true\n", "    absent: true\n"));
    const released = await qkit("template", "apply", "pr.qubes.yaml", "--yes");
    expect([released.code, released.err]).toEqual([0, ""]);
    expect((await names()).includes("pr-keep")).toBe(false);
  });

  it("warns when --prune removes a qube the stack's policy or expectations still name, and the expectation fails on the pruned future", async () => {
    write("pr.qubes.yaml", full().replace(/  pr-keep:\n(    .*\n)+/, ""));
    expect((await qkit("template", "apply", "pr.qubes.yaml", "--yes")).code).toBe(0);
    write("pr.qubes.yaml", without("pr-keep", "pr-named"));
    const plan = await qkit("template", "plan", "pr.qubes.yaml", "--prune");
    expect(plan.out).toContain(
      "warning[pruned-but-named]: --prune removes qube 'pr-named', but policy file 'main' (rule 1) still names it; remove it there too, or declare the qube again\n" +
        "warning[pruned-but-named]: --prune removes qube 'pr-named', but the expectation `qubes.Filecopy pr-client -> pr-named` still names it; remove it there too, or declare the qube again\n",
    );
    expect(plan.out).toContain("  FAIL qubes.Filecopy pr-client -> pr-named => allow: ");
    expect(plan.code).toBe(1);
    const apply = await qkit("template", "apply", "pr.qubes.yaml", "--prune", "--yes");
    expect([apply.code, apply.err]).toEqual([1, "qkit template apply: 1 of 1 expectation fails after apply (qubes.Filecopy pr-client -> pr-named => allow); nothing was changed; fix the stack or its expect: entries, or pass --ignore-expect [expectation-failed]\n"]);
    expect((await names()).includes("pr-named")).toBe(true);
    // An entry whose decision the pruned qube's absence keeps (deny) fails too: the next check
    // refuses a name no longer declared, so the plan must not say it holds.
    write("pr.qubes.yaml", without("pr-keep", "pr-named").replace("pr-named\", decision: allow}", "pr-named\", decision: deny}"));
    const deny = await qkit("template", "plan", "pr.qubes.yaml", "--prune");
    expect(deny.out).toContain("  FAIL qubes.Filecopy pr-client -> pr-named => deny: names qube 'pr-named', which this plan removes (--prune): the next check refuses it as an unknown qube; remove the entry or declare the qube again\n");
    expect(deny.code).toBe(1);
  });
});

describe("global properties another stack manages (F3)", () => {
  const globalStack = (name: string, dvm: string) => `qkit: 1\nstack: ${name}\nglobal:\n  default_dispvm: ${dvm}\nqubes:\n  ${name}-q:\n    class: AppVM\n    template: debian-12\n    label: red\n    netvm: none\n`;

  it("is a conflict unless --take-over (--adopt is not enough), which takes the global over from the other stack's record", async () => {
    const qubes = Qubes.local(socket);
    write("g1.qubes.yaml", globalStack("g1", "work-dvm"));
    write("g2.qubes.yaml", globalStack("g2", "default-dvm"));
    expect((await qkit("template", "apply", "g1.qubes.yaml", "--yes")).code).toBe(0);
    expect(await qubes.qube("dom0").features.get("x-qkit-globals-g1")).toBe("default_dispvm");
    const line = "error[owned-by-other-stack]: global property 'default_dispvm' is managed by stack 'g1' (dom0 feature x-qkit-globals-g1); remove it from one of the stacks, or use --take-over to take it from stack 'g1'\n";
    const plan = await qkit("template", "plan", "g2.qubes.yaml", "--detailed-exitcode");
    expect(plan.code).toBe(1);
    // Said where the global is declared (its key: line 4, column 3).
    expect(plan.out).toContain(`g2.qubes.yaml:4:3: ${line}`);
    const apply = await qkit("template", "apply", "g2.qubes.yaml", "--yes");
    expect([apply.code, apply.err]).toEqual([1, "qkit template apply: the plan has 1 error; fix the stack and try again [plan-errors]\n"]);
    expect(await qubes.get("default_dispvm")).toBe("work-dvm");
    expect((await names()).includes("g2-q")).toBe(false);

    expect((await qkit("template", "plan", "g2.qubes.yaml", "--adopt")).out).toContain(line);
    const adopted = await qkit("template", "apply", "g2.qubes.yaml", "--yes", "--take-over");
    expect([adopted.code, adopted.err]).toEqual([0, ""]);
    expect(await qubes.get("default_dispvm")).toBe("default-dvm");
    expect(await qubes.qube("dom0").features.get("x-qkit-globals-g2")).toBe("default_dispvm");
    expect(await qubes.qube("dom0").features.get("x-qkit-globals-g1")).toBeUndefined();
    // Now g1 is the one in conflict, and dropping the global from g1 no longer resets it.
    expect((await qkit("template", "plan", "g1.qubes.yaml")).out).toContain("error[owned-by-other-stack]: global property 'default_dispvm' is managed by stack 'g2'");
    write("g1.qubes.yaml", globalStack("g1", "work-dvm").replace("global:\n  default_dispvm: work-dvm\n", ""));
    expect((await qkit("template", "plan", "g1.qubes.yaml", "--detailed-exitcode")).code).toBe(0);
  });
});

describe("policy writes ordered by their decision changes (F6)", () => {
  const f6 = (memory: number, rules: string) => `qkit: 1\nstack: f6\nqubes:\n  f6-a:\n    class: AppVM\n    template: debian-12\n    label: red\n    netvm: none\n    memory: ${memory}\npolicy:\n  - file: main\n    rules: |\n${rules.split("\n").map((l) => `      ${l}`).join("\n")}\n`;
  const planOf = async () => JSON.parse((await qkit("template", "plan", "f6.qubes.yaml", "--json")).out) as { steps: Array<{ id: string; kind: string; risk: string }> };

  it("puts a write that only revokes first (revokes-access), one that grants after the qubes (grants-access), one that changes no decision as neither", async () => {
    write("f6.qubes.yaml", f6(500, "qubes.Filecopy * f6-a vault allow\nqubes.Gpg * f6-a vault allow"));
    expect((await qkit("template", "apply", "f6.qubes.yaml", "--yes")).code).toBe(0);

    write("f6.qubes.yaml", f6(600, "qubes.Filecopy * f6-a vault deny\nqubes.Gpg * f6-a vault allow"));
    const revoke = await planOf();
    expect(revoke.steps.map((s) => [s.id, s.risk])).toEqual([["policy.40-qkit-f6-main", "revokes-access"], ["f6-a.p.memory", "none"]]);
    expect((await qkit("template", "apply", "f6.qubes.yaml", "--yes")).code).toBe(0);

    write("f6.qubes.yaml", f6(700, "qubes.Filecopy * f6-a vault allow\nqubes.Gpg * f6-a vault allow"));
    const grant = await planOf();
    expect(grant.steps.map((s) => [s.id, s.risk])).toEqual([["f6-a.p.memory", "none"], ["policy.40-qkit-f6-main", "grants-access"]]);

    // Both: one allow becomes deny, another deny becomes allow: the grant phase.
    write("f6.qubes.yaml", f6(700, "qubes.Filecopy * f6-a vault deny\nqubes.Gpg * f6-a vault deny\nqubes.OpenURL * f6-a vault allow"));
    const both = await planOf();
    expect(both.steps.map((s) => [s.id, s.risk])).toEqual([["f6-a.p.memory", "none"], ["policy.40-qkit-f6-main", "grants-access"]]);

    write("f6.qubes.yaml", f6(600, "# the same rules, commented\nqubes.Filecopy * f6-a vault deny\nqubes.Gpg * f6-a vault allow"));
    const none = await planOf();
    expect(none.steps.find((s) => s.kind === "write-policy")?.risk).toBe("none");
  });
});

describe("bookkeeping-only steps in the text plan (F12)", () => {
  it("shows a rewrite of the ownership records as bookkeeping, not as a changed qube", async () => {
    write("f12.qubes.yaml", stack("f12", "f12-a", 500));
    expect((await qkit("template", "apply", "f12.qubes.yaml", "--yes")).code).toBe(0);
    write("f12.qubes.yaml", stack("f12", "f12-a", 500).replace("    memory: 500\n", "    memory: 500\n    protect: true\n"));
    const plan = await qkit("template", "plan", "f12.qubes.yaml", "--detailed-exitcode");
    expect([plan.code, plan.err]).toEqual([2, ""]);
    expect(plan.out.split("\n").slice(2).join("\n")).toBe(
      "Plan: 0 to create, 0 to change, 0 to destroy; 0 policy files, 0 global properties.\nBookkeeping: the ownership record of f12-a (no setting changes)\nRehearsal on a simulated copy of the system: 1 step ok.\n",
    );
    expect((await qkit("template", "apply", "f12.qubes.yaml", "--yes")).code).toBe(0);
    expect((await qkit("template", "plan", "f12.qubes.yaml", "--detailed-exitcode")).code).toBe(0);
  });
});

describe("the question on a terminal (F13)", () => {
  const onTerminal = (answer: string, argv: string[]) => runQkitOnTerminal(answer, argv, { cwd: dir, env });

  it("is asked after the rehearsal passed, and never when the rehearsal refuses the plan", async () => {
    write("f13.qubes.yaml", stack("f13", "f13-a", 500));
    const no = await onTerminal("no\n", ["template", "apply", "f13.qubes.yaml"]);
    expect([no.code, no.err]).toEqual([1, "Apply 4 steps? Only 'yes' is accepted: qkit template apply: not applied.\n"]);
    expect(no.out).toMatch(/Rehearsal on a simulated copy of the system: 4 steps ok\.\n$/);
    expect(fs.readdirSync(path.join(dir, "state", "qkit")).filter((f) => fs.statSync(path.join(dir, "state", "qkit", f)).size === 0)).toEqual([]);
    expect((await names()).includes("f13-a")).toBe(false);
    // A plan the simulator refuses (a netvm that does not provide network) is never put to the user.
    write("f13.json", JSON.stringify({ format: 1, stack: "f13", qubes: [{ name: "f13-a", class: "AppVM", properties: { label: "red", template: "debian-12", netvm: "work" } }] }));
    const refused = await onTerminal("yes\n", ["template", "apply", "f13.json"]);
    expect(refused.code).toBe(1);
    expect(refused.err).not.toContain("Only 'yes' is accepted");
    expect(refused.err).toMatch(/\[rehearsal-failed\]\n$/);
    write("f13.qubes.yaml", stack("f13", "f13-a", 500));
    const yes = await onTerminal("yes\n", ["template", "apply", "f13.qubes.yaml"]);
    expect([yes.code, yes.err]).toEqual([0, "Apply 4 steps? Only 'yes' is accepted: "]);
    expect(yes.out.indexOf("Rehearsal on a simulated copy")).toBeLessThan(yes.out.indexOf("[1/4]"));
    expect((await names()).includes("f13-a")).toBe(true);
  });
});

describe("the stack's rules that never decide once applied", () => {
  it("are warned about at plan time, with the line in the stack file and the broader rule", async () => {
    write(
      "sh.qubes.yaml",
      "qkit: 1\nstack: sh\nqubes:\n  sh-a:\n    class: AppVM\n    template: debian-12\n    label: red\n    netvm: none\npolicy:\n  - file: main\n    rules: |\n      qubes.Gpg * @anyvm @anyvm deny\n      # a comment does not count as a rule\n      qubes.Gpg * sh-a vault allow\n      qubes.Filecopy * sh-a vault ask\n",
    );
    const plan = await qkit("template", "plan", "sh.qubes.yaml");
    expect(plan.out).toContain(
      "sh.qubes.yaml:14:7: warning[stack-rule-shadowed]: policy file 'main' rule 2 (40-qkit-sh-main.policy:4), once applied: rule never decides: the rule at 40-qkit-sh-main.policy:2 matches every call it matches; remove it, or make the broader rule narrower\n",
    );
    expect(plan.out).not.toContain("rule 3 (40-qkit-sh-main.policy:5)");
    const json = JSON.parse((await qkit("template", "plan", "sh.qubes.yaml", "--json")).out);
    expect(json.warnings.filter((w: { code: string }) => w.code === "stack-rule-shadowed").map((w: { at: string }) => w.at)).toEqual(["sh.qubes.yaml:14:7"]);
  });
});
