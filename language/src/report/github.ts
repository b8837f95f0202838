/**
 * GitHub Actions workflow commands: one `::error` / `::warning` / `::notice`
 * annotation per diagnostic, escaped as the Actions runner requires
 * (`%`, CR and LF in the message; also `:` and `,` in property values).
 */
import type { Severity } from "../diagnostics.js";
import { collect, type ChunkWriter } from "./sink.js";
import type { CheckReport, ReportDiagnostic, ReportStream } from "./types.js";

/** The message part of a workflow command, escaped. */
export function escapeGithubData(s: string): string {
  return DATA_SPECIAL.test(s) ? s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A") : s;
}
const DATA_SPECIAL = /[%\r\n]/;

/** A property value of a workflow command (`file=`, `title=` …), escaped. */
export function escapeGithubProperty(s: string): string {
  return PROPERTY_SPECIAL.test(s) ? escapeGithubData(s).replace(/:/g, "%3A").replace(/,/g, "%2C") : s;
}
const PROPERTY_SPECIAL = /[%\r\n:,]/;

const COMMAND: Record<Severity, string> = { error: "error", warning: "warning", info: "notice", hint: "notice" };

/** One diagnostic as a workflow command line (the help on a second line of the annotation). */
export function githubAnnotation(d: ReportDiagnostic): string {
  return annotation(d, escapeGithubProperty(d.file));
}

/** {@link githubAnnotation} with the file property already escaped. */
function annotation(d: ReportDiagnostic, file: string): string {
  const end = d.endLine !== d.line ? `,endLine=${d.endLine},endColumn=${d.endColumn}` : `,endColumn=${d.endColumn}`;
  const message = d.help ? `${d.message}\nhelp: ${d.help}` : d.message;
  return `::${COMMAND[d.severity] ?? "error"} file=${file},line=${d.line},col=${d.column}${end},title=${escapeGithubProperty(d.code)}::${escapeGithubData(message)}\n`;
}

/** The whole report as workflow commands (an engine failure without a place is an annotation without a file). */
export function formatGithub(report: CheckReport): string {
  return collect((out) => writeGithub(report, out));
}

/** {@link formatGithub}, streamed. */
export function writeGithub(report: ReportStream, out: ChunkWriter): void {
  let lastFile: string | undefined;
  let file = "";
  for (const d of report.diagnostics) {
    if (d.file !== lastFile) {
      lastFile = d.file;
      file = escapeGithubProperty(d.file);
    }
    out.write(annotation(d, file));
  }
  if (report.engineError !== undefined && report.errors === 0) out.write(`::error title=engine::${escapeGithubData(report.engineError)}\n`);
}
