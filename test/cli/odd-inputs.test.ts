/**
 * What the auditor commands make of inputs a demanding user (or a reviewer)
 * gives them: a call from a qube to itself (the daemon refuses it whatever
 * the policy says), names holding a line break (every message stays one
 * line), a source that is no qube name (`@anyvm`), options of one value given
 * twice or modes that do not go together (refused, never silently dropped),
 * Markdown punctuation in a qube name, a qube named like a policy token, a
 * logged call allowed to nobody, and a test entry without its decision. Each case: the command, the files it
 * reads, and what it must print and exit with.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

let dir: string;
const qkit = (...argv: string[]) => runQkit(argv, { cwd: dir });

let uuids = 0;
function qube(type = "AppVM"): Record<string, unknown> {
  const uuid = `00000000-0000-4000-8000-${String(++uuids).padStart(12, "0")}`;
  return { internal: null, tags: [], type, template_for_dispvms: false, default_dispvm: null, icon: "appvm-blue", label: "0x3874d8", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: "Running", uuid };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkit-odd-"));
  const domains: Record<string, unknown> = { dom0: qube("AdminVM"), work: qube(), vault: qube(), personal: qube(), "md*b*_x": qube() };
  fs.writeFileSync(path.join(dir, "system.json"), JSON.stringify({ domains }));
  fs.mkdirSync(path.join(dir, "p"));
  fs.writeFileSync(path.join(dir, "p", "30-user.policy"), "qubes.Filecopy * work vault ask default_target=vault\nqubes.Filecopy * @anyvm vault deny\nqubes.Filecopy * work @anyvm allow\nqubes.Gpg * @anyvm @anyvm ask\n* * * * deny\n");
  fs.writeFileSync(path.join(dir, "one.jsonl"), '{"service":"qubes.Filecopy","source":"work","target":"vault"}\n');
  fs.writeFileSync(path.join(dir, "nl.jsonl"), '{"service":"qubes.Filecopy","source":"wo\\nrk","target":"vault"}\n');
  fs.writeFileSync(path.join(dir, "j.log"), "Dec 05 09:12:01 dom0 qrexec-policy-daemon[811]: qrexec: qubes.Filecopy+: work -> personal: allowed to \n");
  fs.writeFileSync(path.join(dir, "at.json"), JSON.stringify({ domains: { ...domains, "@default": qube() } }));
  fs.writeFileSync(path.join(dir, "self.policytest.yaml"), "policy: p\nsystem: system.json\ntests:\n  - qubes.Filecopy work -> work => allow\n  - qubes.Filecopy work -> work => deny\n");
  fs.writeFileSync(path.join(dir, "self.log"), "qrexec: qubes.Filecopy+: work -> work: allowed to work\nqrexec: qubes.Filecopy: work -> work: denied: loopback qrexec connection not supported\n");
  fs.mkdirSync(path.join(dir, "pd"));
  fs.writeFileSync(path.join(dir, "pd", "05-compat.policy"), "!compat-4.0\n");
  fs.mkdirSync(path.join(dir, "legacy"));
  fs.writeFileSync(path.join(dir, "legacy", "my.B"), "$anyvm $anyvm deny\n");
  fs.writeFileSync(path.join(dir, "t.policytest.yaml"), "policy: p\nsystem: system.json\ntests:\n  - call: qubes.Filecopy work -> vault\n");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const P = ["--policy-dir", "p", "--system", "system.json"];

describe("odd inputs", () => {
  it.each([
    // The daemon refuses to run a call from a qube to itself (AccessDenied), whatever rule allows it: denied, exit 1.
    { argv: ["policy", "eval", "qubes.Filecopy", "work", "work", ...P], code: 1, out: "deny (the daemon refuses what the policy allows: AccessDenied: loopback qrexec connection not supported)  [30-user.policy:3]\n", err: "" },
    // Names with a line break: each warning is one line, the break escaped.
    { argv: ["policy", "eval", "qubes.Filecopy", "a\nb", "vault", ...P], code: 1, err: /^qkit policy eval: warning: source `a\\nb` is not a qube of the system in `system.json`: .*\[unknown-qube\]\n$/ },
    { argv: ["policy", "eval", "--requests", "nl.jsonl", ...P], code: 0, err: /^qkit policy eval: warning: line 1: source `wo\\nrk` is not a qube of the system in `system.json`: .*; did you mean `work`\? \[unknown-qube\]\n$/ },
    // A call always comes from a qube by its name.
    { argv: ["policy", "eval", "qubes.Filecopy", "@anyvm", "vault", ...P], code: 1, err: /^qkit policy eval: warning: source `@anyvm` is not a qube of the system in `system.json`: the daemon never receives a call from it; check the name \[unknown-qube\]\n$/ },
    // Modes and options that do not go together are refused, not ignored.
    { argv: ["policy", "eval", ...P, "--requests", "one.jsonl", "--cases", "one.jsonl"], code: 2, out: "", err: /^qkit policy eval: `--cases` runs conformance cases, each with its own policy and system: `--requests` does not go with it; drop one of them \[usage\]\n$/ },
    { argv: ["policy", "table", "qubes.Filecopy", ...P, "--targets", "vault", "--targets", "work"], code: 2, out: "", err: "qkit policy table: option `--targets` was given twice (`vault`, then `work`); give it once [usage]\n" },
    // An edit is a policy line: a call no rule can name has none to suggest (as who-can refuses it).
    { argv: ["policy", "flip", "qubes.Filecopy+a b", "work", "vault", ...P], code: 2, out: "", err: /^qkit policy flip: argument '\+a b' contains invalid characters: \(' ',\); .*\[usage\]\n$/ },
    { argv: ["system", "snapshot", "--socket", "a.sock", "--socket", "b.sock"], code: 2, out: "", err: "qkit system snapshot: option `--socket` was given twice (`a.sock`, then `b.sock`); give it once [usage]\n" },
    { argv: ["policy", "who-can", "qubes.Filecopy", ...P, "--output", "a.txt", "--output", "b.txt"], code: 2, out: "", err: "qkit policy who-can: option `--output` was given twice (`a.txt`, then `b.txt`); give it once [usage]\n" },
    // A legacy (R4.0) directory's files are policy whatever their names: no report is written there.
    { argv: ["policy", "check", "pd", "--legacy-dir", "legacy", "--output", "legacy/my.C"], code: 2, out: "", err: "qkit policy check: --output `legacy/my.C` is inside the policy directory `legacy` this command reads; write the output outside it [output-is-input]\n" },
    // The daemon logs a call to itself as allowed, then denied (loopback): both lines are what the policy still does.
    { argv: ["policy", "replay", "self.log", ...P], code: 0, out: /2 logged calls replayed against p: 0 decided differently, 2 the same/ },
    // No policy edit makes the daemon run a call to itself.
    { argv: ["policy", "flip", "qubes.Filecopy", "work", "work", ...P], code: 1, out: "qubes.Filecopy work -> work: deny: the daemon refuses what the policy allows (loopback qrexec connection not supported) (30-user.policy:3)\nno policy edit changes it: the daemon refuses a call from a qube to itself, whatever the policy says\n" },
    // A logged call allowed to nobody is no call the daemon logs.
    { argv: ["policy", "replay", "j.log", ...P], code: 2, err: /\(line 1: `allowed to` names no target\)/ },
    // No qube is named like a policy token: a table would have two `@default` columns.
    { argv: ["policy", "table", "qubes.Filecopy", "--policy-dir", "p", "--system", "at.json", "--format", "csv"], code: 2, out: "", err: "qkit policy table: the system model `at.json`: qube `@default` has a name starting with `@`, which no qube has (it is read as a policy token); fix the entry or make the model again with `qkit system snapshot` [bad-system-model]\n" },
    // A test expects what the daemon does: a call to itself is denied, whatever rule allows it.
    { argv: ["policy", "test", "self.policytest.yaml"], code: 1, out: /expected allow, got deny \(the daemon refuses what the policy allows: loopback qrexec connection not supported\)[\s\S]*1 passed, 1 failed/ },
    // A test entry without its decision says what is missing, in words.
    { argv: ["policy", "test", "t.policytest.yaml"], code: 1, out: /decision is required: allow, ask or deny/ },
  ])("qkit $argv", async ({ argv, code, out, err }) => {
    const r = await qkit(...argv);
    if (out !== undefined) typeof out === "string" ? expect(r.out).toBe(out) : expect(r.out).toMatch(out);
    if (err !== undefined) typeof err === "string" ? expect(r.err).toBe(err) : expect(r.err).toMatch(err);
    expect(r.code).toBe(code);
  });

  it("who-can and table count a call to itself as denied", async () => {
    const all = await qkit("policy", "who-can", "qubes.Filecopy", ...P, "--all");
    expect(all.out).toMatch(/^work +work +30-user\.policy:3 +deny \(the daemon refuses: loopback qrexec connection not supported\)$/m);
    // The header counts what is listed: allowed and asked rows, the rest denied.
    const listed = await qkit("policy", "who-can", "qubes.Filecopy", ...P);
    const [, allowed, asked] = /: (\d+) allowed, (\d+) asked, \d+ denied/.exec(listed.out)!;
    expect(listed.out.trim().split("\n").length - 2).toBe(Number(allowed) + Number(asked));
    expect(listed.out).not.toMatch(/^work +work /m);
    const t = await qkit("policy", "table", "qubes.Filecopy", ...P, "--sources", "work", "--targets", "work", "--format", "csv");
    expect(t.out.trim().split("\n")[1]).toBe("work,deny");
  });

  it("a Markdown table shows a qube name as it is (no emphasis, code or link)", async () => {
    const r = await qkit("policy", "table", "qubes.Gpg", ...P, "--format", "markdown", "--targets", "vault");
    expect(r.code).toBe(0);
    expect(r.out).toContain("| md\\*b\\*\\_x | ask |");
  });
});
