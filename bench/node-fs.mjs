/**
 * A minimal `PolicyFileSystem` over `node:fs` for the benchmarks: the
 * directory `policyDir` on disk is seen as `/etc/qubes/policy.d`, the other
 * standard directories are empty, and nothing else exists. (The CLI uses the
 * SDK's own implementation; this copy keeps the benchmark independent of the
 * SDK's exports.)
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";

const POLICY_DIR = "/etc/qubes/policy.d";
const EMPTY_DIRS = new Set(["/run/qubes/policy.d", "/etc/qubes-rpc/policy"]);

/**
 * @param {string} policyDir  the real directory holding the `*.policy` files
 * @returns {import("@qubes-kit/language").PolicyFileSystem}
 */
export function mountPolicyDir(policyDir) {
  const base = path.resolve(policyDir);
  const toReal = (p) => {
    const v = path.posix.normalize(p);
    if (v === POLICY_DIR) return base;
    if (v.startsWith(POLICY_DIR + "/")) return path.join(base, v.slice(POLICY_DIR.length + 1));
    return undefined;
  };
  return {
    stat(p) {
      const real = toReal(p);
      if (real === undefined) return EMPTY_DIRS.has(path.posix.normalize(p)) ? "dir" : undefined;
      try {
        const st = statSync(real);
        return st.isFile() ? "file" : st.isDirectory() ? "dir" : "other";
      } catch {
        return undefined;
      }
    },
    readDir(p) {
      const real = toReal(p);
      if (real === undefined) return EMPTY_DIRS.has(path.posix.normalize(p)) ? [] : undefined;
      try {
        return readdirSync(real);
      } catch {
        return undefined;
      }
    },
    readFile(p) {
      const real = toReal(p);
      if (real === undefined) return undefined;
      try {
        return readFileSync(real, "utf8");
      } catch {
        return undefined;
      }
    },
    realPath(p) {
      return path.posix.normalize(p);
    },
  };
}
