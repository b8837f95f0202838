/**
 * Messages first: a reader that counts the messages it hands on, so that the
 * server can let the connection dispatch every waiting message before it runs
 * another slice of analysis.
 *
 * `vscode-jsonrpc` dispatches one queued message per turn of the event loop,
 * and the analysis runs one slice per turn too: without this, each key typed
 * (a change and a completion request) waits behind two slices, and when the
 * analysis keeps the loop busy the messages queue up without end.
 */
import type { DataCallback, Disposable, Event, MessageReader, PartialMessageInfo } from "vscode-languageserver";
import { traceEvent } from "./trace.js";

/** A reader that calls `arrived` for every message it reads, before handing it on. */
export class CountingReader implements MessageReader {
  arrived: () => void = () => undefined;
  /** Sees every message read, before it is handed on. */
  seen: (message: unknown) => void = () => undefined;

  constructor(private readonly inner: MessageReader) {}

  get onError(): Event<Error> {
    return this.inner.onError;
  }

  get onClose(): Event<void> {
    return this.inner.onClose;
  }

  get onPartialMessage(): Event<PartialMessageInfo> {
    return this.inner.onPartialMessage;
  }

  listen(callback: DataCallback): Disposable {
    return this.inner.listen((message) => {
      const m = message as { method?: unknown; id?: unknown };
      traceEvent("read", typeof m.method === "string" ? m.method : "response", typeof m.id === "number" || typeof m.id === "string" ? m.id : undefined);
      this.seen(message);
      this.arrived();
      callback(message);
    });
  }

  dispose(): void {
    this.inner.dispose();
  }
}
