/**
 * The example machine (`examples/laptop/`) copied into a fresh folder and
 * served by a simulator seeded from its `system.json` and `policy.d/`, as the
 * template CLI tests use it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";

const LAPTOP = fileURLToPath(new URL("../../examples/laptop/", import.meta.url));

export interface LaptopSim {
  dir: string;
  server: SimulatorServer;
  /** `QUBESD_SOCKET` (the simulator) and `XDG_STATE_HOME` (journals) inside `dir`. */
  env: NodeJS.ProcessEnv;
}

/** Copies the laptop example into a new folder named `prefix…` and starts its simulator there. */
export async function laptopOnSimulator(prefix: string): Promise<LaptopSim> {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), prefix));
  fs.cpSync(LAPTOP, dir, { recursive: true });
  const system = JSON.parse(fs.readFileSync(path.join(dir, "system.json"), "utf8"));
  const server = await startSimulator({ socket: path.join(dir, "qubesd.sock"), system, policy: path.join(dir, "policy.d") });
  return { dir, server, env: { QUBESD_SOCKET: server.path, XDG_STATE_HOME: path.join(dir, "state") } };
}
