/**
 * Answers first: a writer that lets every other message go before a
 * `textDocument/publishDiagnostics` notification that has not started yet.
 *
 * The connection writes one message at a time, each to the end before the next
 * (`vscode-jsonrpc` waits for the stream's write callback, that is until the
 * client has read it off the pipe). A large file's notification is a megabyte
 * or more, sent again after every key: an answer to a completion request made
 * meanwhile waited behind it and behind the client's parse of it. Here the
 * answers, requests and other notifications are written in the order they were
 * given, and the diagnostics notifications (in their own order) only when none
 * of those waits; the one being written is finished first.
 *
 * INVARIANT: every message is written exactly once; the messages that are not
 * diagnostics keep their order, and so do the diagnostics notifications
 * (`test/lsp/outgoing.test.ts`).
 */
import type { Event, Message, MessageWriter } from "vscode-languageserver";
import { traceEvent } from "./trace.js";

interface Pending {
  message: Message;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Whether a message may wait for the others: a diagnostics notification. */
function deferrable(message: Message): boolean {
  return (message as { method?: unknown; id?: unknown }).method === "textDocument/publishDiagnostics" && !("id" in message);
}

/** A writer that writes through `inner` one message at a time, answers before diagnostics notifications. */
export class PriorityWriter implements MessageWriter {
  private readonly first: Pending[] = [];
  private readonly later: Pending[] = [];
  private writing = false;

  constructor(private readonly inner: MessageWriter) {}

  get onError(): Event<[Error, Message | undefined, number | undefined]> {
    return this.inner.onError;
  }

  get onClose(): Event<void> {
    return this.inner.onClose;
  }

  /** True while a message is being written (handed to the stream, not yet read off it to the end). */
  get busy(): boolean {
    return this.writing;
  }

  /** Messages given but not written yet (the one being written excluded). */
  get waiting(): number {
    return this.first.length + this.later.length;
  }

  write(message: Message): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      (deferrable(message) ? this.later : this.first).push({ message, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.writing) return;
    const p = this.first.shift() ?? this.later.shift();
    if (!p) return;
    this.writing = true;
    const m = p.message as { method?: unknown; id?: unknown };
    const what = typeof m.method === "string" ? m.method : "response";
    const id = typeof m.id === "number" || typeof m.id === "string" ? m.id : undefined;
    traceEvent("write", what, id);
    const done = () => {
      traceEvent("written", what, id);
      this.writing = false;
      this.next();
    };
    let written: Promise<void>;
    try {
      written = this.inner.write(p.message);
    } catch (e) {
      written = Promise.reject(e);
    }
    written.then(
      () => {
        p.resolve();
        done();
      },
      (e: unknown) => {
        p.reject(e);
        done();
      },
    );
  }

  end(): void {
    this.inner.end();
  }

  dispose(): void {
    this.inner.dispose();
  }
}
