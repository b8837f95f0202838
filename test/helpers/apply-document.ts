/**
 * What the `qkit template apply --json` tests share: reading standard output as the one result
 * document, and a simulator that refuses some requests for a while (a step that fails).
 */
import { expect } from "vitest";
import type { SimulatorServer } from "@qubes-kit/sdk/sim";

/** A step of the apply document. */
export interface StepStatus {
  index: number;
  id: string;
  kind: string;
  target: string;
  key: string;
  status: "ok" | "failed" | "deferred" | "skipped";
  ms: number;
  error?: { type: string; message: string; call: { method: string; dest: string; arg: string } };
}

/** Standard output as exactly one JSON document (one line) of `qkit template apply --json`. */
export function onlyDocument(out: string): Record<string, unknown> & { steps: StepStatus[] } {
  const lines = out.split("\n");
  expect(lines.length).toBe(2);
  expect(lines[1]).toBe("");
  const doc = JSON.parse(lines[0]!);
  expect(doc.qkitApply).toBe(1);
  return doc;
}

/** While `f` runs, the simulator refuses requests starting with `head` (the system only: a rehearsal has its own). */
export async function refusing<T>(server: SimulatorServer, head: string, f: () => Promise<T>): Promise<T> {
  const sim = server.simulator;
  const open = sim.open;
  sim.open = (request, sink) => {
    if (Buffer.from(request).toString("latin1").startsWith(head)) {
      sink.write(Buffer.from("2\0QubesException\0\0refused by the test\0", "latin1"));
      sink.end();
      return { close() {} };
    }
    return open.call(sim, request, sink);
  };
  try {
    return await f();
  } finally {
    sim.open = open;
  }
}
