/**
 * The shape check of a stack model that did not come from the checker (a
 * JSON file, a hand-built object): every field the planner reads has the
 * type the model declares, optional fields get their defaults, and anything
 * else is a {@link PlanError} naming the field. The planner runs it first, so
 * bad input is an error, never a crash.
 */
import { DECLARABLE_CLASSES, type StackModel } from "@qubes-kit/language";
import type { PlanError } from "./types.js";

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isDefaultMarker = (x: unknown) => isObj(x) && x["default"] === true && Object.keys(x).length === 1;
const isPropertyValue = (x: unknown) => x === null || typeof x === "string" || (typeof x === "number" && Number.isFinite(x)) || typeof x === "boolean" || isDefaultMarker(x);
const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === "string");
const isStringMap = (x: unknown, nullable = false): x is Record<string, string> => isObj(x) && Object.values(x).every((v) => typeof v === "string" || (nullable && v === null));

/** Checks and completes a model; `model` is set exactly when there is no error. */
export function checkStackModel(data: unknown): { model?: StackModel; errors: PlanError[] } {
  const errors: PlanError[] = [];
  const bad = (where: string, what: string) => errors.push({ code: "invalid-model", message: `${where}: ${what}` });
  if (!isObj(data)) {
    bad("stack", "a stack model must be an object");
    return { errors };
  }
  if (data["format"] !== 1) bad("format", "must be 1");
  if (typeof data["stack"] !== "string" || !/^[a-z0-9][a-z0-9_-]*$/.test(data["stack"])) bad("stack", "the stack name must be lower-case letters, digits, `_` and `-` (it is part of policy file names)");
  const global = data["global"] ?? {};
  if (!isObj(global) || !Object.values(global).every(isPropertyValue)) bad("global", "must map property names to values");
  const labels = data["labels"] ?? {};
  if (!isStringMap(labels)) bad("labels", "must map label names to colours (0xRRGGBB)");
  const policy = data["policy"] ?? [];
  if (!Array.isArray(policy)) bad("policy", "must be a list of files");
  else
    policy.forEach((f, i) => {
      if (!isObj(f) || typeof f["file"] !== "string" || !/^[A-Za-z0-9_-]+$/.test(f["file"]) || typeof f["rules"] !== "string") bad(`policy[${i}]`, "needs file (letters, digits, `_`, `-`) and rules (text)");
      else if (!Number.isInteger(f["priority"]) || (f["priority"] as number) < 0 || (f["priority"] as number) > 99) bad(`policy[${i}]`, "priority must be an integer 0-99");
    });
  const qubes = data["qubes"];
  const out: unknown[] = [];
  if (!Array.isArray(qubes)) bad("qubes", "must be a list of qubes");
  else
    qubes.forEach((q, i) => {
      const at = isObj(q) && typeof q["name"] === "string" ? `qube '${q["name"]}'` : `qubes[${i}]`;
      if (!isObj(q)) return bad(at, "must be an object");
      if (typeof q["name"] !== "string" || q["name"] === "") bad(at, "needs a name");
      // An absent qube needs no class (it is only removed).
      if (!(DECLARABLE_CLASSES as readonly unknown[]).includes(q["class"]) && !(q["absent"] === true && q["class"] === undefined)) bad(at, `class must be one of ${DECLARABLE_CLASSES.join(", ")}`);
      const c: Record<string, unknown> = { class: "AppVM", features: {}, state: "any", absent: false, protect: false, ignore_changes: [], properties: {}, ...q };
      if (!isObj(c.properties) || !Object.values(c.properties).every(isPropertyValue)) bad(at, "properties must map names to values");
      if (!isStringMap(c.features, true)) bad(at, "features must map names to strings (or null to remove)");
      if (c["tags"] !== undefined && !isStrings(c["tags"])) bad(at, "tags must be a list of strings");
      if (c["firewall"] !== undefined && !isStrings(c["firewall"])) bad(at, "firewall must be a list of rule strings");
      if (c["notes"] !== undefined && typeof c["notes"] !== "string") bad(at, "notes must be a string");
      if (c["pools"] !== undefined && !isStringMap(c["pools"])) bad(at, "pools must map volumes to pool names");
      if (!["running", "halted", "any"].includes(c.state as string)) bad(at, "state must be running, halted or any");
      if (typeof c.absent !== "boolean" || typeof c.protect !== "boolean") bad(at, "absent and protect must be true or false");
      if (!isStrings(c.ignore_changes)) bad(at, "ignore_changes must be a list of keys");
      if (c["moved_from"] !== undefined && (typeof c["moved_from"] !== "string" || c["moved_from"] === c["name"])) bad(at, "moved_from must be the name of another qube");
      const src = c["source"];
      if (src !== undefined && !(isObj(src) && (typeof src["clone"] === "string" || typeof src["install"] === "string" || src["empty"] === true))) bad(at, "source must be {clone: NAME}, {install: NAME} or {empty: true}");
      const vols = c["volumes"];
      if (vols !== undefined) {
        if (!isObj(vols)) bad(at, "volumes must map volume names to settings");
        else
          for (const [v, d] of Object.entries(vols)) {
            if (!isObj(d)) bad(`${at} volume ${v}`, "must be an object");
            else if ((d["size"] !== undefined && !(Number.isSafeInteger(d["size"]) && (d["size"] as number) > 0)) || (d["revisions_to_keep"] !== undefined && !Number.isInteger(d["revisions_to_keep"])) || (d["rw"] !== undefined && typeof d["rw"] !== "boolean") || (d["ephemeral"] !== undefined && typeof d["ephemeral"] !== "boolean"))
              bad(`${at} volume ${v}`, "size is a positive number of bytes, revisions_to_keep an integer, rw and ephemeral true or false");
          }
      }
      const devs = c["devices"];
      if (devs !== undefined) {
        if (!isObj(devs)) bad(at, "devices must map device classes to lists");
        else
          for (const [cls, list] of Object.entries(devs)) {
            if (!Array.isArray(list)) {
              bad(`${at} devices ${cls}`, "must be a list");
              continue;
            }
            list.forEach((d, j) => {
              const ok =
                isObj(d) &&
                typeof d["devclass"] === "string" &&
                typeof d["backend"] === "string" &&
                ["required", "auto-attach", "ask-to-attach"].includes(d["mode"] as string) &&
                isStringMap(d["options"] ?? {}) &&
                (d["port"] === undefined || typeof d["port"] === "string") &&
                (d["deviceId"] === undefined || typeof d["deviceId"] === "string") &&
                (d["match"] === undefined || isStringMap(d["match"])) &&
                (d["port"] !== undefined || d["match"] !== undefined);
              if (!ok) bad(`${at} devices ${cls}[${j}]`, "needs devclass, backend, a port or a match selector, and mode required, auto-attach or ask-to-attach");
            });
          }
      }
      out.push({ ...c, ...(isObj(devs) ? { devices: Object.fromEntries(Object.entries(devs).map(([k, l]) => [k, Array.isArray(l) ? l.map((d) => (isObj(d) ? { options: {}, ...d } : d)) : l])) } : {}) });
    });
  if (errors.length) return { errors };
  const options = isObj(data["options"]) ? data["options"] : {};
  const model = { ...(data as unknown as StackModel), global, labels, policy, qubes: out, expect: Array.isArray(data["expect"]) ? data["expect"] : [], options: { prune: false, restart: "never", policy_priority: 40, adopt: false, ...options } } as StackModel;
  return { model, errors };
}
