/**
 * An apply interrupted through its AbortSignal (what `qkit template apply`
 * does on SIGINT/SIGTERM, review issue 7, F4): it stops after the step in
 * flight, never cuts a call, journals every call before it is sent, records
 * the interruption, and the next plan holds exactly what was left.
 */
import { describe, expect, it } from "vitest";
import { PolicyAdmin, Qubes, adminPolicyTarget, executePlan, memoryJournal, planStack, type StackConnection } from "@qubes-kit/sdk";
import { simulatorTransport } from "@qubes-kit/sdk/sim";
import { demoSimulator, qube, stack } from "../fixtures/template/apply/stacks.js";

const MODEL = stack("intr", [
  qube("intr-a", "AppVM", { template: "debian-12", label: "red", netvm: null, memory: 500 }),
  qube("intr-b", "AppVM", { template: "debian-12", label: "blue", netvm: null, memory: 600 }),
  qube("intr-c", "AppVM", { template: "debian-12", label: "green", netvm: null, memory: 700 }),
]);

/** A connection to a fresh simulator whose transport runs `onCall` when a request is sent (before its reply). */
function connection(onCall: (method: string, arg: string) => void): StackConnection {
  const inner = simulatorTransport(demoSimulator());
  const transport = Object.assign(Object.create(inner) as typeof inner, {
    call(req: Parameters<typeof inner.call>[0], opts?: Parameters<typeof inner.call>[1]) {
      onCall(req.method, req.arg);
      return inner.call(req, opts);
    },
  });
  return { qubes: new Qubes({ transport }), policy: adminPolicyTarget(new PolicyAdmin(inner)) };
}

describe("executePlan with an AbortSignal", () => {
  for (const at of [1, 2, 3]) {
    it(`aborted while create #${at} is in flight: finishes that step, stops, journals it; the next plan is the rest`, async () => {
      const stop = new AbortController();
      let creates = 0;
      let armed = false;
      const conn = connection((method) => {
        if (armed && method.startsWith("admin.vm.Create.") && ++creates === at) stop.abort("SIGINT");
      });
      const { plan } = await planStack(MODEL, conn);
      const total = plan.steps.length;
      const journal = memoryJournal();
      armed = true;
      const r = await executePlan(plan, conn, { journal, signal: stop.signal });
      armed = false;
      const done = plan.steps.findIndex((s) => s.kind === "create" && s.object === `intr-${"abc"[at - 1]}`) + 1;
      expect(r.interrupted?.reason).toBe("SIGINT");
      expect(r.failure).toBeUndefined();
      expect(r.applied).toBe(done);
      expect(r.interrupted?.next.id).toBe(plan.steps[done]?.id);
      const events = journal.entries.map((e) => e["event"]);
      expect(events[0]).toBe("apply-start");
      expect(journal.entries.at(-1)).toMatchObject({ event: "apply-interrupted", reason: "SIGINT", applied: done, next: plan.steps[done]!.id, left: total - done });
      // Every call is journaled before it is sent, then with its reply.
      const calls = journal.entries.slice(1, -1);
      expect(calls.length % 2).toBe(0);
      for (let i = 0; i < calls.length; i += 2) {
        expect(calls[i]).toMatchObject({ event: "calling" });
        expect(calls[i + 1]).toMatchObject({ event: "call", ok: true, call: calls[i]!["call"] });
      }
      expect(calls.filter((e) => e["event"] === "call").length).toBe(plan.steps.slice(0, done).reduce((n, s) => n + s.calls.length, 0));
      // Resume: the next plan holds the steps that were not applied, and applying it finishes the stack.
      const { plan: rest } = await planStack(MODEL, conn);
      expect(rest.errors).toEqual([]);
      expect(rest.steps.map((s) => s.id).sort()).toEqual(plan.steps.slice(done).map((s) => s.id).filter((id) => rest.steps.some((x) => x.id === id)).sort());
      expect(rest.steps.length).toBeGreaterThan(0);
      const again = await executePlan(rest, conn);
      expect([again.failure, again.interrupted, again.applied]).toEqual([undefined, undefined, rest.steps.length]);
      expect((await planStack(MODEL, conn)).plan.steps).toEqual([]);
    });
  }

  it("does nothing when the signal is already aborted (a signal during the read or the rehearsal)", async () => {
    const stop = new AbortController();
    stop.abort("SIGTERM");
    let sent = 0;
    const conn = connection(() => void sent++);
    const { plan } = await planStack(MODEL, conn);
    sent = 0;
    const journal = memoryJournal();
    const r = await executePlan(plan, conn, { journal, signal: stop.signal });
    expect([r.applied, r.interrupted?.reason, sent]).toEqual([0, "SIGTERM", 0]);
    expect(journal.entries.map((e) => e["event"])).toEqual(["apply-start", "apply-interrupted"]);
  });
});
