/**
 * Typed arrays carved out of shared buffers, for the tables a stream of
 * requests builds as it goes (match vectors, packed rule orders).
 *
 * A typed array of more than a few dozen bytes gets a buffer of its own
 * outside V8's heap: tens of microseconds each (zero-filled memory, external
 * memory accounting, and the garbage collections that accounting triggers),
 * more than deciding a request. A view on a buffer that already exists costs
 * about as much as a small object. A chunk stays alive as long as one of its
 * views does; the tables are kept for the policy's life (or a bounded memo's),
 * so little is ever wasted.
 */

/** The size of a chunk (bytes); an array larger than a quarter of it gets a buffer of its own. */
const CHUNK = 1 << 20;

/** Hands out views on shared chunks, 8-byte aligned. */
export class Slab {
  private buf = new ArrayBuffer(0);
  private off = 0;

  private take(bytes: number): number {
    const at = (this.off + 7) & ~7;
    if (at + bytes > this.buf.byteLength) {
      this.buf = new ArrayBuffer(CHUNK);
      this.off = bytes;
      return 0;
    }
    this.off = at + bytes;
    return at;
  }

  /** A zero-filled `Uint8Array` of `n` entries. */
  u8(n: number): Uint8Array {
    if (n * 4 > CHUNK) return new Uint8Array(n);
    const at = this.take(n);
    return new Uint8Array(this.buf, at, n);
  }

  /** A zero-filled `Int32Array` of `n` entries. */
  i32(n: number): Int32Array {
    if (n * 16 > CHUNK) return new Int32Array(n);
    const at = this.take(n * 4);
    return new Int32Array(this.buf, at, n);
  }

  /** A zero-filled `Uint32Array` of `n` entries. */
  u32(n: number): Uint32Array {
    if (n * 16 > CHUNK) return new Uint32Array(n);
    const at = this.take(n * 4);
    return new Uint32Array(this.buf, at, n);
  }
}

/** The slab of the stream's tables (one per process: views never move, so sharing is safe). */
export const slab = new Slab();
