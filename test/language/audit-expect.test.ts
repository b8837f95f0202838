/**
 * Expectations, test files and coverage (`language/src/audit`), through the
 * package entry point: data-driven parse cases, expectations checked against
 * real decisions of the demo policy, and properties (parsing never throws;
 * coverage counts every deciding rule once per call).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkExpectation,
  CoverageCollector,
  coverageLenses,
  testFileDiagnostics,
  coverageToLcov,
  createMemoryFileSystem,
  evaluate,
  explain,
  loadPolicy,
  makeRequest,
  parseExpectation,
  parsePolicyTestFile,
  prepareSystemInfo,
  runExpectation,
  type CompiledPolicy,
  type Expectation,
} from "@qubes-kit/language";

const demo = fileURLToPath(new URL("../fixtures/audit/demo/", import.meta.url));

function readTree(dir: string, base = "/etc/qubes/policy.d"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) Object.assign(out, readTree(p, `${base}/${n}`));
    else out[`${base}/${n}`] = readFileSync(p, "utf8");
  }
  return out;
}

const loaded = loadPolicy(createMemoryFileSystem(readTree(demo + "policy.d")));
if (!loaded.ok) throw new Error(loaded.error.message);
const policy: CompiledPolicy = loaded.policy;
const raw = JSON.parse(readFileSync(demo + "system.json", "utf8"));
const system = prepareSystemInfo(raw);
const QUBES = Object.keys(raw.domains) as string[];

describe("test entries (parsed by the template language's parseExpectation)", () => {
  const file = (entry: string) => parsePolicyTestFile(`policy: p\nsystem: s\ntests:\n${entry}\n`);
  it.each([
    ["  - qubes.Filecopy work vault => deny", { service: "qubes.Filecopy", argument: "", source: "work", target: "vault", decision: "deny" }],
    ["  - qubes.StartApp+firefox work @dispvm => allow @dispvm:work-dvm", { service: "qubes.StartApp", argument: "+firefox", source: "work", target: "@dispvm", decision: "allow", target_is: "@dispvm:work-dvm" }],
    ["  - call: qubes.Gpg work -> @default\n    decision: ask\n    targets_include: [vault]", { service: "qubes.Gpg", argument: "", source: "work", target: "@default", decision: "ask", targets_include: ["vault"] }],
  ])("%s", (entry, want) => {
    const f = file(entry);
    expect(f.problems).toEqual([]);
    expect(f.cases[0]!.expectation).toEqual(want);
    expect(f.cases[0]!.line).toBe(4);
  });

  it.each([
    ["  - qubes.Filecopy work vault", "bad-expectation", /missing => and the expected decision/],
    ["  - qubes.Filecopy work vault => maybe", "bad-expectation", /invalid decision: maybe/],
    ["  - call: qubes.Filecopy work -> vault\n    decision: deny\n    target: vault", "bad-expectation", /^`target`: a denied call has no target/],
    ["  - call: qubes.Filecopy work -> vault\n    decision: ask\n    color: 1", "bad-expectation-key", /^unknown key `color`/],
    ["  - call: qubes.Filecopy work -> vault\n    decision: ask\n    name: 3", "bad-expectation", /^`name` must be a string/],
    ["  - 42", "bad-expectation", /^a test is a string/],
  ])("refuses %j", (entry, code, message) => {
    const f = file(entry);
    expect(f.cases).toEqual([]);
    expect(f.problems[0]).toMatchObject({ line: 4, code });
    expect(f.problems[0]!.message).toMatch(message);
  });
});

describe("checkExpectation against the demo policy", () => {
  const e = (text: string, extra: Partial<Expectation> = {}): Expectation => {
    const r = parseExpectation(text);
    if (!r.ok) throw new Error(r.message);
    return { ...r.expectation, ...extra };
  };
  it.each([
    [e("qubes.Filecopy vault work => deny"), undefined],
    [e("qubes.Filecopy vault work => allow"), "expected allow, got deny"],
    [e("qubes.Filecopy work personal => allow personal"), undefined],
    [e("qubes.Filecopy work personal => allow vault"), "expected allow to vault, got allow to personal"],
    [e("qubes.Filecopy work vault => ask vault"), undefined],
    [e("qubes.Filecopy work vault => ask personal"), "expected the default target personal, got vault"],
    [e("qubes.Filecopy work vault => ask", { targets_include: ["vault", "personal"] }), undefined],
    [e("qubes.Filecopy work vault => ask", { targets_include: ["work", "dom0"] }), /^expected work, dom0 among the offered targets/],
    [e("qubes.Filecopy work vault => ask", { targets_exact: ["vault"] }), /^expected exactly vault offered, got @dispvm:default-dvm/],
    // A refusal by the engine counts as deny: work-dvm is not running... personal is halted and the rule says autostart=no.
    [e("qubes.StartApp work personal => deny"), undefined],
    [e("qubes.NoSuchService work vault => deny"), undefined],
  ])("%j", (exp, want) => {
    const r = runExpectation(policy, system, exp);
    expect(r.explanation.decision).toEqual(evaluate(policy, makeRequest(exp.service + exp.argument, exp.source, exp.target === "@default" ? "" : exp.target), system));
    if (want instanceof RegExp) expect(r.failure).toMatch(want);
    else expect(r.failure).toBe(want);
    expect(checkExpectation(exp, r.explanation.decision)).toBe(r.failure);
  });
});

describe("parsePolicyTestFile", () => {
  it("reads the fixture test files (all cases, lines of each)", () => {
    const f = parsePolicyTestFile(readFileSync(fileURLToPath(new URL("../fixtures/audit/tests/demo.policytest.yaml", import.meta.url)), "utf8"));
    expect(f.problems).toEqual([]);
    expect(f.policy).toBe("../demo/policy.d");
    expect(f.cases.map((c) => c.line)).toEqual([5, 6, 7, 8, 9, 10, 14, 17, 19, 20]);
    expect(f.cases[5]!.name).toBe("work is offered the other qubes when copying");
  });

  it.each([
    ["", "a policy test file is a map with `policy`, `system` and `tests`"],
    ["policy: p", "no tests: add a `tests:` list"],
    ["tests: [", /^not valid YAML/],
    ["- a", "a policy test file is a map with `policy`, `system` and `tests`"],
    ["tests: 3", "`tests` must be a list of expectations"],
    ["policy: 3\ntests: []", "`policy` must be a path"],
    ["tests: []\ntests: []", /^not valid YAML/],
  ])("reports %j", (text, message) => {
    const f = parsePolicyTestFile(text);
    if (message instanceof RegExp) expect(f.problems[0]!.message).toMatch(message);
    else expect(f.problems[0]!.message).toBe(message);
  });

  it("never throws on arbitrary text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        parsePolicyTestFile(s);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("CoverageCollector", () => {
  it("counts each call once for its deciding rule and once per contributing rule", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            service: fc.constantFrom("qubes.Filecopy", "qubes.Gpg", "qubes.OpenURL", "qubes.ClipboardPaste", "qubes.StartApp", "admin.vm.List", "qubes.Other"),
            source: fc.constantFrom(...QUBES),
            target: fc.constantFrom(...QUBES, "", "@dispvm", "@adminvm"),
          }),
          { maxLength: 30 },
        ),
        (calls) => {
          const c = new CoverageCollector(policy);
          let decided = 0;
          let contributions = 0;
          for (const call of calls) {
            const x = explain(policy, makeRequest(call.service, call.source, call.target), system);
            c.add(x);
            if (x.decidingRule) decided++;
            // Only rules that added targets to the offered list contribute (a deny rule keeps targets off it).
            contributions += new Set((x.askContributions ?? []).filter((s) => s.effect === "add" && s.targets.length > 0).map((s) => s.rule.index)).size;
          }
          const cov = c.result();
          const rules = cov.files.flatMap((f) => f.rules);
          expect(rules.length).toBe(policy.rules.length);
          expect(rules.reduce((n, r) => n + r.decided, 0)).toBe(decided);
          expect(rules.reduce((n, r) => n + r.contributed, 0)).toBe(contributions);
          expect(cov.covered).toBe(rules.filter((r) => r.decided + r.contributed > 0).length);
          for (const r of rules) if (r.rule.action === "deny") expect(r.contributed, `deny rule ${r.rule.origin.file}:${r.rule.origin.line}`).toBe(0);
          // lcov: one DA line per rule line, hit counts as above.
          const lcov = coverageToLcov(cov);
          expect(lcov.match(/^DA:/gm)?.length ?? 0).toBe(new Set(rules.filter((r) => r.rule.origin.line !== null).map((r) => `${r.rule.origin.path}:${r.rule.origin.line}`)).size);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("editor services (test file diagnostics, coverage lenses)", () => {
  it("covers only the rules that decided a call or added ask targets, never a deny rule that kept targets off the list", () => {
    const text = readFileSync(fileURLToPath(new URL("../fixtures/audit/asklists/ask-with-deny.policytest.yaml", import.meta.url)), "utf8");
    const coverage = new CoverageCollector(policy);
    const report = testFileDiagnostics(parsePolicyTestFile(text), policy, system, coverage);
    expect(report.failed).toBe(0);
    // The calls' ask lists were shaped by these deny rules ("remove" steps of the explanation)...
    const removers = new Set<string>();
    for (const src of ["work", "untrusted"]) {
      for (const s of explain(policy, makeRequest("qubes.Filecopy", src, ""), system).askContributions ?? []) if (s.effect === "remove") removers.add(`${s.rule.origin.file}:${s.rule.origin.line}`);
    }
    expect([...removers].sort()).toEqual(["30-user.policy:11", "30-user.policy:9", "90-default.policy:5"]);
    // ...and none of them is covered, in the numbers or in the lenses.
    const lenses = coverageLenses(coverage.result());
    const at = (where: string) => lenses.find((l) => `${l.path.split("/").pop()}:${l.line}` === where)!;
    for (const r of removers) expect([r, at(r).title, at(r).contributed]).toEqual([r, "no test decides this rule", 0]);
    expect(at("30-user.policy:13").title).toBe("contributes ask targets to 1 test");
    expect(at("30-user.policy:15").title).toBe("decided by 2 tests, contributes ask targets to 2 tests");
  });

  it("puts problems and failing calls on their entries, and lenses on every rule line", () => {
    const text = readFileSync(fileURLToPath(new URL("../fixtures/audit/tests/failing.policytest.yaml", import.meta.url)), "utf8") + "  - qubes.Filecopy work vault => perhaps\n";
    const file = parsePolicyTestFile(text);
    const coverage = new CoverageCollector(policy);
    const report = testFileDiagnostics(file, policy, system, coverage);
    expect(report.passed).toBe(1);
    expect(report.failed).toBe(2);
    expect(report.diagnostics.map((d) => [d.code, d.line, text.slice(d.span.start, d.span.end).split("\n")[0]])).toEqual([
      ["bad-expectation", 10, "qubes.Filecopy work vault => perhaps"],
      ["policy-test-failed", 5, "qubes.Filecopy untrusted work => allow"],
      ["policy-test-failed", 6, "call: qubes.Filecopy work -> @default"],
    ]);
    expect(report.diagnostics[1]!.message).toBe("expected allow, got deny (decided by 30-user.policy:11)");
    const lenses = coverageLenses(coverage.result());
    expect(lenses.length).toBe(policy.rules.filter((r) => r.origin.line !== null).length);
    const at = (file: string, line: number) => lenses.find((l) => l.path.endsWith(file) && l.line === line)!.title;
    expect(at("30-user.policy", 11)).toBe("decided by 1 test");
    expect(at("30-user.policy", 15)).toBe("decided by 1 test, contributes ask targets to 1 test");
    expect(at("20-admin.policy", 14)).toBe("no test decides this rule");
    // Without a policy, only the problems.
    expect(testFileDiagnostics(file).diagnostics.map((d) => d.code)).toEqual(["bad-expectation"]);
  });
});
