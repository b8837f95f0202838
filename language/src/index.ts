/**
 * `@qubes-kit/language`: the qrexec policy language of Qubes OS 4.1+ (legacy
 * 4.0 syntax included), decided exactly as qubes-core-qrexec 4.4.2 decides it.
 *
 * Pure: no IO, no Node built-ins. Files are read through a {@link PolicyFileSystem}.
 *
 * - {@link parseDocument}: tolerant parse of one document (never throws).
 * - {@link loadPolicy}: load a whole policy (directories, includes, legacy files) strictly.
 * - {@link evaluate} / {@link explain}: decide a request and say why.
 *
 * @packageDocumentation
 */
export * from "./diagnostics.js";
export * from "./syntax/tree.js";
export { parseDocument, type ParseOptions } from "./syntax/parse.js";
export { parseQubeToken, isDom0Token, tokenKindsFor } from "./syntax/tokens.js";
export { printRule, ruleParams } from "./syntax/print.js";
export { paramsFor } from "./syntax/rule.js";
export { decisionToJson, loadCase, type ConformanceRequest } from "./conformance.js";
export { pySplit, pyStrip, isPyWhitespace, pyRepr } from "./syntax/python.js";
export * from "./loader/types.js";
export { loadPolicy, checkPolicy, type CheckResult } from "./loader/load.js";
export { createMemoryFileSystem, normalizePath } from "./loader/memfs.js";
export { findUtf8Problem, lineAtOffset, NOT_UTF8_HELP, notUtf8Message, type Utf8Problem } from "./loader/utf8.js";
export * from "./eval/types.js";
export { prepareSystemInfo } from "./eval/system.js";
export { execRefusal } from "./eval/exec.js";
export { evaluate, explain, makeRequest, type EvaluateOptions } from "./eval/evaluate.js";
export { ByteOutput, evaluateJson, evaluateJsonBytes, evaluateJsonPieces, type HandOver } from "./eval/json.js";
export { requestNamesKnown } from "./eval/fast.js";
export { runConformanceCase, type ConformanceCase } from "./conformance.js";
export { lintText, type LintResult } from "./lint.js";
export * from "./services/index.js";
export * from "./qubes/properties.js";
export { parseIPv4, parseIPv6, parseUuid } from "./qubes/ipaddr.js";
export * from "./qubes/model-file.js";
export * from "./template/model.js";
export * from "./template/index.js";
export * from "./template/services/index.js";
export * from "./audit/index.js";
export * from "./flow/index.js";
export * from "./report/index.js";
