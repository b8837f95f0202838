/**
 * `lintText`: upstream `qubes-policy-lint` for one file.
 *
 * The linter checks every line on its own, with the in-memory loader and
 * include targets stubbed as empty files, so includes are not followed and
 * `!include-dir` only gets its parameter count checked. Its verdicts differ
 * from the daemon's in known ways (it rejects absolute and nested include
 * paths); this function reproduces them, for `qkit policy check --lint-compat`.
 */
import { loadPolicy } from "./loader/load.js";
import { pySplit, pyStrip } from "./syntax/python.js";

/** The linter's verdict on one file. */
export interface LintResult {
  ok: boolean;
  /** `NAME:LINE: error: MESSAGE` lines, as the linter prints them. */
  errors: string[];
}

/** Python's `readlines()` in text mode (universal newlines), each line `rstrip()`ped. */
function readLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** Lints one file as `qubes-policy-lint [-i] FILE` does; `name` is how the file is named in the messages. */
export function lintText(text: string, options: { name: string; includeService?: boolean }): LintResult {
  const errors: string[] = [];
  const lines = readLines(text);
  for (let k = 0; k < lines.length; k++) {
    const lineno = k + 1;
    const line = pyStrip(lines[k]!);
    if (!line || line[0] === "#") continue;
    let includedPath = "";
    let message: string | undefined;
    if (line.startsWith("!")) {
      const [directive, ...params] = pySplit(line);
      if (directive === "!include-service") {
        if (params.length === 3) includedPath = params[2]!;
      } else if (directive === "!include") {
        if (params.length === 1) includedPath = params[0]!;
      } else if (directive === "!include-dir") {
        if (params.length !== 1) message = "invalid number of params";
        else continue;
      }
    }
    if (message === undefined) {
      const strings: Record<string, string> = options.includeService ? { __main__: "!include-service * * inc", inc: line } : { __main__: line };
      if (includedPath !== "") strings[includedPath] = "";
      const r = loadPolicy(undefined, { loader: "string", strings });
      if (!r.ok) message = r.error.detail ?? r.error.message;
    }
    if (message !== undefined) errors.push(`${options.name}:${lineno}: error: ${message}`);
  }
  return { ok: errors.length === 0, errors };
}
