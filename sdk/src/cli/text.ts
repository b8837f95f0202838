/**
 * Texts and message helpers shared by every `qkit` command: the connection
 * options, the environment and the exit codes (top-level help and each
 * command's usage), "did you mean", the operating system's wording of errno
 * codes, and escaping of control characters. This module imports nothing
 * heavy: `main.ts` loads it on every run.
 */

import * as path from "node:path";

/**
 * A file as a message names it: relative to the working directory, unless
 * the way there climbs to the filesystem's root (a file that shares nothing
 * with it but \`/\`, such as \`/dev/stdin\`): then its absolute path.
 */
export function placeShown(cwd: string, file: string): string {
  const abs = path.resolve(cwd, file);
  const rel = path.relative(cwd, abs);
  if (rel === "") return abs;
  const parts = rel.split(path.sep);
  let up = 0;
  while (up < parts.length && parts[up] === "..") up++;
  const depth = path.resolve(cwd).split(path.sep).filter((p) => p !== "").length;
  return up >= depth && depth > 0 ? abs : rel;
}

/** dom0's qubesd socket (the Python client's default too). */
export const DEFAULT_SOCKET_PATH = "/var/run/qubesd.sock";

/** The usage text of the connection options. */
export const CONNECTION_USAGE = `connection:
  --socket PATH   qubesd socket (default: $QUBESD_SOCKET, else ${DEFAULT_SOCKET_PATH});
                  with an explicit socket the policy admin api goes over it too
                  (the qubes-kit simulator serves it), otherwise in dom0 it runs
                  /usr/bin/qubes-policy-admin
  --qrexec        call through qrexec-client-vm (from a management qube; the
                  default when /var/run/qubesd.sock is absent and
                  /usr/bin/qrexec-client-vm exists, as in qubesadmin)
  --timeout MS    per-call timeout in milliseconds (default 120000, 0 = none)`;

/** The environment variables `qkit` reads. */
export const ENVIRONMENT_USAGE = `environment:
  QUBESD_SOCKET   the qubesd socket when --socket is not given (e.g. the socket
                  of \`qkit sim serve\`)`;

/** The exit codes of every command (the commands' usage texts refine them). */
export const EXIT_USAGE = `exit status:
  0   success (\`policy eval\`/\`explain\`: the call is allowed)
  1   failure: errors found, a refused call, an unreachable qubesd
      (\`policy eval\`/\`explain\`: the call is denied)
  2   usage error (unknown command or option, unreadable input, malformed line)
  3   \`policy eval\`/\`explain\`: the call is asked (the user would be prompted)
  70  internal error (a bug in qkit: please report it)`;

/** Exit codes, by name. */
export const EXIT = { ok: 0, failure: 1, usage: 2, ask: 3, internal: 70 } as const;

/**
 * Escapes control characters (C0 except newline and tab, DEL, C1, and the
 * bidirectional overrides) as `\xNN` / `\uNNNN`, so a message that quotes
 * foreign text never moves the cursor, rings the bell or hides text.
 */
export function escapeControls(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}

/** Like {@link escapeControls}, and newlines and tabs too (one line of output). */
export function oneLine(text: string): string {
  return escapeControls(text).replace(/\n/g, "\\n").replace(/\t/g, "\\t");
}

// The C library's strerror() texts (glibc), as Python and the shell print them;
// Node's own messages are libuv's lower-case variants.
const STRERROR: Record<string, string> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  EINTR: "Interrupted system call",
  EIO: "Input/output error",
  EBADF: "Bad file descriptor",
  EAGAIN: "Resource temporarily unavailable",
  ENOMEM: "Cannot allocate memory",
  EACCES: "Permission denied",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  EXDEV: "Invalid cross-device link",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EINVAL: "Invalid argument",
  EMFILE: "Too many open files",
  ENFILE: "Too many open files in system",
  EFBIG: "File too large",
  ENOSPC: "No space left on device",
  EROFS: "Read-only file system",
  EPIPE: "Broken pipe",
  ENAMETOOLONG: "File name too long",
  ENOTEMPTY: "Directory not empty",
  ELOOP: "Too many levels of symbolic links",
  ENOTSOCK: "Socket operation on non-socket",
  EADDRINUSE: "Address already in use",
  EADDRNOTAVAIL: "Cannot assign requested address",
  ENETUNREACH: "Network is unreachable",
  ECONNABORTED: "Software caused connection abort",
  ECONNRESET: "Connection reset by peer",
  ETIMEDOUT: "Connection timed out",
  ECONNREFUSED: "Connection refused",
  EHOSTUNREACH: "No route to host",
  EPROTOTYPE: "Protocol wrong type for socket",
};

/**
 * The operating system's wording of an error: `No such file or directory`
 * for ENOENT (as `strerror` says it, capitalised), else the message with
 * Node's `syscall path` decoration removed. Never more than one line.
 */
export function osMessage(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && typeof e.code === "string" && STRERROR[e.code]) return STRERROR[e.code]!;
  let msg = err instanceof Error ? err.message : String(err);
  // "ENOENT: no such file or directory, open 'x'" → "no such file or directory"
  const m = /^[A-Z0-9_]+: ([^,]+)(?:, .*)?$/s.exec(msg);
  if (m) msg = m[1]!;
  msg = msg.split("\n")[0]!;
  return oneLine(msg.charAt(0).toUpperCase() + msg.slice(1));
}

/** The errno code of an error, lower-cased for a message code (`enoent`), or `fallback`. */
export function errnoCode(err: unknown, fallback: string): string {
  const c = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof c === "string" && /^E[A-Z0-9]+$/.test(c) ? c.toLowerCase() : fallback;
}

/** Rows of {@link distance}, reused from call to call (grown when a word is longer). */
let rows = new Int32Array(3 * 32);

/**
 * Edit distance with transpositions (optimal string alignment) between `a`
 * and `b`, exact up to `limit`; any distance over it is `limit + 1`. Three
 * rolling rows, no allocation: a stream's warnings measure thousands of
 * pairs.
 */
function distance(a: string, b: string, limit: number): number {
  const m = b.length + 1;
  if (rows.length < 3 * m) rows = new Int32Array(3 * m);
  const r = rows;
  // Rows i - 2, i - 1 and i start at `p2`, `p1` and `p0` (each a third of `r`, taken in turn).
  let p2 = 2 * m;
  let p1 = 0;
  for (let j = 0; j < m; j++) r[j] = j;
  let prevMin = 0;
  for (let i = 1; i <= a.length; i++) {
    const p0 = (p1 + m) % (3 * m);
    const ca = a.charCodeAt(i - 1);
    r[p0] = i;
    let rowMin = i;
    for (let j = 1; j < m; j++) {
      const cb = b.charCodeAt(j - 1);
      let v = r[p1 + j - 1]! + (ca === cb ? 0 : 1);
      const up = r[p1 + j]! + 1;
      if (up < v) v = up;
      const left = r[p0 + j - 1]! + 1;
      if (left < v) v = left;
      if (i > 1 && j > 1 && ca === b.charCodeAt(j - 2) && a.charCodeAt(i - 2) === cb) {
        const t = r[p2 + j - 2]! + 1;
        if (t < v) v = t;
      }
      r[p0 + j] = v;
      if (v < rowMin) rowMin = v;
    }
    // A later row is at least the smaller of this row's minimum and the last one's plus one: past the limit for good.
    if (rowMin > limit && prevMin > limit) return limit + 1;
    prevMin = rowMin;
    p2 = p1;
    p1 = p0;
  }
  const d = r[p1 + m - 1]!;
  return d > limit ? limit + 1 : d;
}

/**
 * The candidates closest to `word` (edit distance at most a third of its
 * length, at least 1; or a candidate that starts with it), best first.
 */
export function suggest(word: string, candidates: Iterable<string>): string[] {
  const limit = Math.max(1, Math.floor(word.length / 3));
  const scored: { c: string; d: number }[] = [];
  const w = word.toLowerCase();
  for (const c of new Set(candidates)) {
    if (c === word) continue;
    const lc = c.toLowerCase();
    // The distance is at least the difference in length: skip computing it when that is already too far.
    const d = Math.abs(lc.length - w.length) > limit ? limit + 1 : distance(w, lc, limit);
    if (d <= limit) scored.push({ c, d });
    else if (word.length >= 2 && c.startsWith(word)) scored.push({ c, d: limit + 1 });
  }
  scored.sort((x, y) => x.d - y.d || (x.c < y.c ? -1 : 1));
  return scored.map((s) => s.c);
}

/** `; did you mean \`x\`?` (or `` for no suggestion). */
export function didYouMean(word: string, candidates: Iterable<string>, format: (c: string) => string = (c) => c): string {
  const s = suggest(word, candidates);
  if (s.length === 0) return "";
  if (s.length === 1 || s.length > 3) return `; did you mean \`${format(s[0]!)}\`?`;
  return `; did you mean ${s.map((c) => `\`${format(c)}\``).join(" or ")}?`;
}

/** Foreign text (a qube or service name, a test file's call, a journal line) shortened for one line of output. */
export function clip(s: string, max = 200): string {
  return s.length > max ? s.slice(0, max) + `… (${s.length - max} more characters)` : s;
}
