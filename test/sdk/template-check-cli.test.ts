/**
 * `qkit template check` as a user meets it: input failures (a missing file, a
 * directory, a missing system model) are one line with a code and exit 2, as
 * in the other commands, never counted as "1 error"; with a live connection
 * the installed kernels and pools are read, so a kernel qubesd would refuse
 * is an error in check too.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { runQkit } from "../helpers/qkit.js";

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), "qkit-tcheck-"));
  fs.mkdirSync(path.join(dir, "stacks.qubes.yaml"));
  fs.writeFileSync(path.join(dir, "ok.qubes.yaml"), "qkit: 1\nstack: ok\nqubes:\n  work:\n    class: AppVM\n    label: blue\n");
  server = await startSimulator({ socket: path.join(dir, "qubesd.sock") });
  env = { QUBESD_SOCKET: server.path, XDG_STATE_HOME: path.join(dir, "state") };
});

afterAll(async () => {
  await server.close();
});

describe("qkit template check: input failures", () => {
  it("a missing file is one line in the OS's wording, exit 2, no error count", async () => {
    const r = await runQkit(["template", "check", "nofile.qubes.yaml"], { cwd: dir });
    expect([r.code, r.out, r.err]).toEqual([2, "", "qkit template check: cannot read nofile.qubes.yaml: No such file or directory; check the path [file-not-found]\n"]);
  });

  it("a directory says so, exit 2", async () => {
    const r = await runQkit(["template", "check", "stacks.qubes.yaml"], { cwd: dir });
    expect([r.code, r.out, r.err]).toEqual([2, "", "qkit template check: stacks.qubes.yaml is a directory; give a stack file (*.qubes.yaml) or a stack model (*.json) [is-a-directory]\n"]);
  });

  it("the other files are still checked; the input failure decides the exit code", async () => {
    const r = await runQkit(["template", "check", "nofile.qubes.yaml", "ok.qubes.yaml"], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.out).toBe("ok.qubes.yaml: ok (stack ok: 1 qube, 0 policy files, 0 expectations)\n");
    const j = await runQkit(["template", "check", "stacks.qubes.yaml", "ok.qubes.yaml", "--json"], { cwd: dir });
    expect(j.code).toBe(2);
    const doc = JSON.parse(j.out) as { ok: boolean; files: { ok: boolean; error?: { code: string } }[] };
    expect([doc.ok, doc.files.map((f) => [f.ok, f.error?.code ?? null])]).toEqual([false, [[false, "is-a-directory"], [true, null]]]);
  });

  it("a missing or directory --system model exits 2", async () => {
    const r = await runQkit(["template", "check", "ok.qubes.yaml", "--system", "nosys.json"], { cwd: dir });
    expect([r.code, r.err]).toEqual([2, "qkit template check: cannot read nosys.json: No such file or directory; check the path [file-not-found]\n"]);
    const d = await runQkit(["template", "check", "ok.qubes.yaml", "--system", "."], { cwd: dir });
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/\[is-a-directory\]\n$/);
  });
});

describe("qkit template check: a live system's kernels and pools", () => {
  it("refuses a kernel that is not installed, in qubesd's words, and accepts an installed one", async () => {
    fs.writeFileSync(path.join(dir, "k.qubes.yaml"), "qkit: 1\nstack: k\nglobal:\n  default_kernel: 6.12.40-1.qubes.fc41\nqubes:\n  work:\n    class: AppVM\n    label: blue\n    kernel: '5.0'\n");
    const r = await runQkit(["template", "check", "k.qubes.yaml"], { cwd: dir, env });
    expect(r.out).toBe("k.qubes.yaml:9:13: error[unknown-kernel]: Kernel '5.0' not installed (QubesPropertyValueError)\n  help: installed: 6.12.40-1.qubes.fc41\n1 error\n");
    expect(r.code).toBe(1);
    fs.writeFileSync(path.join(dir, "k.qubes.yaml"), "qkit: 1\nstack: k\nqubes:\n  work:\n    class: AppVM\n    label: blue\n    kernel: 6.12.40-1.qubes.fc41\n");
    const ok = await runQkit(["template", "check", "k.qubes.yaml"], { cwd: dir, env });
    expect([ok.code, ok.err]).toEqual([0, ""]);
  });
});

describe("qkit template check --system: the snapshot's kernels and pools", () => {
  it("a snapshot lists the pools and kernels; check --system refuses a kernel or pool the file does not list, as with a connection", async () => {
    const snap = await runQkit(["system", "snapshot", "--compact"], { cwd: dir, env });
    expect(snap.code).toBe(0);
    const model = JSON.parse(snap.out) as { domains: object; pools?: string[]; kernels?: string[] };
    expect(model.kernels).toEqual(["6.12.40-1.qubes.fc41"]);
    expect(model.pools).toEqual([...(model.pools ?? [])].sort());
    expect(model.pools).toContain("linux-kernel");
    fs.writeFileSync(path.join(dir, "snap.json"), snap.out);
    const bare = JSON.parse((await runQkit(["system", "snapshot", "--no-wiring"], { cwd: dir, env })).out);
    expect(["pools" in bare, "kernels" in bare]).toEqual([false, false]);

    fs.writeFileSync(path.join(dir, "ks.qubes.yaml"), "qkit: 1\nstack: ks\nqubes:\n  work:\n    class: AppVM\n    label: blue\n    kernel: '5.0'\n    pools: { private: nopool }\n");
    const offline = await runQkit(["template", "check", "ks.qubes.yaml", "--system", "snap.json"], { cwd: dir });
    const live = await runQkit(["template", "check", "ks.qubes.yaml"], { cwd: dir, env });
    expect(offline.out).toMatch(/error\[unknown-kernel\]: Kernel '5\.0' not installed \(QubesPropertyValueError\)\n {2}help: installed: 6\.12\.40-1\.qubes\.fc41\n/);
    expect(offline.out).toMatch(/error\[unknown-pool\]/);
    expect([offline.code, offline.out]).toEqual([live.code, live.out]);

    const bad = { ...model, kernels: "6.12" };
    fs.writeFileSync(path.join(dir, "bad-snap.json"), JSON.stringify(bad));
    const r = await runQkit(["template", "check", "ks.qubes.yaml", "--system", "bad-snap.json"], { cwd: dir });
    expect([r.code, r.err]).toEqual([2, "qkit template check: bad-snap.json: `kernels` is not a list of names; remove it or make the model again with `qkit system snapshot` [invalid-system]\n"]);
  });
});

describe("defineStack and an explicit null", () => {
  it("throws StackDefinitionError for qubes: null (the checker's wrong-type), as the YAML front end refuses `qubes: null`", async () => {
    const { defineStack, StackDefinitionError } = await import("@qubes-kit/sdk");
    let thrown: unknown;
    try {
      defineStack({ stack: "x", qubes: null } as unknown as Parameters<typeof defineStack>[0]);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(StackDefinitionError);
    expect((thrown as InstanceType<typeof StackDefinitionError>).diagnostics.map((d) => [d.code, d.message])).toEqual([["wrong-type", "qubes must be a mapping, not null"]]);
  });
});

describe("notes the checker accepts are kept as written", () => {
  it("every accepted note reads back unchanged from the simulator's notes.Set (qubesd's replacement of unsafe code points)", async () => {
    const fc = (await import("fast-check")).default;
    const { Qubes, calls } = await import("@qubes-kit/sdk");
    const { Simulator, simulatorTransport } = await import("@qubes-kit/sdk/sim");
    const { checkStack, createMemoryFileSystem } = await import("@qubes-kit/language");
    const qubes = new Qubes({ transport: simulatorTransport(new Simulator({ system: { domains: { dom0: { type: "AdminVM", tags: [] }, work: { type: "AppVM", tags: [] } } } as never })) });
    const text = fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.string({ unit: fc.constantFrom("a", "\t", "\n", "\r", "\u0007", "\u007f", "\u0085", "\u202e", "\u200d", "\ud800", "\ue000", "é", "日", "🙂"), maxLength: 12 }));
    await fc.assert(
      fc.asyncProperty(text, async (notes) => {
        const r = checkStack(createMemoryFileSystem({ "/s/main.qubes.yaml": `qkit: 1\nstack: s\nqubes:\n  work:\n    class: AppVM\n    label: blue\n    notes: ${JSON.stringify(notes)}\n` }), "/s/main.qubes.yaml");
        const declared = r.model?.qubes[0]?.notes;
        // Refused notes are the checker's errors; empty notes need notes.Set without a payload,
        // which the simulator refuses (how plan clears notes is plan's question, not the checker's).
        if (declared === undefined || declared === "") return;
        await qubes.run(calls.notesSet("work", declared));
        expect(await qubes.run(calls.notesGet("work"))).toBe(declared);
      }),
      { numRuns: 150 },
    );
  });
});

describe("qkit template check: where a finding is", () => {
  const bad = "qkit: 1\nstack: bad\nqubes:\n  work:\n    class: AppVM\n    memory: abc\n";

  it.each([
    // Under the working directory, or beside it: relative, as given.
    ["a file under the working directory", ".", "sub/bad.qubes.yaml", "sub/bad.qubes.yaml"],
    ["a file beside the working directory", "sub/deeper", "sub/bad.qubes.yaml", "../bad.qubes.yaml"],
    // The way there climbs to `/` (as /dev/stdin from anywhere): the absolute path, not a row of `../`.
    ["a file that shares only / with it", "/usr", "sub/bad.qubes.yaml", "ABS"],
  ])("names %s as a user finds it", async (_what, cwd, file, shown) => {
    fs.mkdirSync(path.join(dir, "sub", "deeper"), { recursive: true });
    fs.writeFileSync(path.join(dir, file), bad);
    const from = path.isAbsolute(cwd) ? cwd : path.join(dir, cwd);
    const r = await runQkit(["template", "check", path.join(dir, file)], { cwd: from });
    const want = shown === "ABS" ? path.join(dir, file) : shown;
    expect([r.code, r.out.split("\n")[0]]).toEqual([1, `${want}:6:13: error[wrong-type]: memory must be an integer (MiB), not the string "abc"`]);
  });
});
