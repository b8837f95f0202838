/**
 * Domain templates (`*.qubes.yaml`): the pure front end, from text to a
 * checked {@link StackModel}.
 *
 * - {@link parseStackText}: one file, tolerant, with the YAML-level strict profile.
 * - {@link checkStack}: a whole stack (includes, bundles), cross-checked, with its model.
 * - {@link parseExpectation} / {@link formatExpectation}: `expect:` entries.
 * - {@link normalizeFirewallRule}: qubesd's firewall rule form.
 * - {@link stackJsonSchema}: a JSON Schema of the format for editors without our server.
 */
export * from "./types.js";
export {
  parseStackText,
  computeLineStarts,
  type StackDocument,
  type StackDocumentKind,
  type KeyPathStep,
  type NodeAtOffset,
} from "./document.js";
export { checkStack, type CheckStackOptions, type StackCheckResult } from "./check.js";
export {
  policyToSource,
  policySpanToSource,
  sourceToPolicy,
  policyBlockAt,
  type EmbeddedPolicy,
  type PolicySegment,
} from "./policy.js";
export {
  parseExpectation,
  formatExpectation,
  formatCall,
  expectationToObject,
  type ExpectationObject,
  type ExpectationResult,
} from "./expect.js";
export { normalizeFirewallRule, FIREWALL_KEYS, type FirewallRuleResult } from "./firewall.js";
export { parseSize } from "./build.js";
export { stackJsonSchema } from "./schema.js";
export * from "./keys.js";
export { TEMPLATE_DIAGNOSTIC_CODES, type TemplateDiagnosticCode } from "./codes.js";
