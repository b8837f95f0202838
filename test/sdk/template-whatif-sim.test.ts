/**
 * What-if against the simulator over a socket, with the example machine:
 * what-if reads the live system and policy through the Admin API, the
 * stack is applied (`qkit template apply --adopt --restart=if-needed`,
 * with the service qubes running, so that the halts of a network provider
 * and its clients must be ordered), and the system the
 * simulator then reports is the future what-if predicted; what-if on the
 * applied machine finds no decision left to change, and a second plan is
 * empty. Also `qkit template export` from the simulator: the exported stack
 * checks cleanly and plans (with `--adopt`) to no changes.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DomainInfo, RawSystemInfo } from "@qubes-kit/language";
import { Qubes, futureSystem, readWhatIfSystem, type WhatIfSystem } from "@qubes-kit/sdk";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { checkStack } from "@qubes-kit/language";
import { runQkit } from "../helpers/qkit.js";

const LAPTOP = fileURLToPath(new URL("../../examples/laptop/", import.meta.url));
/** The keys of GetSystemInfo that the policy engine reads (the SDK's snapshot simplifies `icon`). */
const DECISION_KEYS = ["internal", "tags", "type", "template_for_dispvms", "default_dispvm", "label", "guivm", "relayvm", "transport_rpc", "power_state"];

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), "qkit-whatif-sim-"));
  fs.cpSync(LAPTOP, dir, { recursive: true });
  // The machine as it is: sys-net, sys-firewall (connected to sys-net) and sys-usb run.
  const system = JSON.parse(fs.readFileSync(path.join(dir, "system.json"), "utf8")) as RawSystemInfo;
  expect(["sys-net", "sys-firewall", "sys-usb"].map((n) => system.domains[n]?.power_state)).toEqual(["Running", "Running", "Running"]);
  server = await startSimulator({ socket: path.join(dir, "qubesd.sock"), system, policy: path.join(dir, "policy.d") });
  env = { QUBESD_SOCKET: server.path, XDG_STATE_HOME: path.join(dir, "state") };
});

afterAll(async () => {
  await server.close();
});

function pick(d: DomainInfo | undefined): Record<string, unknown> | undefined {
  if (!d) return undefined;
  return Object.fromEntries(DECISION_KEYS.map((k) => [k, d[k]]));
}

describe("what-if on the simulator with the example machine", () => {
  let predicted: WhatIfSystem;

  it("reads the live system and policy and holds every expectation", async () => {
    const r = await qkit("template", "whatif", "laptop.qubes.yaml", "--json");
    expect(r.err).toBe("");
    const j = JSON.parse(r.out) as { ok: boolean; expectations: { ok: boolean }[]; changes: unknown[] };
    expect(j.expectations.every((e) => e.ok)).toBe(true);
    expect(j.changes.length).toBeGreaterThan(0);
    expect(r.code).toBe(0);
    const live = await readWhatIfSystem(Qubes.local(server.path));
    const model = checkStack({ readFile: (p) => (fs.existsSync(p) ? fs.readFileSync(p, "utf8") : undefined) }, path.join(dir, "laptop.qubes.yaml")).model!;
    predicted = futureSystem(live, model);
  });

  it("applies cleanly with --restart=if-needed, and the system is then the predicted future", async () => {
    const applied = await qkit("template", "apply", "laptop.qubes.yaml", "--adopt", "--restart=if-needed", "--yes");
    expect([applied.code, applied.err]).toEqual([0, ""]);
    expect(applied.out).not.toContain("deferred");
    // A network provider halts after the qubes connected to it and starts again before them.
    const at = (id: string) => applied.out.split("\n").findIndex((l) => l.includes(`] ${id} `));
    for (const id of ["sys-firewall.shutdown", "sys-net.shutdown", "sys-net.restart", "sys-firewall.restart", "sys-usb.restart"]) expect([id, at(id)]).not.toEqual([id, -1]);
    expect(at("sys-firewall.shutdown")).toBeLessThan(at("sys-net.shutdown"));
    expect(at("sys-net.restart")).toBeLessThan(at("sys-firewall.restart"));
    const running = JSON.parse((await qkit("system", "snapshot")).out) as RawSystemInfo;
    expect(["sys-net", "sys-firewall", "sys-usb"].map((n) => running.domains[n]?.power_state)).toEqual(["Running", "Running", "Running"]);
    const again = await qkit("template", "plan", "laptop.qubes.yaml", "--detailed-exitcode");
    expect(again.code).toBe(0);
    const snap = JSON.parse((await qkit("system", "snapshot")).out) as RawSystemInfo;
    const names = [...new Set([...Object.keys(snap.domains), ...Object.keys(predicted.domains)])].sort();
    for (const n of names) expect([n, pick(snap.domains[n])]).toEqual([n, pick(predicted.domains[n])]);
  });

  it("finds no decision left to change once applied, and the expectations still hold", async () => {
    const r = await qkit("template", "whatif", "laptop.qubes.yaml");
    expect(r.out).toContain("expectations: 8 of 8 hold\n");
    expect(r.out).toContain("decision changes: none\n");
    expect(r.code).toBe(0);
    // Not computed is not "none".
    const quick = await qkit("template", "whatif", "laptop.qubes.yaml", "--no-changes");
    expect(quick.out).toContain("decision changes: not computed (--no-changes)\n");
    expect(JSON.parse((await qkit("template", "whatif", "laptop.qubes.yaml", "--no-changes", "--json")).out).changes).toBeNull();
  });
});

describe("qkit template export from the simulator", () => {
  it("writes a stack that checks cleanly and plans to no changes with --adopt", async () => {
    const r = await qkit("template", "export", "--stack", "exported", "--out", "exported.qubes.yaml");
    expect(r.code).toBe(0);
    const text = fs.readFileSync(path.join(dir, "exported.qubes.yaml"), "utf8");
    expect(text).toMatch(/^# written by `qkit template export`/);
    expect(text).toContain("\n  work:\n    class: AppVM\n    label: blue\n    template: debian-13-xfce\n");
    expect(text).not.toMatch(/created-by-|guivm-dom0|x-qkit-stack|x-qkit-keys/);
    expect(text).toContain("    netvm: none\n");
    const check = await qkit("template", "check", "exported.qubes.yaml");
    expect([check.code, check.out.split("\n").filter((l) => / error\[/.test(l))]).toEqual([0, []]);
    const plan = await qkit("template", "plan", "exported.qubes.yaml", "--adopt", "--take-over", "--detailed-exitcode");
    expect(plan.err).toBe("");
    // Adopting writes ownership; nothing else may change.
    expect(plan.out).not.toMatch(/^\s+[~+-] (?!qube\s|global\s)/m);
    expect([0, 2]).toContain(plan.code);
  });

  it("exports only the named qubes; an unknown qube is an error", async () => {
    const r = await qkit("template", "export", "vault", "sys-net");
    expect(r.code).toBe(0);
    expect(r.out).toContain("\n  vault:\n");
    expect(r.out).toContain("\n  sys-net:\n");
    expect(r.out).not.toContain("\n  work:\n");
    const bad = await qkit("template", "export", "nope");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("no such qube: nope");
  });

  it("never overwrites a file with --out, and a write failure is one line with a code", async () => {
    fs.writeFileSync(path.join(dir, "mine.qubes.yaml"), "qkit: 1\nstack: mine\n");
    const exists = await qkit("template", "export", "vault", "--out", "mine.qubes.yaml");
    expect([exists.code, exists.out, exists.err]).toEqual([1, "", "qkit template export: mine.qubes.yaml already exists; choose another --out file or remove it first [file-exists]\n"]);
    expect(fs.readFileSync(path.join(dir, "mine.qubes.yaml"), "utf8")).toBe("qkit: 1\nstack: mine\n");
    const missing = await qkit("template", "export", "vault", "--out", "no/such/dir/x.qubes.yaml");
    expect([missing.code, missing.err]).toEqual([1, "qkit template export: cannot write no/such/dir/x.qubes.yaml: No such file or directory; check that its directory exists and is writable [cannot-write]\n"]);
    fs.mkdirSync(path.join(dir, "adir.qubes.yaml"));
    const isDir = await qkit("template", "export", "vault", "--out", "adir.qubes.yaml");
    expect([isDir.code, isDir.err]).toEqual([1, "qkit template export: adir.qubes.yaml already exists; choose another --out file or remove it first [file-exists]\n"]);
  });
});
