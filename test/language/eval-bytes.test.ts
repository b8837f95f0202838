/**
 * `ByteOutput`, what the stream's decisions are written into: text becomes
 * the UTF-8 Node's `Buffer` makes of it (lone surrogates as U+FFFD), numbers
 * the digits `JSON.stringify` writes, and a writer that hands full buffers
 * over gets, chunk after chunk, exactly the bytes a growing one holds, each
 * chunk ending between two pieces (never inside a character).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ByteOutput } from "@qubes-kit/language";

type Piece = { kind: "text"; s: string } | { kind: "bytes"; b: Uint8Array } | { kind: "uint"; v: number } | { kind: "byte"; c: number };

const pieceArb: fc.Arbitrary<Piece> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }).map((s) => ({ kind: "text" as const, s })),
  fc.string({ unit: fc.constantFrom("a", "é", "\ud83d", "\ude00", "😀", "\u0000", "\u07ff", "\u0800", "\uffff"), maxLength: 20 }).map((s) => ({ kind: "text" as const, s })),
  fc.uint8Array({ maxLength: 120 }).map((b) => ({ kind: "bytes" as const, b })),
  fc.oneof(fc.nat(), fc.constantFrom(0, 9, 10, 99, 100, 2 ** 31 - 1, 2 ** 31, 2 ** 53)).map((v) => ({ kind: "uint" as const, v })),
  fc.integer({ min: 0, max: 127 }).map((c) => ({ kind: "byte" as const, c })),
);

function put(out: ByteOutput, p: Piece): void {
  if (p.kind === "text") out.text(p.s);
  else if (p.kind === "bytes") out.bytes(p.b);
  else if (p.kind === "uint") out.uint(p.v);
  else out.byte(p.c);
}

function expected(p: Piece): Buffer {
  if (p.kind === "text") return Buffer.from(p.s, "utf8");
  if (p.kind === "bytes") return Buffer.from(p.b);
  if (p.kind === "uint") return Buffer.from(JSON.stringify(p.v));
  return Buffer.from([p.c]);
}

describe("ByteOutput", () => {
  it("writes text as UTF-8, numbers as JSON digits, and bytes as they are", () => {
    fc.assert(
      fc.property(fc.array(pieceArb, { maxLength: 30 }), (pieces) => {
        const out = new ByteOutput(4);
        for (const p of pieces) put(out, p);
        expect(Buffer.from(out.buf.subarray(0, out.off))).toEqual(Buffer.concat(pieces.map(expected)));
      }),
    );
  });

  it("hands full buffers over between pieces: the chunks are the bytes a growing buffer holds", () => {
    fc.assert(
      fc.property(fc.array(pieceArb, { maxLength: 30 }), fc.integer({ min: 1, max: 64 }), (pieces, size) => {
        const chunks: Buffer[] = [];
        const ends: number[] = [];
        const out = new ByteOutput(size, (o) => {
          chunks.push(Buffer.from(o.buf.subarray(0, o.off)));
          o.buf = new Uint8Array(size);
          o.off = 0;
        });
        let total = 0;
        for (const p of pieces) {
          const before = out.handed;
          put(out, p);
          total += expected(p).length;
          // A hand-over happens before a piece, so the bytes handed over end where a piece ended.
          if (out.handed !== before) ends.push(chunks.reduce((n, c) => n + c.length, 0));
        }
        chunks.push(Buffer.from(out.buf.subarray(0, out.off)));
        const all = Buffer.concat(chunks);
        expect(all).toEqual(Buffer.concat(pieces.map(expected)));
        expect(all.length).toBe(total);
        const bounds = new Set([0]);
        let at = 0;
        for (const p of pieces) bounds.add((at += expected(p).length));
        for (const e of ends) expect(bounds.has(e)).toBe(true);
      }),
    );
  });
});
