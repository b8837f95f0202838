/**
 * Expectations (the `expect:` entries of domain templates and the entries of
 * policy test files, parsed by `parseExpectation` of `template/expect.ts`)
 * checked against real decisions.
 */
import type { Decision } from "../eval/types.js";
import { execRefusal } from "../eval/exec.js";
import type { Expectation } from "../template/model.js";
import { isDom0Token } from "../syntax/tokens.js";

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
 * A target may be named as the engine names it or by its synonym: `@adminvm`
 * and `dom0` (any of dom0's names) are one target, and `@dispvm` is the
 * caller's new disposable, `@dispvm:X` with X the caller's default
 * disposable template (`dispvm`, that `@dispvm:X`; null or absent: `@dispvm`
 * is compared as written).
 */
export function checkExpectation(e: Expectation, d: Decision, dispvm?: string | null): string | undefined {
  const same = (expected: string) => canonicalTarget(expected, dispvm);
  // An allow the daemon refuses to run (a call from a qube to itself) is a denied call, as `eval` says.
  const refused = execRefusal(d);
  const action = !d.ok || refused ? "deny" : d.action;
  if (action !== e.decision)
    return `expected ${e.decision}, got ${refused ? `deny (${refused.error === "EngineError" ? "the real engine crashes running" : "the daemon refuses"} what the policy allows: ${refused.message})` : d.ok && d.action === "allow" ? `allow to ${d.target}` : action}`;
  if (!d.ok || d.action === "deny" || refused) return undefined;
  if (d.action === "allow") {
    if (e.target_is !== undefined && canonicalTarget(d.target, dispvm) !== same(e.target_is)) return `expected allow to ${e.target_is}, got allow to ${d.target}`;
    return undefined;
  }
  if (e.target_is !== undefined && (d.defaultTarget === null ? null : canonicalTarget(d.defaultTarget, dispvm)) !== same(e.target_is)) return `expected the default target ${e.target_is}, got ${d.defaultTarget ?? "no default target"}`;
  const offered = new Set(d.targetsForAsk.map((t) => canonicalTarget(t, dispvm)));
  if (e.targets_include) {
    const missing = e.targets_include.filter((t) => !offered.has(same(t)));
    if (missing.length) return `expected ${missing.join(", ")} among the offered targets, which are ${d.targetsForAsk.join(", ") || "none"}`;
  }
  if (e.targets_exact) {
    const want = [...new Set(e.targets_exact.map(same))].sort();
    const got = [...offered].sort();
    if (want.join("\0") !== got.join("\0")) return `expected exactly ${[...new Set(e.targets_exact)].sort().join(", ") || "no targets"} offered, got ${[...d.targetsForAsk].sort().join(", ") || "none"}`;
  }
  return undefined;
}

/** A target as compared by {@link checkExpectation}: dom0 by one name, `@dispvm` as the caller's `@dispvm:X`. */
function canonicalTarget(t: string, dispvm: string | null | undefined): string {
  if (isDom0Token(t)) return "dom0";
  if (t === "@dispvm" && dispvm) return dispvm;
  return t;
}
