/**
 * The property table of Qubes objects: for every qube class and for the
 * global (`admin.property.*`) holder, each property's name, wire type, access,
 * default (in words), help text, when a change takes effect, and the pure part
 * of qubesd's setter check (the value alone, no system state).
 *
 * One source of truth: the simulator (`sdk/src/sim/`), the template checker,
 * completion, hover, the JSON Schema and the planner's canonical comparison all
 * read this table. Checks that need the system (a netvm loop, "is that qube a
 * disposable template") live with their holders: the simulator for qubesd's
 * answers, the template checker for diagnostics.
 *
 * Pure: no IO.
 */
import { parseIPv4, parseIPv6 } from "./ipaddr.js";

/** The qube classes a stack may declare. */
export const DECLARABLE_CLASSES = ["AppVM", "TemplateVM", "StandaloneVM", "DispVM"] as const;
export type DeclarableClass = (typeof DECLARABLE_CLASSES)[number];

/** Every class of `admin.vmclass.List`, in its order. */
export const ALL_QUBE_CLASSES = ["AppVM", "TemplateVM", "StandaloneVM", "AdminVM", "DispVM", "RemoteVM"] as const;
export type QubeClass = (typeof ALL_QUBE_CLASSES)[number];

/** The wire type of a property, as `admin.vm.property.Get` reports it. */
export type PropertyType = "str" | "int" | "bool" | "vm" | "label";

/**
 * Who may write a property:
 * - `rw`: `property.Set` and `property.Reset`;
 * - `write-once`: set once (at creation), never changed;
 * - `read-only`: computed by qubesd (`stateless_property`), or refused by the setter.
 */
export type PropertyAccess = "rw" | "write-once" | "read-only";

/** When a change of the property takes effect on a running qube. */
export type PropertyEffect = "live" | "next-start" | "needs-halt" | "none";

/** The outcome of a pure value check: the normalised value, or qubesd's exception and message. */
export type ValueCheck = { ok: true; value: string | number | boolean | null } | { ok: false; error: string; message: string };

/** One property. */
export interface PropertySpec {
  readonly name: string;
  readonly type: PropertyType;
  readonly access: PropertyAccess;
  /** VM properties: `None` is a valid value. */
  readonly allowNone?: boolean;
  /** VM properties: the class the value must have. */
  readonly vmclass?: QubeClass;
  /** VM properties: the value must be a disposable template (`template_for_dispvms`). */
  readonly dispvmTemplate?: boolean;
  /** VM properties: the value must provide network. */
  readonly providesNetwork?: boolean;
  /** The default, in words (what `Reset` gives back). */
  readonly defaultText: string;
  /** qubesd's help text (`admin.vm.property.Help`). */
  readonly help: string;
  readonly effect: PropertyEffect;
  /**
   * The pure part of qubesd's setter for a value already parsed to the
   * property's type (ints are numbers, bools booleans, VM names strings,
   * `null` for None): the normalised value or the error qubesd answers.
   */
  readonly check?: (value: string | number | boolean | null) => ValueCheck;
}

const ok = (value: string | number | boolean | null): ValueCheck => ({ ok: true, value });
const fail = (error: string, message: string): ValueCheck => ({ ok: false, error, message });

function positive(name: string) {
  return (v: string | number | boolean | null): ValueCheck =>
    typeof v === "number" && v <= 0 ? fail("QubesPropertyValueError", `${name} must be positive`) : ok(v);
}

/** `qubes.vm.validate_name`: the error message, or `undefined` when the name is valid. */
export function qubeNameError(value: string): string | undefined {
  if (value.length > 31) return "VM name must be shorter than 32 characters";
  if (/^[0-9_.-]/.test(value)) return "VM name cannot start with hyphen, underscore, dot or numbers";
  if (!/^[a-zA-Z][a-zA-Z0-9_.-]*$/.test(value)) return "VM name contains illegal characters";
  if (value === "Domain-0") return "VM name cannot be 'Domain-0'";
  if (value === "none" || value === "default") return "VM name cannot be 'none' nor 'default'";
  if (value.endsWith("-dm")) return "VM name cannot end with -dm";
  return undefined;
}

/** Tag names qubesd accepts. */
export const TAG_PATTERN = /^[a-zA-Z0-9_-]+$/;
/** Feature names qubesd accepts. */
export const FEATURE_PATTERN = /^[a-zA-Z0-9_.-]+$/;
/** Label names: qubesd looks them up by name, or as `label-N` by index. */
export const LABEL_NAME_PATTERN = /^[a-zA-Z0-9_-]+$/;
/** Label colours for `admin.label.Create`. */
export const LABEL_COLOR_PATTERN = /^0x[0-9a-fA-F]{6}$/;
/** The eight standard labels, in index order. */
export const STANDARD_LABELS = ["red", "orange", "yellow", "green", "gray", "blue", "purple", "black"] as const;

/** The error for a `service.X` feature name, or `undefined`. */
export function serviceNameError(service: string): string | undefined {
  if (service === "" ) return "Service name cannot be empty";
  if (service.includes("/")) return "Service name cannot contain '/'";
  if (service === "." || service === "..") return "Service name cannot be '.' or '..'";
  if (utf8Length(service) > 48 && !service.startsWith("app-dispvm.")) return "Service name must be at most 48 bytes long";
  return undefined;
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

/** A feature value must be printable ASCII. */
export function featureValueError(value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return "Feature value must be printable ASCII";
  }
  return undefined;
}

/** Features qubesd refuses to change through the Admin API. */
export const PROTECTED_FEATURES: ReadonlySet<string> = new Set([
  "preload-dispvm",
  "preload-dispvm-completed",
  "preload-dispvm-in-progress",
  "deferred-netvm-original",
]);

/** Tags qubesd maintains on its own: never managed by a stack. */
export function isAutomaticTag(tag: string): boolean {
  return tag.startsWith("created-by-") || tag.startsWith("guivm-") || tag.startsWith("audiovm-");
}

// ---------------------------------------------------------------------------
// Help texts: what the real qubesd answers to `admin.vm.property.Help` and
// `admin.property.Help` (its docstrings through `qubes.utils.format_doc`,
// docutils' complaints included), recorded from qubesd; facts, not our words.

const ICON_DOC = "freedesktop icon name, suitable for use in :py:meth:`PyQt4.QtGui.QIcon.fromTheme`\n\n<string>:1: (INFO/1) No role entry for \"py:meth\" in module \"docutils.parsers.rst.languages.en\".\nTrying \"py:meth\" as canonical role name.\n\n<string>:1: (ERROR/3) Unknown interpreted text role \"py:meth\".";

/** Help texts of `QubesVM` properties (as an AppVM answers them). */
const VM_HELP: Readonly<Record<string, string>> = {
  audiovm: "VM used for Audio",
  autostart: "Setting this to True means that VM should be autostarted on dom0 boot.",
  backup_timestamp: "Time of last backup of the qube, in seconds since unix epoch",
  bootmode: "Active boot mode for this domain",
  debug: "Turns on debugging features.",
  default_dispvm: "Default disposable template to be used for spawning disposable qubes for service calls.",
  default_user: "Default user to start applications as. TemplateBasedVMs use its template's value by default.",
  devices_denied: "List of device interface codes that are denied for this VM.",
  dns: "DNS servers set up for this domain.",
  gateway: "Gateway for other domains that use this domain as netvm.",
  gateway6: "Gateway (IPv6) for other domains that use this domain as netvm.",
  guivm: "VM used for Gui",
  icon: "",
  include_in_backups: "If this domain is to be included in default backup.",
  installed_by_rpm: "If this domain's image was installed from package tracked by package manager.",
  ip: "IP address of this domain.",
  ip6: "IPv6 address of this domain.",
  kernel: "Kernel used by this domain. TemplateBasedVMs use its template's value by default.",
  kernelopts: "Kernel command line passed to domain. TemplateBasedVMs use its template's value by default.",
  keyboard_layout: "Keyboard layout for this VM",
  klass: "Domain class name",
  label: "Colourful label assigned to VM. This is where the colour of the padlock is set.",
  mac: "MAC address of the NIC emulated inside VM",
  management_dispvm: "Default disposable template to be used for spawning disposable qubes for managing this qube.",
  maxmem: "Maximum amount of memory available for this VM (for the purpose of the memory balancer). Set to 0 to disable memory balancing for this qube. TemplateBasedVMs use its template's value by default (unless memory balancing not supported for this qube).",
  memory: "Memory currently available for this VM. TemplateBasedVMs use its template's value by default.",
  name: "User-specified name of the domain.",
  netvm: "VM that provides network connection to this domain. When None, machine is disconnected. When absent, domain uses default NetVM.",
  provides_network: "If this domain can act as network provider (formerly known as NetVM or ProxyVM)",
  qid: "Internal, persistent identificator of particular domain. Note this is different from Xen domid.",
  qrexec_timeout: "Time in seconds after which qrexec connection attempt is deemed failed. Operating system inside VM should be able to boot in this time.",
  shutdown_timeout: "Time in seconds for shutdown of the VM, after which VM may be forcefully powered off. Operating system inside VM should be able to fully shutdown in this time.",
  start_time: "Tell when machine was started. :rtype: float or None",
  stubdom_mem: "Memory amount allocated for the stubdom",
  stubdom_uuid: "",
  stubdom_xid: "",
  template: "Template, on which this AppVM is based.",
  template_for_dispvms: "Should this VM be allowed to start as Disposable VM",
  updateable: "True if this machine may be updated on its own.",
  uuid: "UUID from libvirt.",
  vcpus: "Number of virtual CPUs for a qube. TemplateBasedVMs use its template's value by default.",
  virt_mode: "Virtualisation mode: full virtualisation (\"HVM\"), or paravirtualisation (\"PV\"), or hybrid (\"PVH\"). TemplateBasedVMs use its template's value by default.",
  visible_gateway: "Default gateway of this domain as seen by the domain.",
  visible_gateway6: "Default (IPv6) gateway of this domain as seen by the domain.",
  visible_ip: "IP address of this domain as seen by the domain.",
  visible_ip6: "IPv6 address of this domain as seen by the domain.",
  visible_netmask: "Netmask as seen by the domain.",
  xid: "Xen ID. Or not Xen, but ID.",
};

/** Where a class answers differently from {@link VM_HELP} (or has more properties). */
const CLASS_HELP: Readonly<Record<QubeClass, Readonly<Record<string, string>>>> = {
  AppVM: {
  },
  TemplateVM: {
    appvm_default_bootmode: "Default active bootmode for AppVMs based on this template",
    icon: ICON_DOC,
    netvm: "VM that provides network connection to this domain. When None, machine is disconnected.",
  },
  StandaloneVM: {
    icon: ICON_DOC,
  },
  AdminVM: {
    icon: ICON_DOC,
    maxmem: "Maximum amount of memory available for this VM",
    name: "",
    qid: "",
    uuid: "",
  },
  DispVM: {
    auto_cleanup: "automatically remove this qube upon shutdown",
    dispid: "Internal, persistent identifier of particular disposable.",
    icon: ICON_DOC,
    is_preload: "Check if qube is a preloaded disposable. :rtype: bool",
    template: "AppVM, on which this disposable is based.",
  },
  RemoteVM: {
    icon: ICON_DOC,
    relayvm: "Local qube used as relay.",
    remote_name: "Name on the remote host.",
    transport_rpc: "Transport RPC used by the relay.",
  },
};

/** Help texts of the global properties (`admin.property.Help`). */
const GLOBAL_HELP: Readonly<Record<string, string>> = {
  check_updates_vm: "Check for updates inside qubes",
  clockvm: "Which VM to use as NTP proxy for updating AdminVM",
  default_audiovm: "Default AudioVM for VMs.",
  default_dispvm: "Default disposable template to be used for spawning disposable qubes for service calls in this system.",
  default_guivm: "Default GuiVM for VMs.",
  default_kernel: "Which kernel to use when not overriden in VM",
  default_netvm: "Default NetVM for AppVMs. Initial state is None, which means that AppVMs are not connected to the Internet.",
  default_pool: "Default storage pool",
  default_pool_kernel: "Default storage pool for kernel volumes",
  default_pool_private: "Default storage pool for private volumes",
  default_pool_root: "Default storage pool for root volumes",
  default_pool_volatile: "Default storage pool for volatile volumes",
  default_qrexec_timeout: "Default time in seconds after which qrexec connection attempt is deemed failed",
  default_shutdown_timeout: "Default time in seconds for VM shutdown to complete",
  default_template: "Default template for new AppVMs",
  management_dispvm: "Default disposable template to be used for spawning disposable qubes for managing a qube in this system.",
  maxmem: "Maximum system memory.",
  no_cpus: "Quantity of CPUs",
  stats_interval: "Interval in seconds for VM stats reporting (memory, CPU usage)",
  updatevm: "Which VM to use as yum proxy for updating AdminVM and TemplateVMs",
};

/**
 * qubesd's help text of property `name` of a qube class (or of the global
 * holder with `klass = "@global"`), or `undefined` when qubesd has no such
 * property there.
 */
export function propertyHelp(klass: QubeClass | "@global", name: string): string | undefined {
  if (klass === "@global") return Object.hasOwn(GLOBAL_HELP, name) ? GLOBAL_HELP[name] : undefined;
  const own = CLASS_HELP[klass];
  if (own && Object.hasOwn(own, name)) return own[name];
  return Object.hasOwn(VM_HELP, name) ? VM_HELP[name] : undefined;
}

type SpecInit = Omit<PropertySpec, "access" | "effect" | "defaultText" | "help"> & Partial<Pick<PropertySpec, "access" | "effect" | "defaultText">>;
/** A writable property; its help text is filled in per class by {@link withHelp}. */
const S = (d: SpecInit): PropertySpec => ({ access: "rw", effect: "next-start", defaultText: "", help: "", ...d });
const RO = (name: string, type: PropertyType): PropertySpec => ({ name, type, access: "read-only", effect: "none", defaultText: "computed by qubesd", help: "" });

/** The list with qubesd's help texts of class `klass`. */
function withHelp(klass: QubeClass | "@global", list: readonly PropertySpec[]): PropertySpec[] {
  return list.map((p) => ({ ...p, help: propertyHelp(klass, p.name) ?? "" }));
}

function virtModeCheck(v: string | number | boolean | null): ValueCheck {
  const s = String(v).toLowerCase();
  return ["hvm", "pv", "pvh"].includes(s) ? ok(s) : fail("QubesPropertyValueError", "Invalid virtualization mode, supported values: hvm, pv, pvh");
}

function macCheck(v: string | number | boolean | null): ValueCheck {
  const s = String(v).toLowerCase();
  return /^([0-9a-f][0-9a-f]:){5}[0-9a-f][0-9a-f]$/.test(s) ? ok(s) : fail("ValueError", "Invalid MAC address value");
}

function kernelCheck(v: string | number | boolean | null): ValueCheck {
  if (!v) return ok("");
  return String(v).includes("/") ? fail("QubesPropertyValueError", "Kernel name cannot contain '/'") : ok(String(v));
}

/** The `ip` property's type, `ipaddress.IPv4Address`. */
function ipv4Check(v: string | number | boolean | null): ValueCheck {
  if (v === null) return ok(null);
  const a = parseIPv4(String(v));
  return a === undefined ? fail("QubesPropertyValueError", "Failed to parse property value as IPv4Address") : ok(a);
}

/** The `ip6` property's type, `ipaddress.IPv6Address`. */
function ipv6Check(v: string | number | boolean | null): ValueCheck {
  if (v === null) return ok(null);
  const a = parseIPv6(String(v));
  return a === undefined ? fail("QubesPropertyValueError", "Failed to parse property value as IPv6Address") : ok(a);
}

function userCheck(v: string | number | boolean | null): ValueCheck {
  return typeof v === "string" && !/^[A-Za-z0-9_\-+,.]*$/.test(v)
    ? fail("QubesPropertyValueError", "Username can contain only those characters: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,.")
    : ok(v);
}

/** qubesd's `_setter_kbd_layout`: `layout+variant+options`. */
function keyboardLayoutCheck(v: string | number | boolean | null): ValueCheck {
  const s = String(v);
  if (!/^[\x00-\x7f]*$/.test(s)) return fail("QubesPropertyValueError", "Keyboard layouts must be ASCII");
  const parts = s.split("+");
  if (parts.length !== 3) return fail("QubesPropertyValueError", "invalid number of keyboard layout parameters");
  if (!/^[A-Za-z]+$/.test(parts[0]!)) return fail("QubesPropertyValueError", "Invalid keyboard layout provided");
  if (!/^[A-Za-z0-9_-]*$/.test(parts[1]!)) return fail("QubesPropertyValueError", "Invalid layout variant provided");
  if (!/^[A-Za-z0-9_:,-]*$/.test(parts[2]!)) return fail("QubesPropertyValueError", "Invalid layout options provided");
  return ok(s);
}

/** Python's `repr()` of a str. */
function pyRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === q) out += `\\${q}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return q + out + q;
}

/**
 * qubesd's `_setter_denied_list`: 7-character interface codes, duplicates
 * dropped, sorted, then checked against `([bump*][0-9a-f*]{6})*`.
 */
function devicesDeniedCheck(v: string | number | boolean | null): ValueCheck {
  if (!v) return ok("");
  const s = String(v);
  if (s.length % 7 !== 0) return fail("QubesValueError", `Invalid length of interfaces=${pyRepr(s)} (is ${s.length}, expected multiple of 7)`);
  const codes = [...new Set(s.match(/[\s\S]{7}/g) ?? [])].sort();
  const joined = codes.join("");
  if (!/^(?:[bump*][0-9a-f*]{6})*$/.test(joined))
    return fail(
      "QubesPropertyValueError",
      'Interface code list should be in the form chhhhhhchhhhhh...,where c is one of "b", "u", "m", "p", "*" and h is a hexdigit or "*".',
    );
  return ok(joined);
}

/** Properties of every QubesVM class (AppVM, TemplateVM, StandaloneVM, DispVM). */
const QUBESVM: PropertySpec[] = [
  S({ name: "audiovm", type: "vm", allowNone: true, defaultText: "the global default_audiovm", effect: "next-start" }),
  S({ name: "autostart", type: "bool", defaultText: "False", effect: "live" }),
  S({ name: "backup_timestamp", type: "int", allowNone: true, defaultText: "None", effect: "none" }),
  S({ name: "bootmode", type: "str", defaultText: "default", effect: "next-start" }),
  S({ name: "debug", type: "bool", defaultText: "False", effect: "next-start" }),
  S({ name: "default_dispvm", type: "vm", allowNone: true, dispvmTemplate: true, defaultText: "the global default_dispvm", effect: "live" }),
  S({ name: "default_user", type: "str", defaultText: "the template's, else user", effect: "next-start", check: userCheck }),
  S({ name: "devices_denied", type: "str", defaultText: "'' (nothing denied)", effect: "live", check: devicesDeniedCheck }),
  RO("dns", "str"),
  RO("gateway", "str"),
  RO("gateway6", "str"),
  RO("icon", "str"),
  S({ name: "include_in_backups", type: "bool", defaultText: "True (DispVM: not auto_cleanup)", effect: "live" }),
  S({ name: "installed_by_rpm", type: "bool", defaultText: "False", effect: "none" }),
  S({ name: "ip", type: "str", allowNone: true, defaultText: "computed from the qube's id", effect: "next-start", check: ipv4Check }),
  S({ name: "ip6", type: "str", allowNone: true, defaultText: "computed (with feature ipv6)", effect: "next-start", check: ipv6Check }),
  S({ name: "kernel", type: "str", allowNone: true, defaultText: "the template's, else the global default_kernel", effect: "next-start", check: kernelCheck }),
  S({ name: "kernelopts", type: "str", defaultText: "the kernel's default options", effect: "next-start" }),
  S({ name: "keyboard_layout", type: "str", defaultText: "the GUI qube's, else us++", effect: "live", check: keyboardLayoutCheck }),
  RO("klass", "str"),
  S({ name: "label", type: "label", defaultText: "(required at creation)", effect: "live" }),
  S({ name: "mac", type: "str", defaultText: "00:16:3e:5e:6c:00", effect: "next-start", check: macCheck }),
  S({ name: "management_dispvm", type: "vm", allowNone: true, dispvmTemplate: true, defaultText: "the template's, else the global management_dispvm", effect: "live" }),
  S({ name: "maxmem", type: "int", defaultText: "the template's, else computed from memory", effect: "needs-halt", check: (v) => (typeof v === "number" && v < 0 ? fail("QubesPropertyValueError", "maxmem must be positive or zero") : ok(v)) }),
  S({ name: "memory", type: "int", defaultText: "the template's, else 400", effect: "next-start", check: positive("memory") }),
  { name: "name", type: "str", access: "write-once", effect: "none", defaultText: "(required)", help: "" },
  S({ name: "netvm", type: "vm", allowNone: true, providesNetwork: true, defaultText: "the global default_netvm (TemplateVM: none)", effect: "live" }),
  S({ name: "provides_network", type: "bool", defaultText: "False", effect: "live" }),
  { name: "qid", type: "int", access: "write-once", effect: "none", defaultText: "(assigned)", help: "" },
  S({ name: "qrexec_timeout", type: "int", defaultText: "the template's, else the global default_qrexec_timeout", effect: "next-start", check: positive("qrexec_timeout") }),
  S({ name: "shutdown_timeout", type: "int", defaultText: "the template's, else the global default_shutdown_timeout", effect: "next-start", check: positive("shutdown_timeout") }),
  RO("start_time", "str"),
  S({ name: "stubdom_mem", type: "int", allowNone: true, defaultText: "None", effect: "next-start", check: positive("stubdom_mem") }),
  RO("stubdom_uuid", "str"),
  RO("stubdom_xid", "int"),
  RO("updateable", "bool"),
  { name: "uuid", type: "str", access: "write-once", effect: "none", defaultText: "(assigned)", help: "" },
  S({ name: "vcpus", type: "int", defaultText: "the template's, else 2", effect: "next-start", check: positive("vcpus") }),
  S({ name: "virt_mode", type: "str", defaultText: "hvm with PCI devices, else the template's, else pvh", effect: "next-start", check: virtModeCheck }),
  RO("visible_gateway", "str"),
  RO("visible_gateway6", "str"),
  RO("visible_ip", "str"),
  RO("visible_ip6", "str"),
  RO("visible_netmask", "str"),
  RO("xid", "int"),
  S({ name: "guivm", type: "vm", allowNone: true, defaultText: "the global default_guivm", effect: "next-start" }),
];

const TEMPLATE_FOR_DISPVMS = S({ name: "template_for_dispvms", type: "bool", defaultText: "False", effect: "live" });

function sorted(klass: QubeClass | "@global", list: PropertySpec[]): readonly PropertySpec[] {
  return withHelp(klass, list).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Properties per qube class (sorted by name). */
export const QUBE_PROPERTIES: Readonly<Record<DeclarableClass, readonly PropertySpec[]>> = {
  AppVM: sorted("AppVM", [
    ...QUBESVM,
    TEMPLATE_FOR_DISPVMS,
    { name: "template", type: "vm", access: "rw", vmclass: "TemplateVM", effect: "needs-halt", defaultText: "the global default_template (cannot be reset)", help: "" },
  ]),
  TemplateVM: sorted("TemplateVM", [
    ...QUBESVM,
    S({ name: "appvm_default_bootmode", type: "str", defaultText: "default", effect: "none" }),
  ]),
  StandaloneVM: sorted("StandaloneVM", [...QUBESVM, TEMPLATE_FOR_DISPVMS]),
  DispVM: sorted("DispVM", [
    ...QUBESVM,
    { name: "template", type: "vm", access: "rw", dispvmTemplate: true, effect: "needs-halt", defaultText: "(required at creation; cannot be reset)", help: "" },
    { name: "dispid", type: "int", access: "write-once", effect: "none", defaultText: "(assigned)", help: "" },
    S({ name: "auto_cleanup", type: "bool", defaultText: "False (True for CreateDisposable)", effect: "live" }),
    RO("is_preload", "bool"),
  ]),
};

/** Global properties (`admin.property.*`), sorted by name. */
export const GLOBAL_PROPERTIES: readonly PropertySpec[] = sorted("@global", [
  S({ name: "check_updates_vm", type: "bool", defaultText: "True", effect: "live" }),
  S({ name: "clockvm", type: "vm", allowNone: true, defaultText: "None", effect: "live" }),
  S({ name: "default_audiovm", type: "vm", allowNone: true, defaultText: "dom0", effect: "next-start" }),
  S({ name: "default_dispvm", type: "vm", allowNone: true, dispvmTemplate: true, defaultText: "None", effect: "live" }),
  S({ name: "default_guivm", type: "vm", allowNone: true, defaultText: "dom0", effect: "next-start" }),
  S({ name: "default_kernel", type: "str", allowNone: true, defaultText: "none: qubesd has no default for it (the installer sets it), so it cannot be reset", effect: "next-start" }),
  S({ name: "default_netvm", type: "vm", allowNone: true, providesNetwork: true, defaultText: "None", effect: "live" }),
  S({ name: "default_pool", type: "str", defaultText: "the pool of the default installation", effect: "none" }),
  S({ name: "default_pool_kernel", type: "str", defaultText: "default_pool", effect: "none" }),
  S({ name: "default_pool_private", type: "str", defaultText: "default_pool", effect: "none" }),
  S({ name: "default_pool_root", type: "str", defaultText: "default_pool", effect: "none" }),
  S({ name: "default_pool_volatile", type: "str", defaultText: "default_pool", effect: "none" }),
  S({ name: "default_qrexec_timeout", type: "int", defaultText: "60", effect: "next-start" }),
  S({ name: "default_shutdown_timeout", type: "int", defaultText: "60", effect: "next-start" }),
  S({ name: "default_template", type: "vm", allowNone: true, vmclass: "TemplateVM", defaultText: "None", effect: "none" }),
  S({ name: "management_dispvm", type: "vm", allowNone: true, dispvmTemplate: true, defaultText: "None", effect: "live" }),
  RO("maxmem", "int"),
  RO("no_cpus", "int"),
  S({ name: "stats_interval", type: "int", defaultText: "3", effect: "live" }),
  S({ name: "updatevm", type: "vm", allowNone: true, defaultText: "None", effect: "live" }),
]);

const INDEX = new Map<string, Map<string, PropertySpec>>();
for (const [klass, list] of Object.entries(QUBE_PROPERTIES)) INDEX.set(klass, new Map(list.map((p) => [p.name, p])));
INDEX.set("@global", new Map(GLOBAL_PROPERTIES.map((p) => [p.name, p])));

/** The property `name` of a qube class, or of the global holder with `klass = "@global"`. */
export function propertySpec(klass: DeclarableClass | "@global", name: string): PropertySpec | undefined {
  return INDEX.get(klass)?.get(name);
}

/**
 * Whether qubesd refuses or fails a reset (`default`) of the property: a
 * qube's `template` and `label` cannot be unset ("Cannot unset template"),
 * and the global `default_kernel` has no default, so resetting it makes
 * qubesd fail while it saves qubes.xml (every qube's kernel volume reads it:
 * "property 'default_kernel' have no default"), with the reset already made.
 */
export function cannotReset(klass: DeclarableClass | "@global", name: string): boolean {
  return klass === "@global" ? name === "default_kernel" : name === "template" || name === "label";
}

/** The writable properties (`rw`) of a qube class or the global holder. */
export function writableProperties(klass: DeclarableClass | "@global"): PropertySpec[] {
  return [...(INDEX.get(klass)?.values() ?? [])].filter((p) => p.access === "rw");
}

/** Classes that have a `template` property. */
export function hasTemplate(klass: string): boolean {
  return klass === "AppVM" || klass === "DispVM";
}
