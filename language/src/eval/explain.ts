/**
 * `explain`: a decision and why. The trace lists every rule of the service
 * before the deciding one (those for another argument too, `failed:
 * "argument"`), whatever the index skipped; rules of other services are counted.
 */
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { PyCrash } from "./py.js";
import type { DomainInfo, Explanation, PolicyRequest, SystemInfo, TraceStep } from "./types.js";
import type { AskTrace } from "./ask.js";
import { run } from "./decide.js";
import { prep } from "./index.js";
import { callerDispvmOf, matchSource, matchTarget, type BuiltRequest } from "./match.js";
import { isDom0Token } from "../syntax/tokens.js";

function describeMiss(rule: PolicyRule, built: BuiltRequest, info: ReadonlyMap<string, DomainInfo>): TraceStep {
  try {
    if (!matchSource(rule.source, built.source, info)) {
      const why =
        rule.source.kind === "dispvm-template" || rule.source.kind === "dispvm-tag"
          ? `source \`${rule.source.text}\` never matches: a source is a plain qube name, never a disposable token`
          : `source \`${rule.source.text}\` does not match \`${built.source}\``;
      return { rule, matched: false, failed: "source", reason: why };
    }
    if (!matchTarget(rule.target, built.target, built.source, info)) {
      return { rule, matched: false, failed: "target", reason: `target \`${rule.target.text}\` does not match \`${built.target.text}\`` };
    }
  } catch (e) {
    if (e instanceof PyCrash) return { rule, matched: false, reason: `the real engine crashes on this rule (${e.pyClass})` };
    throw e;
  }
  return { rule, matched: true, reason: "matches" };
}

/**
 * Decides a request and tells why: every rule considered before the deciding
 * one with the reason it did not match, the deciding rule, how the target
 * was resolved, and for `ask` where each offered target came from.
 *
 * @example
 * ```ts
 * const x = explain(policy, makeRequest("qubes.Filecopy", "work", "vault"), system);
 * for (const step of x.trace) console.log(step.rule.origin, step.reason);
 * console.log(x.decidingRule?.origin, x.decision);
 * // As text, exactly as `qkit policy explain` prints it: renderExplanation(x) from @qubes-kit/sdk/node
 * ```
 */
export function explain(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo): Explanation {
  const considered: PolicyRule[] = [];
  const contributions: AskTrace = { steps: [], notes: [] };
  const r = run(policy, request, system, (rule) => considered.push(rule), contributions);
  const sys = prep(system);
  const trace: TraceStep[] = [];
  // Rules a policy loaded for one service never built (`LoadOptions.service`) are of other services: skipped.
  const notBuilt = (policy.ruleCount ?? policy.rules.length) - policy.rules.length;
  let skipped = policy.rules.length + notBuilt - considered.length;
  if (r.built) {
    // Every rule of the service before the deciding one, with its reason, whatever the index
    // skipped: the explanation must not depend on the index (rules of other services are counted).
    const built = r.built;
    const last = r.rule ? policy.rules.indexOf(r.rule) : -1;
    const end = last >= 0 ? last : policy.rules.length;
    skipped = notBuilt;
    for (let i = 0; i < policy.rules.length; i++) {
      const rule = policy.rules[i]!;
      if (rule.service !== null && rule.service !== built.service) {
        skipped++;
        continue;
      }
      if (i >= end) continue;
      // A rule of the service for another argument: listed with its reason (the README promises every rule of the service).
      if (rule.argument !== null && rule.argument !== built.argument) {
        trace.push({ rule, matched: false, failed: "argument", reason: `argument \`${rule.argument}\` does not match \`${built.argument}\`` });
        continue;
      }
      let step: TraceStep;
      try {
        step = describeMiss(rule, built, sys.domains);
      } catch (e) {
        step = { rule, matched: false, reason: `cannot be matched: ${String(e).split("\n")[0]}` };
      }
      if (step.matched) continue;
      trace.push(step);
    }
  }
  const out: Explanation = { decision: r.decision, request, trace, skipped };
  if (r.built) {
    out.intendedTarget = r.built.target.text;
    const asked = request.target ?? "";
    if (r.built.warnings.length) out.targetNote = `\`${asked}\` is not a qube of this system, so the request is treated as \`@default\` (no target)`;
    else if (asked === "") out.targetNote = "no target given: `@default`";
    if (r.built.relayvm) out.targetNote = (out.targetNote ? out.targetNote + "; " : "") + `relayed by \`${r.built.relayvm}\` for \`${r.built.source}\``;
  }
  if (r.rule) out.decidingRule = r.rule;
  if (r.resolution?.length) out.resolution = r.resolution;
  if (r.rule?.action === "ask" && !r.rule.redirect) {
    out.askContributions = contributions.steps;
    if (contributions.notes.length) out.askNotes = contributions.notes;
    // What of each rule's additions the call is offered in the end (the fix-ups map or drop some).
    const d = r.decision;
    if (d.ok && d.action === "ask" && r.built) {
      const final = new Set(d.targetsForAsk);
      const source = r.built.source;
      // (`@dispvm:X` itself.)
      const dispvm = callerDispvmOf(sys.domains, source);
      const shown = (t: string) => (t === "@dispvm" ? dispvm : isDom0Token(t) ? "dom0" : t);
      for (const c of contributions.steps) {
        if (c.effect !== "add") continue;
        const offered: string[] = [];
        for (const t of c.targets) {
          const x = shown(t);
          if (x !== null && final.has(x) && !offered.includes(x)) offered.push(x);
        }
        c.offered = offered;
      }
    }
  }
  return out;
}
