/**
 * Property tests of the template front end: the checker never throws (any
 * bytes, any YAML, random edits of a real stack), its diagnostics always have
 * valid positions, the model exists exactly when no error does, literal
 * policy blocks map character for character, expectations and firewall
 * rules round-trip.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { stringify } from "yaml";
import { describe, expect, it } from "vitest";
import {
  checkStack,
  computeLineStarts,
  formatExpectation,
  normalizeFirewallRule,
  parseExpectation,
  parseStackText,
  policyToSource,
  type Expectation,
  type StackCheckResult,
} from "@qubes-kit/language";

const base = fileURLToPath(new URL("../fixtures/template/check/clean-machine/", import.meta.url));
const MAIN = readFileSync(`${base}main.qubes.yaml`, "utf8");
const BUNDLE = readFileSync(`${base}bundles/key-holder.qubes.yaml`, "utf8");

function checkTexts(main: string, bundle = BUNDLE): StackCheckResult {
  const files = new Map([
    ["/m/main.qubes.yaml", main],
    ["/m/bundles/key-holder.qubes.yaml", bundle],
  ]);
  return checkStack({ readFile: (p) => files.get(p) }, "/m/main.qubes.yaml");
}

/** Every diagnostic sits inside its file, on the line it names; the model exists iff no error. */
function wellFormed(r: StackCheckResult): void {
  for (const d of r.diagnostics) {
    const doc = r.documents.get(d.file);
    expect(doc, `${d.code} names a file that was read`).toBeDefined();
    const len = doc!.text.length;
    expect(d.span.start).toBeGreaterThanOrEqual(0);
    expect(d.span.end).toBeGreaterThanOrEqual(d.span.start);
    expect(d.span.end).toBeLessThanOrEqual(len);
    const starts = computeLineStarts(doc!.text);
    expect(starts[d.line - 1]).toBeLessThanOrEqual(d.span.start);
    expect(d.code).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
    expect(d.message).not.toContain("\n");
  }
  expect(r.model === undefined).toBe(r.diagnostics.some((d) => d.severity === "error"));
}

const yamlish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom("qkit", "stack", "qubes", "class", "AppVM", "DispVM", "template", "netvm", "none", "default", "${p}", "yes", "policy", "rules", "memory", "features", "use", "bundle", "include", "x.qubes.yaml"),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.string(),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom("qkit", "stack", "bundle", "qubes", "class", "template", "netvm", "label", "memory", "policy", "file", "rules", "expect", "use", "with", "as", "params", "features", "tags", "firewall", "devices", "pci", "x", "${p}"), tie("value"), { maxKeys: 5 }),
  ),
})).value;

describe("checkStack never throws", () => {
  it("on any string", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 300 }), (s) => wellFormed(checkTexts(s))), { numRuns: 300 });
  });

  it("on any YAML value (stack or bundle position)", () => {
    fc.assert(
      fc.property(yamlish, yamlish, (a, b) => {
        wellFormed(checkTexts(stringify(a)));
        wellFormed(checkTexts(stringify({ qkit: 1, stack: "s", use: [{ bundle: "bundles/key-holder.qubes.yaml", as: "i", with: b }] }), stringify(a)));
      }),
      { numRuns: 200 },
    );
  });

  it("on random edits of a real stack and its bundle", () => {
    const edit = fc.record({ at: fc.nat(), del: fc.nat({ max: 12 }), ins: fc.string({ maxLength: 8, unit: fc.constantFrom(" ", "\n", ":", "-", "{", "}", "[", "]", "$", "#", "&", "*", "!", "|", "a", "1", "'", '"', "\t") }) });
    const apply = (text: string, e: { at: number; del: number; ins: string }) => {
      const at = e.at % (text.length + 1);
      return text.slice(0, at) + e.ins + text.slice(at + e.del);
    };
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), fc.boolean(), (edits, inBundle) => {
        const text = edits.reduce(apply, inBundle ? BUNDLE : MAIN);
        wellFormed(inBundle ? checkTexts(MAIN, text) : checkTexts(text));
      }),
      { numRuns: 300 },
    );
  });
});

describe("literal policy blocks", () => {
  const line = fc.stringMatching(/^[a-zA-Z0-9.*@:+=_ -]{0,30}$/).map((s) => s.trimEnd());
  it("map every character back to the same character of the YAML", () => {
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 8 }), fc.integer({ min: 2, max: 8 }), (lines, indent) => {
        const pad = " ".repeat(indent);
        const body = lines.map((l) => (l === "" ? "" : pad + l)).join("\n");
        const text = `qkit: 1\nstack: s\npolicy:\n  - file: f\n    rules: |\n${body}\n`;
        const r = checkTexts(text);
        const block = r.policyBlocks[0];
        if (!block || !block.exact) return;
        for (let i = 0; i < block.text.length; i++) {
          if (block.text[i] === "\n") continue;
          expect(text[policyToSource(block, i)]).toBe(block.text[i]);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("round trips", () => {
  const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
  const expectation: fc.Arbitrary<Expectation> = fc
    .record({
      service: fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9._-]{0,15}$/),
      argument: fc.oneof(fc.constant(""), fc.stringMatching(/^\+[a-zA-Z0-9._-]{0,8}$/)),
      source: fc.oneof(name, fc.constant("@adminvm")),
      target: fc.oneof(name, fc.constantFrom("@default", "@dispvm", "@adminvm"), name.map((n) => `@dispvm:${n}`)),
      decision: fc.constantFrom("allow", "ask", "deny") as fc.Arbitrary<Expectation["decision"]>,
      target_is: fc.option(fc.oneof(name, name.map((n) => `@dispvm:${n}`)), { nil: undefined }),
    })
    .map((e) => {
      const out: Expectation = { service: e.service, argument: e.argument, source: e.source, target: e.target, decision: e.decision };
      if (e.target_is !== undefined && e.decision !== "deny") out.target_is = e.target_is;
      return out;
    });

  it("parseExpectation(formatExpectation(e)) = e", () => {
    fc.assert(
      fc.property(expectation, (e) => {
        expect(parseExpectation(formatExpectation(e))).toEqual({ ok: true, expectation: e });
      }),
    );
  });

  const opt = fc.constantFrom(
    "action=accept",
    "action=drop",
    "proto=tcp",
    "proto=udp",
    "proto=icmp",
    "dstports=443",
    "dstports=1000-2000",
    "dsthost=example.org",
    "dsthost=10.1.2.3",
    "dst4=10.0.0.0/8",
    "dst6=fe80::1/64",
    "icmptype=3",
    "specialtarget=dns",
    "expire=1700000000",
  );
  it("firewall normalisation is idempotent and order-independent", () => {
    fc.assert(
      fc.property(fc.uniqueArray(opt, { maxLength: 5, selector: (o) => o.split("=")[0] }), fc.boolean(), (opts, reversed) => {
        const a = normalizeFirewallRule(opts.join(" "));
        const b = normalizeFirewallRule([...opts].reverse().join(" "));
        if (!a.ok) return;
        expect(normalizeFirewallRule(a.rule)).toEqual(a);
        if (!reversed) return;
        expect(b.ok).toBe(true);
        if (b.ok) expect(b.rule).toBe(a.rule);
      }),
    );
  });
});

describe("YAML parser messages", () => {
  it("are one short printable line whatever bytes the file holds", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 400 }), fc.constantFrom("", "qkit: 1\nstack: x\n", "qubes:\n  a: ", "- "), (junk, lead) => {
        const doc = parseStackText(lead + junk, "/s.qubes.yaml");
        for (const d of doc.diagnostics) {
          expect(d.message.length).toBeLessThanOrEqual(160);
          expect(/[\u0000-\u001f\u007f-\u009f]/.test(d.message)).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("messages quote values on one line", () => {
  // Found by the random-edit property (seed -1438197188): a multi-line plain scalar was quoted raw.
  it.each([
    ["qkit: 1\n }\nstack: s\n", "unsupported format version: 1\\n }"],
    ["qkit: 2\nstack: s\nqubes:\n  a:\n    class: AppVM\n    label: \"re\\td\"\n", "re\\td"],
  ])("%j", (text, quoted) => {
    const r = checkTexts(text);
    wellFormed(r);
    expect(r.diagnostics.map((d) => d.message).join(" | ")).toContain(quoted);
  });
});
