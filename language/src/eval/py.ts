/**
 * Emulation of the Python failures the real engine runs into on some data.
 *
 * The engine indexes dictionaries without defaults in many places, so a
 * system model with missing keys, or a policy naming a qube that does not
 * exist, makes it crash (KeyError, AttributeError …) instead of deciding. The
 * daemon then closes the connection: the call is denied. Our evaluator
 * reports these as `EngineError`, so the code paths below raise a
 * {@link PyCrash} exactly where the engine would raise.
 */
import { pyRepr } from "../syntax/python.js";

/** Where V8 keeps how many frames a new error records (other engines ignore it). */
const ErrorLimit = Error as unknown as { stackTraceLimit?: number };

/**
 * A Python exception the real engine would raise at this point. It is data
 * (the decision reports it), caught by the evaluator, never a failure of
 * ours: it records no JavaScript stack (recording one cost more than
 * deciding the request: a stream meets thousands).
 */
export class PyCrash extends Error {
  readonly pyClass: string;
  readonly pyMessage: string;
  constructor(pyClass: string, pyMessage: string) {
    const limit = ErrorLimit.stackTraceLimit;
    ErrorLimit.stackTraceLimit = 0;
    // (A string message: the constructor cannot throw, so the limit is always put back.)
    super(`${pyClass}: ${pyMessage}`);
    ErrorLimit.stackTraceLimit = limit;
    this.pyClass = pyClass;
    this.pyMessage = pyMessage;
  }
}

function typeName(v: unknown): string {
  if (v === null || v === undefined) return "NoneType";
  if (typeof v === "string") return "str";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (Array.isArray(v)) return "list";
  return "dict";
}

function isDict(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `obj[key]` on a JSON value, raising like Python. */
export function item(obj: unknown, key: string): unknown {
  if (isDict(obj)) {
    if (Object.prototype.hasOwnProperty.call(obj, key)) return obj[key];
    throw new PyCrash("KeyError", pyRepr(key));
  }
  if (typeof obj === "string" || Array.isArray(obj)) throw new PyCrash("TypeError", `${typeName(obj)} indices must be integers or slices, not str`);
  throw new PyCrash("TypeError", `'${typeName(obj)}' object is not subscriptable`);
}

/** `obj.get(key, dflt)` on a JSON value. */
export function get(obj: unknown, key: string, dflt: unknown = null): unknown {
  if (isDict(obj)) return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : dflt;
  throw new PyCrash("AttributeError", `'${typeName(obj)}' object has no attribute 'get'`);
}

/** `needle in container` on a JSON value. */
export function contains(container: unknown, needle: string): boolean {
  if (Array.isArray(container)) {
    // A loop, not `some` with a closure (an allocation a call, and this runs for every qube a tag is looked for on).
    for (let i = 0; i < container.length; i++) if (container[i] === needle) return true;
    return false;
  }
  if (typeof container === "string") return container.includes(needle);
  if (isDict(container)) return Object.prototype.hasOwnProperty.call(container, needle);
  throw new PyCrash("TypeError", `argument of type '${typeName(container)}' is not iterable`);
}

/** Python's `str()` of a JSON value. */
export function pyStr(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") return v;
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(v);
  return JSON.stringify(v);
}

/** `a == b` for a JSON value and a string. */
export function eqStr(a: unknown, b: string): boolean {
  return typeof a === "string" && a === b;
}
