/**
 * `qkit policy check --format text|json|sarif|github` on the cases of
 * `test/fixtures/check/`: each folder has its files, an `args` file (the
 * arguments after `qkit policy check`) and one `expected.FORMAT` per format:
 * standard output, then standard error, then `exit N`. The working
 * directory's `file:` URI is written `$CWD` in the SARIF files.
 *
 * Besides the exact outputs: the exit status is the same in every format, and
 * every format reports the same diagnostics (code, level, message, file,
 * line, column) as the text format.
 *
 * `UPDATE_CHECK_FIXTURES=1 npx vitest run test/sdk/cli-check-formats.test.ts`
 * writes the expected files (then read them before committing).
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { runQkit, type QkitRun } from "../helpers/qkit.js";

const ROOT = fileURLToPath(new URL("../fixtures/check/", import.meta.url));
const FORMATS = ["text", "json", "sarif", "github"] as const;
const CASES = readdirSync(ROOT).sort();
const UPDATE = process.env["UPDATE_CHECK_FIXTURES"] === "1";

async function check(name: string, format: string, env: NodeJS.ProcessEnv = {}): Promise<QkitRun> {
  const dir = join(ROOT, name);
  const args = readFileSync(join(dir, "args"), "utf8").trim().split(/\s+/);
  return runQkit(["policy", "check", "--format", format, ...args], { cwd: dir, env });
}

function transcript(name: string, r: QkitRun): string {
  const cwdUri = pathToFileURL(join(ROOT, name)).href.replace(/\/?$/, "/");
  return (r.out + r.err).split(cwdUri).join("$CWD") + `exit ${r.code}\n`;
}

interface Seen {
  code: string;
  level: string;
  message: string;
  file: string;
  line: number;
  column: number;
}

const LEVEL: Record<string, string> = { error: "error", warning: "warning", info: "note", hint: "note", notice: "note" };

/** The diagnostics of the text format, from its `FILE:LINE:COL: SEVERITY[CODE]: MESSAGE` lines. */
function fromText(out: string): Seen[] {
  const seen: Seen[] = [];
  for (const l of out.split("\n")) {
    const m = /^(.*?):(\d+):(\d+): (error|warning|info|hint)\[([a-z0-9-]+)\]: (.*)$/.exec(l);
    if (m) seen.push({ file: m[1]!, line: Number(m[2]), column: Number(m[3]), level: LEVEL[m[4]!]!, code: m[5]!, message: m[6]! });
  }
  return seen;
}

function fromJson(out: string): Seen[] {
  const j = JSON.parse(out) as { diagnostics: Array<{ file: string; line: number; column: number; severity: string; code: string; message: string }> };
  return j.diagnostics.map((d) => ({ file: d.file, line: d.line, column: d.column, level: LEVEL[d.severity]!, code: d.code, message: d.message }));
}

function fromSarif(out: string): Seen[] {
  const s = JSON.parse(out) as {
    runs: Array<{ results: Array<{ ruleId: string; level: string; message: { text: string }; locations?: Array<{ physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number; startColumn: number } } }> }> }>;
  };
  return s.runs[0]!.results
    .filter((r) => r.locations)
    .map((r) => {
      const p = r.locations![0]!.physicalLocation;
      return { code: r.ruleId, level: r.level, message: r.message.text, file: decodeURIComponent(p.artifactLocation.uri), line: p.region.startLine, column: p.region.startColumn };
    });
}

/** The GitHub workflow commands, unescaped as the runner does. */
function fromGithub(out: string): Seen[] {
  const unData = (s: string) => s.replace(/%0A/g, "\n").replace(/%0D/g, "\r").replace(/%25/g, "%");
  const unProp = (s: string) => unData(s.replace(/%3A/g, ":").replace(/%2C/g, ","));
  const seen: Seen[] = [];
  for (const l of out.split("\n")) {
    const m = /^::(error|warning|notice) ([^:]*)::(.*)$/.exec(l);
    if (!m) continue;
    const props = new Map(m[2]!.split(",").map((kv) => [kv.slice(0, kv.indexOf("=")), unProp(kv.slice(kv.indexOf("=") + 1))] as const));
    if (!props.has("file")) continue;
    seen.push({ level: LEVEL[m[1]!]!, file: props.get("file")!, line: Number(props.get("line")), column: Number(props.get("col")), code: props.get("title")!, message: unData(m[3]!).split("\nhelp: ")[0]! });
  }
  return seen;
}

describe("qkit policy check --format (fixtures)", () => {
  it.each(CASES)("%s", async (name) => {
    const runs = new Map<string, QkitRun>();
    for (const format of FORMATS) {
      const r = await check(name, format);
      runs.set(format, r);
      const file = join(ROOT, name, `expected.${format}`);
      if (UPDATE) writeFileSync(file, transcript(name, r));
      expect(transcript(name, r), `${name} --format ${format}`).toBe(readFileSync(file, "utf8"));
    }
    // One exit status, whatever the format.
    expect(new Set([...runs.values()].map((r) => r.code)).size).toBe(1);
    // The same diagnostics in every format.
    const text = fromText(runs.get("text")!.out);
    expect(fromJson(runs.get("json")!.out)).toEqual(text);
    expect(fromSarif(runs.get("sarif")!.out)).toEqual(text);
    expect(fromGithub(runs.get("github")!.out)).toEqual(text);
    // --json is --format json.
    const dir = join(ROOT, name);
    const args = readFileSync(join(dir, "args"), "utf8").trim().split(/\s+/);
    const legacy = await runQkit(["policy", "check", "--json", ...args], { cwd: dir });
    expect(legacy).toEqual(runs.get("json"));
  });
});

describe("qkit policy check: exit status and options", () => {
  it("warnings do not change the exit status unless --strict", async () => {
    const plain = await runQkit(["policy", "check", "policy.d"], { cwd: join(ROOT, "warnings") });
    expect(plain.code).toBe(0);
    expect(plain.out).toContain("warning[shadowed-rule]");
    for (const format of FORMATS) {
      const strict = await runQkit(["policy", "check", "--strict", "--format", format, "policy.d"], { cwd: join(ROOT, "warnings") });
      expect(strict.code, format).toBe(1);
    }
    const clean = await runQkit(["policy", "check", "--strict", "policy.d"], { cwd: join(ROOT, "clean") });
    expect(clean.code).toBe(0);
  });

  it.each([
    [["--format", "xml", "policy.d"], "qkit policy check: unknown format `xml`; --format is text, json, sarif or github [usage]\n"],
    [["--format", "sarf", "policy.d"], "qkit policy check: unknown format `sarf`; did you mean `sarif`?; --format is text, json, sarif or github [usage]\n"],
    [["--json", "--format", "sarif", "policy.d"], "qkit policy check: `--json` means `--format json`; it does not go with `--format sarif` [usage]\n"],
    [["--lint-compat", "--format", "sarif", "policy.d"], "qkit policy check: `--format` does not go with `--lint-compat` (it prints exactly what qubes-policy-lint prints) [usage]\n"],
    [["--socket", "x.sock", "policy.d"], "qkit policy check: `--socket` is for `--system live` [usage]\n"],
    [["--system", "nope.json", "policy.d"], "qkit policy check: cannot read the system model `nope.json`: No such file or directory [usage]\n"],
    [["nope.d"], "qkit policy check: `nope.d`: No such file or directory [usage]\n"],
    [["--engine-only", "--system", "x.json", "policy.d"], "qkit policy check: `--system` turns on analysis checks, which `--engine-only` leaves out [usage]\n"],
  ])("usage error: %j", async (args, err) => {
    const r = await runQkit(["policy", "check", ...args], { cwd: join(ROOT, "clean") });
    expect(r).toEqual({ code: 2, out: "", err });
  });

  it.each(CASES)("--engine-only reports the same errors and exit status, without the analysis (%s)", async (name) => {
    const dir = join(ROOT, name);
    const args = readFileSync(join(dir, "args"), "utf8").trim().split(/\s+/).filter((x, i, all) => x !== "--system" && all[i - 1] !== "--system" && x !== "--strict");
    const full = await runQkit(["policy", "check", "--json", ...args], { cwd: dir });
    const fast = await runQkit(["policy", "check", "--json", "--engine-only", ...args], { cwd: dir });
    expect(fast.code).toBe(full.code);
    const errors = (r: QkitRun) => (JSON.parse(r.out) as { diagnostics: Array<{ severity: string }> }).diagnostics.filter((d) => d.severity === "error");
    expect(errors(fast)).toEqual(errors(full));
    const codes = (JSON.parse(fast.out) as { diagnostics: Array<{ code: string }> }).diagnostics.map((d) => d.code);
    for (const analysisOnly of ["shadowed-rule", "ask-without-targets", "service-case-mismatch", "unknown-qube"]) expect(codes).not.toContain(analysisOnly);
  });

  it("an --output that cannot be written exits 2 with the OS wording, and nothing is written anywhere", async () => {
    for (const format of FORMATS) {
      const r = await runQkit(["policy", "check", "--format", format, "--output", "no-such-dir/r.out", "policy.d"], { cwd: join(ROOT, "errors") });
      expect(r.code, format).toBe(2);
      expect(r.out, format).toBe("");
      // One behaviour for every command (sdk/src/cli/output.ts): the OS wording, what to do, `cannot-write`.
      expect(r.err, format).toBe("qkit policy check: cannot write `no-such-dir/r.out`: No such file or directory; check that its directory exists [cannot-write]\n");
    }
  });

  it("writes the report to --output, the summary still on the terminal", async () => {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const out = join(mkdtempSync(join(tmpdir(), "qkit-check-")), "r.sarif");
    const r = await runQkit(["policy", "check", "--format", "sarif", "--output", out, "policy.d"], { cwd: join(ROOT, "errors") });
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    const sarif = JSON.parse(readFileSync(out, "utf8")) as { version: string; runs: Array<{ results: unknown[] }> };
    expect(sarif.version).toBe("2.1.0");
    expect(sarif.runs[0]!.results.length).toBe(fromText((await check("errors", "text")).out).length);
  });
});

describe("qkit policy check - (standard input) as SARIF", () => {
  it("locates results in standard input by a description, with no file uri and no uriBaseId", async () => {
    const { PassThrough } = await import("node:stream");
    const { main } = await import("../../sdk/src/cli/main.js");
    const stdin = new PassThrough();
    stdin.end("qubes.A * work vault allw\nqubes.B * work vault allow\n");
    const stdout = new PassThrough();
    let out = "";
    stdout.on("data", (d) => (out += d));
    const code = await main(["policy", "check", "--format", "sarif", "-"], { stdin, stdout, stderr: new PassThrough(), env: {}, cwd: ROOT });
    expect(code).toBe(1);
    const log = JSON.parse(out) as { runs: { results: { ruleId: string; locations: { physicalLocation: { artifactLocation: Record<string, unknown>; region: { startLine: number } } }[] }[] }[] };
    const results = log.runs[0]!.results;
    expect(results.map((r) => [r.ruleId, r.locations[0]!.physicalLocation.region.startLine])).toEqual([["invalid-action", 1]]);
    expect(results[0]!.locations[0]!.physicalLocation.artifactLocation).toEqual({
      description: { text: "standard input (the policy text was piped to `qkit policy check -`; there is no file)" },
    });
  });
});
