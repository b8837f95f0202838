/**
 * Data-driven diagnostics: each file under `fixtures/language/diagnostics/`
 * is a policy whose expected diagnostics are written inside it, as comment
 * lines of carets under the offending line:
 *
 *     qubes.Filecopy  *  work  vault  alow
 *   #                                 ^^^^ error[invalid-action]: invalid action: alow
 *
 * The carets' columns are those of the nearest line above that is not an
 * annotation. `*.service` files are in legacy service syntax.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseDocument } from "@qubes-kit/language";

const dir = fileURLToPath(new URL("../fixtures/language/diagnostics/", import.meta.url));
const ANNOTATION = /^#(\s*)(\^+) (error|warning|info|hint)\[([a-z0-9-]+)\]: (.*)$/;

function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === "\n") starts.push(i + 1);
  return starts;
}

/** Renders expected (annotations) and actual (diagnostics) the same way: `LINE:COL-COL severity[code]: message`. */
function check(name: string): { expected: string[]; actual: string[] } {
  const text = readFileSync(dir + name, "utf8");
  const lines = text.split("\n");
  const expected: string[] = [];
  let target = 0;
  lines.forEach((l, i) => {
    const m = ANNOTATION.exec(l);
    if (!m) {
      target = i;
      return;
    }
    const col = 1 + m[1]!.length;
    expected.push(`${target + 1}:${col}-${col + m[2]!.length} ${m[3]}[${m[4]}]: ${m[5]}`);
  });
  const doc = parseDocument(text, { syntax: name.endsWith(".service") ? "service" : "policy" });
  const starts = lineStarts(text);
  const actual = doc.diagnostics.map((d) => {
    const s = d.span.start - starts[d.line - 1]!;
    return `${d.line}:${s}-${s + d.span.end - d.span.start} ${d.severity}[${d.code}]: ${d.message}`;
  });
  return { expected, actual };
}

describe("diagnostics fixtures", () => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".policy") || f.endsWith(".service"));
  it("has fixtures", () => expect(files.length).toBeGreaterThan(3));
  it.each(files)("%s", (name) => {
    const { expected, actual } = check(name);
    expect(actual).toEqual(expected);
  });
});
