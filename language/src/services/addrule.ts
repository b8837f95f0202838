/**
 * "Add a rule for this call", from an explanation: the rule that decides
 * exactly this call (its service, argument, source and target written out),
 * placed where it is the first to match it: just above the rule that decides
 * the call now, or, when no rule does, after the last rule of the policy.
 */
import type { PolicyRequest } from "../eval/types.js";
import type { TextEdit } from "./format.js";
import { lineByNumber } from "./util.js";
import type { PolicySnapshot } from "./workspace.js";

/** What the new rule does. */
export type NewRuleAction = "allow" | "deny" | "ask";

/** The rule text for a call (`@default` for an empty target). */
export function ruleTextForCall(request: PolicyRequest, action: NewRuleAction): string {
  const target = request.target ? request.target : "@default";
  const argument = request.argument && request.argument !== "" ? request.argument : "+";
  // An `allow` to `@default` needs a target of its own; `ask` offers the choice instead.
  const act = action === "allow" && target === "@default" ? "ask" : action;
  return `${request.service}  ${argument}  ${request.source}  ${target}  ${act}`;
}

/**
 * The edit that adds the rule: by absolute path. `undefined` when there is no
 * file of the new syntax to put it in. `before` is the 1-based line of the rule
 * that decides the call now (in `before.path`), when there is one.
 */
export function addRuleForCall(
  snapshot: PolicySnapshot,
  request: PolicyRequest,
  action: NewRuleAction,
  deciding?: { path: string; line: number | null },
): { path: string; line: number; edit: TextEdit; text: string } | undefined {
  const text = ruleTextForCall(request, action);
  if (deciding && deciding.line !== null) {
    const doc = snapshot.document(deciding.path);
    const l = doc && doc.syntax === "policy" ? lineByNumber(doc, deciding.line) : undefined;
    if (doc && l) return { path: deciding.path, line: l.line, edit: { span: { start: l.lineSpan.start, end: l.lineSpan.start }, newText: `${text}\n` }, text };
  }
  // No rule decides it: after the last rule of a new-syntax file.
  for (let i = snapshot.rules.length - 1; i >= 0; i--) {
    const r = snapshot.rules[i]!;
    if (r.origin.line === null) continue;
    const doc = snapshot.document(r.origin.path);
    if (!doc || doc.syntax !== "policy") continue;
    const l = lineByNumber(doc, r.origin.line);
    if (!l) continue;
    const end = l.lineSpan.end;
    const nl = doc.text.slice(end, end + 2).startsWith("\r\n") ? 2 : doc.text[end] === "\n" || doc.text[end] === "\r" ? 1 : 0;
    const at = end + nl;
    return { path: r.origin.path, line: l.line + 1, edit: { span: { start: at, end: at }, newText: nl ? `${text}\n` : `\n${text}\n` }, text };
  }
  return undefined;
}
