/**
 * Completion of an action parameter at the start of an existing `key=value`
 * word inserts a new key before it (empty range, with the separator) and
 * never offers a key already on the line; inside a key it still replaces only
 * the key. Through the language entry point; property over random lines.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { complete, parseDocument } from "@qubes-kit/language";

const apply = (text: string, item: { span: { start: number; end: number }; insertText?: string; label: string }) => text.slice(0, item.span.start) + (item.insertText ?? item.label) + text.slice(item.span.end);

describe("completing a key at the start of an existing word", () => {
  test("the reviewer's line: inserts before `target=`, offers no key already present", () => {
    const line = "qubes.OpenURL * work @default allow target=@dispvm:work-dvm";
    const at = line.indexOf("target=");
    const items = complete(parseDocument(line + "\n"), at).filter((i) => i.kind === "param");
    expect(items.map((i) => i.label).sort()).toEqual(["autostart=", "notify=", "user="]);
    for (const i of items) expect(i.span).toEqual({ start: at, end: at });
    const notify = items.find((i) => i.label === "notify=")!;
    expect(apply(line, notify)).toBe("qubes.OpenURL * work @default allow notify= target=@dispvm:work-dvm");
  });

  test("legacy syntax inserts with a comma", () => {
    const line = "work @dispvm allow,target=@dispvm:work-dvm";
    const at = line.indexOf("target=");
    const items = complete(parseDocument(line + "\n", { syntax: "service" }), at).filter((i) => i.kind === "param");
    const user = items.find((i) => i.label === "user=")!;
    expect(apply(line, user)).toBe("work @dispvm allow,user=,target=@dispvm:work-dvm");
    expect(items.map((i) => i.label)).not.toContain("target=");
  });

  test("inside a key it still replaces only the key", () => {
    const line = "qubes.OpenURL * work @default allow target=@dispvm:work-dvm";
    const at = line.indexOf("target=") + 3;
    const items = complete(parseDocument(line + "\n"), at).filter((i) => i.kind === "param");
    const user = items.find((i) => i.label === "user=")!;
    expect(apply(line, user)).toBe("qubes.OpenURL * work @default allow user=@dispvm:work-dvm");
  });

  test("property: at the start of any parameter word, every word of the line stays and no key is doubled", () => {
    const param = fc.constantFrom("target=vault", "user=root", "notify=yes", "autostart=no", "default_target=vault");
    fc.assert(
      fc.property(fc.constantFrom("allow", "ask", "deny"), fc.uniqueArray(param, { minLength: 1, maxLength: 4, selector: (p) => p.split("=")[0] }), fc.nat(), (action, params, pick) => {
        const line = `qubes.A * work @default ${action} ${params.join(" ")}`;
        const k = pick % params.length;
        const at = `qubes.A * work @default ${action} `.length + params.slice(0, k).map((p) => p.length + 1).reduce((a, b) => a + b, 0);
        const items = complete(parseDocument(line + "\n"), at).filter((i) => i.kind === "param");
        const present = new Set(params.map((p) => p.split("=")[0]));
        for (const i of items) {
          expect(present.has(i.label.replace(/=$/, "")), i.label).toBe(false);
          const after = apply(line, i);
          for (const p of params) expect(after.split(" ")).toContain(p);
        }
      }),
      { numRuns: 300 },
    );
  });
});
