/**
 * The event log of `trace.ts` to a file, for `qkit-lsp --stdio` with `QKIT_LSP_TRACE=FILE`
 * (Node only). Each event is `[time, kind, a, b]` with the time in microseconds of the system's
 * monotonic clock (`process.hrtime`, the clock of every process on the machine, so a client can
 * put its own times beside them); garbage collections are `[start, "gc", milliseconds, kind]`.
 * The file is written when the process exits.
 */
import { writeFileSync } from "node:fs";
import { performance, PerformanceObserver } from "node:perf_hooks";
import { setTracer } from "./trace.js";

const now = (): number => Number(process.hrtime.bigint() / 1000n);

/** Starts logging the server's events and garbage collections; writes them to `file` at exit. */
export function startTraceFile(file: string): void {
  const events: Array<[number, string, (string | number)?, (string | number)?]> = [];
  setTracer((kind, a, b) => void events.push([now(), kind, a, b]));
  // A GC entry's start is on the performance clock: moved onto the monotonic one.
  const offset = now() - performance.now() * 1000;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) events.push([Math.round(offset + e.startTime * 1000), "gc", e.duration, ((e as { detail?: { kind?: number } }).detail?.kind ?? 0)]);
  });
  gc.observe({ entryTypes: ["gc"] });
  process.on("exit", () => {
    try {
      writeFileSync(file, JSON.stringify(events));
    } catch {
      // Tracing is a diagnostic aid: a file that cannot be written is left out.
    }
  });
}
