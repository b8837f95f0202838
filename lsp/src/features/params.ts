/** Checks of custom requests' parameters: a refusal is `InvalidParams` with what is wrong. */
import { ErrorCodes, ResponseError } from "vscode-languageserver";
import { makeRequest, type PolicyRequest } from "@qubes-kit/language";
import type { EvaluateParams } from "../protocol.js";

/** Refuses a custom request whose parameters are missing or of the wrong type. */
export function requireStrings(params: unknown, keys: string[], optional: string[] = []): void {
  if (typeof params !== "object" || params === null) throw new ResponseError(ErrorCodes.InvalidParams, "parameters must be an object");
  const p = params as Record<string, unknown>;
  for (const k of keys) if (typeof p[k] !== "string" || p[k] === "") throw new ResponseError(ErrorCodes.InvalidParams, `\`${k}\` must be a non-empty string`);
  for (const k of optional) if (p[k] !== undefined && p[k] !== null && typeof p[k] !== "string") throw new ResponseError(ErrorCodes.InvalidParams, `\`${k}\` must be a string`);
}

/** The call an evaluate/explain request asks about. */
export function requestOf(params: EvaluateParams): PolicyRequest {
  requireStrings(params, ["service", "source"], ["argument", "target", "requestedSource", "uri"]);
  const source = String(params.source ?? "");
  const target = params.target ?? "";
  const service = String(params.service ?? "");
  // A `+` in the service splits off the argument, as `qrexec-policy-exec` does.
  const r: PolicyRequest = params.argument === undefined ? makeRequest(service, source, target) : { service, argument: params.argument, source, target };
  if (params.requestedSource) r.requestedSource = params.requestedSource;
  return r;
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
