/**
 * The stack files' part of rename and references (`templateOccurrences`, through the package
 * entry): `expect:` entries in both forms, bundle parameters of type `tag`, `qube`, `name` and
 * `list<qube>` (their `with:` values and their defaults), quoted names; and, over any text,
 * every occurrence is exactly the name in the text (so an edit there replaces the name and
 * nothing else), and `templateSymbolAt` finds the same name at each of them.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { analyzeTemplate, hoverTemplate, templateDefinition, templateOccurrences, templateSymbolAt, templateWorkspaceSymbols } from "@qubes-kit/language";

const BUNDLE = [
  "qkit: 1",
  "bundle: pair",
  "params:",
  "  server: { type: name, default: keys }",
  "  peers: { type: list<qube>, default: [work, mail] }",
  "  mark: { type: tag, default: signer }",
  "  title: { type: string, default: work }",
  "qubes:",
  "  ${server}:",
  "    class: AppVM",
  "policy:",
  "  - file: pair",
  "    rules: |",
  "      qubes.Gpg2  *  @tag:${mark}  ${server}  allow",
  "expect:",
  "  - qubes.Gpg2 ${server} @default => deny",
  "",
].join("\n");

const STACK = [
  "qkit: 1",
  "stack: s",
  "use:",
  "  - bundle: ./pair.qubes.yaml",
  "    as: p",
  "    with:",
  "      server: keys",
  "      peers: [work, 'mail']",
  "      mark: \"signer\"",
  "      title: work",
  "qubes:",
  "  work:",
  "    class: AppVM",
  "    tags: [signer]",
  "expect:",
  "  - qubes.Gpg2 work @default => allow keys",
  "  - qubes.OpenInVM work -> @dispvm:work => allow @dispvm:work",
  "  - \"qubes.Filecopy work mail => ask mail\"",
  "  - call: 'qubes.Filecopy work -> mail'",
  "    decision: ask",
  "    target: mail",
  "    targets_include: [mail, \"work\"]",
  "    targets_exact: [work]",
  "  - call: \"qubes.Filecopy \\u0077ork -> mail\"",
  "    decision: deny",
  "",
].join("\n");

const files: Record<string, string> = { "/w/s.qubes.yaml": STACK, "/w/pair.qubes.yaml": BUNDLE };
const readFile = (p: string) => files[p];

/** `line:column` (1-based line) of each occurrence in `path`. */
function places(path: string, kind: "qube" | "tag", name: string): string[] {
  const a = analyzeTemplate("/w/s.qubes.yaml", STACK, { readFile });
  const text = files[path]!;
  return templateOccurrences(a, kind, name, readFile)
    .filter((o) => o.path === path)
    .map((o) => {
      expect(text.slice(o.span.start, o.span.end)).toBe(name);
      const before = text.slice(0, o.span.start);
      return `${before.split("\n").length}:${o.span.start - before.lastIndexOf("\n") - 1}${o.declaration ? " decl" : ""}`;
    });
}

describe("templateOccurrences", () => {
  it.each([
    // [name, kind, file, expected places]: every place the name is written, but the `string`
    // parameter `title` (10:13 and the bundle's 7:34) and the escaped call (line 24), which
    // cannot be mapped character by character.
    ["work", "qube", "/w/s.qubes.yaml", ["8:14", "12:2 decl", "16:15", "17:19", "17:35", "17:57", "18:20", "19:26", "22:29", "23:20"]],
    ["work", "qube", "/w/pair.qubes.yaml", ["5:39"]],
    ["mail", "qube", "/w/s.qubes.yaml", ["8:21", "18:25", "18:37", "19:34", "21:12", "22:22"]],
    ["mail", "qube", "/w/pair.qubes.yaml", ["5:45"]],
    ["keys", "qube", "/w/s.qubes.yaml", ["7:14", "16:38"]],
    ["keys", "qube", "/w/pair.qubes.yaml", ["4:33"]],
    ["signer", "tag", "/w/s.qubes.yaml", ["9:13", "14:11"]],
    ["signer", "tag", "/w/pair.qubes.yaml", ["6:30"]],
  ] as const)("%s (%s) in %s", (name, kind, path, expected) => {
    expect(places(path, kind, name)).toEqual(expected);
  });

  it("finds the symbol at each occurrence (rename and references can start anywhere)", () => {
    for (const [path, text] of Object.entries(files)) {
      const a = analyzeTemplate(path, text, { readFile });
      for (const [kind, name] of [["qube", "work"], ["qube", "mail"], ["qube", "keys"], ["tag", "signer"]] as const) {
        for (const o of templateOccurrences(a, kind, name, readFile).filter((x) => x.path === path)) {
          expect(templateSymbolAt(a, o.span.start + 1), `${path}@${o.span.start}`).toMatchObject({ kind, name });
        }
      }
    }
  });

  it("never throws, and each occurrence is the name itself, on any edit of the stack", () => {
    const edit = fc.tuple(fc.nat(STACK.length), fc.nat(8), fc.oneof(fc.constantFrom("work", " ", "'", '"', "\n", "=>", "->", "@dispvm:", "- ", ": ", "[", "${p}"), fc.string({ maxLength: 4 })));
    fc.assert(
      fc.property(fc.array(edit, { maxLength: 4 }), (edits) => {
        let text = STACK;
        for (const [at, del, ins] of edits) text = text.slice(0, Math.min(at, text.length)) + ins + text.slice(Math.min(at, text.length) + del);
        const all = { ...files, "/w/s.qubes.yaml": text };
        const a = analyzeTemplate("/w/s.qubes.yaml", text, { readFile: (p) => all[p] });
        for (const [kind, name] of [["qube", "work"], ["qube", "mail"], ["tag", "signer"]] as const) {
          for (const o of templateOccurrences(a, kind, name, (p) => all[p])) expect(all[o.path]!.slice(o.span.start, o.span.end)).toBe(name);
        }
        for (const s of templateWorkspaceSymbols([a], "", 100)) expect(s.span.start <= s.span.end && s.span.end <= all[s.path]!.length).toBe(true);
      }),
      { numRuns: 80 },
    );
  });
});

describe("templateWorkspaceSymbols", () => {
  it("lists declared qubes, bundle instances' qubes at their `with:` value, and the blocks' rules", () => {
    const a = analyzeTemplate("/w/s.qubes.yaml", STACK, { readFile });
    const got = templateWorkspaceSymbols([a, a], "").map((s) => `${s.kind} ${s.name} ${s.path}:${files[s.path]!.slice(0, s.span.start).split("\n").length}`);
    expect(got).toEqual(["rule qubes.Gpg2 * /w/pair.qubes.yaml:14", "qube keys /w/s.qubes.yaml:7", "qube work /w/s.qubes.yaml:12"]);
    expect(templateWorkspaceSymbols([a], "kys").map((s) => s.name)).toEqual(["keys"]);
    expect(templateWorkspaceSymbols([a], "", 1)).toHaveLength(1);
  });
});

describe("a qube a bundle instance declares, from an expect entry", () => {
  it("goes to the bundle's `${param}` key and says so in the hover", () => {
    const a = analyzeTemplate("/w/s.qubes.yaml", STACK, { readFile });
    const at = STACK.indexOf("allow keys") + 7;
    expect(templateDefinition(a, at)).toEqual([{ path: "/w/pair.qubes.yaml", span: { start: BUNDLE.indexOf("${server}:"), end: BUNDLE.indexOf("${server}:") + 9 } }]);
    expect(hoverTemplate(a, at)?.markdown.split("\n")[0]).toBe("**keys** · AppVM declared by a bundle instance (`pair.qubes.yaml`)");
  });
});
