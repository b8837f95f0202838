/**
 * Printing rules back as policy text.
 */
import type { RuleNode } from "./tree.js";

/** The parameters of a rule as `key=value` words, in canonical order, defaults left out. */
export function ruleParams(rule: RuleNode): string[] {
  const out: string[] = [];
  if (rule.redirect) out.push(`target=${rule.redirect.text}`);
  if (rule.defaultTarget) out.push(`default_target=${rule.defaultTarget.text}`);
  if (rule.user !== null) out.push(`user=${rule.user}`);
  if (rule.action === "deny" ? !rule.notify : rule.notify) out.push(`notify=${rule.notify ? "yes" : "no"}`);
  if (!rule.autostart) out.push("autostart=no");
  return out;
}

/**
 * A rule as one line of the 4.1+ format (`SERVICE ARGUMENT SOURCE TARGET
 * ACTION [PARAMS]`), with the parameters as written. Parsing the result gives
 * the same rule.
 */
export function printRule(rule: RuleNode, separator = "\t"): string {
  return [rule.service ?? "*", rule.argument ?? "*", rule.source.text, rule.target.text, rule.action, ...rule.rawParams].join(separator);
}
