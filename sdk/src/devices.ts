/**
 * Devices in the Qubes 4.2+/4.3 protocol: ports, device ids, exposed devices
 * (`DeviceInfo`), assignments, and their serialisations (`key='value'` pairs;
 * device arguments with `:` written as `+`).
 */
import { QubesParseError, QubesValidationError } from "./errors.js";
import { validateArg } from "./validate.js";
import { setKey } from "./values.js";

/** How an assigned device is connected. `manual` is for attach only. */
export type AssignmentMode = "manual" | "ask-to-attach" | "auto-attach" | "required";

/** The assignment modes qubesd accepts. */
export const ASSIGNMENT_MODES: readonly AssignmentMode[] = ["manual", "ask-to-attach", "auto-attach", "required"];

/** A device as a backend exposes it (`admin.vm.device.<class>.Available`). */
export interface DeviceInfo {
  backendDomain: string;
  portId: string;
  devclass: string;
  /** `vendor:product:serial:interfaces` style id, `*` = any. */
  deviceId: string;
  vendor?: string;
  product?: string;
  manufacturer?: string;
  name?: string;
  serial?: string;
  /** The frontend qube the device is attached to, if any. */
  attachment?: string;
  /** Interface codes, 7 characters each (e.g. `p0c0330`). */
  interfaces: string[];
  parentPortId?: string;
  parentDevclass?: string;
  /** Free-form data (keys sent with a leading `_`, here without it). */
  data: Record<string, string>;
}

/** A device assignment or attachment (`Assigned`, `Attached`, `Assign`, `Attach`). */
export interface DeviceAssignment {
  backendDomain: string;
  portId: string;
  /** The device id; `*` matches any device on the port. */
  deviceId: string;
  devclass: string;
  mode: AssignmentMode;
  /** The qube the device is assigned/attached to. */
  frontendDomain?: string;
  /** Options (keys sent with a leading `_`, here without it), in order. */
  options: Record<string, string>;
}

const KEY_CHARS = /^[0-9A-Za-z!#$%&()*+,\-./:;<>?@[\]^_{|}~]+$/;
const VALUE_CHARS = /^[\x20-\x7e]*$/;

/** Escapes one value for the `key='value'` serialisation (`'` → `\'`). */
export function serializeDeviceValue(value: string): string {
  return `'${value.replace(/'/g, "\\'")}'`;
}

/** Prints `key='value'` pairs, checking keys and values as qubesd will. */
export function serializeDeviceProperties(props: [string, string][]): string {
  return props
    .map(([k, v]) => {
      if (!KEY_CHARS.test(k)) throw new QubesValidationError(`device property name \`${k}\` contains invalid characters`, "invalid-device-property", "payload");
      if (!VALUE_CHARS.test(v)) throw new QubesValidationError(`device property \`${k}\` has a value with non-printable characters`, "invalid-device-property", "payload");
      return `${k}=${serializeDeviceValue(v)}`;
    })
    .join(" ");
}

/** Parses the `key='value' …` serialisation the way qubesd does (partition on `='`, then `' `). */
export function parseDeviceProperties(text: string): [string, string][] {
  const s = text.trim();
  if (s === "") return [];
  const unescape = (v: string) => v.replace(/\\'/g, "'");
  const out: [string, string][] = [];
  const first = s.indexOf("='");
  if (first < 0) throw new QubesParseError(`device properties: no key='value' in \`${s.slice(0, 80)}\``);
  let key = s.slice(0, first);
  let rest = s.slice(first + 2);
  for (;;) {
    const next = rest.indexOf("='");
    if (next < 0) break;
    const valueAndKey = rest.slice(0, next);
    rest = rest.slice(next + 2);
    const sep = valueAndKey.lastIndexOf("' ");
    if (sep < 0) throw new QubesParseError(`device properties: cannot split \`${valueAndKey.slice(0, 80)}\``);
    out.push([key, unescape(valueAndKey.slice(0, sep))]);
    key = valueAndKey.slice(sep + 2);
  }
  if (!rest.endsWith("'")) throw new QubesParseError("device properties: last value is not quoted");
  out.push([key, unescape(rest.slice(0, -1))]);
  return out;
}

function splitLine(line: string): [string, [string, string][]] {
  const sp = line.indexOf(" ");
  const head = sp < 0 ? line : line.slice(0, sp);
  return [head, parseDeviceProperties(sp < 0 ? "" : line.slice(sp + 1))];
}

/** Parses one line of `Available`. */
export function parseDeviceInfoLine(line: string, defaults: { backendDomain?: string; devclass?: string } = {}): DeviceInfo {
  const [head, props] = splitLine(line);
  const p = new Map(props);
  const colon = head.indexOf(":");
  const info: DeviceInfo = {
    backendDomain: p.get("backend_domain") ?? defaults.backendDomain ?? "",
    portId: p.get("port_id") ?? (colon < 0 ? head : head.slice(0, colon)),
    devclass: p.get("devclass") ?? defaults.devclass ?? "",
    deviceId: p.get("device_id") ?? (colon < 0 ? "*" : head.slice(colon + 1)),
    interfaces: [],
    data: {},
  };
  for (const [k, v] of props) {
    switch (k) {
      case "vendor":
      case "product":
      case "manufacturer":
      case "name":
      case "serial":
      case "attachment":
        info[k] = v;
        break;
      case "interfaces":
        for (let i = 0; i + 7 <= v.length; i += 7) info.interfaces.push(v.slice(i, i + 7));
        break;
      case "parent_port_id":
        info.parentPortId = v;
        break;
      case "parent_devclass":
        info.parentDevclass = v;
        break;
      default:
        if (k.startsWith("_")) setKey(info.data, k.slice(1), v);
    }
  }
  return info;
}

/** Parses one line of `Assigned` / `Attached`. */
export function parseDeviceAssignmentLine(line: string, defaults: { frontendDomain?: string; devclass?: string } = {}): DeviceAssignment {
  const [head, props] = splitLine(line);
  const p = new Map(props);
  const plus = head.indexOf("+");
  const colon = head.indexOf(":", plus + 1);
  const mode = p.get("mode") ?? "manual";
  if (!(ASSIGNMENT_MODES as readonly string[]).includes(mode)) throw new QubesParseError(`device assignment: unknown mode \`${mode}\``);
  const a: DeviceAssignment = {
    backendDomain: p.get("backend_domain") ?? (plus < 0 ? "" : head.slice(0, plus)),
    portId: p.get("port_id") ?? head.slice(plus + 1, colon < 0 ? undefined : colon),
    deviceId: p.get("device_id") ?? (colon < 0 ? "*" : head.slice(colon + 1)),
    devclass: p.get("devclass") ?? defaults.devclass ?? "",
    mode: mode as AssignmentMode,
    options: {},
  };
  const fe = p.get("frontend_domain") ?? defaults.frontendDomain;
  if (fe !== undefined) a.frontendDomain = fe;
  for (const [k, v] of props) if (k.startsWith("_")) setKey(a.options, k.slice(1), v);
  return a;
}

/** The device argument: `<backend>+<port_id>+<device_id with ':' → '+'>`, `*` and `?` → `_`. */
export function deviceArg(a: Pick<DeviceAssignment, "backendDomain" | "portId" | "deviceId">): string {
  const dev = a.deviceId.replace(/:/g, "+").replace(/[*?]/g, "_");
  // Any port (an assignment by device identity) is `_` too, as qubesd reads it back.
  const port = a.portId === "*" ? "_" : a.portId;
  return validateArg(`${a.backendDomain}+${port}+${dev}`, "device");
}

/** The filter argument of `Assigned`/`Attached`: `<backend>+<port_id>`. */
export function portArg(backendDomain: string, portId: string): string {
  return validateArg(`${backendDomain}+${portId}`, "port");
}

/** Serialises an assignment as the payload of `Assign` / `Attach`. */
export function serializeAssignment(a: DeviceAssignment): string {
  const props: [string, string][] = [
    ["device_id", a.deviceId],
    ["port_id", a.portId],
    ["devclass", a.devclass],
    ["backend_domain", a.backendDomain],
    ["mode", a.mode],
  ];
  if (a.frontendDomain !== undefined) props.push(["frontend_domain", a.frontendDomain]);
  for (const [k, v] of Object.entries(a.options)) props.push([`_${k}`, v]);
  return serializeDeviceProperties(props);
}

/** Checks interface codes for the deny list: `[pubm?]` + 6 of `[0-9a-f*]`. */
export function validateInterfaceCodes(codes: string[]): string {
  for (const c of codes) {
    if (!/^[pubm?][0-9a-f*]{6}$/.test(c)) {
      throw new QubesValidationError(`device interface code \`${c}\` must be a class letter (p, u, b, m, ?) and 6 hex digits or \`*\``, "invalid-interface-code", "payload");
    }
  }
  return codes.join("");
}

/** The `:` form devices have in event kwargs (`backend:port_id:device_id`). */
export function parseEventDevice(text: string): { backendDomain: string; portId: string; deviceId: string } {
  const a = text.indexOf(":");
  const b = text.indexOf(":", a + 1);
  if (a < 0) return { backendDomain: text, portId: "", deviceId: "*" };
  if (b < 0) return { backendDomain: text.slice(0, a), portId: text.slice(a + 1), deviceId: "*" };
  return { backendDomain: text.slice(0, a), portId: text.slice(a + 1, b), deviceId: text.slice(b + 1) };
}
