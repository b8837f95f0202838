/**
 * The playground's pure modules in Node (no browser needed): the share-link codec and the
 * JSON error locator of the system-model editor.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { jsonErrorOffset } from "../../../playground/src/json-offset.js";
import { decodeState, encodeState, fromBase64Url, toBase64Url, type PlaygroundState } from "../../../playground/src/share.js";

const state = fc.record({
  files: fc.array(fc.record({ name: fc.string(), text: fc.string({ unit: "grapheme" }) }), { minLength: 1, maxLength: 4 }),
  system: fc.string({ unit: "grapheme" }),
});

describe("share links", () => {
  it("decode(encode(state)) is the state, and the fragment is URL-safe", async () => {
    await fc.assert(
      fc.asyncProperty(state, async (s: PlaygroundState) => {
        const fragment = await encodeState(s);
        expect(fragment).toMatch(/^v1=[A-Za-z0-9_-]*$/);
        expect(await decodeState(`#${fragment}`)).toEqual({ state: s });
      }),
      { numRuns: 60 },
    );
  });

  it("compresses a real policy", async () => {
    const text = "qubes.Filecopy  *  work  personal  allow\n".repeat(200);
    const fragment = await encodeState({ files: [{ name: "30-user.policy", text }], system: "{}" });
    expect(fragment.length).toBeLessThan(text.length / 10);
  });

  it("base64url round-trips any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(fromBase64Url(toBase64Url(b))).toEqual(b);
      }),
    );
  });

  const cases: Array<[string, string]> = [
    ["", "empty"],
    ["#", "empty"],
    ["#other=1", "the link's fragment does not start with v1=: it is not a playground link (the page opened with its example) [link-not-playground]"],
    ["#v1=a+b", "the link's fragment is not base64url: it was cut or changed (the page opened with its example) [link-not-base64url]"],
    ["#v1=A", "the link's fragment is not base64url: it was cut or changed (the page opened with its example) [link-not-base64url]"],
    ["#v1=AAAA", "the link's data does not decompress: it was cut or changed (the page opened with its example) [link-not-deflate]"],
  ];
  it.each(cases)("reads %j as %s", async (fragment, expected) => {
    const r = await decodeState(fragment);
    expect(r).toEqual(expected === "empty" ? { empty: true } : { error: expected });
  });

  it("rejects well-compressed data of the wrong shape, and never throws on any fragment", async () => {
    const deflate = async (text: string) => {
      const out = new Blob([new TextEncoder().encode(text)]).stream().pipeThrough(new CompressionStream("deflate"));
      return `v1=${toBase64Url(new Uint8Array(await new Response(out).arrayBuffer()))}`;
    };
    expect(await decodeState(await deflate("not json"))).toEqual({ error: "the link's data is not JSON: it was cut or changed (the page opened with its example) [link-not-json]" });
    for (const bad of ["{}", '{"files":[],"system":""}', '{"files":[["a",1]],"system":""}', '{"files":[["a","b"]],"system":3}', "null", "[]"]) {
      expect(await decodeState(await deflate(bad))).toEqual({ error: "the link's data has an unknown shape (files and system expected): the page opened with its example [link-bad-shape]" });
    }
    await fc.assert(
      fc.asyncProperty(fc.string(), async (s) => {
        const r = await decodeState(s);
        expect("state" in r || "empty" in r || "error" in r).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe("jsonErrorOffset", () => {
  it("accepts exactly what JSON.parse accepts", () => {
    const jsonish = fc.oneof(
      fc.json(),
      fc.json().map((j) => j.slice(0, Math.floor(j.length / 2))),
      fc.string({ unit: fc.constantFrom(..."{}[]\":,-+.0123456789eEtrufalsn \\/bnu\t\n\u0001x") }),
    );
    fc.assert(
      fc.property(jsonish, (text) => {
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        const at = jsonErrorOffset(text);
        expect(at === undefined).toBe(valid);
        if (at !== undefined) expect(at).toBeGreaterThanOrEqual(0), expect(at).toBeLessThanOrEqual(text.length);
      }),
      { numRuns: 2000 },
    );
  });

  const cases: Array<[string, number | undefined]> = [
    ['{"domains": {}}', undefined],
    ["x{}", 0],
    ['{"a": 1,}', 8],
    ['{"a": 1 "b": 2}', 8],
    ['{"a": tru}', 6 + 3],
    ['{"a": "\\x"}', 8],
    ['{"a": 01}', 7],
    ["[1, 2", 5],
    ["", 0],
    ['{"a":1} x', 8],
  ];
  it.each(cases)("%j goes wrong at %s", (text, offset) => expect(jsonErrorOffset(text)).toBe(offset));
});
