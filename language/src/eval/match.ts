/**
 * Requests and matching: the request as the engine builds it (target
 * verification, Qubes Air relays) and whether a rule's source and target
 * tokens match it, crashes included where the engine's would.
 */
import { isDom0Token, parseQubeToken } from "../syntax/tokens.js";
import type { QubeToken } from "../syntax/tree.js";
import { contains, eqStr, get, item, PyCrash } from "./py.js";
import type { PreparedSystem } from "./system.js";
import type { DomainInfo, PolicyRequest } from "./types.js";

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/** The verified intended target: its text and token kind (the engine's token class). */
export interface VerifiedTarget {
  text: string;
  kind: "name" | "adminvm" | "default" | "dispvm" | "dispvm-template";
  /** For `@dispvm:X`: X. */
  value: string;
}

/** A request as the engine builds it. */
export interface BuiltRequest {
  service: string;
  argument: string;
  source: string;
  target: VerifiedTarget;
  requestedSource: string | null;
  relayvm: string | null;
  warnings: string[];
}

export class Refusal {
  constructor(
    readonly error: "AccessDenied" | "PolicySyntaxError" | "RequestError",
    readonly message: string,
    readonly code: string,
    readonly notify = true,
    readonly syntax?: { file: string; line: number; detail: string },
  ) {}
}

export function domain(info: ReadonlyMap<string, DomainInfo>, name: string): DomainInfo {
  const d = info.get(name);
  if (d === undefined) throw new PyCrash("KeyError", `'${name}'`);
  return d;
}

/** Builds the request like the engine's `Request()`; throws a Refusal or PyCrash. */
export function buildRequest(req: PolicyRequest, sys: PreparedSystem): BuiltRequest {
  const info = sys.domains;
  let target = req.target ?? "";
  if (target === "") target = "@default";
  const argument = req.argument ?? "+";
  if (!argument || argument[0] !== "+") throw new PyCrash("AssertionError", "");
  const warnings: string[] = [];
  const parsed = parseQubeToken(target, "intendedtarget");
  if (!parsed.token) {
    const detail = parsed.error!;
    throw new Refusal("PolicySyntaxError", `<unknown>:0: ${detail}`, parsed.code!, true, { file: "<unknown>", line: 0, detail });
  }
  const tok = parsed.token;
  let verified: VerifiedTarget;
  switch (tok.kind) {
    case "name":
      if (!info.has(tok.text)) {
        warnings.push(`qrexec: target '${tok.text}' does not exist, using @default instead`);
        verified = { text: "@default", kind: "default", value: "" };
      } else verified = { text: tok.text, kind: "name", value: tok.text };
      break;
    case "dispvm-template": {
      const d = info.get(tok.value);
      if (d === undefined || !truthy(item(d, "template_for_dispvms"))) {
        throw new Refusal("AccessDenied", `not a template for dispvm: ${tok.value}`, "not-a-dispvm-template");
      }
      verified = { text: tok.text, kind: "dispvm-template", value: tok.value };
      break;
    }
    default:
      verified = { text: tok.text, kind: tok.kind as VerifiedTarget["kind"], value: tok.value };
  }
  let source = req.source;
  let relayvm: string | null = null;
  const rs = req.requestedSource;
  if (rs) {
    const rinfo = info.has(rs) ? info.get(rs) : {};
    if (!truthy(rinfo)) throw new Refusal("RequestError", `unknown requested source qube '${rs}'`, "unknown-requested-source");
    if (!eqStr(get(rinfo, "type"), "RemoteVM")) throw new Refusal("RequestError", `${rs}: requested source is only authorized for RemoteVM`, "requested-source-not-remote");
    if (get(rinfo, "relayvm", null) !== source) throw new Refusal("RequestError", `${source} is not a relay for ${rs}`, "not-a-relay");
    relayvm = source;
    source = rs;
  }
  return { service: req.service, argument, source, target: verified, requestedSource: rs || null, relayvm, warnings };
}

export function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v as object).length > 0;
  return true;
}

// ---------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------

/** `match_strings`: equality, or UUID equivalence between `uuid:U` and a name. */
function matchStrings(info: ReadonlyMap<string, DomainInfo>, self: string, other: string | null): boolean {
  if (self.startsWith("uuid:")) {
    if (other === null) throw new PyCrash("AttributeError", "'NoneType' object has no attribute 'startswith'");
    if (other.startsWith("uuid:")) return self === other;
    const d = info.get(other);
    if (d === undefined || typeof d !== "object" || d === null || !("uuid" in d)) return false;
    return self.slice(5) === d.uuid;
  }
  if (other === null) throw new PyCrash("AttributeError", "'NoneType' object has no attribute 'startswith'");
  if (other.startsWith("uuid:")) {
    const d = info.get(self);
    if (d === undefined || typeof d !== "object" || d === null || !("uuid" in d)) return false;
    return other.slice(5) === d.uuid;
  }
  return self === other;
}

/** `DispVM.get_dispvm_template(source)`: `@dispvm:<default_dispvm>` or null. */
export function dispvmTemplateOf(info: ReadonlyMap<string, DomainInfo>, source: string): string | null {
  const d = info.get(source);
  if (d === undefined) return null;
  const t = get(d, "default_dispvm", null);
  if (t === null || t === undefined) return null;
  if (typeof t !== "string") throw new PyCrash("TypeError", `can only concatenate str (not "${typeof t === "number" ? "int" : typeof t}") to str`);
  return "@dispvm:" + t;
}

/**
 * {@link dispvmTemplateOf} where a crash means "none": what `@dispvm` stands
 * for when a caller's default disposable template is shown or compared (an
 * explanation's offered targets, an expectation's synonym), never decided.
 */
export function callerDispvmOf(info: ReadonlyMap<string, DomainInfo>, source: string): string | null {
  try {
    return dispvmTemplateOf(info, source);
  } catch (e) {
    if (e instanceof PyCrash) return null;
    throw e;
  }
}

/** Does a rule's source token match the request source (a plain string)? */
export function matchSource(tok: QubeToken, src: string, info: ReadonlyMap<string, DomainInfo>): boolean {
  switch (tok.kind) {
    case "wildcard":
      return true;
    case "adminvm":
      return isDom0Token(src);
    case "anyvm":
      return !isDom0Token(src);
    case "type": {
      const d = info.get(src);
      return d !== undefined && eqStr(item(d, "type"), tok.value);
    }
    case "tag": {
      const d = info.get(src);
      return d !== undefined && contains(item(d, "tags"), tok.value);
    }
    case "name":
      return isDom0Token(tok.text) ? isDom0Token(src) : matchStrings(info, tok.text, src);
    default:
      // `@dispvm:X` and `@dispvm:@tag:T` never match a source: it is a plain name, never a disposable token.
      return false;
  }
}

/** Does a rule's target token match the verified request target? */
export function matchTarget(tok: QubeToken, t: VerifiedTarget, source: string, info: ReadonlyMap<string, DomainInfo>): boolean {
  switch (tok.kind) {
    case "wildcard":
      return true;
    case "adminvm":
      return isDom0Token(t.text);
    case "anyvm":
      return !isDom0Token(t.text);
    case "default":
      return t.text === "@default";
    case "dispvm":
      return t.text === "@dispvm";
    case "type": {
      const d = info.get(t.text);
      return d !== undefined && eqStr(item(d, "type"), tok.value);
    }
    case "tag": {
      const d = info.get(t.text);
      return d !== undefined && contains(item(d, "tags"), tok.value);
    }
    case "name":
      return isDom0Token(tok.text) ? isDom0Token(t.text) : matchStrings(info, tok.text, t.text);
    case "dispvm-template":
      if (t.kind === "dispvm") return matchStrings(info, tok.text, dispvmTemplateOf(info, source));
      if (t.kind !== "dispvm-template") return false;
      return matchStrings(info, tok.value, t.value);
    case "dispvm-tag": {
      let value: string;
      if (t.kind === "dispvm") {
        const tpl = dispvmTemplateOf(info, source);
        if (tpl === null) return false;
        value = tpl.slice(8);
      } else if (t.kind === "dispvm-template") value = t.value;
      else return false;
      const d = domain(info, value);
      if (!truthy(item(d, "template_for_dispvms"))) return false;
      return contains(item(d, "tags"), tok.value);
    }
  }
}
