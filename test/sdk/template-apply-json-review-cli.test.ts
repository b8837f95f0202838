/**
 * `qkit template apply --json` / `--progress=ndjson`, after a review: JSON modes
 * never ask about a plan they do not show (`--yes` is required, exit 2); a
 * saved plan of the wrong shape is refused with where (`[invalid-plan]`) and
 * the document still comes out; an apply that stops after opening its journal
 * leaves no empty journal and the document names none; a file that exists but
 * cannot be read is `[cannot-read]`, not `[file-not-found]`; qubesd undoing a
 * setting is in the document's `warnings`; `resume` is made of absolute paths.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SimulatorServer } from "@qubes-kit/sdk/sim";
import { main } from "../../sdk/src/cli/main.js";
import { readFailure } from "../../sdk/src/cli/template-tools.js";
import { onlyDocument, refusing } from "../helpers/apply-document.js";
import { laptopOnSimulator } from "../helpers/laptop-sim.js";
import { runQkit, runQkitOnTerminal } from "../helpers/qkit.js";

let dir: string;
let server: SimulatorServer;
let env: NodeJS.ProcessEnv;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir, env });

beforeAll(async () => {
  ({ dir, server, env } = await laptopOnSimulator("qkit-applyreview-"));
});

afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const journals = () => (fs.existsSync(path.join(dir, "state", "qkit")) ? fs.readdirSync(path.join(dir, "state", "qkit")) : []);

describe("apply in JSON modes without --yes", () => {
  for (const mode of ["--json", "--progress=ndjson"]) {
    it(`${mode} on a terminal: refused before asking (the plan is not shown), exit 2`, async () => {
      const r = await runQkitOnTerminal("yes", ["template", "apply", "laptop.qubes.yaml", "--adopt", mode], { cwd: dir, env });
      expect(r.code).toBe(2);
      expect(r.err).not.toContain("Only 'yes' is accepted");
      const message = `${mode} needs --yes: the plan is not shown in JSON modes; review it with \`qkit template plan laptop.qubes.yaml\` first`;
      expect(r.err).toBe(`qkit template apply: ${message} [confirmation-required]\n`);
      const doc = onlyDocument(r.out);
      expect(doc).toMatchObject({ ok: false, matches: false, stack: "laptop", error: { code: "confirmation-required", message }, journal: null, applied: 0 });
      expect(doc.steps.length).toBeGreaterThan(0);
      expect(doc.steps.every((s) => s.status === "skipped")).toBe(true);
      expect(journals()).toEqual([]);
    });
  }

  it("the help's exit statuses say so", async () => {
    const help = await qkit("template", "apply", "--help");
    expect(help.out.replace(/\s+/g, " ")).toContain("also 2 for a usage error, --json or --progress=ndjson without --yes ([confirmation-required]; nothing was changed)");
  });
});

describe("a saved plan of the wrong shape", () => {
  it("is refused with what is wrong and where, in one line and in the document", async () => {
    fs.writeFileSync(path.join(dir, "b.plan"), '{"qkitPlan":1,"steps":[null],"fingerprint":"x"}');
    const r = await qkit("template", "apply", "b.plan", "--json", "--yes");
    expect(r.code).toBe(1);
    const message = "b.plan: step 1 is not an object; make the plan again with `qkit template plan --out`";
    expect(r.err).toBe(`qkit template apply: ${message} [invalid-plan]\n`);
    expect(onlyDocument(r.out)).toMatchObject({ ok: false, error: { code: "invalid-plan", message }, steps: [], journal: null });
  });

  it("a real plan edited: a step without its id, a plan without its scope", async () => {
    expect((await qkit("template", "plan", "laptop.qubes.yaml", "--adopt", "--out", "good.plan")).code).toBe(0);
    const good = JSON.parse(fs.readFileSync(path.join(dir, "good.plan"), "utf8"));
    const cases: Array<[string, (p: Record<string, unknown> & { steps: Array<Record<string, unknown>> }) => void, string]> = [
      ["noid.plan", (p) => delete p.steps[1]!["id"], "step 2: `id` is not a string"],
      ["noscope.plan", (p) => delete p["scope"], "`scope` is not an object"],
      ["badcall.plan", (p) => ((p.steps[0]!["calls"] as unknown[])[0] = 7), `step 1 (${good.steps[0].id}): call 1 is not an object with string method, dest, arg and payload`],
    ];
    for (const [file, edit, problem] of cases) {
      const p = structuredClone(good);
      edit(p);
      fs.writeFileSync(path.join(dir, file), JSON.stringify(p));
      const r = await qkit("template", "apply", file, "--progress=ndjson", "--yes");
      expect([r.code, r.err]).toEqual([1, `qkit template apply: ${file}: ${problem}; make the plan again with \`qkit template plan --out\` [invalid-plan]\n`]);
      expect(onlyDocument(r.out)).toMatchObject({ ok: false, error: { code: "invalid-plan" } });
    }
  });
});

describe("a FILE that exists but cannot be read", () => {
  it("is [cannot-read] with the OS's wording (a symbolic link loop), not [file-not-found]", async () => {
    fs.symlinkSync("loop.qubes.yaml", path.join(dir, "loop.qubes.yaml"));
    const r = await qkit("template", "apply", "loop.qubes.yaml", "--json", "--yes");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^qkit template apply: cannot read loop\.qubes\.yaml: Too many .*symbolic links.*; the symbolic links on its path loop; check them \[cannot-read\]\n$/i);
    expect(onlyDocument(r.out)).toMatchObject({ ok: false, error: { code: "cannot-read" } });
    const check = await qkit("template", "check", "loop.qubes.yaml");
    expect([check.code, check.err]).toEqual([2, r.err.replace("template apply", "template check")]);
    // Still file-not-found when there is no such file.
    expect((await qkit("template", "check", "nothere.qubes.yaml")).err).toBe("qkit template check: cannot read nothere.qubes.yaml: No such file or directory; check the path [file-not-found]\n");
  });

  // Root reads any file: as root the CLI runs as a process without the capabilities that let it
  // (`setpriv --bounding-set=-dac_override,-dac_read_search`), so the OS answers EACCES for real.
  const root = process.getuid?.() === 0;
  const CLI = path.resolve(__dirname, "../../sdk/dist/cli.js");
  const DROP = ["--bounding-set=-dac_override,-dac_read_search"];
  const canDrop = !root || spawnSync("setpriv", [...DROP, "true"]).status === 0;
  it.skipIf(!canDrop)(`a file without read permission${root ? " (as root: without CAP_DAC_OVERRIDE, through setpriv)" : ""}`, async () => {
    const file = path.join(dir, "secret.qubes.yaml");
    fs.writeFileSync(file, "qkit: 1\nstack: s\n");
    fs.chmodSync(file, 0o000);
    const r = root ? spawnSync("setpriv", [...DROP, process.execPath, CLI, "template", "apply", "secret.qubes.yaml", "--yes"], { cwd: dir, encoding: "utf8", env: {} }) : undefined;
    const got = r ? { code: r.status, err: r.stderr } : await qkit("template", "apply", "secret.qubes.yaml", "--yes");
    expect([got.code, got.err]).toEqual([2, "qkit template apply: cannot read secret.qubes.yaml: Permission denied; check the permissions of the file and of its directories (or run qkit as a user who may read it) [cannot-read]\n"]);
  });

  it("the codes by errno: permissions are cannot-read, a missing file file-not-found", () => {
    expect(readFailure("EACCES").code).toBe("cannot-read");
    expect(readFailure("EPERM").code).toBe("cannot-read");
    expect(readFailure("EACCES").advice).toContain("permissions");
    expect(readFailure("EIO").code).toBe("cannot-read");
    expect(readFailure("ENOENT")).toEqual({ code: "file-not-found", advice: "check the path" });
    expect(readFailure("ENOTDIR").code).toBe("file-not-found");
  });
});

describe("an apply that stops after opening its journal", () => {
  it("qubesd gone before any call: no empty journal left, the document names none", async () => {
    // The connection goes through a link that disappears once the journal is open.
    const link = path.join(dir, "gone.sock");
    fs.symlinkSync(server.path, link);
    const journal = path.join(dir, "gone.ndjson");
    const sim = server.simulator;
    const open = sim.open;
    sim.open = (request, sink) => {
      if (fs.existsSync(journal) && fs.existsSync(link)) fs.rmSync(link);
      return open.call(sim, request, sink);
    };
    let r;
    try {
      r = await runQkit(["template", "apply", "laptop.qubes.yaml", "--adopt", "--json", "--yes", "--journal", "gone.ndjson"], { cwd: dir, env: { ...env, QUBESD_SOCKET: link } });
    } finally {
      sim.open = open;
    }
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/\[connect-failed\]\n$/);
    expect(onlyDocument(r.out)).toMatchObject({ ok: false, error: { code: "connect-failed" }, journal: null, applied: 0 });
    expect(fs.existsSync(journal)).toBe(false);
  });
});

describe("an apply interrupted at the question", () => {
  it("Ctrl-C while it asks: stops at once, nothing changed, no journal left, 130", async () => {
    const listeners = process.listeners("SIGINT").length;
    const stdin = Object.assign(new PassThrough(), { isTTY: true });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = "";
    stdout.resume();
    stderr.on("data", (d) => {
      err += d;
      if (String(d).includes("Only 'yes' is accepted")) setTimeout(() => process.emit("SIGINT", "SIGINT"), 10);
    });
    const code = await main(["template", "apply", "laptop.qubes.yaml", "--adopt", "--journal", "asked.ndjson"], { stdout, stderr, stdin, env, cwd: dir });
    expect(code).toBe(130);
    expect(err.endsWith("qkit template apply: interrupted before any change; nothing was changed [interrupted]\n")).toBe(true);
    expect(fs.existsSync(path.join(dir, "asked.ndjson"))).toBe(false);
    // The handlers are gone with the run.
    expect(process.listeners("SIGINT").length).toBe(listeners);
  });
});

describe("resume in the document", () => {
  it("resume names FILE and --journal by absolute paths, and runs from another directory", async () => {
    fs.mkdirSync(path.join(dir, "j"));
    const r = await refusing(server, "admin.vm.property.Set+memory dom0 name work\0", () => qkit("template", "apply", "laptop.qubes.yaml", "--adopt", "--json", "--yes", "--journal", "j/one.ndjson"));
    expect(r.code).toBe(1);
    const doc = onlyDocument(r.out);
    const resume = `qkit template apply ${path.join(dir, "laptop.qubes.yaml")} --adopt --json --yes --journal ${path.join(dir, "j", "one.ndjson")}`;
    expect(doc).toMatchObject({ error: { code: "apply-failed" }, resume, journal: path.join(dir, "j", "one.ndjson") });
    const again = await runQkit(resume.split(" ").slice(1), { cwd: "/", env });
    expect([again.code, again.err]).toEqual([2, ""]);
    expect(onlyDocument(again.out)).toMatchObject({ ok: true, error: null, deferred: 3 });
  });
});

describe("warnings in the document", () => {
  it("qubesd changing back a setting the stack declares: warning[undone-by-qubesd] in `warnings`", async () => {
    // As template-side-effects.test.ts: the clock moves to sys-firewall (qubesd gives it clocksync), then back to
    // sys-net while sys-firewall declares clocksync: qubesd removes it again.
    const text = fs.readFileSync(path.join(dir, "laptop.qubes.yaml"), "utf8");
    expect(text).toContain("clockvm: sys-net");
    fs.writeFileSync(path.join(dir, "clock.qubes.yaml"), text.replace("clockvm: sys-net", "clockvm: sys-firewall"));
    expect((await qkit("template", "apply", "clock.qubes.yaml", "--adopt", "--json", "--yes")).code).toBe(2);
    const fw = "    features: { servicevm: true }\n    services: { qubes-updates-proxy: true }\n\n  sys-usb:";
    expect(text).toContain(fw);
    fs.writeFileSync(path.join(dir, "undone.qubes.yaml"), text.replace(fw, fw.replace("{ qubes-updates-proxy: true }", "{ qubes-updates-proxy: true, clocksync: true }")));
    const r = await qkit("template", "apply", "undone.qubes.yaml", "--json", "--yes");
    expect([r.code, r.err]).toEqual([2, ""]);
    const doc = onlyDocument(r.out);
    expect(doc).toMatchObject({ ok: true, matches: false, error: null });
    expect((doc.warnings as Array<{ code: string; message: string }>).filter((w) => w.code === "undone-by-qubesd")).toEqual([
      {
        code: "undone-by-qubesd",
        message:
          'sys-firewall feature service.clocksync: the stack declares "1", and qubesd changes it to absent as a consequence of the plan (seen in the rehearsal): the system will not match the stack after apply; declare what qubesd leaves, or change the setting that makes it do so',
      },
    ]);
  });
});
