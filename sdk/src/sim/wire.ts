/**
 * The qubesd wire format, server side: parsing a request, encoding the three
 * kinds of reply frame, and the two ways a handler fails (a `2\0` exception
 * frame, or a closed connection without a byte).
 */

/** The most bytes qubesd buffers for one request (header and payload); more aborts the connection. */
export const MAX_REQUEST_BYTES = 65536;

/** One parsed request, as qubesd sees it after framing. */
export interface SimRequest {
  /** The method name (before the first `+`). */
  method: string;
  /** The argument (after the first `+`; empty when absent). */
  arg: string;
  /** The calling qube, raw bytes decoded as latin1 (qubesd decodes it as ASCII later). */
  source: string;
  /** The destination (after `keyword adminvm` was turned into `dom0`). */
  dest: string;
  /** The payload bytes. */
  payload: Buffer;
}

/**
 * A failure that qubesd turns into an exception frame `2\0<type>\0<traceback>\0<message>\0`.
 * `type` is the server's exception class name, `message` its text.
 */
export class SimError extends Error {
  override name = "SimError";
  constructor(
    /** The qubesd exception class name, e.g. `QubesVMNotFoundError`. */
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A failure that qubesd does not turn into a reply: a Python exception that is
 * not a `QubesException`/`ProtocolError`/`PermissionDenied`. The client sees the
 * connection close without a byte. `reason` says what the real daemon raised.
 */
export class SimAbort extends Error {
  override name = "SimAbort";
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** Shorthand for `new SimError(type, message)`. */
export function qerr(type: string, message: string): SimError {
  return new SimError(type, message);
}

/** `ProtocolError(message)`. */
export function protocolError(message: string): SimError {
  return new SimError("ProtocolError", message);
}

/**
 * Parses one request the way `QubesDaemonProtocol.eof_received` does. Returns
 * `undefined` for a framing error (no NUL, fewer than four header fields, a
 * destination type other than `name` or `keyword adminvm`).
 */
export function parseRequest(buf: Buffer): SimRequest | undefined {
  const nul = buf.indexOf(0);
  if (nul < 0) return undefined;
  const header = buf.subarray(0, nul).toString("latin1");
  const payload = buf.subarray(nul + 1);
  // Python's split(b" ", 3): at most four parts, the last keeps its spaces.
  const parts: string[] = [];
  let rest = header;
  for (let i = 0; i < 3; i++) {
    const sp = rest.indexOf(" ");
    if (sp < 0) return undefined;
    parts.push(rest.slice(0, sp));
    rest = rest.slice(sp + 1);
  }
  parts.push(rest);
  const [methArg, source, destTypeRaw, destRaw] = parts as [string, string, string, string];
  let destType = destTypeRaw;
  let dest = destRaw;
  if (destType === "keyword" && dest === "adminvm") {
    destType = "name";
    dest = "dom0";
  }
  if (destType !== "name") return undefined;
  const plus = methArg.indexOf("+");
  const method = plus < 0 ? methArg : methArg.slice(0, plus);
  const arg = plus < 0 ? "" : methArg.slice(plus + 1);
  return { method, arg, source, dest, payload: Buffer.from(payload) };
}

/** Encodes a request the way qubesadmin does (`method+arg src name dest\0payload`). */
export function encodeRequest(req: {
  method: string;
  arg?: string;
  source?: string;
  dest: string;
  destType?: string;
  payload?: Uint8Array | string;
}): Buffer {
  const head = `${req.method}+${req.arg ?? ""} ${req.source ?? "dom0"} ${req.destType ?? "name"} ${req.dest}\0`;
  const payload = typeof req.payload === "string" ? Buffer.from(req.payload, "utf8") : Buffer.from(req.payload ?? []);
  return Buffer.concat([Buffer.from(head, "latin1"), payload]);
}

/** `0\0<text>`: a successful reply. */
export function okFrame(text: string | undefined | null): Buffer {
  return Buffer.concat([Buffer.from([0x30, 0]), Buffer.from(text ?? "", "utf8")]);
}

/** `2\0<type>\0\0<message>\0`: an exception reply (no traceback, as without `--debug`). */
export function exceptionFrame(type: string, message: string): Buffer {
  return Buffer.concat([Buffer.from([0x32, 0]), Buffer.from(`${type}\0\0${message}\0`, "utf8")]);
}

/** `1\0<subject>\0<event>\0(<key>\0<value>\0)*\0`: one event frame; subject `""` is the app. */
export function eventFrame(subject: string, event: string, kwargs: ReadonlyArray<readonly [string, string]>): Buffer {
  let s = `${subject}\0${event}\0`;
  for (const [k, v] of kwargs) s += `${k}\0${v}\0`;
  s += "\0";
  return Buffer.concat([Buffer.from([0x31, 0]), Buffer.from(s, "utf8")]);
}

/** Python's `repr()` of a `str`. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + quote;
}

/** Python's `repr()` of a `dict[str, str]` (insertion order). */
export function pyDictRepr(d: ReadonlyArray<readonly [string, string]>): string {
  return "{" + d.map(([k, v]) => `${pyStrRepr(k)}: ${pyStrRepr(v)}`).join(", ") + "}";
}

/** Python's `repr()` of a `set` of one-character strings (sorted here, for determinism). */
export function pySetRepr(chars: Iterable<string>): string {
  return "{" + [...new Set(chars)].sort().map(pyStrRepr).join(", ") + "}";
}

/** True when every byte is 7-bit ASCII (Python's `decode("ascii")` would succeed). */
export function isAscii(buf: Uint8Array | string): boolean {
  if (typeof buf === "string") {
    for (let i = 0; i < buf.length; i++) if (buf.charCodeAt(i) > 0x7f) return false;
    return true;
  }
  for (const b of buf) if (b > 0x7f) return false;
  return true;
}
