/**
 * Shared helpers of the simulator tests: a raw Unix-socket client that speaks
 * qubesd's framing, and the comparison of replies up to volatile parts and a
 * consistent renaming of generated identifiers.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

/** A fresh temporary directory. */
export function tmpDir(prefix = "qkit-sim-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Copies a directory tree. */
export function copyDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true });
}

/** Sends one request, half-closes, reads to EOF. */
export function call(socketPath: string, request: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.createConnection(socketPath, () => {
      s.end(Buffer.from(request));
    });
    s.on("data", (d) => chunks.push(d));
    s.on("end", () => resolve(Buffer.concat(chunks)));
    s.on("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNRESET" || e.code === "EPIPE" ? resolve(Buffer.concat(chunks)) : reject(e)));
  });
}

/** One parsed event frame. */
export interface Frame {
  subject: string;
  event: string;
  kwargs: Array<[string, string]>;
  raw: Buffer;
}

/** Splits complete event frames off the front of `buf`; returns the frames and the rest. */
export function takeFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let pos = 0;
  for (;;) {
    if (buf.length - pos < 2) break;
    if (buf[pos] !== 0x31 || buf[pos + 1] !== 0) throw new Error(`not an event frame at ${pos}`);
    const fields: string[] = [];
    let p = pos + 2;
    let complete = false;
    for (;;) {
      const nul = buf.indexOf(0, p);
      if (nul < 0) break;
      const f = buf.subarray(p, nul).toString("utf8");
      p = nul + 1;
      fields.push(f);
      // subject, event, then pairs, then an empty key.
      if (fields.length >= 3 && (fields.length - 2) % 2 === 1 && f === "") {
        complete = true;
        break;
      }
    }
    if (!complete) break;
    const [subject, event, ...rest] = fields;
    const kwargs: Array<[string, string]> = [];
    for (let i = 0; i + 1 < rest.length; i += 2) kwargs.push([rest[i]!, rest[i + 1]!]);
    frames.push({ subject: subject!, event: event!, kwargs, raw: buf.subarray(pos, p) });
    pos = p;
  }
  return { frames, rest: buf.subarray(pos) };
}

/** An open event stream over the socket. */
export interface Stream {
  frames: Frame[];
  /** Resolves once at least `n` frames arrived. */
  waitFor(n: number): Promise<Frame[]>;
  close(): void;
}

/** Opens a streaming call (`admin.Events`, `admin.vm.Stats`). */
export function openStream(socketPath: string, request: Uint8Array): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const frames: Frame[] = [];
    let buf = Buffer.alloc(0);
    const waiters: Array<{ n: number; resolve: (f: Frame[]) => void }> = [];
    const s = net.createConnection(socketPath, () => s.end(Buffer.from(request)));
    const stream: Stream = {
      frames,
      waitFor: (n) =>
        new Promise((res) => {
          if (frames.length >= n) res(frames);
          else waiters.push({ n, resolve: res });
        }),
      close: () => s.destroy(),
    };
    s.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      const r = takeFrames(buf);
      buf = Buffer.from(r.rest);
      frames.push(...r.frames);
      for (const w of [...waiters]) if (frames.length >= w.n) (waiters.splice(waiters.indexOf(w), 1), w.resolve(frames));
      if (frames.length >= 1) resolve(stream);
    });
    s.on("error", reject);
  });
}

const GENERATED = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<![A-Za-z0-9_-])disp\d+(?![A-Za-z0-9_])|(?<![A-Za-z0-9])[A-Za-z0-9]{32}(?![A-Za-z0-9])/g;
const ZERO_UUID = "00000000-0000-0000-0000-000000000000";

/**
 * A consistent renaming of generated identifiers (UUIDs, `dispNNNN`, clone
 * tokens) from the simulator's to the recording's.
 */
export class Renaming {
  private readonly fwd = new Map<string, string>();
  private readonly back = new Map<string, string>();
  /** Renames the identifiers of `actual` to those at the same places in `expected`; returns the renamed text or an error. */
  apply(actual: string, expected: string): { text: string; error?: string } {
    const a = [...actual.matchAll(GENERATED)].map((m) => m[0]).filter((x) => x !== ZERO_UUID);
    const e = [...expected.matchAll(GENERATED)].map((m) => m[0]).filter((x) => x !== ZERO_UUID);
    if (a.length !== e.length) return { text: actual, error: `${a.length} generated identifiers, expected ${e.length}` };
    for (let i = 0; i < a.length; i++) {
      const have = this.fwd.get(a[i]!);
      if (have !== undefined && have !== e[i]) return { text: actual, error: `${a[i]} already stands for ${have}, not ${e[i]}` };
      const other = this.back.get(e[i]!);
      if (other !== undefined && other !== a[i]) return { text: actual, error: `${e[i]} already stands for ${other}, not ${a[i]}` };
      this.fwd.set(a[i]!, e[i]!);
      this.back.set(e[i]!, a[i]!);
    }
    return { text: actual.replace(GENERATED, (m) => (m === ZERO_UUID ? m : (this.fwd.get(m) ?? m))) };
  }
}

/** Masks the values that a transcript marks volatile (numbers that depend on the host or the clock). */
export function maskVolatile(text: string, volatile: string[]): string {
  let out = text;
  const keys = new Set<string>();
  for (const v of volatile) {
    if (/all numbers/.test(v)) out = out.replace(/\d+/g, "N");
    for (const k of ["cputime", "mem", "size", "usage", "data_size", "data_usage", "maxmem", "no_cpus", "memory", "start_time"]) if (new RegExp(`\\b${k}\\b`).test(v)) keys.add(k);
    if (/dom0 maxmem/.test(v)) (keys.add("maxmem"), keys.add("no_cpus"));
  }
  for (const k of keys) {
    out = out.replace(new RegExp(`\\b${k}=\\d+`, "g"), `${k}=N`);
    out = out.replace(new RegExp(`\\b(${k} default=\\w+ type=int )\\d+`, "g"), "$1N");
  }
  return out;
}

/** `raw_escaped`-style rendering, for readable failure messages. */
export function escape(buf: Buffer): string {
  let s = "";
  for (const b of buf) {
    if (b === 0) s += "\\0";
    else if (b === 0x5c) s += "\\\\";
    else if (b === 0x0a) s += "\\n";
    else if (b === 0x09) s += "\\t";
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return s;
}
