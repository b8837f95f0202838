/**
 * The JSON encoder of the stdio connection: like the library's, except that
 * `textDocument/publishDiagnostics` is written from each diagnostic's JSON
 * text, kept per diagnostic object. The server hands the same object again for
 * a diagnostic that did not change (see `server-core.ts`), so a notification
 * for a large file (thousands of warnings, megabytes of JSON, sent again after
 * every key) costs a join of kept texts plus the new ones.
 *
 * INVARIANT: the bytes parse to the same value as `JSON.stringify(message)`
 * (a test compares them); a diagnostic object is never changed after it was
 * published (the server treats them as values).
 */
import type { Message } from "vscode-languageserver";

/** Diagnostic (or any JSON object) → its JSON text. */
const texts = new WeakMap<object, string>();

function jsonOf(value: object): string {
  let t = texts.get(value);
  if (t === undefined) texts.set(value, (t = JSON.stringify(value)));
  return t;
}

/** The keys a `publishDiagnostics` notification has (anything else is encoded the plain way). */
const NOTIFICATION_KEYS = new Set(["jsonrpc", "method", "params"]);
const PARAMS_KEYS = new Set(["uri", "version", "diagnostics"]);

/** The JSON text of a message. */
export function encodeMessage(msg: Message): string {
  const m = msg as { jsonrpc?: unknown; method?: unknown; params?: unknown };
  if (m.method === "textDocument/publishDiagnostics" && Object.keys(m).every((k) => NOTIFICATION_KEYS.has(k))) {
    const p = m.params as { uri?: unknown; version?: unknown; diagnostics?: unknown } | undefined;
    if (
      p !== null &&
      typeof p === "object" &&
      typeof p.uri === "string" &&
      Array.isArray(p.diagnostics) &&
      (p.version === undefined || typeof p.version === "number") &&
      Object.keys(p).every((k) => PARAMS_KEYS.has(k)) &&
      p.diagnostics.every((d) => d !== null && typeof d === "object")
    ) {
      const version = p.version === undefined ? "" : `,"version":${JSON.stringify(p.version)}`;
      const list = (p.diagnostics as object[]).map(jsonOf).join(",");
      return `{"jsonrpc":${JSON.stringify(m.jsonrpc)},"method":"textDocument/publishDiagnostics","params":{"uri":${JSON.stringify(p.uri)}${version},"diagnostics":[${list}]}}`;
    }
  }
  return JSON.stringify(msg, undefined, 0);
}

/** A content type encoder for `StreamMessageWriter` (`application/json`). */
export const cachingJsonEncoder = {
  name: "application/json",
  encode(msg: Message, options: { charset: BufferEncoding | string }): Promise<Uint8Array> {
    try {
      return Promise.resolve(Buffer.from(encodeMessage(msg), options.charset as BufferEncoding));
    } catch (e) {
      return Promise.reject(e);
    }
  },
};
