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
import {
  decisionToJson,
  evaluate,
  evaluateJsonPieces,
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
import { UsageError } from "./command.js";
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
function requestWarnings(req: PolicyRequest, system: SystemInfo | undefined, systemFile: string | undefined, near?: Map<string, string>): string[] {
  const out: string[] = [];
  if (req.argument !== undefined && req.argument !== "" && !req.argument.startsWith("+")) {
    out.push(`argument \`${req.argument}\` has no leading \`+\`: the daemon always passes it as \`+${req.argument}\`, and the engine fails on it as given; did you mean \`+${req.argument}\`? [argument-without-plus]`);
  }
  if (!system || systemFile === undefined) return out;
  const known = (n: string) => system.domains.has(n);
  if (!req.source.startsWith("@") && !known(req.source)) {
    out.push(`source \`${req.source}\` is not a qube of the system in \`${systemFile}\`: the daemon never receives a call from it; check the name${nearQube(req.source, system, near)} [unknown-qube]`);
  }
  const t = req.target ?? "";
  if (t !== "" && !t.startsWith("@") && !known(t)) {
    out.push(`target \`${t}\` is not a qube of the system in \`${systemFile}\`: the daemon treats it as @default${nearQube(t, system, near)} [unknown-qube]`);
  }
  return out;
}

/** The "did you mean" of an unknown qube name; `memo` keeps them for a stream of requests (they repeat). */
function nearQube(name: string, system: SystemInfo, memo?: Map<string, string>): string {
  let s = memo?.get(name);
  if (s === undefined) {
    s = didYouMean(name, [...system.domains.keys()].filter((k) => !k.startsWith("uuid:")));
    // Bounded: a memo for repeated names, not a store of every name ever seen.
    if (memo) {
      if (memo.size >= 4096) memo.clear();
      memo.set(name, s);
    }
  }
  return s;
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
 * ends them: \`\\n\`, \`\\r\\n\` or a lone \`\\r\`.
 */
async function* readLineBatches(file: string, io: CliIO): AsyncGenerator<string[]> {
  if (file !== "-") {
    // Opened before anything is printed, so a wrong name is a usage error in the OS's words.
    try {
      closeSync(openSync(path.resolve(io.cwd, file), "r"));
      if (statSync(path.resolve(io.cwd, file)).isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    } catch (e) {
      throw new UsageError(`cannot read \`${file}\`: ${osMessage(e)}`);
    }
  }
  const input = file === "-" ? io.stdin : createReadStream(path.resolve(io.cwd, file));
  const decoder = new StringDecoder("utf8");
  let rest = "";
  // A \r ended the last chunk: a \n that starts the next one belongs to it.
  let afterCr = false;
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const text = rest + (typeof chunk === "string" ? chunk : decoder.write(chunk));
    const lines: string[] = [];
    let from = 0;
    if (afterCr && rest === "" && text.charCodeAt(0) === 10) from = 1;
    if (text.length) afterCr = false;
    for (let i = from; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) {
        lines.push(text.slice(from, i));
        from = i + 1;
      } else if (c === 13) {
        lines.push(text.slice(from, i));
        if (i + 1 === text.length) afterCr = true;
        else if (text.charCodeAt(i + 1) === 10) i++;
        from = i + 1;
      }
    }
    rest = text.slice(from);
    if (lines.length) yield lines;
  }
  const last = rest + decoder.end();
  if (last !== "") yield [last];
}

/** The size of the output buffers of a stream (a batch's answers are copied into one). */
const BYTE_CHUNK = 1 << 18;

/**
 * The answers of a stream as UTF-8 bytes: each piece is copied into a
 * buffer, and a batch is written at once. No string of a whole batch (or
 * of a long line) is ever built, so nothing large is allocated and
 * flattened per batch; a written chunk is never reused (the stream may
 * keep it), and always ends at a piece's end (never inside a character).
 */
class ByteWriter {
  private buf = Buffer.allocUnsafe(BYTE_CHUNK);
  private start = 0;
  private off = 0;
  constructor(private readonly out: NodeJS.WritableStream) {}

  put(s: string): void {
    // At most 3 bytes per UTF-16 unit.
    const max = s.length * 3;
    if (this.off + max > this.buf.length) {
      this.flush();
      this.buf = Buffer.allocUnsafe(Math.max(BYTE_CHUNK, max));
      this.start = this.off = 0;
    }
    this.off += this.buf.write(s, this.off);
  }

  /** Ends a line (one byte, no call into the encoder). */
  newline(): void {
    if (this.off === this.buf.length) this.put("\n");
    else this.buf[this.off++] = 10;
  }

  /** Writes what was put since the last flush; false when the stream asks its writer to wait for "drain". */
  flush(): boolean {
    if (this.off === this.start) return true;
    const chunk = this.buf.subarray(this.start, this.off);
    this.start = this.off;
    return this.out.write(chunk);
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
    for await (const batch of readLineBatches(cases, io)) {
      let text = "";
      for (const line of batch) {
        const t = line.trim();
        if (!t || t.startsWith("//")) continue;
        n++;
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
    const loaded = loadForEval(src);
    let n = 0;
    let malformed = 0;
    const near = new Map<string, string>();
    let loadErrorLine: string | undefined;
    const out = new ByteWriter(io.stdout);
    const pieces: string[] = [];
    for await (const batch of readLineBatches(requests, io)) {
      // One write per batch on each stream: a write per line costs more than deciding it.
      let warnings = "";
      for (const line of batch) {
        const t = line.trim();
        if (!t) continue;
        n++;
        let echoed: unknown = t;
        pieces.length = 0;
        try {
          const r = JSON.parse(t) as { service?: string; argument?: string; source?: string; target?: string; requested_source?: string };
          echoed = r;
          if (!r || typeof r !== "object" || Array.isArray(r)) throw new Error("not a JSON object");
          if (typeof r.service !== "string" || typeof r.source !== "string") throw new Error("needs string `service` and `source`");
          for (const k of ["argument", "target", "requested_source"] as const) {
            if (r[k] !== undefined && r[k] !== null && typeof r[k] !== "string") throw new Error(`\`${k}\` must be a string`);
          }
          const req = r.argument !== undefined && r.argument !== null ? { service: r.service, argument: r.argument, source: r.source, target: r.target ?? "", requestedSource: r.requested_source ?? null } : { ...makeRequest(r.service, r.source, r.target ?? ""), requestedSource: r.requested_source ?? null };
          for (const w of requestWarnings(req, system, systemFile, near)) warnings += `qkit policy eval: warning: line ${n}: ${w}\n`;
          // The pieces of JSON.stringify(decisionToJson(evaluate(…))): what repeats (long ask lists) is serialised once.
          if ("error" in loaded) pieces.push((loadErrorLine ??= JSON.stringify(loadErrorJson(loaded.error.error))));
          else evaluateJsonPieces(loaded.policy, req, system, pieces);
        } catch (e) {
          malformed++;
          pieces.length = 0;
          pieces.push(JSON.stringify({ ok: false, error: "UsageError", message: `line ${n}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}` }));
        }
        // As JSON.stringify({ ...out, request }) writes it: the decision is a non-empty object without a `request` key.
        if (echo) {
          const last = pieces.length - 1;
          pieces[last] = `${pieces[last]!.slice(0, -1)},"request":${JSON.stringify(echoed)}}`;
        }
        for (let k = 0; k < pieces.length; k++) out.put(pieces[k]!);
        out.newline();
      }
      if (warnings) io.stderr.write(warnings);
      // Backpressure: a slow reader (a pipe) must not make the answers pile up in memory.
      if (!out.flush()) await new Promise<void>((resolve) => io.stdout.once("drain", () => resolve()));
    }
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

function explanationJson(x: Explanation): unknown {
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
