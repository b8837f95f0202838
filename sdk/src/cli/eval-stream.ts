/**
 * Many calls at once: `qkit policy eval --requests` (a stream of requests,
 * one JSON object a line, each answered by its decision line as soon as its
 * chunk of input is read) and `--cases` (the conformance corpus's cases).
 *
 * A stream's lines are read in batches and answered in place: a request in
 * its usual spelling is read where it lies in its chunk, decided by the
 * evaluator's in-order scan, and its decision written as bytes into
 * recycled output buffers, one write a batch (see `evaluateJsonBytes`).
 * Any other line is read as JSON and answered the same way; a malformed one
 * is answered by a UsageError line and counted.
 */
import { closeSync, createReadStream, openSync, statSync } from "node:fs";
import * as path from "node:path";
import { StringDecoder } from "node:string_decoder";
import { setFlagsFromString } from "node:v8";
import { ByteOutput, evaluateJsonBytes, makeRequest, runConformanceCase, type PolicyRequest, type SystemInfo } from "@qubes-kit/language/engine";
import type { CliIO } from "./command.js";
import { stdinToRead, UsageError } from "./command.js";
import { EXIT, oneLine, osMessage } from "./text.js";
import type { PolicySource } from "./policy.js";
import { loadErrorJson, loadForEval, quiet, requestWarnings, type NearQubes } from "./eval-requests.js";

/**
 * The lines of a file (or of standard input for \`-\`), a batch per chunk
 * read: the caller answers a whole batch with one write, and still answers
 * each batch before waiting for more input (a process that writes a request
 * and waits for its decision is answered at once). Lines end as readline
 * ends them: \`\\n\`, \`\\r\\n\` or a lone \`\\r\`. A batch is the chunk's text
 * (the unfinished line of the last chunk joined in front) and where each
 * line starts and ends in it: no string is made of a line until one is
 * needed (a request line in its usual form is read in place, see
 * {@link flatRequestAt}).
 */
async function* readLineBatches(file: string, io: CliIO, what: string): AsyncGenerator<LineBatch> {
  if (file !== "-") {
    // Opened before anything is printed, so a wrong name is a usage error in the OS's words.
    try {
      closeSync(openSync(path.resolve(io.cwd, file), "r"));
      if (statSync(path.resolve(io.cwd, file)).isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    } catch (e) {
      throw new UsageError(`cannot read \`${file}\`: ${osMessage(e)}`);
    }
  }
  // Read as a stream, even a regular file: the event loop must turn between chunks, or the callbacks of the output's writes (which recycle its buffers) would wait for the end.
  const input = file === "-" ? stdinToRead(io, what) : createReadStream(path.resolve(io.cwd, file), { highWaterMark: READ_CHUNK });
  const decoder = new StringDecoder("utf8");
  // The unfinished line: the pieces read since the last line end, joined once its end comes (a long
  // line costs its length, not its length times its number of chunks).
  let pending: string[] = [];
  let pendingLength = 0;
  // A \r ended the last chunk: a \n that starts the next one belongs to it.
  let afterCr = false;
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    let piece = typeof chunk === "string" ? chunk : decoder.write(chunk);
    // (Nothing is pending whenever the last chunk ended with \r.)
    if (afterCr && piece.charCodeAt(0) === 10) piece = piece.slice(1);
    if (piece.length) afterCr = false;
    const cr = piece.indexOf("\r") >= 0;
    if (!cr && piece.indexOf("\n") < 0) {
      if (piece.length) {
        pending.push(piece);
        pendingLength += piece.length;
      }
      continue;
    }
    const text = pending.length ? pending.join("") + piece : piece;
    // Line ends are only in the new piece.
    const scan = pendingLength;
    pending = [];
    pendingLength = 0;
    let from = 0;
    const bounds: number[] = [];
    if (!cr) from = lfBounds(text, scan, bounds);
    else {
      for (let i = scan; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c === 10 || c === 13) {
          bounds.push(from, i);
          if (c === 13) {
            if (i + 1 === text.length) afterCr = true;
            else if (text.charCodeAt(i + 1) === 10) i++;
          }
          from = i + 1;
        }
      }
    }
    if (from < text.length) {
      pending.push(text.slice(from));
      pendingLength = text.length - from;
    }
    if (bounds.length) yield { text, bounds };
  }
  const last = pending.join("") + decoder.end();
  if (last !== "") yield { text: last, bounds: [0, last.length] };
}

/**
 * The usual text, whose lines end with \n alone: appends where each line
 * that ends in `text` starts and ends (its end searched from `scan` on) to
 * `bounds`, and returns where the unfinished rest starts. Found by indexOf
 * (a native search) rather than char by char, in a function of its own: the
 * loop that runs hot is compiled alone, not the generator around it.
 */
function lfBounds(text: string, scan: number, bounds: number[]): number {
  let from = 0;
  for (let i = text.indexOf("\n", scan); i >= 0; i = text.indexOf("\n", from)) {
    bounds.push(from, i);
    from = i + 1;
  }
  return from;
}

/** Lines read (see {@link readLineBatches}): line k is \`text.slice(bounds[2k], bounds[2k + 1])\`. */
interface LineBatch {
  text: string;
  bounds: number[];
}

/** The size of the reads of a regular file (Node's default): a batch's answers then fit the few output buffers the stream recycles (256 KiB reads made it allocate fresh ones: +20 MiB peak, no faster). */
const READ_CHUNK = 1 << 16;

/** The size of the output buffers of a stream (a batch's answers are written into them, and each written when full). */
const BYTE_CHUNK = 1 << 18;

/**
 * The answers of a stream as UTF-8 bytes: the evaluator writes each
 * decision straight into the current buffer ({@link ByteOutput}); a full
 * buffer, and the rest at the end of each batch, is written out. A written
 * buffer is reused only once the stream is done with it (its write's
 * callback), so a long stream keeps a few buffers instead of allocating
 * one per chunk. No string of a line (or of a batch) is ever built.
 */
class StreamOutput {
  private readonly pool: Uint8Array[] = [];
  readonly bytes: ByteOutput;
  /** Whether the last write asked its writer to wait for "drain". */
  private waiting = false;
  constructor(private readonly out: NodeJS.WritableStream) {
    this.bytes = new ByteOutput(BYTE_CHUNK, () => this.handOver());
  }

  /** Writes what the buffer holds and continues in a fresh (or recycled) one. */
  private handOver(): void {
    const b = this.bytes;
    const full = b.buf;
    const n = b.off;
    b.buf = this.pool.pop() ?? new Uint8Array(BYTE_CHUNK);
    b.off = 0;
    if (!this.out.write(full.subarray(0, n), () => this.pool.length < 8 && full.length === BYTE_CHUNK && this.pool.push(full))) this.waiting = true;
  }

  /** Writes what was put since the last write; false when the stream asks its writer to wait for "drain". */
  flush(): boolean {
    if (this.bytes.off > 0) this.handOver();
    const ok = !this.waiting;
    this.waiting = false;
    return ok;
  }
}

/** A request line as JSON.parse reads it (checked field by field). */
interface RequestLine {
  service?: string | null;
  argument?: string | null;
  source?: string | null;
  target?: string | null;
  requested_source?: string | null;
}

/**
 * Which request key (a bit each: service, argument, source, target,
 * requested_source) the JSON string at `t[i]` (its opening quote) holds,
 * compared in place (no string is made of a key); 0 for anything else,
 * escapes included.
 */
function keyBit(t: string, i: number, keyEnd: number): number {
  switch (keyEnd - i - 1) {
    case 7:
      return sameAt(t, i + 1, "service") ? 1 : 0;
    case 8:
      return sameAt(t, i + 1, "argument") ? 2 : 0;
    case 6:
      return sameAt(t, i + 1, "source") ? 4 : sameAt(t, i + 1, "target") ? 8 : 0;
    case 16:
      return sameAt(t, i + 1, "requested_source") ? 16 : 0;
    default:
      return 0;
  }
}

/** Whether `t` holds `word` at `at`, compared char by char (cheaper than \`startsWith\`, a call with checks of its own). */
function sameAt(t: string, at: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (t.charCodeAt(at + k) !== word.charCodeAt(k)) return false;
  return true;
}

/**
 * A request line in its usual form, read without `JSON.parse`: one flat
 * object whose members are among the request's keys, each once, with
 * string values that hold no escape and no control character, or `null`.
 * Such text means exactly what `JSON.parse` makes of it (a key it does not
 * hold is undefined, as there). Anything else (other keys, escapes,
 * numbers, nesting, errors) is undefined: the caller uses `JSON.parse`,
 * which reads or rejects it. One object of one shape, with no string made
 * of a key: it runs once per line.
 */
function flatRequest(t: string): RequestLine | undefined {
  return flatRequestAt(t, 0, t.length);
}

/**
 * The commonest spelling of a request line, as Python's `json.dumps` and
 * `JSON.stringify` write it: the four keys in this order, a space or none
 * after each `:` and `,`, string values without escapes or control
 * characters. Tested where the line is, in the chunk (sticky), by the
 * regular expression engine's compiled code (a few times cheaper than
 * reading the characters one call at a time), without captures: `test`
 * makes no match array, and the values are then cut out by their quotes.
 */
const CANONICAL = /\{"service": ?"[^"\\\x00-\x1f]*", ?"argument": ?"[^"\\\x00-\x1f]*", ?"source": ?"[^"\\\x00-\x1f]*", ?"target": ?"[^"\\\x00-\x1f]*"\}/y;

/** Where the value cut by {@link valueAfter} ended (its closing quote): a module variable, so that a line costs no object for it. */
let valueEnd = 0;

/**
 * In a line {@link CANONICAL} matched: the string value that starts at the
 * key of `keyLength` characters (its quotes and colon) at `at`, a space
 * allowed after the colon; {@link valueEnd} is then its closing quote.
 */
function valueAfter(t: string, at: number, keyLength: number): string {
  let i = at + keyLength;
  if (t.charCodeAt(i) === 32) i++;
  const end = t.indexOf('"', i + 1);
  valueEnd = end;
  // A value shorter than 13 characters is a copy already.
  return end - i - 1 < 13 ? t.slice(i + 1, end) : named(t.slice(i + 1, end));
}

/**
 * One string per name met in the stream's lines, by its text: each a copy
 * of its own. A value cut out of a line is a view into the whole chunk of
 * text the line came in (V8 makes a "sliced" string of 13 characters and
 * more), and the evaluator keeps the names it meets (the service's rule
 * order, the source's match vector, the verified target): each such view
 * kept a 64 KiB chunk alive, and the collector copied those chunks from one
 * generation to the next. Here the kept name is a copy, looked up once a
 * value: the evaluator's maps then find it by identity. Bounded: past
 * {@link NAMES_MAX} names, a new one is copied and not kept.
 */
const names = new Map<string, string>();
const NAMES_MAX = 8192;

function named(s: string): string {
  const k = names.get(s);
  if (k !== undefined) return k;
  // A string of its own: the concatenation is flattened into a new string, and the slice of it views that string only.
  const own = (" " + s).slice(1);
  if (names.size < NAMES_MAX) names.set(own, own);
  return own;
}

/** The line `t[from, to)` as a request when it is spelled as {@link CANONICAL} says (what `JSON.parse` makes of it, and every member a string), else undefined. */
function canonicalRequestAt(t: string, from: number, to: number): PolicyRequest | undefined {
  CANONICAL.lastIndex = from;
  if (!CANONICAL.test(t) || CANONICAL.lastIndex !== to) return undefined;
  // After `{`: `"service":` (10 characters), then after each value's quote, `,` and a space or none before the next key.
  const service = valueAfter(t, from + 1, 10);
  const argument = valueAfter(t, nextKey(t, valueEnd), 11);
  const source = valueAfter(t, nextKey(t, valueEnd), 9);
  const target = valueAfter(t, nextKey(t, valueEnd), 9);
  return { service, argument, source, target, requestedSource: null };
}

/** The start of the key after the value whose closing quote is at `quote` (past `,` and a space or none). */
function nextKey(t: string, quote: number): number {
  const i = quote + 2;
  return t.charCodeAt(i) === 32 ? i + 1 : i;
}

/**
 * {@link flatRequest} of the line `t[from, to)`, read where it is: a stream's
 * lines are never cut out of the chunk they came in (only the values are),
 * and its characters are read from the chunk's flat text, much cheaper than
 * through a string cut out of it. The line must start with `{` and end with
 * `}` (then trimming it would change nothing); else undefined.
 */
function flatRequestAt(t: string, from: number, to: number): RequestLine | undefined {
  const n = to;
  if (n - from < 2 || t.charCodeAt(from) !== 123 || t.charCodeAt(n - 1) !== 125) return undefined;
  const out: RequestLine = { service: undefined, argument: undefined, source: undefined, target: undefined, requested_source: undefined };
  let seen = 0;
  let i = from + 1;
  for (;;) {
    while (i < n && isJsonSpace(t.charCodeAt(i))) i++;
    if (t.charCodeAt(i) === 125 && seen === 0 && i === n - 1) return out;
    if (t.charCodeAt(i) !== 34) return undefined;
    const keyEnd = t.indexOf('"', i + 1);
    if (keyEnd < 0 || keyEnd >= n) return undefined;
    const bit = keyBit(t, i, keyEnd);
    if (bit === 0 || (seen & bit) !== 0) return undefined;
    seen |= bit;
    i = keyEnd + 1;
    while (i < n && isJsonSpace(t.charCodeAt(i))) i++;
    if (t.charCodeAt(i) !== 58) return undefined;
    i++;
    while (i < n && isJsonSpace(t.charCodeAt(i))) i++;
    const c = t.charCodeAt(i);
    let value: string | null;
    if (c === 34) {
      let j = i + 1;
      for (; j < n; j++) {
        const d = t.charCodeAt(j);
        if (d === 34) break;
        if (d === 92 || d < 32) return undefined;
      }
      if (j >= n) return undefined;
      value = t.slice(i + 1, j);
      i = j + 1;
    } else if (c === 110 && i + 4 <= n && sameAt(t, i, "null")) {
      value = null;
      i += 4;
    } else return undefined;
    if (bit === 1) out.service = value as string;
    else if (bit === 2) out.argument = value;
    else if (bit === 4) out.source = value as string;
    else if (bit === 8) out.target = value;
    else out.requested_source = value;
    while (i < n && isJsonSpace(t.charCodeAt(i))) i++;
    const sep = t.charCodeAt(i);
    if (sep === 125) return i === n - 1 ? out : undefined;
    if (sep !== 44) return undefined;
    i++;
  }
}

function isJsonSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

/**
 * Adds the request to the decision just written, as
 * `JSON.stringify({ ...decision, request })` writes it: the decision is a
 * non-empty object without a `request` key, and its closing `}` is the
 * last byte written (a piece is never split across buffers, so it is
 * still in the current one).
 */
function appendEcho(out: ByteOutput, echoed: unknown): void {
  out.off--;
  out.text(`,"request":${JSON.stringify(echoed)}}`);
}

/** What a `--requests` stream carries from line to line (see {@link answerBatch}). */
interface StreamState {
  /** Lines read so far (blank lines aside), and the malformed ones. */
  n: number;
  /** Lines read so far, blank ones included: what a message's `line N` counts (as an editor does). */
  line: number;
  malformed: number;
  echo: boolean;
  system: SystemInfo;
  systemFile: string | undefined;
  near: NearQubes;
  loaded: ReturnType<typeof loadForEval>;
  loadErrorLine: Uint8Array | undefined;
  out: ByteOutput;
  /** The warnings of the batch being answered (standard error's text). */
  warnings: string;
}

/**
 * Answers a batch of request lines into `c.out`, one line each, and returns
 * their warnings (standard error's text). A plain function of its own, apart
 * from the command's asynchronous body: the engine optimises a small loop
 * much better than one inside an async function.
 */
function answerBatch(batch: LineBatch, c: StreamState): string {
  const { echo, out } = c;
  const { text, bounds } = batch;
  for (let k = 0; k < bounds.length; k += 2) {
    const from = bounds[k]!;
    const to = bounds[k + 1]!;
    const line = ++c.line;
    // A line in its usual form is read where it is; any other is cut out, trimmed and read as before.
    let req: PolicyRequest | undefined = echo ? undefined : canonicalRequestAt(text, from, to);
    if (req !== undefined) {
      ++c.n;
      answerRequest(req, line, undefined, c);
      continue;
    }
    let r: RequestLine | undefined = echo ? undefined : flatRequestAt(text, from, to);
    let t = "";
    if (r === undefined) {
      t = text.slice(from, to).trim();
      if (!t) continue;
    }
    ++c.n;
    let echoed: unknown = t;
    try {
      r ??= (echo ? undefined : flatRequest(t)) ?? (JSON.parse(t) as RequestLine);
      echoed = r;
      if (!r || typeof r !== "object" || Array.isArray(r)) throw new Error("not a JSON object");
      if (typeof r.service !== "string" || typeof r.source !== "string") throw new Error("needs string `service` and `source`");
      const argument = r.argument;
      const target = r.target;
      const rs = r.requested_source;
      if (argument !== undefined && argument !== null && typeof argument !== "string") throw new Error("`argument` must be a string");
      if (target !== undefined && target !== null && typeof target !== "string") throw new Error("`target` must be a string");
      if (rs !== undefined && rs !== null && typeof rs !== "string") throw new Error("`requested_source` must be a string");
      req =
        argument !== undefined && argument !== null
          ? { service: r.service, argument, source: r.source, target: target ?? "", requestedSource: rs ?? null }
          : { ...makeRequest(r.service, r.source, target ?? ""), requestedSource: rs ?? null };
    } catch (e) {
      c.malformed++;
      out.text(JSON.stringify({ ok: false, error: "UsageError", message: `line ${line}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}` }));
      if (echo) appendEcho(out, echoed);
      out.byte(10);
      continue;
    }
    answerRequest(req, line, echo ? echoed : undefined, c);
  }
  const warnings = c.warnings;
  c.warnings = "";
  return warnings;
}

/** Answers one request of a stream into `c.out` (its line), its warnings added to `c.warnings`; `echoed`: the request to echo, if any. */
function answerRequest(req: PolicyRequest, line: number, echoed: unknown, c: StreamState): void {
  const { system, systemFile, loaded, out } = c;
  // The bytes of JSON.stringify(decisionToJson(evaluate(…))): what repeats (long ask lists) is encoded once. Never throws.
  if ("error" in loaded) out.bytes((c.loadErrorLine ??= new TextEncoder().encode(JSON.stringify(loadErrorJson(loaded.error.error)))));
  else evaluateJsonBytes(loaded.policy, req, system, out);
  // After the decision: the evaluator has just looked up its source and target (see `quiet`).
  if (!quiet(req, system, systemFile)) for (const w of requestWarnings(req, system, systemFile, c.near)) c.warnings += `qkit policy eval: warning: line ${line}: ${oneLine(w)}\n`;
  if (echoed !== undefined) appendEcho(out, echoed);
  out.byte(10);
}

/**
 * Tunes the JavaScript engine for a \`--requests\` process (set before the
 * load): V8's optimising compiler no longer inlines one function into
 * another. A stream's first lines run while the evaluator's loops are
 * compiled; with inlining each is compiled with its callees (and again when
 * one of those first meets a rare case), and that compiling, on background
 * threads but CPU all the same, was about half of the stream's one-time
 * warm-up: its compile time falls by about 40 %, and the first 100,000 lines
 * of the generated 100,001-rule policy take about 10 % less CPU, with the
 * load and the steady rate no slower (\`bench/cold.mjs\`). Process-wide and
 * for the rest of the process: the stream is all the command does. It
 * changes no result.
 */
function streamTuning(): void {
  try {
    setFlagsFromString("--no-turbo-inlining");
  } catch {
    // Not V8, or a V8 that refuses flags once running: the stream is only slower.
  }
}

/**
 * `qkit policy eval --requests FILE`: each line a request, answered by a
 * decision line (see the module's comment); the exit status says whether a
 * line was malformed.
 */
export async function runRequestStream(requests: string, src: PolicySource, system: SystemInfo, systemFile: string | undefined, echo: boolean, io: CliIO): Promise<number> {
  streamTuning();
  const loaded = loadForEval(src);
  const stream = new StreamOutput(io.stdout);
  const c: StreamState = {
    n: 0,
    line: 0,
    malformed: 0,
    echo,
    system,
    systemFile,
    near: { names: undefined, memo: new Map(), said: new Map() },
    loaded,
    loadErrorLine: undefined,
    out: stream.bytes,
    warnings: "",
  };
  for await (const batch of readLineBatches(requests, io, "the requests")) {
    // One write per batch (or per full buffer) on each stream: a write per line costs more than deciding it.
    const warnings = answerBatch(batch, c);
    if (warnings) io.stderr.write(warnings);
    // Backpressure: a slow reader (a pipe) must not make the answers pile up in memory.
    if (!stream.flush()) await new Promise<void>((resolve) => io.stdout.once("drain", () => resolve()));
  }
  const malformed = c.malformed;
  if (malformed) io.stderr.write(`qkit policy eval: ${malformed} malformed line${malformed === 1 ? "" : "s"} in \`${requests}\` (see the UsageError output lines) [malformed-line]\n`);
  return malformed ? EXIT.usage : EXIT.ok;
}

/** `qkit policy eval --cases FILE`: each line a case of the conformance corpus, answered as a line of it. */
export async function runCases(cases: string, echo: boolean, io: CliIO): Promise<number> {
  let n = 0;
  let malformed = 0;
  for await (const { text: lines, bounds } of readLineBatches(cases, io, "the cases")) {
    let text = "";
    for (let k = 0; k < bounds.length; k += 2) {
      const t = lines.slice(bounds[k], bounds[k + 1]).trim();
      n++;
      if (!t || t.startsWith("//")) continue;
      let obj: unknown;
      try {
        obj = JSON.parse(t);
      } catch {
        malformed++;
        text += JSON.stringify({ ok: false, error: "UsageError", message: `line ${n}: not JSON`, ...(echo ? { request: t } : {}) }) + "\n";
        continue;
      }
      const out = runConformanceCase(obj as Parameters<typeof runConformanceCase>[0]) as unknown as Record<string, unknown>;
      if (out["error"] === "UsageError") {
        malformed++;
        // Which line, as for a line that is not JSON.
        if (typeof out["message"] === "string") out["message"] = `line ${n}: ${out["message"]}`;
      }
      text += JSON.stringify(echo ? { ...out, request: obj } : out) + "\n";
    }
    if (text) io.stdout.write(text);
  }
  if (malformed) io.stderr.write(`qkit policy eval: ${malformed} malformed line${malformed === 1 ? "" : "s"} in \`${cases}\` (see the UsageError output lines) [malformed-line]\n`);
  return malformed ? EXIT.usage : EXIT.ok;
}
