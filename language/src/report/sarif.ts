/**
 * SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format), as code
 * scanning services read it: one run, the tool's rules in
 * `tool.driver.rules` (every known code, with its summary, help and default
 * level), one result per diagnostic with the same rule id, level, message,
 * file, line and column as the text format (columns in UTF-16 code units).
 */
import type { Severity } from "../diagnostics.js";
import { codeInfo, knownCodes } from "./rules.js";
import type { CheckReport, ReportLocation, ReportTool } from "./types.js";

/** The `$schema` of the documents {@link toSarif} makes. */
export const SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json";

/** SARIF levels of our severities. */
export function sarifLevel(s: Severity): "error" | "warning" | "note" {
  return s === "error" ? "error" : s === "warning" ? "warning" : "note";
}

/** Options of {@link toSarif}. */
export interface SarifOptions {
  tool: ReportTool;
  /**
   * The absolute `file:` URI (ending in `/`) that relative file names are
   * relative to (the working directory); recorded as `SRCROOT`.
   */
  baseUri?: string;
}

/** A file name as a URI reference: relative names stay relative (each segment percent-encoded), absolute ones become `file:` URIs. */
export function fileUri(file: string): string {
  const enc = file
    .split("/")
    .map((s) => encodeURIComponent(s))
    .join("/");
  return file.startsWith("/") ? `file://${enc}` : enc;
}

function physical(l: ReportLocation, baseUri: string | undefined, snippet?: string): Record<string, unknown> {
  const region: Record<string, unknown> = { startLine: l.line, startColumn: l.column, endLine: l.endLine, endColumn: l.endColumn };
  if (snippet !== undefined) region["snippet"] = { text: snippet };
  const artifactLocation: Record<string, unknown> = { uri: fileUri(l.file) };
  if (baseUri !== undefined && !l.file.startsWith("/")) artifactLocation["uriBaseId"] = "SRCROOT";
  return { artifactLocation, region };
}

/** The report as a SARIF 2.1.0 log (a JSON value; `JSON.stringify` it). */
export function toSarif(report: CheckReport, options: SarifOptions): Record<string, unknown> {
  const infos = knownCodes();
  for (const d of report.diagnostics) if (!infos.some((i) => i.code === d.code)) infos.push(codeInfo(d.code));
  if (report.engineError !== undefined && report.errors === 0 && !infos.some((i) => i.code === "engine-error")) {
    infos.push({ code: "engine-error", summary: "the real engine fails while loading the policy", help: "the daemon then denies every call; fix the policy", severity: "error" });
  }
  const index = new Map(infos.map((i, n) => [i.code, n] as const));
  const rules = infos.map((i) => ({
    id: i.code,
    shortDescription: { text: i.summary },
    help: { text: i.help },
    defaultConfiguration: { level: sarifLevel(i.severity) },
  }));
  const results: Record<string, unknown>[] = report.diagnostics.map((d) => {
    const r: Record<string, unknown> = {
      ruleId: d.code,
      ruleIndex: index.get(d.code)!,
      level: sarifLevel(d.severity),
      message: { text: d.message },
      locations: [{ physicalLocation: physical(d, options.baseUri, d.sourceLine) }],
    };
    if (d.related?.length) r["relatedLocations"] = d.related.map((x, id) => ({ id, message: { text: x.message }, physicalLocation: physical(x, options.baseUri) }));
    if (d.help) r["properties"] = { help: d.help };
    return r;
  });
  if (report.engineError !== undefined && report.errors === 0) {
    results.push({ ruleId: "engine-error", ruleIndex: index.get("engine-error")!, level: "error", message: { text: report.engineError } });
  }
  const driver: Record<string, unknown> = { name: options.tool.name, version: options.tool.version, rules };
  if (options.tool.informationUri) driver["informationUri"] = options.tool.informationUri;
  const run: Record<string, unknown> = { tool: { driver }, columnKind: "utf16CodeUnits", results };
  if (options.baseUri !== undefined) run["originalUriBaseIds"] = { SRCROOT: { uri: options.baseUri } };
  return { $schema: SARIF_SCHEMA, version: "2.1.0", runs: [run] };
}
