/**
 * What `qkit template plan` reports, over a real socket (`qkit sim serve`):
 * a qube adopted as it is is counted as adopted, not as changed; when a
 * policy does not load, the plan says why it counts no decision changes
 * instead of leaving its "Policy:" line out; and a finding about a volume's
 * setting points at that setting in the stack file.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Qubes, UnixSocketTransport } from "@qubes-kit/sdk";
import { runQkit, serveSim } from "../helpers/qkit.js";
import { HERE } from "../fixtures/template/apply/stacks.js";

let dir: string;
let server: Promise<number>;
let env: NodeJS.ProcessEnv;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });

const decl = (name: string, klass: string, properties: Record<string, unknown>) => ({ name, class: klass, properties, features: {}, state: "any", absent: false, protect: false, ignore_changes: [] });
const model = (qubes: unknown[], policy: unknown[] = []) => ({
  format: 1,
  stack: "summary",
  global: {},
  labels: {},
  qubes,
  policy,
  expect: [],
  options: { prune: false, restart: "never", policy_priority: 40, adopt: false },
});

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkit-tpl-summary-"));
  const socket = path.join(dir, "qubesd.sock");
  fs.copyFileSync(path.join(HERE, "system.json"), path.join(dir, "system.json"));
  fs.mkdirSync(path.join(dir, "policy.d"));
  fs.writeFileSync(path.join(dir, "policy.d", "30-user.policy"), "qubes.Filecopy * work @default ask\n");
  // Adopted as it is (no setting differs), and adopted with a change.
  fs.writeFileSync(path.join(dir, "adopt.json"), JSON.stringify(model([decl("debian-12", "TemplateVM", {}), decl("work", "AppVM", { memory: 1234 })])));
  fs.writeFileSync(path.join(dir, "writes.json"), JSON.stringify(model([decl("debian-12", "TemplateVM", {})], [{ file: "gpg", priority: 40, rules: "qubes.Gpg2 * work vault allow\n" }])));
  env = { QUBESD_SOCKET: socket, XDG_STATE_HOME: path.join(dir, "state") };
  server = (await serveSim(socket, ["--system", "system.json", "--policy-dir", "policy.d"], dir)).done;
});

afterAll(async () => {
  process.emit("SIGTERM");
  await server;
});

describe("qkit template plan: the summary", () => {
  it("counts a qube adopted as it is as adopted, not as changed", async () => {
    const text = await qkit("template", "plan", "adopt.json", "--adopt");
    expect([text.code, text.err]).toEqual([0, ""]);
    expect(text.out).toContain("Plan: 0 to create, 1 to change, 0 to destroy, 2 to adopt;");
    const json = await qkit("template", "plan", "adopt.json", "--adopt", "--json");
    expect(JSON.parse(json.out).summary).toMatchObject({ create: 0, change: 1, destroy: 0, adopt: 2 });
  });

  it.each([
    // Another file: broken today and after apply.
    ["today and after apply", "50-broken.policy", "the policy does not load, today nor after apply, so the daemon denies every call", ["today", "future"]],
    // The stack's own file, taken over (--adopt): broken today only, the plan rewrites it.
    ["today only", "40-qkit-summary-gpg.policy", "the policy on the system does not load, so the daemon denies every call today", ["today"]],
  ])("says why no decision change is counted when the policy does not load (%s)", async (_when, file, why, whens) => {
    const broken = path.join(dir, "policy.d", file);
    fs.writeFileSync(broken, "qubes.Broken * work vault alow\n");
    try {
      const text = await qkit("template", "plan", "writes.json", "--adopt");
      expect(text.out).toContain(`Policy: decision changes not counted: ${why}: /etc/qubes/policy.d/${file}:1: invalid action: alow; \`qkit policy check\` says more.\n`);
      expect(text.out).not.toMatch(/^Policy: \d+ decision/m);
      const json = JSON.parse((await qkit("template", "plan", "writes.json", "--adopt", "--json")).out);
      expect(json.decisionChanges).toBeUndefined();
      expect(json.policyNotLoading.map((l: { when: string }) => l.when)).toEqual(whens);
      // A saved plan keeps it, and apply reads it back.
      const saved = await qkit("template", "plan", "writes.json", "--adopt", "--out", "p.json");
      expect(saved.code).toBe(0);
      expect(JSON.parse(fs.readFileSync(path.join(dir, "p.json"), "utf8")).policyNotLoading).toHaveLength(whens.length);
    } finally {
      fs.rmSync(broken);
    }
    const fine = await qkit("template", "plan", "writes.json", "--adopt");
    expect(fine.out).toMatch(/^Policy: 1 decision changes \(1 grant\)/m);
    expect(fine.out).not.toContain("not counted");
  });
});

describe("qkit template plan: where a finding points", () => {
  const stackWithSize = (size: string) => `qkit: 1\nstack: vols\nqubes:\n  work:\n    class: AppVM\n    volumes:\n      private:\n        size: ${size}\n`;

  it("points a volume that would shrink at its size, and says the least size to declare as a stack writes it", async () => {
    fs.writeFileSync(path.join(dir, "vols.qubes.yaml"), stackWithSize("1MiB"));
    const r = await qkit("template", "plan", "vols.qubes.yaml", "--adopt", "--json");
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out).errors).toEqual([
      {
        code: "volume-shrink",
        message: "volume work:private is 2147483648 bytes (2 GiB) on the system, more than the declared 1048576 bytes (1 MiB); volumes only grow: declare at least `size: 2GiB`",
        at: "vols.qubes.yaml:8:15",
        provenance: expect.anything(),
      },
    ]);
    // What it says to declare is accepted, and changes nothing.
    fs.writeFileSync(path.join(dir, "vols.qubes.yaml"), stackWithSize("2GiB"));
    const ok = await qkit("template", "plan", "vols.qubes.yaml", "--adopt", "--json");
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out).steps.map((s: { kind: string }) => s.kind)).toEqual(["adopt"]);
  });
});

describe("qkit template plan: tags", () => {
  const tagged = (tags: string[], extra = "") => `qkit: 1\nstack: tagged\nqubes:\n  personal:\n    class: AppVM\n    tags: [${tags.join(", ")}]\n${extra}`;

  it("removes a tag the stack does not list and says so; one it listed before is plainly removed; ignore_changes: [tags] leaves them", async () => {
    fs.writeFileSync(path.join(dir, "tagged.qubes.yaml"), tagged(["backup", "gpg-client"]));
    expect((await qkit("template", "apply", "tagged.qubes.yaml", "--adopt", "--yes")).code).toBe(0);
    // One tag added by hand (or by another tool), one the stack drops.
    const qubes = new Qubes({ transport: new UnixSocketTransport({ path: path.join(dir, "qubesd.sock") }) });
    await qubes.qube("personal").tags.add("handmade");
    fs.writeFileSync(path.join(dir, "tagged.qubes.yaml"), tagged(["backup"]));
    const plan = await qkit("template", "plan", "tagged.qubes.yaml");
    expect(plan.out).toMatch(/\n {6}- tag gpg-client +present → absent\n/);
    expect(plan.out).toMatch(/\n {6}- tag handmade +present → absent \(tags: does not list it\)\n/);
    // Kept as they are with ignore_changes.
    fs.writeFileSync(path.join(dir, "tagged.qubes.yaml"), tagged(["backup"], "    ignore_changes: [tags]\n"));
    const kept = await qkit("template", "plan", "tagged.qubes.yaml", "--json");
    expect(JSON.parse(kept.out).steps.filter((s: { kind: string }) => s.kind.endsWith("-tag"))).toEqual([]);
  });
});
