/**
 * SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format), as code
 * scanning services read it: one run, the tool's rules in
 * `tool.driver.rules` (every known code, with its summary, help and default
 * level), one result per diagnostic with the same rule id, level, message,
 * file, line and column as the text format (columns in UTF-16 code units).
 */
import type { Severity } from "../diagnostics.js";
import { jsonNumber } from "./json.js";
import { codeInfo, knownCodes, type CodeInfo } from "./rules.js";
import type { ChunkWriter } from "./sink.js";
import type { CheckReport, ReportDiagnostic, ReportLocation, ReportStream, ReportTool } from "./types.js";

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
  /**
   * The file name that stands for standard input (`-`): its locations have
   * no `uri` (there is no file) and no `uriBaseId`, only a description.
   */
  stdinFile?: string;
}

/** The description of the artifact read from standard input. */
const STDIN_DESCRIPTION = "standard input (the policy text was piped to `qkit policy check -`; there is no file)";

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A file name as a URI reference: relative names stay relative (each segment percent-encoded), absolute ones become `file:` URIs. */
export function fileUri(file: string): string {
  const enc = file
    .split("/")
    // A lone surrogate (no character of any file system) is written as U+FFFD, which `encodeURIComponent` accepts.
    .map((s) => encodeURIComponent(s.replace(LONE_SURROGATE, "\ufffd")))
    .join("/");
  return file.startsWith("/") ? `file://${enc}` : enc;
}

function physical(l: ReportLocation, options: SarifOptions, snippet?: string): Record<string, unknown> {
  const region: Record<string, unknown> = { startLine: l.line, startColumn: l.column, endLine: l.endLine, endColumn: l.endColumn };
  if (snippet !== undefined) region["snippet"] = { text: snippet };
  const artifactLocation: Record<string, unknown> = l.file === options.stdinFile ? { description: { text: STDIN_DESCRIPTION } } : { uri: fileUri(l.file) };
  if (options.baseUri !== undefined && l.file !== options.stdinFile && !l.file.startsWith("/")) artifactLocation["uriBaseId"] = "SRCROOT";
  return { artifactLocation, region };
}

/** The rules a log of this report describes (every known code, then the report's other codes), and each code's index. */
function sarifRules(report: ReportStream): { infos: CodeInfo[]; index: Map<string, number> } {
  const infos = knownCodes();
  const codes = new Set(infos.map((i) => i.code));
  // In the order the diagnostics have them (a stream that knows its codes is not read for them).
  const found: Iterable<string> = report.codes ?? codesOf(report.diagnostics);
  for (const code of found) {
    if (codes.has(code)) continue;
    codes.add(code);
    infos.push(codeInfo(code));
  }
  if (report.engineError !== undefined && report.errors === 0 && !codes.has("engine-error")) {
    infos.push({ code: "engine-error", summary: "the real engine fails while loading the policy", help: "the daemon then denies every call; fix the policy", severity: "error" });
  }
  return { infos, index: new Map(infos.map((i, n) => [i.code, n] as const)) };
}

/** The SARIF log of a report with `results` left for the caller (`placeholder` in their place). */
function sarifLog(report: ReportStream, options: SarifOptions, infos: readonly CodeInfo[], results: unknown): Record<string, unknown> {
  const rules = infos.map((i) => ({
    id: i.code,
    shortDescription: { text: i.summary },
    help: { text: i.help },
    defaultConfiguration: { level: sarifLevel(i.severity) },
  }));
  const driver: Record<string, unknown> = { name: options.tool.name, version: options.tool.version, rules };
  if (options.tool.informationUri) driver["informationUri"] = options.tool.informationUri;
  const run: Record<string, unknown> = { tool: { driver }, columnKind: "utf16CodeUnits", results };
  if (options.baseUri !== undefined) run["originalUriBaseIds"] = { SRCROOT: { uri: options.baseUri } };
  return { $schema: SARIF_SCHEMA, version: "2.1.0", runs: [run] };
}

/** The report as a SARIF 2.1.0 log (a JSON value; `JSON.stringify` it). */
export function toSarif(report: CheckReport, options: SarifOptions): Record<string, unknown> {
  const { infos, index } = sarifRules(report);
  const results: Record<string, unknown>[] = report.diagnostics.map((d) => {
    const r: Record<string, unknown> = {
      ruleId: d.code,
      ruleIndex: index.get(d.code)!,
      level: sarifLevel(d.severity),
      message: { text: d.message },
      locations: [{ physicalLocation: physical(d, options, d.sourceLine) }],
    };
    if (d.related?.length) r["relatedLocations"] = d.related.map((x, id) => ({ id, message: { text: x.message }, physicalLocation: physical(x, options) }));
    if (d.help) r["properties"] = { help: d.help };
    return r;
  });
  if (report.engineError !== undefined && report.errors === 0) {
    results.push({ ruleId: "engine-error", ruleIndex: index.get("engine-error")!, level: "error", message: { text: report.engineError } });
  }
  return sarifLog(report, options, infos, results);
}

/** The `"results"` member that {@link writeSarif} replaces with the streamed results. */
const RESULTS_MARK = '"results": "\\u0000results\\u0000"';

/**
 * The SARIF log, streamed: exactly `JSON.stringify(toSarif(report, options),
 * null, 2)` (the caller adds the final newline), written one result at a time.
 */
export function writeSarif(report: ReportStream, options: SarifOptions, out: ChunkWriter): void {
  const { infos, index } = sarifRules(report);
  const whole = JSON.stringify(sarifLog(report, options, infos, "\u0000results\u0000"), null, 2);
  // Only the run's `results` key can be this text: a quote inside a JSON string is escaped.
  const at = whole.indexOf(RESULTS_MARK);
  out.write(whole.slice(0, at) + '"results": ');
  const engine = report.engineError !== undefined && report.errors === 0;
  if (isEmpty(report.diagnostics) && !engine) out.write("[]");
  else {
    out.write("[\n");
    const uris = new UriCache(options.baseUri, options.stdinFile);
    let first = true;
    for (const d of report.diagnostics) {
      const ruleIndex = index.get(d.code)!;
      let s = `${first ? "" : ",\n"}        {\n          "ruleId": ${JSON.stringify(d.code)},\n          "ruleIndex": ${jsonNumber(ruleIndex)},\n          "level": "${sarifLevel(d.severity)}",\n          "message": {\n            "text": ${JSON.stringify(d.message)}\n          },\n          "locations": [\n            {\n              "physicalLocation": ${physicalJson(d, uris, d.sourceLine, "              ")}\n            }\n          ]`;
      if (d.related?.length) {
        s += `,\n          "relatedLocations": [`;
        for (let id = 0; id < d.related.length; id++) {
          const x = d.related[id]!;
          s += `${id ? "," : ""}\n            {\n              "id": ${id},\n              "message": {\n                "text": ${JSON.stringify(x.message)}\n              },\n              "physicalLocation": ${physicalJson(x, uris, undefined, "              ")}\n            }`;
        }
        s += `\n          ]`;
      }
      if (d.help) s += `,\n          "properties": {\n            "help": ${JSON.stringify(d.help)}\n          }`;
      out.write(s + "\n        }");
      first = false;
    }
    if (engine) {
      out.write(`${first ? "" : ",\n"}        {\n          "ruleId": "engine-error",\n          "ruleIndex": ${jsonNumber(index.get("engine-error")!)},\n          "level": "error",\n          "message": {\n            "text": ${JSON.stringify(report.engineError)}\n          }\n        }`);
    }
    out.write("\n      ]");
  }
  out.write(whole.slice(at + RESULTS_MARK.length));
}

function* codesOf(diagnostics: Iterable<ReportDiagnostic>): Generator<string, void, void> {
  for (const d of diagnostics) yield d.code;
}

function isEmpty(items: Iterable<unknown>): boolean {
  for (const _ of items) return false;
  return true;
}

/** The `artifactLocation` of each file, as JSON text, made once per file. */
class UriCache {
  private readonly known = new Map<string, string>();
  constructor(
    private readonly baseUri: string | undefined,
    private readonly stdinFile: string | undefined,
  ) {}
  /** The members of the artifact location of `file`, indented for {@link physicalJson}. */
  get(file: string, indent: string): string {
    const key = indent + "\0" + file;
    let v = this.known.get(key);
    if (v === undefined) {
      if (file === this.stdinFile) v = `{\n${indent}    "description": {\n${indent}      "text": ${JSON.stringify(STDIN_DESCRIPTION)}\n${indent}    }`;
      else {
        v = `{\n${indent}    "uri": ${JSON.stringify(fileUri(file))}`;
        if (this.baseUri !== undefined && !file.startsWith("/")) v += `,\n${indent}    "uriBaseId": "SRCROOT"`;
      }
      v += `\n${indent}  }`;
      this.known.set(key, v);
    }
    return v;
  }
}

/** {@link physical} as the text `JSON.stringify(…, null, 2)` makes of it, for an object whose closing brace is at `indent`. */
function physicalJson(l: ReportLocation, uris: UriCache, snippet: string | undefined, indent: string): string {
  let s = `{\n${indent}  "artifactLocation": ${uris.get(l.file, indent)},\n${indent}  "region": {\n${indent}    "startLine": ${jsonNumber(l.line)},\n${indent}    "startColumn": ${jsonNumber(l.column)},\n${indent}    "endLine": ${jsonNumber(l.endLine)},\n${indent}    "endColumn": ${jsonNumber(l.endColumn)}`;
  if (snippet !== undefined) s += `,\n${indent}    "snippet": {\n${indent}      "text": ${JSON.stringify(snippet)}\n${indent}    }`;
  return s + `\n${indent}  }\n${indent}}`;
}
