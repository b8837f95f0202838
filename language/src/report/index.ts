/**
 * Reports of `qkit policy check` as pure functions: the located model
 * (`types.ts`, built from an analysis snapshot by `build.ts`) and its
 * formats: text with the source line and a caret, JSON, SARIF 2.1.0 and
 * GitHub workflow commands.
 *
 * @module
 */
export * from "./types.js";
export { locateSpan, sourceLineAt } from "./locate.js";
export { reportFromSnapshot, streamFromSnapshot, reportDiagnostic, invalidFilenameAsGiven, mergeReports, mergeReportStreams, countSeverities, type SnapshotReportOptions } from "./build.js";
export { formatCheckText, writeCheckText, formatDiagnostic, summaryLine, wantsColor, type TextOptions } from "./text.js";
export { formatGithub, writeGithub, githubAnnotation, escapeGithubData, escapeGithubProperty } from "./github.js";
export { toSarif, writeSarif, sarifLevel, fileUri, SARIF_SCHEMA, type SarifOptions } from "./sarif.js";
export { checkReportJson, writeCheckJson } from "./json.js";
export { ChunkWriter, collect, CHUNK_SIZE, type ReportSink } from "./sink.js";
export { codeInfo, knownCodes, type CodeInfo } from "./rules.js";
