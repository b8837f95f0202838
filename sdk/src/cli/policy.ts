/**
 * Helpers shared by the policy commands: mounting a policy directory (with its
 * runtime and legacy directories) and reading a system model file. The
 * commands themselves live in `policy-check.ts` (`check`) and `policy-eval.ts`
 * (`eval`, `explain`).
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import { isUtf8 } from "node:buffer";
import * as path from "node:path";
import { findUtf8Problem, prepareSystemInfo, readSystemModelText, LEGACY_POLICY_DIR, POLICY_DIR, RUNTIME_POLICY_DIR, type SystemInfo } from "@qubes-kit/language/engine";
import { createNodePolicyFileSystem } from "../policy-fs.js";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { clip, oneLine, osMessage } from "./text.js";
import { describeDecision, renderExplanation } from "../node-render.js";
import { noteRead, noteReadDir } from "./inputs-read.js";

export { describeDecision, renderExplanation };

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/** 1-based line and column of an offset (line ends as the engine counts them). */
export function position(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

export interface PolicySource {
  /** What the user named, for messages. */
  label: string;
  fs: ReturnType<typeof createNodePolicyFileSystem>;
  /** Real directory of each virtual standard directory (for printing real paths). */
  mounts: Record<string, string>;
}

/** Mounts a real policy directory (and optional runtime/legacy dirs) at the engine's standard paths. */
export function mountPolicy(policyDir: string, runtimeDir: string | undefined, legacyDir: string | undefined, cwd: string): PolicySource {
  const abs = path.resolve(cwd, policyDir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new UsageError(`not a directory: \`${policyDir}\` (${existsSync(abs) ? "Not a directory" : "No such file or directory"})`);
  const mounts: Record<string, string> = { [POLICY_DIR]: abs };
  for (const [option, dir, virtual] of [
    ["--runtime-dir", runtimeDir, RUNTIME_POLICY_DIR],
    ["--legacy-dir", legacyDir, LEGACY_POLICY_DIR],
  ] as const) {
    if (dir === undefined) continue;
    const real = path.resolve(cwd, dir);
    if (!existsSync(real) || !statSync(real).isDirectory()) throw new UsageError(`${option}: not a directory: \`${dir}\``);
    mounts[virtual] = real;
  }
  for (const dir of Object.values(mounts)) mustBeReadable(dir, policyDir);
  // A legacy (R4.0) directory's files are policy whatever their names: none may be written there.
  for (const [virtual, dir] of Object.entries(mounts)) noteReadDir(dir, virtual === LEGACY_POLICY_DIR);
  // On a real dom0 (the standard directory itself), absolute includes reach the real disk too.
  const passthrough = abs === POLICY_DIR;
  return { label: policyDir, fs: createNodePolicyFileSystem({ mounts, passthrough, onRead: (p) => noteRead(p) }), mounts };
}

/**
 * A policy directory the OS will not let us read (a directory we cannot list, a file we cannot
 * open, one level of subdirectories deep: `include/`) is said as such, exit 2, never taken for an
 * empty directory or a missing file (every answer would be about a policy that was not read).
 */
function mustBeReadable(dir: string, given: string): void {
  const refuse = (what: string, e: unknown): never => {
    throw new UsageError(`cannot read \`${what}\` (in \`${given}\`): ${osMessage(e)}; check its permissions (or run qkit as a user who may read it)`, "cannot-read");
  };
  const walk = (d: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch (e) {
      return refuse(d, e);
    }
    for (const n of names) {
      const full = path.join(d, n);
      let st;
      try {
        st = statSync(full);
      } catch {
        continue; // a dangling link: the engine's own error says it
      }
      if (st.isDirectory()) {
        if (depth < 1) walk(full, depth + 1);
      } else if (st.isFile()) {
        try {
          closeSync(openSync(full, "r"));
        } catch (e) {
          refuse(full, e);
        }
      }
    }
  };
  walk(dir, 0);
}

/** A virtual path printed as the real path the user knows. */
export function realPathOf(src: PolicySource, virtual: string): string {
  for (const [virt, real] of Object.entries(src.mounts)) {
    if (virtual === virt) return real;
    if (virtual.startsWith(virt + "/")) return path.join(real, virtual.slice(virt.length + 1));
  }
  return virtual;
}

/**
 * The first qube of a system model whose entry is not an object of properties
 * (`"vault": null`), said in one line for `what` (e.g. "the system model
 * \`FILE\`"); `undefined` when every entry is an object.
 */
export function malformedQube(domains: Iterable<[string, unknown]>, what: string): string | undefined {
  for (const [n, d] of domains) {
    // qubesd never names a qube so: such a name would be read as a policy token (`@default`, `@anyvm`), and the answers could not tell them apart.
    if (n.startsWith("@")) {
      return `${what}: qube \`${clip(oneLine(n))}\` has a name starting with \`@\`, which no qube has (it is read as a policy token); fix the entry or make the model again with \`qkit system snapshot\``;
    }
    if (!d || typeof d !== "object" || Array.isArray(d)) {
      return `${what}: qube \`${clip(oneLine(n))}\` is ${clip(oneLine(JSON.stringify(d) ?? String(d)))}, not an object of properties (\`type\`, \`tags\`, \`template_for_dispvms\`, ...); fix the entry or make the model again with \`qkit system snapshot\``;
    }
    // Tags are names: a list of strings, as qubesd gives them (the checks and the answers read them so).
    const tags = (d as { tags?: unknown }).tags;
    if (tags !== undefined && !(Array.isArray(tags) && tags.every((t) => typeof t === "string"))) {
      return `${what}: qube \`${clip(oneLine(n))}\` has tags ${clip(oneLine(JSON.stringify(tags) ?? String(tags)))}, not a list of names; fix the entry or make the model again with \`qkit system snapshot\``;
    }
  }
  return undefined;
}

/**
 * The text of a system model file, read as bytes: bytes that are not UTF-8
 * are refused ([not-utf8]) rather than read as U+FFFD (qubesd writes the
 * model in UTF-8; a name decoded with U+FFFD is a qube no policy names). The
 * caller says how the file is shown and throws its command's failure; an
 * error of the file system is thrown as it is.
 */
export function systemModelText(abs: string, shown: string): { text: string } | { problem: string; code: "not-utf8" } {
  const bytes = readFileSync(abs);
  noteRead(abs);
  if (isUtf8(bytes)) return { text: bytes.toString("utf8") };
  const p = findUtf8Problem(bytes)!;
  return {
    problem: `the system model ${shown} is not UTF-8 text: byte 0x${p.byte.toString(16).padStart(2, "0")} at offset ${p.offset} (${p.reason}); qubesd writes it in UTF-8: make it again with \`qkit system snapshot\`, or save it as UTF-8`,
    code: "not-utf8",
  };
}

export function readSystem(file: string | undefined, io: CliIO): SystemInfo {
  if (file === undefined) return prepareSystemInfo({ domains: {} });
  let read: ReturnType<typeof systemModelText>;
  try {
    read = systemModelText(path.resolve(io.cwd, file), `\`${file}\``);
  } catch (e) {
    throw new UsageError(`cannot read the system model \`${file}\`: ${osMessage(e)}`);
  }
  if ("problem" in read) throw new UsageError(read.problem, read.code);
  const text = read.text;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // The shared reader says where the JSON breaks without quoting the file (it may be any file).
    const r = readSystemModelText(text, file);
    throw new UsageError("error" in r ? r.error.message : `the system model \`${file}\` is not valid JSON`, "invalid-json");
  }
  if (!raw || typeof raw !== "object" || typeof (raw as { domains?: unknown }).domains !== "object") {
    throw new UsageError(`the system model \`${file}\` is not an internal.GetSystemInfo answer (no \`domains\` object)`);
  }
  return prepareSystemInfo(raw as { domains: Record<string, never> });
}

/** No command of its own (see `policy-check.ts` and `policy-eval.ts`). */
export const commands: Command[] = [];
