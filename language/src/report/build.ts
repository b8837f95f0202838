/**
 * A {@link CheckReport} from the editor's analysis of a policy
 * (`analyzeWorkspace`): the same diagnostics the language server publishes,
 * engine errors and analysis warnings alike, located in the files as the
 * user names them.
 */
import type { Diagnostic } from "../diagnostics.js";
import type { AnalysisDiagnostic } from "../services/analysis.js";
import type { PolicySnapshot } from "../services/workspace.js";
import { locateSpan, sourceLineAt } from "./locate.js";
import type { CheckReport, ReportDiagnostic, ReportStream } from "./types.js";

/** Options of {@link reportFromSnapshot}. */
export interface SnapshotReportOptions {
  /** The name to print for a (virtual) path of the snapshot. */
  shownPath(path: string): string;
  /** The name to print for diagnostics of the whole policy (no file): the policy directory as the user named it. */
  policyLabel: string;
  /** Only these paths (default: every path with diagnostics). */
  paths?: readonly string[];
  /** The rule count to report (default: the snapshot's rules). */
  rules?: number;
}

/** Counts errors, warnings and notes (information and hints, which `--strict` does not count). */
export function countSeverities(list: readonly ReportDiagnostic[]): { errors: number; warnings: number; notes: number } {
  let errors = 0;
  let warnings = 0;
  for (const d of list) {
    if (d.severity === "error") errors++;
    else if (d.severity === "warning") warnings++;
  }
  return { errors, warnings, notes: list.length - errors - warnings };
}

/** The text of a path in a snapshot (a loaded file, or a document parsed on demand). */
function textOf(snapshot: PolicySnapshot, path: string): string | undefined {
  return snapshot.files.get(path)?.text ?? snapshot.document(path)?.text;
}

/** One diagnostic of a file located for a report. */
export function reportDiagnostic(d: AnalysisDiagnostic | Diagnostic, file: string, text: string | undefined, related?: (path: string) => { file: string; text: string | undefined }): ReportDiagnostic {
  const at = locateSpan(text, d.span, d.line);
  // An explicit literal (one object shape for every diagnostic); `related` keeps this member order.
  const out: ReportDiagnostic = { file, line: at.line, column: at.column, endLine: at.endLine, endColumn: at.endColumn, severity: d.severity, code: d.code, message: d.message };
  if (d.help) out.help = d.help;
  if (text !== undefined) out.sourceLine = sourceLineAt(text, Math.min(d.span.start, text.length));
  const rel = (d as AnalysisDiagnostic).related;
  if (rel?.length && related) {
    out.related = rel.map((r) => {
      const where = related(r.path);
      const l = locateSpan(where.text, r.span, r.line);
      return { file: where.file, line: l.line, column: l.column, endLine: l.endLine, endColumn: l.endColumn, message: r.message };
    });
  }
  return out;
}

/** The paths of a snapshot's report, in report order, each once. */
function reportPaths(snapshot: PolicySnapshot, options: SnapshotReportOptions): string[] {
  const order = options.paths ?? [...snapshot.files.keys(), ...[...snapshot.diagnostics.keys()].filter((p) => !snapshot.files.has(p)).sort()];
  return [...new Set(order)];
}

/** The diagnostics of a snapshot's report, located one by one, in report order. */
function* snapshotDiagnostics(snapshot: PolicySnapshot, options: SnapshotReportOptions, paths: readonly string[]): Generator<ReportDiagnostic, void, void> {
  // Each path's printed name and text, once (not once per diagnostic that points there).
  const places = new Map<string, { file: string; text: string | undefined }>();
  const related = (p: string) => {
    let where = places.get(p);
    if (!where) places.set(p, (where = { file: options.shownPath(p), text: textOf(snapshot, p) }));
    return where;
  };
  for (const path of paths) {
    const list = snapshot.diagnostics.get(path);
    if (!list?.length) continue;
    const { file, text } = related(path);
    for (const d of list) yield reportDiagnostic(invalidFilenameAsGiven(d, options.shownPath), file, text, related);
  }
  for (const d of snapshot.policyDiagnostics) yield reportDiagnostic(invalidFilenameAsGiven({ ...d, span: { start: 0, end: 0 }, line: d.line || 1 }, options.shownPath), options.policyLabel, undefined);
}

/**
 * The report of a snapshot: files in load order (then the others by path),
 * each file's diagnostics by position; problems of the whole policy (no
 * file) at line 1 of the policy directory.
 */
export function reportFromSnapshot(snapshot: PolicySnapshot, options: SnapshotReportOptions): CheckReport {
  const diagnostics = [...snapshotDiagnostics(snapshot, options, reportPaths(snapshot, options))];
  const { errors, warnings, notes } = countSeverities(diagnostics);
  return { ok: errors === 0, rules: options.rules ?? snapshot.rules.length, errors, warnings, notes, diagnostics };
}

/**
 * {@link reportFromSnapshot} as a stream: the same report, whose
 * diagnostics are located as a writer reads them (and again if it reads
 * them again), for output written once: a report of tens of thousands of
 * diagnostics is then never held whole.
 */
export function streamFromSnapshot(snapshot: PolicySnapshot, options: SnapshotReportOptions): ReportStream {
  const paths = reportPaths(snapshot, options);
  let errors = 0;
  let warnings = 0;
  let total = snapshot.policyDiagnostics.length;
  // The codes in the order of the report (a located diagnostic keeps its code).
  const codes = new Set<string>();
  const count = (d: { severity: string; code: string }) => {
    if (d.severity === "error") errors++;
    else if (d.severity === "warning") warnings++;
    codes.add(d.code);
  };
  for (const path of paths) {
    const list = snapshot.diagnostics.get(path);
    if (!list) continue;
    total += list.length;
    for (const d of list) count(d);
  }
  for (const d of snapshot.policyDiagnostics) count(d);
  return {
    ok: errors === 0,
    rules: options.rules ?? snapshot.rules.length,
    errors,
    warnings,
    notes: total - errors - warnings,
    diagnostics: { [Symbol.iterator]: () => snapshotDiagnostics(snapshot, options, paths) },
    codes,
  };
}

const INVALID_FILENAME = "invalid filename: ";
const BAD_NAME_CHARS = /[^0-9a-z_.-]/g;

/**
 * The engine's `invalid filename: PATH` names the file where the engine reads
 * it (`/etc/qubes/policy.d/…`); the report names it as the user gave it, and
 * says what to rename it to (the engine accepts `[0-9a-z_.-]` only).
 */
export function invalidFilenameAsGiven<D extends AnalysisDiagnostic | Diagnostic>(d: D, shownPath: (path: string) => string): D {
  if (d.code !== "invalid-filename" || !d.message.startsWith(INVALID_FILENAME)) return d;
  const virtual = d.message.slice(INVALID_FILENAME.length);
  const slash = virtual.lastIndexOf("/");
  const base = virtual.slice(slash + 1);
  const renamed = base.toLowerCase().replace(BAD_NAME_CHARS, "-");
  const help =
    renamed !== base && /^[0-9a-z_.-]+$/.test(renamed)
      ? `the engine rejects the whole policy for this name, so the daemon denies every call; rename the file to \`${renamed}\` (only lowercase letters, digits, \`_\`, \`-\` and \`.\`)`
      : "the engine rejects the whole policy for this name, so the daemon denies every call; rename the file using only lowercase letters, digits, `_`, `-` and `.`";
  return { ...d, message: INVALID_FILENAME + shownPath(virtual), help };
}

/** Reports (or streams) one after the other, as one stream: the diagnostics read in turn, never copied. */
export function mergeReportStreams(reports: readonly ReportStream[]): ReportStream {
  if (reports.length === 1) return reports[0]!;
  const engineError = reports.find((r) => r.engineError !== undefined)?.engineError;
  // The codes, in order, when every report knows its own (or holds its diagnostics).
  let codes: Set<string> | undefined = new Set<string>();
  for (const r of reports) {
    if (r.codes) for (const c of r.codes) codes?.add(c);
    else if (Array.isArray(r.diagnostics)) for (const d of r.diagnostics as readonly ReportDiagnostic[]) codes?.add(d.code);
    else codes = undefined;
  }
  return {
    ok: reports.every((r) => r.ok),
    rules: reports.reduce((n, r) => n + r.rules, 0),
    errors: reports.reduce((n, r) => n + r.errors, 0),
    warnings: reports.reduce((n, r) => n + r.warnings, 0),
    notes: reports.reduce((n, r) => n + r.notes, 0),
    diagnostics: {
      *[Symbol.iterator]() {
        for (const r of reports) yield* r.diagnostics;
      },
    },
    ...(engineError !== undefined ? { engineError } : {}),
    ...(codes ? { codes } : {}),
  };
}

/** Several reports as one (several policies checked in one run). */
export function mergeReports(reports: readonly CheckReport[]): CheckReport {
  const diagnostics = reports.flatMap((r) => r.diagnostics);
  const { errors, warnings, notes } = countSeverities(diagnostics);
  const engineError = reports.find((r) => r.engineError !== undefined)?.engineError;
  return {
    ok: reports.every((r) => r.ok),
    rules: reports.reduce((n, r) => n + r.rules, 0),
    errors,
    warnings,
    notes,
    diagnostics,
    ...(engineError !== undefined ? { engineError } : {}),
  };
}
