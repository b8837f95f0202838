/**
 * `qkit policy eval | explain`: decide qrexec calls as the policy daemon does.
 *
 * Output contract (other tools depend on it): `eval --json`, `eval --requests`
 * and `eval --cases` print one JSON object a line, in the format of the
 * conformance corpus (`decisionToJson`).
 */
import { closeSync, createReadStream, openSync, statSync } from "node:fs";
import * as path from "node:path";
import { StringDecoder } from "node:string_decoder";
import { setFlagsFromString } from "node:v8";
import {
  decisionToJson,
  evaluate,
  ByteOutput,
  evaluateJsonBytes,
  explain,
  loadPolicy,
  makeRequest,
  runConformanceCase,
  type CompiledPolicy,
  type Decision,
  type Explanation,
  type LoadResult,
  type PolicyError,
  type PolicyRequest,
  type PolicyRule,
  type SystemInfo,
} from "@qubes-kit/language/engine";
import type { CliIO, Command } from "./command.js";
import { stdinToRead, UsageError } from "./command.js";
import { parseArgs, type ParsedArgs } from "./args.js";
import { EXIT, didYouMean, osMessage } from "./text.js";
import { describeDecision, renderExplanation, ruleText } from "../node-render.js";
import { mountPolicy, readSystem, type PolicySource } from "./policy.js";


const EVAL_OPTIONS = {
  "policy-dir": "value",
  "runtime-dir": "value",
  "legacy-dir": "value",
  system: "value",
  requests: "value",
  cases: "value",
  json: true,
  echo: true,
} as const;

const EVAL_USAGE = `usage: qkit policy eval --policy-dir DIR [--runtime-dir DIR] [--legacy-dir DIR] --system SYSTEM.json
                        SERVICE[+ARG] SOURCE [TARGET] [--json] [--echo]
       qkit policy eval --policy-dir DIR ... --system SYSTEM.json --requests REQUESTS.jsonl|- [--echo]
       qkit policy eval --cases CASES.jsonl|- [--echo]

Decides qrexec calls exactly as the qrexec policy daemon (qubes-core-qrexec 4.4.2) does.
TARGET omitted or "" means @default. SYSTEM.json is an internal.GetSystemInfo answer
(qkit system snapshot); without --system the system has no qubes.

options:
  --policy-dir DIR    the policy.d directory (seen as /etc/qubes/policy.d)
  --runtime-dir DIR   runtime policy directory (/run/qubes/policy.d)
  --legacy-dir DIR    legacy R4.0 directory for !compat-4.0 (/etc/qubes-rpc/policy)
  --system FILE       the system model
  --requests FILE     one request a line ({"service","argument","source","target"}); one decision a line out
  --cases FILE|-      conformance cases (shared corpus format); one output line per case
  --json              print the decision as JSON (corpus format)
  --echo              each output carries the request it answers (JSON: a
                      "request" member; text: the request before the decision)

Warnings (standard error, the decision is still printed): a SOURCE or TARGET
that is not a qube of SYSTEM.json (the daemon never sees such a source; a
target that does not exist becomes @default), an argument without its
leading \`+\` in a --requests line, and no --system at all.

exit status:
  0  allowed
  1  denied (by a rule, by no rule, or the policy does not load)
  2  usage error; with --requests/--cases: a line was malformed (its output
     line says which; the other lines are decided)
  3  asked (the user would be prompted)
  with --requests/--cases: 0 when every line was read, whatever the decisions
`;

const EXPLAIN_USAGE = `usage: qkit policy explain --policy-dir DIR [--runtime-dir DIR] [--legacy-dir DIR] --system SYSTEM.json
                           SERVICE[+ARG] SOURCE [TARGET] [--json] [--echo]

Decides one qrexec call and explains it: every rule considered before the
deciding one and why it did not match, the deciding rule, how the target was
resolved, and for ask where each offered target came from.

options: as for \`qkit policy eval\` (--policy-dir, --runtime-dir, --legacy-dir,
--system, --json, --echo)

exit status: as for \`qkit policy eval\`: 0 allowed, 1 denied, 2 usage error, 3 asked
`;

interface Loaded {
  policy: CompiledPolicy;
  src: PolicySource;
}

/** The policy directories the arguments name (usage errors first, before anything is read). */
function sourceOf(a: ParsedArgs, io: CliIO): PolicySource {
  const dir = a.values.get("policy-dir");
  if (dir === undefined) throw new UsageError("`--policy-dir` is required");
  return mountPolicy(dir, a.values.get("runtime-dir"), a.values.get("legacy-dir"), io.cwd);
}

/**
 * Loads the policy. With `service` (one request to decide), only the rules
 * that can decide a call to it are built; the whole policy is still
 * validated, so a broken policy denies exactly as before.
 */
function loadForEval(src: PolicySource, service?: string): Loaded | { error: LoadResult & { ok: false }; src: PolicySource } {
  const r = loadPolicy(src.fs, service === undefined ? {} : { service });
  if (!r.ok) return { error: r, src };
  return { policy: r.policy, src };
}

function requestFromArgs(pos: string[]): PolicyRequest {
  if (pos.length === 4 && !pos[0]!.includes("+")) {
    throw new UsageError(`expected SERVICE[+ARG] SOURCE [TARGET]; did you mean \`${pos[0]}+${pos[1]!.replace(/^\+/, "")} ${pos[2]} ${pos[3]}\`?`);
  }
  if (pos.length < 2 || pos.length > 3) throw new UsageError("expected SERVICE[+ARG] SOURCE [TARGET]");
  return makeRequest(pos[0]!, pos[1]!, pos[2] ?? "");
}

/** The warnings about a request: names that are not qubes of the system, an argument without `+`. */
function requestWarnings(req: PolicyRequest, system: SystemInfo | undefined, systemFile: string | undefined, near?: NearQubes): string[] {
  const out: string[] = [];
  if (req.argument !== undefined && req.argument !== "" && !req.argument.startsWith("+")) {
    out.push(`argument \`${req.argument}\` has no leading \`+\`: the daemon always passes it as \`+${req.argument}\`, and the engine fails on it as given; did you mean \`+${req.argument}\`? [argument-without-plus]`);
  }
  if (!system || systemFile === undefined) return out;
  const known = (n: string) => system.domains.has(n);
  if (!req.source.startsWith("@") && !known(req.source)) out.push(unknownQube("source", req.source, system, systemFile, near));
  const t = req.target ?? "";
  if (t !== "" && !t.startsWith("@") && !known(t)) out.push(unknownQube("target", t, system, systemFile, near));
  else if (unknownDispvmBase(t, system)) out.push(unknownQube("dispvm", t, system, systemFile, near));
  return out;
}

/** Whether `target` is `@dispvm:X` with X a name that is no qube of the system (the engine refuses the call). */
function unknownDispvmBase(target: string, system: SystemInfo): boolean {
  if (!target.startsWith("@dispvm:")) return false;
  const base = target.slice("@dispvm:".length);
  return base !== "" && !base.startsWith("@") && !system.domains.has(base);
}

/** The warning about a source or target that is not a qube of the system (kept in `near` for a stream: names repeat). */
function unknownQube(role: "source" | "target" | "dispvm", name: string, system: SystemInfo, systemFile: string, near?: NearQubes): string {
  const key = role === "source" ? "s" + name : "t" + name;
  let w = near?.said.get(key);
  if (w === undefined) {
    if (role === "dispvm") {
      const base = name.slice("@dispvm:".length);
      w = `target \`${name}\`: \`${base}\` is not a qube of the system in \`${systemFile}\`, so the engine refuses the call; check the name${nearQube(base, system, near)} [unknown-qube]`;
    } else {
      const what = role === "source" ? "the daemon never receives a call from it; check the name" : "the daemon treats it as @default";
      w = `${role} \`${name}\` is not a qube of the system in \`${systemFile}\`: ${what}${nearQube(name, system, near)} [unknown-qube]`;
    }
    if (near) {
      // Bounded: a memo for repeated names, not a store of every name ever seen.
      if (near.said.size >= 4096) near.said.clear();
      near.said.set(key, w);
    }
  }
  return w;
}

/** Whether {@link requestWarnings} has nothing to say (the common case of a stream, checked without allocating). */
function quiet(req: PolicyRequest, system: SystemInfo | undefined, systemFile: string | undefined): boolean {
  const arg = req.argument;
  if (arg !== undefined && arg !== "" && arg.charCodeAt(0) !== 43) return false;
  if (!system || systemFile === undefined) return true;
  const src = req.source;
  if (src.charCodeAt(0) !== 64 && !system.domains.has(src)) return false;
  const t = req.target ?? "";
  if (t === "") return true;
  if (t.charCodeAt(0) === 64) return !unknownDispvmBase(t, system);
  return system.domains.has(t);
}

/** For a stream: the "did you mean" of each unknown name, and the names it picks from (listed once, with their lower-cased lengths). */
interface NearQubes {
  names: QubeNames | undefined;
  memo: Map<string, string>;
  /** The warnings about unknown names, by role and name (see `unknownQube`). */
  said: Map<string, string>;
}

/** The "did you mean" of an unknown qube name; `near` keeps them for a stream of requests (they repeat). */
function nearQube(name: string, system: SystemInfo, near?: NearQubes): string {
  let s = near?.memo.get(name);
  if (s === undefined) {
    s = didYouMean(name, near ? plausible(name, (near.names ??= qubeNamesIndex(qubeNames(system)))) : qubeNames(system));
    // Bounded: a memo for repeated names, not a store of every name ever seen.
    if (near) {
      if (near.memo.size >= 4096) near.memo.clear();
      near.memo.set(name, s);
    }
  }
  return s;
}

/**
 * The qube names {@link plausible} picks from: in their order, and indexed
 * so that a word's candidates are found without reading every name (a
 * stream can have a thousand unknown names, each read against every qube:
 * on a stream's first lines, before that loop is optimised, that cost more
 * than deciding the requests).
 */
interface QubeNames {
  names: string[];
  /** Per lower-cased length: the indices of the names of that length, ascending. */
  byLength: Map<number, number[]>;
  /** The indices in the order of the names' code units: the names that start with a word are one run of it. */
  sorted: number[];
}

function qubeNamesIndex(names: string[]): QubeNames {
  const byLength = new Map<number, number[]>();
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!.toLowerCase().length;
    const ids = byLength.get(n);
    if (ids === undefined) byLength.set(n, [i]);
    else ids.push(i);
  }
  const sorted = names.map((_, i) => i).sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
  return { names, byLength, sorted };
}

/**
 * The names `suggest` (cli/text.ts) could propose for `word`, in order: it
 * proposes a name within an edit distance of a third of the word's length
 * (at least 1), which needs lower-cased lengths that close, or a name that
 * starts with the word. The others are left out before it measures any
 * distance (the answer is the same, reached without them): the names of
 * each length close enough, and the run of names that start with the word.
 */
function plausible(word: string, q: QubeNames): string[] {
  const limit = Math.max(1, Math.floor(word.length / 3));
  const w = word.toLowerCase().length;
  const { names, sorted } = q;
  const picked: number[] = [];
  for (let n = Math.max(0, w - limit); n <= w + limit; n++) {
    const ids = q.byLength.get(n);
    if (ids !== undefined) for (const i of ids) picked.push(i);
  }
  // The first name not before `word`: where the names that start with it begin.
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[sorted[mid]!]! < word) lo = mid + 1;
    else hi = mid;
  }
  for (let k = lo; k < sorted.length && names[sorted[k]!]!.startsWith(word); k++) picked.push(sorted[k]!);
  picked.sort((a, b) => a - b);
  const out: string[] = [];
  for (let k = 0; k < picked.length; k++) if (k === 0 || picked[k] !== picked[k - 1]) out.push(names[picked[k]!]!);
  return out;
}

function qubeNames(system: SystemInfo): string[] {
  return [...system.domains.keys()].filter((k) => !k.startsWith("uuid:"));
}

const NO_SYSTEM_WARNING =
  "no --system: the system has no qubes, so the engine fails on any source qube (the daemon always knows its qubes); pass --system SYSTEM.json, made by `qkit system snapshot --socket PATH` (e.g. examples/demo/system.json) [no-system]";

/** A load failure as a decision line, in the corpus format (as `--cases` prints it). */
function loadErrorJson(e: PolicyError): Record<string, unknown> {
  return decisionToJson({ ...e, ok: false, stage: "load" });
}

function exitFor(d: Decision): number {
  if (!d.ok || d.action === "deny") return EXIT.failure;
  return d.action === "ask" ? EXIT.ask : EXIT.ok;
}

function requestText(r: PolicyRequest): string {
  return `${r.service}${r.argument && r.argument !== "+" ? r.argument : ""} ${r.source} ${r.target || "@default"}`.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

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
    if (!cr) {
      // The usual text: lines end with \n alone, found by indexOf (a native search) rather than char by char.
      for (let i = text.indexOf("\n", scan); i >= 0; i = text.indexOf("\n", from)) {
        bounds.push(from, i);
        from = i + 1;
      }
    } else {
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
  if (!quiet(req, system, systemFile)) for (const w of requestWarnings(req, system, systemFile, c.near)) c.warnings += `qkit policy eval: warning: line ${line}: ${w}\n`;
  // The bytes of JSON.stringify(decisionToJson(evaluate(…))): what repeats (long ask lists) is encoded once. Never throws.
  if ("error" in loaded) out.bytes((c.loadErrorLine ??= new TextEncoder().encode(JSON.stringify(loadErrorJson(loaded.error.error)))));
  else evaluateJsonBytes(loaded.policy, req, system, out);
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

async function runEval(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, EVAL_OPTIONS);
  const echo = a.flags.has("echo");
  const warn = (w: string) => io.stderr.write(`qkit policy eval: warning: ${w}\n`);
  const cases = a.values.get("cases");
  if (cases !== undefined) {
    if (a.positionals.length) throw new UsageError("`--cases` takes no positional arguments");
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
        if (out["error"] === "UsageError") malformed++;
        text += JSON.stringify(echo ? { ...out, request: obj } : out) + "\n";
      }
      if (text) io.stdout.write(text);
    }
    if (malformed) io.stderr.write(`qkit policy eval: ${malformed} malformed line${malformed === 1 ? "" : "s"} in \`${cases}\` (see the UsageError output lines) [malformed-line]\n`);
    return malformed ? EXIT.usage : EXIT.ok;
  }
  const systemFile = a.values.get("system");
  if (systemFile === undefined) warn(NO_SYSTEM_WARNING);
  const system = readSystem(systemFile, io);
  const src = sourceOf(a, io);
  const requests = a.values.get("requests");
  if (requests !== undefined) {
    if (a.positionals.length) throw new UsageError("`--requests` takes no positional arguments");
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
  const req = requestFromArgs(a.positionals);
  const loaded = loadForEval(src, req.service);
  for (const w of requestWarnings(req, system, systemFile)) warn(w);
  const prefix = echo && !a.flags.has("json") ? `${requestText(req)}: ` : "";
  if ("error" in loaded) {
    const e = loaded.error.error;
    if (a.flags.has("json")) io.stdout.write(JSON.stringify(echo ? { ...loadErrorJson(e), request: req } : loadErrorJson(e)) + "\n");
    else io.stdout.write(`${prefix}deny (the policy does not load, so every call is denied): ${e.message}\n`);
    return EXIT.failure;
  }
  const d = evaluate(loaded.policy, req, system);
  io.stdout.write((a.flags.has("json") ? JSON.stringify(echo ? { ...decisionToJson(d), request: req } : decisionToJson(d)) : prefix + describeDecision(d)) + "\n");
  return exitFor(d);
}

/** An explanation as `qkit policy explain --json` prints it (also `qkit template whatif --call --json`). */
export function explanationJson(x: Explanation): unknown {
  const rule = (r: PolicyRule) => ({ file: r.origin.file, line: r.origin.line, text: ruleText(r) });
  return {
    decision: decisionToJson(x.decision),
    request: x.request,
    intended_target: x.intendedTarget,
    target_note: x.targetNote,
    trace: x.trace.map((s) => ({ rule: rule(s.rule), failed: s.failed, reason: s.reason })),
    skipped: x.skipped,
    deciding_rule: x.decidingRule ? { ...rule(x.decidingRule), via: x.decidingRule.via } : null,
    resolution: x.resolution ?? [],
    ask_contributions: x.askContributions?.map((c) => ({ rule: rule(c.rule), effect: c.effect, targets: c.targets })) ?? null,
    ask_notes: x.askNotes ?? [],
  };
}

async function runExplain(args: string[], io: CliIO): Promise<number> {
  const a = parseArgs(args, { ...EVAL_OPTIONS });
  if (a.values.has("cases") || a.values.has("requests")) throw new UsageError("`explain` decides one request; use `qkit policy eval` for many");
  const systemFile = a.values.get("system");
  const warn = (w: string) => io.stderr.write(`qkit policy explain: warning: ${w}\n`);
  if (systemFile === undefined) warn(NO_SYSTEM_WARNING);
  const system = readSystem(systemFile, io);
  const src = sourceOf(a, io);
  const req = requestFromArgs(a.positionals);
  const loaded = loadForEval(src, req.service);
  for (const w of requestWarnings(req, system, systemFile)) warn(w);
  if ("error" in loaded) {
    const e = loaded.error.error;
    io.stdout.write(a.flags.has("json") ? JSON.stringify({ decision: loadErrorJson(e) }) + "\n" : `the policy does not load, so the daemon denies every call:\n  ${e.message}\n`);
    return 1;
  }
  const x = explain(loaded.policy, req, system);
  io.stdout.write(a.flags.has("json") ? JSON.stringify(explanationJson(x)) + "\n" : renderExplanation(x));
  return exitFor(x.decision);
}

export const commands: Command[] = [
  { path: ["policy", "eval"], summary: "decide qrexec calls as the policy daemon does", usage: EVAL_USAGE, run: runEval },
  { path: ["policy", "explain"], summary: "decide one call and explain which rule decided it and why", usage: EXPLAIN_USAGE, run: runExplain },
];
