/**
 * The qrexec policy admin API (`policy.List/Get/Replace/Remove/GetFiles`,
 * `policy.include.*`), served by the `qubes-policy-admin` qrexec service
 * rather than qubesd.
 *
 * Writes use optimistic concurrency: every write carries a token, either
 * the `sha256:…` of the version the caller read (so someone else's change in
 * between makes the write fail with {@link PolicyAdminTokenException}), `new`
 * (the file must not exist) or `any` (explicitly no check). A text that the
 * language core finds invalid is refused before it is sent.
 */
import { createHash } from "node:crypto";
import {
  createMemoryFileSystem,
  loadPolicy,
  parseDocument,
  type Diagnostic,
  type LoadOptions,
  type LoadResult,
  type PolicyDocument,
  type PolicyFileSystem,
} from "@qubes-kit/language";
import { QubesClientError, QubesException, QubesServiceCallError, QubesTimeoutError, QubesTransportError, QubesValidationError } from "./errors.js";
import { fromUtf8, utf8 } from "./protocol.js";
import type { ServiceResult, Transport, TransportCallOptions } from "./transport.js";
import { validateArg, validatePolicyName } from "./validate.js";
import { parseLines } from "./values.js";

/** A concurrency token: `sha256:<hex>` of the content read, `new`, or `any`. */
export type PolicyToken = `sha256:${string}` | "new" | "any";

/** Base class of the policy admin API's errors (`PolicyAdminException`). */
export class PolicyAdminException extends QubesException {}
/** The token did not match: someone else changed (or created/removed) the file. */
export class PolicyAdminTokenException extends PolicyAdminException {}
/** The file does not exist. */
export class PolicyAdminFileNotFoundException extends PolicyAdminException {}
/** The request was malformed. */
export class PolicyAdminProtocolException extends PolicyAdminException {}
/** The server's validation of the changed policy failed. */
export class PolicyAdminSyntaxException extends PolicyAdminProtocolException {}
/** The file name was refused. */
export class PolicyAdminInvalidFileNameException extends PolicyAdminProtocolException {}
/** The resolved path is outside the policy directory. */
export class PolicyAdminInvalidFilePathException extends PolicyAdminProtocolException {}
/** Exit code 2: an internal error of the service (see its log in dom0). */
export class PolicyAdminInternalError extends PolicyAdminException {}

const POLICY_ERRORS: Record<string, new (m: string, o?: { qubesType?: string }) => PolicyAdminException> = {
  PolicyAdminException,
  PolicyAdminTokenException,
  PolicyAdminFileNotFoundException,
  PolicyAdminProtocolException,
  PolicyAdminSyntaxException,
  PolicyAdminInvalidFileNameException,
  PolicyAdminInvalidFilePathException,
};

/** A policy text failed client-side validation; nothing was sent. */
export class PolicyValidationError extends QubesClientError {
  /** The error diagnostics of `@qubes-kit/language`. */
  diagnostics: Diagnostic[];
  constructor(file: string, diagnostics: Diagnostic[]) {
    const first = diagnostics[0];
    super(
      first ? `${file}:${first.line}: ${first.message}${diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : ""}` : `${file}: invalid policy`,
      "invalid-policy",
    );
    this.diagnostics = diagnostics;
  }
}

/** Turns a service result into stdout, or the typed error. */
export function policyResult(service: string, r: ServiceResult): Uint8Array {
  if (r.exitCode === 0) return r.stdout;
  const stderr = fromUtf8(r.stderr);
  if (r.exitCode === 1) {
    const sp = stderr.indexOf(" ");
    const type = sp < 0 ? stderr : stderr.slice(0, sp);
    const cls = Object.prototype.hasOwnProperty.call(POLICY_ERRORS, type) ? POLICY_ERRORS[type] : undefined;
    if (cls) throw new cls(sp < 0 ? "" : stderr.slice(sp + 1), { qubesType: type });
  }
  if (r.exitCode === 2) {
    throw new PolicyAdminInternalError(stderr, { qubesType: "PolicyAdminInternalError" });
  }
  throw new QubesServiceCallError(r.exitCode, stderr, service);
}

/** One policy file as read from the API. */
export interface PolicyFile {
  /** The name without `.policy` (main files) or the include file name. */
  name: string;
  /** Whether it lives in `include/`. */
  include: boolean;
  /** The token of this version (pass it to `replace`/`remove`). */
  token: PolicyToken;
  /** The content. */
  text: string;
  /** Parsed by `@qubes-kit/language`. */
  document: PolicyDocument;
}

/** The whole live policy: every main and include file with its token. */
export interface PolicySnapshot {
  files: PolicyFile[];
  /** Path → text, with paths as `createMemoryFileSystem` takes them (`NAME.policy`, `include/NAME`). */
  texts: Record<string, string>;
  /**
   * Files the API lists but cannot read: `List` shows every file, while `Get`
   * only takes names of `[A-Za-z0-9_-]` (an include file such as
   * `getdate-4.0` is listed but unreadable through the API).
   */
  skipped: { name: string; include: boolean; reason: string }[];
}

/** Options of writes. */
export interface PolicyWriteOptions {
  /** Write into `include/`. */
  include?: boolean;
  /**
   * Validate the text as this syntax. Default `"policy"`; an include file used
   * through `!include-service` has service syntax, which the client cannot
   * know: pass `"service"` for those.
   */
  syntax?: "policy" | "service";
  /** Skip client-side validation (the server still validates). */
  skipValidation?: boolean;
  signal?: AbortSignal;
}

/** The token of a content, as the server computes it. */
export function policyToken(content: string | Uint8Array): PolicyToken {
  const bytes = typeof content === "string" ? utf8(content) : content;
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function checkToken(token: string): PolicyToken {
  if (token === "new" || token === "any" || /^sha256:[0-9a-f]{64}$/.test(token)) return token as PolicyToken;
  throw new QubesValidationError(`token \`${token}\` must be \`sha256:<64 hex digits>\`, \`new\` or \`any\``, "invalid-token", "token");
}

/** Validates policy text with the language core; returns its error diagnostics. */
export function policyErrors(text: string, file: string, syntax: "policy" | "service" = "policy"): Diagnostic[] {
  const doc = parseDocument(text, { syntax, file });
  return doc.diagnostics.filter((d) => d.severity === "error");
}

/**
 * The policy admin API client. Needs a transport with
 * {@link Transport.runService} (`qrexec-client-vm`, a command transport,
 * `PolicyAdminExecTransport` in dom0, or an in-process handler).
 */
export class PolicyAdmin {
  readonly transport: Transport;
  /** The qrexec target of the calls (default `dom0`). */
  readonly dest: string;
  /** Timeout of each call in ms (`0` = none). */
  readonly timeout: number;

  constructor(transport: Transport, options: { dest?: string; timeout?: number } = {}) {
    this.transport = transport;
    this.dest = options.dest ?? "dom0";
    this.timeout = options.timeout ?? 120_000;
  }

  /** Runs one `policy.*` service (arguments checked); returns stdout or throws the typed error. */
  async call(service: string, arg = "", stdin: string | Uint8Array = "", options: TransportCallOptions & { unchecked?: boolean } = {}): Promise<Uint8Array> {
    if (!options.unchecked) {
      if (!/^policy\.[A-Za-z.]+$/.test(service)) throw new QubesValidationError(`\`${service}\` is not a policy admin service`, "invalid-method", "method");
      validateArg(arg);
    }
    if (!this.transport.runService) throw new QubesTransportError(`${this.transport.description} cannot reach the policy admin api`, { code: "unsupported-call" });
    const what = `${service}${arg ? `+${arg}` : ""}`;
    const controller = new AbortController();
    const user = options.signal;
    const onAbort = () => controller.abort(user?.reason);
    if (user?.aborted) controller.abort(user.reason);
    user?.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const timer =
      this.timeout > 0
        ? setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, this.timeout)
        : undefined;
    try {
      const r = await this.transport.runService({ service, arg, dest: this.dest, stdin: typeof stdin === "string" ? utf8(stdin) : stdin }, { signal: controller.signal });
      if (timedOut) throw new QubesTimeoutError(this.timeout, what);
      return policyResult(what, r);
    } catch (err) {
      if (timedOut) throw new QubesTimeoutError(this.timeout, what);
      throw err;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      user?.removeEventListener("abort", onAbort);
    }
  }

  private svc(include: boolean | undefined, op: string): string {
    return include ? `policy.include.${op}` : `policy.${op}`;
  }

  /** Main policy file names (without `.policy`), or include file names. */
  async list(options: { include?: boolean; signal?: AbortSignal } = {}): Promise<string[]> {
    return parseLines(fromUtf8(await this.call(this.svc(options.include, "List"), "", "", options)));
  }

  /** Reads a file with its token, parsed. */
  async get(name: string, options: { include?: boolean; syntax?: "policy" | "service"; signal?: AbortSignal } = {}): Promise<PolicyFile> {
    validatePolicyName(name);
    const out = fromUtf8(await this.call(this.svc(options.include, "Get"), name, "", options));
    const nl = out.indexOf("\n");
    const token = nl < 0 ? out : out.slice(0, nl);
    if (!/^sha256:[0-9a-f]+$/.test(token)) throw new PolicyAdminProtocolException(`policy.Get: reply does not start with a sha256 token`, { qubesType: "PolicyAdminProtocolException" });
    const text = nl < 0 ? "" : out.slice(nl + 1);
    const file = options.include ? `include/${name}` : `${name}.policy`;
    return { name, include: !!options.include, token: token as PolicyToken, text, document: parseDocument(text, { syntax: options.syntax ?? "policy", file }) };
  }

  /**
   * Replaces (or with token `new`, creates) a file. Refused client-side when
   * the text has errors; fails with {@link PolicyAdminTokenException} when the
   * file changed since `token` was read.
   */
  async replace(name: string, text: string, token: PolicyToken, options: PolicyWriteOptions = {}): Promise<void> {
    validatePolicyName(name);
    checkToken(token);
    if (!options.skipValidation) {
      const file = options.include ? `include/${name}` : `${name}.policy`;
      // The API takes any `[A-Za-z0-9_-]` name, but the daemon refuses a
      // `.policy` file with upper case and then denies every call.
      if (!options.include && !/^[0-9a-z_-]+$/.test(name)) {
        const message = `invalid filename: /etc/qubes/policy.d/${name}.policy`;
        throw new PolicyValidationError(file, [{ code: "invalid-filename", severity: "error", message, span: { start: 0, end: 0 }, line: 1, file, help: "policy.d file names may only contain lower-case letters, digits, `_`, `.` and `-`" }]);
      }
      const errors = policyErrors(text, file, options.syntax ?? "policy");
      if (errors.length > 0) throw new PolicyValidationError(file, errors);
    }
    await this.call(this.svc(options.include, "Replace"), name, `${token}\n${text}`, options);
  }

  /** Removes a file (token as for {@link PolicyAdmin.replace}). */
  async remove(name: string, token: PolicyToken, options: { include?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    validatePolicyName(name);
    checkToken(token);
    await this.call(this.svc(options.include, "Remove"), name, token, options);
  }

  /** The files with rules for a service (names without `.policy`; absolute paths outside the directory). */
  async getFiles(service: string, options: { signal?: AbortSignal } = {}): Promise<string[]> {
    if (!service || !/^[A-Za-z0-9_.-]+$/.test(service)) {
      throw new QubesValidationError(`service \`${service}\` must be non-empty and may only contain letters, digits, \`_\`, \`.\` and \`-\``, "invalid-service", "service");
    }
    return parseLines(fromUtf8(await this.call("policy.GetFiles", service, "", options)));
  }

  /**
   * Read-modify-write with the token of the version read: `edit` gets the
   * current text (or `undefined` if the file does not exist) and returns the
   * new one. A concurrent change makes the write fail; nothing is overwritten.
   */
  async update(name: string, edit: (text: string | undefined) => string, options: PolicyWriteOptions = {}): Promise<void> {
    let current: PolicyFile | undefined;
    try {
      current = await this.get(name, options);
    } catch (err) {
      if (!(err instanceof PolicyAdminFileNotFoundException)) throw err;
    }
    await this.replace(name, edit(current?.text), current ? current.token : "new", options);
  }

  /** Reads every main and include file. */
  async snapshot(options: { signal?: AbortSignal } = {}): Promise<PolicySnapshot> {
    const files: PolicyFile[] = [];
    const skipped: PolicySnapshot["skipped"] = [];
    for (const include of [false, true]) {
      for (const name of await this.list({ ...options, include })) {
        if (!/^[A-Za-z0-9_-]+$/.test(name)) {
          skipped.push({ name, include, reason: "the policy admin api only reads names of letters, digits, `_` and `-`" });
          continue;
        }
        files.push(await this.get(name, { ...options, include }));
      }
    }
    const texts: Record<string, string> = {};
    for (const f of files) texts[f.include ? `include/${f.name}` : `${f.name}.policy`] = f.text;
    return { files, texts, skipped };
  }

  /** A `PolicyFileSystem` of the live policy (for `loadPolicy` + `evaluate`). */
  async fileSystem(options: { signal?: AbortSignal } = {}): Promise<PolicyFileSystem> {
    return createMemoryFileSystem((await this.snapshot(options)).texts);
  }

  /** Loads the live policy with the language core. */
  async load(options: LoadOptions & { signal?: AbortSignal } = {}): Promise<LoadResult> {
    const { signal, ...load } = options;
    return loadPolicy(await this.fileSystem(signal ? { signal } : {}), load);
  }
}
