/**
 * Decisions and explanations as text, exactly as `qkit policy eval` and
 * `qkit policy explain` print them (exported by `@qubes-kit/sdk/node`).
 */
import { execRefusal, printRule, type Decision, type Explanation, type PolicyRule } from "@qubes-kit/language/engine";

/** A rule back as one line of policy text (fields separated by one space). */
export function ruleText(r: PolicyRule): string {
  return printRule(r, " ");
}

function where(r: { file: string; line: number | null }): string {
  return `${r.file}:${r.line ?? "None"}`;
}

/**
 * One human line for a decision, as `qkit policy eval` prints it.
 *
 * @example
 * ```ts
 * describeDecision(evaluate(policy, makeRequest("qubes.Filecopy", "work", "vault"), system));
 * // "ask: vault (default vault)  [30-user.policy:7]"
 * ```
 */
export function describeDecision(d: Decision): string {
  if (!d.ok) return `deny (${d.error === "EngineError" ? "engine error" : d.error}): ${d.message}`;
  switch (d.action) {
    case "allow":
      // The policy allows it, and the daemon refuses to run it (a call from a qube to itself): the caller is denied.
      const refused = execRefusal(d);
      if (refused)
        return refused.error === "EngineError"
          ? `deny (the real engine crashes running what the policy allows: ${refused.message}; the daemon denies the call)  [${where(d.rule)}]`
          : `deny (the daemon refuses what the policy allows: ${refused.error}: ${refused.message})  [${where(d.rule)}]`;
      return `allow → ${d.target}${d.user ? ` as ${d.user}` : ""}${d.autostart ? "" : " (no autostart)"}  [${where(d.rule)}]`;
    case "ask":
      return `ask: ${d.targetsForAsk.join(", ")}${d.defaultTarget ? ` (default ${d.defaultTarget})` : ""}  [${where(d.rule)}]`;
    case "deny":
      return `deny${d.notify ? "" : " (silently)"}  [${where(d.rule)}]`;
  }
}

/**
 * An explanation as text, exactly as `qkit policy explain` prints it: the
 * rules considered before the decision and why each did not match, the
 * deciding rule, how the target was resolved, where ask targets came from.
 *
 * @example
 * ```ts
 * import { explain, makeRequest } from "@qubes-kit/language";
 * import { loadPolicyDirectory, renderExplanation } from "@qubes-kit/sdk/node";
 *
 * const r = loadPolicyDirectory("./policy.d");
 * if (r.ok) process.stdout.write(renderExplanation(explain(r.policy, makeRequest("qubes.Filecopy", "work", "vault"), system)));
 * ```
 */
export function renderExplanation(x: Explanation): string {
  const lines: string[] = [];
  const r = x.request;
  lines.push(`request: ${r.service}${r.argument && r.argument !== "+" ? r.argument : ""} from ${r.source} to ${r.target || "@default"}`);
  if (x.targetNote) lines.push(`target: ${x.targetNote}`);
  if (x.trace.length || x.skipped) {
    lines.push(`rules considered before the decision (${x.trace.length}; ${x.skipped === 1 ? "1 rule is" : `${x.skipped} rules are`} for other services or arguments):`);
    for (const s of x.trace) lines.push(`  ${where(s.rule.origin)}  ${ruleText(s.rule)}\n      ${s.reason}`);
  }
  if (x.decidingRule) lines.push(`deciding rule: ${where(x.decidingRule.origin)}  ${ruleText(x.decidingRule)}`);
  for (const v of x.decidingRule?.via ?? []) lines.push(`  included from ${where(v)}`);
  for (const s of x.resolution ?? []) lines.push(`resolution: ${s}`);
  if (x.askContributions) {
    lines.push("ask targets (the first rule in policy order that names a target decides it):");
    for (const c of x.askContributions) lines.push(`  ${c.effect === "add" ? "+" : "-"} ${c.targets.join(", ")}  by ${where(c.rule.origin)}  ${ruleText(c.rule)}`);
    for (const n of x.askNotes ?? []) lines.push(`  then: ${n}`);
  }
  lines.push(`decision: ${describeDecision(x.decision)}`);
  return lines.join("\n") + "\n";
}
