/**
 * `qkit system snapshot` carries the machine's wiring (netvm,
 * provides_network, firewall, devices) that `qkit flow` reads from a system
 * file, so `qkit flow --system snap.json` answers what `--system live` does;
 * qubesd's own keys stay as internal.GetSystemInfo gives them, first, and the
 * file stays loadable by every command that takes `--system FILE`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Qubes, UnixSocketTransport, systemInfo } from "@qubes-kit/sdk";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";

const machine = fileURLToPath(new URL("../fixtures/flow/machine/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "qkit-snapshot-wiring-"));
const socket = join(dir, "qubesd.sock");
const snap = join(dir, "snap.json");
let server: SimulatorServer;

beforeAll(async () => {
  server = await startSimulator({ socket, system: JSON.parse(readFileSync(machine + "system.json", "utf8")), policy: machine + "policy.d" });
  for (const [q, v] of [
    ["sys-firewall", "sys-net"],
    ["work", "sys-firewall"],
    ["personal", "sys-firewall"],
    ["vault", ""],
  ] as const) {
    const r = await runQkit(["qube", "prefs", q, "netvm", v, "--socket", socket], { cwd: dir });
    expect(r.err).toBe("");
  }
  const qubes = new Qubes({ transport: new UnixSocketTransport({ path: socket, servicesOverSocket: true }) });
  await qubes.qube("work").firewall.set(["action=accept dsthost=intranet.example.com proto=tcp dstports=443-443", "action=drop"]);
  await qubes.qube("vault").firewall.set(["action=drop"]);
  for (const q of ["personal", "untrusted"]) await qubes.qube(q).devices("block").assign({ backendDomain: "sys-usb", portId: "sda1", deviceId: "0951:1666", mode: "auto-attach" });
  const r = await runQkit(["system", "snapshot", "--json", "--socket", socket], { cwd: dir });
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
  writeFileSync(snap, r.out);
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

type Flow = { paths: { nodes: string[]; hops: unknown[] }[] };
const flow = async (from: string, to: string, system: string) => {
  const r = await runQkit(["flow", from, to, "--no-ask", "--max-hops", "3", "--format", "json", "--policy-dir", "live", "--system", system, "--socket", socket], { cwd: dir });
  expect(r.err).toBe("");
  return { code: r.code, json: JSON.parse(r.out) as Flow };
};

describe("qkit system snapshot: the wiring flow needs", () => {
  it("keeps qubesd's keys first and unchanged, then netvm, firewall and devices", async () => {
    const qubes = new Qubes({ transport: new UnixSocketTransport({ path: socket, servicesOverSocket: true }) });
    const plain = (await systemInfo(qubes)) as unknown as { domains: Record<string, Record<string, unknown>> };
    const file = JSON.parse(readFileSync(snap, "utf8")) as { domains: Record<string, Record<string, unknown>> };
    expect(Object.keys(file.domains)).toEqual(Object.keys(plain.domains));
    for (const [name, d] of Object.entries(plain.domains)) {
      const got = file.domains[name]!;
      const own = Object.keys(d);
      expect(Object.keys(got).slice(0, own.length), name).toEqual(own);
      for (const k of own) expect(got[k], `${name}.${k}`).toEqual(d[k]);
      if (name.startsWith("uuid:")) continue;
      expect(Object.keys(got).slice(own.length).filter((k) => !["netvm", "provides_network", "firewall", "devices"].includes(k)), name).toEqual([]);
    }
    expect(file.domains["work"]!["netvm"]).toBe("sys-firewall");
    expect(file.domains["vault"]!["netvm"]).toBe(null);
    expect(file.domains["dom0"]!["netvm"]).toBe(null);
    expect(file.domains["sys-net"]!["provides_network"]).toBe(true);
    expect(file.domains["vault"]!["firewall"]).toEqual(["action=drop"]);
    expect(file.domains["personal"]!["devices"]).toEqual([{ devclass: "block", backend: "sys-usb", port: "sda1", device_id: "0951:1666", mode: "auto-attach" }]);
    // --no-wiring: exactly internal.GetSystemInfo.
    const bare = await runQkit(["system", "snapshot", "--no-wiring", "--socket", socket], { cwd: dir });
    expect(JSON.parse(bare.out)).toEqual(plain);
  });

  it.each([
    ["work", "@network"],
    ["vault", "@network"],
    ["personal", "untrusted"],
    ["untrusted", "work"],
    ["work", "vault"],
  ])("flow %s → %s from the file equals flow from the live system", async (from, to) => {
    const live = await flow(from, to, "live");
    const file = await flow(from, to, snap);
    expect(file.code).toBe(live.code);
    expect(file.json).toEqual(live.json);
  });

  it("finds the network and device paths the bare GetSystemInfo file misses", async () => {
    const net = await flow("work", "@network", snap);
    expect(net.json.paths.map((p) => p.nodes.join(" "))).toContain("work sys-firewall sys-net @network");
    const dev = await flow("personal", "untrusted", snap);
    expect(dev.json.paths.map((p) => p.nodes.join(" "))).toContain("personal untrusted");
  });

  it.each([
    [["policy", "eval", "--system", "SNAP", "--policy-dir", machine + "policy.d", "work", "vault", "qubes.Filecopy"]],
    [["policy", "who-can", "qubes.Filecopy", "--target", "vault", "--system", "SNAP", "--policy-dir", machine + "policy.d"]],
    [["policy", "table", "qubes.Filecopy", "--system", "SNAP", "--policy-dir", machine + "policy.d"]],
    [["policy", "check", "--system", "SNAP", machine + "policy.d"]],
  ])("the file loads where a system model is read: %j", async (args) => {
    const withWiring = await runQkit(args.map((x) => (x === "SNAP" ? snap : x)), { cwd: dir });
    const bareFile = join(dir, "bare.json");
    writeFileSync(bareFile, (await runQkit(["system", "snapshot", "--no-wiring", "--socket", socket], { cwd: dir })).out);
    const bare = await runQkit(args.map((x) => (x === "SNAP" ? bareFile : x)), { cwd: dir });
    expect(withWiring.err).toBe(bare.err.split(bareFile).join(snap));
    expect(withWiring.out).toBe(bare.out.split(bareFile).join(snap));
    expect(withWiring.code).toBe(bare.code);
  });
});
