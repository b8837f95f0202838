/**
 * The JSON format of `qkit policy check` (`--json`, `--format json`): one
 * object `{ok, rules, errors, warnings, diagnostics}`, each diagnostic
 * `{file, line, column, endLine, endColumn, severity, code, message, help?,
 * related?}`. Scripts depend on it: members are only ever added.
 */
import type { CheckReport } from "./types.js";

/** The report as the JSON object `--json` prints. */
export function checkReportJson(report: CheckReport): Record<string, unknown> {
  return {
    ok: report.ok,
    rules: report.rules,
    errors: report.errors,
    warnings: report.warnings,
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
