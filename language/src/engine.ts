/**
 * `@qubes-kit/language/engine`: the engine alone — load a policy, decide
 * requests, print decisions and check reports — without the editor's
 * parser (Chevrotain), the analysis services, templates, audit or flow.
 *
 * It is a subset of `@qubes-kit/language` (the same functions, from shared
 * chunks: values and classes are identical through either entry), for
 * programs whose start-up counts, like `qkit policy eval`. Pure, as the
 * whole package.
 *
 * @packageDocumentation
 */
export * from "./diagnostics.js";
export * from "./syntax/tree.js";
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
export { readSystemModelText, jsonSyntaxError, jsonErrorAt, type SystemModelFileProblem } from "./qubes/model-file.js";
export { execRefusal } from "./eval/exec.js";
export { evaluate, explain, makeRequest, type EvaluateOptions } from "./eval/evaluate.js";
export { ByteOutput, evaluateJson, evaluateJsonBytes, evaluateJsonPieces, type HandOver } from "./eval/json.js";
export { requestNamesKnown } from "./eval/fast.js";
export { runConformanceCase, type ConformanceCase } from "./conformance.js";
export { lintText, type LintResult } from "./lint.js";
export * from "./report/types.js";
export { locateSpan, sourceLineAt } from "./report/locate.js";
export { reportDiagnostic, invalidFilenameAsGiven, mergeReports, mergeReportStreams, countSeverities } from "./report/build.js";
export { formatCheckText, writeCheckText, formatDiagnostic, summaryLine, wantsColor, type TextOptions } from "./report/text.js";
export { formatGithub, writeGithub, githubAnnotation, escapeGithubData, escapeGithubProperty } from "./report/github.js";
export { checkReportJson, writeCheckJson } from "./report/json.js";
export { ChunkWriter, collect, CHUNK_SIZE, type ReportSink } from "./report/sink.js";
