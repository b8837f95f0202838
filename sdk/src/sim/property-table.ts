/**
 * The simulator's property definitions per qube class and for the global
 * holder: qubesd's load order, defaults that look at the system, and the
 * setters' checks. Help texts and pure value checks come from the shared
 * table in `@qubes-kit/language` (`language/src/qubes/properties.ts`).
 */
import { Qube, type App, type PropDef, type PropValue } from "./model.js";
import { propertySpec } from "@qubes-kit/language";
import { SimAbort, pyStrRepr, qerr } from "./wire.js";

type DefaultFn<H> = (holder: H) => PropValue | undefined;

/**
 * The pure part of qubesd's setter of QubesVM property `name`, from the
 * shared property table; a Python `ValueError` there is an unhandled
 * exception in qubesd (the connection closes without a reply).
 */
function pure(name: string): (h: unknown, v: PropValue) => PropValue {
  const check = propertySpec("AppVM", name)?.check;
  if (!check) throw new Error(`no value check for ${name} in the property table`);
  return (_h, v) => {
    const r = check(v);
    if (r.ok) return r.value;
    if (r.error === "ValueError") throw new SimAbort(`ValueError: ${r.message}`);
    throw qerr(r.error, r.message);
  };
}

/** `qubes.app.validate_kernel`: the kernel must be installed in dom0. */
function installedKernel(app: App, _prop: string, v: PropValue): PropValue {
  if (v && !app.kernels.has(String(v))) throw qerr("QubesPropertyValueError", `Kernel ${pyStrRepr(String(v))} not installed`);
  return v;
}

/** `_setter_default_netvm`: no qube using the default may end up in a loop. */
function defaultNetvmSetter(app: App, v: PropValue): PropValue {
  if (v === null) return v;
  const net = app.domains.get(String(v));
  if (!net) return v;
  for (const q of app.domains.values()) {
    if (!q.hasProp("netvm") || !q.isDefault("netvm")) continue;
    if (net === q || app.connectedTransitively(q, net)) throw qerr("QubesPropertyValueError", `Network loop on '${q.name}'`);
  }
  return v;
}

/** Qubes whose default keyboard_layout is being evaluated (a guivm chain that comes back is a loop). */
const keyboardLayoutPending = new Set<Qube>();

/**
 * `keyboard_layout`'s default: the guivm's layout (`getattr(self.guivm, "keyboard_layout", "us++")`). A guivm
 * chain that loops recurses without end in qubesd: a RecursionError, which no reply survives.
 */
function keyboardLayoutDefault(q: Qube): PropValue | undefined {
  const g = q.vmProp("guivm");
  if (!g) return "us++";
  if (keyboardLayoutPending.has(q)) throw new SimAbort("RecursionError: maximum recursion depth exceeded (a guivm loop)");
  keyboardLayoutPending.add(q);
  try {
    const v = g.getProp("keyboard_layout");
    return typeof v === "string" ? v : "us++";
  } finally {
    keyboardLayoutPending.delete(q);
  }
}

// ---------------------------------------------------------------------------
// Property tables

type Q = Qube;

function tplOr(prop: string, fallback: (q: Q) => PropValue | undefined): DefaultFn<Q> {
  return (q) => {
    const t = q.templateQube();
    if (t && t.hasProp(prop)) {
      const v = t.getProp(prop);
      if (v !== undefined) return v;
    }
    return fallback(q);
  };
}

/**
 * `self.netvm.X if self.netvm else None`: None without a netvm; with dom0 as netvm (the global
 * `default_netvm` may be set to it) an AttributeError, no value, as an AdminVM has none of the
 * network attributes.
 */
function netvmAttr(q: Q, read: (n: Q) => PropValue | undefined): PropValue | undefined {
  const n = q.netvmQube();
  if (n === undefined) return null;
  return n.isAdminVM ? undefined : read(n);
}

function qubesVmProps(): PropDef<Q>[] {
  const P = (d: Omit<PropDef<Q>, "stage"> & { stage?: number }): PropDef<Q> => ({ stage: 2, ...d });
  return [
    P({ name: "autostart", type: "bool", pyType: "bool", default: () => false }),
    P({ name: "backup_timestamp", type: "int", pyType: "int", default: () => null }),
    P({ name: "debug", type: "bool", pyType: "bool", default: () => false }),
    P({
      name: "default_user",
      type: "str",
      pyType: "str",
      default: tplOr("default_user", () => "user"),
      setter: pure("default_user"),
    }),
    P({ name: "devices_denied", type: "str", pyType: "str", default: () => "", setter: pure("devices_denied") }),
    P({ name: "dns", type: "str", stateless: (q) => (q.netvmQube() || q.getProp("provides_network") ? "10.139.1.1 10.139.1.2" : null) }),
    P({ name: "gateway", type: "str", stateless: (q) => (q.getProp("provides_network") ? q.visibleIp() : null) }),
    P({ name: "gateway6", type: "str", stateless: (q) => q.gateway6() }),
    P({ name: "icon", type: "str", stateless: (q) => q.icon() }),
    P({ name: "include_in_backups", type: "bool", pyType: "bool", default: (q) => (q.klass === "DispVM" ? !q.getProp("auto_cleanup") : true) }),
    P({ name: "installed_by_rpm", type: "bool", pyType: "bool", default: () => false }),
    P({ name: "ip", type: "str", pyType: "ipv4", default: (q) => q.defaultIp() }),
    P({ name: "ip6", type: "str", pyType: "ipv6", default: (q) => q.defaultIp6() }),
    P({
      name: "kernel",
      type: "str",
      pyType: "str",
      default: tplOr("kernel", (q) => q.app.getProp("default_kernel") ?? undefined),
      setter: (q, v) => installedKernel(q.app, "kernel", pure("kernel")(q, v)),
    }),
    P({ name: "keyboard_layout", type: "str", pyType: "str", setter: pure("keyboard_layout"), default: keyboardLayoutDefault }),
    P({ name: "klass", type: "str", stateless: (q) => q.klass }),
    P({ name: "label", type: "label" }),
    P({
      name: "mac",
      type: "str",
      pyType: "str",
      default: () => "00:16:3e:5e:6c:00",
      setter: pure("mac"),
    }),
    // `_default_maxmem`: 0 when memory balancing is impossible, which qubesd decides first (before the
    // template's value) and which is always so off Xen (`vmm.is_xen` false), as where the simulator's
    // reference qubesd runs
    P({ name: "maxmem", type: "int", pyType: "int", default: () => 0, setter: pure("maxmem") }),
    P({ name: "memory", type: "int", pyType: "int", default: tplOr("memory", () => 400), setter: pure("memory") }),
    P({ name: "name", type: "str", pyType: "str", writeOnce: true }),
    P({
      name: "provides_network",
      type: "bool",
      pyType: "bool",
      default: () => false,
      setter: (q, v) => {
        if (v === false && q.connectedQubes().length > 0)
          throw qerr("QubesValueError", "The qube is still used by other qubes, change theirs 'netvm' first");
        return v;
      },
    }),
    P({ name: "qid", type: "int", pyType: "int", writeOnce: true }),
    P({ name: "qrexec_timeout", type: "int", pyType: "int", default: tplOr("qrexec_timeout", (q) => q.app.getProp("default_qrexec_timeout") ?? 60), setter: pure("qrexec_timeout") }),
    P({ name: "shutdown_timeout", type: "int", pyType: "int", default: tplOr("shutdown_timeout", (q) => q.app.getProp("default_shutdown_timeout") ?? 60), setter: pure("shutdown_timeout") }),
    P({ name: "start_time", type: "str", stateless: (q) => (q.power === "Halted" ? null : q.startTime) }),
    P({ name: "stubdom_mem", type: "int", pyType: "int", default: () => null, setter: pure("stubdom_mem") }),
    P({ name: "stubdom_uuid", type: "str", stateless: () => "" }),
    P({ name: "stubdom_xid", type: "int", stateless: () => -1 }),
    P({ name: "updateable", type: "bool", forbidden: true, default: (q) => !q.hasProp("template") }),
    P({ name: "uuid", type: "str", pyType: "uuid", writeOnce: true }),
    P({ name: "vcpus", type: "int", pyType: "int", default: tplOr("vcpus", () => 2), setter: pure("vcpus") }),
    P({
      name: "virt_mode",
      type: "str",
      pyType: "str",
      default: (q) => (q.assignments.some((a) => a.devclass === "pci") ? "hvm" : (q.templateQube()?.getProp("virt_mode") as string | undefined) ?? "pvh"),
      setter: (q, v) => {
        const mode = pure("virt_mode")(q, v);
        // `_setter_virt_mode`: PVH cannot pass PCI devices through
        if (mode === "pvh" && q.assignments.some((a) => a.devclass === "pci"))
          throw qerr("QubesPropertyValueError", "pvh mode can't be set if pci devices are assigned");
        return mode;
      },
    }),
    // `net.fake-gateway` (with the template's), else the netvm's `gateway`; dom0 as netvm has none (AttributeError: no value).
    P({ name: "visible_gateway", type: "str", stateless: (q) => q.featureWithTemplate("net.fake-gateway") || netvmAttr(q, (n) => n.stateless("gateway")) }),
    P({ name: "visible_gateway6", type: "str", stateless: (q) => (q.featureWithNetvm("ipv6") ? netvmAttr(q, (n) => n.gateway6()) : null) }),
    P({ name: "visible_ip", type: "str", stateless: (q) => q.visibleIp() }),
    P({ name: "visible_ip6", type: "str", stateless: (q) => q.getProp("ip6") as string | null | undefined }),
    P({ name: "visible_netmask", type: "str", stateless: (q) => q.featureWithTemplate("net.fake-netmask") || netvmAttr(q, (n) => (n.isNetworked() ? "255.255.255.255" : null)) }),
    P({ name: "xid", type: "int", stateless: (q) => (q.power === "Halted" ? -1 : q.xid) }),
    P({ name: "audiovm", type: "vm", stage: 4, allowNone: true, default: (q) => q.app.getProp("default_audiovm") ?? null }),
    P({ name: "bootmode", type: "str", stage: 4, pyType: "str", default: () => "default" }),
    P({ name: "default_dispvm", type: "vm", stage: 4, allowNone: true, default: (q) => (q.klass === "DispVM" ? (q.getProp("template") ?? null) : (q.app.getProp("default_dispvm") ?? null)), setter: dispvmTemplateSetter }),
    P({ name: "guivm", type: "vm", stage: 4, allowNone: true, default: (q) => q.app.getProp("default_guivm") ?? null }),
    P({ name: "kernelopts", type: "str", stage: 4, pyType: "str", default: defaultKernelopts }),
    P({ name: "management_dispvm", type: "vm", stage: 4, allowNone: true, default: tplOr("management_dispvm", (q) => q.app.getProp("management_dispvm") ?? null), setter: dispvmTemplateSetter }),
    P({ name: "netvm", type: "vm", stage: 4, allowNone: true, default: (q) => (q.klass === "TemplateVM" ? null : (q.app.getProp("default_netvm") ?? null)), setter: netvmSetter }),
  ];
}

/** `_default_kernelopts`: none without a kernel; with PCI devices the PCI default; else the template's, else the built-in default. */
function defaultKernelopts(q: Qube): PropValue | undefined {
  const kernel = q.getProp("kernel");
  // `self.kernel` raises AttributeError when it falls back to a global default_kernel that has no value
  if (kernel === undefined) return undefined;
  if (!kernel) return "";
  // `storage.kernels_dir` of a kernel volume outside a linux-kernel pool: an AttributeError, so no value
  const kv = q.volumes.get("kernel");
  if (kv && q.app.pools.get(kv.pool)?.driver !== "linux-kernel") return undefined;
  if (q.assignments.some((a) => a.devclass === "pci")) return "";
  // `self.template.kernelopts`, unless that raises AttributeError
  const tk = q.templateQube()?.getProp("kernelopts");
  if (tk !== undefined) return tk;
  return "swiotlb=2048";
}

/** `DispVM.template`'s setter (`_setter_template`): only a disposable template. */
function dispTemplateSetter(q: Qube, v: PropValue): PropValue {
  if (q.app.domains.get(String(v))?.getProp("template_for_dispvms") !== true)
    throw qerr("QubesPropertyValueError", "template for disposable must have template_for_dispvms=True");
  return v;
}

/** `qubes.vm.setter_disposable_template`. */
function dispvmTemplateSetter(h: Qube | App, v: PropValue, name?: string): PropValue {
  if (typeof v === "string") {
    const t = h.app.domains.get(v);
    if (!t) return v;
    // `assert isinstance(value, QubesVM)`: qubesd dies on dom0
    if (t.isAdminVM) throw new SimAbort("AssertionError: disposable template is not a QubesVM");
    if (t.getProp("template_for_dispvms") !== true) {
      const target = h instanceof Qube ? `qube '${h.name}'` : "system";
      throw qerr("QubesPropertyValueError", `Cannot set invalid property to ${target}, ${name} '${v}' has template_for_dispvms set to False`);
    }
  }
  return v;
}

function netvmSetter(q: Qube, v: PropValue): PropValue {
  if (v === null) return v;
  const n = q.app.domains.get(String(v))!;
  // `value.provides_network` on dom0: AdminVM has no such attribute
  if (n.isAdminVM) throw new SimAbort("AttributeError: 'AdminVM' object has no attribute 'provides_network'");
  if (!n.getProp("provides_network")) throw qerr("QubesValueError", `The ${n.name} qube does not provide network`);
  if (n === q || q.app.connectedTransitively(q, n)) throw qerr("QubesValueError", "Loops in network are unsupported");
  return v;
}

const QUBESVM_PROPS = qubesVmProps();
const byName = (list: PropDef<Q>[], drop: string[] = []) => list.filter((p) => !drop.includes(p.name));

function sortProps<H>(list: PropDef<H>[]): PropDef<H>[] {
  return [...list].sort((a, b) => a.stage - b.stage || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const TEMPLATE_FOR_DISPVMS: PropDef<Q> = { name: "template_for_dispvms", type: "bool", pyType: "bool", stage: 2, default: () => false };

/** Property tables per VM class, already in qubesd's `sorted()` order. */
export const VM_PROPS: Record<string, PropDef<Q>[]> = {
  AppVM: sortProps([
    ...QUBESVM_PROPS,
    TEMPLATE_FOR_DISPVMS,
    { name: "template", type: "vm", stage: 4, vmclass: "TemplateVM" },
  ]),
  TemplateVM: sortProps([
    ...byName(QUBESVM_PROPS),
    { name: "appvm_default_bootmode", type: "str", pyType: "str", stage: 4, default: () => "default" },
  ]),
  StandaloneVM: sortProps([...QUBESVM_PROPS, TEMPLATE_FOR_DISPVMS]),
  DispVM: sortProps([
    ...QUBESVM_PROPS,
    { name: "template", type: "vm", stage: 4, setter: dispTemplateSetter },
    { name: "dispid", type: "int", pyType: "int", stage: 2, writeOnce: true },
    { name: "auto_cleanup", type: "bool", pyType: "bool", stage: 2, default: () => false },
    { name: "is_preload", type: "bool", stage: 2, stateless: () => false },
  ]),
  AdminVM: sortProps([
    { name: "devices_denied", type: "str", pyType: "str", stage: 2, default: () => "", setter: pure("devices_denied") },
    { name: "icon", type: "str", stage: 2, stateless: () => "adminvm-black" },
    { name: "include_in_backups", type: "bool", pyType: "bool", stage: 2, default: () => true },
    { name: "keyboard_layout", type: "str", pyType: "str", stage: 2, default: () => "us++", setter: pure("keyboard_layout") },
    { name: "klass", type: "str", stage: 2, stateless: () => "AdminVM" },
    { name: "label", type: "label", stage: 2 },
    { name: "maxmem", type: "int", stage: 2, forbidden: true, default: () => 4096 },
    { name: "name", type: "str", stage: 2, forbidden: true, default: () => "dom0" },
    { name: "qid", type: "int", stage: 2, forbidden: true, default: () => 0 },
    { name: "updateable", type: "bool", stage: 2, forbidden: true, default: () => true },
    { name: "uuid", type: "str", stage: 2, forbidden: true, default: () => "00000000-0000-0000-0000-000000000000" },
    { name: "default_dispvm", type: "vm", stage: 4, allowNone: true, default: (q) => q.app.getProp("default_dispvm") ?? null, setter: dispvmTemplateSetter },
  ]),
  RemoteVM: sortProps([
    { name: "uuid", type: "str", pyType: "str", stage: 2, writeOnce: true },
    { name: "name", type: "str", pyType: "str", stage: 2, writeOnce: true },
    { name: "qid", type: "int", pyType: "int", stage: 2, writeOnce: true },
    { name: "label", type: "label", stage: 2 },
    { name: "icon", type: "str", stage: 2, stateless: (q) => q.icon() },
    { name: "klass", type: "str", stage: 2, stateless: () => "RemoteVM" },
    { name: "include_in_backups", type: "bool", pyType: "bool", stage: 2, default: () => false },
    { name: "transport_rpc", type: "str", pyType: "str", stage: 2, default: () => null },
    { name: "remote_name", type: "str", pyType: "str", stage: 2, default: () => null },
    { name: "relayvm", type: "vm", stage: 4, allowNone: true, default: () => null },
  ]),
};

type A = App;
const G = (d: Omit<PropDef<A>, "stage">): PropDef<A> => ({ stage: 3, ...d });
const poolSetter = (a: A, v: PropValue): PropValue => {
  if (!a.pools.has(String(v))) throw qerr("QubesPropertyValueError", "No such storage pool");
  return v;
};

/** Global properties, in qubesd's order. */
export const APP_PROPS: PropDef<A>[] = sortProps([
  G({ name: "check_updates_vm", type: "bool", pyType: "bool", default: () => true }),
  G({ name: "clockvm", type: "vm", allowNone: true, default: () => null }),
  G({ name: "default_audiovm", type: "vm", allowNone: true, default: (a) => (a.domains.has("dom0") ? "dom0" : null) }),
  G({ name: "default_dispvm", type: "vm", allowNone: true, default: () => null, setter: dispvmTemplateSetter }),
  G({ name: "default_guivm", type: "vm", allowNone: true, default: (a) => (a.domains.has("dom0") ? "dom0" : null) }),
  G({ name: "default_kernel", type: "str", pyType: "none", setter: (a, v) => installedKernel(a, "default_kernel", v) }),
  G({ name: "default_netvm", type: "vm", allowNone: true, default: () => null, setter: defaultNetvmSetter }),
  G({ name: "default_pool", type: "str", pyType: "none", default: () => "varlibqubes", setter: poolSetter }),
  G({ name: "default_pool_kernel", type: "str", pyType: "none", default: (a) => a.getProp("default_pool") ?? undefined, setter: poolSetter }),
  G({ name: "default_pool_private", type: "str", pyType: "none", default: (a) => a.getProp("default_pool") ?? undefined, setter: poolSetter }),
  G({ name: "default_pool_root", type: "str", pyType: "none", default: (a) => a.getProp("default_pool") ?? undefined, setter: poolSetter }),
  G({ name: "default_pool_volatile", type: "str", pyType: "none", default: (a) => a.getProp("default_pool") ?? undefined, setter: poolSetter }),
  G({ name: "default_qrexec_timeout", type: "int", pyType: "int", default: () => 60 }),
  G({ name: "default_shutdown_timeout", type: "int", pyType: "int", default: () => 60 }),
  G({ name: "default_template", type: "vm", allowNone: true, vmclass: "TemplateVM" }),
  G({ name: "management_dispvm", type: "vm", allowNone: true, default: () => null, setter: dispvmTemplateSetter }),
  G({ name: "maxmem", type: "int", forbidden: true, default: (a) => a.host.memoryMiB }),
  G({ name: "no_cpus", type: "int", forbidden: true, default: (a) => a.host.cpus }),
  G({ name: "stats_interval", type: "int", pyType: "int", default: () => 3 }),
  G({ name: "updatevm", type: "vm", allowNone: true, default: () => null }),
]);
