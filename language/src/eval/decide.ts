/**
 * One decision: build the request, find the first matching rule (over the
 * index's candidates, or every rule in order), then the action's own
 * evaluation (`allow` target resolution, `ask` target collection, `deny`).
 * `evaluate` and `explain` both run it.
 */
import { isDom0Token } from "../syntax/tokens.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { PyCrash } from "./py.js";
import type { Decision, ErrorDecision, PolicyRequest, RuleRef, Stage, SystemInfo } from "./types.js";
import { collectTargetsForAsk, type AskTrace } from "./ask.js";
import { allowNoAutostart, execAllow } from "./exec.js";
import { allRules, candidateLists, candidatePairLists, indexOf, Merge, prep } from "./index.js";
import { buildRequest, dispvmTemplateOf, matchSource, matchTarget, Refusal, type BuiltRequest, type VerifiedTarget } from "./match.js";

function ruleRef(r: PolicyRule): RuleRef {
  return { file: r.origin.file, line: r.origin.line };
}

function where(r: PolicyRule): string {
  return `${r.origin.path}:${r.origin.line === null ? "None" : r.origin.line}`;
}

/** The refusals of the evaluation stage (`run` and the stream's scan word them alike). */
export const refuse = {
  noTarget: (r: PolicyRule) => new Refusal("AccessDenied", `policy define 'allow' action at ${where(r)} but no target is specified by caller or policy`, "no-target"),
  noDispvmBase: (r: PolicyRule) => new Refusal("AccessDenied", `policy define 'allow' action to @dispvm at ${where(r)} but no DispVM base is set for this VM`, "no-dispvm-base"),
  autostart: (r: PolicyRule, target: string) => new Refusal("AccessDenied", `target ${target} is denied because it would require autostart`, "autostart-denied", r.notify),
  askNoTargets: (r: PolicyRule) => new Refusal("AccessDenied", `policy define 'ask' action at ${where(r)} but no target is available to choose from`, "ask-no-targets"),
};

/** The message of a deny by a deny rule. */
export function denyMessage(r: PolicyRule): string {
  return `denied by policy ${where(r)}`;
}


export interface Run {
  decision: Decision;
  built?: BuiltRequest;
  rule?: PolicyRule;
  resolution?: string[];
}

/** A refusal or a crash of the engine as the decision `run` returns for it. */
export function errorDecision(stage: Stage, e: unknown, rule?: PolicyRule, intended?: string): ErrorDecision {
  let d: ErrorDecision;
  if (e instanceof Refusal) {
    d = { ok: false, error: e.error, message: e.message, code: e.code, stage, notify: e.notify };
    if (e.syntax) {
      d.file = e.syntax.file;
      d.line = e.syntax.line;
      d.detail = e.syntax.detail;
    }
  } else if (e instanceof PyCrash) {
    d = { ok: false, error: "EngineError", code: "engine-crash", crash: e.pyClass, message: `the real engine crashes here (${e.pyClass}: ${e.pyMessage}); the daemon denies the call`, stage };
  } else throw e;
  if (rule) d.rule = ruleRef(rule);
  if (intended !== undefined) d.intendedTarget = intended;
  return d;
}

/**
 * One decision. `onStep` sees every rule tried (explain), `contributions`
 * records the `ask` collection, `linear` scans every rule as the engine does,
 * and `shared` hands out the collection's cached `ask` list itself rather
 * than a copy (for callers that only read it, such as `evaluateJson`).
 */
export function run(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo, onStep?: (rule: PolicyRule) => void, contributions?: AskTrace, linear = false, shared = false): Run {
  if (policy.service !== undefined && request.service !== policy.service) {
    // Loaded with `LoadOptions.service`: the rules of other services are not there to decide it.
    const message = `this policy was loaded for the service \`${policy.service}\` only, so it cannot decide a call to \`${request.service}\`; load it without \`service\``;
    return { decision: { ok: false, error: "EngineError", code: "policy-loaded-for-another-service", crash: "InternalError", message, stage: "request" } };
  }
  const sys = prep(system);
  const info = sys.domains;
  let built: BuiltRequest;
  try {
    built = buildRequest(request, sys);
  } catch (e) {
    return { decision: errorDecision("request", e) };
  }
  const intended = built.target.text;
  let rule: PolicyRule | undefined;
  try {
    // `explain` (onStep) walks every rule that can match the source, to show why each did not decide.
    const lists = linear
      ? allRules(policy)
      : onStep
        ? candidateLists(indexOf(policy), built.service, built.argument, built.source, sys)
        : candidatePairLists(policy, indexOf(policy), built.service, built.argument, built.source, built.target, sys);
    const cursor = new Merge(lists);
    for (let i = cursor.next(); i >= 0; i = cursor.next()) {
      const r = policy.rules[i]!;
      if (linear && ((r.service !== null && r.service !== built.service) || (r.argument !== null && r.argument !== built.argument))) continue;
      onStep?.(r);
      if (matchSource(r.source, built.source, info) && matchTarget(r.target, built.target, built.source, info)) {
        rule = r;
        break;
      }
    }
  } catch (e) {
    return { decision: errorDecision("match", e), built };
  }
  if (!rule) {
    return { decision: { ok: false, error: "AccessDenied", code: "no-matching-rule", message: "no matching rule found", stage: "match", notify: true }, built };
  }
  const ref = ruleRef(rule);
  if (rule.action === "deny") {
    return { decision: { ok: true, action: "deny", notify: rule.notify, rule: ref, message: denyMessage(rule), intendedTarget: intended }, built, rule };
  }
  const resolution: string[] = [];
  try {
    if (rule.action === "allow") {
      let t: VerifiedTarget;
      if (rule.redirect) {
        const sub = buildRequest({ service: built.service, argument: built.argument, source: built.source, target: rule.redirect.text }, sys);
        t = sub.target;
        resolution.push(`redirected by \`target=${rule.redirect.text}\`` + (t.text !== rule.redirect.text ? ` (no such qube, so \`${t.text}\`)` : ""));
      } else t = built.target;
      if (t.text === "@default") {
        resolution.push("the call names no existing target and the rule has no usable `target=`");
        throw refuse.noTarget(rule);
      }
      let target = t.text;
      if (t.kind === "dispvm") {
        const tpl = dispvmTemplateOf(info, built.source);
        if (tpl === null) {
          resolution.push(`\`@dispvm\` needs the default disposable template of \`${built.source}\`, and it has none`);
          throw refuse.noDispvmBase(rule);
        }
        target = tpl;
        resolution.push(`\`@dispvm\` becomes \`${tpl}\`, the default disposable template of \`${built.source}\``);
      } else if (target === "@adminvm") {
        target = "dom0";
        resolution.push("`@adminvm` becomes `dom0`");
      }
      if (!rule.autostart && !allowNoAutostart(target, info)) {
        resolution.push(`\`${target}\` is not running (or is a disposable) and the rule says \`autostart=no\``);
        throw refuse.autostart(rule, target);
      }
      return {
        decision: {
          ok: true,
          action: "allow",
          target,
          user: rule.user,
          notify: rule.notify,
          autostart: rule.autostart,
          rule: ref,
          intendedTarget: intended,
          exec: execAllow(built, target, rule.user, rule.autostart, info),
        },
        built,
        rule,
        resolution,
      };
    }
    // ask
    let targets: string[];
    if (rule.redirect) {
      targets = [isDom0Token(rule.redirect.text) ? "dom0" : rule.redirect.text];
      resolution.push(`\`target=${rule.redirect.text}\` offers only that target`);
    } else targets = collectTargetsForAsk(policy, built, sys, contributions, linear);
    if (!rule.autostart) targets = targets.filter((t) => allowNoAutostart(t, info));
    if (targets.length === 0) {
      throw refuse.askNoTargets(rule);
    }
    let def: string | null = null;
    if (rule.defaultTarget) {
      if (rule.defaultTarget.kind === "dispvm") def = dispvmTemplateOf(info, built.source);
      else if (isDom0Token(rule.defaultTarget.text)) def = "dom0";
      else def = rule.defaultTarget.text;
      if (def && !targets.includes(def)) {
        resolution.push(`\`default_target=${rule.defaultTarget.text}\` is not among the offered targets, so there is no default`);
        def = null;
      }
    }
    return {
      decision: {
        ok: true,
        action: "ask",
        // INVARIANT: already sorted (the collection returns sorted targets; a redirect is one target).
        targetsForAsk: shared ? targets : [...targets],
        defaultTarget: def,
        user: rule.user,
        notify: rule.notify,
        autostart: rule.autostart,
        rule: ref,
        intendedTarget: intended,
      },
      built,
      rule,
      resolution,
    };
  } catch (e) {
    return { decision: errorDecision("evaluate", e, rule, intended), built, rule, resolution };
  }
}

