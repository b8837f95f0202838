/**
 * The `admin.*` methods of qubesd, over the simulator's {@link App}.
 * Each entry mirrors the decorator of the real method (destination, argument
 * and payload rules) and its handler reproduces the reply and the messages.
 */
import type { App, Assignment, PropDef, PropValue, Qube, Holder, Volume } from "./model.js";
import { DEVICE_CLASSES, PROHIBITED_FEATURES, VM_CLASSES, parsePyBool, parsePyInt, validateName } from "./model.js";
import { SimAbort, SimError, isAscii, protocolError, pyDictRepr, pySetRepr, qerr } from "./wire.js";

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

interface MethodDef {
  destAdminvm: boolean | null;
  wantsArg: boolean | null;
  wantsPayload: boolean | null;
  run(ctx: CallContext): HandlerResult;
}

const M = new Map<string, MethodDef>();
function method(name: string, destAdminvm: boolean | null, wantsArg: boolean | null, wantsPayload: boolean | null, run: MethodDef["run"]): void {
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

const lines = (xs: Iterable<string>): string => [...xs].map((x) => `${x}\n`).join("");
const ascii = (b: Buffer): string => {
  if (!isAscii(b)) throw new SimAbort("UnicodeDecodeError");
  return b.toString("latin1");
};

// ---------------------------------------------------------------------------
// Properties

function serializeProperty(h: Holder, d: PropDef<Holder>): string {
  const v = h.getProp(d.name);
  if (v === undefined) return `default=True type=${d.type} `;
  return `default=${h.isDefault(d.name) || !!d.stateless ? "True" : "False"} type=${d.type} ${v === null ? "" : pyValueStr(v)}`;
}

function pyValueStr(v: PropValue): string {
  if (typeof v === "boolean") return v ? "True" : "False";
  return String(v);
}

function propDef(h: Holder, name: string): PropDef<Holder> {
  const d = h.def(name) as PropDef<Holder> | undefined;
  if (!d) throw qerr("QubesNoSuchPropertyError", `Invalid property '${name}' of ${h.describe()}`);
  return d;
}

/** `property.sanitize(untrusted_newvalue=...)`. */
function sanitize(d: PropDef<Holder>, payload: Buffer): PropValue {
  if (!isAscii(payload)) throw qerr("QubesValueError", "Non-ASCII bytes in property value");
  const s = payload.toString("latin1");
  if (d.type === "vm") {
    if (s === "") return "";
    validateName(s);
    return s;
  }
  if (d.pyType === "bool" || (d.type === "bool" && !d.pyType)) return parsePyBool(s);
  if (d.pyType === "int" || (d.type === "int" && !d.pyType)) {
    const n = parsePyInt(s);
    if (n === undefined) throw qerr("QubesValueError", "Failed to parse property value as int");
    return n;
  }
  if (d.pyType === "ip") {
    if (s === "") return null;
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(s) && !s.includes(":")) throw new SimAbort("ValueError: invalid IP address");
    return s;
  }
  for (const ch of s) if (!PRINTABLE.has(ch)) throw qerr("QubesValueError", "Invalid characters in property value");
  return s;
}
const PRINTABLE = new Set(
  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\x0b\x0c",
);

function propertyMethods(prefix: string, pick: (ctx: CallContext) => Holder, destAdminvm: boolean | null): void {
  method(`${prefix}.List`, destAdminvm, false, false, (c) => lines(pick(c).props().map((p) => p.name)));
  method(`${prefix}.Get`, destAdminvm, true, false, (c) => {
    const h = pick(c);
    return serializeProperty(h, propDef(h, c.arg));
  });
  method(`${prefix}.GetAll`, destAdminvm, false, false, (c) => {
    const h = pick(c);
    return h
      .props()
      .map((d) => `${d.name} ${serializeProperty(h, d as PropDef<Holder>).replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n`)
      .join("");
  });
  method(`${prefix}.GetDefault`, destAdminvm, true, false, (c) => {
    const h = pick(c);
    const d = propDef(h, c.arg);
    const v = d.stateless ? d.stateless(h) : d.default ? d.default(h) : undefined;
    if (v === undefined) return null;
    return `type=${d.type} ${v === null ? "" : pyValueStr(v)}`;
  });
  method(`${prefix}.Help`, destAdminvm, true, false, (c) => propDef(pick(c), c.arg).help);
  method(`${prefix}.Set`, destAdminvm, true, null, (c) => {
    const h = pick(c);
    const d = propDef(h, c.arg);
    const v = sanitize(d, c.payload);
    h.setProp(c.arg, v);
    return null;
  });
  method(`${prefix}.Reset`, destAdminvm, true, false, (c) => {
    const h = pick(c);
    propDef(h, c.arg);
    h.resetProp(c.arg);
    return null;
  });
}
propertyMethods("admin.property", (c) => c.app, true);
propertyMethods("admin.vm.property", (c) => c.dest, null);

// ---------------------------------------------------------------------------
// Global

method("admin.vmclass.List", true, false, false, () => lines(VM_CLASSES));
method("admin.deviceclass.List", true, false, false, () => lines(DEVICE_CLASSES));

method("admin.vm.List", null, false, false, (c) => {
  let qubes = c.dest.name === "dom0" ? c.app.sortedDomains() : [c.dest];
  if (!c.src.isAdminVM) qubes = qubes.filter((q) => c.policyAllows("admin.vm.List", "", c.src.name, q.name));
  return qubes.map((q) => `${q.name} class=${q.klass} state=${q.power} uuid=${q.uuid}\n`).join("");
});

// Labels

function validateLabelName(name: string, creation = false): void {
  if (!name) throw qerr("QubesInvalidLabelError", "Label name must be set");
  if (creation && /^\d+$/.test(name)) throw qerr("QubesInvalidLabelError", "Label must not be a digit");
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw qerr("QubesInvalidLabelError", "Label must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");
}

method("admin.label.List", true, false, false, (c) => lines([...c.app.labels.values()].map((l) => l.name)));
method("admin.label.Get", true, true, false, (c) => {
  validateLabelName(c.arg);
  const l = c.app.getLabel(c.arg);
  if (l.createdByApi) throw new SimAbort("AttributeError: 'bytes' object has no attribute 'encode' (label created through admin.label.Create)");
  return l.color;
});
method("admin.label.Index", true, true, false, (c) => {
  validateLabelName(c.arg);
  return String(c.app.getLabel(c.arg).index);
});
method("admin.label.Create", true, true, true, (c) => {
  validateLabelName(c.arg, true);
  if (!isAscii(c.payload)) throw qerr("QubesInvalidLabelValueError", "Label value must be encoded in ASCII");
  const v = c.payload.toString("latin1").trim();
  if (v.length !== 8) throw qerr("QubesInvalidLabelValueError", "Label value must have length of 8");
  if (!v.startsWith("0x")) throw qerr("QubesInvalidLabelValueError", "Label value must start with: 0x");
  if (!/^[0-9a-fA-F]{6}$/.test(v.slice(2)))
    throw qerr("QubesInvalidLabelValueError", "Label value must only contain hexadecimal digits after prefix: 0123456789abcdefABCDEF");
  let exists = false;
  try {
    c.app.getLabel(c.arg);
    exists = true;
  } catch {
    exists = false;
  }
  if (exists) throw qerr("QubesLabelInUseError", `Label is still in use: '${c.arg}'`);
  const index = Math.max(8, ...c.app.labels.keys()) + 1;
  c.app.labels.set(index, { index, name: c.arg, color: c.payload.toString("latin1"), createdByApi: true });
  return null;
});
method("admin.label.Remove", true, true, false, (c) => {
  validateLabelName(c.arg);
  const l = c.app.getLabel(c.arg);
  if (l.index <= 8) throw protocolError("Can only remove custom labels");
  for (const q of c.app.domains.values()) if (q.getProp("label") === l.name) throw qerr("QubesLabelInUseError", `Label is still in use: ${l.name}`);
  c.app.labels.delete(l.index);
  return null;
});

// ---------------------------------------------------------------------------
// Create / remove

function createMethod(klass: string, allowPool: boolean): MethodDef["run"] {
  return (c) => {
    const app = c.app;
    const kw: Record<string, string> = {};
    let template: string | undefined;
    let invalidTemplate = false;
    if (c.arg) {
      if (klass !== "AppVM" && klass !== "DispVM") throw protocolError(`${klass} cannot be based on template`);
      if (app.domains.has(c.arg)) template = c.arg;
      else invalidTemplate = true;
    }
    if (!isAscii(c.payload)) throw protocolError("Parameters contains non-ASCII characters");
    let invalidLabel = false;
    let pool: string | undefined;
    const pools: Record<string, string> = {};
    let poolError: SimError | undefined;
    const seen = new Set<string>();
    for (const param of c.payload.toString("latin1").split(" ")) {
      const eq = param.indexOf("=");
      if (eq < 0) throw new SimAbort("ValueError: not enough values to unpack");
      const key = param.slice(0, eq);
      const value = param.slice(eq + 1);
      if (seen.has(key)) throw protocolError("Options must be unique");
      if (key === "name") {
        validateName(value);
        kw.name = value;
        seen.add(key);
      } else if (key === "label") {
        validateLabelName(value, true);
        try {
          kw.label = app.getLabel(value).name;
          seen.add(key);
        } catch {
          invalidLabel = true;
        }
      } else if (key === "pool" && allowPool) {
        if (pool !== undefined) throw protocolError("Option 'pool' must be unique");
        if (app.pools.has(value)) pool = value;
        else poolError = qerr("QubesException", `No such storage pool: ${value}`);
      } else if (key.startsWith("pool:") && allowPool) {
        const vol = key.slice(5);
        if (!["root", "private", "volatile", "kernel"].includes(vol)) throw protocolError("Volume must be one of: root, private, volatile, kernel");
        if (vol in pools) throw protocolError(`Option 'pool:${vol}' must be unique`);
        if (app.pools.has(value)) pools[vol] = value;
        else poolError = qerr("QubesException", `No such storage pool: ${value}`);
      } else {
        if (!allowPool && (key === "pool" || key.startsWith("pool:"))) throw protocolError("Pool option specified but 'allow_pool' is False");
        throw protocolError("Options does not match: name, label, pool, pool:");
      }
    }
    for (const k of ["name", "label"]) if (!(k in kw)) throw protocolError(`Creation requested without key: ${k}`);
    if (pool && Object.keys(pools).length) throw protocolError("Conflicting options specified: 'pool=', 'pool:volume='");
    if (app.domains.has(kw.name!)) throw qerr("QubesVMAlreadyExistsError", `Qube already exists: ${kw.name}`);
    if (invalidTemplate) throw qerr("QubesVMNotFoundError", `No such domain: '${c.arg}'`);
    if (invalidLabel) throw qerr("QubesLabelNotFoundError", "Label does not exist: untrusted label");
    if (poolError) throw poolError;
    if (klass === "AppVM" || klass === "DispVM") {
      const t = template ?? (klass === "AppVM" ? (app.getProp("default_template") as string | null | undefined) : undefined);
      if (!t) throw qerr("QubesNoTemplateError", `Template for the domain '${kw.name}' not found`);
      const tq = app.domains.get(t)!;
      if (klass === "AppVM" && tq.klass !== "TemplateVM")
        throw qerr("QubesPropertyValueError", `wrong VM class: domains['${t}'] is of type ${tq.klass} and not TemplateVM`);
      if (klass === "DispVM" && tq.getProp("template_for_dispvms") !== true)
        throw qerr("QubesException", `Refusing to create DispVM out of this AppVM, because template_for_dispvms=False`);
      template = t;
    }
    if (klass === "AdminVM") throw qerr("QubesException", "AdminVM already exists");
    app.addQube(klass, kw.name!, kw.label!, {
      template,
      pool,
      pools,
      createdBy: c.src.name,
      dispid: klass === "DispVM" ? app.newDispid() : undefined,
    });
    return null;
  };
}
for (const klass of VM_CLASSES) {
  method(`admin.vm.Create.${klass}`, true, null, null, createMethod(klass, false));
  method(`admin.vm.CreateInPool.${klass}`, true, null, null, createMethod(klass, true));
}

method("admin.vm.CreateDisposable", null, null, null, (c) => {
  if (!["", "preload"].includes(c.arg)) throw qerr("PermissionDenied", "Argument not in \"'', 'preload'\"");
  const p = c.payload.toString("latin1");
  if (p !== "" && p !== "uuid") throw protocolError("Invalid payload, expected empty string or 'uuid'");
  const appvmName = c.dest.name === "dom0" ? c.src.getProp("default_dispvm") : c.dest.name;
  const appvm = typeof appvmName === "string" ? c.app.domains.get(appvmName) : undefined;
  if (!appvm) throw qerr("QubesException", "No default disposable template set for the source qube");
  if (appvm.getProp("template_for_dispvms") !== true)
    throw qerr("QubesException", "Refusing to create DispVM out of this AppVM, because template_for_dispvms=False");
  if (c.arg === "preload") return null;
  const dispid = c.app.newDispid();
  const name = `disp${dispid}`;
  const q = c.app.addQube("DispVM", name, String(appvm.getProp("label")), {
    template: appvm.name,
    dispid,
    extra: (d) => d.values.set("auto_cleanup", true),
  });
  c.app.addCreatedByTag(q, c.src.name);
  q.addTag(`disp-created-by-${c.src.name}`);
  return p === "uuid" ? `uuid:${q.uuid}` : q.name;
});

method("admin.vm.Remove", null, false, false, (c) => {
  if (c.dest.name === "dom0") throw qerr("QubesVMInUseError", "'dom0' cannot be removed");
  if (c.dest.getProp("installed_by_rpm") === true) throw qerr("QubesVMInUseError", `VM installed by package manager: ${c.dest.name}`);
  c.app.removeQube(c.dest);
  return null;
});

// ---------------------------------------------------------------------------
// Power

method("admin.vm.Start", null, false, false, (c) => (c.app.start(c.dest), null));
method("admin.vm.Shutdown", null, null, false, (c) => {
  const args = c.arg ? c.arg.split("+") : [];
  if (!args.every((a) => a === "force" || a === "wait")) throw protocolError("Argument must match: force, wait");
  c.app.shutdown(c.dest, args.includes("force"));
  return null;
});
method("admin.vm.Kill", null, false, false, (c) => (c.app.kill(c.dest), null));
method("admin.vm.Pause", null, false, false, (c) => (c.app.pause(c.dest), null));
method("admin.vm.Unpause", null, false, false, (c) => (c.app.unpause(c.dest), null));
method("admin.vm.Suspend", null, false, false, (c) => (c.app.suspend(c.dest), null));
method("admin.vm.Resume", null, false, false, (c) => (c.app.resume(c.dest), null));
method("admin.vm.CurrentState", null, false, false, (c) => {
  const q = c.dest;
  const running = q.power !== "Halted";
  const mem = q.isAdminVM ? c.app.host.dom0MemoryKiB : running ? Number(q.getProp("memory")) * 1024 : 0;
  const cputime = running ? Math.max(1, Math.round(process.uptime() * 1e9)) : 0;
  return `mem=${mem} mem_static_max=0 cputime=${cputime} power_state=${q.power}`;
});
method("admin.vm.Console", null, false, false, (c) => {
  if (c.dest.power !== "Running") throw qerr("QubesVMNotRunningError", `Domain not running (either powered off or paused): '${c.dest.name}'`);
  return `/dev/pts/${c.dest.xid}`;
});

// ---------------------------------------------------------------------------
// Features and tags

function featureGetter(pick: (q: Qube, name: string) => string | undefined): MethodDef["run"] {
  return (c) => {
    const v = pick(c.dest, c.arg);
    if (v === undefined) throw qerr("QubesFeatureNotFoundError", `Feature not set for domain ${c.dest.name}: ${c.arg}`);
    return v;
  };
}
method("admin.vm.feature.List", null, false, false, (c) => lines(c.dest.features.keys()));
method("admin.vm.feature.Get", null, true, false, featureGetter((q, n) => q.features.get(n)));
method("admin.vm.feature.CheckWithTemplate", null, true, false, featureGetter((q, n) => q.featureWithTemplate(n)));
method("admin.vm.feature.CheckWithNetvm", null, true, false, featureGetter((q, n) => q.featureWithNetvm(n)));
method("admin.vm.feature.CheckWithAdminVM", null, true, false, featureGetter((q, n) => q.featureWithAdminVM(n)));
method("admin.vm.feature.CheckWithTemplateAndAdminVM", null, true, false, featureGetter((q, n) => q.featureWithTemplateAndAdminVM(n)));
const PROHIBITED_MSG = "changing this feature is prohibited by qubes.ext.admin.AdminExtension";
method("admin.vm.feature.Remove", null, true, false, (c) => {
  if (PROHIBITED_FEATURES.has(c.arg)) throw qerr("PermissionDenied", PROHIBITED_MSG);
  if (!c.dest.features.has(c.arg)) throw qerr("QubesFeatureNotFoundError", `Feature not set for domain ${c.dest.name}: ${c.arg}`);
  c.dest.removeFeature(c.arg);
  return null;
});
method("admin.vm.feature.Set", null, true, null, (c) => {
  if (!isAscii(c.payload)) throw protocolError("Feature value contains non-ASCII characters");
  const value = c.payload.toString("latin1");
  if (!/^[a-zA-Z0-9_.-]+$/.test(c.arg)) throw protocolError("feature name contains illegal characters");
  if (!/^[\x20-\x7e]*$/.test(value)) throw protocolError(`${c.arg} value contains illegal characters`);
  if (PROHIBITED_FEATURES.has(c.arg)) throw qerr("PermissionDenied", PROHIBITED_MSG);
  c.dest.setFeature(c.arg, value);
  return null;
});

function validateTag(tag: string): void {
  if (!tag) throw qerr("QubesInvalidTagError", "tag cannot be empty");
  if (!/^[A-Za-z0-9_-]+$/.test(tag)) throw qerr("QubesInvalidTagError", "disallowed characters");
}
function tagPermission(c: CallContext): void {
  if (c.arg.startsWith("created-by-") && !c.src.isAdminVM)
    throw qerr("PermissionDenied", "changing this tag is prohibited by qubes.ext.admin.AdminExtension");
}
method("admin.vm.tag.List", null, false, false, (c) => lines([...c.dest.tags].sort()));
method("admin.vm.tag.Get", null, true, false, (c) => (validateTag(c.arg), c.dest.tags.has(c.arg) ? "1" : "0"));
method("admin.vm.tag.Set", null, true, false, (c) => {
  validateTag(c.arg);
  tagPermission(c);
  c.dest.addTag(c.arg);
  return null;
});
method("admin.vm.tag.Remove", null, true, false, (c) => {
  validateTag(c.arg);
  tagPermission(c);
  if (!c.dest.tags.has(c.arg)) throw qerr("QubesTagNotFoundError", `Tag not set for domain ${c.dest.name}: ${c.arg}`);
  c.dest.removeTag(c.arg);
  return null;
});

// ---------------------------------------------------------------------------
// Notes

method("admin.vm.notes.Get", false, false, false, (c) => c.dest.notes);
method("admin.vm.notes.Set", false, false, true, (c) => {
  if (c.payload.length > 256000) throw protocolError(`Maximum note size is 256000 bytes (${c.payload.length} bytes received)`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(c.payload);
  } catch (e) {
    throw protocolError("Unable to sanitise qube notes: 'utf-8' codec can't decode bytes");
  }
  // Stand-in for libqubes-pure: control characters other than TAB/LF become `_`.
  c.dest.notes = [...text].map((ch) => (/[\p{Cc}\p{Cs}\p{Co}\p{Cn}]/u.test(ch) && ch !== "\t" && ch !== "\n" ? "_" : ch)).join("");
  return null;
});

// ---------------------------------------------------------------------------
// Pools and volumes

function enforceArg(c: CallContext, wants: Iterable<string>, reason: string): void {
  if (![...wants].includes(c.arg)) throw qerr("PermissionDenied", `Argument not in '${reason}'`);
}
function validateNumber(payload: Buffer, name: string, allowNegative = false): number {
  let s = payload.toString("latin1");
  let k = 1;
  if (allowNegative && s.startsWith("-")) {
    k = -1;
    s = s.slice(1);
  }
  const cap = name.charAt(0).toUpperCase() + name.slice(1);
  if (!/^[0-9]+$/.test(s)) throw protocolError(`${cap} contains non ASCII digits`);
  if (s.length >= 20) throw protocolError(`${cap} is bigger than 19 decimal digits`);
  if (s[0] === "0" && s !== "0") throw protocolError(`${cap} contains spurious leading zeros`);
  return Number(s) * k;
}
function boolPayload(payload: Buffer): boolean {
  try {
    if (!isAscii(payload)) throw new Error();
    return parsePyBool(payload.toString("latin1"));
  } catch {
    throw protocolError("Payload is not boolean ASCII");
  }
}

const DRIVERS: Array<[string, string[], string[]]> = [
  ["file", ["revisions_to_keep", "dir_path", "ephemeral_volatile"], ["dir_path"]],
  ["file-reflink", ["revisions_to_keep", "dir_path", "setup_check", "ephemeral_volatile"], ["dir_path"]],
  ["linux-kernel", ["dir_path"], ["dir_path"]],
  ["lvm_thin", ["revisions_to_keep", "volume_group", "thin_pool", "ephemeral_volatile"], ["volume_group", "thin_pool"]],
  ["callback", ["conf_id"], ["conf_id"]],
  ["zfs", ["revisions_to_keep", "container", "ephemeral_volatile", "snap_on_start_forensics"], ["container"]],
];

method("admin.pool.List", true, false, false, (c) => lines(c.app.pools.keys()));
method("admin.pool.ListDrivers", true, false, false, () => DRIVERS.map(([d, ps]) => `${d} ${ps.join(" ")}\n`).join(""));
method("admin.pool.Info", true, true, false, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const p = c.app.pools.get(c.arg)!;
  let out = Object.keys(p.config)
    .sort()
    .map((k) => `${k}=${p.config[k]}\n`)
    .join("");
  if (p.size !== undefined) out += `size=${p.size}\n`;
  if (p.usage !== undefined) out += `usage=${p.usage}\n`;
  if (p.includedIn) out += `included_in=${p.includedIn}\n`;
  return out;
});
method("admin.pool.UsageDetails", true, true, false, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const p = c.app.pools.get(c.arg)!;
  let out = "";
  if (p.size !== undefined) out += `data_size=${p.size}\n`;
  if (p.usage !== undefined) out += `data_usage=${p.usage}\n`;
  return out;
});
method("admin.pool.Add", true, true, true, (c) => {
  enforceArg(c, DRIVERS.map((d) => d[0]), "available drivers");
  if (!isAscii(c.payload)) throw protocolError("Pool parameters contains non-ASCII characters");
  const cfgLines = c.payload.toString("latin1").split(/\r\n|\n|\r/);
  if (cfgLines.length && cfgLines[cfgLines.length - 1] === "") cfgLines.pop();
  if (!cfgLines.every((l) => l.includes("="))) throw protocolError("Options must be separated by equal sign");
  const pairs = cfgLines.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as [string, string]);
  if (new Set(pairs.map((p) => p[0])).size !== pairs.length) throw protocolError("Options must be unique");
  const cfg = Object.fromEntries(pairs);
  if (!("name" in cfg)) throw protocolError("Pool configuration must contain key: name");
  const name = cfg.name!;
  delete cfg.name;
  if (!/^[A-Za-z0-9_.-]*$/.test(name)) throw protocolError("Pool name must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");
  const drv = DRIVERS.find((d) => d[0] === c.arg)!;
  if (Object.keys(cfg).some((k) => !drv[1].includes(k))) throw protocolError("Unexpected driver options found");
  const missing = drv[2].filter((k) => !(k in cfg));
  if (missing.length) throw qerr("QubesException", `missing required driver options: ${missing.join(" ")}`);
  if (c.app.pools.has(name)) throw qerr("QubesPoolInUseError", `Storage pool is in use: '${name}'`);
  const config: Record<string, string> = { driver: c.arg, name, ...cfg };
  if (drv[1].includes("revisions_to_keep") && !("revisions_to_keep" in config)) config.revisions_to_keep = "1";
  if (drv[1].includes("ephemeral_volatile") && !("ephemeral_volatile" in config)) config.ephemeral_volatile = "False";
  c.app.pools.set(name, { name, driver: c.arg, config, size: c.arg === "file" || c.arg === "file-reflink" ? 270553174016 : undefined, usage: c.arg === "file" || c.arg === "file-reflink" ? 0 : undefined, volumes: [] });
  c.app.emit("pool-add", [["pool", name]]);
  return null;
});
method("admin.pool.Remove", true, true, false, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const p = c.app.pools.get(c.arg)!;
  if (p.volumes.length) throw qerr("QubesPoolInUseError", `Storage pool is in use: '${c.arg}'`);
  for (const d of c.app.props()) if (c.app.getProp(d.name) === c.arg && !c.app.isDefault(d.name)) throw qerr("QubesPoolInUseError", `Storage pool is in use: '${c.arg}'`);
  c.app.emit("pool-pre-delete", [["pool", c.arg]]);
  c.app.pools.delete(c.arg);
  c.app.emit("pool-delete", [["pool", c.arg]]);
  return null;
});
method("admin.pool.volume.List", true, true, false, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  return lines(c.app.pools.get(c.arg)!.volumes);
});
method("admin.pool.Set.revisions_to_keep", true, true, true, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const n = validateNumber(c.payload, "revisions to keep", true);
  if (n < -1) throw protocolError("Value can't be lower than -1");
  c.app.pools.get(c.arg)!.config.revisions_to_keep = String(n);
  return null;
});
method("admin.pool.Set.ephemeral_volatile", true, true, true, (c) => {
  enforceArg(c, c.app.pools.keys(), "pools");
  const v = boolPayload(c.payload);
  c.app.pools.get(c.arg)!.config.ephemeral_volatile = v ? "True" : "False";
  return null;
});

function vol(c: CallContext): Volume {
  enforceArg(c, c.dest.volumes.keys(), `${c.dest.name} volumes`);
  return c.dest.volumes.get(c.arg)!;
}
method("admin.vm.volume.List", null, false, false, (c) => lines(c.dest.volumes.keys()));
method("admin.vm.volume.Info", null, true, false, (c) => {
  const v = vol(c);
  const b = (x: boolean) => (x ? "True" : "False");
  return (
    `pool=${v.pool}\nvid=${v.vid}\nsize=${v.size}\nusage=${v.usage}\nrw=${b(v.rw)}\nsource=${v.source}\npath=${v.path}\n` +
    `save_on_stop=${b(v.saveOnStop)}\nsnap_on_start=${b(v.snapOnStart)}\nrevisions_to_keep=${v.revisionsToKeep}\nephemeral=${b(v.ephemeral)}\nis_outdated=False\n`
  );
});
method("admin.vm.volume.ListSnapshots", null, true, false, (c) => (vol(c), ""));
method("admin.vm.volume.Revert", null, true, true, (c) => {
  vol(c);
  const rev = ascii(c.payload).trim();
  if (!/^[A-Za-z0-9:_.-]*$/.test(rev)) throw protocolError("Revision name must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.");
  // The simulator keeps no revisions: upstream raises a KeyError-only exception here.
  throw new SimAbort("QubesVolumeRevisionNotFoundError");
});
method("admin.vm.volume.CloneFrom", null, true, false, (c) => {
  vol(c);
  const t = c.app.newToken();
  c.app.cloneTokens.set(t, { qube: c.dest, volume: c.arg });
  return t;
});
method("admin.vm.volume.CloneTo", null, true, true, (c) => {
  const v = vol(c);
  if (!isAscii(c.payload)) throw protocolError("Token contains non-ASCII characters");
  const token = c.payload.toString("latin1").trim();
  const src = c.app.cloneTokens.get(token);
  if (!src) throw qerr("QubesVolumeCopyTokenNotFoundError", "'Token to clone volume of qube was not found'");
  c.app.cloneTokens.delete(token);
  const sv = src.qube.volumes.get(src.volume);
  if (!sv || !c.app.domains.has(src.qube.name)) throw new SimAbort("QubesVolumeNotFoundError");
  v.size = sv.size;
  return null;
});
method("admin.vm.volume.Resize", null, true, true, (c) => {
  const v = vol(c);
  v.size = validateNumber(Buffer.from(c.payload.toString("latin1").trim(), "latin1"), "volume size");
  return null;
});
method("admin.vm.volume.Clear", null, true, false, (c) => {
  const v = vol(c);
  if (c.dest.power !== "Halted") throw qerr("QubesVMNotHaltedError", `Domain is not powered off: '${c.dest.name}'`);
  c.dest.emit("domain-volume-import-begin", [["volume", c.arg], ["size", v.size]]);
  v.usage = 0;
  c.dest.emit("domain-volume-import-end", [["volume", c.arg], ["success", true]]);
  return null;
});
method("admin.vm.volume.Set.revisions_to_keep", null, true, true, (c) => {
  const v = vol(c);
  v.revisionsToKeep = validateNumber(c.payload, "revisions to keep", true);
  return null;
});
method("admin.vm.volume.Set.rw", null, true, true, (c) => {
  const v = vol(c);
  const b = boolPayload(c.payload);
  if (c.dest.power !== "Halted") throw qerr("QubesVMNotHaltedError", `Domain is not powered off: '${c.dest.name}'`);
  v.rw = b;
  return null;
});
method("admin.vm.volume.Set.ephemeral", null, true, true, (c) => {
  const v = vol(c);
  v.ephemeral = boolPayload(c.payload);
  return null;
});

// ---------------------------------------------------------------------------
// Firewall

function parseFirewallRule(line: string): string {
  const fail = (why: string): never => {
    throw new SimAbort(`ValueError: ${why}`);
  };
  let rest = line;
  let comment: string | undefined;
  const ci = rest.indexOf("comment=");
  if (ci >= 0) {
    comment = rest.slice(ci + 8);
    rest = rest.slice(0, ci);
    if (!/^[A-Za-z0-9:;,./_[\] -]*$/.test(comment)) fail("invalid comment");
  }
  const kv = new Map<string, string>();
  for (const tok of rest.split(" ").filter((t) => t)) {
    const eq = tok.indexOf("=");
    if (eq < 0) fail("invalid rule element");
    const k = tok.slice(0, eq);
    const v = tok.slice(eq + 1);
    if (kv.has(k)) fail("duplicated rule element");
    if (!/^[A-Za-z0-9:;,./_[\]-]*$/.test(v)) fail("invalid value");
    kv.set(k, v);
  }
  const out: string[] = [];
  const action = kv.get("action");
  if (action !== "accept" && action !== "drop") fail("invalid action");
  out.push(`action=${action}`);
  const hosts = ["dsthost", "dst4", "dst6", "dstname"].filter((k) => kv.has(k));
  if (hosts.length > 1) fail("multiple destinations");
  if (hosts.length) {
    const v = kv.get(hosts[0]!)!;
    const ip4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(v);
    if (ip4 && hosts[0] !== "dst6" && hosts[0] !== "dstname") {
      if ([1, 2, 3, 4].some((i) => Number(ip4[i]) > 255) || (ip4[5] !== undefined && Number(ip4[5]) > 32)) fail("invalid ip");
      out.push(`dst4=${ip4.slice(1, 5).join(".")}/${ip4[5] ?? "32"}`);
    } else if (v.includes(":") && hosts[0] !== "dst4" && hosts[0] !== "dstname") {
      const [addr, len] = v.split("/");
      if (!/^[0-9a-fA-F:]+$/.test(addr!)) fail("invalid ipv6");
      out.push(`dst6=${addr!.toLowerCase()}/${len ?? "128"}`);
    } else if (hosts[0] === "dsthost" || hosts[0] === "dstname") {
      if (!/^[a-z0-9._-]+$/.test(v)) fail("invalid hostname");
      out.push(`dsthost=${v}`);
    } else fail("invalid destination");
  }
  const proto = kv.get("proto");
  if (proto !== undefined) {
    if (!["tcp", "udp", "icmp"].includes(proto)) fail("invalid proto");
    out.push(`proto=${proto}`);
  }
  const st = kv.get("specialtarget");
  if (st !== undefined) {
    if (st !== "dns") fail("invalid specialtarget");
    out.push(`specialtarget=${st}`);
  }
  const ports = kv.get("dstports");
  if (ports !== undefined) {
    if (proto !== "tcp" && proto !== "udp") fail("dstports without tcp/udp");
    const m = /^(\d+)(?:-(\d+))?$/.exec(ports);
    if (!m) fail("invalid ports");
    const a = Number(m![1]);
    const b = Number(m![2] ?? m![1]);
    if (a > 65535 || b > 65535 || a > b) fail("invalid port range");
    out.push(`dstports=${a}-${b}`);
  }
  const icmp = kv.get("icmptype");
  if (icmp !== undefined) {
    if (proto !== "icmp") fail("icmptype without icmp");
    if (!/^\d+$/.test(icmp) || Number(icmp) > 255) fail("invalid icmptype");
    out.push(`icmptype=${Number(icmp)}`);
  }
  const expire = kv.get("expire");
  if (expire !== undefined) {
    if (!/^\+?\d+$/.test(expire)) fail("invalid expire");
    out.push(`expire=${expire.replace("+", "")}`);
  }
  for (const k of kv.keys())
    if (!["action", "dsthost", "dst4", "dst6", "dstname", "proto", "specialtarget", "dstports", "icmptype", "expire"].includes(k)) fail(`unknown rule element ${k}`);
  if (comment !== undefined) out.push(`comment=${comment}`);
  return out.join(" ");
}

method("admin.vm.firewall.Get", false, false, false, (c) => {
  const now = Date.now() / 1000;
  return lines(c.dest.firewall.filter((r) => {
    const m = / expire=(\d+)/.exec(r);
    return !m || Number(m[1]) > now;
  }));
});
method("admin.vm.firewall.Set", false, false, true, (c) => {
  if (!isAscii(c.payload)) throw protocolError("Rules contains non-ASCII characters");
  const rules = c.payload
    .toString("latin1")
    .split(/\r\n|\n|\r/)
    .filter((l, i, all) => !(l === "" && i === all.length - 1))
    .map(parseFirewallRule);
  c.dest.firewall = rules;
  c.dest.emit("firewall-changed");
  return null;
});
method("admin.vm.firewall.Reload", false, false, false, (c) => (c.dest.emit("firewall-changed"), null));

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
  if (!c.app.domains.has(backend)) throw qerr("QubesVMNotFoundError", `No such domain: '${backend}'`);
  const portId = portRaw === "_" ? "*" : portRaw;
  const deviceId = idParts.length === 0 ? "*" : idParts.join(":").replace(/_/g, "*") === "*" ? "*" : idParts.join(":");
  return { backend, portId, deviceId };
}

const ser = (s: string) => `'${s.replace(/'/g, "\\'")}'`;
function assignmentLine(a: Assignment, frontend: string): string {
  const parts = [
    `device_id=${ser(a.deviceId)}`,
    `port_id=${ser(a.portId)}`,
    `devclass=${ser(a.devclass)}`,
    `backend_domain=${ser(a.backend)}`,
    `mode=${ser(a.mode)}`,
    `frontend_domain=${ser(frontend)}`,
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
    if (attachedOnly) as = c.dest.power === "Running" ? as.filter((a) => a.mode !== "manual" && c.app.domains.get(a.backend)?.exposed.some((d) => d.portId === a.portId)) : [];
    if (c.arg) {
      const i = c.arg.indexOf("+");
      if (i < 0) throw new SimAbort("ValueError: not enough values to unpack");
      const [b, port] = [c.arg.slice(0, i), c.arg.slice(i + 1)];
      as = as.filter((a) => a.backend === b && a.portId === port);
    }
    const entries = as.map((a) => assignmentLine(attachedOnly ? { ...a, mode: a.mode } : a, c.dest.name));
    return entries.sort().map((l) => `${l}\n`).join("");
  };
  method(`${p}.Assigned`, null, null, false, (c) => listAssigned(c, false));
  method(`${p}.Attached`, null, null, false, (c) => listAssigned(c, true));
  const loadAssignment = (c: CallContext, requireMode: boolean) => {
    const dev = parseDeviceArg(c);
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
    const mode = props.get("mode") ?? (requireMode ? "auto-attach" : "manual");
    if (!["manual", "ask-to-attach", "auto-attach", "required"].includes(mode)) throw protocolError(`'${mode}' is not a valid AssignmentMode`);
    props.delete("mode");
    const fe = props.get("frontend_domain");
    if (fe !== undefined && fe !== c.dest.name) throw protocolError(`Got device assignment for ${fe} when expected ${c.dest.name}`);
    props.delete("frontend_domain");
    for (const k of props.keys()) throw protocolError(`DeviceAssignment.__init__() got an unexpected keyword argument '${k}'`);
    return { devclass: dc, backend: dev.backend, portId: dev.portId, deviceId: id, mode, options } satisfies Assignment;
  };
  method(`${p}.Assign`, null, true, true, (c) => {
    const a = loadAssignment(c, true);
    if (a.mode === "manual") throw protocolError("Cannot assign device in manual mode; attach it instead");
    if (c.dest.assignments.some((x) => x.devclass === dc && x.backend === a.backend && x.portId === a.portId && x.deviceId === a.deviceId))
      throw qerr("DeviceAlreadyAssigned", `device ${devRef(a)} of class ${dc} already assigned to ${c.dest.name}`);
    const kw: Array<[string, string]> = [["device", devRef(a)], ["options", pyDictRepr(a.options)]];
    c.dest.emit(`device-pre-assign:${dc}`, kw);
    c.dest.assignments.push(a);
    c.dest.emit(`device-assign:${dc}`, kw);
    return null;
  });
  method(`${p}.Unassign`, null, true, false, (c) => {
    const dev = parseDeviceArg(c);
    const i = c.dest.assignments.findIndex((x) => x.devclass === dc && x.backend === dev.backend && (dev.portId === "*" || x.portId === dev.portId) && (dev.deviceId === "*" || x.deviceId === dev.deviceId));
    if (i < 0) throw qerr("DeviceNotAssigned", `${dc} device ${devRef(dev)} not assigned to ${c.dest.name}`);
    const [a] = c.dest.assignments.splice(i, 1);
    c.dest.emit(`device-unassign:${dc}`, [["device", devRef(a!)]]);
    return null;
  });
  method(`${p}.Attach`, null, true, null, (c) => {
    const a = loadAssignment(c, false);
    if (c.dest.power !== "Running") throw qerr("QubesVMNotRunningError", `Domain not running (either powered off or paused): '${c.dest.name}'`);
    const kw: Array<[string, string]> = [["device", devRef(a)], ["options", pyDictRepr(a.options)]];
    c.dest.emit(`device-pre-attach:${dc}`, kw);
    c.dest.emit(`device-attach:${dc}`, kw);
    return null;
  });
  method(`${p}.Detach`, null, true, false, (c) => {
    const dev = parseDeviceArg(c);
    c.dest.emit(`device-pre-detach:${dc}`, [["port", `${dev.backend}:${dev.portId}`]]);
    c.dest.emit(`device-detach:${dc}`, [["port", `${dev.backend}:${dev.portId}`]]);
    return null;
  });
  method(`${p}.Set.assignment`, null, true, true, (c) => {
    const mode = { required: "required", "ask-to-attach": "ask-to-attach", "auto-attach": "auto-attach" }[c.payload.toString("latin1")];
    if (!mode || !isAscii(c.payload)) throw qerr("QubesUnrecognizedDeviceAssignmentMode", "Invalid assignment mode");
    const dev = parseDeviceArg(c);
    const a = c.dest.assignments.find((x) => x.devclass === dc && x.backend === dev.backend && x.portId === dev.portId && (dev.deviceId === "*" || x.deviceId === dev.deviceId));
    if (!a) throw qerr("DeviceNotAssigned", `${dc} device ${devRef(dev)} not assigned to ${c.dest.name}`);
    const kw: Array<[string, string]> = [["device", devRef(a)], ["options", pyDictRepr(a.options)]];
    c.dest.emit(`device-pre-assign:${dc}`, kw);
    a.mode = mode;
    c.dest.emit(`device-assignment-changed:${dc}`, [["device", devRef(a)]]);
    return null;
  });
}
for (const dc of DEVICE_CLASSES) deviceMethods(dc);

function interfacesFromBulk(s: string): string[] {
  if (s.length % 7 !== 0) throw new SimAbort("ValueError: invalid interface list");
  const out: string[] = [];
  for (let i = 0; i < s.length; i += 7) {
    const code = s.slice(i, i + 7);
    if (!/^[pubm?][0-9a-f*]{6}$/.test(code)) throw new SimAbort("ValueError: invalid interface");
    out.push(code);
  }
  return out;
}
method("admin.vm.device.denied.List", null, false, false, (c) => interfacesFromBulk(String(c.dest.getProp("devices_denied") ?? "")).join("\n"));
method("admin.vm.device.denied.Add", null, false, null, (c) => {
  if (!isAscii(c.payload)) throw protocolError("Device interface contains non-ASCII characters");
  const add = interfacesFromBulk(c.payload.toString("latin1"));
  if (new Set(add).size !== add.length) throw protocolError("Duplicated device interfaces in payload.");
  const cur = interfacesFromBulk(String(c.dest.getProp("devices_denied") ?? ""));
  const merged = [...new Set([...cur, ...add])].sort();
  const next = merged.join("");
  if (next !== c.dest.getProp("devices_denied")) c.dest.setProp("devices_denied", next);
  return null;
});
method("admin.vm.device.denied.Remove", null, false, null, (c) => {
  const cur = interfacesFromBulk(String(c.dest.getProp("devices_denied") ?? ""));
  if (!isAscii(c.payload)) throw protocolError("Device interface contains non-ASCII characters");
  const p = c.payload.toString("latin1");
  const rm = p === "all" ? [...cur] : interfacesFromBulk(p);
  if (new Set(rm).size !== rm.length) throw protocolError("Duplicated device interfaces in payload.");
  const next = cur.filter((x) => !rm.includes(x)).join("");
  if (next !== c.dest.getProp("devices_denied")) c.dest.setProp("devices_denied", next);
  return null;
});

// ---------------------------------------------------------------------------
// Events and stats

method("admin.Events", null, false, false, (c) => ({
  kind: "stream",
  start(send) {
    const filter = c.src.isAdminVM
      ? undefined
      : (subject: string | null, event: string, kwargs: ReadonlyArray<readonly [string, string]>) => {
          const vmArg = kwargs.find(([k]) => k === "vm");
          const dest = subject ?? (vmArg ? vmArg[1] : "@adminvm");
          return c.policyAllows("admin.Events", event.replace(/:/g, "_"), c.src.name, dest);
        };
    const listener = { qube: c.dest.name === "dom0" ? null : c.dest, filter, send };
    c.app.listeners.add(listener);
    send("", "connection-established", []);
    return () => {
      c.app.listeners.delete(listener);
    };
  },
}));

method("admin.vm.Stats", null, false, false, (c) => ({
  kind: "stream",
  start(send) {
    send("", "connection-established", []);
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = () => {
      if (stopped) return;
      const qubes = c.dest.name === "dom0" ? [...c.app.domains.values()] : [c.dest];
      for (const q of qubes) {
        if (q.power === "Halted" || !c.app.domains.has(q.name)) continue;
        const mem = q.isAdminVM ? c.app.host.dom0MemoryKiB : Number(q.getProp("memory")) * 1024;
        const cpus = q.isAdminVM ? c.app.host.cpus : Number(q.getProp("vcpus"));
        const ms = String(Math.round(process.uptime() * 1000));
        send(q.name, "vm-stats", [
          ["memory_kb", String(mem)],
          ["memory_assigned_total", String(mem)],
          ["memory_assigned_usable", String(mem)],
          ["memory_with_swap_used", String(mem)],
          ["cpu_time", ms],
          ["cpu_usage", "0"],
          ["online_vcpus", String(cpus)],
        ]);
      }
      const interval = Number(c.app.getProp("stats_interval") ?? 3);
      timer = setTimeout(tick, Math.max(0.05, interval) * 1000);
      timer.unref?.();
    };
    tick();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  },
}));

// ---------------------------------------------------------------------------
// Backup (profiles are not simulated: every profile is missing)

for (const name of ["admin.backup.Execute", "admin.backup.Info"]) {
  method(name, true, true, false, (c) => {
    if (c.arg.includes("/")) throw protocolError("Backup profile ID must not contain forward slash character");
    throw qerr("QubesBackupProfileNotFoundError", `Backup profile does not exist: ${c.arg}`);
  });
}
method("admin.backup.Cancel", true, true, false, (c) => {
  if (c.arg.includes("/")) throw protocolError("Backup profile ID must not contain forward slash character");
  throw qerr("QubesException", "Backup operation not running");
});
