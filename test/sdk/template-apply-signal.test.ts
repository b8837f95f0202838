/**
 * `qkit template apply` (the built CLI, in its own process) interrupted by
 * SIGINT or SIGTERM while a call is in flight (review issue 7, F4): it
 * finishes the step, records the interruption in the journal, prints one
 * line with what was done and how to resume, and exits 130 or 143. The
 * signal is sent by a proxy between the CLI and `qkit sim serve`, while it
 * holds the reply of the first create.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";
import { simWorkspace, type SimWorkspace } from "../helpers/sim-workspace.js";

const CLI = fileURLToPath(new URL("../../sdk/dist/cli.js", import.meta.url));
let ws: SimWorkspace;
let dir: string;
let socket: string;

beforeAll(async () => {
  ws = await simWorkspace("qkit-tplsig-");
  ({ dir, socket } = ws);
});

afterAll(async () => {
  await ws.stop();
});

/** A proxy to the simulator that runs `hold` before it passes on the reply to the first request containing `marker`. */
async function proxy(file: string, marker: string, hold: () => Promise<void>): Promise<net.Server> {
  let fired = false;
  const srv = net.createServer({ allowHalfOpen: true }, (client) => {
    const chunks: Buffer[] = [];
    client.on("data", (d) => chunks.push(d));
    client.on("end", () => {
      const request = Buffer.concat(chunks);
      const up = net.connect({ path: socket, allowHalfOpen: true });
      const reply: Buffer[] = [];
      up.on("data", (d) => reply.push(d));
      up.on("end", () => {
        const trigger = !fired && request.includes(marker);
        if (trigger) fired = true;
        void (trigger ? hold() : Promise.resolve()).then(() => client.end(Buffer.concat(reply)));
      });
      up.on("error", () => client.destroy());
      up.end(request);
    });
    client.on("error", () => {});
  });
  await new Promise<void>((r) => srv.listen(file, r));
  return srv;
}

function stack(name: string): string {
  let text = `qkit: 1\nstack: ${name}\nqubes:\n`;
  for (const q of ["a", "b", "c"]) text += `  ${name}-${q}:\n    class: AppVM\n    template: debian-12\n    label: red\n    netvm: none\n`;
  return text;
}

/**
 * `qkit template apply NAME.qubes.yaml --yes` (and `--json`) as its own process, through a proxy
 * that sends the CLI `sig` when a request starting with `heldAt` arrives and holds that request's
 * reply until the CLI's standard error says `notice`.
 */
async function signalledApply(name: string, json: boolean, sig: NodeJS.Signals, heldAt: string, notice: string): Promise<{ exit: number | null; out: string; err: string }> {
  fs.writeFileSync(path.join(dir, `${name}.qubes.yaml`), stack(name));
  const via = path.join(dir, `${name}.sock`);
  let child: ReturnType<typeof spawn> | undefined;
  let noticed: () => void = () => {};
  const said = new Promise<void>((r) => (noticed = r));
  const srv = await proxy(via, heldAt, async () => {
    child!.kill(sig);
    await said;
  });
  const argv = ["template", "apply", `${name}.qubes.yaml`, "--yes", "--journal", `${name}.ndjson`, ...(json ? ["--json"] : [])];
  child = spawn(process.execPath, [CLI, ...argv], { cwd: dir, env: { PATH: process.env["PATH"] ?? "", QUBESD_SOCKET: via } });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => {
    err += d;
    if (err.includes(notice)) noticed();
  });
  const exit = await new Promise<number | null>((r) => child!.on("close", (c) => r(c)));
  srv.close();
  return { exit, out, err };
}

describe("qkit template apply interrupted by a signal", () => {
  for (const [sig, code, json] of [["SIGINT", 130, false], ["SIGTERM", 143, false], ["SIGINT", 130, true]] as const) {
    it(`${sig}${json ? " (--json)" : ""}: stops after the step in flight, journals it, says how to resume, exits ${code}`, async () => {
      const name = `sig${code}${json ? "json" : ""}`;
      // The first Create's reply is held until the signal has surely been handled (the CLI writes its notice).
      const { exit, out, err } = await signalledApply(name, json, sig, "admin.vm.Create.", "stopping after the step in flight");
      const lines = err.trimEnd().split("\n");
      expect([exit, lines.length, lines[0]]).toEqual([code, 2, `qkit template apply: ${sig}: stopping after the step in flight…`]);
      const m = /^qkit template apply: interrupted by (\w+): applied (\d+) of (\d+) steps, (\d+) not applied \(next: (\S+)\); run apply again to resume from the live state \(journal (.*)\) \[interrupted\]$/.exec(lines[1]!);
      expect(m, lines[1]).not.toBeNull();
      const [, reason, applied, total, left, next, journal] = m!;
      expect([reason, Number(applied) + Number(left), journal]).toEqual([sig, Number(total), path.join(dir, `${name}.ndjson`)]);
      expect(Number(applied)).toBeGreaterThanOrEqual(1);
      expect(Number(left)).toBeGreaterThanOrEqual(1);
      expect(out).not.toContain("Applied");
      const entries = fs.readFileSync(journal!, "utf8").trim().split("\n").map((l) => JSON.parse(l));
      expect(entries.at(-1)).toMatchObject({ event: "apply-interrupted", reason: sig, applied: Number(applied), next });
      if (json) {
        // One document: what was interrupted, the steps not run, the same command to resume.
        expect(out.split("\n").length).toBe(2);
        const doc = JSON.parse(out);
        expect(doc).toMatchObject({ qkitApply: 1, ok: false, matches: false, error: { code: "interrupted", message: lines[1]!.slice("qkit template apply: ".length, -" [interrupted]".length) }, resume: `qkit template apply ${path.join(dir, `${name}.qubes.yaml`)} --yes --journal ${journal} --json`, journal, applied: Number(applied) });
        const i = doc.steps.findIndex((s: { id: string }) => s.id === next);
        expect(doc.steps.slice(i).map((s: { status: string }) => s.status)).toEqual(Array(doc.steps.length - i).fill("skipped"));
      }
      // Resumed: the rest applies and then nothing is left.
      const env = { QUBESD_SOCKET: socket, XDG_STATE_HOME: path.join(dir, "state") };
      const again = await runQkit(["template", "apply", `${name}.qubes.yaml`, "--yes"], { cwd: dir, env });
      expect([again.code, again.err]).toEqual([0, ""]);
      const plan = await runQkit(["template", "plan", `${name}.qubes.yaml`, "--detailed-exitcode"], { cwd: dir, env });
      expect(plan.code).toBe(0);
    });
  }
});


describe("qkit template apply interrupted before any step", () => {
  for (const [sig, code, json] of [["SIGINT", 130, false], ["SIGTERM", 143, true]] as const) {
    it(`${sig}${json ? " (--json)" : ""} while reading the system: one line, nothing changed, no journal, exits ${code}`, async () => {
      const name = `early${code}${json ? "json" : ""}`;
      // The first read's reply is held until the CLI said it stopped.
      const { exit, out, err } = await signalledApply(name, json, sig, "admin.vm.List", "[interrupted]");
      const message = "interrupted before any change; nothing was changed";
      expect([exit, err]).toEqual([code, `qkit template apply: ${message} [interrupted]\n`]);
      if (json) {
        expect(out.split("\n").length).toBe(2);
        expect(JSON.parse(out)).toMatchObject({ qkitApply: 1, ok: false, matches: false, error: { code: "interrupted", message }, journal: null, applied: 0 });
      } else expect(out).toBe("");
      expect(fs.existsSync(path.join(dir, `${name}.ndjson`))).toBe(false);
      // Nothing was created.
      const env = { QUBESD_SOCKET: socket, XDG_STATE_HOME: path.join(dir, "state") };
      const plan = await runQkit(["template", "plan", `${name}.qubes.yaml`, "--json"], { cwd: dir, env });
      expect(JSON.parse(plan.out).steps.filter((s: { kind: string }) => s.kind === "create").length).toBe(3);
    });
  }
});
