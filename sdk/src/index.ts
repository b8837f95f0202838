/**
 * `@qubes-kit/sdk`: a typed client of the Qubes OS Admin API (qubesd) and of
 * the qrexec policy admin API, with its transports (dom0 socket,
 * `qrexec-client-vm`, any command, in-process), typed errors, event streams
 * and a cache, and a system snapshot for the policy engine.
 *
 * The offline simulator is `@qubes-kit/sdk/sim`; helpers for policy files on
 * disk (load a `policy.d`, render an explanation as `qkit policy explain`
 * does) are `@qubes-kit/sdk/node`.
 *
 * @example
 * ```ts
 * import { Qubes } from "@qubes-kit/sdk";
 *
 * const qubes = Qubes.local(); // dom0's /var/run/qubesd.sock (or $QUBESD_SOCKET)
 * for (const q of await qubes.list()) console.log(q.name, q.class, q.state);
 * await qubes.qube("work").setProperty("memory", 800);
 * ```
 *
 * @module @qubes-kit/sdk
 */
export * from "./errors.js";
export * from "./protocol.js";
export * from "./validate.js";
export * from "./transport.js";
export * from "./values.js";
export * from "./properties.js";
export * from "./firewall.js";
export * from "./devices.js";
export * from "./client.js";
export * from "./calls.js";
export * from "./events.js";
export * from "./qubes.js";
export * from "./policy-admin.js";
export * from "./system-info.js";
// Templates: plan, apply, drift, what-if, builder, export.
export * from "./apply/index.js";
export * from "./apply/future.js";
export * from "./apply/whatif.js";
export * from "./apply/future-live.js";
export * from "./apply/builder.js";
export * from "./apply/export.js";
