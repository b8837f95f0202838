/**
 * Apply: runs a plan's steps in order through the SDK, writing every call
 * to a journal before it is sent and again with its reply, stops between
 * steps when its signal is aborted, and stops at the first failure with a message
 * naming the step, the call, and qubesd's exception and message. Deferred
 * steps are skipped (and counted). A re-run resumes from the live state:
 * the next plan holds only what is left.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { QubesException } from "../errors.js";
import type { Qubes } from "../qubes.js";
import type { PolicyTarget } from "./policy-target.js";
import type { Plan, PlanStep, StepCall } from "./types.js";

/** Where the calls and replies go, one JSON object per line. */
export interface Journal {
  /** The file, when there is one. */
  readonly path?: string;
  write(entry: Record<string, unknown>): void;
  /** Releases the file (further writes are dropped). */
  close?(): void;
}

/** The marker of a qkit journal: the first record of every journal carries it. */
export const JOURNAL_MARKER = "qkitJournal";

/** Why {@link fileJournal} refused a file: it exists and is not a qkit journal (never appended to). */
export class JournalRefused extends Error {
  readonly code = "not-a-journal";
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = "JournalRefused";
  }
}

/**
 * Whether `firstLine` starts a qkit journal: a JSON object with the
 * {@link JOURNAL_MARKER} (journals from before the marker: an `apply-start` record).
 */
export function isJournalStart(firstLine: string): boolean {
  let r: unknown;
  try {
    r = JSON.parse(firstLine);
  } catch {
    return false;
  }
  if (!r || typeof r !== "object" || Array.isArray(r)) return false;
  const o = r as Record<string, unknown>;
  return o[JOURNAL_MARKER] === 1 || (o["event"] === "apply-start" && typeof o["stack"] === "string" && typeof o["time"] === "string");
}

function refuseNonJournal(fd: number, file: string): void {
  const st = fs.fstatSync(fd);
  if (!st.isFile()) throw new JournalRefused(file, `${file} is not a regular file`);
  if (st.size === 0) return;
  const buf = Buffer.alloc(Math.min(st.size, 64 * 1024));
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  const text = buf.subarray(0, n).toString("utf8");
  const nl = text.indexOf("\n");
  if (nl < 0 || !isJournalStart(text.slice(0, nl))) throw new JournalRefused(file, `${file} exists and is not a qkit journal`);
}

/**
 * Throws {@link JournalRefused} when `file` exists and {@link fileJournal}
 * would refuse it (nothing is created: for a check before asking).
 */
export function checkJournalFile(file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    if ((e as NodeJS.ErrnoException).code === "EISDIR") throw new JournalRefused(file, `${file} is a directory`);
    throw e;
  }
  try {
    refuseNonJournal(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A journal appended to `file` (created with its directory; mode 0600: it
 * holds the machine's structure). An existing file is appended to only when
 * it is empty or a qkit journal (its first record says so); anything else
 * (a stack file, a plan, any other file) is refused with {@link JournalRefused}
 * before a byte is written.
 */
export function fileJournal(file: string): Journal {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let fd: number | undefined = fs.openSync(file, "a+", 0o600);
  try {
    refuseNonJournal(fd, file);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  return {
    path: file,
    write(entry) {
      // Synchronous: an entry is on disk before the next call is made.
      if (fd !== undefined) fs.writeSync(fd, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
    },
    close() {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
    },
  };
}

/** A journal kept in memory (tests, the rehearsal). */
export function memoryJournal(): Journal & { entries: Record<string, unknown>[] } {
  const entries: Record<string, unknown>[] = [];
  return { entries, write: (e) => void entries.push(e) };
}

/** The default journal path: `$XDG_STATE_HOME/qkit/apply-<time>.ndjson`, else `~/.local/state/qkit/…`. */
export function defaultJournalPath(env: NodeJS.ProcessEnv, now = new Date()): string {
  const base = env["XDG_STATE_HOME"] && path.isAbsolute(env["XDG_STATE_HOME"]) ? env["XDG_STATE_HOME"] : path.join(env["HOME"] ?? ".", ".local", "state");
  return path.join(base, "qkit", `apply-${now.toISOString().replace(/[:.]/g, "-")}.ndjson`);
}

/** The outcome of one step. */
export interface StepProgress {
  index: number;
  total: number;
  step: PlanStep;
  status: "ok" | "failed" | "deferred";
  ms: number;
}

/** A failed call. */
export interface ApplyFailure {
  step: PlanStep;
  call: StepCall;
  /** qubesd's exception class (or the client's error class) and message. */
  type: string;
  message: string;
  /** One line: the step, the call, the exception and message. */
  summary: string;
  /** The error the call failed with (a transport failure: qubesd gone, the connection reset). */
  error?: unknown;
  /** How many of the step's calls went through before this one (a step is several calls). */
  callsDone?: number;
}

/** What an apply did. */
export interface ApplyResult {
  applied: number;
  deferred: number;
  total: number;
  failure?: ApplyFailure;
  /**
   * The apply stopped because `options.signal` was aborted: after the step in
   * flight (its calls are one unit, e.g. a create and its ownership record),
   * before the next one. `reason` is the signal's reason (`SIGINT`).
   */
  interrupted?: { reason: string; next: PlanStep };
}

/** Options of {@link executePlan}. */
export interface ExecuteOptions {
  journal?: Journal;
  onStep?(p: StepProgress): void;
  /** Stops the apply between steps (a call in flight is never cut: its reply is awaited and journaled). */
  signal?: AbortSignal;
}

/** Where the calls go. */
export interface ApplyConnection {
  qubes: Qubes;
  policy: PolicyTarget;
}

/** Runs one call: Admin API calls through the client, `policy.*` through the policy target. Returns the reply text. */
async function runCall(conn: ApplyConnection, c: StepCall, previous: string): Promise<string> {
  const payload = c.payloadFromPrevious ? previous : c.payload;
  if (c.method.startsWith("policy.")) {
    const include = c.method.startsWith("policy.include.");
    const op = c.method.slice(c.method.lastIndexOf(".") + 1);
    if (op === "Replace") {
      const nl = payload.indexOf("\n");
      await conn.policy.replace(c.arg, include, payload.slice(nl + 1), payload.slice(0, nl));
      return "";
    }
    if (op === "Remove") {
      await conn.policy.remove(c.arg, include, payload);
      return "";
    }
    throw new Error(`unknown policy call ${c.method}`);
  }
  return conn.qubes.client.callText({ method: c.method, dest: c.dest, arg: c.arg, payload });
}

/** The one-line description of a call for messages: `admin.vm.property.Set netvm on work`. */
export function describeCall(c: StepCall): string {
  return `${c.method}${c.arg ? ` ${c.arg}` : ""}${c.dest && c.dest !== "dom0" ? ` on ${c.dest}` : ""}`;
}

/** Runs the plan's steps in order; stops at the first failure. */
export async function executePlan(plan: Plan, conn: ApplyConnection, options: ExecuteOptions = {}): Promise<ApplyResult> {
  const total = plan.steps.length;
  const result: ApplyResult = { applied: 0, deferred: 0, total };
  const journal = options.journal;
  journal?.write({ event: "apply-start", [JOURNAL_MARKER]: 1, stack: plan.stack, fingerprint: plan.fingerprint, steps: total });
  for (const [i, step] of plan.steps.entries()) {
    if (options.signal?.aborted) {
      const reason = String(options.signal.reason ?? "aborted");
      result.interrupted = { reason, next: step };
      journal?.write({ event: "apply-interrupted", reason, next: step.id, applied: result.applied, deferred: result.deferred, left: total - i });
      return result;
    }
    const started = Date.now();
    if (step.deferred) {
      result.deferred++;
      journal?.write({ event: "step-deferred", step: step.id, reason: step.deferred });
      options.onStep?.({ index: i + 1, total, step, status: "deferred", ms: 0 });
      continue;
    }
    let previous = "";
    for (const c of step.calls) {
      const logged = { method: c.method, dest: c.dest, arg: c.arg, payload: c.payloadFromPrevious ? previous : c.payload };
      // Journaled before it is sent: a kill -9 while it is in flight still leaves its trace.
      journal?.write({ event: "calling", step: step.id, call: logged });
      try {
        previous = await runCall(conn, c, previous);
        journal?.write({ event: "call", step: step.id, call: logged, ok: true, reply: previous });
      } catch (e) {
        const type = e instanceof QubesException ? e.qubesType : e instanceof Error ? e.name : "Error";
        const message = e instanceof Error ? e.message : String(e);
        journal?.write({ event: "call", step: step.id, call: logged, ok: false, error: { type, message } });
        const summary = `step ${i + 1}/${total} ${step.id} failed: ${describeCall(c)}: ${type}: ${message}`;
        result.failure = { step, call: c, type, message, summary, error: e, callsDone: step.calls.indexOf(c) };
        options.onStep?.({ index: i + 1, total, step, status: "failed", ms: Date.now() - started });
        journal?.write({ event: "apply-failed", step: step.id, applied: result.applied });
        return result;
      }
    }
    result.applied++;
    options.onStep?.({ index: i + 1, total, step, status: "ok", ms: Date.now() - started });
  }
  journal?.write({ event: "apply-done", applied: result.applied, deferred: result.deferred });
  return result;
}
