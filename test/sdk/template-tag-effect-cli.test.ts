/**
 * A tag the plan adds or removes on an existing qube is marked by what it does to the policy's
 * decisions, today and after apply (what-if), as policy writes are: `⚠ grants access` when some
 * call gets more (or another target) on either side, `revokes access` when calls only lose,
 * nothing when no decision changes (no policy file names the tag). Added tags go with the grants,
 * after revoking policy writes; a removal goes first unless it grants. A new qube's tags named by
 * the policy count as granting. Over `qkit sim serve`, through the CLI and the SDK.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkStack } from "@qubes-kit/language";
import { adminPolicyTarget, planStack, PolicyAdmin, Qubes, UnixSocketTransport } from "@qubes-kit/sdk";
import { simWorkspace, type SimWorkspace } from "../helpers/sim-workspace.js";

let ws: SimWorkspace;
let dir: string;
let socket: string;
const qkit = (...argv: string[]) => ws.qkit(...argv);
const write = (f: string, text: string) => ws.write(f, text);

/** The policy: `may-copy` lets a qube copy to vault; `no-gpg` takes vault's Gpg away; `plain` is named nowhere (a comment aside). */
const POLICY = [
  "# plain is only in this comment: @tag:plainly",
  "qubes.Filecopy  *  @tag:may-copy  vault  allow",
  "qubes.Gpg  *  @tag:no-gpg  @anyvm  deny",
  "qubes.Gpg  *  @anyvm  vault  allow",
  "",
].join("\n");

function stack(tags: string[]): string {
  return `qkit: 1\nstack: tg\nqubes:\n  tg-q:\n    class: AppVM\n    template: debian-12\n    label: red\n    netvm: none\n${tags.length ? `    tags: [${tags.join(", ")}]\n` : ""}`;
}

beforeAll(async () => {
  ws = await simWorkspace("qkit-tagfx-", { "30-user.policy": POLICY });
  ({ dir, socket } = ws);
});

afterAll(() => ws.stop());

interface Step {
  id: string;
  kind: string;
  risk: string;
}

async function planSteps(file: string): Promise<{ steps: Step[]; text: string }> {
  const json = await qkit("template", "plan", file, "--json");
  expect(json.code).toBe(0);
  const text = await qkit("template", "plan", file);
  return { steps: (JSON.parse(json.out) as { steps: Step[] }).steps, text: text.out };
}

const tagSteps = (steps: Step[]) => Object.fromEntries(steps.filter((s) => s.kind.endsWith("-tag")).map((s) => [s.id, s.risk]));
/** The line of a tag in the plan's text. */
const lineOf = (text: string, tag: string) => text.split("\n").find((l) => l.includes(`tag ${tag}`)) ?? "";

describe("tag changes marked by their decision changes", () => {
  it("adding: grants, revokes or nothing; every added tag goes with the grants", async () => {
    write("tg.qubes.yaml", stack([]));
    expect((await qkit("template", "apply", "tg.qubes.yaml", "--yes")).code).toBe(0);
    write("tg.qubes.yaml", stack(["may-copy", "no-gpg", "plain"]));
    const { steps, text } = await planSteps("tg.qubes.yaml");
    expect(tagSteps(steps)).toEqual({ "tg-q.t.may-copy": "grants-access", "tg-q.t.no-gpg": "revokes-access", "tg-q.t.plain": "none" });
    expect(lineOf(text, "may-copy")).toContain("⚠ grants access");
    expect(lineOf(text, "no-gpg")).not.toContain("grants access");
    expect(lineOf(text, "plain")).not.toContain("grants access");
    // Both after the qube's own changes (with the grants).
    const grantsFrom = steps.findIndex((s) => s.kind === "add-tag");
    expect(steps.slice(grantsFrom).filter((s) => s.kind === "add-tag").length).toBe(3);
    expect((await qkit("template", "apply", "tg.qubes.yaml", "--yes")).code).toBe(0);
  });

  it("removing: the reverse", async () => {
    write("tg.qubes.yaml", stack([]));
    const { steps, text } = await planSteps("tg.qubes.yaml");
    expect(tagSteps(steps)).toEqual({ "tg-q.t.may-copy": "revokes-access", "tg-q.t.no-gpg": "grants-access", "tg-q.t.plain": "none" });
    expect(lineOf(text, "no-gpg")).toContain("⚠ grants access");
    expect(lineOf(text, "may-copy")).not.toContain("grants access");
  });

  it("a new qube's tags: granting when the policy names them, and after the qube exists", async () => {
    write("tn.qubes.yaml", stack(["may-copy", "no-gpg", "plain"]).replace("stack: tg", "stack: tn").replace("tg-q", "tn-q"));
    const { steps } = await planSteps("tn.qubes.yaml");
    expect(tagSteps(steps)).toEqual({ "tn-q.t.may-copy": "grants-access", "tn-q.t.no-gpg": "grants-access", "tn-q.t.plain": "none" });
    const ids = steps.map((s) => s.id);
    const create = steps.findIndex((s) => s.kind === "create");
    expect(create).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf("tn-q.t.no-gpg")).toBeGreaterThan(create);
  });

  it("two tags that each grant alone are both granting, though together either is enough after apply", async () => {
    fs.writeFileSync(path.join(dir, "policy.d", "31-two.policy"), "qubes.Two  *  @tag:two-a  vault  allow\nqubes.Two  *  @tag:two-b  vault  allow\n");
    const t2 = (tags: string[]) => stack(tags).replace("stack: tg", "stack: t2").replace("tg-q", "t2-q");
    write("t2.qubes.yaml", t2([]));
    expect((await qkit("template", "apply", "t2.qubes.yaml", "--yes")).code).toBe(0);
    write("t2.qubes.yaml", t2(["two-a", "two-b"]));
    const { steps } = await planSteps("t2.qubes.yaml");
    expect(tagSteps(steps)).toEqual({ "t2-q.t.two-a": "grants-access", "t2-q.t.two-b": "grants-access" });
  });

  it("a tag that grants under today's policy is granting, and waits for the policy write that takes the grant away", async () => {
    // Today the stack's policy lets tag old-c copy to vault; the new version does not, and the tag is added.
    const t3 = (tags: string[], rule: string) => `${stack(tags).replace("stack: tg", "stack: t3").replace("tg-q", "t3-q")}policy:\n  - file: t3\n    rules: |\n      ${rule}\n`;
    write("t3.qubes.yaml", t3([], "qubes.Old  *  @tag:old-c  vault  allow"));
    expect((await qkit("template", "apply", "t3.qubes.yaml", "--yes")).code).toBe(0);
    write("t3.qubes.yaml", t3(["old-c"], "qubes.Old  *  @tag:old-c  vault  deny"));
    const { steps } = await planSteps("t3.qubes.yaml");
    expect(tagSteps(steps)).toEqual({ "t3-q.t.old-c": "grants-access" });
    const ids = steps.map((s) => s.id);
    const write_ = steps.find((s) => s.kind === "write-policy")!;
    expect(ids.indexOf(write_.id)).toBeLessThan(ids.indexOf("t3-q.t.old-c"));
  });

  it("a tag a `*` rule names is seen on every service (here it takes vault's Gpg away)", async () => {
    fs.writeFileSync(path.join(dir, "policy.d", "29-star.policy"), "*  *  @tag:star-t  vault  deny\n");
    const t5 = (tags: string[]) => stack(tags).replace("stack: tg", "stack: t5").replace("tg-q", "t5-q");
    write("t5.qubes.yaml", t5([]));
    expect((await qkit("template", "apply", "t5.qubes.yaml", "--yes")).code).toBe(0);
    write("t5.qubes.yaml", t5(["star-t"]));
    const { steps } = await planSteps("t5.qubes.yaml");
    expect(tagSteps(steps)).toEqual({ "t5-q.t.star-t": "revokes-access" });
  });

  it("a saved plan whose marks came from the whole policy is stale once any policy file changes", async () => {
    const t4 = (tags: string[]) => stack(tags).replace("stack: tg", "stack: t4").replace("tg-q", "t4-q");
    write("t4.qubes.yaml", t4([]));
    expect((await qkit("template", "apply", "t4.qubes.yaml", "--yes")).code).toBe(0);
    write("t4.qubes.yaml", t4(["no-gpg"]));
    expect((await qkit("template", "plan", "t4.qubes.yaml", "--out", "t4.plan")).code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "t4.plan"), "utf8")).whatifPolicy).toHaveProperty(["30-user.policy"]);
    // Another file, not the stack's: now the tag grants instead.
    const user = path.join(dir, "policy.d", "30-user.policy");
    const before = fs.readFileSync(user, "utf8");
    fs.writeFileSync(user, before + "qubes.Gpg2  *  @tag:no-gpg  vault  allow\n");
    try {
      const applied = await qkit("template", "apply", "t4.plan", "--yes");
      expect([applied.code, applied.err]).toEqual([1, "qkit template apply: the plan is stale: the system changed since it was made (policy file 30-user.policy); run `qkit template plan` again [stale-plan]\n"]);
      expect((await qkit("template", "plan", "t4.qubes.yaml", "--json")).out).toContain('"risk":"grants-access"');
    } finally {
      fs.writeFileSync(user, before);
    }
  });

  it("planStack (the SDK) marks them alike", async () => {
    const ts = (tags: string[]) => stack(tags).replace("stack: tg", "stack: ts").replace("tg-q", "ts-q");
    write("ts.qubes.yaml", ts([]));
    expect((await qkit("template", "apply", "ts.qubes.yaml", "--yes")).code).toBe(0);
    write("ts.qubes.yaml", ts(["may-copy", "no-gpg", "plain"]));
    const model = checkStack({ readFile: (p) => (fs.existsSync(p) ? fs.readFileSync(p, "utf8") : undefined) }, path.join(dir, "ts.qubes.yaml")).model!;
    const transport = new UnixSocketTransport({ path: socket, servicesOverSocket: true });
    const { plan } = await planStack(model, { qubes: new Qubes({ transport }), policy: adminPolicyTarget(new PolicyAdmin(transport)) });
    expect(tagSteps(plan.steps)).toEqual({ "ts-q.t.may-copy": "grants-access", "ts-q.t.no-gpg": "revokes-access", "ts-q.t.plain": "none" });
  });
});
