/**
 * Expectations (the `expect:` entries of domain templates and the entries of
 * policy test files) checked against real decisions.
 *
 * The string form is `SERVICE[+ARG] SOURCE TARGET => allow|ask|deny [TARGET]`
 * (for `allow` the resolved target, for `ask` the default target); the map
 * form is `{call: "SERVICE[+ARG] SOURCE -> TARGET", decision, target,
 * targets_include, targets_exact}`.
 */
import type { Decision } from "../eval/types.js";
import type { Expectation } from "../template/model.js";

/** A parse failure of one expectation: one line, what is wrong and what to write. */
export interface ExpectationError {
  code: "bad-expectation" | "bad-expectation-decision" | "bad-expectation-key";
  message: string;
}

const DECISIONS = new Set(["allow", "ask", "deny"]);

function splitCall(call: string): { service: string; argument: string; source: string; target: string } | ExpectationError {
  const words = call.replace("->", " ").trim().split(/\s+/).filter(Boolean);
  if (words.length < 2 || words.length > 3) {
    return { code: "bad-expectation", message: `expected \`SERVICE[+ARG] SOURCE TARGET\`, got \`${call}\`` };
  }
  const [sa, source, target] = words as [string, string, string | undefined];
  const plus = sa.indexOf("+");
  const service = plus < 0 ? sa : sa.slice(0, plus);
  const argument = plus < 0 ? "" : sa.slice(plus);
  if (!service) return { code: "bad-expectation", message: `no service in \`${call}\`` };
  return { service, argument, source, target: target ?? "@default" };
}

/**
 * Parses the string form `SERVICE[+ARG] SOURCE TARGET => allow|ask|deny [TARGET]`.
 * Never throws.
 */
export function parseExpectationString(text: string): Expectation | ExpectationError {
  const arrow = text.indexOf("=>");
  if (arrow < 0) return { code: "bad-expectation", message: `no \`=>\` in \`${text}\`: write \`SERVICE[+ARG] SOURCE TARGET => allow|ask|deny [TARGET]\`` };
  const call = splitCall(text.slice(0, arrow));
  if ("code" in call) return call;
  const rest = text.slice(arrow + 2).trim().split(/\s+/).filter(Boolean);
  const decision = rest[0];
  if (decision === undefined || !DECISIONS.has(decision) || rest.length > 2) {
    return { code: "bad-expectation-decision", message: `expected \`allow\`, \`ask\` or \`deny\` (and an optional target) after \`=>\`, got \`${text.slice(arrow + 2).trim()}\`` };
  }
  if (decision === "deny" && rest.length === 2) return { code: "bad-expectation-decision", message: "`deny` takes no target" };
  const e: Expectation = { ...call, decision: decision as Expectation["decision"] };
  if (rest[1] !== undefined) e.target_is = rest[1];
  return e;
}

/**
 * Parses the map form (`call`, `decision`, `target`, `targets_include`,
 * `targets_exact`; `name` is allowed and ignored here). Never throws.
 */
export function parseExpectationMap(obj: Record<string, unknown>): Expectation | ExpectationError {
  for (const k of Object.keys(obj)) {
    if (!["call", "decision", "target", "targets_include", "targets_exact", "name"].includes(k)) {
      return { code: "bad-expectation-key", message: `unknown key \`${k}\`: expected call, decision, target, targets_include, targets_exact or name` };
    }
  }
  if (typeof obj["call"] !== "string") return { code: "bad-expectation", message: "`call` must be a string `SERVICE[+ARG] SOURCE -> TARGET`" };
  const call = splitCall(obj["call"]);
  if ("code" in call) return call;
  const decision = obj["decision"];
  if (typeof decision !== "string" || !DECISIONS.has(decision)) return { code: "bad-expectation-decision", message: "`decision` must be `allow`, `ask` or `deny`" };
  const e: Expectation = { ...call, decision: decision as Expectation["decision"] };
  if (obj["target"] !== undefined) {
    if (typeof obj["target"] !== "string") return { code: "bad-expectation", message: "`target` must be a qube name" };
    if (decision === "deny") return { code: "bad-expectation-decision", message: "`deny` takes no `target`" };
    e.target_is = obj["target"];
  }
  for (const k of ["targets_include", "targets_exact"] as const) {
    const v = obj[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) return { code: "bad-expectation", message: `\`${k}\` must be a list of qube names` };
    if (decision !== "ask") return { code: "bad-expectation-decision", message: `\`${k}\` applies to \`ask\` only` };
    e[k] = v as string[];
  }
  return e;
}

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
