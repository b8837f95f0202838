/**
 * The public types of the template front end: the file-system and live-system
 * seams, and the one diagnostic shape of `*.qubes.yaml` files.
 */
import type { Severity, Span } from "../diagnostics.js";
import type { Utf8Problem } from "../loader/utf8.js";

/** How the checker reads stack, include and bundle files. Absolute POSIX paths; `undefined` for a missing file; never throws. */
export interface StackFileSystem {
  readFile(path: string): string | undefined;
  /**
   * Why `path` cannot be read, in the host's words (`Permission denied`, `it is a directory`),
   * with what to do; asked only after `readFile` gave `undefined`. Without it (or `undefined`),
   * the file is said to be missing.
   */
  readProblem?(path: string): { reason: string; help: string } | undefined;
  /**
   * Where the bytes of a file `readFile` read are not UTF-8 (it gave them as U+FFFD), or
   * `undefined` (see `PolicyFileSystem.notUtf8`): such a file would be applied changed.
   */
  notUtf8?(path: string): Utf8Problem | undefined;
}

/** One qube of the live system, as far as the checker needs it. */
export interface SystemQube {
  class: string;
  provides_network?: boolean;
  template_for_dispvms?: boolean;
  template?: string | null;
  label?: string;
  netvm?: string | null;
  tags?: string[];
}

/**
 * The live system (optional), built by the SDK from `internal.GetSystemInfo`
 * plus a few reads. With it, every referenced qube must exist on the machine
 * or be declared; without it, an undeclared reference is an `info` note.
 */
export interface StackSystem {
  qubes: Record<string, SystemQube>;
  /** Label names known to qubesd (the standard eight are always known). */
  labels?: string[];
  /** Installed kernels (`linux-kernel` pool volumes); unchecked when absent. */
  kernels?: string[];
  /** Storage pools; unchecked when absent. */
  pools?: string[];
}

/** Something related to a diagnostic elsewhere (the other declaration, the bundle use site). */
export interface RelatedInformation {
  file: string;
  span: Span;
  message: string;
}

/** One problem in a stack, include or bundle file. */
export interface TemplateDiagnostic {
  /** Stable kebab-case identifier (`unknown-key`, `netvm-loop`, or a policy core code such as `invalid-action`). */
  code: string;
  severity: Severity;
  /** One line: what is wrong (qubesd's or the policy engine's wording where there is one). */
  message: string;
  /** The absolute path of the file. */
  file: string;
  span: Span;
  /** 1-based line of `span.start`. */
  line: number;
  /** What to do about it. */
  help?: string;
  related?: RelatedInformation[];
}
