/**
 * Loading a whole policy: the file system seam and the result types.
 */
import type { Diagnostic } from "../diagnostics.js";
import type { RuleNode } from "../syntax/tree.js";
import type { Utf8Problem } from "./utf8.js";

/** What a path points to, after following symlinks. */
export type FileKind = "file" | "dir" | "other";

/**
 * The only way the language core reads files. The CLI and the SDK implement
 * it over `node:fs`; the LSP implements it over open documents plus the disk;
 * {@link createMemoryFileSystem} implements it in memory. Paths are absolute
 * POSIX paths. Every method returns `undefined` for a missing path and never throws.
 */
export interface PolicyFileSystem {
  /** The kind of the entry at `path`, following symlinks. */
  stat(path: string): FileKind | undefined;
  /** Names (not paths) of the entries of a directory. */
  readDir(path: string): string[] | undefined;
  /** The text of a file. */
  readFile(path: string): string | undefined;
  /** The canonical path (symlinks resolved); defaults to lexical normalisation. */
  realPath?(path: string): string;
  /**
   * Where the bytes of a file that {@link readFile} read are not UTF-8 (`readFile` then gave them
   * as U+FFFD), or `undefined`. Optional: a file system of texts has no bytes to get wrong. The
   * daemon reads policy files as UTF-8 and fails on such a file, so every call is denied.
   */
  notUtf8?(path: string): Utf8Problem | undefined;
}

/** The standard directories (the engine's constants). */
export const POLICY_DIR = "/etc/qubes/policy.d";
export const RUNTIME_POLICY_DIR = "/run/qubes/policy.d";
export const LEGACY_POLICY_DIR = "/etc/qubes-rpc/policy";
export const INCLUDE_DIR = "/etc/qubes/policy.d/include";

/** Options of {@link loadPolicy}. */
export interface LoadOptions {
  /** Which loader to imitate: `file` (the daemon's, default) or `string` (the in-memory loader of `qubes-policy-lint`). */
  loader?: "file" | "string";
  /** Main policy directory (default `/etc/qubes/policy.d`). */
  policyDir?: string;
  /** Runtime policy directory, loaded together with the main one (default `/run/qubes/policy.d`; `null` to skip). */
  runtimeDir?: string | null;
  /** Legacy R4.0 directory read by `!compat-4.0` (default `/etc/qubes-rpc/policy`). */
  legacyDir?: string;
  /** String loader only: the files by key (`__main__` is loaded first). */
  strings?: Record<string, string>;
  /** String loader only: the `!compat-4.0` files by name (`svc`, `svc+arg`). */
  legacyStrings?: Record<string, string>;
  /**
   * Validation mode of the policy admin API: overridden files of the main dir
   * (absolute path → new text, or `null` for removal). Overrides are loaded
   * after the other files and skip the file-name check, as upstream's
   * `ValidateParser` does; the runtime dir is not read.
   */
  overrides?: Record<string, string | null>;
  /** Keep going after the first error to collect every diagnostic (for editors). Default `false`. */
  collectAll?: boolean;
  /**
   * Build the rules of this service only (the rules naming it and the `*`
   * rules: every rule that can decide one of its requests, in the same order).
   * The whole policy is still read and validated exactly as without it (same
   * errors, same warnings); the other rules are only counted. The policy then
   * decides requests for this service only ({@link CompiledPolicy.service}):
   * what a command that decides one request needs, at a fraction of the cost.
   */
  service?: string;
}

/** Where a rule came from. */
export interface RuleOrigin {
  /** The file as reported in decisions: relative to the policy dir when inside it, else absolute, or `KEY[in-memory]`. */
  file: string;
  /** The absolute path (or `KEY[in-memory]`). */
  path: string;
  /** 1-based line, or `null` for the implicit deny rules that `!compat-4.0` appends. */
  line: number | null;
}

/** One rule of the loaded policy, in global first-match order. */
export interface PolicyRule extends RuleNode {
  /** Position in the global rule list (0-based). */
  index: number;
  origin: RuleOrigin;
  /** The include chain that led to this rule (outermost first), for explanations. */
  via: RuleOrigin[];
}

/** The error classes the engine reports. `EngineError` stands for a crash of the real engine. */
export type PolicyErrorClass = "AccessDenied" | "PolicySyntaxError" | "RequestError" | "EngineError";

/** A failure of loading or evaluating, in the engine's terms. */
export interface PolicyError {
  error: PolicyErrorClass;
  /** The full message as the engine formats it (with `FILE:LINE: ` for syntax errors). */
  message: string;
  /** Stable code of the matching diagnostic or failure. */
  code: string;
  /** Syntax errors: the file (as in {@link RuleOrigin.file}), the line, and the message without the prefix. */
  file?: string;
  line?: number | null;
  detail?: string;
  /** For `EngineError`: the Python exception the real engine raises (`KeyError`, `RecursionError` …). */
  crash?: string;
  notify?: boolean;
}

/** A file that took part in loading (parse its `text` with `parseDocument` for the full tree). */
export interface LoadedFile {
  /** The absolute path (or `KEY[in-memory]`). */
  path: string;
  /** The name used in decisions (see {@link RuleOrigin.file}). */
  file: string;
  syntax: "policy" | "service";
  newlines: "universal" | "lf";
  text: string;
}

/** A loaded, fully valid policy: the only input the evaluator accepts. */
export interface CompiledPolicy {
  readonly rules: readonly PolicyRule[];
  /** Every file read, in load order (a file included twice appears twice). */
  readonly files: readonly LoadedFile[];
  /** Engine warnings (e.g. `!compat-4.0` is transitional). */
  readonly warnings: readonly Diagnostic[];
  /** @internal Rule index for fast matching. */
  readonly index: unknown;
  /**
   * Set when loaded with {@link LoadOptions.service}: `rules` holds only the
   * rules that can decide a request for this service, and the evaluator
   * refuses requests for any other service.
   */
  readonly service?: string;
  /** Every rule of the policy, kept or not (equal to `rules.length` unless `service` is set). */
  readonly ruleCount?: number;
}

/** The result of {@link loadPolicy}. */
export type LoadResult =
  | { ok: true; policy: CompiledPolicy; diagnostics: Diagnostic[] }
  | { ok: false; error: PolicyError; diagnostics: Diagnostic[]; files: LoadedFile[] };
