/**
 * `findUtf8Problem` finds the first byte sequence that is not UTF-8 where
 * CPython's strict decoder does, with its reason (the daemon reads every
 * policy file that way and fails on such a file): data-driven from CPython's
 * answers (`fixtures/language/utf8/python-decoder.json`), and a property test
 * against the platform's own strict decoder on random bytes.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { findUtf8Problem } from "@qubes-kit/language";

interface Case {
  hex: string;
  ok: boolean;
  start?: number;
  reason?: string;
  textOffset?: number;
  python?: string;
}
const { cases } = JSON.parse(readFileSync(new URL("../fixtures/language/utf8/python-decoder.json", import.meta.url), "utf8")) as { cases: Case[] };

describe("findUtf8Problem", () => {
  it.each(cases)("$hex: $python", (c) => {
    const p = findUtf8Problem(Buffer.from(c.hex, "hex"));
    if (c.ok) expect(p).toBeUndefined();
    else expect(p && { start: p.offset, reason: p.reason, textOffset: p.textOffset, byte: p.byte }).toEqual({ start: c.start, reason: c.reason, textOffset: c.textOffset, byte: Buffer.from(c.hex, "hex")[c.start!] });
  });

  it("says bytes are UTF-8 exactly when a strict decoder decodes them, and points where the decoded text first differs", () => {
    const strict = new TextDecoder("utf-8", { fatal: true });
    const lossy = new TextDecoder("utf-8");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), fc.string({ unit: "binary", maxLength: 6 }), (raw, prefix) => {
        const bytes = Buffer.concat([Buffer.from(prefix, "utf8"), raw]);
        let valid = true;
        try {
          strict.decode(bytes);
        } catch {
          valid = false;
        }
        const p = findUtf8Problem(bytes);
        expect(p === undefined).toBe(valid);
        // The bytes before the problem decode as they are: the text offset is their UTF-16 length.
        if (p) expect(lossy.decode(bytes.subarray(0, p.offset)).length).toBe(p.textOffset);
      }),
      { numRuns: 2000 },
    );
  });
});
