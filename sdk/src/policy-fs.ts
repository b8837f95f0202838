/**
 * A {@link PolicyFileSystem} over `node:fs`, with the engine's standard
 * directories mapped onto real directories.
 *
 * The language core only sees absolute POSIX paths such as
 * `/etc/qubes/policy.d/30-user.policy`. A mount table maps such virtual
 * directories onto real ones (for example `examples/demo/policy.d`), so that
 * decisions name files exactly as the real engine does, whatever directory
 * the policy was read from.
 */
import { readdirSync, readFileSync, realpathSync, statSync } from "node:fs";

// The libc realpath: one call instead of an lstat per path component.
const realpath = realpathSync.native;
import * as path from "node:path";
import { isUtf8 } from "node:buffer";
import { findUtf8Problem, LEGACY_POLICY_DIR, POLICY_DIR, RUNTIME_POLICY_DIR } from "@qubes-kit/language/engine";
import type { FileKind, PolicyFileSystem, Utf8Problem } from "@qubes-kit/language/engine";

/** Options of {@link createNodePolicyFileSystem}. */
export interface NodePolicyFileSystemOptions {
  /**
   * Virtual absolute directory → real directory, e.g.
   * `{"/etc/qubes/policy.d": "./policy.d"}`. The longest matching prefix wins.
   */
  mounts?: Record<string, string>;
  /**
   * Whether a virtual path outside every mount is read from the real disk at
   * the same path. Default `false`: such paths do not exist, so a policy
   * cannot read outside its mounts through an absolute `!include`.
   */
  passthrough?: boolean;
  /** Called with the real path of each file read (the CLI keeps them, so that no output is written over one). */
  onRead?: (realPath: string) => void;
}

const STANDARD_DIRS = [POLICY_DIR, RUNTIME_POLICY_DIR, LEGACY_POLICY_DIR];

/** Lexically normalises an absolute POSIX path (`..`, `.`, repeated slashes). */
function normalize(p: string): string {
  return path.posix.normalize(p.startsWith("/") ? p : "/" + p).replace(/(.)\/$/, "$1");
}

/** The real path with symlinks resolved, or the path itself when it does not exist. */
function canonical(p: string): string {
  try {
    return realpath(p);
  } catch {
    return p;
  }
}

/**
 * Creates a policy file system over `node:fs`.
 *
 * The three standard directories (`/etc/qubes/policy.d`, `/run/qubes/policy.d`,
 * `/etc/qubes-rpc/policy`) always exist: when one is neither mounted nor
 * present on disk it reads as an empty directory, as on a fresh Qubes system.
 * Every method returns `undefined` for a missing path and never throws.
 */
export function createNodePolicyFileSystem(options: NodePolicyFileSystemOptions = {}): PolicyFileSystem {
  const mounts = Object.entries(options.mounts ?? {})
    .map(([virt, real]) => [normalize(virt), canonical(path.resolve(real))] as const)
    .sort((a, b) => b[0].length - a[0].length);
  const passthrough = options.passthrough ?? false;

  /** The real path behind a virtual one, or `undefined` when it is outside every mount. */
  function toReal(virtual: string): string | undefined {
    const v = normalize(virtual);
    for (const [virt, real] of mounts) {
      if (v === virt) return real;
      if (v.startsWith(virt === "/" ? "/" : virt + "/")) return path.join(real, v.slice(virt.length));
    }
    return passthrough ? v : undefined;
  }

  /** The virtual path of a real one, when it lies inside a mount. */
  function toVirtual(real: string): string | undefined {
    for (const [virt, base] of mounts) {
      if (real === base) return virt;
      const rel = path.relative(base, real);
      if (rel && !rel.startsWith("..") && !path.isAbsolute(rel)) return path.posix.join(virt, rel.split(path.sep).join("/"));
    }
    return passthrough ? real : undefined;
  }

  /** The files read last whose bytes are not UTF-8 (see `notUtf8`), by virtual path. */
  const undecodable = new Map<string, Utf8Problem>();

  function isStandardDir(virtual: string): boolean {
    return STANDARD_DIRS.includes(normalize(virtual));
  }

  return {
    stat(p: string): FileKind | undefined {
      const real = toReal(p);
      try {
        if (real !== undefined) {
          const st = statSync(real);
          return st.isFile() ? "file" : st.isDirectory() ? "dir" : "other";
        }
      } catch {
        // Missing on disk: fall through to the standard directories.
      }
      return isStandardDir(p) ? "dir" : undefined;
    },
    readDir(p: string): string[] | undefined {
      const real = toReal(p);
      try {
        if (real !== undefined) return readdirSync(real);
      } catch {
        // Missing on disk: fall through to the standard directories.
      }
      return isStandardDir(p) ? [] : undefined;
    },
    readFile(p: string): string | undefined {
      const real = toReal(p);
      if (real === undefined) return undefined;
      let bytes: Buffer;
      try {
        bytes = readFileSync(real);
      } catch {
        return undefined;
      }
      options.onRead?.(real);
      // The engine reads UTF-8 strictly; where the bytes are not UTF-8 is kept for `notUtf8`.
      if (isUtf8(bytes)) undecodable.delete(normalize(p));
      else undecodable.set(normalize(p), findUtf8Problem(bytes)!);
      return bytes.toString("utf8");
    },
    notUtf8(p: string): Utf8Problem | undefined {
      return undecodable.get(normalize(p));
    },
    realPath(p: string): string {
      const v = normalize(p);
      const real = toReal(v);
      if (real === undefined) return v;
      try {
        return toVirtual(realpath(real)) ?? v;
      } catch {
        return v;
      }
    },
  };
}
