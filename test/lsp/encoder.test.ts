/**
 * The stdio writer's encoder (`lsp/src/encoder.ts`): whatever the message, its bytes parse to the
 * value `JSON.stringify` gives, also when diagnostics objects are encoded again from the cache.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cachingJsonEncoder, encodeMessage, encodeMessageBytes } from "@qubes-kit/lsp";

const text = fc.string({ unit: "binary", maxLength: 12 });
const range = fc.record({ start: fc.record({ line: fc.nat(), character: fc.nat() }), end: fc.record({ line: fc.nat(), character: fc.nat() }) });
const diagnostic = fc.record(
  {
    range,
    message: text,
    severity: fc.integer({ min: 1, max: 4 }),
    code: text,
    source: fc.constant("qubes-policy"),
    data: fc.option(fc.record({ removable: fc.boolean() }), { nil: undefined }),
    relatedInformation: fc.option(fc.array(fc.record({ location: fc.record({ uri: text, range }), message: text }), { maxLength: 2 }), { nil: undefined }),
  },
  { requiredKeys: ["range", "message"] },
);
const publish = fc.record({
  jsonrpc: fc.constant("2.0"),
  method: fc.constant("textDocument/publishDiagnostics"),
  params: fc.record({ uri: text, version: fc.option(fc.integer(), { nil: undefined }), diagnostics: fc.array(diagnostic, { maxLength: 6 }) }, { requiredKeys: ["uri", "diagnostics"] }),
});
// Anything else, including near misses of the shape above (extra keys, odd diagnostics).
const other = fc.oneof(
  fc.record({ jsonrpc: fc.constant("2.0"), id: fc.nat(), result: fc.jsonValue() }),
  fc.record({ jsonrpc: fc.constant("2.0"), method: fc.constant("textDocument/publishDiagnostics"), params: fc.jsonValue() }),
  fc.record({ jsonrpc: fc.constant("2.0"), method: fc.constant("textDocument/publishDiagnostics"), params: fc.record({ uri: text, diagnostics: fc.array(fc.jsonValue(), { maxLength: 3 }), extra: fc.option(fc.nat(), { nil: undefined }) }) }),
);

const parsedLikeStringify = (m: unknown) => JSON.parse(JSON.stringify(m));

describe("encoder", () => {
  it("encodes every message to what JSON.stringify means, cached diagnostics included", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(publish, other), { minLength: 1, maxLength: 4 }), (messages) => {
        for (const m of messages) {
          expect(JSON.parse(encodeMessage(m as never))).toEqual(parsedLikeStringify(m));
          // A second time, from the cache, and the same diagnostics in another message.
          expect(JSON.parse(encodeMessageBytes(m as never).toString("utf8"))).toEqual(parsedLikeStringify(m));
          const p = (m as { params?: { diagnostics?: unknown } }).params;
          if (p && Array.isArray(p.diagnostics)) {
            const again = { ...(m as object), params: { ...p, diagnostics: [...p.diagnostics].reverse() } };
            expect(JSON.parse(encodeMessage(again as never))).toEqual(parsedLikeStringify(again));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("writes UTF-8 bytes through the content type encoder", async () => {
    const m = { jsonrpc: "2.0", method: "textDocument/publishDiagnostics", params: { uri: "file:///ü", version: 3, diagnostics: [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } }, message: "é \u2028 😀" }] } };
    const bytes = await cachingJsonEncoder.encode(m as never, { charset: "utf-8" });
    expect(JSON.parse(Buffer.from(bytes).toString("utf8"))).toEqual(m);
  });
});
