/**
 * The JSON format of `qkit policy check` (`--json`, `--format json`): one
 * object `{ok, rules, errors, warnings, diagnostics}`, each diagnostic
 * `{file, line, column, endLine, endColumn, severity, code, message, help?,
 * related?}`. Scripts depend on it: members are only ever added.
 */
import type { ChunkWriter } from "./sink.js";
import type { CheckReport, ReportLocation, ReportStream } from "./types.js";

/** The report as the JSON object `--json` prints. */
export function checkReportJson(report: CheckReport): Record<string, unknown> {
  return {
    ok: report.ok,
    rules: report.rules,
    errors: report.errors,
    warnings: report.warnings,
    notes: report.notes,
    ...(report.engineError !== undefined ? { engineError: report.engineError } : {}),
    diagnostics: report.diagnostics.map((d) => ({
      file: d.file,
      line: d.line,
      column: d.column,
      endLine: d.endLine,
      endColumn: d.endColumn,
      severity: d.severity,
      code: d.code,
      message: d.message,
      ...(d.help ? { help: d.help } : {}),
      ...(d.related?.length ? { related: d.related } : {}),
    })),
  };
}

/** A number as `JSON.stringify` writes it. */
export function jsonNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : "null";
}

/** A place of a related location as `JSON.stringify` writes the objects `reportFromSnapshot` makes. */
function relatedJson(r: ReportLocation & { message: string }): string {
  return `{"file":${JSON.stringify(r.file)},"line":${jsonNumber(r.line)},"column":${jsonNumber(r.column)},"endLine":${jsonNumber(r.endLine)},"endColumn":${jsonNumber(r.endColumn)},"message":${JSON.stringify(r.message)}}`;
}

/**
 * The JSON format, streamed: exactly `JSON.stringify(checkReportJson(report))`
 * (the caller adds the final newline), one diagnostic at a time.
 */
export function writeCheckJson(report: ReportStream, out: ChunkWriter): void {
  let head = `{"ok":${report.ok},"rules":${jsonNumber(report.rules)},"errors":${jsonNumber(report.errors)},"warnings":${jsonNumber(report.warnings)},"notes":${jsonNumber(report.notes)},`;
  if (report.engineError !== undefined) head += `"engineError":${JSON.stringify(report.engineError)},`;
  out.write(head + `"diagnostics":[`);
  let lastFile: string | undefined;
  let fileJson = "";
  let first = true;
  for (const d of report.diagnostics) {
    if (d.file !== lastFile) {
      lastFile = d.file;
      fileJson = JSON.stringify(d.file);
    }
    let s = `${first ? "" : ","}{"file":${fileJson},"line":${jsonNumber(d.line)},"column":${jsonNumber(d.column)},"endLine":${jsonNumber(d.endLine)},"endColumn":${jsonNumber(d.endColumn)},"severity":${JSON.stringify(d.severity)},"code":${JSON.stringify(d.code)},"message":${JSON.stringify(d.message)}`;
    if (d.help) s += `,"help":${JSON.stringify(d.help)}`;
    if (d.related?.length) {
      s += `,"related":[`;
      for (let i = 0; i < d.related.length; i++) s += (i ? "," : "") + relatedJson(d.related[i]!);
      s += "]";
    }
    out.write(s + "}");
    first = false;
  }
  out.write("]}");
}
