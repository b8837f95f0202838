/**
 * The stack's policy rules that can never decide once the stack is applied: a rule of another
 * file (or an earlier rule of the stack) matches every call it matches, so the engine never
 * reaches it. The editor's shadowed-rule analysis, run on the future policy (today's files with
 * the stack's written in), reported for the stack's own files only.
 */
import { ANALYSIS_RULES, analyzeWorkspace, createMemoryFileSystem, policyFileName, type AnalysisConfig, type StackModel } from "@qubes-kit/language";
import { futurePolicy, type PolicyTexts } from "./future.js";
import { ruleLineCount } from "./keys.js";
import type { PlanError } from "./types.js";

const POLICY_DIR = "/etc/qubes/policy.d";

/** Only the shadowed-rule analysis (every other rule off). */
const ONLY_SHADOWED = Object.fromEntries(ANALYSIS_RULES.map((r) => [r.meta.name, r.meta.name === "shadowed-rule" ? "warning" : "off"])) as AnalysisConfig;

/**
 * `stack-rule-shadowed` warnings for the rules of the stack's policy files that never decide in
 * the future policy (`policy`: every policy file today, as `readPolicyTexts` gives them). Each
 * says where the rule is written in the stack file when its block maps line by line.
 */
export function shadowedStackRules(model: StackModel, policy: PolicyTexts): PlanError[] {
  if (!model.policy.length) return [];
  const future = futurePolicy(policy, model);
  const files: Record<string, string> = {};
  for (const [key, text] of Object.entries(future)) files[`${POLICY_DIR}/${key}`] = text;
  let snapshot: ReturnType<typeof analyzeWorkspace>;
  try {
    snapshot = analyzeWorkspace(createMemoryFileSystem(files, [POLICY_DIR, `${POLICY_DIR}/include`]), { system: null, runtimeDir: null, oneShot: true, analysis: ONLY_SHADOWED });
  } catch {
    return [];
  }
  const out: PlanError[] = [];
  for (const f of model.policy) {
    const name = policyFileName(model.stack, f);
    for (const d of snapshot.diagnostics.get(`${POLICY_DIR}/${name}`) ?? []) {
      if (d.code !== "shadowed-rule") continue;
      // The generated file has one header line before the stack's rules (line k of `rules` is line k + 1).
      const ruleLine = d.line - 1;
      // The rule's number among the block's rules (comments and blank lines do not count).
      const nth = ruleLineCount(f.rules.split("\n").slice(0, ruleLine).join("\n"));
      const e: PlanError = { code: "stack-rule-shadowed", message: `policy file '${f.file}' rule ${nth} (${name}:${d.line}), once applied: ${d.message}; remove it, or make the broader rule narrower` };
      if (f.provenance && f.rulesOffset) e.at = `${f.provenance.file}:${f.rulesOffset.line + ruleLine - 1}:${f.rulesOffset.indent + 1}`;
      out.push(e);
    }
  }
  return out;
}
