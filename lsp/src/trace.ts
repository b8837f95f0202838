/**
 * Where messages wait: an event log of the server's turns, off unless a host
 * sets a tracer (`qkit-lsp --stdio` does when `QKIT_LSP_TRACE` names a file;
 * `bench/lsp.mjs --trace` reads it). The events:
 *
 * - `read` (method, id): the connection's reader has a message (`incoming.ts`);
 * - `begin` / `end` (method): a request handler starts and returns (`features/types.ts`);
 * - `slice` / `sliced`, `publish` / `published`: a turn of analysis, of publication (`server-core.ts`);
 * - `write` / `written` (method or `response`, id): a message handed to the stream and
 *   written to the end (`outgoing.ts`).
 *
 * The host adds the time; tracing off costs one check per event.
 */

/** Receives an event (see the module comment). */
export type Tracer = (kind: string, a?: string | number, b?: string | number) => void;

let tracer: Tracer | undefined;

/** Turns the event log on (a function) or off (`undefined`). */
export function setTracer(t: Tracer | undefined): void {
  tracer = t;
}

/** Logs an event when tracing is on. */
export function traceEvent(kind: string, a?: string | number, b?: string | number): void {
  if (tracer) tracer(kind, a, b);
}
