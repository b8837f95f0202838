/**
 * What an editor shows for policy tests, as pure data: diagnostics on a test
 * file (its problems and its failing calls, at the entry) and code lenses on
 * rules ("decided by N tests"). The language server adapts these; nothing
 * here knows the protocol.
 */
import type { SystemInfo } from "../eval/types.js";
import type { CompiledPolicy } from "../loader/types.js";
import type { PolicyCoverage } from "./run.js";
import { CoverageCollector, runExpectation } from "./run.js";
import type { PolicyTestFile } from "./testfile.js";

/** A diagnostic on a policy test file. */
export interface TestFileDiagnostic {
  severity: "error";
  /** `policy-test-failed` for a call that got another decision, else the problem's code. */
  code: string;
  message: string;
  line: number;
  span: { start: number; end: number };
}

/** The outcome of running one test file for an editor. */
export interface TestFileReport {
  diagnostics: TestFileDiagnostic[];
  passed: number;
  failed: number;
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
      if (r.failure === undefined) {
        passed++;
        continue;
      }
      failed++;
      const rule = r.explanation.decidingRule;
      const where = rule ? ` (decided by ${rule.origin.file}:${rule.origin.line ?? "None"})` : "";
      diagnostics.push({ severity: "error", code: "policy-test-failed", message: `${r.failure}${where}`, line: c.line, span: c.span });
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

/** One lens per rule line of the coverage (rules without a line, from `!compat-4.0`, have none). */
export function coverageLenses(coverage: PolicyCoverage): RuleLens[] {
  const out: RuleLens[] = [];
  for (const f of coverage.files) {
    for (const r of f.rules) {
      if (r.rule.origin.line === null) continue;
      const parts: string[] = [];
      if (r.decided) parts.push(`decided by ${r.decided} test${r.decided === 1 ? "" : "s"}`);
      if (r.contributed) parts.push(`contributes ask targets to ${r.contributed} test${r.contributed === 1 ? "" : "s"}`);
      out.push({ path: f.path, line: r.rule.origin.line, title: parts.length ? parts.join(", ") : "no test decides this rule", decided: r.decided, contributed: r.contributed });
    }
  }
  return out;
}
