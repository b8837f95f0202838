/**
 * The qrexec policy admin API (`policy.*`, `policy.include.*`) of the
 * `qubes-policy-admin` service, over a policy directory kept on disk or in
 * memory. Changes are validated by loading the whole policy with the change
 * applied, as upstream's `ValidateParser` does.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { createMemoryFileSystem, loadPolicy, POLICY_DIR } from "@qubes-kit/language";
import type { PolicyFileSystem, CompiledPolicy } from "@qubes-kit/language";

/** A policy-admin failure: `class` is the upstream exception class, written to stderr as `<class> <message>`. */
export class PolicyAdminError extends Error {
  override name = "PolicyAdminError";
  constructor(
    readonly className: string,
    message: string,
    /** The service's exit code: 1 for a user error, 2 for an internal error. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

/**
 * Where the policy files live. Names are relative to the policy directory:
 * `30-user.policy`, `include/admin-mgmt`.
 */
export interface PolicyStore {
  /** Regular files directly in `dir` (`""` = the policy directory, `"include"`). */
  list(dir: "" | "include"): string[];
  read(rel: string): Buffer | undefined;
  write(rel: string, data: Buffer): void;
  remove(rel: string): void;
  /** Every file, for loading the whole policy. */
  all(): Record<string, string>;
}

/** An in-memory {@link PolicyStore}. */
export class MemoryPolicyStore implements PolicyStore {
  private readonly files = new Map<string, Buffer>();
  constructor(initial: Record<string, string | Uint8Array> = {}) {
    for (const [k, v] of Object.entries(initial)) this.files.set(k, Buffer.from(typeof v === "string" ? Buffer.from(v, "utf8") : v));
  }
  list(dir: "" | "include"): string[] {
    const prefix = dir ? `${dir}/` : "";
    return [...this.files.keys()].filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes("/")).map((k) => k.slice(prefix.length));
  }
  read(rel: string): Buffer | undefined {
    return this.files.get(rel);
  }
  write(rel: string, data: Buffer): void {
    this.files.set(rel, Buffer.from(data));
  }
  remove(rel: string): void {
    this.files.delete(rel);
  }
  all(): Record<string, string> {
    return Object.fromEntries([...this.files].map(([k, v]) => [k, v.toString("utf8")]));
  }
}

/** A {@link PolicyStore} over a real directory (writes go through a temporary file and a rename). */
export class DiskPolicyStore implements PolicyStore {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }
  list(dir: "" | "include"): string[] {
    const d = path.join(this.dir, dir);
    try {
      return fs.readdirSync(d).filter((n) => {
        try {
          return fs.statSync(path.join(d, n)).isFile();
        } catch {
          return false;
        }
      });
    } catch {
      return [];
    }
  }
  read(rel: string): Buffer | undefined {
    try {
      const p = path.join(this.dir, rel);
      return fs.statSync(p).isFile() ? fs.readFileSync(p) : undefined;
    } catch {
      return undefined;
    }
  }
  write(rel: string, data: Buffer): void {
    const p = path.join(this.dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const tmp = path.join(path.dirname(p), `!${path.basename(p)}`);
    fs.writeFileSync(tmp, data, { mode: 0o664 });
    fs.renameSync(tmp, p);
  }
  remove(rel: string): void {
    fs.unlinkSync(path.join(this.dir, rel));
  }
  all(): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (rel: string) => {
      let names: string[];
      try {
        names = fs.readdirSync(path.join(this.dir, rel));
      } catch {
        return;
      }
      for (const n of names) {
        const r = rel ? `${rel}/${n}` : n;
        const st = fs.statSync(path.join(this.dir, r), { throwIfNoEntry: false });
        if (!st) continue;
        if (st.isDirectory()) walk(r);
        else if (st.isFile()) out[r] = fs.readFileSync(path.join(this.dir, r), "utf8");
      }
    };
    walk("");
    return out;
  }
}

/** The memory file system the language core loads the store through (the store appears as `/etc/qubes/policy.d`). */
export function storeFileSystem(store: PolicyStore): PolicyFileSystem {
  return createMemoryFileSystem(store.all());
}

/** Loads the current policy (for the policy checks of calls from management qubes); `undefined` if it does not load. */
export function loadStorePolicy(store: PolicyStore): CompiledPolicy | undefined {
  const r = loadPolicy(storeFileSystem(store), { runtimeDir: null });
  return r.ok ? r.policy : undefined;
}

const ALLOWED_ARG = /^[A-Za-z0-9+._-]*$/;

function token(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

interface Target {
  rel: string;
  abs: string;
}

function targetFor(arg: string, include: boolean): Target {
  if (!/^[\w-]+$/u.test(arg) || /[^\x00-\x7f]/.test(arg)) {
    throw new PolicyAdminError(
      "PolicyAdminInvalidFileNameException",
      `Invalid policy file name: ${arg}\nNames must contain only alphanumeric characters, underscore and hyphen.`,
    );
  }
  const rel = include ? `include/${arg}` : `${arg}.policy`;
  return { rel, abs: `${POLICY_DIR}/${rel}` };
}

function checkToken(store: PolicyStore, tok: Buffer, t: Target): void {
  const s = tok.toString("latin1");
  if (s === "any") return;
  const exists = store.read(t.rel) !== undefined;
  if (s === "new") {
    if (exists) throw new PolicyAdminError("PolicyAdminTokenException", "File exists but token is 'new'");
    return;
  }
  if (!s.startsWith("sha256:")) throw new PolicyAdminError("PolicyAdminProtocolException", "Unrecognized token");
  if (!exists) throw new PolicyAdminError("PolicyAdminTokenException", "File doesn't exist, but token isn't 'new'");
  if (token(store.read(t.rel)!) !== s) throw new PolicyAdminError("PolicyAdminTokenException", "Token mismatch");
}

function validate(store: PolicyStore, t: Target, content: string | null): void {
  const r = loadPolicy(storeFileSystem(store), { runtimeDir: null, overrides: { [t.abs]: content } });
  if (!r.ok) {
    if (r.error.error === "PolicySyntaxError")
      throw new PolicyAdminError("PolicyAdminSyntaxException", `Policy change validation failed: ${r.error.message}`);
    throw new PolicyAdminError("InternalError", `Internal error. See '/var/log/qubes/policy-admin.log' in dom0 for details.`, 2);
  }
}

interface PolicyMethod {
  noArg: boolean;
  noPayload: boolean;
  run(store: PolicyStore, arg: string, payload: Buffer): Buffer | undefined;
}

function list(store: PolicyStore, dir: "" | "include", suffix: string): Buffer {
  const names = store
    .list(dir)
    .filter((n) => !suffix || n.endsWith(suffix))
    .map((n) => (suffix ? n.slice(0, -suffix.length) : n))
    .sort();
  return Buffer.from(names.map((n) => `${n}\n`).join(""), "utf8");
}

function get(store: PolicyStore, t: Target): Buffer {
  const data = store.read(t.rel);
  if (data === undefined) throw new PolicyAdminError("PolicyAdminFileNotFoundException", `Not found: ${t.abs}`);
  return Buffer.concat([Buffer.from(`${token(data)}\n`, "latin1"), data]);
}

function replace(store: PolicyStore, t: Target, payload: Buffer): undefined {
  const nl = payload.indexOf(0x0a);
  if (nl < 0) throw new PolicyAdminError("PolicyAdminProtocolException", "Payload needs to include first line with token");
  checkToken(store, payload.subarray(0, nl), t);
  const data = payload.subarray(nl + 1);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    throw new PolicyAdminError("InternalError", "Internal error. See '/var/log/qubes/policy-admin.log' in dom0 for details.", 2);
  }
  validate(store, t, text);
  store.write(t.rel, Buffer.from(data));
  return undefined;
}

function remove(store: PolicyStore, t: Target, payload: Buffer): undefined {
  checkToken(store, payload, t);
  if (store.read(t.rel) === undefined) throw new PolicyAdminError("PolicyAdminFileNotFoundException", `Not found: ${t.abs}`);
  validate(store, t, null);
  store.remove(t.rel);
  return undefined;
}

const METHODS: Record<string, PolicyMethod> = {
  "policy.List": { noArg: true, noPayload: true, run: (s) => list(s, "", ".policy") },
  "policy.include.List": { noArg: true, noPayload: true, run: (s) => list(s, "include", "") },
  "policy.Get": { noArg: false, noPayload: true, run: (s, a) => get(s, targetFor(a, false)) },
  "policy.include.Get": { noArg: false, noPayload: true, run: (s, a) => get(s, targetFor(a, true)) },
  "policy.Replace": { noArg: false, noPayload: false, run: (s, a, p) => replace(s, targetFor(a, false), p) },
  "policy.include.Replace": { noArg: false, noPayload: false, run: (s, a, p) => replace(s, targetFor(a, true), p) },
  "policy.Remove": { noArg: false, noPayload: false, run: (s, a, p) => remove(s, targetFor(a, false), p) },
  "policy.include.Remove": { noArg: false, noPayload: false, run: (s, a, p) => remove(s, targetFor(a, true), p) },
  "policy.GetFiles": {
    noArg: false,
    noPayload: true,
    run: (s, arg) => {
      if (!arg) throw new PolicyAdminError("PolicyAdminProtocolException", "Service cannot be empty.");
      const bad = [...new Set([...arg].filter((c) => !/[A-Za-z0-9._-]/.test(c)))].sort();
      if (bad.length)
        throw new PolicyAdminError(
          "PolicyAdminProtocolException",
          `Service '${arg}' contains invalid characters: (${bad.map((c) => `'${c}'`).join(", ")}${bad.length === 1 ? "," : ""})`,
        );
      const r = loadPolicy(storeFileSystem(s), { runtimeDir: null });
      if (!r.ok) throw new PolicyAdminError("InternalError", "Internal error. See '/var/log/qubes/policy-admin.log' in dom0 for details.", 2);
      const out: string[] = [];
      for (const rule of r.policy.rules) {
        if (rule.service !== null && rule.service !== arg) continue;
        const p = rule.origin.path;
        let name: string;
        if (p.startsWith(`${POLICY_DIR}/`)) {
          const base = p.slice(p.lastIndexOf("/") + 1);
          const dot = base.lastIndexOf(".");
          name = dot > 0 ? base.slice(0, dot) : base;
        } else name = p;
        if (!out.includes(name)) out.push(name);
      }
      return Buffer.from(out.map((n) => `${n}\n`).join(""), "utf8");
    },
  },
};

/** The names of the policy admin services. */
export const POLICY_METHODS = Object.keys(METHODS);

/**
 * Runs one policy admin call, as `qubes-policy-admin` does (`PolicyAdmin.handle_request`).
 * Returns the service's stdout; throws {@link PolicyAdminError} for what it writes to stderr.
 */
export function handlePolicyRequest(store: PolicyStore, service: string, arg: string, payload: Buffer): Buffer {
  if (!ALLOWED_ARG.test(arg)) {
    throw new PolicyAdminError(
      "PolicyAdminProtocolException",
      `Invalid argument: "${arg}"\nValid characters are letters, numbers, dot, plus, hyphen and underline`,
    );
  }
  const m = METHODS[service];
  if (!m) throw new PolicyAdminError("PolicyAdminProtocolException", `unrecognized method: ${service}`);
  if (m.noArg && arg !== "") throw new PolicyAdminError("PolicyAdminProtocolException", "Unexpected argument");
  if (m.noPayload && payload.length > 0) throw new PolicyAdminError("PolicyAdminProtocolException", "Unexpected payload");
  try {
    return m.run(store, arg, payload) ?? Buffer.alloc(0);
  } catch (e) {
    if (e instanceof PolicyAdminError) throw e;
    throw new PolicyAdminError("InternalError", "Internal error. See '/var/log/qubes/policy-admin.log' in dom0 for details.", 2);
  }
}

/**
 * The stdout/stderr/exit code of the `qubes-policy-admin` service for one call,
 * the shape of the `policy-admin/` golden transcripts.
 */
export function runPolicyService(store: PolicyStore, serviceFullName: string, stdin: Buffer): { exitCode: number; stdout: Buffer; stderr: Buffer } {
  const plus = serviceFullName.indexOf("+");
  const service = plus < 0 ? serviceFullName : serviceFullName.slice(0, plus);
  const arg = plus < 0 ? "" : serviceFullName.slice(plus + 1);
  try {
    return { exitCode: 0, stdout: handlePolicyRequest(store, service, arg, stdin), stderr: Buffer.alloc(0) };
  } catch (e) {
    const err = e as PolicyAdminError;
    const text = err.exitCode === 2 ? err.message : `${err.className} ${err.message}`;
    return { exitCode: err.exitCode, stdout: Buffer.alloc(0), stderr: Buffer.from(text, "utf8") };
  }
}
