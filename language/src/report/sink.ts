/**
 * Streaming a report: formats write their text piece by piece into a
 * {@link ChunkWriter}, which hands it on in large chunks, so that a report of
 * a huge policy is never held as one string (nor as one tree of objects).
 */

/** Where the text of a streamed report goes, in order. */
export type ReportSink = (chunk: string) => void;

/** The default chunk size of a {@link ChunkWriter}, in UTF-16 code units. */
export const CHUNK_SIZE = 1 << 16;

/** Collects small pieces of text and hands them to a sink in chunks of about `size` code units. */
export class ChunkWriter {
  // The pieces since the last hand-over, joined once when handed on: one flat string per chunk,
  // where appending to one string made a tree of every piece to flatten at the end.
  private parts: string[] = [];
  private length = 0;

  constructor(
    private readonly sink: ReportSink,
    private readonly size: number = CHUNK_SIZE,
  ) {}

  /** Adds text (handed on once the chunk is full). */
  write(s: string): void {
    this.parts.push(s);
    this.length += s.length;
    if (this.length >= this.size) this.flush();
  }

  /** Hands on what is buffered. Call once at the end. */
  flush(): void {
    if (this.length === 0) {
      this.parts.length = 0;
      return;
    }
    const chunk = this.parts.length === 1 ? this.parts[0]! : this.parts.join("");
    this.parts = [];
    this.length = 0;
    this.sink(chunk);
  }
}

/** Runs a streaming formatter and returns its whole text (for small reports and tests). */
export function collect(write: (out: ChunkWriter) => void): string {
  const parts: string[] = [];
  const out = new ChunkWriter((c) => parts.push(c));
  write(out);
  out.flush();
  return parts.join("");
}
