/**
 * The model every `qkit policy check` output format is made from: the
 * diagnostics of a check, each located by file, line and column, with the
 * source line it points into. Formatters (`text.ts`, `sarif.ts`,
 * `github.ts`) are pure functions of a {@link CheckReport}.
 */
import type { Severity } from "../diagnostics.js";

/** A place in a file: 1-based lines and columns, columns in UTF-16 code units, `endColumn` exclusive. */
export interface ReportLocation {
  /** The file as the user knows it (relative to the working directory when below it), `/`-separated. */
  file: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

/** One diagnostic of a check. */
export interface ReportDiagnostic extends ReportLocation {
  severity: Severity;
  /** The stable kebab-case code (`shadowed-rule`, `invalid-action` …): the SARIF rule id. */
  code: string;
  /** One line: what is wrong (the engine's text where it has one). */
  message: string;
  /** What to do about it, when the diagnostic says. */
  help?: string;
  /** The text of line `line` (without its line ending), when the file could be read. */
  sourceLine?: string;
  /** Other places that explain the diagnostic (the broader rule of a shadowed one …). */
  related?: Array<ReportLocation & { message: string }>;
}

/** The outcome of checking one or more policies. */
export interface CheckReport {
  /** True when nothing stops the engine from loading the policy (no error diagnostic, no engine failure). */
  ok: boolean;
  /** Rules loaded (of the valid lines). */
  rules: number;
  errors: number;
  /** Diagnostics of severity warning (`--strict` fails on them). */
  warnings: number;
  /** Information and hints: shown, never failing the check. */
  notes: number;
  /** Diagnostics in output order. */
  diagnostics: ReportDiagnostic[];
  /** The engine's failure when it is not one of the diagnostics (a crash the loader reports without a line). */
  engineError?: string;
}

/**
 * What the output formats read of a report: a {@link CheckReport}, or a
 * report whose diagnostics are made one by one as a writer reads them
 * (`streamFromSnapshot`), so that a report of a huge policy is never held
 * whole. The counts are those of the diagnostics it yields; a writer may
 * read `diagnostics` more than once (SARIF does), getting the same ones.
 */
export interface ReportStream extends Omit<CheckReport, "diagnostics"> {
  diagnostics: Iterable<ReportDiagnostic>;
  /** The codes of its diagnostics, when known without reading them (SARIF's rule table then does not read them twice). */
  codes?: ReadonlySet<string>;
}

/** The tool that made a report (SARIF `tool.driver`). */
export interface ReportTool {
  name: string;
  version: string;
  informationUri?: string;
}
