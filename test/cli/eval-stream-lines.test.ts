/**
 * `qkit policy eval --requests` reads each request line as `JSON.parse`
 * reads it, however it is spelled: the stream reads the usual flat form
 * itself and hands anything else to `JSON.parse` (with `--echo` it always
 * uses `JSON.parse`, so each line without `--echo` must equal the echoed
 * line less its `request`). Spellings: any key order, JSON whitespace
 * anywhere, `null` members, escapes, duplicate and unknown keys, numbers,
 * nesting, and broken lines; and the commonest spelling (the four keys in
 * order, as Python's `json.dumps` and `JSON.stringify` write them, read by a
 * path of its own) with every kind of value and near misses of it.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const POLICY = [
  "qubes.A * @anyvm @anyvm ask default_target=q1",
  "qubes.A +x q0 @anyvm allow target=q2",
  "qubes.B * @tag:t @anyvm allow",
  "qubes.B * @anyvm @dispvm deny notify=no",
  "* * @anyvm @anyvm deny",
].join("\n");
const SYSTEM = {
  domains: Object.fromEntries(
    ["dom0", "q0", "q1", "q2", "q3"].map((n, i) => [
      n,
      { type: i === 0 ? "AdminVM" : "AppVM", tags: i === 2 ? ["t"] : [], template_for_dispvms: i === 3, default_dispvm: "q3", power_state: "Running", uuid: `00000000-0000-0000-0000-00000000000${i}`, internal: null },
    ]),
  ),
};

const space = fc.constantFrom("", "", " ", "  ", "\t", "\r", "\n ");
/** A JSON string literal for `s`: plain, or with a character escaped. */
const literal = (s: string) => fc.constantFrom(JSON.stringify(s), s.length ? `"\\u${s.charCodeAt(0).toString(16).padStart(4, "0")}${s.slice(1)}"` : '""', JSON.stringify(s).replace(/^"q/, '"\\u0071'));
const member = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom("service", "service", "source", "source", "argument", "target", "requested_source"), fc.constantFrom("qubes.A", "qubes.B", "qubes.A+x", "q0", "q1", "q2", "+x", "+", "", "@dispvm", "dom0")).chain(([k, v]) => fc.tuple(fc.constant(k), fc.oneof({ weight: 5, arbitrary: fc.constant(JSON.stringify(v)) }, { weight: 1, arbitrary: literal(v) }, { weight: 1, arbitrary: fc.constantFrom("null", "1", "[]", "{}", "true", '"a\\"b"') }))) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("other", "servic\\u0065", "Service"), fc.constantFrom('"x"', "2", "null")) },
);
/** A value for the four-key spelling: plain, escaped, a control or non-ASCII character, a quote, or not a string. */
const value = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("qubes.A", "qubes.B", "q0", "q1", "q2", "+x", "+", "", "@dispvm", "dom0", "a-name-longer-than-13") },
  { weight: 1, arbitrary: fc.constantFrom("q\u0001", "q\u00e9", "q\u007f", "q\t", 'q"', "q\\") },
);
const canonical = fc
  .tuple(value, value, value, value, fc.constantFrom(" ", ""), fc.constantFrom(" ", ""), fc.constantFrom("", "", "", " ", "  ", "x"), fc.nat(20))
  .chain(([service, argument, source, target, colon, comma, extra, raw]) => {
    const members = [["service", service], ["argument", argument], ["source", source], ["target", target]] as const;
    // Mostly each value as JSON writes it; sometimes one of them raw (a control character or quote as is), or not a string.
    const quoted = members.map(([k, v], i) => `"${k}":${colon}${raw === i ? `"${v}"` : raw === 4 + i ? "null" : JSON.stringify(v)}`);
    const text = `{${quoted.join(`,${comma}`)}}`;
    return fc.constantFrom(text, text, text, extra + text, text + extra, text.replace(`,${comma}`, `,${comma}${extra}`));
  });
const line = fc.oneof(
  { weight: 4, arbitrary: canonical },
  { weight: 8, arbitrary: fc.tuple(fc.array(fc.tuple(space, member, space, space), { maxLength: 6 }), space).map(([ms, end]) => `{${ms.map(([a, [k, v], b, c]) => `${a}"${k}"${b}:${c}${v}`).join(",")}${end}}`) },
  { weight: 1, arbitrary: fc.constantFrom('{"service":"qubes.A","source":"q0",}', '{"service":"qubes.A" "source":"q0"}', '{"service":"qubes.A","source":"q0"} {}', '{"service":"qubes.A","source":"q0"', "[1]", "null", '"x"', "{}", '{"service":"qubes.A","source":"q\u0001"}', '{"service":"qubes.A","source":"q0","target":"q\u00e9"}') },
);

describe("qkit policy eval --requests reads request lines", () => {
  it("as JSON.parse does, however they are spelled (the same answers as with --echo, less the request)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qkit-stream-lines-"));
    mkdirSync(join(dir, "policy.d"));
    writeFileSync(join(dir, "policy.d", "30-user.policy"), POLICY + "\n");
    writeFileSync(join(dir, "system.json"), JSON.stringify(SYSTEM));
    const args = ["policy", "eval", "--policy-dir", join(dir, "policy.d"), "--system", join(dir, "system.json"), "--requests", join(dir, "requests.jsonl")];
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 30 }), async (lines) => {
          // A line break inside a line would make two lines: the test's own lines keep them out.
          const text = lines.map((l) => l.replace(/[\r\n]/g, " ")).join("\n") + "\n";
          writeFileSync(join(dir, "requests.jsonl"), text);
          const plain = await runQkit(args, { cwd: dir });
          const echoed = await runQkit([...args, "--echo"], { cwd: dir });
          expect(plain.code).toBe(echoed.code);
          const want = echoed.out
            .split("\n")
            .slice(0, -1)
            .map((l) => {
              const o = JSON.parse(l) as Record<string, unknown>;
              delete o["request"];
              return JSON.stringify(o);
            });
          expect(plain.out.split("\n").slice(0, -1)).toEqual(want);
        }),
        { numRuns: 25 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
