/**
 * The daemon's exec step: what `qrexec-policy-daemon` answers for an allow
 * (`AllowResolution.execute`), and whether a target may be used without
 * starting it.
 */
import { isDom0Token } from "../syntax/tokens.js";
import { eqStr, get, item, PyCrash, pyStr } from "./py.js";
import type { Decision, DomainInfo, ExecResult } from "./types.js";
import { domain, truthy, type BuiltRequest } from "./match.js";

/** `allow_no_autostart`: may this target be used without starting it? */
export function allowNoAutostart(target: string, info: ReadonlyMap<string, DomainInfo>): boolean {
  if (isDom0Token(target)) return true;
  if (target.startsWith("@dispvm")) return false;
  const d = info.get(target);
  if (d === undefined || typeof d !== "object" || d === null || !("power_state" in d)) throw new PyCrash("AssertionError", "");
  return d.power_state === "Running";
}


/** The daemon's answer for an allow (`AllowResolution.execute`). */
export function execAllow(req: BuiltRequest, target: string, user: string | null, autostart: boolean, info: ReadonlyMap<string, DomainInfo>): ExecResult {
  try {
    if (req.source === target) return { error: "AccessDenied", message: "loopback qrexec connection not supported" };
    const u = user ? user : "DEFAULT";
    const auto = autostart ? "True" : "False";
    const requested = req.target.text;
    if (isDom0Token(target)) return { user: u, result: "allow", target: "dom0", autostart: auto, requested_target: requested };
    if (target.startsWith("@dispvm:")) {
      const ti = domain(info, target.slice(8));
      const out: Record<string, string> = { user: u, result: "allow", target, target_uuid: `@dispvm:uuid:${pyStr(item(ti, "uuid"))}`, autostart: auto, requested_target: requested };
      if (req.requestedSource) out["policy_source"] = req.source;
      return out;
    }
    const ti = domain(info, target);
    const remote = eqStr(get(ti, "type"), "RemoteVM");
    const out: Record<string, string> = { user: remote && user !== null ? "DEFAULT" : u, result: "allow" };
    if (remote) {
      if (!truthy(get(ti, "relayvm"))) return { error: "AccessDenied", message: `${target}: relayvm is not set` };
      if (!truthy(get(ti, "transport_rpc"))) return { error: "AccessDenied", message: `${target}: transport RPC is not set` };
      const relay = pyStr(item(ti, "relayvm"));
      const ri = domain(info, relay);
      out["target"] = relay;
      out["target_uuid"] = `uuid:${pyStr(item(ri, "uuid"))}`;
      out["autostart"] = auto;
      out["requested_target"] = requested;
      out["service"] = `${pyStr(item(ti, "transport_rpc"))}+${requested}+${req.service}${req.argument}`;
    } else {
      out["target"] = target;
      out["target_uuid"] = `uuid:${pyStr(item(ti, "uuid"))}`;
      out["autostart"] = auto;
      out["requested_target"] = requested;
    }
    if (req.requestedSource) out["policy_source"] = req.source;
    return out;
  } catch (err) {
    if (err instanceof PyCrash) return { error: "EngineError", message: `${err.pyClass}: ${err.pyMessage}`, crash: err.pyClass } as ExecResult;
    throw err;
  }
}

/**
 * Why the daemon does not run what the policy allows, or undefined: the
 * exec step's refusal of an allow decision (a call from a qube to itself,
 * "loopback qrexec connection not supported"; a relay without its RPC) or
 * the engine's crash there (`EngineError`). The caller is denied either way.
 */
export function execRefusal(d: Decision): { error: string; message: string } | undefined {
  if (!d.ok || d.action !== "allow") return undefined;
  const x = d.exec as unknown;
  return typeof x === "object" && x !== null && "error" in x ? (x as { error: string; message: string }) : undefined;
}
