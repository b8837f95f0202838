/**
 * What the command line reads and writes, when the operating system or the user's own arguments
 * get in the way: a policy directory or file it may not read is said (`[cannot-read]`, exit 2),
 * never taken for an empty or missing one; an `--output` that names a file the command reads, or a
 * policy file inside a directory it reads, is refused before anything runs (`[output-is-input]`);
 * a failed write to standard output is one line (`[cannot-write]`); stream line numbers count
 * every line, as an editor does; and a very long request line is read once.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const CLI = path.resolve(__dirname, "../../sdk/dist/cli.js");
const DEMO = path.resolve(__dirname, "../../examples/demo");
let dir: string;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir });

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkit-io-"));
  fs.cpSync(path.join(DEMO, "policy.d"), path.join(dir, "policy.d"), { recursive: true });
  fs.copyFileSync(path.join(DEMO, "system.json"), path.join(dir, "system.json"));
});
afterAll(() => {
  for (const p of [path.join(dir, "locked"), path.join(dir, "locked", "30-user.policy")]) if (fs.existsSync(p)) fs.chmodSync(p, 0o755);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("--output never overwrites what the command reads", () => {
  it.each([
    [["policy", "check", "policy.d/30-user.policy", "--output", "policy.d/30-user.policy"], "--output `policy.d/30-user.policy` is also a file this command reads; write the output to another file"],
    [["policy", "check", "policy.d", "--output", "policy.d/99-report.policy"], "--output `policy.d/99-report.policy` is inside `policy.d`, a directory this command reads; write the output outside it"],
    [["policy", "table", "qubes.Filecopy", "--policy-dir", "policy.d", "--system", "system.json", "--output=./system.json"], "--output `./system.json` is also a file this command reads; write the output to another file"],
    [["policy", "test", "policy.d", "--output", "r.xml", "--coverage-output", "./r.xml"], "--output and --coverage-output name the same file `r.xml`; give each its own file"],
    // An apply's journal made as a policy file would be loaded as policy (a line of JSON: every call denied).
    [["template", "apply", "stack.qubes.yaml", "--policy-dir", "policy.d", "--journal", "policy.d/99-journal.policy"], "--journal `policy.d/99-journal.policy` is inside `policy.d`, a directory this command reads; write the output outside it"],
  ])("qkit %j", async (argv, message) => {
    const before = fs.readFileSync(path.join(dir, "policy.d", "30-user.policy"), "utf8");
    const r = await qkit(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`qkit ${argv.slice(0, 2).join(" ")}: ${message} [output-is-input]\n`);
    expect(fs.readFileSync(path.join(dir, "policy.d", "30-user.policy"), "utf8")).toBe(before);
    expect(fs.existsSync(path.join(dir, "policy.d", "99-report.policy"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "policy.d", "99-journal.policy"))).toBe(false);
  });

  // Files the command line does not name but the command reads all the same: the policy and
  // system model a test file names, the test file itself, a bundle of a stack, and any of them
  // under another name (a hard link). Refused when the output is about to be written.
  describe("files read that the command line does not name", () => {
    beforeAll(() => {
      fs.mkdirSync(path.join(dir, "tests"));
      fs.cpSync(path.join(DEMO, "policy.d"), path.join(dir, "tests", "policy.d"), { recursive: true });
      fs.copyFileSync(path.join(DEMO, "system.json"), path.join(dir, "tests", "model.json"));
      fs.writeFileSync(path.join(dir, "tests", "a.policytest.yaml"), "policy: policy.d\nsystem: model.json\ntests:\n  - qubes.Filecopy work vault => ask vault\n");
      fs.linkSync(path.join(dir, "tests", "policy.d", "30-user.policy"), path.join(dir, "linked.txt"));
      fs.cpSync(path.resolve(__dirname, "../fixtures/flow/laptop"), path.join(dir, "laptop"), { recursive: true });
    });
    const watched = ["tests/policy.d/30-user.policy", "tests/model.json", "tests/a.policytest.yaml", "laptop/bundles/split-gpg.qubes.yaml"];
    it.each([
      [["policy", "test", "tests/a.policytest.yaml", "--output", "tests/policy.d/30-user.policy"], "--output `tests/policy.d/30-user.policy` is a file this command reads; write the output to another file"],
      [["policy", "test", "tests/a.policytest.yaml", "--coverage", "--coverage-output", "tests/policy.d/30-user.policy"], "--coverage-output `tests/policy.d/30-user.policy` is a file this command reads; write the output to another file"],
      [["policy", "test", "tests", "--output", "tests/model.json"], "--output `tests/model.json` is a file this command reads; write the output to another file"],
      [["policy", "test", "tests", "--coverage", "--coverage-output", "tests/a.policytest.yaml"], "--coverage-output `tests/a.policytest.yaml` is a file this command reads; write the output to another file"],
      [["policy", "test", "tests/a.policytest.yaml", "--output", "tests/policy.d/99-new.policy"], "--output `tests/policy.d/99-new.policy` is inside the policy directory `tests/policy.d` this command reads; write the output outside it"],
      [["policy", "who-can", "qubes.Filecopy", "--policy-dir", "tests/policy.d", "--system", "system.json", "--output", "linked.txt"], "--output `linked.txt` is the same file as `tests/policy.d/30-user.policy` (a link), a file this command reads; write the output to another file"],
      [["flow", "work", "vault", "--policy-dir", "laptop/policy.d", "--system", "laptop/system.json", "--stack", "laptop/laptop.qubes.yaml", "--output", "laptop/bundles/split-gpg.qubes.yaml"], "--output `laptop/bundles/split-gpg.qubes.yaml` is a file this command reads; write the output to another file"],
    ])("qkit %j", async (argv, message) => {
      const before = watched.map((f) => fs.readFileSync(path.join(dir, f), "utf8"));
      const r = await qkit(...argv);
      expect(r.err.split("\n").filter((l) => l.includes("[output-is-input]"))).toEqual([`qkit ${argv[0] === "flow" ? "flow" : argv.slice(0, 2).join(" ")}: ${message} [output-is-input]`]);
      expect(r.code).toBe(2);
      expect(watched.map((f) => fs.readFileSync(path.join(dir, f), "utf8"))).toEqual(before);
      expect(fs.existsSync(path.join(dir, "tests", "policy.d", "99-new.policy"))).toBe(false);
    });
    it("a test's report beside its test file is written", async () => {
      const r = await qkit("policy", "test", "tests", "--output", "tests/results.txt");
      expect([r.code, r.err]).toEqual([0, ""]);
      expect(fs.readFileSync(path.join(dir, "tests", "results.txt"), "utf8")).toContain("1 passed");
    });
  });

  it("a report elsewhere, or beside the policy as a non-policy file, is written", async () => {
    expect((await qkit("policy", "check", "policy.d", "--output", "report.txt")).code).toBe(0);
    expect(fs.readFileSync(path.join(dir, "report.txt"), "utf8")).toContain("ok:");
  });
});

describe("what the OS will not let qkit read", () => {
  // Root reads anything: as root the CLI runs without the capabilities that let it (through setpriv).
  const root = process.getuid?.() === 0;
  const DROP = ["--bounding-set=-dac_override,-dac_read_search"];
  const canDrop = !root || spawnSync("setpriv", [...DROP, "true"]).status === 0;
  const run = (...argv: string[]) => {
    const r = root ? spawnSync("setpriv", [...DROP, process.execPath, CLI, ...argv], { cwd: dir, encoding: "utf8", env: {} }) : spawnSync(process.execPath, [CLI, ...argv], { cwd: dir, encoding: "utf8", env: {} });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  it.skipIf(!canDrop)(`a policy directory or file without read permission is said, never read as empty or missing${root ? " (as root: without CAP_DAC_OVERRIDE)" : ""}`, () => {
    fs.cpSync(path.join(DEMO, "policy.d"), path.join(dir, "locked"), { recursive: true });
    fs.chmodSync(path.join(dir, "locked", "30-user.policy"), 0o000);
    const file = run("policy", "check", "locked");
    expect([file.code, file.out]).toEqual([2, ""]);
    expect(file.err).toBe(`qkit policy check: cannot read \`${path.join(fs.realpathSync(dir), "locked", "30-user.policy")}\` (in \`locked\`): Permission denied; check its permissions (or run qkit as a user who may read it) [cannot-read]\n`);
    fs.chmodSync(path.join(dir, "locked", "30-user.policy"), 0o644);
    fs.chmodSync(path.join(dir, "locked"), 0o000);
    const eval_ = run("policy", "eval", "--policy-dir", "locked", "--system", "system.json", "qubes.Filecopy", "work", "vault");
    expect([eval_.code, eval_.err]).toEqual([2, `qkit policy eval: cannot read \`${path.join(fs.realpathSync(dir), "locked")}\` (in \`locked\`): Permission denied; check its permissions (or run qkit as a user who may read it) [cannot-read]\n`]);
    const test = run("policy", "test", "locked");
    expect([test.code, test.err]).toEqual([2, "qkit policy test: cannot read the directory `locked`: Permission denied; check its permissions, or name the test files to run [cannot-read]\n"]);
    fs.chmodSync(path.join(dir, "locked"), 0o755);
    fs.writeFileSync(path.join(dir, "locked.policy"), "qubes.Gpg * work vault allow\n", { mode: 0o000 });
    const one = run("policy", "check", "locked.policy");
    expect([one.code, one.out, one.err]).toEqual([2, "", "qkit policy check: cannot read `locked.policy`: Permission denied; check the path and its permissions [cannot-read]\n"]);
  });

  // Node reads a directory on descriptor 0 as an empty stream: the command would answer for nothing.
  it.each([
    [["policy", "check", "-"], "the policy"],
    [["policy", "eval", "--policy-dir", "policy.d", "--system", "system.json", "--requests", "-"], "the requests"],
    [["policy", "eval", "--cases", "-"], "the cases"],
    [["policy", "replay", "-", "--policy-dir", "policy.d", "--system", "system.json"], "the journal"],
  ])("standard input that is a directory is said, as `cat` says it: qkit %j", (argv, what) => {
    const fd = fs.openSync(dir, "r");
    try {
      const r = spawnSync(process.execPath, [CLI, ...argv], { cwd: dir, encoding: "utf8", env: {}, stdio: [fd, "pipe", "pipe"] });
      expect([r.status, r.stdout]).toEqual([2, ""]);
      expect(r.stderr).toBe(`qkit ${argv[0]} ${argv[1]}: cannot read ${what} from standard input: Is a directory; redirect a file to it (\`< FILE\`), or give the file's path [cannot-read]\n`);
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe("arguments and models that cannot be what they say", () => {
  it("an option's value left out before another option is said, not taken as the value", async () => {
    const r = await qkit("policy", "check", "policy.d", "--output", "--json");
    expect([r.code, r.err]).toEqual([2, "qkit policy check: option `--output` needs a value, and `--json` is an option; give the value (`--output=--json` if it really is that) [usage]\n"]);
    expect(fs.existsSync(path.join(dir, "--json"))).toBe(false);
  });

  it("a system model whose tags are not names is a bad model, not an internal error of the analysis", async () => {
    const model = JSON.parse(fs.readFileSync(path.join(dir, "system.json"), "utf8")) as { domains: Record<string, { tags?: unknown }> };
    model.domains["sys-net"]!.tags = [1];
    fs.writeFileSync(path.join(dir, "badtags.json"), JSON.stringify(model));
    const r = await qkit("policy", "check", "--system", "badtags.json", "policy.d");
    expect([r.code, r.err]).toEqual([2, "qkit policy check: the system model `badtags.json`: qube `sys-net` has tags [1], not a list of names; fix the entry or make the model again with `qkit system snapshot` [bad-system-model]\n"]);
  });
});

describe("a very long policy line", () => {
  it("is shown as a window around the span, cut with …, whatever its length", async () => {
    fs.writeFileSync(path.join(dir, "long.policy"), `qubes.Filecopy * work vault allow target=${"x".repeat(100_000)} bogus=1\n`);
    const r = await qkit("policy", "check", "long.policy");
    const [, source, carets] = r.out.split("\n");
    expect(source).toMatch(/^1 \| qubes\.Filecopy \* work vault allow target=x+…$/);
    expect(source!.length).toBeLessThan(260);
    expect(carets).toMatch(/^ {2}\| {35}\^+$/);
  });
});

describe("a stack with errors where qubesd cannot be reached", () => {
  it("is told its own errors first, not that nothing answers", async () => {
    fs.writeFileSync(path.join(dir, "bad.qubes.yaml"), "qkit: 1\nstack: s\nqubes:\n  w:\n    class: Nope\n");
    const r = await runQkit(["template", "plan", "bad.qubes.yaml"], { cwd: dir, env: { QUBESD_SOCKET: path.join(dir, "no.sock") } });
    expect([r.code, r.out, r.err]).toEqual([1, "bad.qubes.yaml:5:12: error[invalid-class]: unknown qube class: Nope\n  help: AppVM, TemplateVM, StandaloneVM or DispVM\n", "qkit template plan: 1 error in the stack; nothing was changed [invalid-stack]\n"]);
  });
});

describe("standard output that cannot be written", () => {
  it.skipIf(!fs.existsSync("/dev/full"))("is one line in the OS's words, exit 2, no stack trace", () => {
    for (const argv of [["help"], ["policy", "eval", "--policy-dir", "policy.d", "--system", "system.json", "qubes.Filecopy", "work", "vault"]]) {
      const fd = fs.openSync("/dev/full", "w");
      const r = spawnSync(process.execPath, [CLI, ...argv], { cwd: dir, encoding: "utf8", stdio: ["ignore", fd, "pipe"] });
      fs.closeSync(fd);
      expect([r.status, r.stderr]).toEqual([2, "qkit: cannot write to standard output: No space left on device; check where the output goes [cannot-write]\n"]);
    }
  });
});

describe("a --requests stream's lines", () => {
  it("are numbered as an editor numbers them (blank lines and every line ending count)", () => {
    const ok = '{"service":"qubes.Filecopy","source":"work","target":"vault"}';
    fs.writeFileSync(path.join(dir, "req.jsonl"), `${ok}\n\n\nnot json\r\n\r${ok}\n{bad\n`);
    const r = spawnSync(process.execPath, [CLI, "policy", "eval", "--policy-dir", "policy.d", "--system", "system.json", "--requests", "req.jsonl"], { cwd: dir, encoding: "utf8" });
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { ok: boolean; message?: string });
    expect(lines.map((l) => l.message ?? (l.ok ? "ok" : "?"))).toEqual(["ok", "line 4: Unexpected token 'o', \"not json\" is not valid JSON", "ok", expect.stringMatching(/^line 7: /)]);
  });

  it("a line of several megabytes, split across many reads, is one line", () => {
    const long = `{"service":"qubes.Filecopy","source":"work","target":"vault","pad":"${"x".repeat(3_000_000)}"}`;
    fs.writeFileSync(path.join(dir, "long.jsonl"), `${long}\r\n${long}`);
    const r = spawnSync(process.execPath, [CLI, "policy", "eval", "--policy-dir", "policy.d", "--system", "system.json", "--requests", "long.jsonl"], { cwd: dir, encoding: "utf8", maxBuffer: 1 << 26 });
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { ok: boolean; action?: string });
    expect([r.status, lines.length, lines.every((l) => l.ok)]).toEqual([0, 2, true]);
  });
});
