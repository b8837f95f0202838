/**
 * Transports: how request bytes reach qubesd and how reply bytes come back.
 *
 * A {@link Transport} opens one call and yields the reply bytes until the
 * other side closes. Implementations:
 *
 * - {@link UnixSocketTransport}: dom0's `/var/run/qubesd.sock` (or any path),
 *   one connection per call, half-closed after the request.
 * - {@link CommandTransport}: a spawned process per call, payload on stdin,
 *   reply on stdout (`qrexec-client-vm` from a management qube, or a user's
 *   ssh wrapper); a non-zero exit becomes a {@link QubesServiceCallError}.
 * - {@link FunctionTransport}: an in-process handler (the simulator, tests).
 *
 * The policy admin API (`policy.*`) is not served by qubesd; transports that
 * can reach it implement {@link Transport.runService}.
 */
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { QubesAbortError, QubesServiceCallError, QubesTransportError } from "./errors.js";
import { encodeRequest, requestHeader, type WireRequest } from "./protocol.js";

/** Options of one transport call. */
export interface TransportCallOptions {
  /** Aborting closes the connection (or kills the process). */
  signal?: AbortSignal;
}

/** A qrexec service call that is not a qubesd call (e.g. `policy.Get+30-user`). */
export interface ServiceRequest {
  /** The service name, e.g. `policy.Get`. */
  service: string;
  /** The argument, without the `+` (may be empty). */
  arg: string;
  /** The qrexec target, normally `dom0`. */
  dest: string;
  /** Standard input. */
  stdin: Uint8Array;
}

/** The outcome of a {@link ServiceRequest}. */
export interface ServiceResult {
  exitCode: number | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

/** The seam between the client and a qubesd-like server. */
export interface Transport {
  /** A short description for messages, e.g. `unix socket /var/run/qubesd.sock`. */
  readonly description: string;
  /**
   * Sends one request and yields the reply bytes until the server closes the
   * connection. Ending the iteration early (break / return) closes the
   * connection. Errors are {@link QubesTransportError} or subclasses.
   */
  call(request: WireRequest, options?: TransportCallOptions): AsyncIterable<Uint8Array>;
  /** Runs a qrexec service that is not served by qubesd (the policy admin API). Optional. */
  runService?(request: ServiceRequest, options?: TransportCallOptions): Promise<ServiceResult>;
}

/** The dom0 socket of the Admin API. */
export const DEFAULT_QUBESD_SOCKET = "/var/run/qubesd.sock";

/** The socket path to use: explicit path, else `$QUBESD_SOCKET`, else `/var/run/qubesd.sock`. */
export function resolveSocketPath(path?: string, env: Record<string, string | undefined> = process.env): string {
  return path ?? env["QUBESD_SOCKET"] ?? DEFAULT_QUBESD_SOCKET;
}

/** A pull-based async queue of byte chunks fed by a push source. */
class ChunkQueue {
  private chunks: Uint8Array[] = [];
  private done = false;
  private error: unknown;
  private wake: (() => void) | undefined;

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.notify();
  }
  end(): void {
    this.done = true;
    this.notify();
  }
  fail(err: unknown): void {
    if (this.done) return;
    this.error = err;
    this.done = true;
    this.notify();
  }
  get size(): number {
    return this.chunks.length;
  }
  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
  async *drain(onPull?: () => void): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.chunks.length > 0) {
        yield this.chunks.shift()!;
        onPull?.();
        continue;
      }
      if (this.done) {
        if (this.error !== undefined) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

function abortReason(signal: AbortSignal, what: string): unknown {
  return new QubesAbortError(what, signal.reason);
}

/** Options of {@link UnixSocketTransport}. */
export interface UnixSocketTransportOptions {
  /** The socket path; default `$QUBESD_SOCKET` or `/var/run/qubesd.sock`. */
  path?: string;
  /**
   * Also send the policy admin API (`policy.*`) over this socket, framed
   * like a qubesd call (`0\0stdout` / `2\0Class\0\0message\0`). The
   * qubes-kit simulator serves it that way; a real qubesd does not (in dom0
   * use {@link PolicyAdminExecTransport}). Default `false`.
   */
  servicesOverSocket?: boolean;
}

/**
 * The dom0 transport: one Unix-socket connection per call. Writes the whole
 * request, half-closes (`shutdown(SHUT_WR)`, which is when qubesd acts), then
 * reads to EOF. Reading pauses while the consumer does not pull (backpressure).
 */
export class UnixSocketTransport implements Transport {
  /** The socket path. */
  readonly path: string;
  readonly description: string;

  private readonly servicesOverSocket: boolean;

  constructor(options: UnixSocketTransportOptions | string = {}) {
    this.path = typeof options === "string" ? options : resolveSocketPath(options.path);
    this.servicesOverSocket = typeof options === "string" ? false : !!options.servicesOverSocket;
    this.description = `unix socket ${this.path}`;
  }

  /** The policy admin API over the socket (only with `servicesOverSocket`). */
  async runService(request: ServiceRequest, options: TransportCallOptions = {}): Promise<ServiceResult> {
    if (!this.servicesOverSocket) {
      throw new QubesTransportError(`${this.description} does not serve ${request.service} (qubesd has no policy admin api)`, { code: "unsupported-call" });
    }
    const chunks: Uint8Array[] = [];
    const req: WireRequest = { method: request.service, arg: request.arg, source: "dom0", destType: "name", dest: request.dest, payload: request.stdin };
    for await (const c of this.call(req, options)) chunks.push(c);
    return framedToServiceResult(Buffer.concat(chunks));
  }

  call(request: WireRequest, options: TransportCallOptions = {}): AsyncIterable<Uint8Array> {
    const bytes = encodeRequest(request);
    const path = this.path;
    return {
      [Symbol.asyncIterator]: () => {
        const queue = new ChunkQueue();
        const what = `call ${request.method} through ${this.description}`;
        const signal = options.signal;
        if (signal?.aborted) {
          queue.fail(abortReason(signal, what));
          return queue.drain();
        }
        const sock = connect({ path });
        let finished = false;
        const onAbort = () => {
          queue.fail(abortReason(signal!, what));
          sock.destroy();
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        const cleanup = () => {
          finished = true;
          signal?.removeEventListener("abort", onAbort);
        };
        sock.on("connect", () => {
          sock.end(bytes); // writes, then half-closes the write side
        });
        sock.on("data", (chunk: Buffer) => {
          queue.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if (queue.size > 16) sock.pause();
        });
        sock.on("end", () => {
          cleanup();
          queue.end();
        });
        sock.on("error", (err: NodeJS.ErrnoException) => {
          cleanup();
          if (err.code === "EPIPE" || err.code === "ECONNRESET") {
            // The server closed early (e.g. an over-long request): what was read so far is the reply.
            queue.end();
            return;
          }
          queue.fail(new QubesTransportError(`cannot talk to qubesd at ${path}: ${err.message}`, { cause: err, code: err.code === "ENOENT" || err.code === "ECONNREFUSED" || err.code === "EACCES" ? "connect-failed" : "transport-failed" }));
        });
        sock.on("close", () => {
          cleanup();
          queue.end();
        });
        const gen = queue.drain(() => {
          if (queue.size <= 4 && sock.isPaused()) sock.resume();
        });
        // Make `return()` (break in for-await) close the socket.
        const origReturn = gen.return.bind(gen);
        gen.return = (value?: unknown) => {
          if (!finished) sock.destroy();
          cleanup();
          return origReturn(value as undefined);
        };
        return gen;
      },
    };
  }
}

/** Options of {@link CommandTransport}. */
export interface CommandTransportOptions {
  /**
   * The command line per call. Placeholders inside elements are replaced:
   * `{dest}` (qrexec target: a qube name, `uuid:…` or `@adminvm`),
   * `{service}` (`method+arg`), `{method}`, `{arg}`.
   */
  argv: string[];
  /** Extra environment for the process. */
  env?: Record<string, string>;
  /** A description for messages. */
  description?: string;
}

/** The qrexec target for a request: `@adminvm` for the adminvm keyword, else the name. */
export function qrexecTarget(request: Pick<WireRequest, "destType" | "dest">): string {
  return request.destType === "keyword" ? `@${request.dest}` : request.dest;
}

function fill(argv: string[], vars: Record<string, string>): string[] {
  return argv.map((a) => a.replace(/\{(dest|service|method|arg)\}/g, (_, k: string) => vars[k] ?? ""));
}

/**
 * A process per call: `argv` with placeholders filled, the payload on stdin,
 * the reply read from stdout. A non-zero exit without output (a qrexec policy
 * refusal, a failed ssh) becomes {@link QubesServiceCallError} with stderr.
 */
export class CommandTransport implements Transport {
  readonly description: string;
  private readonly argv: string[];
  private readonly env: Record<string, string> | undefined;

  constructor(options: CommandTransportOptions) {
    if (options.argv.length === 0) throw new TypeError("command transport needs a non-empty argv");
    this.argv = options.argv;
    this.env = options.env;
    this.description = options.description ?? `command ${options.argv[0]}`;
  }

  call(request: WireRequest, options: TransportCallOptions = {}): AsyncIterable<Uint8Array> {
    // Check the size limit exactly as the socket transport does, before spawning anything.
    encodeRequest(request);
    const argv = fill(this.argv, {
      dest: qrexecTarget(request),
      service: `${request.method}+${request.arg}`,
      method: request.method,
      arg: request.arg,
    });
    const what = `call ${request.method} through ${this.description}`;
    return {
      [Symbol.asyncIterator]: () => {
        const queue = new ChunkQueue();
        const signal = options.signal;
        if (signal?.aborted) {
          queue.fail(abortReason(signal, what));
          return queue.drain();
        }
        const child = spawn(argv[0]!, argv.slice(1), {
          stdio: ["pipe", "pipe", "pipe"],
          env: this.env ? { ...process.env, ...this.env } : process.env,
        });
        const stderr: Buffer[] = [];
        let gotData = false;
        let finished = false;
        const onAbort = () => {
          queue.fail(abortReason(signal!, what));
          child.kill("SIGTERM");
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        child.stdin.on("error", () => undefined);
        child.stdin.end(Buffer.from(request.payload));
        child.stdout.on("data", (chunk: Buffer) => {
          gotData = true;
          queue.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        });
        child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
        child.on("error", (err) => {
          finished = true;
          signal?.removeEventListener("abort", onAbort);
          queue.fail(new QubesTransportError(`cannot run ${argv[0]}: ${err.message}`, { cause: err, code: "spawn-failed" }));
        });
        child.on("close", (code) => {
          finished = true;
          signal?.removeEventListener("abort", onAbort);
          if (code !== 0 && !gotData) {
            queue.fail(new QubesServiceCallError(code, Buffer.concat(stderr).toString("utf8"), argv.join(" ")));
          } else {
            queue.end();
          }
        });
        const gen = queue.drain();
        const origReturn = gen.return.bind(gen);
        gen.return = (value?: unknown) => {
          if (!finished) child.kill("SIGTERM");
          return origReturn(value as undefined);
        };
        return gen;
      },
    };
  }

  async runService(request: ServiceRequest, options: TransportCallOptions = {}): Promise<ServiceResult> {
    const argv = fill(this.argv, {
      dest: request.dest,
      service: request.arg === "" ? request.service : `${request.service}+${request.arg}`,
      method: request.service,
      arg: request.arg,
    });
    return runProcess(argv, request.stdin, this.env, options.signal, `run ${request.service} through ${this.description}`);
  }
}

/** Spawns a process, feeds stdin, collects stdout/stderr and the exit code. */
export function runProcess(
  argv: string[],
  stdin: Uint8Array,
  env: Record<string, string> | undefined,
  signal: AbortSignal | undefined,
  what: string,
): Promise<ServiceResult> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal, what));
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["pipe", "pipe", "pipe"],
      env: env ? { ...process.env, ...env } : process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const onAbort = () => {
      child.kill("SIGTERM");
      reject(abortReason(signal!, what));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    child.stdin.on("error", () => undefined);
    child.stdin.end(Buffer.from(stdin));
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) => {
      signal?.removeEventListener("abort", onAbort);
      reject(new QubesTransportError(`cannot run ${argv[0]}: ${e.message}`, { cause: e, code: "spawn-failed" }));
    });
    child.on("close", (code) => {
      signal?.removeEventListener("abort", onAbort);
      resolve({ exitCode: code, stdout: new Uint8Array(Buffer.concat(out)), stderr: new Uint8Array(Buffer.concat(err)) });
    });
  });
}

/** Options of {@link QrexecClientVmTransport}. */
export interface QrexecClientVmTransportOptions {
  /** The program (default `qrexec-client-vm`). */
  program?: string;
}

/**
 * From a management qube: `qrexec-client-vm <dest> <method>+<arg>` per call.
 * qrexec fills in the source; qrexec policy must allow the call.
 */
export class QrexecClientVmTransport extends CommandTransport {
  constructor(options: QrexecClientVmTransportOptions = {}) {
    const program = options.program ?? "qrexec-client-vm";
    super({ argv: [program, "{dest}", "{service}"], description: program });
  }
}

/** Options of {@link PolicyAdminExecTransport}. */
export interface PolicyAdminExecTransportOptions {
  /** The policy admin executable (default `/usr/bin/qubes-policy-admin`). */
  program?: string;
  /** The caller name passed as `QREXEC_REMOTE_DOMAIN` (default `dom0`). */
  source?: string;
  /** `QREXEC_POLICY_DIR` override (for tests). */
  policyDir?: string;
}

/**
 * In dom0, the policy admin API is a local executable: this runs it the way
 * qrexec does (`QREXEC_SERVICE_FULL_NAME`, `QREXEC_REMOTE_DOMAIN`, stdin).
 * It has no qubesd calls; combine it with a socket transport through
 * {@link withServiceTransport}.
 */
export class PolicyAdminExecTransport implements Transport {
  readonly description: string;
  private readonly program: string;
  private readonly source: string;
  private readonly policyDir: string | undefined;

  constructor(options: PolicyAdminExecTransportOptions = {}) {
    this.program = options.program ?? "/usr/bin/qubes-policy-admin";
    this.source = options.source ?? "dom0";
    this.policyDir = options.policyDir;
    this.description = this.program;
  }

  call(request: WireRequest): AsyncIterable<Uint8Array> {
    const err = new QubesTransportError(`${this.description} cannot make qubesd call ${request.method}`, { code: "unsupported-call" });
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => Promise.reject(err),
      }),
    };
  }

  runService(request: ServiceRequest, options: TransportCallOptions = {}): Promise<ServiceResult> {
    const env: Record<string, string> = {
      QREXEC_SERVICE_FULL_NAME: request.arg === "" ? request.service : `${request.service}+${request.arg}`,
      QREXEC_REMOTE_DOMAIN: this.source,
    };
    if (this.policyDir) env["QREXEC_POLICY_DIR"] = this.policyDir;
    return runProcess([this.program], request.stdin, env, options.signal, `run ${request.service}`);
  }
}

/** Combines a qubesd transport with another transport's {@link Transport.runService}. */
export function withServiceTransport(qubesd: Transport, services: Pick<Transport, "runService" | "description">): Transport {
  return {
    description: qubesd.description,
    call: (req, opts) => qubesd.call(req, opts),
    runService: (req, opts) => {
      if (!services.runService) throw new QubesTransportError(`${services.description} cannot run services`, { code: "unsupported-call" });
      return services.runService(req, opts);
    },
  };
}

/**
 * The in-process handler of {@link FunctionTransport}: gets the exact request
 * bytes (and the decoded request) and returns the reply, whole or as chunks.
 * Returning an empty array means "closed without a byte".
 */
export type RequestHandler = (
  requestBytes: Uint8Array,
  request: WireRequest,
  options: TransportCallOptions,
) => Uint8Array | Promise<Uint8Array> | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** The in-process service handler of {@link FunctionTransport}. */
export type ServiceHandler = (request: ServiceRequest, options: TransportCallOptions) => ServiceResult | Promise<ServiceResult>;

function isAsyncIterable(x: unknown): x is AsyncIterable<Uint8Array> {
  return typeof x === "object" && x !== null && Symbol.asyncIterator in x;
}

/**
 * An in-process transport over a handler function: the seam for the
 * simulator and for tests. Request bytes are framed exactly as on the socket
 * (the handler sees `method+arg source dest_type dest\0payload`).
 */
export class FunctionTransport implements Transport {
  readonly description: string;
  private readonly handler: RequestHandler;
  private readonly serviceHandler: ServiceHandler | undefined;

  constructor(handler: RequestHandler, options: { description?: string; services?: ServiceHandler } = {}) {
    this.handler = handler;
    this.serviceHandler = options.services;
    this.description = options.description ?? "in-process handler";
  }

  call(request: WireRequest, options: TransportCallOptions = {}): AsyncIterable<Uint8Array> {
    const bytes = encodeRequest(request);
    const handler = this.handler;
    const what = `call ${request.method} through ${this.description}`;
    return {
      async *[Symbol.asyncIterator]() {
        if (options.signal?.aborted) throw abortReason(options.signal, what);
        const reply = await handler(bytes, request, options);
        if (reply instanceof Uint8Array) {
          if (reply.length > 0) yield reply;
          return;
        }
        if (isAsyncIterable(reply)) {
          for await (const chunk of reply) {
            if (options.signal?.aborted) throw abortReason(options.signal, what);
            yield chunk;
          }
          return;
        }
        for (const chunk of reply) yield chunk;
      },
    };
  }

  async runService(request: ServiceRequest, options: TransportCallOptions = {}): Promise<ServiceResult> {
    if (!this.serviceHandler) throw new QubesTransportError(`${this.description} does not serve ${request.service}`, { code: "unsupported-call" });
    return this.serviceHandler(request, options);
  }
}

/**
 * Turns a qubesd-framed answer of a service (`0\0stdout`, or
 * `2\0Class\0\0message\0`) into what the service process would have
 * printed: exit 0 with stdout, exit 1 with `Class message` on stderr, or exit
 * 2 for `PolicyAdminInternalError` and anything unreadable.
 */
export function framedToServiceResult(b: Uint8Array): ServiceResult {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const empty = new Uint8Array(0);
  if (buf.length >= 2 && buf[0] === 0x30 && buf[1] === 0) return { exitCode: 0, stdout: new Uint8Array(buf.subarray(2)), stderr: empty };
  if (buf.length >= 2 && buf[0] === 0x32 && buf[1] === 0) {
    const [type = "", , message = ""] = buf.subarray(2).toString("utf8").split("\0");
    if (type === "PolicyAdminInternalError") return { exitCode: 2, stdout: empty, stderr: new Uint8Array(Buffer.from(message, "utf8")) };
    return { exitCode: 1, stdout: empty, stderr: new Uint8Array(Buffer.from(`${type} ${message}`, "utf8")) };
  }
  return { exitCode: 2, stdout: empty, stderr: new Uint8Array(Buffer.from("no reply from the policy admin service", "utf8")) };
}

/** For messages: the header of a request as text. */
export function describeRequest(request: WireRequest): string {
  return requestHeader(request);
}
