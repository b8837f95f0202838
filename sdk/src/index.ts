/**
 * `@qubes-kit/sdk`: a typed client of the Qubes OS Admin API (qubesd) and of
 * the qrexec policy admin API, with its transports (dom0 socket,
 * `qrexec-client-vm`, any command, in-process), typed errors, event streams
 * and a cache, and a system snapshot for the policy engine.
 *
 * @packageDocumentation
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
export * from "./sim/index.js";
export * from "./apply/index.js";
export * from "./apply/future.js";
export * from "./apply/whatif.js";
export * from "./apply/future-live.js";
export * from "./apply/builder.js";
export * from "./apply/export.js";
