/**
 * Data-driven stack checking: every case under `fixtures/template/check/` is a
 * stack whose expected diagnostics are written inside its files, as YAML
 * comment lines of carets under the offending line:
 *
 *     memory: -5
 *   #         ^^ error[invalid-property-value]: memory must be positive (QubesPropertyValueError)
 *
 * The carets' columns are those of the nearest line above that is not an
 * annotation (0-based: the `#` is column 0). A span that starts at column 0,
 * is empty, or sits inside a `rules: |` block (where a comment would end the
 * block) is written out in full instead: `#= LINE:COL-END severity[code]: message`
 * in the file, or `FILE:LINE:COL-END severity[code]: message` in the case's `expected.txt`.
 *
 * An annotation may be followed by a line `#   help: TEXT`: the diagnostic's help must then
 * be exactly TEXT (without such a line the help is not compared).
 *
 * A case is a single `NAME.qubes.yaml` file, or a directory whose entry is
 * `main.qubes.yaml` (with include and bundle files beside it, and an optional
 * `system.json`: a {@link StackSystem}). Every diagnostic of every file must
 * be expected, and every expected one must appear; `model.json`, when
 * present, is the expected model (without provenance).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { checkStack, computeLineStarts, TEMPLATE_DIAGNOSTIC_CODES, type StackSystem, type TemplateDiagnostic } from "@qubes-kit/language";

const dir = fileURLToPath(new URL("../fixtures/template/check/", import.meta.url));
const ANNOTATION = /^#(\s*)(\^+) (error|warning|info|hint)\[([a-z0-9-]+)\]: (.*)$/;
const HELP = /^#\s*help: (.*)$/;
const ROOT = "/case";
/** Codes of the policy core that embedded policy diagnostics keep. */
const POLICY_CODES = new Set(["invalid-action", "wrong-number-of-fields", "not-a-file", "invalid-token", "invalid-param-syntax"]);

interface Case {
  name: string;
  files: Record<string, string>;
  entry: string;
  system?: StackSystem;
  expectedTxt: string[];
  model?: unknown;
}

function walk(base: string, sub = ""): string[] {
  const out: string[] = [];
  for (const n of readdirSync(join(base, sub))) {
    const rel = sub ? `${sub}/${n}` : n;
    if (statSync(join(base, rel)).isDirectory()) out.push(...walk(base, rel));
    else out.push(rel);
  }
  return out;
}

function loadCase(name: string): Case {
  const p = join(dir, name);
  if (!statSync(p).isDirectory()) return { name, files: { [name]: readFileSync(p, "utf8") }, entry: name, expectedTxt: [] };
  const files: Record<string, string> = {};
  for (const rel of walk(p)) if (rel.endsWith(".qubes.yaml")) files[rel] = readFileSync(join(p, rel), "utf8");
  const c: Case = { name, files, entry: "main.qubes.yaml", expectedTxt: [] };
  if (existsSync(join(p, "system.json"))) c.system = JSON.parse(readFileSync(join(p, "system.json"), "utf8")) as StackSystem;
  if (existsSync(join(p, "expected.txt"))) c.expectedTxt = readFileSync(join(p, "expected.txt"), "utf8").split("\n").filter((l) => l.trim() !== "" && !l.startsWith("//"));
  if (existsSync(join(p, "model.json"))) c.model = JSON.parse(readFileSync(join(p, "model.json"), "utf8"));
  return c;
}

/** The expected help of an annotation, by its rendered line (filled by {@link annotations}). */
type Helps = Map<string, string>;

function annotations(rel: string, text: string, helps?: Helps): string[] {
  const out: string[] = [];
  let target = 0;
  text.split("\n").forEach((l, i) => {
    const h = HELP.exec(l);
    if (h && out.length) {
      helps?.set(out[out.length - 1]!, h[1]!);
      return;
    }
    if (l.startsWith("#= ")) {
      out.push(`${rel}:${l.slice(3)}`);
      return;
    }
    const m = ANNOTATION.exec(l);
    if (!m) {
      target = i;
      return;
    }
    const col = 1 + m[1]!.length;
    out.push(`${rel}:${target + 1}:${col}-${col + m[2]!.length} ${m[3]}[${m[4]}]: ${m[5]}`);
  });
  return out;
}

function render(d: TemplateDiagnostic, texts: Map<string, string>): string {
  const rel = d.file.startsWith(`${ROOT}/`) ? d.file.slice(ROOT.length + 1) : d.file;
  const text = texts.get(rel) ?? "";
  const starts = computeLineStarts(text);
  const lineStart = starts[d.line - 1] ?? 0;
  const nextLine = starts[d.line] ?? text.length + 1;
  const col = d.span.start - lineStart;
  const end = Math.min(d.span.end, nextLine - 1) - lineStart;
  return `${rel}:${d.line}:${col}-${Math.max(col, end)} ${d.severity}[${d.code}]: ${d.message}`;
}

/** The model without provenance (positions are checked by the diagnostics). */
function stripProvenance(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripProvenance);
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (!["provenance", "keyProvenance", "rulesOffset", "globalProvenance", "labelProvenance"].includes(k)) out[k] = stripProvenance(x);
    return out;
  }
  return v;
}

function run(c: Case) {
  const texts = new Map(Object.entries(c.files));
  const fs = { readFile: (p: string) => (p.startsWith(`${ROOT}/`) ? texts.get(p.slice(ROOT.length + 1)) : undefined) };
  const result = checkStack(fs, `${ROOT}/${c.entry}`, c.system ? { system: c.system } : {});
  const actual = result.diagnostics.map((d) => render(d, texts)).sort();
  const helps: Helps = new Map();
  const expected = [...Object.entries(c.files).flatMap(([rel, t]) => annotations(rel, t, helps)), ...c.expectedTxt].sort();
  const actualHelps = [...helps.keys()].map((line) => `${line}\n  help: ${result.diagnostics.find((d) => render(d, texts) === line)?.help ?? "(none)"}`);
  const expectedHelps = [...helps].map(([line, help]) => `${line}\n  help: ${help}`);
  return { actual, expected, actualHelps, expectedHelps, result };
}

describe("template check fixtures", () => {
  const cases = readdirSync(dir).filter((n) => n.endsWith(".qubes.yaml") || statSync(join(dir, n)).isDirectory());
  it("has fixtures", () => expect(cases.length).toBeGreaterThan(20));
  it.each(cases)("%s", (name) => {
    const c = loadCase(name);
    const { actual, expected, actualHelps, expectedHelps, result } = run(c);
    expect(actual).toEqual(expected);
    expect(actualHelps).toEqual(expectedHelps);
    for (const d of result.diagnostics) expect(d.code in TEMPLATE_DIAGNOSTIC_CODES || POLICY_CODES.has(d.code), `undocumented code ${d.code}`).toBe(true);
    const errors = result.diagnostics.some((d) => d.severity === "error");
    expect(result.model === undefined).toBe(errors);
    if (c.model !== undefined) expect(stripProvenance(result.model)).toEqual(c.model);
  });

  it("the annotation format itself catches a missing diagnostic", () => {
    const c: Case = { name: "synthetic", files: { "s.qubes.yaml": "qkit: 1\nstack: s\nqubes:\n  a:\n    class: AppVM\n    memory: -1\n" }, entry: "s.qubes.yaml", expectedTxt: [] };
    const { actual, expected } = run(c);
    expect(expected).toEqual([]);
    expect(actual).toEqual(["s.qubes.yaml:6:12-14 error[invalid-property-value]: memory must be positive (QubesPropertyValueError)"]);
  });

  it("a help line under an annotation is compared with the diagnostic's help", () => {
    const text = "qkit: 1\nstack: s\nqubes:\n  a:\n    class: AppVM\n    memory: -1\n#           ^^ error[invalid-property-value]: memory must be positive (QubesPropertyValueError)\n#   help: some other help\n";
    const { actual, expected, actualHelps, expectedHelps } = run({ name: "synthetic", files: { "s.qubes.yaml": text }, entry: "s.qubes.yaml", expectedTxt: [] });
    expect(actual).toEqual(expected);
    expect(expectedHelps).toEqual([`${expected[0]}\n  help: some other help`]);
    expect(actualHelps).toEqual([`${expected[0]}\n  help: qubesd refuses this value for memory`]);
  });
});
