/**
 * `@qubes-kit/sdk/sim`: the offline Qubes Admin API simulator. It answers
 * qubesd's `admin.*` methods and the policy admin API (`policy.*`) over an
 * in-memory system, in process or on a Unix socket, as `qkit sim serve` does.
 *
 * @example
 * ```ts
 * import { Qubes, UnixSocketTransport } from "@qubes-kit/sdk";
 * import { startSimulator } from "@qubes-kit/sdk/sim";
 *
 * const server = await startSimulator({ socket: "/tmp/qubesd.sock", system, policy: "./policy.d" });
 * const qubes = new Qubes({ transport: new UnixSocketTransport({ path: server.path }) });
 * console.log((await qubes.list()).map((q) => q.name));
 * await server.close();
 * ```
 *
 * @example In process, without a socket:
 * ```ts
 * import { Qubes } from "@qubes-kit/sdk";
 * import { createSimulator, simulatorTransport } from "@qubes-kit/sdk/sim";
 *
 * const qubes = new Qubes({ transport: simulatorTransport(createSimulator(system)) });
 * ```
 *
 * @module @qubes-kit/sdk/sim
 */
export * from "./sim/index.js";
