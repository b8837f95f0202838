/**
 * The stdio writer's order (`lsp/src/outgoing.ts`): a diagnostics notification that has not
 * started waits for every other message given meanwhile; nothing is lost, duplicated or
 * reordered otherwise, whatever the order of the writes and of their completions.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Emitter, type Message, type MessageWriter } from "vscode-languageserver";
import { PriorityWriter } from "@qubes-kit/lsp";

/** A writer whose writes finish when the test says so (like a pipe the client reads slowly). */
class SlowWriter implements MessageWriter {
  readonly started: Message[] = [];
  readonly finish: Array<() => void> = [];
  active = 0;
  maxActive = 0;
  private readonly errors = new Emitter<[Error, Message | undefined, number | undefined]>();
  private readonly closes = new Emitter<void>();
  readonly onError = this.errors.event;
  readonly onClose = this.closes.event;
  constructor(private readonly failOn: (m: Message) => boolean = () => false) {}
  /** Called as each write starts. */
  check: (m: Message) => void = () => undefined;
  write(message: Message): Promise<void> {
    this.check(message);
    this.started.push(message);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    return new Promise((resolve, reject) =>
      this.finish.push(() => {
        this.active--;
        if (this.failOn(message)) reject(new Error("pipe closed"));
        else resolve();
      }),
    );
  }
  end(): void {}
  dispose(): void {}
}

const publish = (n: number): Message => ({ jsonrpc: "2.0", method: "textDocument/publishDiagnostics", params: { uri: `file:///${n % 3}.policy`, version: n, diagnostics: [] } }) as Message;
const answer = (n: number): Message => ({ jsonrpc: "2.0", id: n, result: [] }) as Message;
const notice = (n: number): Message => ({ jsonrpc: "2.0", method: "window/logMessage", params: { type: 3, message: String(n) } }) as Message;
const request = (n: number): Message => ({ jsonrpc: "2.0", id: `s${n}`, method: "workspace/diagnostic/refresh" }) as Message;
const isPublish = (m: Message) => (m as { method?: string }).method === "textDocument/publishDiagnostics";
const flush = () => new Promise((r) => setImmediate(r));

describe("PriorityWriter", () => {
  it("writes every message once, one at a time, answers before waiting diagnostics, each kind in its order", async () => {
    await fc.assert(
      fc.asyncProperty(
        // Each step: give a message of some kind, or let the pipe finish the write in progress.
        fc.array(fc.oneof(fc.constant("publish"), fc.constant("answer"), fc.constant("notice"), fc.constant("request"), fc.constant("drain")), { maxLength: 40 }),
        async (steps) => {
          const inner = new SlowWriter();
          const writer = new PriorityWriter(inner);
          const given: Message[] = [];
          const settled: Message[] = [];
          // A diagnostics notification starts only when no other message given before waits.
          let overtaken = 0;
          inner.check = (m) => {
            if (isPublish(m) && given.some((g) => !isPublish(g) && !inner.started.includes(g))) overtaken++;
          };
          for (const [i, s] of steps.entries()) {
            if (s === "drain") {
              inner.finish.shift()?.();
              await flush();
              continue;
            }
            const m = s === "publish" ? publish(i) : s === "answer" ? answer(i) : s === "notice" ? notice(i) : request(i);
            given.push(m);
            void writer.write(m).then(() => settled.push(m));
            // What waits when this message is given: a diagnostics notification may not start before it.
            await flush();
            // Busy exactly while a write is in the pipe (the server shortens its analysis turns then).
            expect(writer.busy).toBe(inner.active > 0);
          }
          while (inner.finish.length) {
            inner.finish.shift()!();
            await flush();
          }
          expect(overtaken).toBe(0);
          expect(inner.maxActive).toBeLessThanOrEqual(1);
          expect(writer.waiting).toBe(0);
          expect(writer.busy).toBe(false);
          // Exactly once each, and every write's promise settled.
          expect(inner.started.length).toBe(given.length);
          expect(new Set(inner.started)).toEqual(new Set(given));
          expect(settled.length).toBe(given.length);
          // Each kind in its own order.
          expect(inner.started.filter(isPublish)).toEqual(given.filter(isPublish));
          expect(inner.started.filter((m) => !isPublish(m))).toEqual(given.filter((m) => !isPublish(m)));
        },
      ),
    );
  });

  it("lets an answer given while a diagnostics notification waits go first", async () => {
    const inner = new SlowWriter();
    const writer = new PriorityWriter(inner);
    void writer.write(publish(1));
    void writer.write(publish(2));
    await flush();
    // publish 1 is in the pipe; publish 2 waits; the answer overtakes publish 2, not publish 1.
    void writer.write(answer(3));
    inner.finish.shift()!();
    await flush();
    inner.finish.shift()!();
    await flush();
    inner.finish.shift()!();
    await flush();
    expect(inner.started).toEqual([publish(1), answer(3), publish(2)]);
  });

  it("rejects a write that fails and goes on with the next", async () => {
    const inner = new SlowWriter((m) => (m as { id?: unknown }).id === 1);
    const writer = new PriorityWriter(inner);
    const first = writer.write(answer(1));
    const second = writer.write(answer(2));
    inner.finish.shift()!();
    await expect(first).rejects.toThrow("pipe closed");
    await flush();
    inner.finish.shift()!();
    await expect(second).resolves.toBeUndefined();
    expect(inner.started).toEqual([answer(1), answer(2)]);
  });
});
