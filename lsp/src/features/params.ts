/** Checks of custom requests' parameters: a refusal is `InvalidParams` with what is wrong. */
import { ErrorCodes, ResponseError } from "vscode-languageserver";
import { callNameWarnings, callSyntaxError, makeRequest, type PolicyRequest, type SystemInfo } from "@qubes-kit/language";
import type { EvaluateParams } from "../protocol.js";

/** Refuses a custom request whose parameters are missing or of the wrong type. */
export function requireStrings(params: unknown, keys: string[], optional: string[] = []): void {
  if (typeof params !== "object" || params === null) throw new ResponseError(ErrorCodes.InvalidParams, "parameters must be an object");
  const p = params as Record<string, unknown>;
  for (const k of keys) if (typeof p[k] !== "string" || p[k] === "") throw new ResponseError(ErrorCodes.InvalidParams, `\`${k}\` must be a non-empty string`);
  for (const k of optional) if (p[k] !== undefined && p[k] !== null && typeof p[k] !== "string") throw new ResponseError(ErrorCodes.InvalidParams, `\`${k}\` must be a string`);
}

/** Refuses a call no real call can have (`InvalidParams`, one line ending in the problem's code). */
export function requireValidCall(request: PolicyRequest, what = ""): void {
  const bad = callSyntaxError(request);
  if (bad) throw new ResponseError(ErrorCodes.InvalidParams, `${what}${bad.message} [${bad.code}]`, { code: bad.code });
}

/**
 * The call an evaluate/explain request asks about. A `+` in the service splits
 * off the argument, as `qrexec-policy-exec` does, when `argument` is not given;
 * a call no real call can have is refused (see {@link requireValidCall}).
 */
export function requestOf(params: EvaluateParams): PolicyRequest {
  requireStrings(params, ["service", "source"], ["argument", "target", "requestedSource", "uri"]);
  const source = String(params.source ?? "");
  const target = params.target ?? "";
  const service = String(params.service ?? "");
  const argument = params.argument === "" ? "+" : params.argument;
  const r: PolicyRequest = argument === undefined || argument === null ? makeRequest(service, source, target) : { service, argument, source, target };
  if (params.requestedSource) r.requestedSource = params.requestedSource;
  requireValidCall(r);
  return r;
}

/** The `[unknown-qube]` warnings of a call (as `qkit policy eval` gives them), joined with `note` into one note. */
export function noteWithWarnings(note: string | undefined, requests: readonly PolicyRequest[], system: SystemInfo | null): string | undefined {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const r of requests) {
    for (const w of callNameWarnings(r, system)) {
      if (seen.has(w.message)) continue;
      seen.add(w.message);
      lines.push(`${w.message} [${w.code}]`);
    }
  }
  const all = [...(note ? [note] : []), ...lines];
  return all.length ? all.join("; ") : undefined;
}

/** A list parameter of qube names: absent, or an array of non-empty strings (else `InvalidParams`). */
export function nameList(params: unknown, key: string): string[] | undefined {
  const v = (params as Record<string, unknown>)[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string" && x !== "")) {
    throw new ResponseError(ErrorCodes.InvalidParams, `\`${key}\` must be an array of qube names (non-empty strings)`);
  }
  return v as string[];
}
