/**
 * The evaluator: a request in, the engine's decision out.
 *
 * Every step follows the engine: building the request (target verification,
 * Qubes Air relays), finding the first matching rule, and the action's own
 * evaluation (`allow` target resolution, `ask` target collection, `deny`),
 * plus the daemon's answer for an allow. Where the engine would crash on the
 * data, the decision is `EngineError` (the daemon then denies).
 *
 * Rules are indexed by service and argument, and within those by the literal
 * source name, so a request looks only at rules that can match, in their
 * global order: first-match semantics are unchanged.
 *
 * The rooms: `match.ts` (requests, token matching), `index.ts` (the rule
 * index, and the packed orders of the stream's scan), `ask.ts` (`ask` target
 * collection), `exec.ts` (the daemon's answer for an allow), `decide.ts` (one
 * decision), `explain.ts` (why), `fast.ts` (a stream's decisions by an
 * in-order scan over match vectors), `json.ts` (decisions as JSON pieces).
 */
import type { CompiledPolicy } from "../loader/types.js";
import type { Decision, PolicyRequest, SystemInfo } from "./types.js";
import { run } from "./decide.js";

export { explain } from "./explain.js";
export type { BuiltRequest, VerifiedTarget } from "./match.js";

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /**
   * Scan every rule in order instead of using the index and the `ask` cache,
   * as the engine does. Slower; it exists so tests can check that indexing
   * never changes a decision.
   */
  linear?: boolean;
}


/**
 * Decides a request exactly as the qrexec policy engine does. Never throws.
 * `ok: false` decisions are denials (by the engine, or where the real engine
 * would crash: `EngineError`).
 *
 * @example
 * ```ts
 * const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": "qubes.Filecopy * work vault ask default_target=vault\n" }));
 * const system = prepareSystemInfo(systemJson); // an internal.GetSystemInfo answer (`qkit system snapshot`)
 * if (loaded.ok) {
 *   const d = evaluate(loaded.policy, makeRequest("qubes.Filecopy", "work", "vault"), system);
 *   if (d.ok && d.action === "ask") console.log(d.targetsForAsk, d.defaultTarget);
 * }
 * ```
 */
export function evaluate(policy: CompiledPolicy, request: PolicyRequest, system: SystemInfo, options: EvaluateOptions = {}): Decision {
  return run(policy, request, system, undefined, undefined, options.linear ?? false).decision;
}

/** Splits `SERVICE+ARG` the way `qrexec-policy-exec` does, and fills the defaults. */
export function makeRequest(serviceAndArgument: string, source: string, target = ""): PolicyRequest {
  const plus = serviceAndArgument.indexOf("+");
  if (plus < 0) return { service: serviceAndArgument, argument: "+", source, target };
  return { service: serviceAndArgument.slice(0, plus), argument: "+" + serviceAndArgument.slice(plus + 1), source, target };
}

