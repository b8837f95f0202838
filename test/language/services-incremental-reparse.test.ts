/**
 * Incremental parsing: re-parsing only the lines an edit touched gives exactly
 * the tree a full parse gives (lines, words, spans, rules and diagnostics), for
 * any edit, in both syntaxes and both newline modes.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { parseDocument, reparseDocument, type ParseOptions } from "@qubes-kit/language";

const LINES = [
  "qubes.Filecopy * work vault allow",
  "qubes.Gpg +x @tag:gpg @default ask default_target=vault",
  "svc.A * @anyvm @dispvm:default-dvm allow target=@dispvm:default-dvm user=root",
  "* * @anyvm @anyvm deny notify=yes",
  "svc.B * work",
  "svc.C * work vault alow",
  "# a comment",
  "   ",
  "",
  "!include include/common",
  "!include-service svc.X * include/x",
  "!compat-4.0",
  "$include:/etc/qubes-rpc/policy/x",
  "work vault allow,target=dom0",
  "$anyvm $dispvm ask",
  "@anyvm @anyvm deny",
  "\t svc.D\t*\tdom0\tdom0 allow  ",
];
const TERMINATORS = ["\n", "\r\n", "\r"];
const FRAGMENTS = ["\n", "\r", "\r\n", " ", "\t", "a", "x", "allow", "@", "#", "!", "$", "*", "+", "=", ",", "\u0085", "\u001c", "é", ...LINES];

const text = fc
  .array(fc.tuple(fc.constantFrom(...LINES), fc.constantFrom(...TERMINATORS)), { maxLength: 14 })
  .chain((lines) => fc.boolean().map((open) => lines.map(([l, t]) => l + t).join("") + (open ? "svc.E * a b allow" : "")));

/** An edit: at a relative position, delete some characters and insert a fragment. */
const edit = fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), remove: fc.nat(12), insert: fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 3 }).map((x) => x.join("")) });

function apply(t: string, e: { at: number; remove: number; insert: string }): string {
  const i = Math.floor(e.at * t.length);
  return t.slice(0, i) + e.insert + t.slice(Math.min(t.length, i + e.remove));
}

const OPTIONS: ParseOptions[] = [
  { syntax: "policy", newlines: "universal", file: "/etc/qubes/policy.d/30-user.policy" },
  { syntax: "policy", newlines: "lf" },
  { syntax: "service", newlines: "universal", service: "qubes.Gpg", argument: "+x" },
  { syntax: "service" },
];

describe("reparseDocument", () => {
  test.each(OPTIONS.map((o, i) => [i, o] as const))("equals a full parse after random edit sequences (options %i)", (_, options) => {
    fc.assert(
      fc.property(text, fc.array(edit, { minLength: 1, maxLength: 8 }), (initial, edits) => {
        let t = initial;
        let doc = parseDocument(t, options);
        for (const e of edits) {
          t = apply(t, e);
          doc = reparseDocument(doc, t, options);
          expect(doc).toStrictEqual(parseDocument(t, options));
        }
      }),
      { numRuns: 300 },
    );
  });

  // Found by the property above: a `\n` inserted after a `\r` near the end joins them, and the
  // region parsed again runs to the end of the text (the empty last line must not be doubled).
  test.each([
    ["service syntax", { syntax: "service" } as ParseOptions],
    ["policy syntax", { syntax: "policy" } as ParseOptions],
  ])("an inserted \\n that joins a \\r before the end (%s)", (_, options) => {
    const before = "!compat-4.0qubes.Filecopy * work vault allowwork vault allow,target=dom0\r@anyvm @anyvm deny\r\n# a comment\r\n@anyvm @anyvm deny\rsvc.A * @anyvm @dispvm:default-dvm allow target=@dispvm:default-dvm user=root\r   \r\n";
    const at = before.indexOf("deny\rsvc.A") + "deny\r".length;
    const after = before.slice(0, at) + "\n" + before.slice(at);
    expect(reparseDocument(parseDocument(before, options), after, options)).toStrictEqual(parseDocument(after, options));
  });

  test("keeps the lines before the edit and re-parses only the lines around it", () => {
    const lines = Array.from({ length: 200 }, (_, i) => `svc.S${i} * work vault allow`);
    const before = parseDocument(lines.join("\n") + "\n");
    const edited = [...lines];
    edited[100] = "svc.S100 * work vaul2 allow";
    const after = reparseDocument(before, edited.join("\n") + "\n");
    expect(after.lines.slice(0, 99).every((l, i) => l === before.lines[i])).toBe(true);
    // The context lines parsed again with the edited one keep their nodes when their text is the same.
    expect(after.lines[99]).toBe(before.lines[99]);
    expect(after.lines[101]).toBe(before.lines[101]);
    expect(after.lines[100]).not.toBe(before.lines[100]);
    // Same length: the lines after it are the same objects too.
    expect(after.lines.slice(102).every((l, i) => l === before.lines[102 + i])).toBe(true);
    // A longer line moves the lines after it; their rules are shared.
    edited[100] = "svc.S100 * work vault deny notify=yes";
    const moved = reparseDocument(after, edited.join("\n") + "\n");
    expect(moved.lines[150]).not.toBe(after.lines[150]);
    expect(moved.lines[150]!.kind === "rule" && after.lines[150]!.kind === "rule" && moved.lines[150]!.rule === after.lines[150]!.rule).toBe(true);
    expect(moved).toStrictEqual(parseDocument(edited.join("\n") + "\n"));
  });

  test("an unchanged text is the same document; another syntax is a full parse", () => {
    const doc = parseDocument("svc.A * work vault allow\n");
    expect(reparseDocument(doc, doc.text)).toBe(doc);
    const legacy = reparseDocument(doc, "work vault allow\n", { syntax: "service" });
    expect(legacy).toStrictEqual(parseDocument("work vault allow\n", { syntax: "service" }));
  });
});
