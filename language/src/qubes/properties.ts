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

const HELP = {
  netvm:
    "VM that provides network connection to this domain. When None, machine is disconnected. When absent, domain uses default NetVM.",
  default_netvm:
    "Default NetVM for AppVMs. Initial state is None, which means that AppVMs are not connected to the Internet.",
} as const;

type SpecInit = Omit<PropertySpec, "access" | "effect" | "defaultText"> & Partial<Pick<PropertySpec, "access" | "effect" | "defaultText">>;
const S = (d: SpecInit): PropertySpec => ({ access: "rw", effect: "next-start", defaultText: "", ...d });
const RO = (name: string, type: PropertyType, help: string): PropertySpec => ({ name, type, access: "read-only", effect: "none", defaultText: "computed by qubesd", help });

function virtModeCheck(v: string | number | boolean | null): ValueCheck {
  const s = String(v).toLowerCase();
  return ["hvm", "pv", "pvh"].includes(s) ? ok(s) : fail("QubesPropertyValueError", "Invalid virtualization mode, supported values: hvm, pv, pvh");
}

function macCheck(v: string | number | boolean | null): ValueCheck {
  const s = String(v).toLowerCase();
  return /^([0-9a-f][0-9a-f]:){5}[0-9a-f][0-9a-f]$/.test(s) ? ok(s) : fail("ValueError", "Invalid MAC address value");
}

function kernelCheck(v: string | number | boolean | null): ValueCheck {
  return typeof v === "string" && v.includes("/") ? fail("QubesPropertyValueError", "Kernel name cannot contain '/'") : ok(v);
}

function userCheck(v: string | number | boolean | null): ValueCheck {
  return typeof v === "string" && !/^[A-Za-z0-9_\-+,.]*$/.test(v)
    ? fail("QubesPropertyValueError", "Username can contain only those characters: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,.")
    : ok(v);
}

function keyboardLayoutCheck(v: string | number | boolean | null): ValueCheck {
  const s = String(v);
  const parts = s.split("+");
  if (parts.length !== 3 || !/^[\x20-\x7e]*$/.test(s) || !/^[A-Za-z]+$/.test(parts[0]!))
    return fail("QubesValueError", "Invalid keyboard layout provided");
  return ok(s);
}

function devicesDeniedCheck(v: string | number | boolean | null): ValueCheck {
  const s = String(v);
  if (s.length % 7 !== 0 || !/^(?:[bump*][0-9a-f*]{6})*$/.test(s)) return fail("QubesValueError", "Invalid list of device interfaces");
  const codes = [...new Set(s.match(/.{7}/g) ?? [])].sort();
  return ok(codes.join(""));
}

/** Properties of every QubesVM class (AppVM, TemplateVM, StandaloneVM, DispVM). */
const QUBESVM: PropertySpec[] = [
  S({ name: "audiovm", type: "vm", allowNone: true, defaultText: "the global default_audiovm", help: "VM used for audio", effect: "next-start" }),
  S({ name: "autostart", type: "bool", defaultText: "False", help: "Setting this to True means that VM should be autostarted on dom0 boot.", effect: "live" }),
  S({ name: "backup_timestamp", type: "int", allowNone: true, defaultText: "None", help: "Time of last backup of the qube, in seconds since unix epoch", effect: "none" }),
  S({ name: "bootmode", type: "str", defaultText: "default", help: "Boot mode of this qube.", effect: "next-start" }),
  S({ name: "debug", type: "bool", defaultText: "False", help: "Turns on debugging features.", effect: "next-start" }),
  S({ name: "default_dispvm", type: "vm", allowNone: true, dispvmTemplate: true, defaultText: "the global default_dispvm", help: "Default VM to be used as Disposable VM for service calls.", effect: "live" }),
  S({ name: "default_user", type: "str", defaultText: "the template's, else user", help: "Default user to start applications as. TemplateVM or template-based VM inherit this value from their template.", effect: "next-start", check: userCheck }),
  S({ name: "devices_denied", type: "str", defaultText: "'' (nothing denied)", help: "Device interfaces that may not be attached to this qube.", effect: "live", check: devicesDeniedCheck }),
  RO("dns", "str", "DNS servers set up for this domain."),
  RO("gateway", "str", "Gateway for other domains that use this domain as netvm."),
  RO("gateway6", "str", "Gateway (IPv6) for other domains that use this domain as netvm."),
  RO("icon", "str", "Name of the icon of this qube."),
  S({ name: "include_in_backups", type: "bool", defaultText: "True (DispVM: not auto_cleanup)", help: "If this domain is to be included in default backup.", effect: "live" }),
  S({ name: "installed_by_rpm", type: "bool", defaultText: "False", help: "If this domain's image was installed from package tracked by package manager.", effect: "none" }),
  S({ name: "ip", type: "str", allowNone: true, defaultText: "computed from the qube's id", help: "IP address of this domain.", effect: "next-start" }),
  S({ name: "ip6", type: "str", allowNone: true, defaultText: "computed (with feature ipv6)", help: "IPv6 address of this domain.", effect: "next-start" }),
  S({ name: "kernel", type: "str", allowNone: true, defaultText: "the template's, else the global default_kernel", help: "Kernel used by this domain. TemplateVM or template-based VM inherit this value from their template.", effect: "next-start", check: kernelCheck }),
  S({ name: "kernelopts", type: "str", defaultText: "the kernel's default options", help: "Kernel command line passed to domain. TemplateVM or template-based VM inherit this value from their template.", effect: "next-start" }),
  S({ name: "keyboard_layout", type: "str", defaultText: "the GUI qube's, else us++", help: "Keyboard layout for this VM", effect: "live", check: keyboardLayoutCheck }),
  RO("klass", "str", "Class of this qube."),
  S({ name: "label", type: "label", defaultText: "(required at creation)", help: "Colourful label assigned to VM. This is where the colour of the padlock is set.", effect: "live" }),
  S({ name: "mac", type: "str", defaultText: "00:16:3e:5e:6c:00", help: "MAC address of the NIC emulated inside VM", effect: "next-start", check: macCheck }),
  S({ name: "management_dispvm", type: "vm", allowNone: true, dispvmTemplate: true, defaultText: "the template's, else the global management_dispvm", help: "Default DVM template for Disposable VM for managing this VM.", effect: "live" }),
  S({ name: "maxmem", type: "int", defaultText: "the template's, else computed from memory", help: "Maximum amount of memory available for this VM (for the purpose of the memory balancer). Set to 0 to disable memory balancing for this qube. TemplateVM or template-based VM inherit this value from their template.", effect: "needs-halt", check: (v) => (typeof v === "number" && v < 0 ? fail("QubesPropertyValueError", "maxmem must be positive or zero") : ok(v)) }),
  S({ name: "memory", type: "int", defaultText: "the template's, else 400", help: "Memory currently available for this VM. TemplateVM or template-based VM inherit this value from their template.", effect: "next-start", check: positive("memory") }),
  { name: "name", type: "str", access: "write-once", effect: "none", defaultText: "(required)", help: "User-specified name of the domain." },
  S({ name: "netvm", type: "vm", allowNone: true, providesNetwork: true, defaultText: "the global default_netvm (TemplateVM: none)", help: HELP.netvm, effect: "live" }),
  S({ name: "provides_network", type: "bool", defaultText: "False", help: "If this domain can act as network provider (formerly known as NetVM or ProxyVM)", effect: "live" }),
  { name: "qid", type: "int", access: "write-once", effect: "none", defaultText: "(assigned)", help: "Internal, persistent identificator of particular domain. Note this is different from Xen domid." },
  S({ name: "qrexec_timeout", type: "int", defaultText: "the template's, else the global default_qrexec_timeout", help: "Time in seconds after which qrexec connection attempt is deemed failed. Operating system inside VM should be able to boot in this time.", effect: "next-start", check: positive("qrexec_timeout") }),
  S({ name: "shutdown_timeout", type: "int", defaultText: "the template's, else the global default_shutdown_timeout", help: "Time in seconds for shutdown of the VM, after which VM may be forcefully powered off.", effect: "next-start", check: positive("shutdown_timeout") }),
  RO("start_time", "str", "Tell when machine was started."),
  S({ name: "stubdom_mem", type: "int", allowNone: true, defaultText: "None", help: "Memory amount allocated for the stubdom", effect: "next-start", check: positive("stubdom_mem") }),
  RO("stubdom_uuid", "str", "Stub domain UUID."),
  RO("stubdom_xid", "int", "Stub domain ID."),
  RO("updateable", "bool", "True if this machine may be updated on its own."),
  { name: "uuid", type: "str", access: "write-once", effect: "none", defaultText: "(assigned)", help: "UUID from libvirt." },
  S({ name: "vcpus", type: "int", defaultText: "the template's, else 2", help: "Number of virtual CPUs for a qube. TemplateVM or template-based VM inherit this value from their template.", effect: "next-start", check: positive("vcpus") }),
  S({ name: "virt_mode", type: "str", defaultText: "hvm with PCI devices, else the template's, else pvh", help: "Virtualisation mode: full virtualisation (\"HVM\"), or paravirtualisation (\"PV\"), or hybrid (\"PVH\"). TemplateVM or template-based VM inherit this value from their template.", effect: "next-start", check: virtModeCheck }),
  RO("visible_gateway", "str", "Default gateway of this domain."),
  RO("visible_gateway6", "str", "Default (IPv6) gateway of this domain."),
  RO("visible_ip", "str", "IP address of this domain as seen by the domain."),
  RO("visible_ip6", "str", "IPv6 address of this domain as seen by the domain."),
  RO("visible_netmask", "str", "Netmask as seen by the domain."),
  RO("xid", "int", "Xen ID."),
  S({ name: "guivm", type: "vm", allowNone: true, defaultText: "the global default_guivm", help: "VM used for Gui", effect: "next-start" }),
];

const TEMPLATE_FOR_DISPVMS = S({ name: "template_for_dispvms", type: "bool", defaultText: "False", help: "Should this VM be allowed to start as Disposable VM", effect: "live" });

function sorted(list: PropertySpec[]): readonly PropertySpec[] {
  return [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Properties per qube class (sorted by name). */
export const QUBE_PROPERTIES: Readonly<Record<DeclarableClass, readonly PropertySpec[]>> = {
  AppVM: sorted([
    ...QUBESVM,
    TEMPLATE_FOR_DISPVMS,
    { name: "template", type: "vm", access: "rw", vmclass: "TemplateVM", effect: "needs-halt", defaultText: "the global default_template (cannot be reset)", help: "Template, on which this domain is based." },
  ]),
  TemplateVM: sorted([
    ...QUBESVM,
    S({ name: "appvm_default_bootmode", type: "str", defaultText: "default", help: "Default boot mode for qubes based on this template.", effect: "none" }),
  ]),
  StandaloneVM: sorted([...QUBESVM, TEMPLATE_FOR_DISPVMS]),
  DispVM: sorted([
    ...QUBESVM,
    { name: "template", type: "vm", access: "rw", dispvmTemplate: true, effect: "needs-halt", defaultText: "(required at creation; cannot be reset)", help: "Template, on which this domain is based." },
    { name: "dispid", type: "int", access: "write-once", effect: "none", defaultText: "(assigned)", help: "Internal, persistent identifier of particular DispVM." },
    S({ name: "auto_cleanup", type: "bool", defaultText: "False (True for CreateDisposable)", help: "automatically remove this VM upon shutdown", effect: "live" }),
    RO("is_preload", "bool", "Whether this disposable was preloaded."),
  ]),
};

/** Global properties (`admin.property.*`), sorted by name. */
export const GLOBAL_PROPERTIES: readonly PropertySpec[] = sorted([
  S({ name: "check_updates_vm", type: "bool", defaultText: "True", help: "Check for updates inside qubes", effect: "live" }),
  S({ name: "clockvm", type: "vm", allowNone: true, defaultText: "None", help: "Which VM to use as NTP proxy for updating AdminVM", effect: "live" }),
  S({ name: "default_audiovm", type: "vm", allowNone: true, defaultText: "dom0", help: "Default AudioVM for VMs.", effect: "next-start" }),
  S({ name: "default_dispvm", type: "vm", allowNone: true, dispvmTemplate: true, defaultText: "None", help: "Default DispVM base for service calls", effect: "live" }),
  S({ name: "default_guivm", type: "vm", allowNone: true, defaultText: "dom0", help: "Default GuiVM for VMs.", effect: "next-start" }),
  S({ name: "default_kernel", type: "str", allowNone: true, defaultText: "the newest installed kernel", help: "Which kernel to use when not overriden in VM", effect: "next-start", check: kernelCheck }),
  S({ name: "default_netvm", type: "vm", allowNone: true, providesNetwork: true, defaultText: "None", help: HELP.default_netvm, effect: "live" }),
  S({ name: "default_pool", type: "str", defaultText: "the pool of the default installation", help: "Default storage pool", effect: "none" }),
  S({ name: "default_pool_kernel", type: "str", defaultText: "default_pool", help: "Default storage pool for kernel volumes", effect: "none" }),
  S({ name: "default_pool_private", type: "str", defaultText: "default_pool", help: "Default storage pool for private volumes", effect: "none" }),
  S({ name: "default_pool_root", type: "str", defaultText: "default_pool", help: "Default storage pool for root volumes", effect: "none" }),
  S({ name: "default_pool_volatile", type: "str", defaultText: "default_pool", help: "Default storage pool for volatile volumes", effect: "none" }),
  S({ name: "default_qrexec_timeout", type: "int", defaultText: "60", help: "Default time in seconds after which qrexec connection attempt is deemed failed", effect: "next-start", check: positive("default_qrexec_timeout") }),
  S({ name: "default_shutdown_timeout", type: "int", defaultText: "60", help: "Default time in seconds for VM shutdown to complete", effect: "next-start", check: positive("default_shutdown_timeout") }),
  S({ name: "default_template", type: "vm", allowNone: true, vmclass: "TemplateVM", defaultText: "None", help: "Default template for new AppVMs", effect: "none" }),
  S({ name: "management_dispvm", type: "vm", allowNone: true, dispvmTemplate: true, defaultText: "None", help: "Default DVM template for management DispVMs", effect: "live" }),
  RO("maxmem", "int", "Maximum memory of the system (read-only)."),
  RO("no_cpus", "int", "Number of CPUs of the system (read-only)."),
  S({ name: "stats_interval", type: "int", defaultText: "3", help: "Interval in seconds for VM stats reporting (memory, CPU usage)", effect: "live" }),
  S({ name: "updatevm", type: "vm", allowNone: true, defaultText: "None", help: "Which VM to use as `yum` proxy for updating AdminVM and TemplateVMs", effect: "live" }),
]);

const INDEX = new Map<string, Map<string, PropertySpec>>();
for (const [klass, list] of Object.entries(QUBE_PROPERTIES)) INDEX.set(klass, new Map(list.map((p) => [p.name, p])));
INDEX.set("@global", new Map(GLOBAL_PROPERTIES.map((p) => [p.name, p])));

/** The property `name` of a qube class, or of the global holder with `klass = "@global"`. */
export function propertySpec(klass: DeclarableClass | "@global", name: string): PropertySpec | undefined {
  return INDEX.get(klass)?.get(name);
}

/** The writable properties (`rw`) of a qube class or the global holder. */
export function writableProperties(klass: DeclarableClass | "@global"): PropertySpec[] {
  return [...(INDEX.get(klass)?.values() ?? [])].filter((p) => p.access === "rw");
}

/** Classes that have a `template` property. */
export function hasTemplate(klass: string): boolean {
  return klass === "AppVM" || klass === "DispVM";
}
