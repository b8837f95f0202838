/**
 * The simulator's system model: qubes with their properties, features, tags,
 * volumes, devices, firewall and power state, plus labels, pools and the
 * global properties; every change fires the events qubesd fires.
 *
 * Values follow qubesd's Python semantics: a property is either set
 * explicitly or falls back to its default (possibly "no value"); `None` is
 * `null` here.
 */
import type { QubeClass } from "@qubes-kit/language";
import { TAG_PATTERN } from "@qubes-kit/language";
import { APP_PROPS, VM_PROPS } from "./property-table.js";
import { parseIPv6 } from "@qubes-kit/language";
import { SimAbort, SimError, qerr } from "./wire.js";

/** A property value: `null` is Python's `None`. VM values are qube names, label values label names. */
export type PropValue = string | number | boolean | null;

/** The wire type of a property, as `admin.vm.property.Get` reports it. */
export type PropType = "str" | "int" | "bool" | "vm" | "label";

/** `undefined` from a default function means "no default" (Python's AttributeError). */
type DefaultFn<H> = (holder: H) => PropValue | undefined;

/** One property definition. */
export interface PropDef<H> {
  name: string;
  type: PropType;
  /** `load_stage` (sort key, then name). */
  stage: number;
  default?: DefaultFn<H>;
  /** Computed, read-only (`stateless_property`). */
  stateless?: DefaultFn<H>;
  writeOnce?: boolean;
  /** The setter refuses any value (`qubes.property.forbidden`). */
  forbidden?: boolean;
  /** VM properties: the class the value must have (`TemplateVM`), and whether `None` is allowed. */
  vmclass?: string;
  allowNone?: boolean;
  /** Python-typed: `str` means any printable string; `none` means the property has no type (treated as `str`). */
  pyType?: "int" | "bool" | "str" | "none" | "ipv4" | "ipv6" | "uuid";
  /** Extra check/normalisation after type parsing (the Python setter). */
  /** The setter's check and normalisation (`name` is the property's). */
  setter?: (holder: H, value: PropValue, name: string) => PropValue;
}

/** A qube label. */
export interface Label {
  index: number;
  name: string;
  color: string;
  /** Created by `admin.label.Create`: upstream stores the colour as bytes, so `admin.label.Get` crashes. */
  createdByApi?: boolean;
}

/** A storage pool. */
export interface Pool {
  name: string;
  driver: string;
  /** The pool's configuration (`admin.pool.Info` prints it sorted). */
  config: Record<string, string>;
  size?: number;
  usage?: number;
  includedIn?: string;
  /** Volume ids in creation order. */
  volumes: string[];
}

/** One volume of a qube. */
export interface Volume {
  name: string;
  pool: string;
  vid: string;
  size: number;
  usage: number;
  rw: boolean;
  source: string;
  path: string;
  saveOnStop: boolean;
  snapOnStart: boolean;
  revisionsToKeep: number;
  ephemeral: boolean;
  /** `ephemeral` was set explicitly (`Volume.config` then carries it: a disposable copies it from its template's volume). */
  ephemeralSet?: boolean;
  /** Revision ids kept by a `file-reflink` pool, oldest first (see {@link App.commitVolume}). */
  revisions?: string[];
  /** Started and not yet committed (a `save_on_stop` volume of a running qube). */
  dirty?: boolean;
  /**
   * Which image file the volume's clean image is (`file-reflink`: its inode): a new one each time the
   * image is replaced (a commit, a revert, a resize of a stopped volume); `undefined` is the first.
   */
  image?: number;
  /** A started `snap_on_start` volume: the {@link image} of its origin it was started from (a hard link). */
  snapOf?: number;
}

/** A device a backend qube exposes. */
export interface ExposedDevice {
  devclass: string;
  portId: string;
  deviceId: string;
  /** Extra `DeviceInfo` keys in serialisation order (`product`, `vendor`, `interfaces`, `_sbdf` …). */
  info: Array<[string, string]>;
}

/** A persistent device assignment. */
export interface Assignment {
  devclass: string;
  backend: string;
  portId: string;
  deviceId: string;
  mode: string;
  options: Array<[string, string]>;
  /** The `frontend_domain` the assignment was given (qubesd lists it as given; none when absent). */
  frontend?: string;
}

/** Power states that `admin.vm.List` reports. */
export type PowerState = "Halted" | "Running" | "Paused" | "Suspended" | "Transient" | "Halting" | "Dying" | "Crashed" | "NA";

/** The VM classes this simulator knows, in `admin.vmclass.List` order. */
export const VM_CLASSES = ["AppVM", "TemplateVM", "StandaloneVM", "AdminVM", "DispVM", "RemoteVM"] as const;

/** The core device classes, in `admin.deviceclass.List` order. */
export const DEVICE_CLASSES = ["pci", "block"] as const;

/** The eight standard labels. */
export const DEFAULT_LABELS: ReadonlyArray<Label> = [
  { index: 1, name: "red", color: "0xcc0000" },
  { index: 2, name: "orange", color: "0xf57900" },
  { index: 3, name: "yellow", color: "0xedd400" },
  { index: 4, name: "green", color: "0x73d216" },
  { index: 5, name: "gray", color: "0x555555" },
  { index: 6, name: "blue", color: "0x3465a4" },
  { index: 7, name: "purple", color: "0x75507b" },
  { index: 8, name: "black", color: "0x000000" },
];

/** Features that `qubes.ext.admin` forbids changing through the API. */
export const PROHIBITED_FEATURES = new Set([
  "preload-dispvm",
  "preload-dispvm-completed",
  "preload-dispvm-in-progress",
  "deferred-netvm-original",
]);

/** Properties that `clone_properties` never copies (`clone=False`, or the disposable's own template). */
const NOT_CLONED = new Set(["name", "qid", "uuid", "dispid", "template"]);

/** A listener of events (one `admin.Events` connection). */
export interface EventListener {
  /** `null` = every event (dest dom0); otherwise only events of this qube object. */
  qube: Qube | null;
  /** Extra filter (policy-based, for calls from a management qube). */
  filter?: (subject: string | null, event: string, kwargs: ReadonlyArray<readonly [string, string]>) => boolean;
  send(subject: string, event: string, kwargs: ReadonlyArray<readonly [string, string]>): void;
}

/** Python's `str()` of an event argument. */
export function pyStr(v: PropValue | undefined): string {
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  return String(v);
}

function vmid2ipv4(prefix: string, vmid: number): string {
  if (vmid < 255) return `${prefix}.${(vmid >> 8) & 0xff}.${vmid & 0xff}`;
  const v = vmid - 1;
  return `${prefix}.${Math.floor(v / 254)}.${(v % 254) + 1}`;
}

/** Python `int()` of a string. */
export function parsePyInt(s: string): number | undefined {
  const m = /^[ \t\n\r\f\v]*([+-]?)(\d+(?:_\d+)*)[ \t\n\r\f\v]*$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[2]!.replace(/_/g, ""));
  return m[1] === "-" ? -n : n;
}

/** `qubes.property.bool`. */
export function parsePyBool(s: string): boolean {
  const l = s.toLowerCase();
  if (["0", "no", "false", "off"].includes(l)) return false;
  if (["1", "yes", "true", "on"].includes(l)) return true;
  throw qerr("QubesValueError", `Invalid literal for boolean property: ${pyStrRepr(s)}`);
}

function pyStrRepr(s: string): string {
  return s.includes("'") && !s.includes('"') ? `"${s}"` : `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

const PRINTABLE = new Set(
  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\x0b\x0c",
);

/** `qubes.vm.validate_name(None, None, value)`. */
export function validateName(value: string): void {
  if (value.length > 31) throw qerr("QubesValueError", "VM name must be shorter than 32 characters");
  if (/^[0-9_.-]/.test(value)) throw qerr("QubesValueError", "VM name cannot start with hyphen, underscore, dot or numbers");
  if (!/^[a-zA-Z][a-zA-Z0-9_.-]*$/.test(value)) throw qerr("QubesValueError", "VM name contains illegal characters");
  if (value === "Domain-0") throw qerr("QubesValueError", "VM name cannot be 'Domain-0'");
  if (value === "none" || value === "default") throw qerr("QubesValueError", "VM name cannot be 'none' nor 'default'");
  if (value.endsWith("-dm")) throw qerr("QubesValueError", "VM name cannot end with -dm");
}


// ---------------------------------------------------------------------------
// Property holders

/** What qubes and the app share: explicit values over property definitions. */
export abstract class Holder {
  /** Explicitly set values. */
  readonly values = new Map<string, PropValue>();
  abstract readonly app: App;
  abstract props(): PropDef<any>[];
  /** The subject of this holder's events (`""` for the app). */
  abstract subjectName(): string;
  /** `str(holder)` as used in error messages. */
  abstract describe(): string;
  /** Python's `repr()` of the holder (what `QubesPropertyValueError` prints without a message). */
  abstract pyRepr(): string;
  /** The holder's class in the shared property table (`@global` for the app). */
  abstract tableClass(): QubeClass | "@global";

  def(name: string): PropDef<any> | undefined {
    return this.props().find((p) => p.name === name);
  }
  hasProp(name: string): boolean {
    return this.def(name) !== undefined;
  }
  isDefault(name: string): boolean {
    return !this.values.has(name);
  }
  stateless(name: string): PropValue | undefined {
    return this.getProp(name);
  }
  /** The effective value, or `undefined` for "no value". */
  getProp(name: string): PropValue | undefined {
    const d = this.def(name);
    if (!d) return undefined;
    if (d.stateless) return d.stateless(this);
    if (this.values.has(name)) return this.values.get(name)!;
    return d.default ? d.default(this) : undefined;
  }
  emit(event: string, kwargs: Array<[string, PropValue | undefined]> = []): void {
    this.app.dispatchEvent(this, event, kwargs.map(([k, v]) => [k, pyStr(v)] as [string, string]));
  }

  /** `setattr(holder, name, value)` after `sanitize`, with qubesd's checks and events. */
  setProp(name: string, raw: PropValue): void {
    const d = this.def(name)!;
    if (d.writeOnce && !this.isDefault(name)) throw new SimAbort(`AttributeError: property ${name} is write-once and already set`);
    // `stateless_property` and `property.forbidden`: the setter refuses any value.
    if (d.stateless) throw this.cannotBeSet(name);
    let value = raw;
    if (d.type === "vm") {
      if (value === "") value = null;
      if (value === null) {
        if (!d.allowNone) throw qerr("QubesPropertyValueError", `Invalid value None for property '${name}' of ${this.pyRepr()}`);
      } else {
        const vm = this.app.domains.get(String(value));
        if (!vm) throw qerr("QubesPropertyValueError", `Can't set ${name} to non-existing qube ${value}`);
        if (d.vmclass && vm.klass !== d.vmclass)
          throw qerr("QubesPropertyValueError", `wrong VM class: domains['${vm.name}'] is of type ${vm.klass} and not ${d.vmclass}`);
      }
    }
    // `property.__set__` reads the old value before its setter runs: a default that dies (not an
    // AttributeError, which only means "no old value") kills the call even when the setter would refuse
    const old = this.getProp(name);
    if (d.type === "label" && value !== null) {
      // `setter_label`: `label-N` means the label of index N
      let key = String(value);
      if (key.startsWith("label-")) {
        const n = parsePyInt(key.slice(6));
        if (n === undefined) throw new SimAbort(`ValueError: invalid literal for int() with base 10: '${key.slice(6)}'`);
        key = String(n);
      }
      value = this.app.getLabel(key).name;
    }
    if (d.forbidden) throw this.cannotBeSet(name);
    if (d.setter) value = d.setter(this, value, name);
    this.preChangeCheck(name, value, old);
    const pre: Array<[string, PropValue | undefined]> = [["name", name], ["newvalue", value]];
    if (old !== undefined) pre.push(["oldvalue", old]);
    this.emit(`property-pre-set:${name}`, pre);
    this.preSetHook(name, value, old);
    this.values.set(name, value);
    this.afterSet(name);
    this.postChangeHook(name, old);
    this.emit(`property-set:${name}`, pre);
  }

  /** `delattr(holder, name)`: back to the default, with qubesd's events. */
  resetProp(name: string): void {
    const d = this.def(name)!;
    // Stateless and forbidden properties have nothing to delete: upstream
    // still fires the reset events, and the value does not change.
    if (d.writeOnce && !this.isDefault(name)) throw new SimAbort(`AttributeError: property ${name} is write-once and already set`);
    const old = this.getProp(name);
    this.preChangeCheck(name, undefined, old);
    const kw: Array<[string, PropValue | undefined]> = [["name", name]];
    if (old !== undefined) kw.push(["oldvalue", old]);
    this.emit(`property-pre-reset:${name}`, kw);
    this.preResetEvents(name, old);
    this.emit(`property-pre-del:${name}`, kw);
    this.values.delete(name);
    this.afterSet(name);
    if (name === "default_dispvm" || name === "netvm" || name === "ip" || name === "ip6") this.postChangeHook(name, old, true);
    this.emit(`property-reset:${name}`, kw);
    this.emit(`property-del:${name}`, kw);
  }

  private cannotBeSet(name: string): SimError {
    const cls = this instanceof Qube ? this.klass : "Qubes";
    return qerr("QubesPropertyValueError", `property '${name}' on ${cls} instance cannot be set`);
  }

  /** Refusals of `property-pre-set`/`property-pre-reset` handlers (`value` is `undefined` on reset). */
  protected preChangeCheck(_name: string, _value: PropValue | undefined, _old: PropValue | undefined): void {}
  /** Side effects of a property change (tags following guivm/audiovm). */
  protected afterSet(_name: string): void {}
  /** Events the `property-pre-reset:<name>` handlers fire, heard between `property-pre-reset` and `property-pre-del`. */
  protected preResetEvents(_name: string, _old: PropValue | undefined): void {}
  /** Events that class handlers fire while a `property-pre-set` is handled. */
  protected preSetHook(_name: string, _value: PropValue, _old: PropValue | undefined): void {}
  /** Events that class handlers fire before listeners see `property-set`/`property-reset`. */
  protected postChangeHook(_name: string, _old: PropValue | undefined, _reset = false): void {}
}

/** Volume names in `volume_config` order. */
const VOLUME_ORDER = ["root", "private", "volatile", "kernel"] as const;

/** One qube. */
export class Qube extends Holder {
  readonly features = new Map<string, string>();
  readonly tags = new Set<string>();
  readonly volumes = new Map<string, Volume>();
  readonly assignments: Assignment[] = [];
  readonly exposed: ExposedDevice[] = [];
  firewall: string[] = ["action=accept"];
  notes = "";
  power: PowerState = "Halted";
  startTime: string | null = null;
  xid = -1;

  constructor(
    readonly app: App,
    readonly klass: string,
    readonly name: string,
  ) {
    super();
  }
  props(): PropDef<Qube>[] {
    return VM_PROPS[this.klass] ?? VM_PROPS.AppVM!;
  }
  subjectName(): string {
    return this.name;
  }
  tableClass(): QubeClass {
    return this.klass as QubeClass;
  }
  describe(): string {
    return this.name;
  }
  get uuid(): string {
    return String(this.getProp("uuid"));
  }
  get qid(): number {
    return Number(this.getProp("qid"));
  }
  get isAdminVM(): boolean {
    return this.klass === "AdminVM";
  }
  /** Python's `repr()` of the qube object (`BaseVM.__repr__`: every property that has a value, by `str()`). */
  pyRepr(): string {
    const props = this.props()
      .filter((d) => d.name !== "name" && d.name !== "qid")
      .flatMap((d) => {
        const v = this.getProp(d.name);
        return v === undefined ? [] : [`${d.name}=${pyStr(v)}`];
      });
    const addr = (0x7f0000000000 + this.qid * 0x1000).toString(16);
    return `<${this.klass} at 0x${addr} name='${this.name}' qid=${this.qid} ${props.join(" ")}>`;
  }
  /** A VM-typed property as a qube object. */
  vmProp(name: string): Qube | undefined {
    const v = this.getProp(name);
    return typeof v === "string" ? this.app.domains.get(v) : undefined;
  }
  templateQube(): Qube | undefined {
    return this.hasProp("template") ? this.vmProp("template") : undefined;
  }
  netvmQube(): Qube | undefined {
    return this.hasProp("netvm") ? this.vmProp("netvm") : undefined;
  }
  isNetworked(): boolean {
    if (this.isAdminVM) return false;
    return !!this.getProp("provides_network") || !!this.netvmQube();
  }
  /**
   * `_default_ip`: `netvm.get_ip_for_vm(self)`, which a qube whose netvm is dom0 (the global
   * `default_netvm` may be set to it) cannot call: an AdminVM has no such method, and the
   * AttributeError means no value (empty in `property.Get`, left out of the qube's repr).
   */
  defaultIp(): string | null | undefined {
    if (!this.isNetworked()) return null;
    if (this.netvmQube()?.isAdminVM) return undefined;
    if (this.klass === "DispVM") return vmid2ipv4("10.138", Number(this.getProp("dispid")));
    return vmid2ipv4("10.137", this.qid);
  }
  /**
   * `_default_ip6`: only with the `ipv6` feature on the qube or along its netvm chain (Python's truth
   * of the value); the address is `get_ip6_for_vm`, Qubes' site-local prefix with the IPv4 suffix
   * (`a89:` and the qid, `a8a:` and the dispid for a disposable).
   */
  defaultIp6(): string | null | undefined {
    if (!this.isNetworked() || !this.featureWithNetvm("ipv6")) return null;
    // `netvm.get_ip6_for_vm(self)`: none on an AdminVM (see `defaultIp`).
    if (this.netvmQube()?.isAdminVM) return undefined;
    const suffix = this.klass === "DispVM" ? `a8a:${Number(this.getProp("dispid")).toString(16)}` : `a89:${this.qid.toString(16)}`;
    return parseIPv6(`fd09:24ef:4179:0000::${suffix}`) ?? null;
  }
  /** `gateway6`: a network provider's own IPv6 address, with the `ipv6` feature along its netvm chain. */
  gateway6(): string | null | undefined {
    if (!this.featureWithNetvm("ipv6") || !this.getProp("provides_network")) return null;
    // `visible_ip6`, that is `ip6`: its AttributeError (see `defaultIp`) goes through.
    return this.getProp("ip6") as string | null | undefined;
  }
  /** `visible_ip`: the `net.fake-ip` feature (with the template's), else `ip`, whose AttributeError (see `defaultIp`) goes through. */
  visibleIp(): string | null | undefined {
    const fake = this.featureWithTemplate("net.fake-ip");
    if (fake) return fake;
    return this.getProp("ip") as string | null | undefined;
  }
  /** The icon name; `undefined` when the qube has no label (qubesd's AttributeError). */
  icon(): string | undefined {
    const raw = this.getProp("label");
    if (raw === undefined || raw === null) return undefined;
    const label = String(raw);
    if (this.klass === "TemplateVM") return `templatevm-${label}`;
    if (this.klass === "AppVM" && this.getProp("template_for_dispvms") === true) return `templatevm-${label}`;
    if (this.features.get("servicevm")) return `servicevm-${label}`;
    if (this.klass === "DispVM") return `dispvm-${label}`;
    if (this.klass === "StandaloneVM") return `standalonevm-${label}`;
    if (this.klass === "RemoteVM") return `remotevm-${label}`;
    return `appvm-${label}`;
  }
  connectedQubes(): Qube[] {
    return [...this.app.domains.values()].filter((q) => q !== this && q.hasProp("netvm") && q.vmProp("netvm") === this);
  }
  /** `features.check_with_template(name)`: `undefined` when absent along the chain. */
  featureWithTemplate(name: string): string | undefined {
    for (let q: Qube | undefined = this, n = 0; q && n < 32; q = q.templateQube(), n++) {
      if (q.features.has(name)) return q.features.get(name);
    }
    return undefined;
  }
  featureWithNetvm(name: string): string | undefined {
    const seen = new Set<Qube>();
    for (let q: Qube | undefined = this; q && !seen.has(q); q = q.netvmQube()) {
      seen.add(q);
      if (q.features.has(name)) return q.features.get(name);
    }
    return undefined;
  }
  featureWithAdminVM(name: string): string | undefined {
    if (this.features.has(name)) return this.features.get(name);
    return this.app.domains.get("dom0")?.features.get(name);
  }
  featureWithTemplateAndAdminVM(name: string): string | undefined {
    return this.featureWithTemplate(name) ?? this.app.domains.get("dom0")?.features.get(name);
  }
  setFeature(name: string, value: string): void {
    const had = this.features.has(name);
    const kw: Array<[string, PropValue]> = [["feature", name], ["value", value]];
    if (had) kw.push(["oldvalue", this.features.get(name)!]);
    this.emit(`domain-feature-pre-set:${name}`, kw);
    this.features.set(name, value);
    this.emit(`domain-feature-set:${name}`, kw);
  }
  removeFeature(name: string): void {
    this.emit(`domain-feature-pre-delete:${name}`, [["feature", name]]);
    this.features.delete(name);
    this.emit(`domain-feature-delete:${name}`, [["feature", name]]);
  }
  addTag(tag: string, silent = false): void {
    if (this.tags.has(tag)) return;
    this.tags.add(tag);
    if (silent) return;
    if (tag.startsWith("created-by-")) this.app.createdByHandlers(this, tag);
    this.emit(`domain-tag-add:${tag}`, [["tag", tag]]);
  }
  removeTag(tag: string): void {
    this.tags.delete(tag);
    this.emit(`domain-tag-delete:${tag}`, [["tag", tag]]);
  }
  protected override afterSet(name: string): void {
    if (name === "guivm" || name === "audiovm") this.retag(name, this.getProp(name));
    if (name === "template" && (this.klass === "AppVM" || this.klass === "DispVM")) this.app.templateChanged(this);
    if (name === "provides_network") {
      // `core_features.set_servicevm_feature`
      if (this.getProp("provides_network")) this.setFeature("servicevm", "1");
      else if (this.features.has("servicevm")) this.removeFeature("servicevm");
      else return;
      this.emit("property-reset:icon", [["name", "icon"]]);
    }
  }

  /** `vm.is_running()`: libvirt reports the domain active. */
  isActive(): boolean {
    return !["Halted", "Crashed", "NA"].includes(this.power);
  }

  /**
   * `use_memory_hotplug` (Xen): the `memory-hotplug` feature along the
   * template chain; otherwise never for HVM; for a kernel from dom0 the
   * simulator assumes no `memory-hotplug-supported` marker; for a kernel
   * from the qube, the advertised `supported-feature.memory-hotplug`.
   */
  useMemoryHotplug(): boolean {
    const f = this.featureWithTemplate("memory-hotplug");
    if (f !== undefined) return f !== "";
    if (this.hasProp("virt_mode") && this.getProp("virt_mode") === "hvm") return false;
    const kernel = this.hasProp("kernel") ? this.getProp("kernel") : null;
    if (kernel) return false;
    return !!this.featureWithTemplate("supported-feature.memory-hotplug");
  }

  /**
   * The `property-pre-set:netvm` handler (`on_property_pre_set_netvm`):
   * a running qube cannot be attached to a netvm that is not running.
   */
  netvmPreSet(value: PropValue | undefined): void {
    if (typeof value !== "string" || value === "") return;
    const n = this.app.domains.get(value);
    if (n && this.isActive() && !n.isActive()) throw qerr("QubesVMNotStartedError", `Cannot dynamically attach to stopped qube ${value}`);
  }

  /**
   * The `property-set:netvm` handler (`on_property_set_netvm`): the old and
   * the new netvm, when running, reload their connected IPs; dom0 (always
   * running) has no `reload_connected_ips`, so qubesd dies after applying.
   */
  netvmSetEvent(old: PropValue | undefined, now: PropValue | undefined): void {
    for (const v of [old, now]) {
      const n = typeof v === "string" && v !== "" ? this.app.domains.get(v) : undefined;
      if (n?.isAdminVM && n.isActive()) throw new SimAbort("AttributeError: 'AdminVM' object has no attribute 'reload_connected_ips'");
    }
  }

  protected override postChangeHook(name: string, old: PropValue | undefined, reset = false): void {
    // `on_property_set_label` / `on_property_set_tmpl_for_dvms` (on set only): the icon follows
    if (!reset && (name === "label" || name === "template_for_dispvms") && !this.isAdminVM && this.klass !== "RemoteVM")
      this.emit("property-reset:icon", [["name", "icon"]]);
    // `on_property_set_provides` (on set only, on a change): the gateways follow
    if (!reset && name === "provides_network" && (old ?? false) !== this.getProp("provides_network")) {
      this.emit("property-reset:gateway", [["name", "gateway"]]);
      this.emit("property-reset:gateway6", [["name", "gateway6"]]);
    }
    // `on_property_set_ip` (set and reset) / `on_property_set_ip6` (set only: upstream listens to `property-reset:ipv6`)
    if ((name === "ip" || (name === "ip6" && !reset)) && (reset ? null : this.getProp(name)) !== (old ?? null)) {
      const six = name === "ip6" ? "6" : "";
      if (this.getProp("provides_network") === true) this.emit(`property-reset:gateway${six}`, [["name", `gateway${six}`]]);
      this.emit(`property-reset:visible_ip${six}`, [["name", `visible_ip${six}`]]);
      for (const c of this.app.sortedDomains())
        if (c !== this && c.hasProp("netvm") && c.vmProp("netvm") === this) c.emit(`property-reset:visible_gateway${six}`, [["name", `visible_gateway${six}`]]);
    }
    if (name !== "netvm") return;
    const now = this.getProp("netvm");
    if (reset) {
      // `on_property_reset_netvm`: only a real change fires `property-set:netvm`, heard before the reset
      if ((now ?? null) === (old ?? null)) return;
      this.emit("property-set:netvm", [["name", "netvm"], ["newvalue", now ?? null], ["oldvalue", old ?? null]]);
    }
    this.netvmSetEvent(old, now);
  }

  /** `on_property_pre_reset_netvm`: `property-pre-set:netvm` for the default, when it differs. */
  protected override preResetEvents(name: string, old: PropValue | undefined): void {
    if (name !== "netvm") return;
    const next = this.def("netvm")!.default?.(this);
    if ((next ?? null) !== (old ?? null)) this.emit("property-pre-set:netvm", [["name", "netvm"], ["newvalue", next ?? null], ["oldvalue", old ?? null]]);
  }

  protected override preSetHook(name: string, value: PropValue, old: PropValue | undefined): void {
    if (name === "netvm") this.netvmPreSet(value);
    // `DVMTemplateMixin`'s handler runs first: a disposable template with running disposables keeps its
    // template (upstream passes its message as a one-element tuple, which is what the error text shows)
    if (name === "template" && value !== old && this.hasProp("template_for_dispvms") && this.getProp("template_for_dispvms") === true) {
      const running = [...this.app.domains.values()].some((d) => d.klass === "DispVM" && d.vmProp("template") === this && d.power !== "Halted");
      if (running) throw qerr("QubesVMInUseError", "('Cannot change template while there are running disposables based on this disposable template',)");
    }
    // `on_property_pre_set_template` of AppVM and DispVM: fired even when the value stays the same
    if (name === "template" && (this.klass === "AppVM" || this.klass === "DispVM") && this.power !== "Halted")
      throw qerr("QubesVMNotHaltedError", "Cannot change template while qube is running");
    // `on_property_pre_set_maxmem`: upstream builds its QubesVMNotHaltedError with the
    // message in place of the qube, so the refusal is an unhandled AttributeError.
    if (name === "maxmem" && value !== old && this.power !== "Halted" && !this.useMemoryHotplug())
      throw new SimAbort(`AttributeError: 'str' object has no attribute 'name' (raising QubesVMNotHaltedError: Can't change maxmem of VM ${this.name}, because it isn't Halted and memory hotplug is forbidden)`);
  }


  protected override preChangeCheck(name: string, value: PropValue | undefined, old: PropValue | undefined): void {
    if (name === "netvm" && value === undefined) {
      // `on_property_pre_reset_netvm`: the default must pass the setter's checks
      const d = this.def("netvm")!;
      const next = d.default?.(this);
      if (next) d.setter?.(this, next, "netvm");
      // then `property-pre-set:netvm` for the default, when it differs
      if (next !== old) this.netvmPreSet(next);
    }
    if (name === "template" && value === undefined) {
      // `on_property_pre_reset_template` of AppVM and DispVM
      const def = this.klass === "AppVM" ? this.app.getProp("default_template") : null;
      if (typeof def === "string") throw qerr("QubesValueError", `Cannot unset template. You can set it to the current default (${def}) instead`);
      throw qerr("QubesValueError", "Cannot unset template");
    }
    if (name !== "template_for_dispvms" || value || !old) return;
    const sys = ["default_dispvm", "management_dispvm"];
    if (this.app.props().some((p) => p.type === "vm" && this.app.getProp(p.name) === this.name && sys.includes(p.name)))
      throw qerr("QubesVMInUseError", `Cannot change template_for_dispvms to False while it is in use by the system by any of these properties: ${sys.join(", ")}`);
    const qubeProps = [...sys, "template"];
    for (const o of this.app.domains.values()) {
      if (o === this) continue;
      if (o.props().some((p) => p.type === "vm" && qubeProps.includes(p.name) && !o.isDefault(p.name) && o.getProp(p.name) === this.name))
        throw qerr("QubesVMInUseError", `Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: ${qubeProps.join(", ")}`);
    }
  }

  /** `qubes.ext.gui`/`audio`: the one `guivm-<qube>`/`audiovm-<qube>` tag follows the property. */
  retag(name: "guivm" | "audiovm", value: PropValue | undefined): void {
    const want = typeof value === "string" ? `${name}-${value}` : undefined;
    for (const t of [...this.tags]) if (t.startsWith(`${name}-`) && !(name === "guivm" && t === want)) this.removeTag(t);
    // `Tags.add` refuses a qube name with a dot: an unhandled ValueError, after the old tags went
    if (want && !TAG_PATTERN.test(want)) throw new SimAbort("ValueError: Invalid character in tag");
    if (want) this.addTag(want);
  }
}

/** Host facts that the recording's (fake) host reported. */
export interface HostInfo {
  memoryMiB: number;
  cpus: number;
  dom0MemoryKiB: number;
}

/** Options of a fresh {@link App}. */
export interface AppOptions {
  /** Seed of the generator of UUIDs, disposable ids and clone tokens (default 0). */
  seed?: number;
  host?: Partial<HostInfo>;
  /** The kernel version installed in dom0 (default `6.12.40-1.qubes.fc41`). */
  kernel?: string;
}

/** A small deterministic generator (mulberry32), so that runs repeat. */
class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  uuid4(): string {
    const b = Array.from({ length: 16 }, () => this.int(256));
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = b.map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  token(n: number): string {
    const cs = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let s = "";
    for (let i = 0; i < n; i++) s += cs[this.int(cs.length)];
    return s;
  }
}

/** The whole system: the app object of qubesd. */
export class App extends Holder {
  get app(): App {
    return this;
  }
  /** Qubes by name, in creation order. */
  readonly domains = new Map<string, Qube>();
  readonly labels = new Map<number, Label>();
  readonly pools = new Map<string, Pool>();
  readonly listeners = new Set<EventListener>();
  readonly host: HostInfo;
  readonly rng: Rng;
  /** Kernels installed in dom0 (`/var/lib/qubes/vm-kernels/<version>`). */
  readonly kernels = new Set<string>();
  /** `admin.vm.volume.CloneFrom` tokens. */
  readonly cloneTokens = new Map<string, { qube: Qube; volume: string }>();
  private nextXid = 2;
  private lastImage = 0;

  constructor(opts: AppOptions = {}) {
    super();
    this.rng = new Rng(opts.seed ?? 0);
    this.host = { memoryMiB: 16384, cpus: 4, dom0MemoryKiB: 4194304, ...opts.host };
    for (const l of DEFAULT_LABELS) this.labels.set(l.index, { ...l });
    this.pools.set("varlibqubes", {
      name: "varlibqubes",
      driver: "file-reflink",
      config: { dir_path: "/var/lib/qubes", driver: "file-reflink", ephemeral_volatile: "False", name: "varlibqubes", revisions_to_keep: "1" },
      size: 270553174016,
      usage: 23625490432,
      volumes: [],
    });
    this.pools.set("linux-kernel", {
      name: "linux-kernel",
      driver: "linux-kernel",
      config: { dir_path: "/var/lib/qubes/vm-kernels", driver: "linux-kernel", name: "linux-kernel" },
      includedIn: "varlibqubes",
      volumes: [],
    });
    const dom0 = new Qube(this, "AdminVM", "dom0");
    dom0.values.set("label", "black");
    dom0.power = "Running";
    dom0.xid = 0;
    this.domains.set("dom0", dom0);
    this.kernels.add(opts.kernel ?? "6.12.40-1.qubes.fc41");
    this.values.set("default_kernel", opts.kernel ?? "6.12.40-1.qubes.fc41");
    this.values.set("default_pool_kernel", "linux-kernel");
    dom0.exposed.push(
      {
        devclass: "pci",
        portId: "00_14.0",
        deviceId: "0x8086:0xa36d::p0c0330",
        info: [["product", "Cannon Lake PCH USB 3.1 xHCI Host Controller"], ["vendor", "Intel Corporation"], ["interfaces", "p0c0330"], ["_sbdf", "0000:00:14.0"]],
      },
      {
        devclass: "pci",
        portId: "00_1c.0-00_00.0",
        deviceId: "0x8086:0x2723::p028000",
        info: [["product", "Wi-Fi 6 AX200"], ["vendor", "Intel Corporation"], ["interfaces", "p028000"], ["_sbdf", "0000:03:00.0"]],
      },
    );
  }
  props(): PropDef<App>[] {
    return APP_PROPS;
  }
  subjectName(): string {
    return "";
  }
  tableClass(): "@global" {
    return "@global";
  }
  describe(): string {
    return "Qubes";
  }
  /** `qubes.app.Qubes` has no `__repr__`: Python's default. */
  pyRepr(): string {
    return "<qubes.app.Qubes object at 0x7f0000000000>";
  }

  /** `on_property_pre_set_default_netvm`: qubes with the default netvm hear of the change. */
  protected override preSetHook(name: string, value: PropValue, old: PropValue | undefined): void {
    if (name === "clockvm") {
      // `on_property_pre_set_clockvm`: the new clock qube gets `service.clocksync`
      const q = value === null ? undefined : this.domains.get(String(value));
      if (q && !q.features.has("service.clocksync")) q.setFeature("service.clocksync", "1");
      return;
    }
    if (name !== "default_netvm") return;
    // `for vm in self.domains`: qubes in name order
    for (const q of this.sortedDomains())
      if (q.hasProp("netvm") && q.isDefault("netvm")) {
        q.emit("property-pre-set:netvm", [["name", "netvm"], ["newvalue", value], ["oldvalue", old ?? null]]);
        q.netvmPreSet(value);
      }
  }

  /** `on_property_set_default_netvm` / `on_property_set_default_dispvm`; gui and audio follow their defaults (on set only). */
  protected override postChangeHook(name: string, old: PropValue | undefined): void {
    if (name === "default_netvm") {
      // `on_property_set_default_netvm`: each qube on the default netvm hears `property-reset:netvm`, whose
      // handler fires `property-set:netvm` when its netvm really changes (and may die there); listeners hear
      // that nested event first (observed), qubes in name order
      for (const q of this.sortedDomains())
        if (q.hasProp("netvm") && q.isDefault("netvm")) {
          const now = q.getProp("netvm");
          if ((now ?? null) !== (old ?? null)) {
            q.emit("property-set:netvm", [["name", "netvm"], ["newvalue", now ?? null], ["oldvalue", old ?? null]]);
            q.netvmSetEvent(old, now);
          }
          q.emit("property-reset:netvm", [["name", "netvm"], ["oldvalue", old ?? null]]);
        }
      return;
    }
    if (name === "clockvm") {
      // `on_property_set_clockvm` (on set only): the previous clock qube loses an enabled `service.clocksync`
      const prev = old === null || old === undefined ? undefined : this.domains.get(String(old));
      if (prev && String(old) !== String(this.getProp("clockvm")) && prev.features.get("service.clocksync")) prev.removeFeature("service.clocksync");
      return;
    }
    if (name === "default_guivm" || name === "default_audiovm") {
      const prop = name === "default_guivm" ? "guivm" : "audiovm";
      // `for vm in app.domains`: qubes in name order
      for (const q of this.sortedDomains()) if (q.hasProp(prop) && q.isDefault(prop)) q.retag(prop, this.getProp(name));
      return;
    }
    if (name !== "default_dispvm") return;
    // `for vm in self.domains`: dom0, then the qubes in name order
    for (const q of this.sortedDomains())
      if (q.hasProp(name) && q.isDefault(name)) q.emit(`property-reset:${name}`, [["name", name], ["oldvalue", old ?? null]]);
  }

  /** Fires an event to every matching listener, in registration order. */
  dispatchEvent(holder: Holder, event: string, kwargs: ReadonlyArray<readonly [string, string]>): void {
    const subject = holder instanceof Qube ? holder : null;
    for (const l of [...this.listeners]) {
      if (l.qube !== null && l.qube !== subject) continue;
      if (l.filter && !l.filter(subject ? subject.name : null, event, kwargs)) continue;
      l.send(subject ? subject.name : "", event, kwargs);
    }
  }

  /** Whether `app.save()` fails: some qube's kernel falls back to a global default_kernel that has no value. */
  storeUnsaveable(): boolean {
    if (this.getProp("default_kernel") !== undefined) return false;
    for (const q of this.domains.values()) if (q.hasProp("kernel") && q.getProp("kernel") === undefined) return true;
    return false;
  }

  /** `app.get_label(name|index)`. */
  getLabel(key: string): Label {
    for (const l of this.labels.values()) if (l.name === key) return l;
    const n = parsePyInt(key);
    if (n !== undefined && this.labels.has(n)) return this.labels.get(n)!;
    throw qerr("QubesLabelNotFoundError", `Label does not exist: ${key}`);
  }

  /** Looks a qube up by name or `uuid:…`. */
  lookup(key: string): Qube | undefined {
    if (key.startsWith("uuid:")) {
      const u = key.slice(5);
      for (const q of this.domains.values()) if (q.uuid === u) return q;
      return undefined;
    }
    return this.domains.get(key);
  }

  /**
   * Whether `n`'s network goes through `q` (`n in app.domains.get_vms_connected_to(q)`): whether
   * `q` is on `n`'s netvm chain. Each qube has one netvm, so the qubes connected to `q` transitively
   * are those whose chain reaches it; walking `n`'s chain up answers without listing them (listing
   * them reads every qube's netvm for each qube found: a stack of thousands of qubes made every
   * netvm change quadratic).
   */
  connectedTransitively(q: Qube, n: Qube): boolean {
    const seen = new Set<Qube>([n]);
    for (let cur = n.netvmQube(); cur; cur = cur.netvmQube()) {
      if (cur === q) return true;
      if (seen.has(cur)) return false;
      seen.add(cur);
    }
    return false;
  }

  /** Qubes sorted as qubesd sorts them (by name; `dom0` first since `AdminVM` sorts lowest by qid). */
  sortedDomains(): Qube[] {
    return [...this.domains.values()].sort((a, b) => (a.isAdminVM !== b.isAdminVM ? (a.isAdminVM ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  newUuid(): string {
    return this.rng.uuid4();
  }
  newToken(): string {
    return this.rng.token(32);
  }
  /**
   * A new disposable id. Ids grow (by a random step) so that names sort in
   * creation order, as they did in the recording; they wrap below 10000.
   */
  newDispid(): number {
    const used = new Set([...this.domains.values()].map((q) => q.getProp("dispid")));
    for (let tries = 0; ; tries++) {
      this.lastDispid = this.lastDispid === 0 ? 1000 + this.rng.int(2000) : this.lastDispid + 1 + this.rng.int(tries > 50 ? 10 : 999);
      if (this.lastDispid > 9999) this.lastDispid = 1 + this.rng.int(999);
      if (!used.has(this.lastDispid) && !this.domains.has(`disp${this.lastDispid}`)) return this.lastDispid;
    }
  }
  private lastDispid = 0;
  allocXid(): number {
    return this.nextXid++;
  }

  /** Creates a qube with storage, as `add_new_vm` + `create_on_disk` do; fires qubesd's events. */
  addQube(
    klass: string,
    name: string,
    /** `undefined`: none (a disposable of a disposable template whose label was reset clones none). */
    label: string | undefined,
    opts: {
      template?: string;
      pool?: string;
      pools?: Record<string, string>;
      uuid?: string;
      qid?: number;
      createdBy?: string;
      dispid?: number;
      silentCreate?: boolean;
      extra?: (q: Qube) => void;
      /** A disposable's template: its explicit properties, firewall, features and tags are copied (`DispVM.__init__`). */
      cloneFrom?: Qube;
    } = {},
  ): Qube {
    // `DispVM.__init__` reads its template's volumes first: a `LinuxModules` kernel volume whose kernel falls back
    // to a global default_kernel without a value kills the call before anything else is checked or added (one in
    // an ordinary pool reads no kernel: probes-failures.txt)
    if (klass === "DispVM" && opts.cloneFrom && this.kernelUnset(opts.cloneFrom))
      throw new SimAbort("AttributeError: property 'default_kernel' have no default");
    const q = new Qube(this, klass, name);
    let qid = opts.qid;
    if (qid === undefined) {
      // Every qube has its qid set (read directly: a qid per qube is read for each qube created).
      const used = new Set<number>();
      for (const d of this.domains.values()) used.add(d.values.has("qid") ? Number(d.values.get("qid")) : d.qid);
      qid = 1;
      while (used.has(qid)) qid++;
    }
    // `RemoteVM.get_power_state()` is always "Running"
    if (klass === "RemoteVM") q.power = "Running";
    q.values.set("qid", qid);
    q.values.set("name", name);
    q.values.set("uuid", opts.uuid ?? this.newUuid());
    if (label !== undefined) q.values.set("label", label);
    if (opts.template !== undefined) q.values.set("template", opts.template);
    if (opts.dispid !== undefined) q.values.set("dispid", opts.dispid);
    opts.extra?.(q);
    const src = opts.cloneFrom;
    // `domain-init` (gui and audio tags) runs before a disposable clones its template
    if (klass !== "AdminVM" && klass !== "RemoteVM") {
      const gui = q.getProp("guivm");
      const audio = q.getProp("audiovm");
      for (const t of [typeof audio === "string" ? `audiovm-${audio}` : "", typeof gui === "string" ? `guivm-${gui}` : ""]) {
        if (!t) continue;
        // `domain-init` handlers of the gui and audio extensions: the qube is never added
        if (!TAG_PATTERN.test(t)) throw new SimAbort("ValueError: Invalid character in tag");
        q.tags.add(t);
      }
    }
    // `QubesVM.__init__` of a new qube: with the global check_updates_vm off, `check-updates` is False ('')
    if (!opts.silentCreate && klass !== "AdminVM" && klass !== "RemoteVM" && !this.getProp("check_updates_vm")) q.features.set("check-updates", "");
    if (src) {
      for (const [k, v] of src.values)
        if (!NOT_CLONED.has(k) && q.hasProp(k) && q.isDefault(k) && !q.def(k)!.stateless) q.values.set(k, v);
      q.firewall = [...src.firewall];
      for (const [k, v] of src.features) if (!k.startsWith("preload-dispvm")) q.features.set(k, v);
      for (const t of src.tags) q.tags.add(t);
    }
    const hasStorage = klass !== "AdminVM" && klass !== "RemoteVM";
    // `Storage(vm)` at `domain-init`, with the default pools (a `pool=`/`pool:` option applies only
    // in `create_on_disk`); a failure here means the qube is never added
    if (hasStorage) this.initStorage(q);
    this.domains.set(name, q);
    if (opts.silentCreate) {
      this.createVolumes(q, opts.pool, opts.pools);
      if (opts.createdBy) q.tags.add(`created-by-${opts.createdBy}`);
      return q;
    }
    this.emit("domain-add", [["vm", name]]);
    if (opts.createdBy) this.addCreatedByTag(q, opts.createdBy);
    if (hasStorage) {
      if (opts.pool !== undefined || Object.keys(opts.pools ?? {}).length) {
        // `create_on_disk(pool, pools)`: the patched volume config and a second `Storage(vm)`; a failure
        // removes the qube again (`del app.domains[vm]`), the volumes initialised so far stay in their pools
        try {
          this.patchPoolConfig(q, opts.pools ?? {});
          this.initStorage(q, opts.pool, opts.pools);
        } catch (e) {
          this.domains.delete(name);
          this.emit("domain-delete", [["vm", name]]);
          throw e;
        }
      }
      this.createVolumes(q, opts.pool, opts.pools);
      q.emit("domain-create-on-disk");
    }
    return q;
  }

  /** `_patch_pool_config` with `pool:VOLUME=`: a snapshot volume stays in its origin's pool. */
  private patchPoolConfig(q: Qube, pools: Record<string, string>): void {
    const snapshots = q.klass === "DispVM" ? ["root", "private"] : q.klass === "AppVM" ? ["root"] : [];
    for (const vol of VOLUME_ORDER)
      if (snapshots.includes(vol) && vol in pools)
        throw qerr("QubesException", `Snapshot volume ${vol} must be in the same pool as its origin (${vol} volume of template),cannot move to pool ${pools[vol]} `);
  }

  /**
   * `Storage(vm)`: each volume is initialised in its pool, in `volume_config`
   * order, and a file pool lists it from then on. `LinuxKernel.init_volume`
   * asserts a read-only volume: a writable one there kills the call, and the
   * volumes initialised before it stay listed by `admin.pool.volume.List`
   * although the qube never exists (as qubesd, observed). With `pool=`/`pool:`
   * (`create_on_disk`) the volumes are initialised again in their new pools:
   * a moved volume is listed there instead; a failure leaves the first ones.
   */
  private initStorage(q: Qube, pool?: string, pools?: Record<string, string>): void {
    const again = pool !== undefined || pools !== undefined;
    const moves: Array<[string, string]> = [];
    for (const vol of VOLUME_ORDER) {
      const name = this.volumePool(q, vol, pool, pools);
      const p = this.pools.get(name);
      if (p?.driver === "linux-kernel" && vol !== "kernel") throw new SimAbort(`AssertionError: writable ${vol} volume in a linux-kernel pool`);
      if (!again) {
        if (p && p.driver !== "linux-kernel") listVolume(p, this.fileVid(q, vol));
      } else moves.push([this.volumePool(q, vol), name]);
    }
    for (const [i, [from, to]] of moves.entries()) {
      if (from === to) continue;
      const vid = this.fileVid(q, VOLUME_ORDER[i]!);
      const a = this.pools.get(from);
      const b = this.pools.get(to);
      if (a && a.driver !== "linux-kernel" && a.volumes.lastIndexOf(vid) >= 0) a.volumes.splice(a.volumes.lastIndexOf(vid), 1);
      if (b && b.driver !== "linux-kernel") listVolume(b, vid);
    }
  }

  /** A file pool's vid of a qube's volume (`_vid_prefix`). */
  private fileVid(q: Qube, vol: string): string {
    return `${q.klass === "TemplateVM" ? "vm-templates" : "appvms"}/${q.name}/${vol}`;
  }

  /** Drops one volume object from its pool's list (`FileVolume.remove`: the first equal one). */
  private dropVolume(v: Volume, last = false): void {
    const p = this.pools.get(v.pool);
    if (!p || p.driver === "linux-kernel") return;
    const i = last ? p.volumes.lastIndexOf(v.vid) : p.volumes.indexOf(v.vid);
    if (i >= 0) p.volumes.splice(i, 1);
  }

  /**
   * `ReflinkVolume._commit` (stop of a started volume, import of data, a clone into it): the previous image
   * is kept as the next revision (`1`, then one more than the last), unless `revisions_to_keep` is 0, and
   * the revisions beyond `revisions_to_keep` go, oldest first (observed). Only `file-reflink` pools are
   * modelled; qubesd lists revisions by their image's time, which the simulator takes to be their order
   * (true unless an older image comes back by a revert and is committed again in a later second).
   */
  commitVolume(v: Volume): void {
    if (this.pools.get(v.pool)?.driver !== "file-reflink") return;
    // the committed image is renamed over the clean one
    this.replaceImage(v);
    const revs = (v.revisions ??= []);
    const keep = v.revisionsToKeep;
    if (keep !== 0) revs.push(this.nextRevision(v));
    // `list(revisions)[: -keep or None]` are removed: all but the last `keep`; all for 0; the first `-keep` below 0
    revs.splice(0, keep > 0 ? Math.max(0, revs.length - keep) : keep === 0 ? revs.length : Math.min(revs.length, -keep));
  }

  /** A `file-reflink` volume's clean image is now another file (a new inode). */
  replaceImage(v: Volume): void {
    v.image = ++this.lastImage;
  }

  /** The volume a `snap_on_start` volume is a snapshot of (its `source`, in the same pool). */
  sourceVolume(v: Volume): Volume | undefined {
    if (!v.source) return undefined;
    for (const q of this.domains.values()) for (const s of q.volumes.values()) if (s.pool === v.pool && s.vid === v.source && s !== v) return s;
    return undefined;
  }

  /**
   * A started `snap_on_start` volume whose clean image (a hard link to its origin's at the start) is no
   * longer its origin's: `ReflinkVolume.is_outdated` compares the two inodes. The origin's clean image is
   * absent while it is started with snapshots disabled (renamed to its dirty one): not outdated then.
   * Other drivers of the simulator (`file`) are never outdated.
   */
  isOutdated(v: Volume): boolean {
    if (!v.snapOnStart || v.snapOf === undefined || this.pools.get(v.pool)?.driver !== "file-reflink") return false;
    const s = this.sourceVolume(v);
    if (!s || (s.dirty && this.snapshotsDisabled(s))) return false;
    return (s.image ?? 0) !== v.snapOf;
  }

  /** `_next_revision`. */
  nextRevision(v: Volume): string {
    const revs = v.revisions ?? [];
    return revs.length ? String(Number(revs[revs.length - 1]) + 1) : "1";
  }

  /**
   * `template_changed_update_storage`: on a new template, the snapshot volumes of a qube (an app qube's root,
   * a disposable's root and private) are initialised afresh from their new origin (its source and size, the
   * pool's revisions to keep, writable, not ephemeral); a disposable template passes the change on to its
   * disposables (observed). The volumes stay in their pool.
   */
  templateChanged(q: Qube): void {
    const tpl = q.templateQube();
    if (!tpl) return;
    const fresh = (name: string, source: string, size: number | undefined) => {
      const v = q.volumes.get(name);
      if (!v || !v.snapOnStart) return;
      const revisions = Number(this.pools.get(v.pool)?.config.revisions_to_keep ?? 1);
      q.volumes.set(name, { ...v, source, size: size ?? v.size, usage: 0, rw: true, revisionsToKeep: revisions, ephemeral: false });
    };
    const tplRoot = tpl.volumes.get("root");
    if (q.klass === "DispVM") {
      fresh("root", tplRoot?.source ?? "", tpl.templateQube()?.volumes.get("root")?.size ?? tplRoot?.size);
      fresh("private", tpl.volumes.get("private")?.vid ?? "", tpl.volumes.get("private")?.size);
    } else {
      fresh("root", tplRoot?.vid ?? "", tplRoot?.size);
    }
    for (const d of this.domains.values()) if (d.klass === "DispVM" && d !== q && d.vmProp("template") === q) this.templateChanged(d);
  }

  /**
   * The pool of volume `vol` of a new qube: a snapshot volume stays with its
   * origin (the template's volume); `pool=` moves only writable non-snapshot
   * volumes (`_patch_pool_config`); a disposable takes its template's pools;
   * otherwise the global `default_pool_<vol>`.
   */
  volumePool(q: Qube, vol: string, pool?: string, pools?: Record<string, string>): string {
    const tpl = q.templateQube();
    const snapshot = (q.klass === "AppVM" && vol === "root") || (q.klass === "DispVM" && (vol === "root" || vol === "private"));
    const fromTemplate = tpl?.volumes.get(vol)?.pool;
    if (snapshot && fromTemplate) return fromTemplate;
    if (pools?.[vol]) return pools[vol]!;
    if (pool && !snapshot && vol !== "kernel") return pool;
    if (q.klass === "DispVM" && fromTemplate) return fromTemplate;
    return String(this.getProp(`default_pool_${vol}`) ?? "varlibqubes");
  }

  private createVolumes(q: Qube, pool?: string, pools?: Record<string, string>): void {
    if (q.klass === "AdminVM" || q.klass === "RemoteVM") return;
    const dir = q.klass === "TemplateVM" ? "vm-templates" : "appvms";
    const tpl = q.templateQube();
    const pick = (vol: string): string => this.volumePool(q, vol, pool, pools);
    const mk = (name: string, size: number, extra: Partial<Volume>): Volume => {
      const p = pick(name);
      const poolObj = this.pools.get(p);
      const dirPath = poolObj?.config.dir_path ?? "/var/lib/qubes";
      const vid = `${dir}/${q.name}/${name}`;
      const vol: Volume = {
        name,
        pool: p,
        vid,
        size,
        usage: 0,
        rw: true,
        source: "",
        path: `${dirPath}/${vid}-dirty.img`,
        saveOnStop: false,
        snapOnStart: false,
        revisionsToKeep: Number(poolObj?.config.revisions_to_keep ?? 1),
        ephemeral: false,
        ...extra,
      };
      return vol;
    };
    const tplVol = (n: string) => tpl?.volumes.get(n);
    const hasTemplate = q.klass === "AppVM" || q.klass === "DispVM";
    const rootSource = q.klass === "DispVM" ? (tplVol("root")?.source ?? "") : (tplVol("root")?.vid ?? "");
    // a snapshot volume takes the size of its source: for a disposable, the root of its template's template
    // (a resized root of the disposable template itself does not count), observed
    const rootSize = (q.klass === "DispVM" ? tpl?.templateQube()?.volumes.get("root")?.size : undefined) ?? tplVol("root")?.size;
    // A disposable copies the rw setting of each of its template's volumes (`DispVM.__init__`; probes-sizes.txt, observed)
    const rwOf = (n: string) => (q.klass === "DispVM" && tplVol(n) !== undefined ? { rw: tplVol(n)!.rw } : {});
    q.volumes.set("root", mk("root", rootSize ?? 10737418240, hasTemplate ? { snapOnStart: true, source: rootSource, ...rwOf("root") } : { saveOnStop: true }));
    // A disposable's private is a snapshot of its disposable template's (that size); any other qube's private
    // starts at the default 2 GiB whatever its template's is (`private_img_size`; probes-sizes.txt, observed)
    q.volumes.set(
      "private",
      q.klass === "DispVM" ? mk("private", tplVol("private")?.size ?? 2147483648, { snapOnStart: true, source: tplVol("private")?.vid ?? "", ...rwOf("private") }) : mk("private", 2147483648, { saveOnStop: true }),
    );
    // `DispVM.default_volume_config`: a disposable's volatile is root_img_size + private_img_size; a disposable
    // copies an explicitly set `ephemeral` of its template's volatile (`DispVM.__init__`; probes-sizes.txt, observed)
    const tplVolatile = q.klass === "DispVM" ? tplVol("volatile") : undefined;
    const ephemeral = tplVolatile?.ephemeralSet ? tplVolatile.ephemeral : this.pools.get(pick("volatile"))?.config.ephemeral_volatile === "True";
    q.volumes.set("volatile", mk("volatile", q.klass === "DispVM" ? 12884901888 : 10737418240, { ephemeral, ...(tplVolatile?.ephemeralSet ? { ephemeralSet: true } : {}), ...rwOf("volatile") }));
    const kernel = q.getProp("kernel");
    const kpool = pick("kernel");
    const kdir = this.pools.get(kpool)?.config.dir_path ?? "/var/lib/qubes/vm-kernels";
    if (this.pools.get(kpool) && this.pools.get(kpool)!.driver !== "linux-kernel") {
      // the kernel volume in an ordinary pool: an empty read-only image of the qube's own
      q.volumes.set("kernel", mk("kernel", 0, { rw: false }));
      return;
    }
    q.volumes.set("kernel", {
      name: "kernel",
      pool: kpool,
      vid: String(kernel ?? ""),
      size: 0,
      usage: 0,
      rw: false,
      source: "",
      path: `${kdir}/${kernel ?? ""}/modules.img`,
      saveOnStop: false,
      snapOnStart: false,
      revisionsToKeep: 0,
      ephemeral: false,
    });
  }

  /**
   * Adds `created-by-<creator>`; `qubes.ext.admin` then adds the tags listed in
   * the creator's `tag-created-vm-with` feature (those events come first, as the
   * extension's handler runs before the event reaches listeners).
   */
  addCreatedByTag(q: Qube, creator: string): void {
    q.addTag(`created-by-${creator}`);
  }

  /**
   * The extensions' handlers of `domain-tag-add:created-by-*`, run after the tag is in the set: `qubes.ext.admin`
   * adds the creator's `tag-created-vm-with` tags, `qubes.ext.gui` sets `guivm` from its `set-created-guivm`
   * feature. Both look the creator up in `app.domains`: a tag naming no qube kills the call (a KeyError), the tag
   * staying set.
   */
  createdByHandlers(q: Qube, tag: string): void {
    const creatorName = tag.slice("created-by-".length);
    const creator = this.domains.get(creatorName);
    if (!creator) throw new SimAbort(`KeyError: ${creatorName}`);
    const extra = creator.features.get("tag-created-vm-with") ?? "";
    for (const t of extra.split(/\s+/).filter((x) => x !== "")) {
      // `Tags.add` refuses other characters with a ValueError, which kills the call
      if (!/^[A-Za-z0-9_-]+$/.test(t)) throw new SimAbort("ValueError: Invalid character in tag");
      q.addTag(t);
    }
    const guivm = creator.features.get("set-created-guivm");
    if (guivm) {
      if (!this.domains.has(guivm)) throw new SimAbort(`KeyError: ${guivm}`);
      q.setProp("guivm", guivm);
    }
  }

  /**
   * Removes a qube as `del app.domains[vm]` and `remove_from_disk` do, with the dependency checks and events.
   * Returns whether the volumes were removed (`remove_from_disk` can die half-way, see below).
   */
  removeQube(q: Qube): boolean {
    if (!q.isAdminVM && q.klass !== "RemoteVM" && q.power !== "Halted") throw qerr("QubesVMNotHaltedError", `Domain is not powered off: '${q.name}'`);
    let inUse = false;
    for (const p of this.props()) if (p.type === "vm" && this.getProp(p.name) === q.name) inUse = true;
    for (const o of this.domains.values()) {
      if (o === q) continue;
      for (const p of o.props()) if (p.type === "vm" && !o.isDefault(p.name) && o.getProp(p.name) === q.name) inUse = true;
    }
    if (inUse) throw qerr("QubesVMInUseError", `Domain is in use: '${q.name}';  see 'journalctl -u qubesd -e' in dom0 for details`);
    const provided = [...this.domains.values()].flatMap((o) => o.assignments.filter((a) => a.backend === q.name));
    if (provided.length) throw qerr("QubesVMInUseError", `VM has devices assigned to other VMs: ${provided.map((a) => a.portId).join(", ")}`);
    this.emit("domain-pre-delete", [["vm", q.name]]);
    this.domains.delete(q.name);
    // `remove_from_disk` stops the volumes first, and stopping a `LinuxModules` kernel volume reads the kernel:
    // one that falls back to a global default_kernel without a value fails it, so the volumes stay in their
    // pools (observed). A kernel volume in an ordinary pool reads no kernel: the volumes go (probes-failures.txt).
    const removed = !this.kernelUnset(q);
    if (removed) for (const v of q.volumes.values()) this.dropVolume(v);
    this.emit("domain-delete", [["vm", q.name]]);
    return removed;
  }

  // -------------------------------------------------------------------------
  // Power

  /**
   * `vm.start()`. A disposable whose start fails is cleaned up (`DispVM.start`), see {@link cleanupDisposable}.
   */
  start(q: Qube): void {
    if (q.klass !== "DispVM") return this.startQube(q);
    try {
      this.startQube(q);
    } catch (e) {
      this.cleanupDisposable(q);
      throw e;
    }
  }

  /**
   * `DispVM.cleanup(force=True)` after a failed start: a disposable still running is killed (which removes it with
   * `auto_cleanup`), then it is removed whatever `auto_cleanup` says (`_auto_cleanup(force=True)`: `del
   * app.domains[vm]`, `remove_from_disk()`, `app.save()`). A failure there replaces the start's: the disposable
   * still in use (QubesVMInUseError, it stays), a `LinuxModules` kernel volume without a kernel, qubes.xml unsaveable.
   */
  private cleanupDisposable(q: Qube): void {
    if (this.domains.get(q.name) !== q) return;
    if (q.isActive()) this.stopped(q);
    if (this.domains.get(q.name) !== q) return;
    if (!this.removeQube(q)) throw new SimAbort("AttributeError: property 'default_kernel' have no default (removing the kernel volume)");
    if (this.storeUnsaveable()) throw new SimAbort("AttributeError: no default_kernel while saving qubes.xml");
  }

  /** The disposables of a disposable template (`DVMTemplateMixin.dispvms`), in `app.domains` order (by name). */
  dispvmsOf(q: Qube): Qube[] {
    return this.sortedDomains().filter((d) => d.klass === "DispVM" && d.vmProp("template") === q);
  }

  /** `Volume.snapshots_disabled`: revisions_to_keep -1 on a `save_on_stop` volume that is no snapshot. */
  snapshotsDisabled(v: Volume): boolean {
    return v.revisionsToKeep === -1 && !v.snapOnStart && v.saveOnStop;
  }

  /**
   * `QubesVM.start()`, in its order: the checks before the storage starts (each failure fires
   * `domain-start-failed` and refuses the start), the netvm chain, the storage, the libvirt definition (a
   * failure stops the storage again: a started `save_on_stop` volume is committed), then QubesDB (a failure
   * kills the qube), firing the lifecycle events.
   */
  private startQube(q: Qube): void {
    if (q.isAdminVM) throw qerr("QubesVMNotHaltedError", "Cannot start Dom0 fake domain!");
    if (q.klass === "RemoteVM") throw qerr("QubesVMNotHaltedError", "Cannot start a RemoteVM.");
    if (q.power !== "Halted") return;
    const failed = (e: unknown): unknown => {
      q.emit("domain-start-failed", [["reason", e instanceof SimError ? e.message : e instanceof SimAbort ? e.reason : String(e)]]);
      return e;
    };
    // `prohibit-start`: any non-empty value refuses the start, with the value as the rationale
    const prohibit = q.features.get("prohibit-start");
    if (prohibit) throw failed(qerr("QubesException", `Qube start is prohibited. Rationale: ${prohibit}`));
    const tpl = q.templateQube();
    if (q.hasProp("template") && !tpl) throw qerr("QubesNoTemplateError", `Template for the domain '${q.name}' not found`);
    q.emit("domain-pre-start", [["start_guid", true], ["mem_required", null]]);
    // `DVMTemplateMixin`'s domain-pre-start handler: an app qube with a volume whose snapshots are disabled
    // does not start while one of its disposables runs
    if (q.klass === "AppVM" && [...q.volumes.values()].some((v) => this.snapshotsDisabled(v))) {
      const running = this.dispvmsOf(q).find((d) => d.isActive());
      if (running) throw failed(qerr("QubesVMNotHaltedError", `Domain is not powered off: '${running.name}'`));
    }
    // a `required` assignment that matches no device of its backend refuses the start
    for (const dc of DEVICE_CLASSES) {
      for (const a of q.assignments) {
        if (a.devclass !== dc || a.mode !== "required") continue;
        const backend = this.domains.get(a.backend);
        const found = backend?.exposed.some((d) => d.devclass === dc && (a.portId === "*" || d.portId === a.portId) && (a.deviceId === "*" || d.deviceId === a.deviceId));
        if (!found) throw failed(qerr("QubesException", `${dc.charAt(0).toUpperCase()}${dc.slice(1)} device ${a.backend}:${a.portId}:${a.deviceId} not available`));
      }
    }
    // `storage.verify()` (domain-verify-files) comes before the netvm chain starts, observed; a `LinuxModules`
    // kernel volume whose kernel falls back to a global default_kernel without a value kills the call there (observed)
    if (this.kernelUnset(q)) {
      q.emit("domain-start-failed", [["reason", "property 'default_kernel' have no default"]]);
      throw new SimAbort("AttributeError: property 'default_kernel' have no default (verifying the kernel volume)");
    }
    // `ReflinkVolume.verify`: a snapshot needs its origin's clean image, which an origin started with snapshots
    // disabled has renamed to its dirty one
    for (const v of q.volumes.values()) {
      if (!v.snapOnStart || this.pools.get(v.pool)?.driver !== "file-reflink") continue;
      const src = this.sourceVolume(v);
      if (src && src.dirty && this.snapshotsDisabled(src)) {
        const dir = this.pools.get(src.pool)?.config.dir_path ?? "/var/lib/qubes";
        throw failed(qerr("StoragePoolException", `Missing image file '${dir}/${src.vid}.img' for volume ${v.vid}`));
      }
    }
    q.emit("domain-verify-files");
    const net = q.netvmQube();
    if (net && net.power === "Halted") {
      try {
        this.start(net);
      } catch (e) {
        throw failed(e);
      }
    }
    // `storage.start()`: a `save_on_stop` volume gets its dirty image, a snapshot hard-links its origin's clean one
    for (const v of q.volumes.values()) {
      if (v.saveOnStop) v.dirty = true;
      if (v.snapOnStart) v.snapOf = this.sourceVolume(v)?.image ?? 0;
    }
    q.emit("domain-pre-spawn", [["start_guid", true]]);
    // the libvirt definition (`create_config_file`): a failure there stops the storage again
    const definition = this.definitionError(q);
    if (definition) {
      q.emit("domain-start-failed", [["reason", definition]]);
      this.stopVolumes(q);
      throw new SimAbort(`jinja2.exceptions.UndefinedError: ${definition}`);
    }
    q.xid = this.allocXid();
    q.startTime = (Date.now() / 1000).toFixed(6).replace(/0+$/, "").replace(/\.$/, ".0");
    q.power = "Paused";
    for (const p of ["xid", "stubdom_xid", "start_time"]) q.emit(`property-reset:${p}`, [["name", p]]);
    q.emit("domain-spawn", [["start_guid", true]]);
    // `create_qdb_entries`: the gui extension's domain-qdb-create handler writes the keyboard layout of a qube
    // whose guivm is another qube; a failure there (a guivm loop: RecursionError) kills the qube again
    try {
      const guivm = q.hasProp("guivm") ? q.vmProp("guivm") : undefined;
      if (guivm && guivm !== q) q.getProp("keyboard_layout");
    } catch (e) {
      failed(e);
      this.stopped(q);
      throw e;
    }
    q.emit("domain-qdb-create");
    q.emit("domain-pre-unpaused");
    q.power = "Running";
    q.emit("domain-unpaused");
    q.emit("domain-start", [["start_guid", true]]);
  }

  /**
   * Why the libvirt definition of a qube cannot be rendered (jinja2's StrictUndefined turns an AttributeError
   * of a property into an UndefinedError), or `undefined`. Outside HVM, `kernel_path` is the kernel directory of
   * the kernel volume: only a `LinuxModules` volume (a `linux-kernel` pool) has one, so a qube with a kernel and
   * its kernel volume in an ordinary pool cannot start (observed: probes-failures.txt); a kernel that falls back to
   * a global default_kernel without a value fails there too (in HVM, where the template reads `vm.kernel`).
   */
  private definitionError(q: Qube): string | undefined {
    if (!q.hasProp("kernel")) return undefined;
    const obj = `'qubes.vm.${q.klass.toLowerCase()}.${q.klass} object'`;
    const hvm = q.hasProp("virt_mode") && q.getProp("virt_mode") === "hvm";
    const kernel = q.getProp("kernel");
    if (kernel === undefined) return `${obj} has no attribute '${hvm ? "kernel" : "kernel_path"}'`;
    const kv = q.volumes.get("kernel");
    if (!hvm && kernel && kv && this.pools.get(kv.pool)?.driver !== "linux-kernel") return `${obj} has no attribute 'kernel_path'`;
    return undefined;
  }

  /**
   * `vm.shutdown(force, wait)` (the simulator's qubes stop at once). dom0 and a RemoteVM have a `shutdown()`
   * without those arguments: the call dies with a TypeError in qubesd.
   */
  shutdown(q: Qube, force: boolean, wait = false): void {
    if (q.isAdminVM || q.klass === "RemoteVM") throw new SimAbort("TypeError: shutdown() got an unexpected keyword argument 'force'");
    if (q.power === "Halted") throw qerr("QubesVMNotStartedError", `Domain is powered off: '${q.name}'`);
    q.emit("domain-pre-shutdown", [["force", force]]);
    // `NetVMMixin.on_domain_pre_shutdown`: a network provider with running (or paused) clients refuses unless forced
    let refusal: SimError | undefined;
    if (q.getProp("provides_network") === true && !force) {
      const running = this.sortedDomains().filter((c) => c !== q && c.power !== "Halted" && c.hasProp("netvm") && c.vmProp("netvm") === q);
      if (running.length) refusal = qerr("QubesVMInUseError", `There are other VMs connected to this VM: ${running.map((c) => c.name).join(", ")}`);
    }
    if (!refusal && q.power === "Paused" && !force) refusal = qerr("QubesVMNotRunningError", `Domain not running (either powered off or paused): '${q.name}'`);
    if (refusal) {
      q.emit("domain-shutdown-failed", [["reason", refusal.message]]);
      throw refusal;
    }
    this.stopped(q, wait);
  }

  /** `vm.kill()`. */
  kill(q: Qube): void {
    if (q.isAdminVM) throw qerr("QubesVMError", "Cannot kill Dom0 fake domain!");
    if (q.klass === "RemoteVM") throw qerr("QubesVMError", "Cannot kill a RemoteVM.");
    if (q.power === "Halted") throw qerr("QubesVMNotStartedError", `Domain is powered off: '${q.name}'`);
    this.stopped(q);
  }

  /**
   * The qube's kernel volume is a `LinuxModules` volume (in a `linux-kernel` pool) and the qube's kernel falls
   * back to a global default_kernel that has no value: whatever reads that volume's vid or paths (verifying,
   * stopping, removing it) dies with an AttributeError in qubesd. A kernel volume in an ordinary pool reads no kernel.
   */
  kernelUnset(q: Qube): boolean {
    if (!(q.hasProp("kernel") && q.getProp("kernel") === undefined)) return false;
    const kv = q.volumes.get("kernel");
    return kv !== undefined && this.pools.get(kv.pool)?.driver === "linux-kernel";
  }

  /**
   * `Storage.stop()`: a started `save_on_stop` volume is committed (with snapshots disabled, its dirty image is
   * renamed back: the same file, no revision); a snapshot's images are removed.
   */
  private stopVolumes(q: Qube): void {
    for (const v of q.volumes.values()) {
      delete v.snapOf;
      if (v.dirty) {
        v.dirty = false;
        if (!this.snapshotsDisabled(v)) this.commitVolume(v);
      }
    }
  }

  private stopped(q: Qube, waited = true): void {
    q.power = "Halted";
    this.stopVolumes(q);
    q.emit("domain-stopped");
    // `Storage.stop()` reads each volume's state file, and the kernel volume's falls back to a global
    // default_kernel without a value: `on_domain_stopped` dies there, the stops of the other volumes
    // already under way (a killed qube's revisions show them, observed).
    // A call that waits for the stop (Kill, Shutdown+wait) dies with it; the qube is halted all the same.
    if (this.kernelUnset(q)) {
      q.xid = -1;
      q.startTime = null;
      if (waited) throw new SimAbort("AttributeError: property 'default_kernel' have no default (stopping the kernel volume)");
      return;
    }
    for (const p of ["xid", "stubdom_xid", "start_time"]) q.emit(`property-reset:${p}`, [["name", p]]);
    q.xid = -1;
    q.startTime = null;
    q.emit("domain-shutdown");
    if (q.klass === "DispVM" && q.getProp("auto_cleanup") === true && this.domains.get(q.name) === q) {
      try {
        this.removeQube(q);
      } catch {
        // A disposable still in use stays.
      }
    }
  }

  /** dom0 and a RemoteVM have no `pause`, `unpause` or `resume`: qubesd dies with an AttributeError. */
  private noSuchPowerMethod(q: Qube, name: string): void {
    if (q.isAdminVM || q.klass === "RemoteVM") throw new SimAbort(`AttributeError: '${q.klass}' object has no attribute '${name}'`);
  }

  pause(q: Qube): void {
    this.noSuchPowerMethod(q, "pause");
    // A paused qube is still running for qubesd (`is_running()`: libvirt's `isActive`), and libvirt's
    // libxl driver leaves a paused domain as it is and succeeds: no state change, no `domain-paused`.
    // (The real qubesd run without Xen uses libvirt's test driver, which refuses instead: an artefact.)
    if (q.power === "Paused") {
      q.emit("domain-pre-paused");
      return;
    }
    if (q.power !== "Running") throw qerr("QubesVMNotRunningError", `Domain not running (either powered off or paused): '${q.name}'`);
    q.emit("domain-pre-paused");
    q.power = "Paused";
    q.emit("domain-paused");
  }

  unpause(q: Qube): void {
    this.noSuchPowerMethod(q, "unpause");
    if (q.power !== "Paused") throw qerr("QubesVMNotPausedError", `Domain is not paused: '${q.name}'`);
    q.emit("domain-pre-unpaused");
    q.power = "Running";
    q.emit("domain-unpaused");
  }

  suspend(q: Qube): void {
    if (q.isAdminVM) throw qerr("QubesVMError", "Cannot suspend Dom0 fake domain!");
    if (q.klass === "RemoteVM") throw qerr("QubesVMError", "Cannot suspend a RemoteVM.");
    if (q.power !== "Running") throw qerr("QubesVMNotRunningError", `Domain not running (either powered off or paused): '${q.name}'`);
    q.power = "Suspended";
    q.emit("domain-suspended");
  }

  /** `vm.resume()`: wakes a suspended qube, otherwise it is `unpause()`. */
  resume(q: Qube): void {
    this.noSuchPowerMethod(q, "resume");
    if (q.power !== "Suspended") return this.unpause(q);
    q.power = "Running";
    q.emit("domain-resumed");
  }
}

/**
 * A volume initialised in a pool, as the pool lists it: `ReflinkPool` keeps
 * its volumes in a dict by vid (a volume of a vid already listed, e.g. of a
 * failed create retried under the same name, keeps the first one's place),
 * `FilePool` in a list (each one listed). Observed: probes-storage.txt.
 */
function listVolume(p: { driver: string; volumes: string[] }, vid: string): void {
  if (p.driver === "file-reflink" && p.volumes.includes(vid)) return;
  p.volumes.push(vid);
}
