/**
 * Loading a qrexec policy from a directory on disk, as the policy daemon
 * loads `/etc/qubes/policy.d` (exported by `@qubes-kit/sdk/node`).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { LEGACY_POLICY_DIR, loadPolicy, POLICY_DIR, RUNTIME_POLICY_DIR, type LoadOptions, type LoadResult } from "@qubes-kit/language";
import { createNodePolicyFileSystem } from "./policy-fs.js";

/** Options of {@link loadPolicyDirectory}. */
export interface PolicyDirectoryOptions {
  /** A runtime policy directory loaded with the main one (seen as `/run/qubes/policy.d`). */
  runtimeDir?: string;
  /** The legacy R4.0 directory read by `!compat-4.0` (seen as `/etc/qubes-rpc/policy`). */
  legacyDir?: string;
  /** Passed to `loadPolicy` (e.g. `collectAll` to get every diagnostic). */
  load?: Omit<LoadOptions, "runtimeDir">;
}

/**
 * Loads the policy of a real directory as the daemon loads
 * `/etc/qubes/policy.d` (file order, `!include`, `!compat-4.0`), mounting it
 * (and the optional runtime and legacy directories) at the engine's paths.
 * Never throws for policy problems: they are the result's diagnostics; a
 * directory that does not exist is an `Error` with the OS's code (`ENOENT`).
 *
 * @example
 * ```ts
 * import { evaluate, makeRequest, prepareSystemInfo } from "@qubes-kit/language";
 * import { loadPolicyDirectory } from "@qubes-kit/sdk/node";
 *
 * const r = loadPolicyDirectory("examples/demo/policy.d");
 * if (!r.ok) throw new Error(r.error.message);
 * const d = evaluate(r.policy, makeRequest("qubes.Filecopy", "work", "vault"), prepareSystemInfo(system));
 * ```
 */
export function loadPolicyDirectory(dir: string, options: PolicyDirectoryOptions = {}): LoadResult {
  const mounts: Record<string, string> = {};
  for (const [given, virtual] of [
    [dir, POLICY_DIR],
    [options.runtimeDir, RUNTIME_POLICY_DIR],
    [options.legacyDir, LEGACY_POLICY_DIR],
  ] as const) {
    if (given === undefined) continue;
    const real = path.resolve(given);
    if (!fs.statSync(real).isDirectory()) throw Object.assign(new Error(`${given}: Not a directory`), { code: "ENOTDIR" });
    mounts[virtual] = real;
  }
  const fsys = createNodePolicyFileSystem({ mounts, passthrough: mounts[POLICY_DIR] === POLICY_DIR });
  return loadPolicy(fsys, options.load ?? {});
}
