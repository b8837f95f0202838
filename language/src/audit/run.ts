/**
 * Running policy tests and measuring rule coverage.
 *
 * Each test call is decided with {@link explain} (the same decision as
 * `evaluate`, plus the deciding rule and, for `ask`, which rules contributed
 * the offered targets); coverage counts, per rule, the calls it decided and
 * the calls whose `ask` targets it added (an `allow` or `ask` rule; a `deny`
 * rule that only kept targets off an ask list is not covered by that).
 */
import { explain, makeRequest } from "../eval/evaluate.js";
import { prep } from "../eval/index.js";
import { callerDispvmOf } from "../eval/match.js";
import type { Explanation, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import type { Expectation } from "../template/model.js";
import { checkExpectation } from "./expect.js";
import { serviceNameProblem } from "./query.js";
import { closest } from "../services/util.js";
import { pyTruthy } from "../syntax/python.js";

/** The outcome of one test call. */
export interface ExpectationOutcome {
  expectation: Expectation;
  /** The decision and why; `explanation.decision` is what `evaluate` returns. */
  explanation: Explanation;
  /** Undefined when the call got the expected decision; else what differs. */
  failure?: string;
  /** Names of the call the daemon would not see as written (the test fails with them). */
  problems?: ExpectationNameProblem[];
}

/**
 * A name in a test call that is most likely a typo: the test still runs, but
 * fails with this problem (`qkit policy eval` warns about the same names).
 */
export interface ExpectationNameProblem {
  /** `unknown-qube` (a source or target that is not a qube of the system) or `unknown-service` (a service no rule names, close to one a rule names). */
  code: "unknown-qube" | "unknown-service";
  message: string;
}

function didYouMean(word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates, 3);
  return c.length === 0 ? "" : `; did you mean ${c.map((x) => `\`${x}\``).join(" or ")}?`;
}

/**
 * The names of a test call that the daemon would not see as written, in
 * `qkit policy eval`'s wording: a source or target that is not a qube of the
 * system (the daemon never receives a call from such a source, and treats
 * such a target as `@default`), and a service that no rule names while one
 * a rule names is one or two letters away (a service no rule names and close
 * to none is a legitimate test of the `*` rules). Never throws.
 */
export function expectationNameProblems(policy: CompiledPolicy, system: SystemInfo, e: Expectation): ExpectationNameProblem[] {
  return callNameProblems(policy, system, e);
}

/**
 * The names of a call (`qkit policy test`'s calls, `qkit policy flip`'s) that
 * the daemon would not see as written: see {@link expectationNameProblems};
 * also a target `@dispvm:X` whose X is not a qube of the system (the engine
 * refuses it before reading the policy). Never throws.
 */
export function callNameProblems(policy: CompiledPolicy, system: SystemInfo, e: { service: string; source: string; target: string }): ExpectationNameProblem[] {
  const out: ExpectationNameProblem[] = [];
  const qubes = () => [...system.domains.keys()].filter((k) => !k.startsWith("uuid:"));
  const dispvmOf = e.target.startsWith("@dispvm:") ? e.target.slice("@dispvm:".length) : undefined;
  if (dispvmOf !== undefined && dispvmOf !== "" && !dispvmOf.startsWith("@") && !system.domains.has(dispvmOf)) {
    const templates = qubes().filter((q) => pyTruthy((system.domains.get(q) as Record<string, unknown> | undefined)?.["template_for_dispvms"]));
    out.push({ code: "unknown-qube", message: `target \`${e.target}\`: \`${dispvmOf}\` is not a qube of the system, so the engine refuses the call${didYouMean(dispvmOf, templates.length ? templates : qubes())}` });
  }
  // A call always comes from a qube by its name: `@anyvm`, `@tag:…` and the like are never a source either.
  if (e.source !== "" && !system.domains.has(e.source)) {
    out.push({ code: "unknown-qube", message: `source \`${e.source}\` is not a qube of the system: the daemon never receives a call from it; check the name${didYouMean(e.source, qubes())}` });
  }
  if (e.target !== "" && !e.target.startsWith("@") && !system.domains.has(e.target)) {
    out.push({ code: "unknown-qube", message: `target \`${e.target}\` is not a qube of the system: the daemon treats it as @default${didYouMean(e.target, qubes())}` });
  }
  const service = serviceNameProblem(policy, e.service);
  if (service !== undefined) out.push({ code: "unknown-service", message: service });
  return out;
}

/** Decides the call of an expectation and checks it. Never throws. */
export function runExpectation(policy: CompiledPolicy, system: SystemInfo, e: Expectation): ExpectationOutcome {
  const req = makeRequest(e.service + (e.argument && e.argument !== "+" ? e.argument : ""), e.source, e.target === "@default" ? "" : e.target);
  const explanation = explain(policy, req, system);
  const failure = checkExpectation(e, explanation.decision, callerDispvm(system, e.source));
  const problems = expectationNameProblems(policy, system, e);
  return { expectation: e, explanation, ...(failure !== undefined ? { failure } : {}), ...(problems.length ? { problems } : {}) };
}

/** What `@dispvm` means for the caller: `@dispvm:X`, X its default disposable template; or null. Never throws. */
export function callerDispvm(system: SystemInfo, source: string): string | null {
  return callerDispvmOf(prep(system).domains, source);
}

/** Coverage of one rule. */
export interface RuleCoverage {
  rule: PolicyRule;
  /** Test calls this rule decided. */
  decided: number;
  /**
   * Test calls decided by an `ask` rule whose offered targets this (`allow`
   * or `ask`) rule added. A `deny` rule that only kept targets off the list
   * contributes nothing: it decided no call, so it is not covered by it.
   */
  contributed: number;
  /** Test calls this rule decided or added offered targets to, each counted once (lcov's hit count). */
  calls: number;
  /**
   * The loaded copies of this line when its file is included more than once
   * (each copy is a rule of its own in first-match order): the counts of each,
   * in load order. `decided` and `contributed` above are their sums, and the
   * line is covered when any copy is. Absent for a line loaded once.
   */
  copies?: RuleCopyCoverage[];
}

/** The coverage of one loaded copy of a rule line (a file included more than once). */
export interface RuleCopyCoverage {
  rule: PolicyRule;
  decided: number;
  contributed: number;
  calls: number;
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
  private readonly reaching: Int32Array;

  constructor(readonly policy: CompiledPolicy) {
    this.decided = new Int32Array(policy.rules.length);
    this.contributed = new Int32Array(policy.rules.length);
    this.reaching = new Int32Array(policy.rules.length);
  }

  /** Records one decided call. */
  add(x: Explanation): void {
    if (x.decidingRule) this.decided[x.decidingRule.index]!++;
    const seen = new Set<number>();
    // The rules this call reaches, each once (an ask rule that decides it and adds its targets too).
    const reached = new Set<number>();
    if (x.decidingRule) reached.add(x.decidingRule.index);
    for (const c of x.askContributions ?? []) {
      // Only rules that added targets the call is offered count (a deny rule's "remove" keeps targets off
      // the list; the source itself and internal qubes are never offered, so adding them offers nothing).
      if (c.effect !== "add" || !(c.offered ?? c.targets).length || seen.has(c.rule.index)) continue;
      seen.add(c.rule.index);
      reached.add(c.rule.index);
      this.contributed[c.rule.index]!++;
    }
    for (const i of reached) this.reaching[i]!++;
  }

  /**
   * The coverage so far, per file in load order. The unit is a rule line of
   * a file: a file included more than once loads its rules once per
   * `!include`, and a line counts once, covered when any of its copies
   * decided a test call or added ask targets to one (the counts summed, the
   * copies in {@link RuleCoverage.copies}). Text, JSON, lcov and the editor's
   * lenses all read this one model.
   */
  result(): PolicyCoverage {
    const byPath = new Map<string, FileCoverage>();
    const byLine = new Map<string, RuleCoverage>();
    for (const rule of this.policy.rules) {
      let f = byPath.get(rule.origin.path);
      if (!f) byPath.set(rule.origin.path, (f = { file: rule.origin.file, path: rule.origin.path, rules: [], covered: 0, total: 0 }));
      const copy: RuleCopyCoverage = { rule, decided: this.decided[rule.index]!, contributed: this.contributed[rule.index]!, calls: this.reaching[rule.index]! };
      // Rules without a line (`!compat-4.0`'s implicit denies) are each their own.
      const key = rule.origin.line === null ? `#${rule.index}` : `${rule.origin.path}\0${rule.origin.line}`;
      const prev = byLine.get(key);
      if (prev) {
        (prev.copies ??= [{ rule: prev.rule, decided: prev.decided, contributed: prev.contributed, calls: prev.calls }]).push(copy);
        prev.decided += copy.decided;
        prev.contributed += copy.contributed;
        prev.calls += copy.calls;
        continue;
      }
      const rc: RuleCoverage = { rule, decided: copy.decided, contributed: copy.contributed, calls: copy.calls };
      byLine.set(key, rc);
      f.rules.push(rc);
    }
    const files = [...byPath.values()];
    for (const f of files) {
      f.rules.sort((a, b) => (a.rule.origin.line ?? Infinity) - (b.rule.origin.line ?? Infinity) || a.rule.index - b.rule.index);
      f.total = f.rules.length;
      f.covered = f.rules.filter((r) => r.decided || r.contributed).length;
    }
    return { files, covered: files.reduce((n, f) => n + f.covered, 0), total: files.reduce((n, f) => n + f.total, 0) };
  }
}

/**
 * Coverage as lcov (`SF:`/`DA:`/`LF:`/`LH:` per file): one `DA` line per rule
 * line, the count being the test calls that reach it (decided by it, or
 * offered targets it added), each once. `pathOf`
 * maps the virtual path of a file to the path to print.
 */
export function coverageToLcov(c: PolicyCoverage, pathOf: (path: string) => string = (p) => p): string {
  const out: string[] = [];
  for (const f of c.files) {
    // One rule line per entry (the copies of an included file's line are summed in the model).
    const lines = new Map<number, number>();
    for (const r of f.rules) {
      if (r.rule.origin.line === null) continue;
      lines.set(r.rule.origin.line, r.calls);
    }
    if (lines.size === 0) continue;
    out.push("TN:", `SF:${pathOf(f.path)}`);
    const sorted = [...lines].sort((a, b) => a[0] - b[0]);
    for (const [line, n] of sorted) out.push(`DA:${line},${n}`);
    out.push(`LF:${sorted.length}`, `LH:${sorted.filter(([, n]) => n > 0).length}`, "end_of_record");
  }
  return out.length ? out.join("\n") + "\n" : "";
}
