/**
 * The JSON encoder of the stdio connection: like the library's, except that
 * `textDocument/publishDiagnostics` is written from each diagnostic's encoded
 * JSON, kept per diagnostic object. The server hands the same object again for
 * a diagnostic that did not change (see `server-core.ts`), so a notification
 * for a large file (thousands of warnings, megabytes of JSON, sent again after
 * every key) costs a copy of kept bytes plus the encoding of the new ones: no
 * string of the whole message is made.
 *
 * INVARIANT: the bytes parse to the same value as `JSON.stringify(message)`
 * (`test/lsp/encoder.test.ts`); a diagnostic object is never changed after it
 * was published (the server treats them as values).
 */
import type { Message } from "vscode-languageserver";

/** Diagnostic (or any JSON object) → its UTF-8 JSON bytes. */
const encoded = new WeakMap<object, Buffer>();

function bytesOf(value: object): Buffer {
  let b = encoded.get(value);
  if (b === undefined) {
    // `JSON.stringify` of an array element that encodes to nothing (a `toJSON` returning undefined) is `null`.
    const text: string | undefined = JSON.stringify(value);
    encoded.set(value, (b = Buffer.from(text === undefined ? "null" : text, "utf8")));
  }
  return b;
}

/** The keys a `publishDiagnostics` notification has (anything else is encoded the plain way). */
const NOTIFICATION_KEYS = new Set(["jsonrpc", "method", "params"]);
const PARAMS_KEYS = new Set(["uri", "version", "diagnostics"]);
const COMMA = 0x2c;
const TAIL = Buffer.from("]}}", "utf8");

function onlyKeys(o: object, keys: ReadonlySet<string>): boolean {
  for (const k in o) if (!keys.has(k)) return false;
  return true;
}

/** The parts of a `publishDiagnostics` notification whose diagnostics are cached, or `undefined` for any other message. */
function diagnosticsParts(msg: Message): { head: string; diagnostics: object[] } | undefined {
  const m = msg as { jsonrpc?: unknown; method?: unknown; params?: unknown };
  if (m.method !== "textDocument/publishDiagnostics" || typeof m.jsonrpc !== "string" || !onlyKeys(m, NOTIFICATION_KEYS)) return undefined;
  const p = m.params as { uri?: unknown; version?: unknown; diagnostics?: unknown } | undefined;
  if (p === null || typeof p !== "object" || typeof p.uri !== "string" || !Array.isArray(p.diagnostics)) return undefined;
  if (!(p.version === undefined || typeof p.version === "number") || !onlyKeys(p, PARAMS_KEYS)) return undefined;
  const list = p.diagnostics as unknown[];
  for (let i = 0; i < list.length; i++) {
    const d = list[i];
    if (d === null || typeof d !== "object" || Array.isArray(d)) return undefined;
  }
  const version = p.version === undefined ? "" : `,"version":${JSON.stringify(p.version)}`;
  return { head: `{"jsonrpc":${JSON.stringify(m.jsonrpc)},"method":"textDocument/publishDiagnostics","params":{"uri":${JSON.stringify(p.uri)}${version},"diagnostics":[`, diagnostics: list as object[] };
}

/** The UTF-8 JSON bytes of a message. */
export function encodeMessageBytes(msg: Message): Buffer {
  const parts = diagnosticsParts(msg);
  if (!parts) return Buffer.from(JSON.stringify(msg, undefined, 0), "utf8");
  const list = parts.diagnostics;
  // One buffer of the exact size, filled by copies (a concat of thousands of small buffers costs more).
  const pieces: Buffer[] = new Array(list.length);
  const head = Buffer.from(parts.head, "utf8");
  let size = head.length + list.length + TAIL.length;
  for (let i = 0; i < list.length; i++) size += (pieces[i] = bytesOf(list[i]!)).length;
  const out = Buffer.allocUnsafe(size);
  let at = head.copy(out, 0);
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) out[at++] = COMMA;
    at += pieces[i]!.copy(out, at);
  }
  at += TAIL.copy(out, at);
  return at === size ? out : out.subarray(0, at);
}

/** The JSON text of a message (what {@link encodeMessageBytes} writes, as a string). */
export function encodeMessage(msg: Message): string {
  return encodeMessageBytes(msg).toString("utf8");
}

/** A content type encoder for `StreamMessageWriter` (`application/json`). */
export const cachingJsonEncoder = {
  name: "application/json",
  encode(msg: Message, options: { charset: BufferEncoding | string }): Promise<Uint8Array> {
    try {
      const charset = String(options.charset).toLowerCase();
      if (charset === "utf-8" || charset === "utf8") return Promise.resolve(encodeMessageBytes(msg));
      return Promise.resolve(Buffer.from(JSON.stringify(msg, undefined, 0), options.charset as BufferEncoding));
    } catch (e) {
      return Promise.reject(e);
    }
  },
};
