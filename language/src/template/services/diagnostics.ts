/**
 * The diagnostics of a stack file for the editor: YAML syntax errors, and the
 * embedded policy checked as the generated files will be read (engine errors
 * and analysis lints against the future system model), in the YAML file's
 * offsets. Never throws.
 */
import { parseDocument } from "yaml";
import type { DiagnosticCode } from "../../diagnostics.js";
import type { AnalysisDiagnostic } from "../../services/analysis.js";
import type { TemplateAnalysis } from "./analysis.js";
import { templatePolicyDiagnostics } from "./policy.js";

/** Every diagnostic of the analysed file, sorted by position. */
export function templateDiagnostics(a: TemplateAnalysis): AnalysisDiagnostic[] {
  const out: AnalysisDiagnostic[] = [];
  try {
    const doc = parseDocument(a.text, { uniqueKeys: false, prettyErrors: false });
    for (const e of doc.errors) {
      const [start, end] = e.pos;
      out.push({ code: "yaml-syntax" as DiagnosticCode, severity: "error", message: e.message.split("\n")[0]!, span: { start, end: Math.max(end, start) }, line: 0 });
    }
  } catch {
    // The YAML parser does not throw on text; nothing to add if it does.
  }
  out.push(...templatePolicyDiagnostics(a));
  return out.sort((x, y) => x.span.start - y.span.start);
}
