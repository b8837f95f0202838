/**
 * The files and policy directories this run of `qkit` has read, so that an
 * output is never written over one of them.
 *
 * `main.ts` refuses, before a command runs, an output that names a file of
 * its command line (`[output-is-input]`). A command also reads files its
 * arguments do not name: the policy and system model a test file names, the
 * bundles and includes of a stack. Every reader notes what it read here,
 * and every writer of a command's output asks {@link inputClash} first:
 * files are compared by device and inode, so a hard link or another
 * spelling of the same file is the same file; a new `.policy` file (or a
 * file under `include/`) inside a policy directory read would change that
 * policy, and is refused too.
 */
import { realpathSync, statSync } from "node:fs";
import * as path from "node:path";

/** Files read: "device:inode" → the absolute path the run read it by. */
const files = new Map<string, string>();
/** Policy directories read: real path → the absolute path read, and whether every file in it is policy (a legacy R4.0 directory: one file per service, any name). */
const dirs = new Map<string, { abs: string; anyFile: boolean }>();

/** A regular file's identity, "device:inode" (the same for a hard link), or undefined. */
export function fileIdOf(abs: string): string | undefined {
  try {
    const st = statSync(abs);
    return st.isFile() ? `${st.dev}:${st.ino}` : undefined;
  } catch {
    return undefined;
  }
}

/** The real path of `abs`, or of its directory when it does not exist yet (an output to be made). */
export function realOf(abs: string): string {
  try {
    return realpathSync.native(abs);
  } catch {
    try {
      return path.join(realpathSync.native(path.dirname(abs)), path.basename(abs));
    } catch {
      return abs;
    }
  }
}

/** Notes a file read (`abs`: its absolute path). Not a regular file: nothing to protect. */
export function noteRead(abs: string): void {
  const id = fileIdOf(abs);
  if (id !== undefined && !files.has(id)) files.set(id, abs);
}

/** Notes a policy directory read (its `.policy` files and `include/` are its policy). */
export function noteReadDir(abs: string, anyFile = false): void {
  const real = realOf(abs);
  const known = dirs.get(real);
  if (known === undefined || (anyFile && !known.anyFile)) dirs.set(real, { abs, anyFile });
}

/**
 * Why `file` (relative to `cwd`) must not be written as `option`'s output,
 * as one line, or undefined: it is a file this run read, or a policy file
 * inside a policy directory it read.
 */
export function inputClash(option: string, file: string, cwd: string): string | undefined {
  const abs = path.resolve(cwd, file);
  const id = fileIdOf(abs);
  const read = id === undefined ? undefined : files.get(id);
  const real = realOf(abs);
  if (read !== undefined) {
    const same = realOf(read) === real ? "" : `the same file as \`${path.relative(cwd, read) || read}\` (a link), `;
    return `${option} \`${file}\` is ${same}a file this command reads; write the output to another file`;
  }
  for (const [dir, { abs, anyFile }] of dirs) {
    const rel = path.relative(dir, real);
    if (rel && !rel.startsWith("..") && !path.isAbsolute(rel) && (anyFile || real.endsWith(".policy") || rel.split(path.sep)[0] === "include"))
      return `${option} \`${file}\` is inside the policy directory \`${path.relative(cwd, abs) || abs}\` this command reads; write the output outside it`;
  }
  return undefined;
}

/** Forgets what was read (a test running several commands in one process starts each afresh). */
export function forgetReads(): void {
  files.clear();
  dirs.clear();
}
