/**
 * The files a `qkit template` command reads (the stack, its includes and bundles, a saved plan,
 * a system model), each read once per run and never without bound:
 *
 * - once: a stack given as a pipe (`<(…)`, `/dev/stdin`) has its text only the first time it is
 *   read; a second read would see an empty file and report the user's stack as empty;
 * - bounded: an endless or huge input (`/dev/zero`, a mistyped multi-gigabyte file) stops at
 *   {@link MAX_INPUT_BYTES} and is said as such, never read until memory runs out.
 */
import { isUtf8 } from "node:buffer";
import * as fs from "node:fs";
import { findUtf8Problem, type Utf8Problem } from "@qubes-kit/language";
import type { CliIO } from "./command.js";
import { noteRead } from "./inputs-read.js";

/** The most a stack, include, bundle, saved plan or system model file may hold. */
export const MAX_INPUT_BYTES = 256 * 1024 * 1024;

/** What reading a file gave: its text, or why not (the OS's error, a directory, too large). */
export type ReadOutcome = { text: string; notUtf8?: Utf8Problem } | { error: NodeJS.ErrnoException; tooLarge?: boolean };

/**
 * Reads `abs` as UTF-8, at most `max` bytes: whatever kind of file it is (a pipe and a device
 * included), in one pass; a directory is the OS's EISDIR.
 */
export function readBounded(abs: string, max = MAX_INPUT_BYTES): ReadOutcome {
  let fd: number;
  try {
    fd = fs.openSync(abs, "r");
  } catch (e) {
    return { error: e as NodeJS.ErrnoException };
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isFile()) noteRead(abs);
    if (st.isDirectory()) return { error: Object.assign(new Error(`EISDIR: illegal operation on a directory, read`), { code: "EISDIR" }) };
    if (st.isFile() && st.size > max) return { error: Object.assign(new Error("too large"), { code: "EFBIG" }), tooLarge: true };
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(1 << 20, max + 1 - total));
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
          // A non-blocking pipe with nothing yet: wait a moment for its writer.
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
          continue;
        }
        throw e;
      }
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > max) return { error: Object.assign(new Error("too large"), { code: "EFBIG" }), tooLarge: true };
    }
    const bytes = Buffer.concat(chunks, total);
    // Bytes that are not UTF-8 are read as U+FFFD: where they are is kept, for the checker to say it.
    return isUtf8(bytes) ? { text: bytes.toString("utf8") } : { text: bytes.toString("utf8"), notUtf8: findUtf8Problem(bytes)! };
  } catch (e) {
    return { error: e as NodeJS.ErrnoException };
  } finally {
    fs.closeSync(fd);
  }
}

/** The inputs of one run, by absolute path: each read once ({@link readBounded}). */
export class InputFiles {
  private readonly read = new Map<string, ReadOutcome>();

  /** The outcome of reading `abs` (the first read's, whenever asked). */
  outcome(abs: string): ReadOutcome {
    let r = this.read.get(abs);
    if (!r) this.read.set(abs, (r = readBounded(abs)));
    return r;
  }

  /** The text of `abs`, or `undefined` when it cannot be read. */
  text(abs: string): string | undefined {
    const r = this.outcome(abs);
    return "text" in r ? r.text : undefined;
  }
}

const perRun = new WeakMap<CliIO, InputFiles>();

/** The inputs of the command running with `io` (one cache per run). */
export function inputsOf(io: CliIO): InputFiles {
  let f = perRun.get(io);
  if (!f) perRun.set(io, (f = new InputFiles()));
  return f;
}
