/**
 * Stacks applied in turn to the REAL qubesd and to the simulator end alike.
 *
 * `test/fixtures/template/real-sequence/N.qubes.yaml` (new templates cloned
 * from each other, a global `default_template` that new qubes follow, a
 * rename with `moved_from`, custom labels, a netvm chain and globals naming
 * it, `kernel: none`, a class change with `--allow-replace`, `absent: true`,
 * and at last an empty stack that prunes everything) were applied with
 * `qkit template apply --prune --allow-replace` to the real qubesd
 * (`scripts/record-template-sequence.sh`), which recorded the machine before
 * (`system.json`), the apply's last line, a plan's right after, and
 * `qkit template export` of the machine after each. Here the same commands
 * run against the simulator started from `system.json`: each apply must end
 * as the real one did, converge (the next plan has no changes), and leave
 * every qube and global the stacks declare as qubesd left it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";

const FIX = fileURLToPath(new URL("../fixtures/template/real-sequence/", import.meta.url));
const STACKS = fs
  .readdirSync(FIX)
  .filter((f) => /^\d+\.qubes\.yaml$/.test(f))
  .sort((a, b) => parseInt(a) - parseInt(b));

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), "qkit-real-seq-"));
  fs.mkdirSync(path.join(dir, "pol"));
  for (const f of STACKS) fs.copyFileSync(path.join(FIX, f), path.join(dir, f));
  const system = JSON.parse(fs.readFileSync(path.join(FIX, "system.json"), "utf8"));
  server = await startSimulator({ socket: path.join(dir, "qubesd.sock"), system });
  env = { QUBESD_SOCKET: server.path, XDG_STATE_HOME: path.join(dir, "state") };
});

afterAll(async () => {
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

type Stack = { global?: Record<string, unknown>; labels?: Record<string, unknown>; qubes?: Record<string, Record<string, unknown> | null> };

/** Every qube, global and label any stack of the sequence declares (what apply manages). */
function declared(): { qubes: Set<string>; globals: Set<string>; labels: Set<string> } {
  const out = { qubes: new Set<string>(), globals: new Set<string>(), labels: new Set<string>() };
  for (const f of STACKS) {
    const s = parse(fs.readFileSync(path.join(FIX, f), "utf8")) as Stack;
    for (const [name, q] of Object.entries(s.qubes ?? {})) {
      out.qubes.add(name);
      if (q && typeof q["moved_from"] === "string") out.qubes.add(q["moved_from"]);
    }
    for (const g of Object.keys(s.global ?? {})) out.globals.add(g);
    for (const l of Object.keys(s.labels ?? {})) out.labels.add(l);
  }
  return out;
}

/** The parts of an export the stacks manage. */
function managed(exported: string): unknown {
  const s = parse(exported) as Stack;
  const d = declared();
  const pick = <T>(o: Record<string, T> | undefined, keys: Set<string>) => Object.fromEntries(Object.entries(o ?? {}).filter(([k]) => keys.has(k)));
  return { global: pick(s.global, d.globals), labels: pick(s.labels, d.labels), qubes: pick(s.qubes ?? {}, d.qubes) };
}

describe("a sequence of stacks on the real qubesd, replayed on the simulator", () => {
  it("has stacks and recordings", () => {
    expect(STACKS.length).toBeGreaterThanOrEqual(5);
    for (const f of STACKS) for (const ext of ["apply.txt", "replan.txt", "real.yaml"]) expect(fs.existsSync(path.join(FIX, f.replace("qubes.yaml", ext))), `${f} ${ext}`).toBe(true);
  });

  for (const f of STACKS) {
    const n = f.replace(".qubes.yaml", "");
    it(`stack ${n}: apply ends as on qubesd, converges, and leaves what qubesd left`, async () => {
      const apply = await runQkit(["template", "apply", f, "--policy-dir", "pol", "--yes", "--prune", "--allow-replace"], { cwd: dir, env });
      expect(apply.out.trimEnd().split("\n").at(-1)).toBe(fs.readFileSync(path.join(FIX, `${n}.apply.txt`), "utf8").trimEnd());
      const replan = await runQkit(["template", "plan", f, "--policy-dir", "pol", "--prune", "--allow-replace"], { cwd: dir, env });
      expect(replan.out.trimEnd().split("\n").at(-1)).toBe(fs.readFileSync(path.join(FIX, `${n}.replan.txt`), "utf8").trimEnd());
      const exported = await runQkit(["template", "export"], { cwd: dir, env });
      expect(exported.code).toBe(0);
      expect(managed(exported.out)).toEqual(managed(fs.readFileSync(path.join(FIX, `${n}.real.yaml`), "utf8")));
    });
  }
});
