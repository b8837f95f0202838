/**
 * Policy test files (`*.policytest.yaml`): which policy and system model to
 * use, and the calls with the decisions they must get.
 *
 * ```yaml
 * policy: policy.d          # the policy.d directory, relative to this file
 * system: system.json       # internal.GetSystemInfo JSON, relative; or `live`
 * tests:
 *   - qubes.Filecopy work vault => deny
 *   - call: qubes.Filecopy work -> personal
 *     decision: ask
 *     targets_include: [personal]
 * ```
 *
 * The name ends in `.policytest.yaml` (or `.policytest.yml`) so that a
 * directory search finds test files and never mistakes a domain template or
 * another YAML file for one. Parsing never throws; problems are diagnostics
 * with a line.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from "yaml";
import type { Expectation } from "../template/model.js";
import { parseExpectation, type ExpectationObject } from "../template/expect.js";
import { firstUnclosed } from "../template/unclosed.js";

/** The file name suffixes of policy test files. */
export const POLICY_TEST_SUFFIXES = [".policytest.yaml", ".policytest.yml"] as const;

/** Is this file name a policy test file? */
export function isPolicyTestFile(name: string): boolean {
  return POLICY_TEST_SUFFIXES.some((s) => name.endsWith(s));
}

/** One test call of a file. */
export interface PolicyTestCase {
  /** 0-based position in `tests`. */
  index: number;
  /** 1-based line of the entry. */
  line: number;
  /** The entry in the file (UTF-16 offsets, end exclusive). */
  span: { start: number; end: number };
  /** `name:` of the map form, else the entry's text. */
  name: string;
  expectation: Expectation;
}

/** A problem in a test file. */
export interface PolicyTestFileProblem {
  line: number;
  /** Where, when known (UTF-16 offsets, end exclusive). */
  span?: { start: number; end: number };
  code: string;
  message: string;
}

/** A parsed test file. */
export interface PolicyTestFile {
  /** `policy:` as written (a path relative to the file), if any. */
  policy?: string;
  /** `system:` as written (a path relative to the file, or `live`), if any. */
  system?: string;
  /** The lines of the `policy:` and `system:` keys. */
  policyLine?: number;
  systemLine?: number;
  cases: PolicyTestCase[];
  problems: PolicyTestFileProblem[];
}

/** The YAML errors a file reports at most (a file that is no YAML at all has one on almost every line). */
const MAX_YAML_ERRORS = 5;

const TOP_KEYS = new Set(["policy", "system", "tests"]);
const EXPECTATION_KEYS = new Set(["call", "decision", "target", "targets_include", "targets_exact", "name"]);

/** The codes of a problem of one entry of a test file: the file's other entries still run. */
const ENTRY_PROBLEM_CODES = new Set(["bad-expectation", "bad-expectation-key"]);

/** Whether a problem of a test file is one entry's (the other entries still run) rather than the file's own. */
export function isEntryProblem(p: { code: string }): boolean {
  return ENTRY_PROBLEM_CODES.has(p.code);
}

/** Parses a policy test file. Never throws. */
export function parsePolicyTestFile(text: string): PolicyTestFile {
  const out: PolicyTestFile = { cases: [], problems: [] };
  const lc = new LineCounter();
  let doc;
  try {
    doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  } catch (e) {
    out.problems.push({ line: 1, code: "bad-test-file", message: `not YAML: ${e instanceof Error ? e.message : String(e)}` });
    return out;
  }
  const lineOf = (n: Node | null | undefined) => (n?.range ? lc.linePos(n.range[0]).line : 1);
  const spanOf = (n: Node | null | undefined) => (n?.range ? { start: n.range[0], end: n.range[1] } : { start: 0, end: 0 });
  // One problem per YAML error, at its own line (the line counter's: errors carry no line without prettyErrors);
  // the parser may report one fault several times, and a file that is no YAML at all many times: each
  // (line, message) once, and at most MAX_YAML_ERRORS of them with a count of the rest.
  const seen = new Set<string>();
  let more = 0;
  // An unclosed bracket or quote is said once, at itself: the parser reports it where it gives up
  // (often past the end of the file) and misreads what follows into more errors.
  const open = doc.errors.length ? firstUnclosed(text) : undefined;
  const cause = open && doc.errors.some((e) => e.pos[0] >= open.offset) ? open : undefined;
  if (cause) {
    out.problems.push({ line: lc.linePos(cause.offset).line, span: { start: cause.offset, end: cause.offset + 1 }, code: "bad-test-file", message: `not valid YAML: ${cause.message}; ${cause.help}` });
  }
  for (const e of doc.errors) {
    if (cause && e.pos[0] >= cause.offset) continue;
    const start = Math.min(Math.max(e.pos[0], 0), text.length);
    // An error at the very end of a file that ends with a line break is on its last line, not the one after.
    const line = lc.linePos(start === text.length && /[\n\r]$/.test(text) ? start - 1 : start).line;
    const message = `not valid YAML: ${e.message.split("\n")[0]}`;
    const key = `${line}\0${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (out.problems.length >= MAX_YAML_ERRORS) {
      more++;
      continue;
    }
    out.problems.push({ line, span: { start, end: Math.max(Math.min(e.pos[1], text.length), start) }, code: "bad-test-file", message });
  }
  if (more) {
    const last = out.problems[out.problems.length - 1]!;
    last.message += ` (and ${more} more YAML error${more === 1 ? "" : "s"} after this one; is this a policy test file?)`;
  }
  if (out.problems.length) return out;
  const root = doc.contents;
  if (!isMap(root)) {
    out.problems.push({ line: lineOf(root), code: "bad-test-file", message: "a policy test file is a map with `policy`, `system` and `tests`" });
    return out;
  }
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : "";
    const keyLine = lineOf(pair.key as Node);
    const keySpan = spanOf(pair.key as Node);
    if (!TOP_KEYS.has(key)) {
      out.problems.push({ line: keyLine, span: keySpan, code: "bad-test-file-key", message: `unknown key \`${key}\`: expected policy, system or tests` });
      continue;
    }
    const value = pair.value as Node | null;
    if (key === "policy" || key === "system") {
      if (!isScalar(value) || typeof value.value !== "string" || value.value === "") {
        out.problems.push({ line: keyLine, span: keySpan, code: "bad-test-file", message: `\`${key}\` must be a path${key === "system" ? " or `live`" : ""}` });
        continue;
      }
      out[key] = value.value;
      out[key === "policy" ? "policyLine" : "systemLine"] = keyLine;
      continue;
    }
    if (!isSeq(value)) {
      out.problems.push({ line: keyLine, span: keySpan, code: "bad-test-file", message: "`tests` must be a list of expectations" });
      continue;
    }
    value.items.forEach((item, index) => {
      const n = item as Node;
      const line = lineOf(n);
      const span = spanOf(n);
      if (isScalar(n) && typeof n.value === "string") {
        const r = parseExpectation(n.value);
        if (!r.ok) out.problems.push({ line, span, code: "bad-expectation", message: `\`${n.value}\`: ${r.message}${r.help ? ` (${r.help})` : ""}` });
        else out.cases.push({ index, line, span, name: n.value, expectation: r.expectation });
        return;
      }
      if (isMap(n)) {
        const js = n.toJSON() as Record<string, unknown>;
        const unknown = Object.keys(js).filter((k) => !EXPECTATION_KEYS.has(k));
        if (unknown.length) {
          out.problems.push({ line, span, code: "bad-expectation-key", message: `unknown key \`${unknown[0]}\`: expected call, decision, target, targets_include, targets_exact or name` });
          return;
        }
        if (js["name"] !== undefined && typeof js["name"] !== "string") {
          out.problems.push({ line, span, code: "bad-expectation", message: "`name` must be a string" });
          return;
        }
        const { name, ...obj } = js;
        const r = parseExpectation(obj as unknown as ExpectationObject);
        if (!r.ok) out.problems.push({ line, span, code: "bad-expectation", message: `${r.key ? `\`${r.key}\`: ` : ""}${r.message}${r.help ? ` (${r.help})` : ""}` });
        else out.cases.push({ index, line, span, name: typeof name === "string" ? name : String(js["call"]), expectation: r.expectation });
        return;
      }
      out.problems.push({ line, span, code: "bad-expectation", message: "a test is a string `SERVICE[+ARG] SOURCE TARGET => DECISION [TARGET]` or a map with `call` and `decision`" });
    });
  }
  if (!out.problems.length && out.cases.length === 0) out.problems.push({ line: 1, code: "bad-test-file", message: "no tests: add a `tests:` list" });
  return out;
}
