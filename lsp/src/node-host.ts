/**
 * The Node.js host: the disk through `node:fs` (cached by modification
 * time) and the system model from a snapshot file, qubesd's internal
 * socket, or the SDK.
 */
import { isUtf8 } from "node:buffer";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { findUtf8Problem, readSystemModelText, type RawSystemInfo, type Utf8Problem } from "@qubes-kit/language";
import type { HostFileSystem, ServerHost, SystemLoadResult } from "./host.js";
import type { QubesPolicySettings } from "./protocol.js";
import { planTemplate, templateDevices, whatifTemplate } from "./template/machine.js";

/** qubesd's internal socket, which answers `internal.GetSystemInfo`. */
export const DEFAULT_INTERNAL_SOCKET = "/var/run/qubesd.internal.sock";

/** A disk file system with a text cache validated by modification time and size. */
export function createNodeFileSystem(): HostFileSystem {
  const cache = new Map<string, { mtimeMs: number; size: number; text: string; notUtf8?: Utf8Problem | undefined }>();
  return {
    stat(p) {
      try {
        const s = fs.statSync(p);
        return s.isFile() ? "file" : s.isDirectory() ? "dir" : "other";
      } catch {
        return undefined;
      }
    },
    readDir(p) {
      try {
        return fs.readdirSync(p);
      } catch {
        return undefined;
      }
    },
    readFile(p) {
      try {
        const s = fs.statSync(p);
        if (!s.isFile()) return undefined;
        const hit = cache.get(p);
        if (hit && hit.mtimeMs === s.mtimeMs && hit.size === s.size) return hit.text;
        const bytes = fs.readFileSync(p);
        const text = bytes.toString("utf8");
        // The engine reads UTF-8 strictly: where the bytes are not UTF-8 is kept for `notUtf8`.
        cache.set(p, { mtimeMs: s.mtimeMs, size: s.size, text, ...(isUtf8(bytes) ? {} : { notUtf8: findUtf8Problem(bytes) }) });
        return text;
      } catch {
        return undefined;
      }
    },
    notUtf8(p) {
      return cache.get(p)?.notUtf8;
    },
    invalidate(paths) {
      if (!paths) cache.clear();
      else for (const p of paths) cache.delete(p);
    },
  };
}

/** Calls `internal.GetSystemInfo` on qubesd's internal socket (dom0 only). */
export function fetchSystemInfoFromSocket(socketPath: string, timeoutMs = 10_000): Promise<RawSystemInfo> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.createConnection(socketPath);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`qubesd did not answer on ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("connect", () => {
      sock.end(Buffer.from("internal.GetSystemInfo+ dom0 keyword adminvm\0", "ascii"));
    });
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on("close", () => {
      clearTimeout(timer);
      const reply = Buffer.concat(chunks);
      if (reply.length < 2) return reject(new Error("empty reply from qubesd"));
      if (reply[0] !== 0x30 || reply[1] !== 0) {
        const parts = reply.subarray(2).toString("utf8").split("\0");
        return reject(new Error(`qubesd refused internal.GetSystemInfo: ${parts[0] ?? "error"} ${parts[2] ?? ""}`.trim()));
      }
      try {
        resolve(JSON.parse(reply.subarray(2).toString("utf8")) as RawSystemInfo);
      } catch {
        reject(new Error("qubesd answered internal.GetSystemInfo with invalid json"));
      }
    });
  });
}

/**
 * A system snapshot through the SDK's Admin API client: `qrexec` from a management qube, or a
 * qubesd admin socket; with the services each qube advertises (`supported_rpc`), for the
 * `service-not-provided` analysis.
 */
async function fetchSystemInfoFromSdk(via: "qrexec" | { socket: string }): Promise<RawSystemInfo> {
  const sdk = await import("@qubes-kit/sdk");
  const qubes = via === "qrexec" ? sdk.Qubes.remote() : sdk.Qubes.local(via.socket);
  return sdk.systemInfo(qubes, { services: true });
}

/** How long reading the advertised services may take in all, as the internal call's timeout. */
export const SERVICES_TIMEOUT_MS = 10_000;

/** The failures already logged (once each, on stderr: stdout is the protocol). */
const logged = new Set<string>();

/**
 * The sockets that may answer the Admin API calls for the services: the configured one, then,
 * for a qubesd internal socket (`qubesd.internal.sock`), the admin socket beside it.
 */
export function servicesSockets(socket: string): string[] {
  const admin = path.join(path.dirname(socket), path.basename(socket).replace(/\.internal(?=\.sock$)/, ""));
  return admin === socket ? [socket] : [socket, admin];
}

/**
 * Adds `supported_rpc` to a GetSystemInfo answer from the qubes' features, read over `socket`
 * (see {@link servicesSockets}) within {@link SERVICES_TIMEOUT_MS}. On failure the model stays
 * without the key (the `service-not-provided` analysis is then quiet) and the failure is logged once.
 */
async function addServicesOver(raw: RawSystemInfo, socket: string, timeoutMs = SERVICES_TIMEOUT_MS): Promise<void> {
  const errors: string[] = [];
  try {
    const sdk = await import("@qubes-kit/sdk");
    const signal = AbortSignal.timeout(timeoutMs);
    for (const candidate of servicesSockets(socket)) {
      try {
        const qubes = new sdk.Qubes({ transport: new sdk.UnixSocketTransport({ path: candidate }), timeout: timeoutMs });
        sdk.addAdvertisedServices(raw, await sdk.advertisedServices(qubes, { signal }));
        return;
      } catch (e) {
        errors.push(`${candidate}: ${e instanceof Error ? e.message : String(e)}`);
        if (signal.aborted) break;
      }
    }
  } catch (e) {
    errors.push(e instanceof Error ? e.message : String(e));
  }
  const line = `qubes-policy: cannot read the services the qubes advertise (service-not-provided stays quiet): ${errors.join("; ")}`;
  if (!logged.has(line)) {
    logged.add(line);
    console.error(line);
  }
}

/**
 * Reads a system model file with the CLI's checks and messages (`readSystemModelText`): where bad
 * JSON breaks (`FILE:LINE:COLUMN`, never the content), `[empty-system]`, `[bad-system-model]`.
 */
export function systemModelFromFile(host: Pick<HostFileSystem, "stat" | "readFile">, p: string): SystemLoadResult {
  const kind = host.stat(p);
  if (kind === "dir") return { raw: null, error: `system model file \`${p}\` is a directory: give the file \`qkit system snapshot\` writes [system-model-is-directory]` };
  const text = kind === undefined ? undefined : host.readFile(p);
  if (text === undefined) return { raw: null, error: kind === undefined ? `system model file not found: ${p}` : `cannot read the system model \`${p}\`: check its permissions [system-model-unreadable]` };
  const r = readSystemModelText(text, p);
  return "raw" in r ? { raw: r.raw } : { raw: null, error: `${r.error.message} [${r.error.code}]` };
}

/** Loads the system model the settings ask for. Never rejects. */
export async function loadSystemModel(settings: QubesPolicySettings, folder: string | undefined, host: HostFileSystem): Promise<SystemLoadResult> {
  const source = settings.system?.source ?? "none";
  try {
    switch (source) {
      case "none":
        return { raw: null };
      case "file": {
        const file = settings.system?.file;
        if (!file) return { raw: null, error: "qubesPolicy.system.file is not set" };
        const p = path.isAbsolute(file) ? file : path.resolve(folder ?? process.cwd(), file);
        return systemModelFromFile(host, p);
      }
      case "socket": {
        const socket = settings.system?.socket ?? DEFAULT_INTERNAL_SOCKET;
        let raw: RawSystemInfo;
        try {
          raw = await fetchSystemInfoFromSocket(socket);
        } catch (internalError) {
          // Not qubesd's internal socket (for example the admin socket): build the snapshot through the Admin API.
          try {
            return { raw: await fetchSystemInfoFromSdk({ socket }) };
          } catch {
            throw internalError;
          }
        }
        // internal.GetSystemInfo does not say which services each qube advertises: ask over the
        // configured socket (or, for qubesd's internal socket, the admin socket beside it).
        await addServicesOver(raw, socket);
        return { raw };
      }
      case "qrexec":
        return { raw: await fetchSystemInfoFromSdk("qrexec") };
      default:
        return { raw: null, error: `unknown qubesPolicy.system.source: ${String(source)}` };
    }
  } catch (e) {
    return { raw: null, error: `cannot load the system model (${source}): ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** The host of the Node.js server. */
export function createNodeHost(): ServerHost {
  const fsHost = createNodeFileSystem();
  return {
    fs: fsHost,
    loadSystem: (settings, folder) => loadSystemModel(settings, folder, fsHost),
    template: { plan: planTemplate, whatif: whatifTemplate, devices: templateDevices },
  };
}
