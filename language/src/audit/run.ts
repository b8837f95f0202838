/**
 * Running policy tests and measuring rule coverage.
 *
 * Each test call is decided with {@link explain} (the same decision as
 * `evaluate`, plus the deciding rule and, for `ask`, which rules contributed
 * the offered targets); coverage counts, per rule, the calls it decided and
 * the calls whose `ask` targets it contributed to.
 */
import { explain, makeRequest } from "../eval/evaluate.js";
import type { Explanation, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import type { Expectation } from "../template/model.js";
import { checkExpectation } from "./expect.js";

/** The outcome of one test call. */
export interface ExpectationOutcome {
  expectation: Expectation;
  /** The decision and why; `explanation.decision` is what `evaluate` returns. */
  explanation: Explanation;
  /** Undefined when the call got the expected decision; else what differs. */
  failure?: string;
}

/** Decides the call of an expectation and checks it. Never throws. */
export function runExpectation(policy: CompiledPolicy, system: SystemInfo, e: Expectation): ExpectationOutcome {
  const req = makeRequest(e.service + (e.argument && e.argument !== "+" ? e.argument : ""), e.source, e.target === "@default" ? "" : e.target);
  const explanation = explain(policy, req, system);
  const failure = checkExpectation(e, explanation.decision);
  return failure === undefined ? { expectation: e, explanation } : { expectation: e, explanation, failure };
}

/** Coverage of one rule. */
export interface RuleCoverage {
  rule: PolicyRule;
  /** Test calls this rule decided. */
  decided: number;
  /** Test calls decided by an `ask` rule whose offered targets this rule added or removed. */
  contributed: number;
}

/** Coverage of one policy file (as the decisions name it). */
export interface FileCoverage {
  /** The file as decisions report it (relative to the policy directory when inside it). */
  file: string;
  /** The absolute (virtual) path. */
  path: string;
  rules: RuleCoverage[];
  covered: number;
  total: number;
}

/** Coverage of a whole policy. */
export interface PolicyCoverage {
  files: FileCoverage[];
  covered: number;
  total: number;
}

/** Accumulates coverage over the test calls of one policy. */
export class CoverageCollector {
  private readonly decided: Int32Array;
  private readonly contributed: Int32Array;

  constructor(readonly policy: CompiledPolicy) {
    this.decided = new Int32Array(policy.rules.length);
    this.contributed = new Int32Array(policy.rules.length);
  }

  /** Records one decided call. */
  add(x: Explanation): void {
    if (x.decidingRule) this.decided[x.decidingRule.index]!++;
    const seen = new Set<number>();
    for (const c of x.askContributions ?? []) {
      if (seen.has(c.rule.index)) continue;
      seen.add(c.rule.index);
      this.contributed[c.rule.index]!++;
    }
  }

  /** The coverage so far, per file in load order. */
  result(): PolicyCoverage {
    const byPath = new Map<string, FileCoverage>();
    for (const rule of this.policy.rules) {
      let f = byPath.get(rule.origin.path);
      if (!f) byPath.set(rule.origin.path, (f = { file: rule.origin.file, path: rule.origin.path, rules: [], covered: 0, total: 0 }));
      const rc: RuleCoverage = { rule, decided: this.decided[rule.index]!, contributed: this.contributed[rule.index]! };
      f.rules.push(rc);
      f.total++;
      if (rc.decided || rc.contributed) f.covered++;
    }
    const files = [...byPath.values()];
    return { files, covered: files.reduce((n, f) => n + f.covered, 0), total: files.reduce((n, f) => n + f.total, 0) };
  }
}

/**
 * Coverage as lcov (`SF:`/`DA:`/`LF:`/`LH:` per file): one `DA` line per rule
 * line, the count being the calls it decided or contributed to. `pathOf`
 * maps the virtual path of a file to the path to print.
 */
export function coverageToLcov(c: PolicyCoverage, pathOf: (path: string) => string = (p) => p): string {
  const out: string[] = [];
  for (const f of c.files) {
    const lines = new Map<number, number>();
    for (const r of f.rules) {
      if (r.rule.origin.line === null) continue;
      lines.set(r.rule.origin.line, (lines.get(r.rule.origin.line) ?? 0) + r.decided + r.contributed);
    }
    if (lines.size === 0) continue;
    out.push("TN:", `SF:${pathOf(f.path)}`);
    const sorted = [...lines].sort((a, b) => a[0] - b[0]);
    for (const [line, n] of sorted) out.push(`DA:${line},${n}`);
    out.push(`LF:${sorted.length}`, `LH:${sorted.filter(([, n]) => n > 0).length}`, "end_of_record");
  }
  return out.length ? out.join("\n") + "\n" : "";
}
