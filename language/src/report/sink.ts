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
  private buffer = "";

  constructor(
    private readonly sink: ReportSink,
    private readonly size: number = CHUNK_SIZE,
  ) {}

  /** Adds text (handed on once the chunk is full). */
  write(s: string): void {
    this.buffer += s;
    if (this.buffer.length >= this.size) this.flush();
  }

  /** Hands on what is buffered. Call once at the end. */
  flush(): void {
    if (this.buffer.length === 0) return;
    const chunk = this.buffer;
    this.buffer = "";
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
