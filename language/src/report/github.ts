/**
 * GitHub Actions workflow commands: one `::error` / `::warning` / `::notice`
 * annotation per diagnostic, escaped as the Actions runner requires
 * (`%`, CR and LF in the message; also `:` and `,` in property values).
 */
import type { Severity } from "../diagnostics.js";
import type { CheckReport, ReportDiagnostic } from "./types.js";

/** The message part of a workflow command, escaped. */
export function escapeGithubData(s: string): string {
  return s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}

/** A property value of a workflow command (`file=`, `title=` …), escaped. */
export function escapeGithubProperty(s: string): string {
  return escapeGithubData(s).replace(/:/g, "%3A").replace(/,/g, "%2C");
}

const COMMAND: Record<Severity, string> = { error: "error", warning: "warning", info: "notice", hint: "notice" };

/** One diagnostic as a workflow command line (the help on a second line of the annotation). */
export function githubAnnotation(d: ReportDiagnostic): string {
  const props = [
    `file=${escapeGithubProperty(d.file)}`,
    `line=${d.line}`,
    `col=${d.column}`,
    ...(d.endLine !== d.line ? [`endLine=${d.endLine}`] : []),
    `endColumn=${d.endColumn}`,
    `title=${escapeGithubProperty(d.code)}`,
  ];
  const message = d.help ? `${d.message}\nhelp: ${d.help}` : d.message;
  return `::${COMMAND[d.severity] ?? "error"} ${props.join(",")}::${escapeGithubData(message)}\n`;
}

/** The whole report as workflow commands (an engine failure without a place is an annotation without a file). */
export function formatGithub(report: CheckReport): string {
  let out = "";
  for (const d of report.diagnostics) out += githubAnnotation(d);
  if (report.engineError !== undefined && report.errors === 0) out += `::error title=engine::${escapeGithubData(report.engineError)}\n`;
  return out;
}
