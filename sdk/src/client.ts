/**
 * The low-level Admin API client: turns an {@link AdminCall} (a call
 * described as data) into a request, sends it through a {@link Transport}
 * with a timeout and an optional `AbortSignal`, and parses the reply.
 */
import {
  QubesAbortError,
  QubesException,
  QubesTimeoutError,
} from "./errors.js";
import {
  EventDecoder,
  concatBytes,
  replyText,
  utf8,
  type QubesEvent,
  type WireRequest,
} from "./protocol.js";
import type { Transport } from "./transport.js";
import { validateArg, validateDest, validateMethod } from "./validate.js";

/**
 * One Admin API call as data. `parse` turns the success text into the typed
 * value; errors are thrown as typed exceptions before `parse` runs.
 */
export interface AdminCall<T> {
  /** The method, e.g. `admin.vm.property.Get`. */
  method: string;
  /** The destination: a qube name, `uuid:…`, `dom0` or `@adminvm`. */
  dest: string;
  /** The argument (default empty). */
  arg?: string;
  /** The payload (default empty); strings are sent as UTF-8. */
  payload?: string | Uint8Array;
  /** Parses the success text. */
  parse: (text: string) => T;
}

/** Options of one call. */
export interface CallOptions {
  /** Aborts the call (closes the connection). */
  signal?: AbortSignal;
  /** Milliseconds before the call fails with {@link QubesTimeoutError}; `0` = none. Default: the client's. */
  timeout?: number;
  /**
   * Skip the client-side checks of method, destination and argument (the
   * 64 KiB limit is always checked). For tests and for talking to servers
   * with different rules; never needed for normal use.
   */
  unchecked?: boolean;
}

/** Options of {@link AdminClient}. */
export interface AdminClientOptions {
  transport: Transport;
  /** The source qube written in the header (default `dom0`; qrexec replaces it anyway). */
  source?: string;
  /** Default timeout of non-streaming calls in ms (default 120000; `0` = none). */
  timeout?: number;
}

/** Options of an event stream. */
export interface StreamOptions {
  signal?: AbortSignal;
  /** Milliseconds to wait for the first frame (default: the client's call timeout). */
  connectTimeout?: number;
  unchecked?: boolean;
}

/** Converts a destination to the header's `dest_type dest`. */
export function wireDest(dest: string): { destType: "name" | "keyword"; dest: string } {
  // `@adminvm` is the only keyword qubesd accepts; others pass only in unchecked mode.
  if (dest.startsWith("@")) return { destType: "keyword", dest: dest.slice(1) };
  return { destType: "name", dest };
}

function toBytes(payload: string | Uint8Array | undefined): Uint8Array {
  if (payload === undefined) return new Uint8Array(0);
  return typeof payload === "string" ? utf8(payload) : payload;
}

/** A per-call abort controller linking the user's signal and a timeout. */
class CallScope {
  readonly controller = new AbortController();
  timedOut = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onUserAbort: () => void;

  constructor(
    private readonly user: AbortSignal | undefined,
    timeout: number,
    private readonly what: string,
    private readonly timeoutMs = timeout,
  ) {
    this.onUserAbort = () => this.controller.abort(user?.reason);
    if (user) {
      if (user.aborted) this.controller.abort(user.reason);
      else user.addEventListener("abort", this.onUserAbort, { once: true });
    }
    if (timeout > 0) this.arm(timeout);
  }

  arm(ms: number): void {
    this.disarm();
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new QubesTimeoutError(ms, this.what));
    }, ms);
    (this.timer as { unref?: () => void }).unref?.();
  }

  disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  close(): void {
    this.disarm();
    this.user?.removeEventListener("abort", this.onUserAbort);
  }

  /** Maps an error thrown during the call to the right typed error. */
  map(err: unknown): unknown {
    if (this.timedOut) return new QubesTimeoutError(this.timeoutMs, this.what);
    if (this.controller.signal.aborted && !(err instanceof QubesAbortError) && !(err instanceof QubesException)) {
      return new QubesAbortError(this.what, this.user?.reason);
    }
    if (this.controller.signal.aborted && err instanceof QubesAbortError) return new QubesAbortError(this.what, this.user?.reason);
    return err;
  }
}

/**
 * Sends Admin API calls through a transport. Stateless and safe to share;
 * every call uses its own connection.
 */
export class AdminClient {
  readonly transport: Transport;
  readonly source: string;
  readonly timeout: number;

  constructor(options: AdminClientOptions) {
    this.transport = options.transport;
    this.source = options.source ?? "dom0";
    this.timeout = options.timeout ?? 120_000;
  }

  /** Builds (and unless `unchecked`, validates) the wire request of a call. */
  request(call: Pick<AdminCall<unknown>, "method" | "dest" | "arg" | "payload">, unchecked = false): WireRequest {
    const arg = call.arg ?? "";
    if (!unchecked) {
      validateMethod(call.method);
      validateDest(call.dest);
      validateArg(arg);
    }
    return { method: call.method, arg, source: this.source, ...wireDest(call.dest), payload: toBytes(call.payload) };
  }

  /** Runs a call and returns its parsed value, or throws the typed error. */
  async run<T>(call: AdminCall<T>, options: CallOptions = {}): Promise<T> {
    const text = await this.callText(call, options);
    return call.parse(text);
  }

  /** Runs a call and returns the success text. */
  async callText(call: Pick<AdminCall<unknown>, "method" | "dest" | "arg" | "payload">, options: CallOptions = {}): Promise<string> {
    const req = this.request(call, options.unchecked);
    const what = `${call.method} on ${call.dest}`;
    const scope = new CallScope(options.signal, options.timeout ?? this.timeout, what);
    const chunks: Uint8Array[] = [];
    try {
      for await (const chunk of this.transport.call(req, { signal: scope.controller.signal })) chunks.push(chunk);
    } catch (err) {
      throw scope.map(err);
    } finally {
      scope.close();
    }
    if (scope.timedOut) throw new QubesTimeoutError(options.timeout ?? this.timeout, what);
    return replyText(concatBytes(chunks));
  }

  /**
   * Opens a stream call (`admin.Events`, `admin.vm.Stats`) and yields its
   * events until the server closes or the consumer stops. One connection; see
   * {@link EventStream} for reconnecting.
   */
  async *stream(call: Pick<AdminCall<unknown>, "method" | "dest" | "arg">, options: StreamOptions = {}): AsyncGenerator<QubesEvent> {
    const req = this.request({ ...call, payload: undefined }, options.unchecked);
    const what = `${call.method} on ${call.dest}`;
    const connectTimeout = options.connectTimeout ?? this.timeout;
    const scope = new CallScope(options.signal, connectTimeout, what);
    const decoder = new EventDecoder();
    let iterator: AsyncIterator<Uint8Array> | undefined;
    try {
      iterator = this.transport.call(req, { signal: scope.controller.signal })[Symbol.asyncIterator]();
      for (;;) {
        let step: IteratorResult<Uint8Array>;
        try {
          step = await iterator.next();
        } catch (err) {
          throw scope.map(err);
        }
        if (step.done) break;
        const events = decoder.push(step.value);
        if (decoder.hasStarted) scope.disarm();
        for (const e of events) yield e;
      }
      decoder.finish();
    } finally {
      scope.close();
      await iterator?.return?.();
    }
  }
}
