/**
 * An in-memory {@link PolicyFileSystem} and POSIX path helpers.
 */
import { LEGACY_POLICY_DIR, POLICY_DIR, RUNTIME_POLICY_DIR, type FileKind, type PolicyFileSystem } from "./types.js";

/**
 * Lexical normalisation of an absolute POSIX path, as `Path.resolve()` does
 * when no symlinks are involved: `.` and empty components go, `..` removes
 * the previous component (never above `/`).
 */
export function normalizePath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

/** Joins `base` and `rel` like `pathlib`'s `/`: an absolute `rel` replaces `base`. */
export function joinPath(base: string, rel: string): string {
  if (rel.startsWith("/")) return rel;
  return base.endsWith("/") ? base + rel : base + "/" + rel;
}

/** `pathlib.PurePosixPath(p)` as a string: repeated slashes and `.` components collapse, `..` stays. */
export function purePosix(p: string): string {
  if (p === "") return ".";
  let prefix = "";
  if (p.startsWith("//") && !p.startsWith("///")) prefix = "//";
  else if (p.startsWith("/")) prefix = "/";
  const parts = p.split("/").filter((x) => x !== "" && x !== ".");
  const body = parts.join("/");
  if (prefix === "" && body === "") return ".";
  return prefix + body;
}

/** The parent directory of an absolute path. */
export function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** The last component of a path. */
export function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * A file system held in memory. Relative keys are placed under
 * `/etc/qubes/policy.d`; absolute keys at their path. The three standard
 * policy directories always exist, as do the parents of every file.
 */
export function createMemoryFileSystem(files: Record<string, string> | Map<string, string>, extraDirs: string[] = []): PolicyFileSystem {
  const fileMap = new Map<string, string>();
  const dirs = new Map<string, Set<string>>();
  const addDir = (dir: string) => {
    let d = normalizePath(dir);
    while (!dirs.has(d)) {
      dirs.set(d, new Set());
      if (d === "/") break;
      const parent = dirname(d);
      addDir(parent);
      dirs.get(parent)!.add(basename(d));
      d = parent;
    }
  };
  for (const d of [POLICY_DIR, RUNTIME_POLICY_DIR, LEGACY_POLICY_DIR, ...extraDirs]) addDir(d);
  const entries = files instanceof Map ? [...files.entries()] : Object.entries(files);
  for (const [key, text] of entries) {
    const path = normalizePath(key.startsWith("/") ? key : joinPath(POLICY_DIR, key));
    const parent = dirname(path);
    addDir(parent);
    dirs.get(parent)!.add(basename(path));
    fileMap.set(path, text);
  }
  return {
    stat(path: string): FileKind | undefined {
      const p = normalizePath(path);
      if (fileMap.has(p)) return "file";
      if (dirs.has(p)) return "dir";
      return undefined;
    },
    readDir(path: string): string[] | undefined {
      const d = dirs.get(normalizePath(path));
      return d ? [...d] : undefined;
    },
    readFile(path: string): string | undefined {
      return fileMap.get(normalizePath(path));
    },
    realPath(path: string): string {
      return normalizePath(path);
    },
  };
}
