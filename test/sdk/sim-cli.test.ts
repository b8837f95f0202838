/**
 * `qkit sim serve`, the in-process transport, and a simulator seeded from a
 * GetSystemInfo snapshot.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createSimulator, simulatorTransport, systemInfoOf } from "@qubes-kit/sdk/sim";
import { main } from "../../sdk/src/cli/main.js";
import { FIXTURES, call, tmpDir } from "./sim-helpers.js";

const system = JSON.parse(fs.readFileSync(path.join(FIXTURES, "sim", "demo-system.json"), "utf8"));
const req = (header: string, payload = "") => Buffer.from(`${header}\0${payload}`, "latin1");

describe("qkit sim serve", () => {
  it("listens on a 0600 socket, answers, and removes the socket on SIGTERM", async () => {
    const dir = tmpDir();
    const socket = path.join(dir, "sim.sock");
    fs.writeFileSync(path.join(dir, "system.json"), JSON.stringify(system));
    fs.mkdirSync(path.join(dir, "policy.d"));
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = "";
    stdout.on("data", (d) => (out += d));
    const run = main(["sim", "serve", "--socket", socket, "--system", "system.json", "--policy-dir", "policy.d"], {
      stdout,
      stderr,
      stdin: new PassThrough(),
      env: {},
      cwd: dir,
    });
    while (!out.includes("listening")) await new Promise((r) => setTimeout(r, 10));
    expect(out).toBe(`qkit sim: listening on ${socket}\n`);
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
    const reply = await call(socket, req("admin.vm.List+ dom0 name work"));
    expect(reply.toString("latin1")).toMatch(/^0\0work class=AppVM state=Running uuid=1b9b0d3c-|^0\0work class=AppVM state=Running uuid=/);
    process.emit("SIGTERM");
    expect(await run).toBe(0);
    expect(fs.existsSync(socket)).toBe(false);
  });

  it("refuses a missing --socket with a usage error", async () => {
    const stderr = new PassThrough();
    let err = "";
    stderr.on("data", (d) => (err += d));
    const code = await main(["sim", "serve"], { stdout: new PassThrough(), stderr, stdin: new PassThrough(), env: {}, cwd: "/" });
    expect(code).toBe(2);
    expect(err).toContain("--socket PATH is required");
  });
});

describe("simulator seeded from a GetSystemInfo snapshot", () => {
  const sim = createSimulator(system, { "30-user.policy": "qubes.Gpg * work vault allow\n" });

  it("gives back the snapshot's qubes, classes, power states, tags and uuids", () => {
    const info = systemInfoOf(sim.app);
    for (const [name, d] of Object.entries(system.domains as Record<string, Record<string, unknown>>)) {
      const got = info.domains[name]!;
      expect(got, name).toBeDefined();
      expect([got.type, got.power_state, got.uuid, [...(got.tags ?? [])].filter((t) => !/^(guivm|audiovm|created-by)-/.test(t)).sort()], name).toEqual([
        d.type,
        d.power_state,
        d.uuid,
        [...(d.tags as string[])].sort(),
      ]);
      expect([got.default_dispvm, got.template_for_dispvms, got.internal], name).toEqual([d.default_dispvm, d.template_for_dispvms, d.internal]);
    }
  });

  it("serves qubesd and policy calls through the in-process transport", async () => {
    const t = simulatorTransport(sim);
    const chunks: Uint8Array[] = [];
    for await (const c of t.call({ method: "admin.vm.tag.List", arg: "", source: "dom0", destType: "name", dest: "work", payload: new Uint8Array() })) chunks.push(c);
    expect(Buffer.concat(chunks).toString("latin1")).toContain("gpg-client\n");
    const r = await t.runService!({ service: "policy.Get", arg: "30-user", dest: "dom0", stdin: new Uint8Array() });
    expect(r.exitCode).toBe(0);
    expect(Buffer.from(r.stdout).toString("utf8")).toMatch(/^sha256:[0-9a-f]{64}\nqubes.Gpg \* work vault allow\n$/);
    const bad = await t.runService!({ service: "policy.Get", arg: "nope", dest: "dom0", stdin: new Uint8Array() });
    expect([bad.exitCode, Buffer.from(bad.stderr).toString()]).toEqual([1, "PolicyAdminFileNotFoundException Not found: /etc/qubes/policy.d/nope.policy"]);
  });

  it("streams events to an in-process listener until it stops", async () => {
    const t = simulatorTransport(sim);
    const it = t.call({ method: "admin.Events", arg: "", source: "dom0", destType: "name", dest: "dom0", payload: new Uint8Array() })[Symbol.asyncIterator]();
    const first = await it.next();
    expect(Buffer.from(first.value!).toString("latin1")).toBe("1\0\0connection-established\0\0");
    const set = t.call({ method: "admin.vm.feature.Set", arg: "x", source: "dom0", destType: "name", dest: "work", payload: Buffer.from("1") });
    for await (const _ of set) void _;
    const next = await it.next();
    expect(Buffer.from(next.value!).toString("latin1")).toBe("1\0work\0domain-feature-pre-set:x\0feature\0x\0value\x001\0\0");
    await it.return!();
    expect(sim.app.listeners.size).toBe(0);
  });
});

describe("labels of a seeded simulator", () => {
  it("take the snapshot's colours", () => {
    const sim = createSimulator(system);
    const info = systemInfoOf(sim.app);
    for (const [name, d] of Object.entries(system.domains as Record<string, { label: string }>)) expect(info.domains[name]!.label, name).toBe(d.label);
  });
});
