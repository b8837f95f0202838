/**
 * Diagnostics: the one error model of the language core.
 *
 * Every problem found in policy text is a {@link Diagnostic} with a stable
 * kebab-case `code`, a severity, a source span and a one-line lowercase
 * message. Where the real qrexec engine reports the same problem, `message`
 * is the engine's exact text (without its `FILE:LINE:` prefix).
 */

/** A half-open range of UTF-16 code-unit offsets (`end` is exclusive). */
export interface Span {
  start: number;
  end: number;
}

/** How serious a diagnostic is. */
export type Severity = "error" | "warning" | "info" | "hint";

/** One problem in a policy document. */
export interface Diagnostic {
  /** Stable identifier, e.g. `invalid-action` or `wrong-number-of-fields`. */
  code: DiagnosticCode;
  severity: Severity;
  /** One line, lowercase; the engine's own text where it has one. */
  message: string;
  /** Where in the document the problem is. */
  span: Span;
  /** The 1-based physical line (as the engine counts lines). */
  line: number;
  /** The file the diagnostic belongs to, as the loader names it (for example `30-user.policy`). */
  file?: string;
  /** What to do about it, when that is not obvious. */
  help?: string;
}

/** Every diagnostic code the language core can produce. */
export type DiagnosticCode =
  // Line structure.
  | "wrong-number-of-fields"
  | "invalid-directive"
  | "invalid-number-of-params"
  // Service and argument columns.
  | "invalid-service"
  | "invalid-argument"
  | "argument-without-plus"
  | "argument-for-any-service"
  // Qube tokens.
  | "empty-token"
  | "invalid-token"
  // Actions and parameters.
  | "invalid-action"
  | "invalid-param-syntax"
  | "duplicate-param"
  | "invalid-yes-no"
  | "invalid-params-for-action"
  | "default-target-required"
  // Files and includes.
  | "invalid-filename"
  | "not-a-file"
  | "not-a-directory"
  | "failed-to-load"
  | "include-cycle"
  | "not-utf8"
  | "invalid-include-path"
  | "no-such-policy-file"
  | "compat-not-recursive"
  | "include-dir-unsupported"
  // Warnings that do not stop the engine.
  | "compat-transitional"
  | "byte-order-mark"
  | "legacy-token-in-new-format"
  | "dispvm-never-source"
  | "inline-comment"
  // Analysis (editor) warnings.
  | "unknown-qube"
  | "unknown-tag"
  | "unknown-type"
  | "unknown-dispvm-template"
  | "shadowed-rule"
  | "redirect-target-missing"
  | "ask-without-targets"
  | "filename-disables-policy"
  | "service-case-mismatch"
  | "dispvm-without-default"
  | "service-not-provided"
  | "internal-error";

/** Helpers for {@link Diagnostic} values. */
export namespace Diagnostic {
  /** Creates a diagnostic. */
  export function create(
    code: DiagnosticCode,
    message: string,
    span: Span,
    line: number,
    severity: Severity = "error",
  ): Diagnostic {
    return { code, severity, message, span, line };
  }

  /** True when the diagnostic stops the engine from loading the policy. */
  export function isError(d: Diagnostic): boolean {
    return d.severity === "error";
  }
}
