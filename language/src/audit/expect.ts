/**
 * Expectations (the `expect:` entries of domain templates and the entries of
 * policy test files, parsed by `parseExpectation` of `template/expect.ts`)
 * checked against real decisions.
 */
import type { Decision } from "../eval/types.js";
import type { Expectation } from "../template/model.js";

/** The call of an expectation as one line (`qubes.Filecopy work -> vault`). */
export function expectationCall(e: Expectation): string {
  return `${e.service}${e.argument && e.argument !== "+" ? e.argument : ""} ${e.source} -> ${e.target || "@default"}`;
}

/** The expected decision as one line (`ask, default vault, offering at least a, b`). */
export function expectationText(e: Expectation): string {
  const parts: string[] = [e.decision];
  if (e.target_is !== undefined) parts.push(e.decision === "ask" ? `default ${e.target_is}` : `to ${e.target_is}`);
  if (e.targets_include) parts.push(`offering at least ${e.targets_include.join(", ") || "nothing"}`);
  if (e.targets_exact) parts.push(`offering exactly ${e.targets_exact.join(", ") || "nothing"}`);
  return parts.join(", ");
}

/**
 * Checks a decision against an expectation: `undefined` when it holds, else
 * one sentence saying what differs. A refusal by the engine counts as `deny`.
 */
export function checkExpectation(e: Expectation, d: Decision): string | undefined {
  const action = d.ok ? d.action : "deny";
  if (action !== e.decision) return `expected ${e.decision}, got ${action}`;
  if (!d.ok || d.action === "deny") return undefined;
  if (d.action === "allow") {
    if (e.target_is !== undefined && d.target !== e.target_is) return `expected allow to ${e.target_is}, got allow to ${d.target}`;
    return undefined;
  }
  if (e.target_is !== undefined && d.defaultTarget !== e.target_is) return `expected the default target ${e.target_is}, got ${d.defaultTarget ?? "no default target"}`;
  if (e.targets_include) {
    const missing = e.targets_include.filter((t) => !d.targetsForAsk.includes(t));
    if (missing.length) return `expected ${missing.join(", ")} among the offered targets, which are ${d.targetsForAsk.join(", ") || "none"}`;
  }
  if (e.targets_exact) {
    const want = [...new Set(e.targets_exact)].sort();
    const got = [...d.targetsForAsk].sort();
    if (want.join("\0") !== got.join("\0")) return `expected exactly ${want.join(", ") || "no targets"} offered, got ${got.join(", ") || "none"}`;
  }
  return undefined;
}
