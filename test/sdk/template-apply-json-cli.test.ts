/**
 * `qkit template apply --json` and `--progress=ndjson`: standard output holds
 * one JSON document at the end (`qkitApply: 1`) and nothing else, or before it
 * one line per step as it ends (`qkitApplyStep: 1`); whatever stops the apply
 * (an unreadable file, an invalid stack, a usage error, a stale plan, no
 * terminal to ask on, a step qubesd refuses) is in the document with its
 * code and message, and exit statuses are those of the text mode.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Qubes, UnixSocketTransport } from "@qubes-kit/sdk";
import type { SimulatorServer } from "@qubes-kit/sdk/sim";
import { onlyDocument, refusing, type StepStatus } from "../helpers/apply-document.js";
import { laptopOnSimulator } from "../helpers/laptop-sim.js";
import { runQkit } from "../helpers/qkit.js";

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });

beforeAll(async () => {
  ({ dir, server, env } = await laptopOnSimulator("qkit-applyjson-"));
});

afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const nothingDone = { ok: false, matches: false, failed: null, resume: null, journal: null, applied: 0, deferred: 0 };

describe("apply --json before any step", () => {
  it("an unreadable file, a usage error, an invalid stack", async () => {
    const missing = await qkit("template", "apply", "missing.qubes.yaml", "--json", "--yes");
    expect(missing.code).toBe(2);
    expect(onlyDocument(missing.out)).toMatchObject({ ...nothingDone, stack: null, error: { code: "file-not-found", message: "cannot read missing.qubes.yaml: No such file or directory; check the path" }, steps: [] });
    expect(missing.err).toBe("qkit template apply: cannot read missing.qubes.yaml: No such file or directory; check the path [file-not-found]\n");

    const usage = await qkit("template", "apply", "laptop.qubes.yaml", "--progress=xml");
    expect(usage.code).toBe(2);
    expect(usage.out).toBe("");
    const usageJson = await qkit("template", "apply", "laptop.qubes.yaml", "--json", "--progress=xml");
    expect(usageJson.code).toBe(2);
    expect(onlyDocument(usageJson.out)).toMatchObject({ ...nothingDone, error: { code: "usage", message: "--progress must be ndjson, got `xml`" } });

    fs.writeFileSync(path.join(dir, "typo.qubes.yaml"), "qkit: 1\nstack: typo\nqubes:\n  a:\n    class: AppVM\n    label: red\n    labl: red\n");
    const typo = await qkit("template", "apply", "typo.qubes.yaml", "--json", "--yes");
    expect(typo.code).toBe(1);
    expect(onlyDocument(typo.out)).toMatchObject({
      ...nothingDone,
      stack: "typo",
      error: { code: "invalid-stack", message: "1 error in the stack; nothing was changed" },
      errors: [{ code: "unknown-key", at: "typo.qubes.yaml:7:5" }],
      steps: [],
    });
  });

  it("no --yes (no terminal to ask on): every step skipped, no journal left, exit 2", async () => {
    const r = await qkit("template", "apply", "laptop.qubes.yaml", "--adopt", "--json");
    expect(r.code).toBe(2);
    const doc = onlyDocument(r.out);
    expect(doc).toMatchObject({ ...nothingDone, stack: "laptop", error: { code: "confirmation-required", message: "--json needs --yes: the plan is not shown in JSON modes; review it with `qkit template plan laptop.qubes.yaml` first" } });
    expect(doc.steps.length).toBeGreaterThan(0);
    expect(doc.steps.every((s) => s.status === "skipped")).toBe(true);
    expect(fs.existsSync(path.join(dir, "state"))).toBe(false);
  });

  it("a step the rehearsal refuses: that step and qubesd's message, nothing sent", async () => {
    // A stack model (the checker of *.qubes.yaml files refuses it before): vault provides no network.
    const model = { format: 1, stack: "reh", qubes: [{ name: "reh-a", class: "AppVM", properties: { label: "red", template: "debian-13-xfce", netvm: "vault" } }] };
    fs.writeFileSync(path.join(dir, "reh.json"), JSON.stringify(model));
    const r = await qkit("template", "apply", "reh.json", "--json", "--yes");
    expect(r.code).toBe(1);
    const doc = onlyDocument(r.out);
    expect(doc).toMatchObject({ ...nothingDone, stack: "reh", error: { code: "rehearsal-failed" }, failed: { id: "reh-a.p.netvm", kind: "set-property", call: { method: "admin.vm.property.Set", dest: "reh-a", arg: "netvm" }, rehearsal: true } });
    expect(doc.steps.every((s) => s.status === "skipped")).toBe(true);
    expect(doc.steps[(doc.failed as { index: number }).index - 1]!.id).toBe("reh-a.p.netvm");
  });

  it("a stale saved plan: what changed", async () => {
    expect((await qkit("template", "plan", "laptop.qubes.yaml", "--adopt", "--out", "p.plan")).code).toBe(0);
    const qubes = new Qubes({ transport: new UnixSocketTransport({ path: server.path }) });
    await qubes.qube("work").setProperty("memory", 777);
    const r = await qkit("template", "apply", "p.plan", "--json", "--yes");
    expect(r.code).toBe(1);
    const doc = onlyDocument(r.out);
    expect(doc).toMatchObject({ ...nothingDone, stack: "laptop", error: { code: "stale-plan", message: "the plan is stale: the system changed since it was made (qube work: memory); run `qkit template plan` again" }, staleChanges: [{ subject: "qube work", what: "memory" }] });
    expect(doc).not.toHaveProperty("changes");
    expect(doc.steps.every((s) => s.status === "skipped")).toBe(true);
    expect(fs.readdirSync(path.join(dir, "state", "qkit"))).toEqual([]);
    await qubes.qube("work").resetProperty("memory");
  });
});

/** Standard output of `--progress=ndjson`: the step lines, then the document. */
function progressAndDocument(out: string): { progress: Array<StepStatus & { qkitApplyStep: number; total: number }>; doc: Record<string, unknown> & { steps: StepStatus[] } } {
  const lines = out.trimEnd().split("\n").map((l) => JSON.parse(l));
  const doc = lines.at(-1);
  expect(doc.qkitApply).toBe(1);
  return { progress: lines.slice(0, -1), doc };
}

describe("apply --json and --progress=ndjson of the steps", () => {
  it("a step qubesd refuses: the step, the call, qubesd's message, the steps not run, how to resume", async () => {
    const r = await refusing(server, "admin.vm.property.Set+memory dom0 name work\0", () => qkit("template", "apply", "laptop.qubes.yaml", "--adopt", "--progress=ndjson", "--yes"));
    expect(r.code).toBe(1);
    const { progress, doc } = progressAndDocument(r.out);
    const i = doc.steps.findIndex((s) => s.id === "work.p.memory");
    expect(doc).toMatchObject({
      ok: false,
      matches: false,
      stack: "laptop",
      error: { code: "apply-failed" },
      failed: { index: i + 1, id: "work.p.memory", kind: "set-property", target: "qube work", key: "memory", type: "QubesException", message: "refused by the test", call: { method: "admin.vm.property.Set", dest: "work", arg: "memory" }, rehearsal: false },
      // Absolute: it resumes from any directory.
      resume: `qkit template apply ${path.join(dir, "laptop.qubes.yaml")} --adopt --progress=ndjson --yes`,
    });
    expect((doc.error as { message: string }).message).toMatch(/^step \d+\/\d+ work\.p\.memory failed: admin\.vm\.property\.Set memory on work: QubesException: refused by the test; applied \d+ of \d+ steps; run apply again to resume from the live state \(journal .*\)$/);
    expect(doc.steps[i]).toMatchObject({ status: "failed", error: { type: "QubesException", message: "refused by the test" } });
    expect(doc.steps.slice(0, i).every((s) => s.status === "ok" || s.status === "deferred")).toBe(true);
    expect(doc.steps.slice(i + 1).every((s) => s.status === "skipped" && s.ms === 0)).toBe(true);
    expect(doc.applied).toBe(doc.steps.filter((s) => s.status === "ok").length);
    // A line per step that ended, the failed one last; none for the steps not run.
    expect(progress.every((l) => l.qkitApplyStep === 1 && l.total === doc.steps.length)).toBe(true);
    expect(progress.map(({ qkitApplyStep: _, total: __, ...s }) => s)).toEqual(doc.steps.slice(0, i + 1));
    const journal = fs.readFileSync(doc.journal as string, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(journal.at(-1)).toMatchObject({ event: "apply-failed", step: "work.p.memory" });
    expect(r.err).toMatch(/^qkit template apply: step \d+\/\d+ work\.p\.memory failed: .* \[apply-failed\]\n$/);
  });

  it("resumed from the live state: everything applied but what waits for running qubes (exit 2)", async () => {
    const r = await qkit("template", "apply", "laptop.qubes.yaml", "--json", "--yes");
    expect([r.code, r.err]).toEqual([2, ""]);
    const doc = onlyDocument(r.out);
    expect(doc).toMatchObject({ ok: true, matches: false, stack: "laptop", error: null, failed: null, resume: null, deferred: 3 });
    expect(doc.steps.find((s) => s.id === "work.p.memory")).toMatchObject({ kind: "set-property", status: "ok" });
    expect(doc.steps.map((s) => s.status).sort()).toEqual(["deferred", "deferred", "deferred", ...Array(doc.steps.length - 3).fill("ok")]);
    expect([doc.applied, doc.total]).toEqual([doc.steps.length - 3, doc.steps.length]);
    expect(fs.existsSync(doc.journal as string)).toBe(true);

    // Nothing left but the deferred steps: a line for each, no journal, exit 2.
    const again = await qkit("template", "apply", "laptop.qubes.yaml", "--progress=ndjson", "--yes");
    expect([again.code, again.err]).toEqual([2, ""]);
    const { progress, doc: last } = progressAndDocument(again.out);
    expect(last).toMatchObject({ ok: true, matches: false, error: null, journal: null, applied: 0, deferred: 3, total: 3 });
    expect(last.steps.map((s) => s.status)).toEqual(["deferred", "deferred", "deferred"]);
    expect(progress.map((l) => l.status)).toEqual(["deferred", "deferred", "deferred"]);
  });
});
