/**
 * A growing (or handed-over) UTF-8 output buffer: what the stream's
 * decisions are written into, piece by piece, with no string of a line ever
 * built. Pure (no Node `Buffer`): the owner hands full buffers to its output.
 */
import { utf8Write } from "./utf8.js";

/** Called when the buffer cannot take `need` more bytes: hand over `buf[0, off)` and set a new `buf` (and `off` to 0). */
export type HandOver = (out: ByteOutput, need: number) => void;

/**
 * UTF-8 bytes written at `off` into `buf`. Without a hand-over it grows;
 * with one, a full buffer is handed over (between two pieces, never inside
 * a character) and writing goes on in the next.
 */
export class ByteOutput {
  buf: Uint8Array;
  off = 0;
  /** How many times a buffer was handed over (a caller can tell whether what it wrote since is still in `buf`). */
  handed = 0;

  constructor(size: number, private readonly handOver?: HandOver) {
    this.buf = new Uint8Array(size);
  }

  /** Makes room for `n` more bytes. */
  room(n: number): void {
    if (this.off + n > this.buf.length) this.makeRoom(n);
  }

  private makeRoom(n: number): void {
    if (this.handOver !== undefined && this.off > 0) {
      this.handOver(this, n);
      this.handed++;
    }
    if (this.off + n > this.buf.length) {
      const b = new Uint8Array(Math.max(this.buf.length * 2, this.off + n));
      b.set(this.buf.subarray(0, this.off));
      this.buf = b;
    }
  }

  /** Appends bytes. */
  bytes(b: Uint8Array): void {
    const n = b.length;
    if (this.off + n > this.buf.length) this.makeRoom(n);
    const buf = this.buf;
    let off = this.off;
    // Only the shortest pieces are copied by hand: from 16 bytes on, `set` costs fewer instructions
    // (measured: instruction counts of the stream, `bench/RESULTS.md`).
    if (n < 16) for (let i = 0; i < n; i++) buf[off++] = b[i]!;
    else {
      buf.set(b, off);
      off += n;
    }
    this.off = off;
  }

  /** Appends `b[from, to)`. */
  range(b: Uint8Array, from: number, to: number): void {
    const n = to - from;
    if (this.off + n > this.buf.length) this.makeRoom(n);
    const buf = this.buf;
    let off = this.off;
    // Likewise: a run of 16 bytes or more is copied natively, even at the price of a `subarray` view.
    if (n < 16) for (let i = from; i < to; i++) buf[off++] = b[i]!;
    else {
      buf.set(b.subarray(from, to), off);
      off += n;
    }
    this.off = off;
  }

  /** Appends text as UTF-8. */
  text(s: string): void {
    this.room(s.length * 3);
    this.off = utf8Write(s, this.buf, this.off);
  }

  /** Appends one ASCII byte. */
  byte(c: number): void {
    if (this.off === this.buf.length) this.makeRoom(1);
    this.buf[this.off++] = c;
  }

  /** Appends a non-negative whole number in decimal (as `JSON.stringify` writes it). */
  uint(v: number): void {
    if (!(v >= 0 && v <= 0x7fffffff && (v | 0) === v)) {
      this.text(String(v));
      return;
    }
    let digits = 1;
    for (let x = v; x >= 10; x = (x / 10) | 0) digits++;
    this.room(digits);
    let at = this.off + digits;
    this.off = at;
    let x = v;
    do {
      this.buf[--at] = 48 + (x % 10);
      x = (x / 10) | 0;
    } while (x > 0);
  }
}
