/**
 * The simulator's property definitions per qube class and for the global
 * holder: qubesd's load order, defaults that look at the system, and the
 * setters' checks. Help texts and pure value checks come from the shared
 * table in `@qubes-kit/language` (`language/src/qubes/properties.ts`).
 */
import type { App, PropDef, PropValue, Qube } from "./model.js";
import { SimAbort, qerr } from "./wire.js";

type DefaultFn<H> = (holder: H) => PropValue | undefined;

function positiveInt(name: string) {
  return (h: { describe(): string }, v: PropValue): PropValue => {
    if (typeof v === "number" && v <= 0) throw qerr("QubesPropertyValueError", `${name} must be positive`);
    return v;
  };
}
function nonNegativeInt(name: string) {
  return (_h: unknown, v: PropValue): PropValue => {
    if (typeof v === "number" && v < 0) throw qerr("QubesPropertyValueError", `${name} must be positive or zero`);
    return v;
  };
}

// ---------------------------------------------------------------------------
// Property tables

/** Help texts: the two that the golden transcripts show verbatim, our own words for the rest. */
const HELP: Record<string, string> = {
  "vm.netvm":
    "VM that provides network connection to this domain. When None, machine is disconnected. When absent, domain uses default NetVM.",
  "app.default_netvm":
    "Default NetVM for AppVMs. Initial state is None, which means that AppVMs are not connected to the Internet.",
};
function help(scope: "vm" | "app", name: string, fallback: string): string {
  return HELP[`${scope}.${name}`] ?? fallback;
}

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

function qubesVmProps(): PropDef<Q>[] {
  const P = (d: Omit<PropDef<Q>, "stage" | "help"> & { stage?: number; help?: string }): PropDef<Q> => ({
    stage: 2,
    help: help("vm", d.name, `The ${d.name.replace(/_/g, " ")} of this qube.`),
    ...d,
  });
  return [
    P({ name: "autostart", type: "bool", pyType: "bool", default: () => false, help: "Start this qube at system boot." }),
    P({ name: "backup_timestamp", type: "int", pyType: "int", default: () => null, help: "Time of the last backup of this qube (seconds since the epoch)." }),
    P({ name: "debug", type: "bool", pyType: "bool", default: () => false, help: "Turn on debug mode: more verbose logs and the console stays open." }),
    P({
      name: "default_user",
      type: "str",
      pyType: "str",
      default: tplOr("default_user", () => "user"),
      setter: (_q, v) => {
        if (typeof v === "string" && !/^[A-Za-z0-9_\-+,.]*$/.test(v))
          throw qerr("QubesPropertyValueError", "Username can contain only those characters: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,.");
        return v;
      },
      help: "Default user used to run commands in this qube.",
    }),
    P({ name: "devices_denied", type: "str", pyType: "str", default: () => "", help: "Device interfaces that may not be attached to this qube." }),
    P({ name: "dns", type: "str", stateless: (q) => (q.netvmQube() || q.getProp("provides_network") ? "10.139.1.1 10.139.1.2" : null), help: "DNS servers this qube is configured with." }),
    P({ name: "gateway", type: "str", stateless: (q) => (q.getProp("provides_network") ? q.visibleIp() : null), help: "Gateway for qubes connected to this one." }),
    P({ name: "gateway6", type: "str", stateless: () => null, help: "IPv6 gateway for qubes connected to this one." }),
    P({ name: "icon", type: "str", stateless: (q) => q.icon(), help: "Freedesktop icon name of this qube." }),
    P({ name: "include_in_backups", type: "bool", pyType: "bool", default: (q) => (q.klass === "DispVM" ? !q.getProp("auto_cleanup") : true), help: "Include this qube in backups by default." }),
    P({ name: "installed_by_rpm", type: "bool", pyType: "bool", default: () => false, help: "Whether this qube was installed by a package manager." }),
    P({ name: "ip", type: "str", pyType: "ip", default: (q) => q.defaultIp(), help: "IP address of this qube." }),
    P({ name: "ip6", type: "str", pyType: "ip", default: () => null, help: "IPv6 address of this qube." }),
    P({
      name: "kernel",
      type: "str",
      pyType: "str",
      default: tplOr("kernel", (q) => q.app.getProp("default_kernel") ?? undefined),
      setter: (_q, v) => {
        if (typeof v === "string" && v.includes("/")) throw qerr("QubesPropertyValueError", "Kernel name cannot contain '/'");
        return v;
      },
      help: "Kernel used by this qube (empty: the one inside the qube).",
    }),
    P({ name: "keyboard_layout", type: "str", pyType: "str", default: (q) => {
      const g = q.vmProp("guivm");
      const v = g ? g.getProp("keyboard_layout") : undefined;
      return typeof v === "string" ? v : "us++";
    }, help: "Keyboard layout of this qube (layout+variant+options)." }),
    P({ name: "klass", type: "str", stateless: (q) => q.klass, help: "Class of this qube." }),
    P({ name: "label", type: "label", help: "Colourful label assigned to this qube." }),
    P({
      name: "mac",
      type: "str",
      pyType: "str",
      default: () => "00:16:3e:5e:6c:00",
      setter: (_q, v) => {
        const s = String(v).toLowerCase();
        if (!/^([0-9a-f][0-9a-f]:){5}[0-9a-f][0-9a-f]$/.test(s)) throw new SimAbort("ValueError: Invalid MAC address value");
        return s;
      },
      help: "MAC address of the emulated network card.",
    }),
    P({ name: "maxmem", type: "int", pyType: "int", default: tplOr("maxmem", () => 0), setter: nonNegativeInt("maxmem"), help: "Maximum memory (MiB) the memory balancer may give this qube." }),
    P({ name: "memory", type: "int", pyType: "int", default: tplOr("memory", () => 400), setter: positiveInt("memory"), help: "Memory (MiB) allocated at start." }),
    P({ name: "name", type: "str", pyType: "str", writeOnce: true, help: "User-facing name of this qube." }),
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
      help: "Whether this qube provides network to other qubes.",
    }),
    P({ name: "qid", type: "int", pyType: "int", writeOnce: true, help: "Internal, persistent identifier of this qube." }),
    P({ name: "qrexec_timeout", type: "int", pyType: "int", default: tplOr("qrexec_timeout", (q) => q.app.getProp("default_qrexec_timeout") ?? 60), setter: positiveInt("qrexec_timeout"), help: "Seconds to wait for the qrexec agent at start." }),
    P({ name: "shutdown_timeout", type: "int", pyType: "int", default: tplOr("shutdown_timeout", (q) => q.app.getProp("default_shutdown_timeout") ?? 60), setter: positiveInt("shutdown_timeout"), help: "Seconds to wait for a clean shutdown." }),
    P({ name: "start_time", type: "str", stateless: (q) => (q.power === "Halted" ? null : q.startTime), help: "When this qube was started." }),
    P({ name: "stubdom_mem", type: "int", pyType: "int", default: () => null, setter: positiveInt("stubdom_mem"), help: "Memory (MiB) of the stub domain." }),
    P({ name: "stubdom_uuid", type: "str", stateless: () => null, help: "UUID of the stub domain, if any." }),
    P({ name: "stubdom_xid", type: "int", stateless: () => -1, help: "Xen id of the stub domain, or -1." }),
    P({ name: "updateable", type: "bool", forbidden: true, default: (q) => !q.hasProp("template"), help: "Whether this qube keeps its root filesystem (can be updated)." }),
    P({ name: "uuid", type: "str", pyType: "str", writeOnce: true, help: "UUID of this qube." }),
    P({ name: "vcpus", type: "int", pyType: "int", default: tplOr("vcpus", () => 2), setter: positiveInt("vcpus"), help: "Number of virtual CPUs." }),
    P({
      name: "virt_mode",
      type: "str",
      pyType: "str",
      default: (q) => (q.assignments.some((a) => a.devclass === "pci") ? "hvm" : (q.templateQube()?.getProp("virt_mode") as string | undefined) ?? "pvh"),
      setter: (_q, v) => {
        const s = String(v).toLowerCase();
        if (!["hvm", "pv", "pvh"].includes(s)) throw qerr("QubesPropertyValueError", `Invalid virtualization mode, supported values: hvm, pv, pvh`);
        return s;
      },
      help: "Virtualisation mode: hvm, pv or pvh.",
    }),
    P({ name: "visible_gateway", type: "str", stateless: (q) => q.netvmQube()?.stateless("gateway") ?? null, help: "Default gateway of this qube." }),
    P({ name: "visible_gateway6", type: "str", stateless: () => null, help: "Default IPv6 gateway of this qube." }),
    P({ name: "visible_ip", type: "str", stateless: (q) => q.visibleIp(), help: "IP address as seen from inside this qube." }),
    P({ name: "visible_ip6", type: "str", stateless: () => null, help: "IPv6 address as seen from inside this qube." }),
    P({ name: "visible_netmask", type: "str", stateless: (q) => (q.netvmQube()?.isNetworked() ? "255.255.255.255" : null), help: "Netmask as seen from inside this qube." }),
    P({ name: "xid", type: "int", stateless: (q) => (q.power === "Halted" ? -1 : q.xid), help: "Xen id of this qube, or -1 when not running." }),
    P({ name: "audiovm", type: "vm", stage: 4, allowNone: true, default: (q) => q.app.getProp("default_audiovm") ?? null, help: "Qube that provides audio to this one." }),
    P({ name: "bootmode", type: "str", stage: 4, pyType: "str", default: () => "default", help: "Boot mode of this qube." }),
    P({ name: "default_dispvm", type: "vm", stage: 4, allowNone: true, default: (q) => (q.klass === "DispVM" ? (q.getProp("template") ?? null) : (q.app.getProp("default_dispvm") ?? null)), setter: dispvmTemplateSetter, help: "Default disposable template for calls from this qube." }),
    P({ name: "guivm", type: "vm", stage: 4, allowNone: true, default: (q) => q.app.getProp("default_guivm") ?? null, help: "Qube that provides the GUI of this one." }),
    P({ name: "kernelopts", type: "str", stage: 4, pyType: "str", default: (q) => (q.getProp("kernel") ? (q.assignments.some((a) => a.devclass === "pci") ? "" : "swiotlb=2048") : ""), help: "Kernel command line options." }),
    P({ name: "management_dispvm", type: "vm", stage: 4, allowNone: true, default: tplOr("management_dispvm", (q) => q.app.getProp("management_dispvm") ?? null), setter: dispvmTemplateSetter, help: "Disposable template used for management of this qube." }),
    P({ name: "netvm", type: "vm", stage: 4, allowNone: true, default: (q) => (q.klass === "TemplateVM" ? null : (q.app.getProp("default_netvm") ?? null)), setter: netvmSetter }),
  ];
}

function dispvmTemplateSetter(q: { app: App }, v: PropValue): PropValue {
  if (typeof v === "string") {
    const t = q.app.domains.get(v);
    if (t && !(t.klass === "AppVM" && t.getProp("template_for_dispvms") === true) && !(t.klass === "StandaloneVM" && t.getProp("template_for_dispvms") === true))
      throw qerr("QubesPropertyValueError", `VM ${v} is not allowed to create disposable qubes`);
  }
  return v;
}

function netvmSetter(q: Qube, v: PropValue): PropValue {
  if (v === null) return v;
  const n = q.app.domains.get(String(v))!;
  if (!n.getProp("provides_network")) throw qerr("QubesValueError", `The ${n.name} qube does not provide network`);
  if (n === q || q.app.connectedTransitively(q).includes(n)) throw qerr("QubesValueError", "Loops in network are unsupported");
  return v;
}

const QUBESVM_PROPS = qubesVmProps();
const byName = (list: PropDef<Q>[], drop: string[] = []) => list.filter((p) => !drop.includes(p.name));

function sortProps<H>(list: PropDef<H>[]): PropDef<H>[] {
  return [...list].sort((a, b) => a.stage - b.stage || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const TEMPLATE_FOR_DISPVMS: PropDef<Q> = { name: "template_for_dispvms", type: "bool", pyType: "bool", stage: 2, default: () => false, help: "Whether disposable qubes may be created from this qube." };

/** Property tables per VM class, already in qubesd's `sorted()` order. */
export const VM_PROPS: Record<string, PropDef<Q>[]> = {
  AppVM: sortProps([
    ...QUBESVM_PROPS,
    TEMPLATE_FOR_DISPVMS,
    { name: "template", type: "vm", stage: 4, vmclass: "TemplateVM", help: "Template this qube is based on." },
  ]),
  TemplateVM: sortProps([
    ...byName(QUBESVM_PROPS),
    { name: "appvm_default_bootmode", type: "str", pyType: "str", stage: 4, default: () => "default", help: "Default boot mode of qubes based on this template." },
  ]),
  StandaloneVM: sortProps([...QUBESVM_PROPS, TEMPLATE_FOR_DISPVMS]),
  DispVM: sortProps([
    ...QUBESVM_PROPS,
    { name: "template", type: "vm", stage: 4, help: "Disposable template this disposable is based on." },
    { name: "dispid", type: "int", pyType: "int", stage: 2, writeOnce: true, help: "Internal, persistent identifier of this disposable." },
    { name: "auto_cleanup", type: "bool", pyType: "bool", stage: 2, default: () => false, help: "Remove this disposable when it shuts down." },
    { name: "is_preload", type: "bool", stage: 2, stateless: () => false, help: "Whether this disposable was preloaded." },
  ]),
  AdminVM: sortProps([
    { name: "devices_denied", type: "str", pyType: "str", stage: 2, default: () => "", help: "Device interfaces that may not be attached to this qube." },
    { name: "icon", type: "str", stage: 2, stateless: () => "adminvm-black", help: "Freedesktop icon name of this qube." },
    { name: "include_in_backups", type: "bool", pyType: "bool", stage: 2, default: () => true, help: "Include this qube in backups by default." },
    { name: "keyboard_layout", type: "str", pyType: "str", stage: 2, default: () => "us++", help: "Keyboard layout of this qube (layout+variant+options)." },
    { name: "klass", type: "str", stage: 2, stateless: () => "AdminVM", help: "Class of this qube." },
    { name: "label", type: "label", stage: 2, help: "Colourful label assigned to this qube." },
    { name: "maxmem", type: "int", stage: 2, forbidden: true, default: () => 4096, help: "Memory (MiB) available to dom0." },
    { name: "name", type: "str", stage: 2, forbidden: true, default: () => "dom0", help: "User-facing name of this qube." },
    { name: "qid", type: "int", stage: 2, forbidden: true, default: () => 0, help: "Internal, persistent identifier of this qube." },
    { name: "updateable", type: "bool", stage: 2, forbidden: true, default: () => true, help: "Whether this qube keeps its root filesystem (can be updated)." },
    { name: "uuid", type: "str", stage: 2, forbidden: true, default: () => "00000000-0000-0000-0000-000000000000", help: "UUID of this qube." },
    { name: "default_dispvm", type: "vm", stage: 4, allowNone: true, default: (q) => q.app.getProp("default_dispvm") ?? null, setter: dispvmTemplateSetter, help: "Default disposable template for calls from this qube." },
  ]),
  RemoteVM: sortProps([
    { name: "uuid", type: "str", pyType: "str", stage: 2, writeOnce: true, help: "UUID of this qube." },
    { name: "name", type: "str", pyType: "str", stage: 2, writeOnce: true, help: "User-facing name of this qube." },
    { name: "qid", type: "int", pyType: "int", stage: 2, writeOnce: true, help: "Internal, persistent identifier of this qube." },
    { name: "label", type: "label", stage: 2, help: "Colourful label assigned to this qube." },
    { name: "icon", type: "str", stage: 2, stateless: (q) => q.icon(), help: "Freedesktop icon name of this qube." },
    { name: "klass", type: "str", stage: 2, stateless: () => "RemoteVM", help: "Class of this qube." },
    { name: "include_in_backups", type: "bool", pyType: "bool", stage: 2, default: () => false, help: "Include this qube in backups by default." },
    { name: "transport_rpc", type: "str", pyType: "str", stage: 2, default: () => null, help: "Service used to reach the remote qube." },
    { name: "remote_name", type: "str", pyType: "str", stage: 2, default: () => null, help: "Name of the qube on the remote system." },
    { name: "relayvm", type: "vm", stage: 4, allowNone: true, default: () => null, help: "Qube that relays calls to the remote qube." },
  ]),
};

type A = App;
const G = (d: Omit<PropDef<A>, "stage" | "help"> & { help?: string }): PropDef<A> => ({
  stage: 3,
  help: help("app", d.name, `Global ${d.name.replace(/_/g, " ")}.`),
  ...d,
});
const poolSetter = (a: A, v: PropValue): PropValue => {
  if (typeof v === "string" && !a.pools.has(v)) throw qerr("QubesPropertyValueError", `No such storage pool: ${v}`);
  return v;
};

/** Global properties, in qubesd's order. */
export const APP_PROPS: PropDef<A>[] = sortProps([
  G({ name: "check_updates_vm", type: "bool", pyType: "bool", default: () => true, help: "Check for updates inside qubes." }),
  G({ name: "clockvm", type: "vm", allowNone: true, default: () => null, help: "Qube that provides the time to dom0." }),
  G({ name: "default_audiovm", type: "vm", allowNone: true, default: (a) => (a.domains.has("dom0") ? "dom0" : null), help: "Default qube that provides audio." }),
  G({ name: "default_dispvm", type: "vm", allowNone: true, default: () => null, setter: dispvmTemplateSetter as (a: A, v: PropValue) => PropValue, help: "Default disposable template." }),
  G({ name: "default_guivm", type: "vm", allowNone: true, default: (a) => (a.domains.has("dom0") ? "dom0" : null), help: "Default qube that provides the GUI." }),
  G({ name: "default_kernel", type: "str", pyType: "none", help: "Default kernel for qubes." }),
  G({ name: "default_netvm", type: "vm", allowNone: true, default: () => null }),
  G({ name: "default_pool", type: "str", pyType: "none", default: () => "varlibqubes", setter: poolSetter, help: "Default storage pool." }),
  G({ name: "default_pool_kernel", type: "str", pyType: "none", default: (a) => a.getProp("default_pool") ?? undefined, setter: poolSetter, help: "Default storage pool for kernel volumes." }),
  G({ name: "default_pool_private", type: "str", pyType: "none", default: (a) => a.getProp("default_pool") ?? undefined, setter: poolSetter, help: "Default storage pool for private volumes." }),
  G({ name: "default_pool_root", type: "str", pyType: "none", default: (a) => a.getProp("default_pool") ?? undefined, setter: poolSetter, help: "Default storage pool for root volumes." }),
  G({ name: "default_pool_volatile", type: "str", pyType: "none", default: (a) => a.getProp("default_pool") ?? undefined, setter: poolSetter, help: "Default storage pool for volatile volumes." }),
  G({ name: "default_qrexec_timeout", type: "int", pyType: "int", default: () => 60, help: "Default seconds to wait for the qrexec agent." }),
  G({ name: "default_shutdown_timeout", type: "int", pyType: "int", default: () => 60, help: "Default seconds to wait for a clean shutdown." }),
  G({ name: "default_template", type: "vm", allowNone: true, vmclass: "TemplateVM", help: "Default template for new qubes." }),
  G({ name: "management_dispvm", type: "vm", allowNone: true, default: () => null, setter: dispvmTemplateSetter as (a: A, v: PropValue) => PropValue, help: "Default disposable template for management." }),
  G({ name: "maxmem", type: "int", forbidden: true, default: (a) => a.host.memoryMiB, help: "Memory (MiB) of the whole system." }),
  G({ name: "no_cpus", type: "int", forbidden: true, default: (a) => a.host.cpus, help: "Number of CPUs of the system." }),
  G({ name: "stats_interval", type: "int", pyType: "int", default: () => 3, help: "Seconds between two admin.vm.Stats reports." }),
  G({ name: "updatevm", type: "vm", allowNone: true, default: () => null, help: "Qube used to download dom0 updates." }),
]);
