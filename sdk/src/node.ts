/**
 * `@qubes-kit/sdk/node`: helpers for Node programs that work with policy
 * files on disk, as the `qkit` command does: a `PolicyFileSystem` over
 * `node:fs` with a mount table, loading a `policy.d` directory as the daemon
 * does, and decisions and explanations rendered as `qkit policy` prints them.
 *
 * @example
 * ```ts
 * import { explain, makeRequest, prepareSystemInfo } from "@qubes-kit/language";
 * import { loadPolicyDirectory, renderExplanation } from "@qubes-kit/sdk/node";
 *
 * const r = loadPolicyDirectory("examples/demo/policy.d");
 * if (r.ok) {
 *   const x = explain(r.policy, makeRequest("qubes.Filecopy", "work", "vault"), prepareSystemInfo(system));
 *   process.stdout.write(renderExplanation(x));
 * }
 * ```
 *
 * @module @qubes-kit/sdk/node
 */
export { createNodePolicyFileSystem, type NodePolicyFileSystemOptions } from "./policy-fs.js";
export { loadPolicyDirectory, type PolicyDirectoryOptions } from "./node-policy.js";
export { describeDecision, renderExplanation, ruleText } from "./node-render.js";
