/**
 * Devices (`admin.vm.device.*`).
 */
import type { Assignment } from "../model.js";
import { DEVICE_CLASSES } from "../model.js";
import { SimAbort, isAscii, protocolError, pyDictRepr, pySetRepr, pyStrRepr, qerr } from "../wire.js";
import { method, type CallContext } from "./registry.js";

// ---------------------------------------------------------------------------
// Devices

const DEV_KEY = new Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&()*+,-./:;<>?@[\\]^_{|}~");
const DEV_VAL = new Set([...DEV_KEY, ..."!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ "]);

function sanitizeDev(s: string, allowed: Set<string>, what: string): string {
  const bad = [...s].filter((ch) => !allowed.has(ch));
  if (bad.length) throw protocolError(`Invalid chars in property ${what}: ${pySetRepr(bad)}`);
  return s;
}

/** `DeviceSerializer.unpack_properties`. */
function unpackProperties(payload: Buffer): { props: Map<string, string>; options: Array<[string, string]> } {
  if (!isAscii(payload)) throw protocolError("'ascii' codec can't decode byte");
  const decoded = payload.toString("latin1").trim();
  const props = new Map<string, string>();
  const options: Array<[string, string]> = [];
  if (!decoded) return { props, options };
  const keys: string[] = [];
  const values: string[] = [];
  const part = (s: string, sep: string): [string, string] => {
    const i = s.indexOf(sep);
    return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + sep.length)];
  };
  let [k, rest] = part(decoded, "='");
  keys.push(sanitizeDev(k.trim(), DEV_KEY, "name"));
  while (rest.includes("='")) {
    let valueKey: string;
    [valueKey, rest] = part(rest, "='");
    const ri = valueKey.lastIndexOf("' ");
    const value = ri < 0 ? "" : valueKey.slice(0, ri);
    const key = ri < 0 ? valueKey : valueKey.slice(ri + 2);
    values.push(sanitizeDev(value.replace(/\\'/g, "'"), DEV_VAL, "value"));
    keys.push(sanitizeDev(key.trim(), DEV_KEY, "name"));
  }
  values.push(sanitizeDev(rest.slice(0, -1).replace(/\\'/g, "'"), DEV_VAL, "value"));
  keys.forEach((key, i) => {
    if (key.startsWith("_")) options.push([key.slice(1), values[i]!]);
    else props.set(key, values[i]!);
  });
  return { props, options };
}

/** `VirtualDevice.from_qarg`: `backend+port+device_id('+' for ':')`. */
function parseDeviceArg(c: CallContext): { backend: string; portId: string; deviceId: string } {
  const [backend, portRaw, ...idParts] = c.arg.split("+");
  if (!backend || portRaw === undefined) throw new SimAbort("ValueError: bad device argument");
  // `VirtualDevice.from_qarg` looks the backend up with `app.domains[name]`: a bare KeyError, which qubesd does not answer
  if (!c.app.domains.has(backend)) throw new SimAbort(`KeyError: ${pyStrRepr(backend)}`);
  const portId = portRaw === "_" ? "*" : portRaw;
  const deviceId = idParts.length === 0 ? "*" : idParts.join(":").replace(/_/g, "*") === "*" ? "*" : idParts.join(":");
  return { backend, portId, deviceId };
}

/**
 * `load_device_info` (Assign, Unassign, Attach, Detach): with a port and a
 * device id, the backend's device is looked up; for PCI a port the host does
 * not have fails unhandled in the PCI extension (no reply), observed.
 */
function loadDeviceInfo(c: CallContext, dc: string): { backend: string; portId: string; deviceId: string } {
  const dev = parseDeviceArg(c);
  if (dc === "pci" && dev.portId !== "*" && dev.deviceId !== "*" && !c.app.domains.get("dom0")?.exposed.some((d) => d.devclass === "pci" && d.portId === dev.portId))
    throw new SimAbort(`no PCI device on the host at port ${dev.portId}`);
  return dev;
}

const ser = (s: string) => `'${s.replace(/'/g, "\\'")}'`;
function assignmentLine(a: Assignment, frontend: string | undefined): string {
  const parts = [
    `device_id=${ser(a.deviceId)}`,
    `port_id=${ser(a.portId)}`,
    `devclass=${ser(a.devclass)}`,
    `backend_domain=${ser(a.backend)}`,
    `mode=${ser(a.mode)}`,
    ...(frontend === undefined ? [] : [`frontend_domain=${ser(frontend)}`]),
    ...a.options.map(([k, v]) => `_${k}=${ser(v)}`),
  ];
  return `${a.backend}+${a.portId}:${a.deviceId} ${parts.join(" ")}`;
}
const devRef = (a: { backend: string; portId: string; deviceId: string }) => `${a.backend}:${a.portId}:${a.deviceId}`;

function deviceMethods(dc: string): void {
  const p = `admin.vm.device.${dc}`;
  method(`${p}.Available`, null, null, false, (c) => {
    let devs = c.dest.klass === "RemoteVM" ? [] : c.dest.exposed.filter((d) => d.devclass === dc);
    if (c.arg) devs = devs.filter((d) => d.portId === c.arg);
    const entries = devs.map((d) => {
      const parts = [`device_id=${ser(d.deviceId)}`, `port_id=${ser(d.portId)}`, `devclass=${ser(dc)}`, `backend_domain=${ser(c.dest.name)}`, ...d.info.map(([k, v]) => `${k}=${ser(v)}`)];
      return [`${d.portId}:${d.deviceId}`, parts.join(" ")] as const;
    });
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return entries.map(([k, v]) => `${k} ${v}\n`).join("");
  });
  const listAssigned = (c: CallContext, attachedOnly: boolean) => {
    let as = c.dest.assignments.filter((a) => a.devclass === dc);
    // qubesd's PCI extension lists nothing attached to dom0 (its devices are not attached through libvirt).
    if (attachedOnly) as = c.dest.power === "Running" && !(dc === "pci" && c.dest.isAdminVM) ? as.filter((a) => a.mode !== "manual" && c.app.domains.get(a.backend)?.exposed.some((d) => d.portId === a.portId)) : [];
    if (c.arg) {
      const i = c.arg.indexOf("+");
      if (i < 0) throw new SimAbort("ValueError: not enough values to unpack");
      const [b, port] = [c.arg.slice(0, i), c.arg.slice(i + 1)];
      as = as.filter((a) => a.backend === b && a.portId === port);
    }
    const entries = as.map((a) => assignmentLine(a, attachedOnly ? c.dest.name : a.frontend));
    return entries.sort().map((l) => `${l}\n`).join("");
  };
  method(`${p}.Assigned`, null, null, false, (c) => listAssigned(c, false));
  method(`${p}.Attached`, null, null, false, (c) => listAssigned(c, true));
  const loadAssignment = (c: CallContext, requireMode: boolean) => {
    const dev = loadDeviceInfo(c, dc);
    const { props, options } = unpackProperties(c.payload);
    const be = props.get("backend_domain");
    if (be !== undefined && be !== dev.backend) throw protocolError(`Got device exposed by ${be}when expected devices from ${dev.backend}.`);
    props.delete("backend_domain");
    const port = props.get("port_id");
    if (port !== undefined && port !== dev.portId) throw protocolError(`Got device from port: ${port} when expected port: ${dev.portId}.`);
    props.delete("port_id");
    const cls = props.get("devclass");
    if (cls !== undefined && cls !== dc) throw protocolError(`Got ${cls} device when expected ${dc}.`);
    props.delete("devclass");
    const id = props.get("device_id") ?? dev.deviceId;
    if (dev.deviceId !== "*" && id !== dev.deviceId) throw protocolError(`Unrecognized device identity '${id}' expected '${dev.deviceId}'`);
    props.delete("device_id");
    // `DeviceAssignment(**properties)`: Python refuses an unknown keyword before the body runs
    for (const k of props.keys())
      if (k !== "mode" && k !== "frontend_domain") throw protocolError(`DeviceAssignment.__init__() got an unexpected keyword argument '${k}'`);
    const mode = props.get("mode") ?? (requireMode ? "auto-attach" : "manual");
    if (!["manual", "ask-to-attach", "auto-attach", "required"].includes(mode)) throw protocolError(`'${mode}' is not a valid AssignmentMode`);
    // the `frontend_domain` setter looks the name up (`app.domains[name]`, names only: a `uuid:` is a
    // KeyError too); the assignment still goes to the destination qube
    const fe = props.get("frontend_domain");
    if (fe !== undefined && !c.app.domains.has(fe)) throw protocolError(pyStrRepr(fe));
    return { devclass: dc, backend: dev.backend, portId: dev.portId, deviceId: id, mode, options, ...(fe === undefined ? {} : { frontend: fe }) } satisfies Assignment;
  };
  method(`${p}.Assign`, null, true, true, (c) => {
    if (!c.app.domains.has(c.arg.split("+")[0]!)) throw new SimAbort("KeyError: backend qube");
    const a = loadAssignment(c, true);
    // `DeviceCollection.assign`: an equal assignment (same port and device id) is refused first, then
    // manual mode with a bare ValueError (no reply)
    if (c.dest.assignments.some((x) => x.devclass === dc && x.backend === a.backend && x.portId === a.portId && x.deviceId === a.deviceId))
      throw qerr("DeviceAlreadyAssigned", pyStrRepr(`${dc} device ${devRef(a)} already assigned to ${c.dest.name}`));
    if (a.mode === "manual") throw new SimAbort("ValueError: Only auto-attachable devices can be assigned.");
    const kw: Array<[string, string]> = [["device", devRef(a)], ["options", pyDictRepr(a.options)]];
    c.dest.emit(`device-pre-assign:${dc}`, kw);
    c.dest.assignments.push(a);
    c.dest.emit(`device-assign:${dc}`, kw);
    return null;
  });
  method(`${p}.Unassign`, null, true, false, (c) => {
    const dev = loadDeviceInfo(c, dc);
    // `DeviceCollection.unassign` compares assignments with `==`: the same port and the same device id,
    // `*` only equal to `*` (a wildcard in the request matches only a wildcard assignment)
    const i = c.dest.assignments.findIndex((x) => x.devclass === dc && x.backend === dev.backend && x.portId === dev.portId && x.deviceId === dev.deviceId);
    // an unknown PCI port of the backend: qubesd's PCI device lookup fails unhandled
    if (i < 0 && dc === "pci" && dev.portId !== "*" && !c.app.domains.get(dev.backend)?.exposed.some((d) => d.devclass === "pci" && d.portId === dev.portId))
      throw new SimAbort(`KeyError: no ${dc} device on port ${dev.portId}`);
    if (i < 0) throw qerr("DeviceNotAssigned", pyStrRepr(`${dc} device ${devRef(dev)} not assigned to ${c.dest.name}`));
    const [a] = c.dest.assignments.splice(i, 1);
    c.dest.emit(`device-unassign:${dc}`, [["device", devRef(a!)]]);
    return null;
  });
  method(`${p}.Attach`, null, true, null, (c) => {
    const a = loadAssignment(c, false);
    // `DeviceCollection.attach`
    if (c.dest.power === "Halted") throw qerr("QubesVMNotRunningError", "VM not running, cannot attach device, do you mean `assign`?");
    // a PCI port the host lacks: the PCI extension's device lookup fails unhandled (no reply), observed
    if (dc === "pci" && a.portId !== "*" && !c.app.domains.get(a.backend)?.exposed.some((d) => d.devclass === "pci" && d.portId === a.portId))
      throw new SimAbort(`no PCI device on the host at port ${a.portId}`);
    // `assignment.device`: exactly one device of the backend must match (an unknown one is reported as ambiguous too,
    // as upstream's own "unknown" error is caught by its "ambiguous" handler)
    const matching = (c.app.domains.get(a.backend)?.exposed ?? []).filter(
      (d) => d.devclass === dc && (a.portId === "*" || d.portId === a.portId) && (a.deviceId === "*" || d.deviceId === a.deviceId),
    );
    if (matching.length !== 1) throw protocolError(`Cannot attach ambiguous ${dc} device.`);
    if (dc === "pci") {
      // the PCI extension's `device-pre-attach:pci`: dom0 and PVH qubes cannot take PCI devices
      if (c.dest.isAdminVM) throw qerr("QubesException", "Can't attach PCI device to dom0");
      if (c.dest.getProp("virt_mode") === "pvh") throw qerr("QubesException", "Can't attach PCI device to VM in pvh mode");
    }
    if (c.dest.power !== "Running") throw qerr("QubesVMNotRunningError", `Domain not running (either powered off or paused): '${c.dest.name}'`);
    const kw: Array<[string, string]> = [["device", devRef(a)], ["options", pyDictRepr(a.options)]];
    c.dest.emit(`device-pre-attach:${dc}`, kw);
    c.dest.emit(`device-attach:${dc}`, kw);
    return null;
  });
  method(`${p}.Detach`, null, true, false, (c) => {
    const dev = loadDeviceInfo(c, dc);
    // `DeviceCollection.detach`: only an attached device (a KeyError subclass: its message is quoted)
    const attached = c.dest.power === "Running" && c.dest.assignments.some((a) => a.devclass === dc && a.mode !== "manual" && a.portId === dev.portId && c.app.domains.get(a.backend)?.exposed.some((d) => d.portId === a.portId));
    if (!attached) throw qerr("DeviceNotAssigned", pyStrRepr(`${dc} device ${dev.portId} not attached to ${c.dest.name}`));
    c.dest.emit(`device-pre-detach:${dc}`, [["port", `${dev.backend}:${dev.portId}`]]);
    c.dest.emit(`device-detach:${dc}`, [["port", `${dev.backend}:${dev.portId}`]]);
    return null;
  });
  method(`${p}.Set.assignment`, null, true, true, (c) => {
    const mode = { required: "required", "ask-to-attach": "ask-to-attach", "auto-attach": "auto-attach" }[c.payload.toString("latin1")];
    if (!mode || !isAscii(c.payload)) throw qerr("QubesUnrecognizedDeviceAssignmentMode", "Invalid assignment mode");
    const dev = parseDeviceArg(c);
    const a = c.dest.assignments.find((x) => x.devclass === dc && x.backend === dev.backend && x.portId === dev.portId && (dev.deviceId === "*" || x.deviceId === dev.deviceId));
    if (!a) throw qerr("QubesValueError", `Device ${devRef(dev)} not assigned to ${c.dest.name}`);
    const kw: Array<[string, string]> = [["device", devRef(a)], ["options", pyDictRepr(a.options)]];
    c.dest.emit(`device-pre-assign:${dc}`, kw);
    a.mode = mode;
    c.dest.emit(`device-assignment-changed:${dc}`, [["device", devRef(a)]]);
    return null;
  });
}
for (const dc of DEVICE_CLASSES) deviceMethods(dc);

/** `app.save()` of a method that saves only on a change: it dies where the system cannot be serialised. */
function saveQubesXml(c: CallContext): void {
  if (c.app.storeUnsaveable()) throw new SimAbort("AttributeError: no default_kernel while saving qubes.xml");
}

/** `DeviceInterface.from_str_bulk`: 7-character codes (their characters are not checked). */
function interfacesFromBulk(s: string): string[] {
  if (s.length % 7 !== 0) throw qerr("QubesValueError", `Invalid length of interfaces=${pyStrRepr(s)} (is ${s.length}, expected multiple of 7)`);
  const out: string[] = [];
  for (let i = 0; i < s.length; i += 7) out.push(s.slice(i, i + 7));
  return out;
}
method("admin.vm.device.denied.List", null, false, false, (c) => interfacesFromBulk(String(c.dest.getProp("devices_denied") ?? "")).join("\n"));
method("admin.vm.device.denied.Add", null, false, null, (c) => {
  if (!isAscii(c.payload)) throw protocolError("Device interface contains non-ASCII characters");
  const add = interfacesFromBulk(c.payload.toString("latin1"));
  if (new Set(add).size !== add.length) throw protocolError("Duplicated device interfaces in payload.");
  const cur = interfacesFromBulk(String(c.dest.getProp("devices_denied") ?? ""));
  const merged = [...new Set([...cur, ...add])].sort();
  const prev = c.dest.getProp("devices_denied");
  // qubesd assigns the property even when nothing changes (so it is no longer default)
  c.dest.setProp("devices_denied", merged.join(""));
  // and saves qubes.xml only after a change (which dies while some qube's kernel has no value)
  if (prev !== c.dest.getProp("devices_denied")) saveQubesXml(c);
  return null;
});
method("admin.vm.device.denied.Remove", null, false, null, (c) => {
  const cur = interfacesFromBulk(String(c.dest.getProp("devices_denied") ?? ""));
  if (!isAscii(c.payload)) throw protocolError("Device interface contains non-ASCII characters");
  const p = c.payload.toString("latin1");
  const rm = p === "all" ? [...cur] : interfacesFromBulk(p);
  if (new Set(rm).size !== rm.length) throw protocolError("Duplicated device interfaces in payload.");
  const next = cur.filter((x) => !rm.includes(x)).join("");
  if (next !== c.dest.getProp("devices_denied")) {
    c.dest.setProp("devices_denied", next);
    saveQubesXml(c);
  }
  return null;
});
