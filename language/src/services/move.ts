/**
 * "Move the shadowed rule above the broader rule", offered only when the move
 * provably changes nothing but the calls the moved rule matches.
 *
 * The proof: the engine decides a call by the first rule, in global order,
 * that matches it. Moving rule R from position j to just before rule S
 * (position i < j) changes the relative order of R and the rules i..j-1
 * only. A call R does not match is decided by the same rule before and after
 * (R is skipped either way). A call R matches is decided, after the move, by
 * the first matching rule before i (unchanged) or else by R: that is the
 * change asked for. Two things could still spill over, and the fix is not
 * offered when either can happen:
 *
 * - `ask` without `target=` collects its dialog's targets by deciding other
 *   calls of the same service, so a changed decision can change another
 *   call's target list: refused when any `ask` rule of the service (or of
 *   `*`) exists in the policy.
 * - a file loaded more than once (included twice) puts R or S at several
 *   positions; an edit of the file moves all of them: refused unless R and S
 *   each appear exactly once in the loaded rules.
 *
 * Both files must be in the new syntax (the line is moved as written).
 */
import type { AnalysisDiagnostic } from "./analysis.js";
import type { TextEdit } from "./format.js";
import type { PolicyDocument } from "../syntax/tree.js";
import { basename, code, lineByNumber, lineEndWithTerminator } from "./util.js";
import type { PolicySnapshot } from "./workspace.js";

/** The edits of the move, with its title; `undefined` when it cannot be proven harmless. */
export function moveShadowedRule(
  doc: PolicyDocument,
  path: string,
  d: AnalysisDiagnostic,
  snapshot: PolicySnapshot,
): { title: string; edits: Record<string, TextEdit[]> } | undefined {
  const by = d.related?.[0];
  if (d.code !== "shadowed-rule" || !by) return undefined;
  const line = lineByNumber(doc, d.line);
  if (!line || line.kind !== "rule" || !line.rule || doc.syntax !== "policy") return undefined;
  const byDoc = by.path === path ? doc : snapshot.document(by.path);
  const byLine = byDoc ? lineByNumber(byDoc, by.line) : undefined;
  if (!byDoc || !byLine || byLine.kind !== "rule" || byDoc.syntax !== "policy") return undefined;
  // Each of the two rules at exactly one place of the loaded policy.
  let rCount = 0;
  let sCount = 0;
  let rIndex = -1;
  let sIndex = -1;
  for (const r of snapshot.rules) {
    if (r.origin.path === path && r.origin.line === line.line) (rCount++, (rIndex = r.index));
    if (r.origin.path === by.path && r.origin.line === by.line) (sCount++, (sIndex = r.index));
  }
  if (rCount !== 1 || sCount !== 1 || sIndex >= rIndex) return undefined;
  // No `ask` of the service anywhere: no dialog's target list can change.
  const service = line.rule.service;
  if (snapshot.rules.some((r) => r.action === "ask" && (r.service === null || service === null || r.service === service))) return undefined;
  const text = doc.text.slice(line.span.start, line.span.end);
  const remove: TextEdit = { span: { start: line.lineSpan.start, end: lineEndWithTerminator(doc, line) }, newText: "" };
  const insert: TextEdit = { span: { start: byLine.lineSpan.start, end: byLine.lineSpan.start }, newText: `${text}\n` };
  const edits: Record<string, TextEdit[]> = by.path === path ? { [path]: [insert, remove].sort((a, b) => a.span.start - b.span.start) } : { [path]: [remove], [by.path]: [insert] };
  const where = by.path === path ? `line ${by.line}` : `${basename(by.path)}:${by.line}`;
  return { title: `move the rule above the broader rule at ${where} (only the calls it matches change: they get ${code(line.rule.action)})`, edits };
}
