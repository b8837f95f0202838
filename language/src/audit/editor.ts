/**
 * What an editor shows for policy tests, as pure data: diagnostics on a test
 * file (its problems and its failing calls, at the entry, with the actual
 * decision's explanation as related places) and code lenses on rules
 * ("decided by N tests"). The language server adapts these; nothing here
 * knows the protocol.
 */
import type { Explanation, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { printRule } from "../syntax/print.js";
import type { PolicyCoverage } from "./run.js";
import { CoverageCollector, runExpectation } from "./run.js";
import type { PolicyTestFile } from "./testfile.js";

/** A place in a policy file that explains a test diagnostic (the deciding rule …). */
export interface TestRelated {
  /** The absolute (virtual) path of the policy file. */
  path: string;
  /** The rule's line (1-based). */
  line: number;
  message: string;
}

/** A diagnostic on a policy test file. */
export interface TestFileDiagnostic {
  severity: "error";
  /** `policy-test-failed` for a failing call (another decision, or a name the daemon would not see as written), else the problem's code. */
  code: string;
  /** For a call failing on a name: `unknown-qube` or `unknown-service` (the code `qkit policy test` prints). */
  reason?: string;
  message: string;
  line: number;
  span: { start: number; end: number };
  /** For a failed call: the rules that made the actual decision (the deciding rule, the rules that offered ask targets). */
  related?: TestRelated[];
  /** For a failed call: the actual decision, explained. */
  explanation?: Explanation;
}

/** The outcome of running one test file for an editor. */
export interface TestFileReport {
  diagnostics: TestFileDiagnostic[];
  passed: number;
  failed: number;
}

/** One line: the actual decision of an explanation (`allow to vault`, `ask offering a, b (default a)`, `deny (no rule matched)`). */
export function actualDecisionText(x: Explanation): string {
  const d = x.decision;
  if (!d.ok) return `deny: the engine refuses (${d.error}: ${d.message})`;
  if (d.action === "allow") return `allow to ${d.target}`;
  if (d.action === "ask") return `ask offering ${d.targetsForAsk.join(", ") || "nothing"}${d.defaultTarget ? ` (default ${d.defaultTarget})` : ""}`;
  return x.decidingRule ? "deny" : "deny (no rule matched)";
}

function ruleWhere(r: PolicyRule): string {
  return `${r.origin.file}:${r.origin.line ?? "None"}`;
}

/** The related places of a failed call: the deciding rule, then the rules that added or removed ask targets. */
function relatedOf(x: Explanation): TestRelated[] {
  const out: TestRelated[] = [];
  const rule = x.decidingRule;
  if (rule && rule.origin.line !== null) out.push({ path: rule.origin.path, line: rule.origin.line, message: `decided here: ${actualDecisionText(x)} (${printRule(rule).replace(/\s+/g, " ")})` });
  for (const c of x.askContributions ?? []) {
    if (c.rule.origin.line === null) continue;
    out.push({ path: c.rule.origin.path, line: c.rule.origin.line, message: `${c.effect === "add" ? "offers" : "takes away"} ${c.targets.join(", ")}` });
  }
  return out;
}

/**
 * Runs the cases of a parsed test file against a policy and system (when
 * given: a file whose policy does not load, or that names none, shows only
 * its problems), and reports problems and failures as diagnostics at the
 * entries. Adds each call to `coverage` when given. Never throws.
 */
export function testFileDiagnostics(file: PolicyTestFile, policy?: CompiledPolicy, system?: SystemInfo, coverage?: CoverageCollector): TestFileReport {
  const diagnostics: TestFileDiagnostic[] = file.problems.map((p) => ({ severity: "error", code: p.code, message: p.message, line: p.line, span: p.span ?? { start: 0, end: 0 } }));
  let passed = 0;
  let failed = 0;
  if (policy && system) {
    for (const c of file.cases) {
      const r = runExpectation(policy, system, c.expectation);
      coverage?.add(r.explanation);
      if (r.failure === undefined && !r.problems) {
        passed++;
        continue;
      }
      failed++;
      // A name the daemon would not see as written fails the test (the code stays `policy-test-failed`, what the
      // editor shows for a failing call; `reason` is the CLI's code).
      for (const p of r.problems ?? []) diagnostics.push({ severity: "error", code: "policy-test-failed", reason: p.code, message: p.message, line: c.line, span: c.span });
      if (r.failure === undefined) continue;
      const rule = r.explanation.decidingRule;
      const where = rule ? ` (decided by ${ruleWhere(rule)})` : r.explanation.decision.ok ? " (no rule matched)" : "";
      diagnostics.push({ severity: "error", code: "policy-test-failed", message: `${r.failure}${where}`, line: c.line, span: c.span, related: relatedOf(r.explanation), explanation: r.explanation });
    }
  }
  return { diagnostics, passed, failed };
}

/** A code lens on a rule line. */
export interface RuleLens {
  /** The absolute (virtual) path of the policy file and the rule's line. */
  path: string;
  line: number;
  /** `decided by 3 tests`, `decided by 1 test, contributes ask targets to 2`, `no test decides this rule`. */
  title: string;
  decided: number;
  contributed: number;
}

function lensTitle(decided: number, contributed: number): string {
  const parts: string[] = [];
  if (decided) parts.push(`decided by ${decided} test${decided === 1 ? "" : "s"}`);
  if (contributed) parts.push(`contributes ask targets to ${contributed} test${contributed === 1 ? "" : "s"}`);
  return parts.length ? parts.join(", ") : "no test decides this rule";
}

/**
 * One lens per rule line of the coverage (rules without a line, from
 * `!compat-4.0`, have none); a line loaded twice (a file included twice)
 * has one lens with the counts of both copies.
 */
export function coverageLenses(coverage: PolicyCoverage): RuleLens[] {
  const out: RuleLens[] = [];
  const at = new Map<string, RuleLens>();
  for (const f of coverage.files) {
    for (const r of f.rules) {
      if (r.rule.origin.line === null) continue;
      const key = `${f.path}\0${r.rule.origin.line}`;
      const prev = at.get(key);
      if (prev) {
        prev.decided += r.decided;
        prev.contributed += r.contributed;
        prev.title = lensTitle(prev.decided, prev.contributed);
        continue;
      }
      const lens: RuleLens = { path: f.path, line: r.rule.origin.line, title: lensTitle(r.decided, r.contributed), decided: r.decided, contributed: r.contributed };
      at.set(key, lens);
      out.push(lens);
    }
  }
  return out;
}
