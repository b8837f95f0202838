/**
 * A directory with the template fixtures' system model and a policy directory, served by
 * `qkit sim serve` in process, for command-line tests of `qkit template`.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { HERE } from "../fixtures/template/apply/stacks.js";
import { runQkit, serveSim, type QkitRun } from "./qkit.js";

export interface SimWorkspace {
  dir: string;
  socket: string;
  /** Runs `qkit ARGV…` in the directory, connected to the simulator. */
  qkit(...argv: string[]): Promise<QkitRun>;
  /** Writes a file of the directory. */
  write(file: string, text: string): void;
  /** Stops the simulator (the tests' SIGTERM, as `serveSim` expects). */
  stop(): Promise<void>;
}

/** Makes the directory (`policy.d` holding `policy`, file name → text) and serves it. */
export async function simWorkspace(prefix: string, policy: Record<string, string> = {}): Promise<SimWorkspace> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const socket = path.join(dir, "qubesd.sock");
  fs.copyFileSync(path.join(HERE, "system.json"), path.join(dir, "system.json"));
  fs.mkdirSync(path.join(dir, "policy.d"));
  for (const [name, text] of Object.entries(policy)) fs.writeFileSync(path.join(dir, "policy.d", name), text);
  const env = { QUBESD_SOCKET: socket, XDG_STATE_HOME: path.join(dir, "state") };
  const server = (await serveSim(socket, ["--system", "system.json", "--policy-dir", "policy.d"], dir)).done;
  return {
    dir,
    socket,
    qkit: (...argv) => runQkit(argv, { cwd: dir, env }),
    write: (file, text) => fs.writeFileSync(path.join(dir, file), text),
    async stop() {
      process.emit("SIGTERM");
      await server;
    },
  };
}
