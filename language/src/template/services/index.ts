/**
 * Editor services for stack files (`*.qubes.yaml`): pure functions over a
 * {@link TemplateAnalysis}, in UTF-16 offsets of the YAML file, that a
 * language server adapts to its protocol. The policy services run inside the
 * `rules: |` blocks and their spans are mapped back to the YAML file.
 *
 * @module
 */
export { analyzeTemplate, buildFutureSystem, resolveStackPath, type LiveDevice, type TemplateAnalysis, type TemplateEnvironment } from "./analysis.js";
export { indexStack, blockAt, blockToSource, sourceToBlock, type IndexedQube, type PolicyBlock, type QubeReference, type ScalarAt, type StackIndex } from "./stack-index.js";
export { yamlContextAt, type YamlContext } from "./yaml-context.js";
export { completeTemplate, devicePortQuery, qubeCandidates, type QubeCandidate, type TemplateCompletionItem, type TemplateCompletionKind } from "./completion.js";
export { hoverTemplate, describeProperty, type TemplateHover } from "./hover.js";
export { qubeAt, templateSymbolAt, templateDefinition, templateReferences, referencesTo, qubeDeclarations } from "./navigation.js";
export { templateRenameLocations, templateOccurrences, declaredQubes, type TemplateOccurrence } from "./rename.js";
export { templateLenses, type TemplateLens } from "./lens.js";
export { templateWorkspaceSymbols, type TemplateWorkspaceSymbol } from "./symbols.js";
export { templatePolicyDiagnostics, templateSemanticTokens, templateFormatEdits, templateCodeActions, type TemplateCodeAction } from "./policy.js";
export { TOP_KEYS, QUBE_KEYS, KNOWN_FEATURES, KNOWN_SERVICES, type KeyDoc } from "./vocabulary.js";
export { templateDiagnostics, stackSystemOf, storageOf } from "./diagnostics.js";
