/**
 * Plan, apply, drift and rehearsal of domain templates (stacks): the live
 * system is the state; see ARCHITECTURE.md, "sdk/src/apply".
 */
export type * from "./types.js";
export { readLight, readDeep, readFeatures, readDeviceClassesFor, fingerprint, fingerprintView, fingerprintChanges, describeChanges, stableJson, managedPropertyNames, type DeepRead, type ReadScope, type ReadOptions } from "./read.js";
export { computePlan, planFocus, planScope, scopeOfPlan, policyKey, type PlanOptions, type PolicyEffect } from "./plan.js";
export { policyEffects, tagEffects } from "./whatif.js";
export { checkStackModel } from "./model-check.js";
export { canonicalValue, canonicalFirewall, canonicalFirewallRule, managedTags } from "./canonical.js";
export { parseKeys, formatKeys, isKey, globalsFeature, isStackPolicyName, hasStackHeader, policyText } from "./keys.js";
export { adminPolicyTarget, dirPolicyTarget, type PolicyTarget } from "./policy-target.js";
export {
  executePlan,
  fileJournal,
  checkJournalFile,
  isJournalStart,
  JournalRefused,
  JOURNAL_MARKER,
  memoryJournal,
  defaultJournalPath,
  describeCall,
  type Journal,
  type ApplyResult,
  type ApplyFailure,
  type StepProgress,
  type ExecuteOptions,
  type ApplyConnection,
} from "./execute.js";
export { rehearse, simulatorFromLive, type Rehearsal } from "./rehearse.js";
export { lineDiff, oneLine, renderPlan, renderSideEffects, undoneWarnings } from "./render.js";
export { planStack, planExpectations, planWhatIf, readPolicyTexts, readWhatIfInputs, writesPolicy, changesTags, movesQube, policyNaming, effectOptions, policyDigests, type WhatIfInputs, applyPlan, checkPlanFresh, driftStack, type StackConnection, type StackApplyOutcome, type DriftReport } from "./stack.js";
