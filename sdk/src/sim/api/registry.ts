/**
 * The method table of the simulator: each `admin.*` entry mirrors the
 * decorator of the real method (destination, argument and payload rules);
 * the family modules of this folder register their handlers here.
 */
import type { App, Qube } from "../model.js";
import { SimAbort, isAscii, protocolError } from "../wire.js";

/** A streaming reply (`admin.Events`, `admin.vm.Stats`): `start` begins sending frames and returns a stop function. */
export interface StreamReply {
  kind: "stream";
  start(send: (subject: string, event: string, kwargs: ReadonlyArray<readonly [string, string]>) => void): () => void;
}

/** What a handler returns: reply text (`null`/`undefined` = empty OK) or a stream. */
export type HandlerResult = string | null | undefined | StreamReply;

/** Everything a handler sees. */
export interface CallContext {
  app: App;
  method: string;
  arg: string;
  src: Qube;
  dest: Qube;
  payload: Buffer;
  /** Policy check for calls from a management qube (`admin.vm.List`/`admin.Events` filtering). */
  policyAllows(service: string, arg: string, source: string, target: string): boolean;
}

export interface MethodDef {
  destAdminvm: boolean | null;
  wantsArg: boolean | null;
  wantsPayload: boolean | null;
  run(ctx: CallContext): HandlerResult;
}

const M = new Map<string, MethodDef>();
export function method(name: string, destAdminvm: boolean | null, wantsArg: boolean | null, wantsPayload: boolean | null, run: MethodDef["run"]): void {
  M.set(name, { destAdminvm, wantsArg, wantsPayload, run });
}

/** Every `admin.*` method name the simulator serves. */
export function adminMethodNames(): string[] {
  return [...M.keys()].sort();
}

/** Looks a method up. */
export function findAdminMethod(name: string): MethodDef | undefined {
  return M.get(name);
}

/** The pre-handler checks of `AbstractQubesAPI.execute`. */
export function checkCall(def: MethodDef, ctx: { arg: string; payload: Buffer; dest: Qube }): void {
  if (def.wantsPayload === true && ctx.payload.length === 0) throw protocolError("expected payload");
  if (def.wantsPayload === false && ctx.payload.length > 0) throw protocolError("unexpected payload");
  if (def.wantsArg === true && !ctx.arg) throw protocolError("expected an argument");
  if (def.wantsArg === false && ctx.arg) throw protocolError("unexpected argument");
  if (def.destAdminvm === true && !ctx.dest.isAdminVM) throw protocolError("expected destination to be AdminVM");
  if (def.destAdminvm === false && ctx.dest.isAdminVM) throw protocolError("expected destination to not be AdminVM");
}

export const lines = (xs: Iterable<string>): string => [...xs].map((x) => `${x}\n`).join("");
export const ascii = (b: Buffer): string => {
  if (!isAscii(b)) throw new SimAbort("UnicodeDecodeError");
  return b.toString("latin1");
};

