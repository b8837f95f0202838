/**
 * The text format of `qkit policy check`: one `FILE:LINE:COL:
 * SEVERITY[CODE]: MESSAGE` line per diagnostic (the line other tools
 * parse), then the source line with carets under the span and the help.
 * Colour (ANSI escapes) only when asked for; the caller decides from the
 * terminal and `NO_COLOR`/`FORCE_COLOR` (see {@link wantsColor}).
 */
import type { Severity } from "../diagnostics.js";
import { collect, type ChunkWriter } from "./sink.js";
import type { CheckReport, ReportDiagnostic, ReportStream } from "./types.js";

/** Options of {@link formatText}. */
export interface TextOptions {
  /** ANSI colours (default off). */
  color?: boolean;
  /** The source line with carets and the help under each diagnostic (default on). */
  snippets?: boolean;
  /** `--strict`: warnings fail the check too (the summary says so). */
  strict?: boolean;
}

const RESET = "\x1b[0m";
const STYLE: Record<Severity | "bold" | "gutter" | "help", string> = {
  error: "\x1b[1;31m",
  warning: "\x1b[1;33m",
  info: "\x1b[1;36m",
  hint: "\x1b[1;36m",
  bold: "\x1b[1m",
  gutter: "\x1b[1;34m",
  help: "\x1b[1;32m",
};

/**
 * Colour decision for a stream, as `NO_COLOR` (no-color.org) and Node's
 * `FORCE_COLOR` define it: `FORCE_COLOR` set to anything but `0`/`false`
 * forces colour (it overrides `NO_COLOR`, as in Node); `FORCE_COLOR=0`, or
 * `NO_COLOR` set and not empty, turns it off; otherwise colour exactly when
 * the stream is a terminal (and `TERM` is not `dumb`).
 */
export function wantsColor(env: Readonly<Record<string, string | undefined>>, isTTY: boolean): boolean {
  const force = env["FORCE_COLOR"];
  if (force !== undefined) return force !== "0" && force.toLowerCase() !== "false";
  const no = env["NO_COLOR"];
  if (no !== undefined && no !== "") return false;
  return isTTY && env["TERM"] !== "dumb";
}

/** Characters that are not one column each on screen: tabs, control characters, surrogates. */
const SPECIAL = /[\x00-\x1f\x7f\ud800-\udfff]/;

/** {@link SPECIAL} but the tab. */
const SPECIAL_BUT_TAB = /[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]/;

/** The number of tabs in `line[from, to)`. */
function tabsIn(line: string, from: number, to: number): number {
  let n = 0;
  for (let i = line.indexOf("\t", from); i >= 0 && i < to; i = line.indexOf("\t", i + 1)) n++;
  return n;
}

/** Control characters of user text as `\xNN` (so a file cannot move the cursor or fake colours). */
function visible(s: string): string {
  return CONTROL.test(s) ? s.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`) : s;
}
const CONTROL = /[\x00-\x1f\x7f]/;
const CONTROLS = /[\x00-\x1f\x7f]/g;

/** How a source character is shown, and how wide it is: tabs as 4 spaces, control characters escaped. */
function shown(c: string): string {
  if (c === "\t") return "    ";
  return visible(c);
}

/**
 * The source line as shown: tabs as 4 spaces, control characters as `\xNN`
 * (what {@link shown} makes of them); runs of other characters are copied
 * whole. A surrogate pair is one column ({@link columnOf}).
 */
function shownLine(line: string): string {
  const parts: string[] = [];
  // The start of the current run of characters shown as they are.
  let run = 0;
  for (let i = 0; i < line.length; i++) {
    const code = line.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) {
      if (run < i) parts.push(line.slice(run, i));
      parts.push(shown(line[i]!));
      run = i + 1;
    }
  }
  if (run < line.length) parts.push(line.slice(run));
  return parts.join("");
}

/**
 * The display column (0-based) where the UTF-16 offset `at` of `line` is
 * shown by {@link shownLine}: tabs and control characters are 4 columns, a
 * surrogate pair one (its second half is at its first's column). Counted,
 * not tabulated: a report asks for two offsets of each line.
 */
function columnOf(line: string, at: number): number {
  let width = 0;
  for (let i = 0; i < at && i < line.length; i++) {
    const code = line.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < line.length) {
      const low = line.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        width += 1;
        i++;
        // The pair's second half is shown where the pair is.
        if (i === at) return width - 1;
        continue;
      }
    }
    width += code < 0x20 || code === 0x7f ? 4 : 1;
  }
  return width;
}

/** The longest source line shown whole; a longer one is cut to this many characters around the span, the span starting this far in. */
const SNIPPET_MAX = 240;
const SNIPPET_BEFORE = 60;

/** One diagnostic: its header line, then (with snippets) the source, carets, help and related places. */
export function formatDiagnostic(d: ReportDiagnostic, options: TextOptions = {}): string {
  return diagnosticText(d, options.color === true, options.snippets !== false, visible(d.file));
}

/** {@link formatDiagnostic} with the file name already made visible (the writer caches it per file). */
function diagnosticText(d: ReportDiagnostic, c: boolean, snippets: boolean, file: string): string {
  return collect((out) => writeDiagnostic(out, d, c, snippets, file));
}

/** Runs of one character, made once per length (a report writes one of each per diagnostic). */
const runs = { " ": [] as string[], "^": [] as string[] };

function run(ch: " " | "^", n: number): string {
  if (n > 512) return ch.repeat(n);
  const made = runs[ch];
  return (made[n] ??= ch.repeat(n));
}

/**
 * Writes one diagnostic (see {@link formatDiagnostic}) piece by piece into
 * `out`: a report of tens of thousands of diagnostics then makes no string
 * per diagnostic, only its pieces.
 */
function writeDiagnostic(out: ChunkWriter, d: ReportDiagnostic, c: boolean, snippets: boolean, file: string): void {
  const number = String(d.line);
  if (c) {
    out.write(`${STYLE.bold}${file}:${number}:${d.column}:${RESET} ${STYLE[d.severity]}${d.severity}[${d.code}]${RESET}${STYLE.bold}: `);
    out.write(visible(d.message));
    out.write(`${RESET}\n`);
  } else {
    // A few pieces per diagnostic, not one per field: the writer's cost is per piece.
    out.write(`${file}:${number}:${d.column}: ${d.severity}[${d.code}]: ${visible(d.message)}\n`);
  }
  if (!snippets) return;
  const pad = run(" ", number.length);
  const eq = c ? `${STYLE.gutter}=${RESET}` : "=";
  if (d.sourceLine !== undefined) {
    let line = d.sourceLine;
    // 0-based columns of the span in `line`.
    let column = d.column - 1;
    let endColumn = d.endLine > d.line ? Infinity : d.endColumn - 1;
    // A very long line (minified, binary) is shown as a window around the span, marked `…` where cut.
    let head = "";
    if (line.length > SNIPPET_MAX) {
      const lo = Math.max(0, Math.min(column, line.length) - SNIPPET_BEFORE);
      const hi = Math.min(line.length, lo + SNIPPET_MAX);
      head = lo > 0 ? "…" : "";
      line = head + line.slice(lo, hi) + (hi < line.length ? "…" : "");
      column = column - lo + head.length;
      endColumn = Math.min(endColumn - lo + head.length, line.length);
    }
    let text: string;
    let start: number;
    let width: number;
    if (!SPECIAL.test(line)) {
      // The common case: every UTF-16 unit is one column on screen.
      text = line;
      const from = Math.min(Math.max(column, 0), line.length);
      const to = Math.min(Math.max(endColumn, from), line.length);
      start = from;
      width = Math.max(1, to - from);
    } else if (!SPECIAL_BUT_TAB.test(line)) {
      // Tabs only (a tab-separated policy): each tab is 4 columns, every other unit one.
      text = line.replaceAll("\t", "    ");
      const from = Math.min(Math.max(column, 0), line.length);
      const to = Math.min(Math.max(endColumn, from), line.length);
      const before = tabsIn(line, 0, from);
      start = from + 3 * before;
      width = Math.max(1, to - from + 3 * tabsIn(line, from, to));
    } else {
      text = shownLine(line);
      const from = Math.min(Math.max(column, 0), line.length);
      const to = Math.min(Math.max(endColumn, from), line.length);
      start = columnOf(line, from);
      width = Math.max(1, columnOf(line, to) - start);
    }
    if (c) {
      out.write(`${STYLE.gutter}${number} |${RESET}`);
      if (text) {
        out.write(" ");
        out.write(text);
      }
      out.write(`\n${STYLE.gutter}${pad} |${RESET} `);
      out.write(run(" ", start));
      out.write(STYLE[d.severity]);
      out.write(run("^", width));
      out.write(`${RESET}\n`);
    } else {
      out.write(`${number}${text ? " | " : " |"}${text}\n${pad} | ${run(" ", start)}${run("^", width)}\n`);
    }
  }
  if (d.help) out.write(`${pad}${c ? ` ${eq} ${STYLE.help}help${RESET}: ` : " = help: "}${visible(d.help)}\n`);
  if (d.related) {
    for (const r of d.related) out.write(`${pad}${c ? ` ${eq} ${STYLE.bold}note${RESET}: ` : " = note: "}${visible(r.message)} at ${visible(r.file)}:${r.line}:${r.column}\n`);
  }
}

/** The summary line: `ok: N rules, no errors` or `N errors: the real engine would deny every call`, plus warnings. */
export function summaryLine(report: ReportStream, options: Pick<TextOptions, "strict"> = {}): { text: string; failed: boolean } {
  const warnings = (report.warnings ? `, ${report.warnings} warning(s)` : "") + (report.notes ? `, ${report.notes} note(s)` : "");
  if (!report.ok) {
    const n = report.errors || 1;
    return { text: `${n} error${n === 1 ? "" : "s"}: the real engine would deny every call${warnings}\n`, failed: true };
  }
  if (options.strict && report.warnings) return { text: `ok: ${report.rules} rules, no errors${warnings}; --strict: warnings fail the check\n`, failed: true };
  return { text: `ok: ${report.rules} rules, no errors${warnings}\n`, failed: false };
}

/**
 * The whole text report: diagnostics on standard output, the summary on
 * standard output when the check passes and on standard error when it fails.
 */
export function formatCheckText(report: CheckReport, options: TextOptions = {}): { stdout: string; stderr: string } {
  let stderr = "";
  const stdout = collect((out) => (stderr = writeCheckText(report, options, out)));
  return { stdout, stderr };
}

/**
 * {@link formatCheckText}, streamed: writes what goes to standard output
 * into `out` (it does not flush it) and returns what goes to standard error
 * (the summary when the check fails, else nothing).
 */
export function writeCheckText(report: ReportStream, options: TextOptions, out: ChunkWriter): string {
  const c = options.color === true;
  const snippets = options.snippets !== false;
  let lastFile: string | undefined;
  let lastShown = "";
  for (const d of report.diagnostics) {
    if (d.file !== lastFile) {
      lastFile = d.file;
      lastShown = visible(d.file);
    }
    writeDiagnostic(out, d, c, snippets, lastShown);
  }
  if (report.engineError !== undefined && report.errors === 0) {
    out.write(`${c ? `${STYLE.error}error[engine]${RESET}` : "error[engine]"}: ${visible(report.engineError)}\n`);
  }
  const s = summaryLine(report, options);
  if (s.failed) return s.text;
  out.write(s.text);
  return "";
}
