/**
 * The simulator as an in-process {@link Transport} of the client: request
 * bytes go to {@link Simulator.open}, reply bytes come back as chunks, and
 * `runService` answers the policy admin API.
 */
import { FunctionTransport } from "../transport.js";
import type { RequestHandler, ServiceHandler, Transport } from "../transport.js";
import { policyReplyToServiceResult, type Simulator } from "./server.js";

/** The request handler of a {@link FunctionTransport} over a simulator (streams end when the consumer stops). */
export function simulatorRequestHandler(sim: Simulator): RequestHandler {
  return (bytes, _request, options) => ({
    [Symbol.asyncIterator]() {
      const queue: Buffer[] = [];
      let ended = false;
      let wake: (() => void) | undefined;
      const notify = () => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const handle = sim.open(bytes, {
        write: (c) => {
          queue.push(c);
          notify();
        },
        end: () => {
          ended = true;
          notify();
        },
        abort: () => {
          ended = true;
          notify();
        },
      });
      const onAbort = () => {
        ended = true;
        handle.close();
        notify();
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const finish = () => {
        ended = true;
        handle.close();
        options.signal?.removeEventListener("abort", onAbort);
      };
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          for (;;) {
            if (queue.length) return { value: queue.shift()!, done: false };
            if (ended) {
              finish();
              return { value: undefined, done: true };
            }
            await new Promise<void>((r) => (wake = r));
          }
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          finish();
          return { value: undefined, done: true };
        },
      };
    },
  });
}

/** The service handler (policy admin API) of a {@link FunctionTransport} over a simulator. */
export function simulatorServiceHandler(sim: Simulator): ServiceHandler {
  return (req) => {
    const reply = sim.policyReply(req.service, req.arg, Buffer.from(req.stdin));
    const r = policyReplyToServiceResult(reply);
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  };
}

/** A client {@link Transport} that talks to `sim` in process. */
export function simulatorTransport(sim: Simulator): Transport {
  return new FunctionTransport(simulatorRequestHandler(sim), { description: "qubes-kit simulator", services: simulatorServiceHandler(sim) });
}
