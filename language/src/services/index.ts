/**
 * Editor services over the language core: pure functions that a language
 * server (or any editor integration) adapts to its protocol. They work on
 * {@link Span} offsets and absolute POSIX paths; nothing here knows LSP.
 *
 * @module
 */
export * from "./catalog.js";
export * from "./describe.js";
export * from "./analysis.js";
export * from "./rpc-provided.js";
export * from "./workspace.js";
export * from "./vocabulary.js";
export * from "./completion.js";
export * from "./hover.js";
export * from "./navigation.js";
export * from "./symbols.js";
export * from "./format.js";
export * from "./semantic.js";
export * from "./actions.js";
export * from "./lens.js";
export * from "./rename.js";
export * from "./links.js";
export * from "./signature.js";
export * from "./inlay.js";
export * from "./move.js";
export * from "./addrule.js";
export * from "./callcheck.js";
export * from "./simulate.js";
export { splitWords, isSpace, lineAt, editDistance, closest } from "./util.js";
export * from "./flatten.js";
export { ServiceAnalysisCache, serviceFindings, serviceFindingsSteps, shadowPositions, type ServiceFindings } from "./incremental.js";
export { reparseDocument } from "./reparse.js";
