/**
 * The wire format of qubesd: request framing, reply parsing and the event
 * stream decoder. Everything here works on bytes; text is decoded only after
 * the reply kind is known.
 */
import {
  QubesDaemonCommunicationError,
  QubesEmptyReplyError,
  QubesException,
  QubesRequestTooLargeError,
  errorFromWire,
} from "./errors.js";

/** The largest request (header + payload) qubesd accepts. */
export const MAX_REQUEST_BYTES = 65536;

/** One call as it goes on the wire. */
export interface WireRequest {
  /** The method, e.g. `admin.vm.property.Get`. */
  method: string;
  /** The argument (may be empty). */
  arg: string;
  /** The calling qube (`dom0` from dom0; qrexec fills it in for other transports). */
  source: string;
  /** `name` (a qube name or `uuid:…`) or `keyword` (`adminvm`). */
  destType: "name" | "keyword";
  /** The destination qube name, `uuid:<uuid>`, or the keyword. */
  dest: string;
  /** The payload bytes (may be empty). */
  payload: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8");
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** The header line qubesd expects: `method+arg source dest_type dest` (without the NUL). */
export function requestHeader(req: Pick<WireRequest, "method" | "arg" | "source" | "destType" | "dest">): string {
  return `${req.method}+${req.arg} ${req.source} ${req.destType} ${req.dest}`;
}

/**
 * Encodes a request as qubesd reads it: the ASCII header, a NUL, then the
 * payload. Throws {@link QubesRequestTooLargeError} over 65536 bytes.
 */
export function encodeRequest(req: WireRequest): Uint8Array {
  const header = encoder.encode(requestHeader(req));
  const size = header.length + 1 + req.payload.length;
  if (size > MAX_REQUEST_BYTES) throw new QubesRequestTooLargeError(size);
  const out = new Uint8Array(size);
  out.set(header, 0);
  out[header.length] = 0;
  out.set(req.payload, header.length + 1);
  return out;
}

/** Encodes text as UTF-8 bytes. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decodes UTF-8 bytes (invalid sequences become U+FFFD). */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** A parsed reply of a non-streaming call. */
export type Reply =
  | { kind: "ok"; body: Uint8Array }
  | { kind: "exception"; type: string; traceback: string; message: string; args: string[] };

/** Concatenates byte chunks. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Splits a complete reply (everything read until EOF) into its kind. An
 * empty reply throws {@link QubesEmptyReplyError}; anything that is neither
 * `0\0` nor `2\0` throws {@link QubesDaemonCommunicationError}.
 */
export function parseReply(data: Uint8Array): Reply {
  if (data.length === 0) throw new QubesEmptyReplyError();
  if (data.length >= 2 && data[1] === 0 && data[0] === 0x30) return { kind: "ok", body: data.subarray(2) };
  if (data.length >= 2 && data[1] === 0 && data[0] === 0x32) {
    const fields: string[] = [];
    let start = 2;
    for (let i = 2; i < data.length; i++) {
      if (data[i] === 0) {
        fields.push(decoder.decode(data.subarray(start, i)));
        start = i + 1;
      }
    }
    if (fields.length < 3) {
      throw new QubesDaemonCommunicationError("malformed exception reply: fewer than three nul-terminated fields");
    }
    const [type, traceback, message, ...args] = fields as [string, string, string, ...string[]];
    return { kind: "exception", type, traceback, message, args };
  }
  if (data.length >= 2 && data[1] === 0 && data[0] === 0x31) {
    throw new QubesDaemonCommunicationError("unexpected event frame in the reply of a non-streaming call", "unexpected-event");
  }
  throw new QubesDaemonCommunicationError("invalid response format: reply does not start with 0\\0 or 2\\0");
}

/** Parses a complete reply and returns the body text of a success, or throws the typed error. */
export function replyText(data: Uint8Array): string {
  const reply = parseReply(data);
  if (reply.kind === "exception") throw errorFromWire(reply.type, reply.message, reply.traceback);
  try {
    return strictDecoder.decode(reply.body);
  } catch {
    throw new QubesDaemonCommunicationError("reply body is not valid utf-8", "invalid-utf8");
  }
}

/** Turns an exception reply into the typed error (helper for callers of {@link parseReply}). */
export function replyError(reply: Extract<Reply, { kind: "exception" }>): QubesException {
  return errorFromWire(reply.type, reply.message, reply.traceback);
}

/** One event of `admin.Events` / `admin.vm.Stats`. Values are always strings (Python `str()`). */
export interface QubesEvent {
  /** The qube the event is about, or `null` for the app itself (empty subject on the wire). */
  subject: string | null;
  /** The event name, e.g. `property-set:netvm`. */
  event: string;
  /** The keyword arguments, in wire order. */
  kwargs: Record<string, string>;
}

/**
 * An incremental decoder of event frames `1\0subject\0event\0(key\0value\0)*\0`.
 * Feed it chunks as they arrive; it returns the complete events. An
 * exception frame (`2\0…`) at the start of the stream becomes a thrown error.
 */
export class EventDecoder {
  private buf: Uint8Array = new Uint8Array(0);
  private started = false;

  /** Adds bytes; returns every event completed by them. Throws on malformed frames. */
  push(chunk: Uint8Array): QubesEvent[] {
    this.buf = this.buf.length === 0 ? chunk : concatBytes([this.buf, chunk]);
    const out: QubesEvent[] = [];
    for (;;) {
      if (this.buf.length < 2) break;
      if (!this.started && this.buf[0] === 0x32 && this.buf[1] === 0) {
        // An exception instead of a stream: wait for EOF (finish) to parse it whole.
        break;
      }
      if (this.buf[0] !== 0x31 || this.buf[1] !== 0) {
        if (this.buf[0] === 0x30 && this.buf[1] === 0 && !this.started) break;
        throw new QubesDaemonCommunicationError("malformed event frame: expected 1\\0");
      }
      const frame = this.tryFrame();
      if (!frame) break;
      this.started = true;
      out.push(frame.event);
      this.buf = this.buf.subarray(frame.end);
    }
    return out;
  }

  /**
   * Called at EOF. Throws the typed error if the stream was an exception
   * reply, {@link QubesEmptyReplyError} if nothing at all arrived, and
   * {@link QubesDaemonCommunicationError} for a truncated frame.
   */
  finish(): void {
    if (!this.started && this.buf.length === 0) throw new QubesEmptyReplyError();
    if (!this.started && this.buf.length >= 2 && this.buf[1] === 0 && (this.buf[0] === 0x32 || this.buf[0] === 0x30)) {
      const reply = parseReply(this.buf);
      if (reply.kind === "exception") throw replyError(reply);
      throw new QubesDaemonCommunicationError("stream call got a plain success reply instead of events", "not-a-stream");
    }
    if (this.buf.length > 0) throw new QubesDaemonCommunicationError("event stream ended in the middle of a frame", "truncated-event");
  }

  /** Whether at least one complete frame was decoded. */
  get hasStarted(): boolean {
    return this.started;
  }

  private tryFrame(): { event: QubesEvent; end: number } | undefined {
    const b = this.buf;
    let at = 2;
    const next = (): string | undefined => {
      const i = b.indexOf(0, at);
      if (i < 0) return undefined;
      const s = decoder.decode(b.subarray(at, i));
      at = i + 1;
      return s;
    };
    const subject = next();
    if (subject === undefined) return undefined;
    const event = next();
    if (event === undefined) return undefined;
    const kwargs: Record<string, string> = {};
    for (;;) {
      const key = next();
      if (key === undefined) return undefined;
      if (key === "") break;
      const value = next();
      if (value === undefined) return undefined;
      if (key === "__proto__") Object.defineProperty(kwargs, key, { value, enumerable: true, writable: true, configurable: true });
      else kwargs[key] = value;
    }
    return { event: { subject: subject === "" ? null : subject, event, kwargs }, end: at };
  }
}
