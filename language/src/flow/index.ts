/**
 * Information flow: can data move from one qube to another, directly or
 * through other qubes, by qrexec calls (the evaluator's decisions and a
 * catalogue of service directions), the network, or devices? Pure: the
 * machine comes in as data.
 */
export * from "./catalogue.js";
export * from "./firewall.js";
export * from "./graph.js";
export * from "./paths.js";
export * from "./render.js";
export * from "./qrexec.js";
export * from "./sweep.js";
