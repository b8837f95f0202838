/**
 * The cold start's load (issue 9): `qkit policy eval` of one request loads
 * only the rules of the requested service (`loadPolicy(fs, { service })`),
 * and the scanner passes over the lines of certainly valid rules of other
 * services (or, for `checkPolicy`, of every service) a whole line per
 * match (`ruleLinePattern`). Both must change nothing but the time:
 *
 * - the line pattern matches a line exactly when the validation fast path
 *   (`fastValidRule`) accepts it and its service may not decide the
 *   requested one (property test on random lines);
 * - a load for one service (lazy) and the whole load (eager) agree: the same
 *   error, diagnostics and warnings, and the same decision for every request
 *   of that service; `checkPolicy` finds what a strict load with
 *   `collectAll` finds, and counts the same rules (property test on random
 *   policies with comments, blank lines, CRLF, indentation, bad lines and
 *   includes);
 * - `qkit policy eval --json` prints the eager load's decision.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { checkPolicy, createMemoryFileSystem, decisionToJson, evaluate, loadPolicy, prepareSystemInfo, type RawSystemInfo } from "@qubes-kit/language";
import { fastValidRule, ruleLinePattern } from "../../language/src/syntax/fastcheck.js";
import { ruleLineArb } from "../helpers/policy-arbs.js";
import { runQkit } from "../helpers/qkit.js";

const SERVICES = ["qubes.A", "qubes.AB", "qubes.A.b", "qubes.B", "*"];
const EXCEPT = [undefined, "qubes.A", "qubes.AB", "qubes.C", "qubes.A.b", "a(b)[c]+d"];

/** A rule line around the edges of the fast paths (without its line ending). */
const lineArb = fc
  .record({
    indent: fc.constantFrom("", "", "", " ", "\t", " \t "),
    service: fc.constantFrom(...SERVICES, "qubes.A+x", "bad/svc", "qubes.A\u00a0"),
    argument: fc.constantFrom("*", "+", "+x", "+x+y", "x", "*x"),
    source: fc.constantFrom("work", "@anyvm", "@tag:t", "@type:AppVM", "@default", "*", "@adminvm", "@dispvm:dvm", "dom0", "@bogus"),
    target: fc.constantFrom("@default", "vault", "@dispvm", "*", "@anyvm", "@dispvm:@tag:t", "@adminvm", "@tag:"),
    action: fc.constantFrom("allow", "ask", "deny", "allow", "ask", "permit"),
    params: fc.array(
      fc.constantFrom("target=work", "target=@dispvm", "target=@default", "target=", "default_target=work", "user=root", "user=xtarget=y", "user=a=b", "notify=yes", "notify=maybe", "autostart=no", "autostart=yes", "x=1"),
      { maxLength: 4 },
    ),
    sep: fc.constantFrom(" ", "\t", "  ", " \t"),
    trail: fc.constantFrom("", "", "", " ", "\t", "\r", " \u000b"),
  })
  .map((r) => r.indent + [r.service, r.argument, r.source, r.target, r.action, ...r.params].join(r.sep) + r.trail);

describe("the scanner's line pattern", () => {
  it("matches a whole line exactly when the fast path accepts it and its service is not the excepted one or *", () => {
    fc.assert(
      fc.property(lineArb, fc.constantFrom(...EXCEPT), (line, except) => {
        const re = ruleLinePattern(except);
        const text = `${line}\nnext\n`;
        re.lastIndex = 0;
        const matched = re.test(text);
        // When it matches, it is the whole line and its `\n`, nothing more.
        if (matched) expect(re.lastIndex).toBe(line.length + 1);
        const start = line.length - line.trimStart().length;
        let end = line.length;
        while (end > start && /[ \t\r\u000b]/.test(line[end - 1]!)) end--;
        const service = line.slice(start).split(/[ \t]/, 1)[0]!;
        const plain = !/[\r\u000b]/.test(line);
        const expected = plain && fastValidRule(line, start, end) && (except === undefined || (service !== "*" && service !== except));
        expect(matched).toBe(expected);
      }),
      { numRuns: 5000 },
    );
  });
});

const QUBES = ["work", "vault", "dvm", "sys-net"];
const RAW: RawSystemInfo = {
  domains: {
    dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: "dvm", power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000", internal: null, icon: "", label: "" },
    work: { type: "AppVM", tags: ["t"], template_for_dispvms: false, default_dispvm: "dvm", power_state: "Running", uuid: "00000000-0000-0000-0000-000000000001", internal: null, icon: "", label: "" },
    vault: { type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Halted", uuid: "00000000-0000-0000-0000-000000000002", internal: null, icon: "", label: "" },
    dvm: { type: "AppVM", tags: ["t"], template_for_dispvms: true, default_dispvm: "dvm", power_state: "Halted", uuid: "00000000-0000-0000-0000-000000000003", internal: null, icon: "", label: "" },
    "sys-net": { type: "StandaloneVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000004", internal: null, icon: "", label: "" },
  },
};
const SYSTEM = prepareSystemInfo(RAW);

/** A valid rule line, indented and spaced in the ways the scanner must pass over. */
const validLineArb = fc
  .tuple(
    ruleLineArb({
      serviceArgs: [
        ["qubes.A", "*"],
        ["qubes.A", "+x"],
        ["qubes.AB", "*"],
        ["qubes.A.b", "+"],
        ["qubes.B", "+x+y"],
        ["*", "*"],
        ["*", "*"],
      ],
      sources: ["@anyvm", "*", "@tag:t", "@type:AppVM", "@adminvm", "dom0", ...QUBES, "ghost"],
      targets: ["@anyvm", "*", "@tag:t", "@default", "@dispvm", "@dispvm:dvm", "@adminvm", "dom0", ...QUBES, "ghost"],
      redirects: ["@adminvm", "@dispvm", "@dispvm:dvm", "dom0", "vault", "ghost"],
      autostart: true,
    }),
    fc.constantFrom("", "", "", " ", "\t"),
    fc.constantFrom(" ", " ", "\t", "  "),
    fc.constantFrom("", "", "", " ", "\t"),
  )
  .map(([line, indent, sep, trail]) => indent + line.split(" ").join(sep) + trail);

/** A policy line: mostly valid rules, with comments, blanks, includes, and now and then any line (often a bad one). */
const policyLineArb = fc.oneof(
  { weight: 30, arbitrary: validLineArb },
  { weight: 2, arbitrary: fc.constantFrom("# comment", "", "  ", "\t# indented comment", "!include include/x") },
  { weight: 2, arbitrary: lineArb },
  { weight: 1, arbitrary: fc.constantFrom("!include include/missing", "!compat-4.0", "!bogus") },
);

/** A policy: a main file, a second file and an included file, each with its line endings. */
const policyArb = fc.record({
  main: fc.array(policyLineArb, { minLength: 1, maxLength: 12 }),
  second: fc.array(policyLineArb, { maxLength: 8 }),
  included: fc.array(validLineArb, { maxLength: 4 }),
  eol: fc.constantFrom("\n", "\n", "\r\n", "\r"),
  final: fc.boolean(),
});

const requestArb = fc.record({
  service: fc.constantFrom("qubes.A", "qubes.AB", "qubes.A.b", "qubes.B", "qubes.C"),
  argument: fc.constantFrom("+", "+x", "+x+y"),
  source: fc.constantFrom(...QUBES, "dom0", "ghost"),
  target: fc.constantFrom(...QUBES, "", "@default", "@dispvm", "@dispvm:dvm", "@adminvm", "ghost"),
});

function files(p: { main: string[]; second: string[]; included: string[]; eol: string; final: boolean }): Record<string, string> {
  const text = (lines: string[]) => lines.join(p.eol) + (p.final ? p.eol : "");
  return { "30-main.policy": text(p.main), "40-second.policy": text(p.second), "include/x": text(p.included) };
}

const key = (d: { file?: string; line: number; code: string; message: string; severity: string }) => [d.file, d.line, d.code, d.severity, d.message];

const stats = { ok: 0, error: 0, decided: 0 };

describe("a load for one service (lazy) and the whole load (eager)", () => {
  it("agree on errors, diagnostics and every decision; check agrees with a strict load", () => {
    fc.assert(
      fc.property(policyArb, fc.array(requestArb, { minLength: 1, maxLength: 6 }), (p, requests) => {
        const fs = createMemoryFileSystem(files(p));
        const eager = loadPolicy(fs);
        const all = loadPolicy(fs, { collectAll: true });
        stats[eager.ok ? "ok" : "error"]++;
        const checked = checkPolicy(fs);
        expect(checked.diagnostics.map(key)).toEqual(all.diagnostics.map(key));
        expect(checked.ok).toBe(eager.ok);
        if (eager.ok) expect(checked.rules).toBe(eager.policy.rules.length);
        else expect(checked.error).toEqual(eager.error);
        for (const req of requests) {
          const lazy = loadPolicy(fs, { service: req.service });
          expect(lazy.ok).toBe(eager.ok);
          expect(lazy.diagnostics.map(key)).toEqual(eager.diagnostics.map(key));
          if (!lazy.ok || !eager.ok) {
            if (!lazy.ok && !eager.ok) expect(lazy.error).toEqual(eager.error);
            continue;
          }
          expect(lazy.policy.ruleCount).toBe(eager.policy.rules.length);
          const r = { service: req.service, argument: req.argument, source: req.source, target: req.target };
          const d = evaluate(eager.policy, r, SYSTEM);
          if (d.ok) stats.decided++;
          expect(decisionToJson(evaluate(lazy.policy, r, SYSTEM))).toEqual(decisionToJson(d));
        }
      }),
      { numRuns: 1500 },
    );
    // The random policies load often enough, and decide requests (the test would be idle otherwise).
    expect(stats.ok).toBeGreaterThan(500);
    expect(stats.error).toBeGreaterThan(50);
    expect(stats.decided).toBeGreaterThan(250);
  });
});

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("qkit policy eval of one request", () => {
  it("prints the whole load's decision, or its error", async () => {
    await fc.assert(
      fc.asyncProperty(policyArb, requestArb, async (p, req) => {
        const dir = mkdtempSync(join(tmpdir(), "qkit-cold-"));
        dirs.push(dir);
        const policyDir = join(dir, "policy.d");
        mkdirSync(join(policyDir, "include"), { recursive: true });
        const fileMap = files(p);
        for (const [name, text] of Object.entries(fileMap)) writeFileSync(join(policyDir, name), text);
        writeFileSync(join(dir, "system.json"), JSON.stringify(RAW));
        const run = await runQkit(["policy", "eval", "--policy-dir", policyDir, "--system", join(dir, "system.json"), "--json", `${req.service}${req.argument === "+" ? "" : req.argument}`, req.source, req.target], { cwd: dir });
        const eager = loadPolicy(createMemoryFileSystem(fileMap));
        const out = JSON.parse(run.out.trim().split("\n")[0]!) as { ok: boolean; error?: string; message?: string };
        if (!eager.ok) {
          expect(out.ok).toBe(false);
          expect(out.error).toBe(eager.error.error);
          expect(out.message).toBe(eager.error.message);
          return;
        }
        const expected = decisionToJson(evaluate(eager.policy, { service: req.service, argument: req.argument, source: req.source, target: req.target }, SYSTEM));
        expect(out).toEqual(JSON.parse(JSON.stringify(expected)));
      }),
      { numRuns: 150 },
    );
  });
});
