/**
 * `qkit flow` against a live system: the system model, the policy and the
 * wiring (netvm, firewall, devices) read through the Admin API, served by
 * the simulator seeded with the flow fixture machine; the answers must equal
 * those from the same machine given as files.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";

const fixtures = fileURLToPath(new URL("../fixtures/flow/machine/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "qkit-flow-live-"));
const socket = join(dir, "qubesd.sock");
let server: SimulatorServer;

beforeAll(async () => {
  server = await startSimulator({ socket, system: JSON.parse(readFileSync(fixtures + "system.json", "utf8")), policy: fixtures + "policy.d" });
  // Wire the simulated machine: netvms and a firewall, set through the CLI as a user would.
  for (const [q, v] of [
    ["sys-firewall", "sys-net"],
    ["work", "sys-firewall"],
    ["vault", ""],
  ] as const) {
    const r = await runQkit(["qube", "prefs", q, "netvm", v, "--socket", socket], { cwd: dir });
    expect(r.err).toBe("");
  }
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("qkit flow on a live system", () => {
  it("reads the wiring through the Admin API and finds the network path", async () => {
    const r = await runQkit(["flow", "work", "@network", "--no-ask", "--max-hops", "3", "--format", "json", "--policy-dir", "live", "--system", "live", "--socket", socket], { cwd: dir });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { paths: { nodes: string[]; hops: { edges: { via: string; evidence: { property?: string } }[] }[] }[] };
    const nodes = j.paths.map((p) => p.nodes.join(" "));
    expect(nodes).toContain("work sys-firewall sys-net @network");
    const first = j.paths.find((p) => p.nodes.join(" ") === "work sys-firewall sys-net @network")!;
    expect(first.hops[0]!.edges.some((e) => e.via === "network" && e.evidence.property === "netvm")).toBe(true);
  });

  it("a qube without a netvm has no network hop of its own", async () => {
    const r = await runQkit(["flow", "vault", "@network", "--no-ask", "--max-hops", "1", "--policy-dir", "live", "--system", "live", "--socket", socket], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^no flow from vault to @network within 1 hop/);
  });

  it("an unreachable qubesd is an error (exit 2), not a \"no\"", async () => {
    const r = await runQkit(["flow", "work", "vault", "--policy-dir", "live", "--system", "live", "--socket", join(dir, "nosuch.sock")], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^qkit flow: cannot connect to qubesd|^qkit flow: .*\[connect-failed\]/);
  });
});
