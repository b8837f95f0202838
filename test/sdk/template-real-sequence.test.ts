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
 * `real-sequence-adopt/` starts from `qkit template export` of that machine,
 * adopted (`--adopt`), then changed: globals reset and no longer declared
 * (`default_kernel`, which has no default, is left as it is), a template
 * change, removed tags and features, a qube made absent, a rename.
 * `real-sequence-props/`: many properties set then reset, a network
 * provider and a disposable template given up while others use them;
 * `real-sequence-devices/`: PCI and block assignments and their modes;
 * `real-sequence-volumes/`: volume sizes and revisions, a refused shrink
 * (the plan's error), firewall rules qubesd normalises, a custom label;
 * `real-sequence-moves/`: a template, a network provider on it and a
 * disposable template behind that provider renamed in one apply;
 * `real-sequence-bundles/`: two instances of a bundle (a VPN chain, its
 * policy per instance), then one of them dropped and pruned.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";

const ROOT = fileURLToPath(new URL("../fixtures/template/", import.meta.url));
const SEQUENCES = fs
  .readdirSync(ROOT)
  .filter((d) => d.startsWith("real-sequence"))
  .sort()
  .map((d) => path.join(ROOT, d));

type Stack = { global?: Record<string, unknown>; labels?: Record<string, unknown>; qubes?: Record<string, Record<string, unknown> | null> };

/** The stacks of a sequence, in order. */
function stacksOf(fix: string): string[] {
  return fs
    .readdirSync(fix)
    .filter((f) => /^\d+\.qubes\.yaml$/.test(f))
    .sort((a, b) => parseInt(a) - parseInt(b));
}

/**
 * Every qube (with the keys declared for it), global and label the first
 * `upTo` stacks of the sequence declare: what apply has managed so far. The rest of the
 * machine is left out of the comparison: the simulator starts from a
 * GetSystemInfo snapshot, which pins what qubesd reports as defaults (a
 * netvm) and has no features.
 */
function declared(fix: string, upTo: number): { qubes: Map<string, Set<string>>; globals: Set<string>; labels: Set<string> } {
  const out = { qubes: new Map<string, Set<string>>(), globals: new Set<string>(), labels: new Set<string>() };
  const keysOf = (name: string) => {
    let k = out.qubes.get(name);
    if (!k) out.qubes.set(name, (k = new Set(["class"])));
    return k;
  };
  for (const f of stacksOf(fix).slice(0, upTo)) {
    const s = parse(fs.readFileSync(path.join(fix, f), "utf8")) as Stack;
    for (const [name, q] of Object.entries(s.qubes ?? {})) {
      const keys = keysOf(name);
      for (const k of Object.keys(q ?? {})) keys.add(k);
      if (q && typeof q["moved_from"] === "string") for (const k of Object.keys(q)) keysOf(q["moved_from"]).add(k);
    }
    for (const g of Object.keys(s.global ?? {})) out.globals.add(g);
    for (const l of Object.keys(s.labels ?? {})) out.labels.add(l);
  }
  return out;
}

/** The parts of an export the first `upTo` stacks of `fix` have managed. */
function managed(fix: string, upTo: number, exported: string): unknown {
  const s = parse(exported) as Stack;
  const d = declared(fix, upTo);
  const pick = <T>(o: Record<string, T> | undefined, keys: { has(k: string): boolean }) => Object.fromEntries(Object.entries(o ?? {}).filter(([k]) => keys.has(k)));
  const qubes = Object.fromEntries(Object.entries(pick(s.qubes ?? {}, d.qubes)).map(([name, q]) => [name, pick(q ?? {}, d.qubes.get(name)!)]));
  return { global: pick(s.global, d.globals), labels: pick(s.labels, d.labels), qubes };
}

/** A last line with its numbers as `N` (the simulator, started from a snapshot, may count other steps for settings the stacks do not manage). */
const shape = (line: string | undefined) => (line ?? "").replace(/\d+/g, "N");

/** The last line a run printed (as recorded with both streams together): standard error's when it failed and said why there. */
const lastLine = (r: { code: number; out: string; err: string }) => (r.code !== 0 && r.err.trim() ? r.err : r.out).trimEnd().split("\n").at(-1);

for (const fix of SEQUENCES) {
  const STACKS = stacksOf(fix);
  const flags = fs.existsSync(path.join(fix, "flags")) ? fs.readFileSync(path.join(fix, "flags"), "utf8").trim().split(/\s+/).filter(Boolean) : [];
  describe(`the stacks of ${path.basename(fix)} on the real qubesd, replayed on the simulator`, () => {
    let dir: string;
    let server: SimulatorServer;
    let env: NodeJS.ProcessEnv;

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), "qkit-real-seq-"));
      fs.mkdirSync(path.join(dir, "pol"));
      // The stacks with their bundles (in folders of the sequence).
      fs.cpSync(fix, dir, { recursive: true });
      const system = JSON.parse(fs.readFileSync(path.join(fix, "system.json"), "utf8"));
      server = await startSimulator({ socket: path.join(dir, "qubesd.sock"), system });
      env = { QUBESD_SOCKET: server.path, XDG_STATE_HOME: path.join(dir, "state") };
    });

    afterAll(async () => {
      await server?.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("has stacks and recordings", () => {
      expect(STACKS.length).toBeGreaterThanOrEqual(2);
      for (const f of STACKS) for (const ext of ["apply.txt", "replan.txt", "real.yaml"]) expect(fs.existsSync(path.join(fix, f.replace("qubes.yaml", ext))), `${f} ${ext}`).toBe(true);
    });

    for (const f of STACKS) {
      const n = f.replace(".qubes.yaml", "");
      it(`stack ${n}: apply ends as on qubesd, converges, and leaves what qubesd left`, async () => {
        const apply = await runQkit(["template", "apply", f, "--policy-dir", "pol", "--yes", "--prune", "--allow-replace", ...flags], { cwd: dir, env });
        expect(shape(lastLine(apply))).toBe(shape(fs.readFileSync(path.join(fix, `${n}.apply.txt`), "utf8").trimEnd()));
        const replan = await runQkit(["template", "plan", f, "--policy-dir", "pol", "--prune", "--allow-replace", ...flags], { cwd: dir, env });
        expect(lastLine(replan)).toBe(fs.readFileSync(path.join(fix, `${n}.replan.txt`), "utf8").trimEnd());
        const exported = await runQkit(["template", "export"], { cwd: dir, env });
        expect(exported.code).toBe(0);
        const upTo = STACKS.indexOf(f) + 1;
        expect(managed(fix, upTo, exported.out)).toEqual(managed(fix, upTo, fs.readFileSync(path.join(fix, `${n}.real.yaml`), "utf8")));
      });
    }
  });
}
