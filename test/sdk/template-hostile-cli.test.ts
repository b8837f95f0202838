/**
 * `qkit template` (the built CLI, in its own process, against `qkit sim serve`) given hostile
 * inputs and surroundings: a stack through a pipe, an endless file, an `--out` that is a device or
 * inside the policy directory it reads, includes the OS will not let it read, standard output
 * closed in the middle of an apply, qubesd gone in the middle of a step, and a saved plan whose
 * recorded view was edited. Each case: one line with a code, the documented exit status,
 * nothing the user wrote overwritten, and an apply that stops can be resumed.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simWorkspace, type SimWorkspace } from "../helpers/sim-workspace.js";

const CLI = fileURLToPath(new URL("../../sdk/dist/cli.js", import.meta.url));
let ws: SimWorkspace;
let dir: string;
let socket: string;

beforeAll(async () => {
  ws = await simWorkspace("qkit-hostile-");
  ({ dir, socket } = ws);
});

afterAll(async () => {
  await ws.stop();
  for (const f of ["inc/locked.qubes.yaml"]) if (fs.existsSync(path.join(dir, f))) fs.chmodSync(path.join(dir, f), 0o644);
  fs.rmSync(dir, { recursive: true, force: true });
});

const stack = (name: string, ...qubes: string[]) => `qkit: 1\nstack: ${name}\nqubes:\n${qubes.map((q) => `  ${q}:\n    class: AppVM\n    template: debian-12\n    label: blue\n    memory: 500\n`).join("")}`;
const write = (f: string, text: string) => fs.writeFileSync(path.join(dir, f), text);

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/**
 * Runs the built CLI (asynchronously: the simulator answers from this process). `input` is its
 * standard input (a pipe); `onOut` sees standard output as it comes and may close it.
 */
function qkit(argv: string[], opts: { input?: string; socket?: string; stdout?: number | "pipe"; onOut?: (all: string, close: () => void) => void; prefix?: string[] } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(...((opts.prefix ?? []).length ? [opts.prefix![0]!, [...opts.prefix!.slice(1), process.execPath, CLI, ...argv]] : [process.execPath, [CLI, ...argv]]) as [string, string[]], {
      cwd: dir,
      env: { QUBESD_SOCKET: opts.socket ?? socket, XDG_STATE_HOME: path.join(dir, "state"), PATH: process.env["PATH"] ?? "" },
      stdio: ["pipe", opts.stdout ?? "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout?.on("data", (d) => {
      out += d;
      opts.onOut?.(out, () => child.stdout!.destroy());
    });
    child.stdout?.on("error", () => {});
    child.stderr!.on("data", (d) => (err += d));
    child.stdin!.on("error", () => {});
    child.stdin!.end(opts.input ?? "");
    child.on("close", (code) => resolve({ code, out, err }));
  });
}

describe("inputs that are not plain files", () => {
  it("a stack given through a pipe is read once: checked and planned as written, not taken as empty", async () => {
    write("piped.qubes.yaml", stack("piped", "hp1"));
    // `cat FILE | qkit … /dev/stdin`: standard input a pipe (Node's own stdio pipes are sockets).
    const piped = { prefix: ["sh", "-c", 'cat "$0" | "$@"', path.join(dir, "piped.qubes.yaml")] };
    const check = await qkit(["template", "check", "/dev/stdin"], piped);
    expect([check.code, check.out, check.err]).toEqual([0, "/dev/stdin: ok (stack piped: 1 qube, 0 policy files, 0 expectations)\n", ""]);
    const plan = await qkit(["template", "plan", "/dev/stdin"], piped);
    expect([plan.code, plan.err]).toEqual([0, ""]);
    expect(plan.out).toContain("+ AppVM      hp1  on debian-12 · label blue");
  });

  it.skipIf(!fs.existsSync("/dev/zero"))("an endless input is refused once it passes the limit, never read until memory runs out", async () => {
    for (const argv of [["template", "check", "/dev/zero"], ["template", "apply", "/dev/zero", "--yes"]]) {
      const r = await qkit(argv);
      expect([r.code, r.out]).toEqual([2, ""]);
      expect(r.err).toMatch(/^qkit template (check|apply): cannot read \/dev\/zero: it holds more than 256 MiB \(or never ends\); give a stack file \(\*\.qubes\.yaml\) or a (stack model \(\*\.json\)|saved plan) \[file-too-large\]\n$/);
    }
  });
});

describe("a stack file whose bytes are not UTF-8", () => {
  // A Latin-1 `notes:` would be applied with U+FFFD in place of its letters: the user's text changed.
  it("is an error at the byte, for the file itself and a file it includes, and nothing is planned", async () => {
    fs.writeFileSync(path.join(dir, "l1.qubes.yaml"), Buffer.concat([Buffer.from(stack("l1", "hl1") + "    notes: \"caf"), Buffer.from([0xe9]), Buffer.from('"\ninclude: [l1-inc.qubes.yaml]\n')]));
    fs.writeFileSync(path.join(dir, "l1-inc.qubes.yaml"), Buffer.concat([Buffer.from("qkit: 1\nqubes:\n  hl2:\n    class: AppVM\n    template: debian-12\n    label: blue\n    notes: "), Buffer.from([0xff]), Buffer.from("\n")]));
    const check = await qkit(["template", "check", "l1.qubes.yaml"]);
    expect(check.code).toBe(1);
    expect(check.out.split("\n").filter((l) => l.includes("[not-utf8]"))).toEqual([
      "l1-inc.qubes.yaml:7:12: error[not-utf8]: the file is not UTF-8 text: byte 0xff at offset 90 (invalid start byte); its text would be read, and applied, with U+FFFD in place of such bytes",
      "l1.qubes.yaml:9:16: error[not-utf8]: the file is not UTF-8 text: byte 0xe9 at offset 120 (invalid continuation byte); its text would be read, and applied, with U+FFFD in place of such bytes",
    ]);
    const plan = await qkit(["template", "plan", "l1.qubes.yaml"]);
    expect([plan.code, plan.err]).toEqual([1, "qkit template plan: 2 errors in the stack; nothing was changed [invalid-stack]\n"]);
  });
});

describe("--out", () => {
  it.skipIf(!fs.existsSync("/dev/full"))("a device is written to, never read as an earlier plan (reading /dev/full ran out of memory)", async () => {
    write("o1.qubes.yaml", stack("o1", "ho1"));
    const r = await qkit(["template", "plan", "o1.qubes.yaml", "--out", "/dev/full"]);
    expect([r.code, r.err]).toEqual([1, "qkit template plan: cannot write /dev/full: No space left on device; check that its directory exists and is writable [cannot-write]\n"]);
  });

  it("inside the policy directory the plan reads is refused before anything runs", async () => {
    write("o2.qubes.yaml", stack("o2", "ho2"));
    const r = await qkit(["template", "plan", "o2.qubes.yaml", "--policy-dir", "policy.d", "--out", "policy.d/99-plan.policy"]);
    expect([r.code, r.out, r.err]).toEqual([2, "", "qkit template plan: --out `policy.d/99-plan.policy` is inside `policy.d`, a directory this command reads; write the output outside it [output-is-input]\n"]);
    expect(fs.existsSync(path.join(dir, "policy.d", "99-plan.policy"))).toBe(false);
  });
});

describe("included files the OS will not let qkit read", () => {
  // Root reads anything: as root the CLI runs without the capabilities that let it (through setpriv).
  const root = process.getuid?.() === 0;
  const DROP = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"];
  it.each([
    ["locked.qubes.yaml", "Permission denied", "check the permissions of the file and of its directories (or run qkit as a user who may read it)"],
    ["adir.qubes.yaml", "it is a directory", "name a *.qubes.yaml file"],
    ["missing.qubes.yaml", "No such file or directory", "paths are relative to the file that names it"],
  ])("include: %s is said in the OS's words, not as a path to check", async (file, reason, help) => {
    fs.mkdirSync(path.join(dir, "inc", "adir.qubes.yaml"), { recursive: true });
    write("inc/locked.qubes.yaml", "qubes: {}\n");
    fs.chmodSync(path.join(dir, "inc", "locked.qubes.yaml"), 0o000);
    write("i1.qubes.yaml", `qkit: 1\nstack: i1\ninclude: [inc/${file}]\n`);
    const r = await qkit(["template", "check", "i1.qubes.yaml", "--system", "system.json"], root ? { prefix: DROP } : {});
    expect([r.code, r.err]).toEqual([1, ""]);
    expect(r.out).toBe(`i1.qubes.yaml:3:11: error[include-not-found]: cannot read included file ${path.join(dir, "inc", file)}: ${reason}\n  help: ${help}\n1 error\n`);
  });
});

/** A proxy to the simulator that, from the first request containing all of `marker`, closes every connection without a reply. */
async function breakingProxy(file: string, marker: string[]): Promise<net.Server> {
  let broken = false;
  const srv = net.createServer({ allowHalfOpen: true }, (client) => {
    const chunks: Buffer[] = [];
    client.on("data", (d) => chunks.push(d));
    client.on("error", () => {});
    client.on("end", () => {
      const request = Buffer.concat(chunks);
      if (broken || marker.every((m) => request.includes(m))) {
        broken = true;
        client.destroy();
        return;
      }
      const up = net.connect({ path: socket, allowHalfOpen: true });
      const reply: Buffer[] = [];
      up.on("data", (d) => reply.push(d));
      up.on("end", () => client.end(Buffer.concat(reply)));
      up.on("error", () => client.destroy());
      up.end(request);
    });
  });
  await new Promise<void>((r) => srv.listen(file, r));
  return srv;
}

describe("an apply stopped half-way", () => {
  const many = (name: string, n: number) => stack(name, ...Array.from({ length: n }, (_, i) => `${name}-q${i}`));
  const lastJournal = () => {
    const d = path.join(dir, "state", "qkit");
    const f = fs.readdirSync(d).sort().at(-1)!;
    return fs.readFileSync(path.join(d, f), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { event: string; reason?: string });
  };

  it("by standard output closing (`| head`) stops after the step in flight, journals it, exits 141, and resumes", async () => {
    write("e1.qubes.yaml", many("e1", 30));
    const r = await qkit(["template", "apply", "e1.qubes.yaml", "--yes"], { onOut: (all, close) => /\n\[ *5\/\d+\] /.test(all) && close() });
    // Before: killed by the write's error with exit 0, the journal ending on a call in flight.
    expect(r.code).toBe(141);
    expect(r.err).toMatch(/qkit template apply: stopped, as standard output was closed \(Broken pipe\): applied \d+ of \d+ steps, \d+ not applied \(next: [^)]+\); run apply again to resume from the live state \(journal [^)]+\) \[interrupted\]\n$/);
    expect(lastJournal().at(-1)).toMatchObject({ event: "apply-interrupted", reason: "standard output was closed (Broken pipe)" });
    const again = await qkit(["template", "apply", "e1.qubes.yaml", "--yes"]);
    expect([again.code, again.err]).toEqual([0, ""]);
    expect((await qkit(["template", "plan", "e1.qubes.yaml"])).out).toContain("No changes. The system matches the stack.\n");
  });

  it.skipIf(!fs.existsSync("/dev/full"))("with standard output failing before any step changes nothing (exit 2)", async () => {
    write("e2.qubes.yaml", many("e2", 2));
    const fd = fs.openSync("/dev/full", "w");
    const r = await qkit(["template", "apply", "e2.qubes.yaml", "--yes"], { stdout: fd });
    fs.closeSync(fd);
    expect([r.code, r.err]).toEqual([2, "qkit template apply: stopped before any change, as standard output failed (No space left on device); nothing was changed [interrupted]\n"]);
    expect((await qkit(["template", "plan", "e2.qubes.yaml"])).out).toContain("Plan: 2 to create");
  });

  it("by qubesd going away in the middle of a step says so in the commands' words, with the calls of the step that went through, and resumes", async () => {
    write("e3.qubes.yaml", many("e3", 3));
    const via = path.join(dir, "e3.sock");
    const srv = await breakingProxy(via, ["x-qkit-keys", "e3-q1"]);
    const r = await qkit(["template", "apply", "e3.qubes.yaml", "--yes"], { socket: via });
    await new Promise((res) => srv.close(res));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^qkit template apply: step \d+\/\d+ e3-q1\.create failed: admin\.vm\.feature\.Set x-qkit-keys on e3-q1: `[^`]+e3\.sock` closed the connection without a reply \(qubesd refused or failed on the call\); .*; whether qubesd made it is not known \(`qkit template plan` shows what is left\); 2 of the step's 3 calls went through before it \(admin\.vm\.Create\.AppVM, admin\.vm\.feature\.Set\); applied \d+ of \d+ steps; run apply again to resume from the live state \(journal [^)]+\) \[apply-failed\]\n$/,
    );
    const again = await qkit(["template", "apply", "e3.qubes.yaml", "--yes"]);
    expect([again.code, again.err]).toEqual([0, ""]);
    expect((await qkit(["template", "plan", "e3.qubes.yaml"])).out).toContain("No changes. The system matches the stack.\n");
  });
});

describe("a saved plan whose recorded view was edited", () => {
  it.each([
    [{ qubes: { x: 5 } }, "`view.qubes` is not an object of qubes' digests"],
    [{ qubes: {}, globals: {}, labels: {}, policy: 3, available: {}, pools: [], policyNames: [] }, "`view.policy` is not an object of digests"],
    [{ qubes: {}, globals: {}, labels: {}, policy: {}, available: {}, pools: "x", policyNames: [] }, "`view.pools` is not a list of names"],
  ])("%j is refused with where, not an internal error once the plan is stale", async (view, problem) => {
    write("v1.qubes.yaml", stack("v1", "hv1"));
    expect((await qkit(["template", "plan", "v1.qubes.yaml", "--out", "v1.plan"])).code).toBe(0);
    const plan = JSON.parse(fs.readFileSync(path.join(dir, "v1.plan"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, "v1.plan"), JSON.stringify({ ...plan, view }));
    const r = await qkit(["template", "apply", "v1.plan", "--yes"]);
    expect([r.code, r.err]).toEqual([1, `qkit template apply: v1.plan: ${problem}; make the plan again with \`qkit template plan --out\` [invalid-plan]\n`]);
  });
});
