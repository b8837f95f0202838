/**
 * The simulator: dispatches request bytes to the `admin.*` handlers or the
 * policy admin API, and serves them on a Unix socket (one request per
 * connection, as qubesd does) or in process.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import { evaluate, prepareSystemInfo } from "@qubes-kit/language";
import type { CompiledPolicy, RawSystemInfo, DomainInfo } from "@qubes-kit/language";
import { checkCall, findAdminMethod, type CallContext, type StreamReply } from "./admin.js";
import { App, validateName, type AppOptions, type PropValue, type Qube } from "./model.js";
import { DiskPolicyStore, MemoryPolicyStore, PolicyAdminError, handlePolicyRequest, loadStorePolicy, type PolicyStore } from "./policy.js";
import { parseUuid } from "@qubes-kit/language";
import { MAX_REQUEST_BYTES, SimAbort, SimError, eventFrame, exceptionFrame, isAscii, okFrame, parseRequest, protocolError, qerr } from "./wire.js";

/** Where the reply of one call goes. */
export interface ReplySink {
  write(chunk: Buffer): void;
  /** The reply is complete: close the connection (after a `0\0`/`2\0` reply). */
  end(): void;
  /** Close without a byte more (qubesd's abort: framing error, unhandled exception). */
  abort(reason: string): void;
}

/** A running call; `close()` ends a stream (the client went away). */
export interface CallHandle {
  close(): void;
}

/** Options of {@link Simulator}. */
export interface SimulatorOptions extends AppOptions {
  /** A GetSystemInfo-shaped snapshot to start from (default: a freshly installed dom0). */
  system?: RawSystemInfo;
  /** The policy directory: a store, a path on disk, or files in memory (`"30-user.policy": "…"`). Default: empty, in memory. */
  policy?: PolicyStore | string | Record<string, string>;
  /** Called for every aborted call (unhandled exception in the real daemon), for logs. */
  onAbort?(reason: string, request: string): void;
}

/** The `admin.*` methods whose handler ends with `app.save()`. */
const SAVING_METHOD =
  /^admin\.(?:vm\.property\.(?:Set|Reset)|property\.(?:Set|Reset)|vm\.volume\.(?:Revert|CloneTo|Resize|Clear|Set\.\w+)|vm\.tag\.(?:Set|Remove)|pool\.(?:Add|Remove|Set\.\w+)|label\.(?:Create|Remove)|vm\.feature\.(?:Set|Remove)|vm\.Create(?:InPool)?\.\w+|vm\.CreateDisposable|vm\.Remove|vm\.device\.\w+\.(?:Assign|Unassign|Set\.assignment))$/;

/** The exception type used on the socket for an internal error (exit code 2) of the policy admin service. */
export const POLICY_INTERNAL_ERROR = "PolicyAdminInternalError";

/**
 * An offline Qubes Admin API: qubesd's `admin.*` methods over an in-memory
 * system model, plus the policy admin API (`policy.*`) over a policy store.
 */
export class Simulator {
  readonly app: App;
  readonly policy: PolicyStore;
  private readonly onAbort: SimulatorOptions["onAbort"];
  private policyCache: { key: string; policy: CompiledPolicy | undefined } | undefined;

  constructor(options: SimulatorOptions = {}) {
    this.app = options.system ? appFromSystemInfo(options.system, options) : new App(options);
    const p = options.policy;
    this.policy = p === undefined ? new MemoryPolicyStore() : typeof p === "string" ? new DiskPolicyStore(p) : isStore(p) ? p : new MemoryPolicyStore(p);
    this.onAbort = options.onAbort;
  }

  /** The current system as `internal.GetSystemInfo` would report it. */
  systemInfo(): RawSystemInfo {
    return systemInfoOf(this.app);
  }

  /**
   * Handles one request. Replies go to `sink`; a stream (`admin.Events`,
   * `admin.vm.Stats`) keeps writing frames until `close()` is called on the
   * returned handle.
   */
  open(request: Uint8Array, sink: ReplySink): CallHandle {
    const buf = Buffer.from(request.buffer, request.byteOffset, request.byteLength);
    const noop = { close() {} };
    if (buf.length > MAX_REQUEST_BYTES) {
      sink.abort("request too long");
      return noop;
    }
    const req = parseRequest(buf);
    if (!req) {
      this.onAbort?.("framing error", describe(buf));
      sink.abort("framing error");
      return noop;
    }
    try {
      if (req.method.startsWith("policy.")) {
        sink.write(this.policyReply(req.method, req.arg, req.payload));
        sink.end();
        return noop;
      }
      const result = this.dispatch(req.method, req.arg, req.source, req.dest, req.payload);
      if (result && typeof result === "object" && "kind" in result) {
        let closed = false;
        const stop = (result as StreamReply).start((subject, event, kwargs) => {
          if (!closed) sink.write(eventFrame(subject, event, kwargs));
        });
        return {
          close() {
            if (closed) return;
            closed = true;
            stop();
          },
        };
      }
      sink.write(okFrame(result as string | null | undefined));
      sink.end();
    } catch (e) {
      if (e instanceof SimError) {
        sink.write(exceptionFrame(e.type, e.message));
        sink.end();
      } else {
        const reason = e instanceof SimAbort ? e.reason : `unhandled exception: ${e instanceof Error ? e.stack ?? e.message : String(e)}`;
        this.onAbort?.(reason, describe(buf));
        sink.abort(reason);
      }
    }
    return noop;
  }

  /**
   * Handles one non-streaming request and returns the whole reply
   * (`undefined` when qubesd would close without a byte). Streams return
   * their first frame only.
   */
  handle(request: Uint8Array): Buffer | undefined {
    const chunks: Buffer[] = [];
    let aborted = false;
    const h = this.open(request, {
      write: (c) => chunks.push(c),
      end: () => {},
      abort: () => {
        aborted = true;
      },
    });
    h.close();
    return aborted ? undefined : Buffer.concat(chunks);
  }

  /**
   * Runs a policy admin call and frames the outcome like a qubesd reply:
   * `0\0<stdout>` on success, `2\0<ExceptionClass>\0\0<message>\0` on a user
   * error (exit code 1), and `2\0PolicyAdminInternalError\0\0<message>\0` on an
   * internal error (exit code 2). {@link policyReplyToServiceResult} turns it
   * back into the service's exit code, stdout and stderr.
   */
  policyReply(service: string, arg: string, payload: Buffer): Buffer {
    try {
      const out = handlePolicyRequest(this.policy, service, arg, payload);
      this.policyCache = undefined;
      return Buffer.concat([Buffer.from([0x30, 0]), out]);
    } catch (e) {
      const err = e instanceof PolicyAdminError ? e : new PolicyAdminError(POLICY_INTERNAL_ERROR, String(e), 2);
      return exceptionFrame(err.exitCode === 2 ? POLICY_INTERNAL_ERROR : err.className, err.message);
    }
  }

  private dispatch(method: string, arg: string, source: string, dest: string, payload: Buffer) {
    const src = this.decodeVm(source);
    const dst = this.decodeVm(dest);
    if (!isAscii(arg) || !isAscii(method)) throw new SimAbort("UnicodeDecodeError in method or argument");
    const def = findAdminMethod(method);
    if (!def) throw protocolError(`no such method: '${method}'`);
    checkCall(def, { arg, payload, dest: dst });
    const ctx: CallContext = {
      app: this.app,
      method,
      arg,
      src,
      dest: dst,
      payload,
      policyAllows: (service, a, s, t) => this.policyAllows(service, a, s, t),
    };
    const result = def.run(ctx);
    // qubesd writes qubes.xml after these calls; with the global default_kernel
    // reset, a qube whose kernel falls back to it cannot be serialised: the
    // change stays applied and the call dies without a reply.
    // (`CreateDisposable+preload` returns before anything is saved)
    if (SAVING_METHOD.test(method) && !(method === "admin.vm.CreateDisposable" && arg === "preload") && this.app.storeUnsaveable()) throw new SimAbort("AttributeError: no default_kernel while saving qubes.xml");
    return result;
  }

  /** `qubes.api.decode_vm`. */
  private decodeVm(raw: string): Qube {
    if (!isAscii(raw)) throw new SimAbort("UnicodeDecodeError in qube name");
    if (raw.startsWith("uuid:")) {
      if (raw.length !== 41 || !/^uuid:[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]*/.test(raw)) throw qerr("QubesVMInvalidUUIDError", `VM UUID is not valid: '${raw.slice(5)}'`);
      // The pattern checks only a prefix of the last group: `uuid.UUID()` then fails on the rest (an unhandled ValueError).
      if (parseUuid(raw.slice(5)) === undefined) throw new SimAbort("ValueError: badly formed hexadecimal UUID string");
    } else {
      validateName(raw);
    }
    const q = this.app.lookup(raw);
    if (!q) throw qerr("QubesVMNotFoundError", `No such domain: '${raw}'`);
    return q;
  }

  /** Whether the qrexec policy in the policy store allows `service+arg` from `source` to `target` (ask counts as no). */
  policyAllows(service: string, arg: string, source: string, target: string): boolean {
    const key = JSON.stringify(this.policy.all());
    if (!this.policyCache || this.policyCache.key !== key) this.policyCache = { key, policy: loadStorePolicy(this.policy) };
    const policy = this.policyCache.policy;
    if (!policy) return false;
    try {
      const d = evaluate(policy, { service, argument: `+${arg}`, source, target }, prepareSystemInfo(systemInfoOf(this.app)));
      return d.ok === true && d.action === "allow";
    } catch {
      return false;
    }
  }

  /**
   * Serves the simulator on a Unix socket (mode 0600 from the start). A stale
   * socket file at `path` (nobody answers on it) is replaced; a live one
   * (another simulator, or a real qubesd) is never taken over: that fails
   * with `EADDRINUSE`.
   */
  async listen(path: string): Promise<SimulatorServer> {
    let existing: fs.Stats | undefined;
    try {
      existing = fs.lstatSync(path);
    } catch {
      // Nothing there.
    }
    if (existing) {
      if (!existing.isSocket()) throw Object.assign(new Error(`${path} exists and is not a socket`), { code: "EEXIST" });
      if (await socketAnswers(path)) throw Object.assign(new Error(`${path} is in use by a running server`), { code: "EADDRINUSE" });
      fs.unlinkSync(path);
    }
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      const chunks: Buffer[] = [];
      let size = 0;
      let handle: CallHandle | undefined;
      let done = false;
      const finish = () => {
        done = true;
        handle?.close();
        sockets.delete(socket);
      };
      socket.on("data", (d: Buffer) => {
        if (handle || done) return;
        size += d.length;
        if (size > MAX_REQUEST_BYTES) {
          done = true;
          socket.destroy();
          return;
        }
        chunks.push(d);
      });
      socket.on("end", () => {
        if (done || handle) return;
        handle = this.open(Buffer.concat(chunks), {
          write: (c) => {
            if (!socket.destroyed) socket.write(c);
          },
          end: () => socket.end(),
          abort: () => socket.end(),
        });
      });
      socket.on("close", finish);
      socket.on("error", () => socket.destroy());
    });
    server.maxConnections = 100000;
    // The socket is created under a umask that leaves it 0600, so it is never
    // reachable by others, not even for a moment.
    const previous = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(path, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } finally {
      process.umask(previous);
    }
    fs.chmodSync(path, 0o600);
    const mine = fs.statSync(path);
    return {
      path,
      simulator: this,
      close: () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => {
            // Only our own socket file: another server may have replaced it meanwhile.
            try {
              const now = fs.lstatSync(path);
              if (now.ino === mine.ino && now.dev === mine.dev) fs.unlinkSync(path);
            } catch {
              // Already gone.
            }
            resolve();
          });
        }),
    };
  }
}

/** Whether something accepts connections on the Unix socket at `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    const done = (answer: boolean) => {
      c.destroy();
      resolve(answer);
    };
    c.once("connect", () => done(true));
    c.once("error", () => done(false));
    c.setTimeout(1000, () => done(false));
  });
}

/** A simulator listening on a socket. */
export interface SimulatorServer {
  readonly path: string;
  readonly simulator: Simulator;
  /** Stops listening, closes every connection (ending streams) and removes the socket file. */
  close(): Promise<void>;
}

function isStore(x: unknown): x is PolicyStore {
  return typeof x === "object" && x !== null && typeof (x as PolicyStore).list === "function" && typeof (x as PolicyStore).read === "function";
}

function describe(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.subarray(0, nul < 0 ? Math.min(buf.length, 200) : nul).toString("latin1");
}

/**
 * Turns a policy admin reply framed by the simulator ({@link Simulator.policyReply})
 * back into what the `qubes-policy-admin` service prints: exit code, stdout, stderr.
 * An empty or malformed reply gives exit code 2.
 */
export function policyReplyToServiceResult(reply: Uint8Array): { exitCode: number; stdout: Uint8Array; stderr: Uint8Array } {
  const b = Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength);
  if (b.length >= 2 && b[0] === 0x30 && b[1] === 0) return { exitCode: 0, stdout: b.subarray(2), stderr: new Uint8Array() };
  if (b.length >= 2 && b[0] === 0x32 && b[1] === 0) {
    const parts = b.subarray(2).toString("utf8").split("\0");
    const [type = "", , message = ""] = parts;
    if (type === POLICY_INTERNAL_ERROR) return { exitCode: 2, stdout: new Uint8Array(), stderr: Buffer.from(message, "utf8") };
    return { exitCode: 1, stdout: new Uint8Array(), stderr: Buffer.from(`${type} ${message}`, "utf8") };
  }
  return { exitCode: 2, stdout: new Uint8Array(), stderr: Buffer.from("no reply from the policy admin service", "utf8") };
}

// ---------------------------------------------------------------------------
// GetSystemInfo in and out

/** `internal.GetSystemInfo` of the model. */
export function systemInfoOf(app: App): RawSystemInfo {
  const domains: Record<string, DomainInfo> = {};
  for (const q of app.sortedDomains()) {
    const label = app.labels.size ? [...app.labels.values()].find((l) => l.name === q.getProp("label")) : undefined;
    const str = (v: PropValue | undefined) => (typeof v === "string" ? v : null);
    domains[q.name] = {
      internal: q.features.has("internal") ? q.features.get("internal")! : null,
      tags: [...q.tags].sort(),
      type: q.klass,
      template_for_dispvms: q.getProp("template_for_dispvms") === true,
      default_dispvm: str(q.getProp("default_dispvm")),
      icon: String(q.getProp("icon") ?? ""),
      label: label?.color ?? "0x000000",
      guivm: q.hasProp("guivm") ? str(q.getProp("guivm")) : null,
      relayvm: q.hasProp("relayvm") ? str(q.getProp("relayvm")) : null,
      transport_rpc: q.hasProp("transport_rpc") ? str(q.getProp("transport_rpc")) : null,
      power_state: q.power,
      uuid: q.uuid,
    };
  }
  return { domains };
}

/**
 * Builds a system from a GetSystemInfo snapshot. GetSystemInfo does not say
 * which template a qube uses nor its netvm; entries may carry the optional
 * extension keys `template`, `netvm`, `properties` (name → value) and
 * `features` (name → value). Without `template`, an AppVM gets the first
 * TemplateVM of the snapshot.
 */
export function appFromSystemInfo(raw: RawSystemInfo, options: AppOptions = {}): App {
  const app = new App(options);
  const entries = Object.entries(raw.domains ?? {}).filter(([name]) => !name.startsWith("uuid:"));
  const adopted = new Set<string>();
  const labelFor = (d: DomainInfo): string => {
    const icon = typeof d.icon === "string" ? d.icon : "";
    const fromIcon = icon.includes("-") ? icon.slice(icon.indexOf("-") + 1) : "";
    for (const l of app.labels.values())
      if (l.name === fromIcon) {
        // A real dom0's qubes.xml may give the standard labels other colours: keep the snapshot's.
        if (typeof d.label === "string" && /^0x[0-9a-fA-F]{6}$/.test(d.label) && !adopted.has(l.name)) {
          l.color = d.label.toLowerCase();
          adopted.add(l.name);
        }
        return l.name;
      }
    for (const l of app.labels.values()) if (typeof d.label === "string" && l.color.toLowerCase() === d.label.toLowerCase()) return l.name;
    return "red";
  };
  const firstTemplate = entries.find(([, d]) => d.type === "TemplateVM")?.[0];
  const dom0 = entries.find(([, d]) => d.type === "AdminVM");
  const globalDispvm = dom0?.[1].default_dispvm ?? null;
  const rank = (t: unknown) => (t === "TemplateVM" ? 0 : t === "AppVM" || t === "StandaloneVM" ? 1 : 2);
  const ordered = entries.filter(([, d]) => d.type !== "AdminVM").sort((a, b) => rank(a[1].type) - rank(b[1].type));
  const d0 = app.domains.get("dom0")!;
  if (dom0) {
    d0.values.set("label", labelFor(dom0[1]));
    if (typeof dom0[1].uuid === "string") d0.values.set("uuid", dom0[1].uuid);
    for (const t of dom0[1].tags ?? []) d0.tags.add(t);
  }
  for (const [name, d] of ordered as Array<[string, DomainInfo]>) {
    const klass = typeof d.type === "string" && ["AppVM", "TemplateVM", "StandaloneVM", "DispVM", "RemoteVM"].includes(d.type) ? d.type : "AppVM";
    const template = typeof d["template"] === "string" ? (d["template"] as string) : klass === "AppVM" ? firstTemplate : undefined;
    let dispTemplate: string | undefined;
    if (klass === "DispVM") dispTemplate = typeof d["template"] === "string" ? (d["template"] as string) : (d.default_dispvm ?? undefined) ?? undefined;
    const m = /^disp(\d+)$/.exec(name);
    const q = app.addQube(klass, name, labelFor(d), {
      template: klass === "DispVM" ? dispTemplate : template,
      uuid: typeof d.uuid === "string" ? d.uuid : undefined,
      dispid: klass === "DispVM" ? (m ? Number(m[1]) : app.newDispid()) : undefined,
      silentCreate: true,
    });
    if (d.template_for_dispvms) q.values.set("template_for_dispvms", true);
    if (d.internal !== null && d.internal !== undefined) q.features.set("internal", String(d.internal));
    if (typeof d.icon === "string" && d.icon.startsWith("servicevm-")) q.features.set("servicevm", "1");
    for (const t of d.tags ?? []) q.tags.add(t);
    q.power = d.power_state === "Running" || d.power_state === "Paused" || d.power_state === "Suspended" ? d.power_state : "Halted";
    if (q.power !== "Halted") {
      q.xid = app.allocXid();
      q.startTime = (Date.now() / 1000).toFixed(2);
    }
    const feats = d["features"];
    if (feats && typeof feats === "object") for (const [k, v] of Object.entries(feats as Record<string, unknown>)) q.features.set(k, String(v));
  }
  if (globalDispvm && app.domains.has(globalDispvm)) app.values.set("default_dispvm", globalDispvm);
  if (firstTemplate) app.values.set("default_template", firstTemplate);
  for (const [name, d] of ordered as Array<[string, DomainInfo]>) {
    const q = app.domains.get(name)!;
    if (q.hasProp("default_dispvm") && q.klass !== "DispVM") {
      const want = d.default_dispvm ?? null;
      if (want !== (app.getProp("default_dispvm") ?? null) && (want === null || app.domains.has(want))) q.values.set("default_dispvm", want);
    }
    if (q.hasProp("guivm") && d.guivm !== undefined && (d.guivm ?? null) !== "dom0" && (d.guivm === null || app.domains.has(d.guivm))) {
      q.values.set("guivm", d.guivm ?? null);
      for (const t of [...q.tags]) if (t === "guivm-dom0") q.tags.delete(t);
      if (d.guivm) q.tags.add(`guivm-${d.guivm}`);
    }
    if (q.hasProp("relayvm") && typeof d.relayvm === "string" && app.domains.has(d.relayvm)) q.values.set("relayvm", d.relayvm);
    if (q.hasProp("transport_rpc") && typeof d.transport_rpc === "string") q.values.set("transport_rpc", d.transport_rpc);
    if (typeof d["netvm"] === "string" || d["netvm"] === null) {
      const n = d["netvm"] as string | null;
      if (n === null || app.domains.has(n)) q.values.set("netvm", n);
    }
    const props = d["properties"];
    if (props && typeof props === "object") for (const [k, v] of Object.entries(props as Record<string, PropValue>)) if (q.hasProp(k)) q.values.set(k, v);
  }
  // A qube that looks like a network provider (sys-net, sys-firewall) provides network.
  for (const q of app.domains.values()) if (/^sys-(net|firewall|whonix)$/.test(q.name) && q.hasProp("provides_network") && q.isDefault("provides_network")) q.values.set("provides_network", true);
  if (app.domains.has("sys-firewall")) app.values.set("default_netvm", "sys-firewall");
  if (app.domains.has("sys-firewall") && app.domains.has("sys-net") && app.domains.get("sys-firewall")!.isDefault("netvm")) app.domains.get("sys-firewall")!.values.set("netvm", "sys-net");
  if (app.domains.has("sys-net") && app.domains.get("sys-net")!.isDefault("netvm")) app.domains.get("sys-net")!.values.set("netvm", null);
  return app;
}

/** Starts a simulator from a GetSystemInfo snapshot and a policy directory map (file name → text), for the demo. */
export function createSimulator(system: RawSystemInfo | undefined, policy: Record<string, string> | string | PolicyStore = {}, options: AppOptions = {}): Simulator {
  return new Simulator({ ...options, system, policy });
}

/** {@link createSimulator}, listening on a Unix socket. */
export async function startSimulator(options: SimulatorOptions & { socket: string }): Promise<SimulatorServer> {
  const sim = new Simulator(options);
  return sim.listen(options.socket);
}
