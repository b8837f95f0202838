/**
 * The object model: {@link Qubes} (the app: global properties, labels,
 * pools, classes, qube collection) and {@link Qube} (properties, lifecycle,
 * features, tags, devices, firewall, volumes, notes). Everything is lazy:
 * every method is one (or a few) Admin API calls.
 */
import { AdminClient, type AdminCall, type CallOptions } from "./client.js";
import { calls, type CreateOptions } from "./calls.js";
import type { AssignmentMode, DeviceAssignment, DeviceInfo } from "./devices.js";
import { QubesEmptyReplyError, QubesException, QubesFeatureNotFoundError } from "./errors.js";
import { eventStream, QubesCache, parseVmStats, type EventStreamOptions, type QubesCacheOptions, type VmStats } from "./events.js";
import type { FirewallRule } from "./firewall.js";
import {
  encodePropertyValue,
  GLOBAL_PROPERTY_TYPES,
  QUBE_PROPERTY_TYPES,
  type GlobalProperties,
  type Named,
  type PropertyInput,
  type QubeProperties,
} from "./properties.js";
import type { QubesEvent } from "./protocol.js";
import {
  CommandTransport,
  QrexecClientVmTransport,
  UnixSocketTransport,
  type Transport,
} from "./transport.js";
import type { CurrentState, PoolDriver, PowerState, PropertyJsValue, PropertyValue, QubeListEntry, VolumeInfo } from "./values.js";

/** Options of {@link Qubes}. */
export interface QubesOptions {
  /** The transport; default: the dom0 socket (`$QUBESD_SOCKET` or `/var/run/qubesd.sock`). */
  transport?: Transport;
  /** Source written in request headers (default `dom0`). */
  source?: string;
  /** Default call timeout in ms (default 120000; `0` = none). */
  timeout?: number;
}

/**
 * Properties qubesd computes, or sets once at creation: `setProperty` does
 * not take them (qubesd refuses the write: "property 'visible_ip' on AppVM
 * instance cannot be set").
 */
export type ReadOnlyProperty =
  | "dns" | "gateway" | "gateway6" | "icon" | "klass" | "start_time" | "stubdom_uuid" | "stubdom_xid" | "updateable"
  | "visible_gateway" | "visible_gateway6" | "visible_ip" | "visible_ip6" | "visible_netmask" | "xid" | "name" | "qid" | "uuid"
  | "dispid" | "is_preload" | "no_cpus";

/** The properties of each qube class (as `admin.vm.property.List` lists them for it). */
export interface QubeClassProperties {
  AppVM: QubeProperties;
  TemplateVM: Omit<QubeProperties, "template" | "template_for_dispvms"> & { appvm_default_bootmode: string };
  StandaloneVM: Omit<QubeProperties, "template">;
  DispVM: Omit<QubeProperties, "template_for_dispvms"> & { auto_cleanup: boolean; dispid: number; is_preload: boolean };
}

/** A qube class with a known property table. */
export type KnownQubeClass = keyof QubeClassProperties;

/**
 * What `setProperty` takes for a property of decoded type `T`: a qube or
 * label reference (name, object, or `null` for none), a boolean, an integer
 * (a number, a bigint or its decimal text), or a string.
 */
export type PropertyInputFor<T> = null extends T
  ? string | null | Named
  : [T] extends [boolean]
    ? boolean
    : [Exclude<T, undefined>] extends [number]
      ? number | bigint | `${bigint}`
      : string;

/**
 * The names `setProperty` takes on a holder with properties `P`: any
 * writable one; a name only known at run time (`string`) is checked by
 * qubesd; a literal that is not a writable property does not compile.
 */
export type SettableName<P, N extends string, RO extends string = ReadOnlyProperty> = string extends N ? N : N extends Exclude<keyof P, RO> ? N : never;

/** The value `setProperty(name, value)` takes for the property `N` of `P`. */
export type SettableValue<P, N extends string> = string extends N ? PropertyInput : N extends keyof P ? PropertyInputFor<P[N]> : never;

/** A qube of any class (what the per-qube collections hold). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyQube = Qube<any>;

/** A property holder: the app (global) or one qube. */
abstract class PropertyHolder<P, RO extends string = ReadOnlyProperty> {
  protected abstract readonly target: string | undefined;
  protected abstract readonly types: Readonly<Record<string, string>>;
  abstract readonly app: Qubes;

  /** The names of all properties. */
  propertyList(options?: CallOptions): Promise<string[]> {
    return this.app.run(calls.propertyList(this.target), options);
  }

  /** A property with its type and whether it is the default. */
  getProperty<K extends keyof P & string>(name: K, options?: CallOptions): Promise<PropertyValue<P[K] & PropertyJsValue>>;
  getProperty(name: string, options?: CallOptions): Promise<PropertyValue>;
  getProperty(name: string, options?: CallOptions): Promise<PropertyValue> {
    return this.app.run(calls.propertyGet(name, this.target), options);
  }

  /** The decoded value of a property (`undefined` for an int/bool without a value). */
  get<K extends keyof P & string>(name: K, options?: CallOptions): Promise<P[K]>;
  get(name: string, options?: CallOptions): Promise<PropertyJsValue>;
  async get(name: string, options?: CallOptions): Promise<unknown> {
    return (await this.getProperty(name, options)).value;
  }

  /** Every property (one call); order as qubesd sends it. */
  properties(options?: CallOptions): Promise<Map<string, PropertyValue>> {
    return this.app.run(calls.propertyGetAll(this.target), options);
  }

  /** The default a property would have after a reset, or `undefined` if it has none. */
  propertyDefault(name: string, options?: CallOptions): Promise<Omit<PropertyValue, "isDefault"> | undefined> {
    return this.app.run(calls.propertyGetDefault(name, this.target), options);
  }

  /** The help text of a property. */
  propertyHelp(name: string, options?: CallOptions): Promise<string> {
    return this.app.run(calls.propertyHelp(name, this.target), options);
  }

  /** Whether a property currently has its default value. */
  async isDefault(name: string, options?: CallOptions): Promise<boolean> {
    return (await this.getProperty(name, options)).isDefault;
  }

  /**
   * Sets a property. Booleans are sent as `True`/`False`, `null` as None
   * (empty), `Qube`/`Label` objects by name; strings as they are.
   *
   * For a literal name the value is typed: `setProperty("memory", "abc")`,
   * an unknown name or a read-only one (`visible_ip`) do not compile; a name
   * held in a `string` takes any {@link PropertyInput} (qubesd checks it).
   *
   * @example
   * ```ts
   * await qubes.qube("work").setProperty("memory", 800);
   * await qubes.qube("work").setProperty("netvm", null); // no network
   * await qubes.setProperty("default_dispvm", "default-dvm");
   * ```
   */
  setProperty<N extends string>(name: N & SettableName<P, N, RO>, value: SettableValue<P, N>, options?: CallOptions): Promise<void>;
  setProperty(name: string, value: PropertyInput, options?: CallOptions): Promise<void> {
    const type = this.types[name] as Parameters<typeof encodePropertyValue>[2];
    return this.app.run(calls.propertySet(name, encodePropertyValue(name, value, type), this.target), options);
  }

  /** Resets a property to its default. */
  resetProperty(name: string, options?: CallOptions): Promise<void> {
    return this.app.run(calls.propertyReset(name, this.target), options);
  }
}

/** A label: name, colour (`0xRRGGBB`) and index. */
export class Label {
  constructor(
    readonly app: Qubes,
    readonly name: string,
  ) {}
  /** The colour as `0xRRGGBB`. */
  color(options?: CallOptions): Promise<string> {
    return this.app.run(calls.labelGet(this.name), options);
  }
  /** The numeric index (1–8 for the defaults). */
  index(options?: CallOptions): Promise<number> {
    return this.app.run(calls.labelIndex(this.name), options);
  }
  /** The icon name qubesd derives from the label (`appvm-<name>`). */
  get icon(): string {
    return `appvm-${this.name}`;
  }
}

/** A storage pool. */
export class Pool {
  constructor(
    readonly app: Qubes,
    readonly name: string,
  ) {}
  /** The pool's configuration (`driver`, `dir_path` …, plus `size`/`usage`/`included_in` when sent). */
  info(options?: CallOptions): Promise<Record<string, string>> {
    return this.app.run(calls.poolInfo(this.name), options);
  }
  /** `data_size`, `data_usage` (and `metadata_*` for some drivers). */
  usageDetails(options?: CallOptions): Promise<Record<string, number>> {
    return this.app.run(calls.poolUsageDetails(this.name), options);
  }
  /** The volume ids in the pool. */
  volumes(options?: CallOptions): Promise<string[]> {
    return this.app.run(calls.poolVolumeList(this.name), options);
  }
  setRevisionsToKeep(n: number, options?: CallOptions): Promise<void> {
    return this.app.run(calls.poolSetRevisionsToKeep(this.name, n), options);
  }
  setEphemeralVolatile(value: boolean, options?: CallOptions): Promise<void> {
    return this.app.run(calls.poolSetEphemeralVolatile(this.name, value), options);
  }
}

/** The features of a qube (plain strings; `''` is false by convention, `'1'` true). */
export class Features {
  constructor(readonly qube: AnyQube) {}
  private get dest(): string {
    return this.qube.dest;
  }
  list(options?: CallOptions): Promise<string[]> {
    return this.qube.app.run(calls.featureList(this.dest), options);
  }
  /** The value, or `undefined` when the feature is not set. */
  async get(name: string, options?: CallOptions): Promise<string | undefined> {
    try {
      return await this.qube.app.run(calls.featureGet(this.dest, name), options);
    } catch (err) {
      if (err instanceof QubesFeatureNotFoundError) return undefined;
      throw err;
    }
  }
  /** The value; throws {@link QubesFeatureNotFoundError} when not set. */
  getOrThrow(name: string, options?: CallOptions): Promise<string> {
    return this.qube.app.run(calls.featureGet(this.dest, name), options);
  }
  /** The value from the qube, else its template chain (`CheckWithTemplate`). */
  check(
    name: string,
    via: "CheckWithTemplate" | "CheckWithNetvm" | "CheckWithAdminVM" | "CheckWithTemplateAndAdminVM" = "CheckWithTemplate",
    options?: CallOptions,
  ): Promise<string> {
    return this.qube.app.run(calls.featureGet(this.dest, name, via), options);
  }
  /** Sets a feature; `false` is sent as `''`, `true` as `'1'`. */
  set(name: string, value: string | boolean, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.featureSet(this.dest, name, value), options);
  }
  remove(name: string, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.featureRemove(this.dest, name), options);
  }
  /** Every feature and its value (List, then one Get each). */
  async all(options?: CallOptions): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const n of await this.list(options)) out.set(n, await this.getOrThrow(n, options));
    return out;
  }
}

/** The tags of a qube. */
export class Tags {
  constructor(readonly qube: AnyQube) {}
  /** Sorted tag names. */
  list(options?: CallOptions): Promise<string[]> {
    return this.qube.app.run(calls.tagList(this.qube.dest), options);
  }
  has(tag: string, options?: CallOptions): Promise<boolean> {
    return this.qube.app.run(calls.tagGet(this.qube.dest, tag), options);
  }
  add(tag: string, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.tagSet(this.qube.dest, tag), options);
  }
  /** Removes a tag; throws `QubesTagNotFoundError` when absent. */
  remove(tag: string, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.tagRemove(this.qube.dest, tag), options);
  }
}

/** The devices of one class (`pci`, `block`, `usb`, `mic` …) from one qube's point of view. */
export class DeviceCollection {
  constructor(
    readonly qube: AnyQube,
    readonly devclass: string,
  ) {}
  /** Devices this qube exposes as a backend (optionally one port). */
  available(portId = "", options?: CallOptions): Promise<DeviceInfo[]> {
    return this.qube.app.run(calls.deviceAvailable(this.qube.dest, this.devclass, portId), options);
  }
  /** Persistent assignments to this qube (optionally one backend port). */
  assigned(filter?: { backendDomain: string; portId: string }, options?: CallOptions): Promise<DeviceAssignment[]> {
    return this.qube.app.run(calls.deviceAssigned(this.qube.dest, this.devclass, filter), options);
  }
  /** Devices currently attached to this (running) qube. */
  attached(filter?: { backendDomain: string; portId: string }, options?: CallOptions): Promise<DeviceAssignment[]> {
    return this.qube.app.run(calls.deviceAttached(this.qube.dest, this.devclass, filter), options);
  }
  private full(a: Omit<DeviceAssignment, "devclass"> & { devclass?: string }): DeviceAssignment {
    const out: DeviceAssignment = { ...a, devclass: a.devclass ?? this.devclass, options: a.options ?? {} };
    if (out.frontendDomain === undefined && !this.qube.dest.startsWith("uuid:")) out.frontendDomain = this.qube.dest;
    return out;
  }
  /** Assigns a device (mode `required`, `ask-to-attach` or `auto-attach`). */
  assign(a: Omit<DeviceAssignment, "devclass"> & { devclass?: string }, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.deviceAssign(this.qube.dest, this.full(a)), options);
  }
  unassign(a: Pick<DeviceAssignment, "backendDomain" | "portId" | "deviceId">, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.deviceUnassign(this.qube.dest, { ...a, devclass: this.devclass }), options);
  }
  /** Attaches a device now (mode `manual`). */
  attach(a: Omit<DeviceAssignment, "devclass" | "mode"> & { devclass?: string; mode?: AssignmentMode }, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.deviceAttach(this.qube.dest, this.full({ ...a, mode: "manual" })), options);
  }
  detach(a: Pick<DeviceAssignment, "backendDomain" | "portId" | "deviceId">, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.deviceDetach(this.qube.dest, { ...a, devclass: this.devclass }), options);
  }
  /** Changes the mode of an existing assignment. */
  setMode(a: Pick<DeviceAssignment, "backendDomain" | "portId" | "deviceId">, mode: Exclude<AssignmentMode, "manual">, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.deviceSetAssignment(this.qube.dest, { ...a, devclass: this.devclass }, mode), options);
  }
}

/** The device deny list of a qube (interface codes such as `u0e****`). */
export class DeviceDenyList {
  constructor(readonly qube: AnyQube) {}
  list(options?: CallOptions): Promise<string[]> {
    return this.qube.app.run(calls.deniedList(this.qube.dest), options);
  }
  add(codes: string[], options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.deniedAdd(this.qube.dest, codes), options);
  }
  /** Removes codes, or every entry with `"all"`. */
  remove(codes: string[] | "all", options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.deniedRemove(this.qube.dest, codes), options);
  }
}

/** The firewall of a qube. After the rules, traffic is dropped. */
export class Firewall {
  constructor(readonly qube: AnyQube) {}
  /** The rules in qubesd's normalised form (expired rules omitted). */
  get(options?: CallOptions): Promise<FirewallRule[]> {
    return this.qube.app.run(calls.firewallGet(this.qube.dest), options);
  }
  /** Replaces the whole list (write an explicit final `{ action: "accept" }` for allow-by-default). */
  set(rules: readonly (FirewallRule | string)[], options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.firewallSet(this.qube.dest, rules), options);
  }
  /** Re-applies the rules (re-resolves DNS names). */
  reload(options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.firewallReload(this.qube.dest), options);
  }
}

/** One volume of a qube (`root`, `private`, `volatile`, `kernel`). */
export class Volume {
  constructor(
    readonly qube: AnyQube,
    readonly name: string,
  ) {}
  private get d(): string {
    return this.qube.dest;
  }
  info(options?: CallOptions): Promise<VolumeInfo> {
    return this.qube.app.run(calls.volumeInfo(this.d, this.name), options);
  }
  /** Revision ids, oldest first. */
  revisions(options?: CallOptions): Promise<string[]> {
    return this.qube.app.run(calls.volumeListSnapshots(this.d, this.name), options);
  }
  revert(revision: string, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.volumeRevert(this.d, this.name, revision), options);
  }
  /** Resizes to `size` bytes (qubesd may accept shrinking; check first if that matters). */
  resize(size: number | bigint, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.volumeResize(this.d, this.name, size), options);
  }
  setRevisionsToKeep(n: number, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.volumeSetRevisionsToKeep(this.d, this.name, n), options);
  }
  setRw(rw: boolean, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.volumeSetRw(this.d, this.name, rw), options);
  }
  setEphemeral(value: boolean, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.volumeSetEphemeral(this.d, this.name, value), options);
  }
  clear(options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.volumeClear(this.d, this.name), options);
  }
  /** Starts a clone from this volume; returns the token for {@link Volume.cloneTo}. */
  cloneFrom(options?: CallOptions): Promise<string> {
    return this.qube.app.run(calls.volumeCloneFrom(this.d, this.name), options);
  }
  /** Finishes a clone into this volume. */
  cloneTo(token: string, options?: CallOptions): Promise<void> {
    return this.qube.app.run(calls.volumeCloneTo(this.d, this.name, token), options);
  }
}

/**
 * One qube (addressed by name or `uuid:…`); get it with {@link Qubes.qube}.
 * `P` is its property table: `qubes.qube<"TemplateVM">(name)` types
 * `setProperty` for that class.
 *
 * @example
 * ```ts
 * const work = qubes.qube("work");
 * await work.setProperty("memory", 800);
 * console.log(await work.get("netvm"), await work.tags.list(), await work.powerState());
 * await work.features.set("service.crond", "1");
 * ```
 */
export class Qube<P = QubeProperties> extends PropertyHolder<P> {
  readonly features: Features;
  readonly tags: Tags;
  readonly firewall: Firewall;
  readonly deniedDevices: DeviceDenyList;
  protected readonly types = QUBE_PROPERTY_TYPES;

  constructor(
    readonly app: Qubes,
    /** The destination used in calls: a name or `uuid:<uuid>`. */
    readonly dest: string,
  ) {
    super();
    this.features = new Features(this);
    this.tags = new Tags(this);
    this.firewall = new Firewall(this);
    this.deniedDevices = new DeviceDenyList(this);
  }

  protected get target(): string {
    return this.dest;
  }

  /** The name (or `uuid:…`) this object addresses. */
  get name(): string {
    return this.dest;
  }

  /** This qube's line of `admin.vm.List` (class, state, uuid). */
  async info(options?: CallOptions): Promise<QubeListEntry> {
    const list = await this.app.run(calls.vmList(this.dest), options);
    const e = list[0];
    if (!e) throw new QubesEmptyReplyError(`admin.vm.List for ${this.dest} returned no qube`);
    return e;
  }

  /** The power state (from `admin.vm.List`). */
  async powerState(options?: CallOptions): Promise<PowerState> {
    return (await this.info(options)).state;
  }

  /** The class (`AppVM` …). */
  async class(options?: CallOptions): Promise<string> {
    return (await this.info(options)).class;
  }

  /** The label as an object (`null` when none). */
  async label(options?: CallOptions): Promise<Label | null> {
    const name = (await this.getProperty("label", options)).value;
    return typeof name === "string" && name ? this.app.label(name) : null;
  }

  /** A qube-typed property as a {@link Qube} (`null` for None). */
  async getQube(name: "netvm" | "template" | "default_dispvm" | "guivm" | "audiovm" | "management_dispvm" | "relayvm" | (string & {}), options?: CallOptions): Promise<Qube | null> {
    const v = await this.getProperty(name, options);
    return typeof v.value === "string" && v.type === "vm" ? this.app.qube(v.value) : null;
  }

  start(options?: CallOptions): Promise<void> {
    return this.app.run(calls.start(this.dest), options);
  }
  /** Shuts down; `wait` blocks until halted (qubesd's own timeout applies), `force` ignores dependents. */
  shutdown(flags: { force?: boolean; wait?: boolean } = {}, options?: CallOptions): Promise<void> {
    return this.app.run(calls.shutdown(this.dest, flags), options);
  }
  kill(options?: CallOptions): Promise<void> {
    return this.app.run(calls.kill(this.dest), options);
  }
  pause(options?: CallOptions): Promise<void> {
    return this.app.run(calls.pause(this.dest), options);
  }
  unpause(options?: CallOptions): Promise<void> {
    return this.app.run(calls.unpause(this.dest), options);
  }
  suspend(options?: CallOptions): Promise<void> {
    return this.app.run(calls.suspend(this.dest), options);
  }
  resume(options?: CallOptions): Promise<void> {
    return this.app.run(calls.resume(this.dest), options);
  }
  /** Memory, CPU time and power state. */
  currentState(options?: CallOptions): Promise<CurrentState> {
    return this.app.run(calls.currentState(this.dest), options);
  }
  /** Removes the qube (must be halted and unused). */
  remove(options?: CallOptions): Promise<void> {
    return this.app.run(calls.remove(this.dest), options);
  }
  /**
   * Creates a disposable from this disposable template (halted; start it),
   * addressed by its new name, or by `uuid:…` with `uuid: true`.
   */
  async createDisposable(flags: { uuid?: boolean } = {}, options?: CallOptions): Promise<Qube> {
    return this.app.qube(await this.app.run(calls.createDisposable(this.dest, flags), options));
  }

  /** Asks qubesd to preload disposables of this template (4.3 `preload-dispvm-max`); returns nothing. */
  async preloadDisposable(options?: CallOptions): Promise<void> {
    await this.app.run(calls.createDisposable(this.dest, { preload: true }), options);
  }

  getNotes(options?: CallOptions): Promise<string> {
    return this.app.run(calls.notesGet(this.dest), options);
  }
  setNotes(notes: string, options?: CallOptions): Promise<void> {
    return this.app.run(calls.notesSet(this.dest, notes), options);
  }

  /** The devices of one class. */
  devices(devclass: string): DeviceCollection {
    return new DeviceCollection(this, devclass);
  }

  /** Volume names. */
  volumeNames(options?: CallOptions): Promise<string[]> {
    return this.app.run(calls.volumeList(this.dest), options);
  }
  volume(name: string): Volume {
    return new Volume(this, name);
  }

  /** This qube's events (reconnecting; see {@link eventStream}). */
  events(options: Omit<EventStreamOptions, "dest"> = {}): AsyncGenerator<QubesEvent> {
    return eventStream(this.app.client, { ...options, dest: this.dest });
  }
}

/** Options of {@link Qubes.cloneQube}. */
export interface CloneOptions {
  /** Class of the new qube (default: the source's). */
  class?: string;
  pool?: string;
  pools?: Record<string, string>;
  /** Keep going when copying a property, feature, tag or volume fails. */
  ignoreErrors?: boolean;
  ignoreVolumes?: boolean;
  ignoreDevices?: boolean;
}

/**
 * The Admin API from the point of view of a script: the app object of
 * `qubesadmin.Qubes()`. Create with a transport, or use {@link Qubes.local}
 * (dom0 socket) / {@link Qubes.remote} (`qrexec-client-vm`).
 *
 * @example
 * ```ts
 * import { Qubes, UnixSocketTransport } from "@qubes-kit/sdk";
 *
 * const qubes = Qubes.local(); // or: new Qubes({ transport: new UnixSocketTransport({ path: "/tmp/sim.sock" }) })
 * for (const q of await qubes.list()) console.log(q.name, q.class, q.state);
 * await qubes.setProperty("default_dispvm", "default-dvm");
 * for await (const e of qubes.events()) console.log(e.subject, e.event);
 * ```
 */
export class Qubes extends PropertyHolder<GlobalProperties, ReadOnlyProperty | "maxmem"> {
  readonly client: AdminClient;
  protected readonly target = undefined;
  protected readonly types = GLOBAL_PROPERTY_TYPES;

  constructor(options: QubesOptions = {}) {
    super();
    const o: ConstructorParameters<typeof AdminClient>[0] = { transport: options.transport ?? new UnixSocketTransport() };
    if (options.source !== undefined) o.source = options.source;
    if (options.timeout !== undefined) o.timeout = options.timeout;
    this.client = new AdminClient(o);
  }

  get app(): Qubes {
    return this;
  }

  /** The dom0 socket (path, else `$QUBESD_SOCKET`, else `/var/run/qubesd.sock`). */
  static local(path?: string, options: Omit<QubesOptions, "transport"> = {}): Qubes {
    return new Qubes({ ...options, transport: new UnixSocketTransport(path === undefined ? {} : { path }) });
  }

  /** From a management qube through `qrexec-client-vm`. */
  static remote(options: Omit<QubesOptions, "transport"> & { program?: string } = {}): Qubes {
    return new Qubes({ ...options, transport: new QrexecClientVmTransport(options.program ? { program: options.program } : {}) });
  }

  /** Through any command (e.g. `["ssh", "mgmt", "qrexec-client-vm", "{dest}", "{service}"]`). */
  static command(argv: string[], options: Omit<QubesOptions, "transport"> = {}): Qubes {
    return new Qubes({ ...options, transport: new CommandTransport({ argv }) });
  }

  /** Runs a call described as data. */
  run<T>(call: AdminCall<T>, options?: CallOptions): Promise<T> {
    return this.client.run(call, options);
  }

  /** Any call by name; returns the success text. For methods this SDK has no wrapper for. */
  call(method: string, dest = "dom0", arg = "", payload: string | Uint8Array = "", options?: CallOptions): Promise<string> {
    return this.client.callText({ method, dest, arg, payload }, options);
  }

  /** All visible qubes (`admin.vm.List`). */
  list(options?: CallOptions): Promise<QubeListEntry[]> {
    return this.run(calls.vmList(), options);
  }

  /** A qube object by name or `uuid:…` (no call is made). */
  qube<C extends KnownQubeClass | undefined = undefined>(nameOrUuid: string): Qube<C extends KnownQubeClass ? QubeClassProperties[C] : QubeProperties> {
    return new Qube(this, nameOrUuid);
  }

  /** Whether a qube exists (is visible). */
  async has(name: string, options?: CallOptions): Promise<boolean> {
    return (await this.list(options)).some((e) => e.name === name);
  }

  vmClasses(options?: CallOptions): Promise<string[]> {
    return this.run(calls.vmClassList(), options);
  }
  deviceClasses(options?: CallOptions): Promise<string[]> {
    return this.run(calls.deviceClassList(), options);
  }

  labels(options?: CallOptions): Promise<string[]> {
    return this.run(calls.labelList(), options);
  }
  label(name: string): Label {
    return new Label(this, name);
  }
  createLabel(name: string, color: string, options?: CallOptions): Promise<void> {
    return this.run(calls.labelCreate(name, color), options);
  }
  removeLabel(name: string, options?: CallOptions): Promise<void> {
    return this.run(calls.labelRemove(name), options);
  }

  pools(options?: CallOptions): Promise<string[]> {
    return this.run(calls.poolList(), options);
  }
  pool(name: string): Pool {
    return new Pool(this, name);
  }
  poolDrivers(options?: CallOptions): Promise<PoolDriver[]> {
    return this.run(calls.poolListDrivers(), options);
  }
  addPool(name: string, driver: string, config: Record<string, string> = {}, options?: CallOptions): Promise<void> {
    return this.run(calls.poolAdd(driver, name, config), options);
  }
  removePool(name: string, options?: CallOptions): Promise<void> {
    return this.run(calls.poolRemove(name), options);
  }

  /** Creates a qube (`Create.<Class>`, or `CreateInPool.<Class>` when a pool is given). */
  async createQube(o: CreateOptions, options?: CallOptions): Promise<Qube> {
    await this.run(calls.create(o), options);
    return this.qube(o.name);
  }

  /** Creates a disposable from `template` (default: the caller's `default_dispvm`, dest `dom0`). */
  async createDisposable(template = "dom0", flags: { uuid?: boolean } = {}, options?: CallOptions): Promise<Qube> {
    return this.qube(await this.run(calls.createDisposable(template, flags), options));
  }

  removeQube(name: string, options?: CallOptions): Promise<void> {
    return this.run(calls.remove(name), options);
  }

  /**
   * Clones a qube as qubesadmin's `clone_vm` does: create, copy volumes
   * (CloneFrom/CloneTo), non-default properties, tags (not `created-by-*`),
   * features, firewall and device assignments.
   */
  async cloneQube(source: string, newName: string, o: CloneOptions = {}, options?: CallOptions): Promise<Qube> {
    const src = this.qube(source);
    const info = await src.info(options);
    const props = await src.properties(options);
    const label = props.get("label")?.value;
    const template = props.get("template");
    const create: CreateOptions = { class: o.class ?? info.class, name: newName, label: typeof label === "string" ? label : "red" };
    if (template && typeof template.value === "string") create.template = template.value;
    if (o.pool !== undefined) create.pool = o.pool;
    if (o.pools !== undefined) create.pools = o.pools;
    const dst = await this.createQube(create, options);
    const attempt = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        if (!o.ignoreErrors) throw err;
      }
    };
    const skip = new Set(["name", "qid", "uuid", "klass", "label", "template", "xid", "stubdom_xid", "start_time", "backup_timestamp", "installed_by_rpm"]);
    for (const [name, v] of props) {
      if (v.isDefault || skip.has(name)) continue;
      await attempt(() => dst.setProperty(name, v.raw === "" && (v.type === "vm" || v.type === "label") ? null : v.raw, options));
    }
    for (const tag of await src.tags.list(options)) {
      if (tag.startsWith("created-by-")) continue;
      await attempt(() => dst.tags.add(tag, options));
    }
    for (const [name, value] of await src.features.all(options)) await attempt(() => dst.features.set(name, value, options));
    if (info.class !== "AdminVM") await attempt(async () => dst.firewall.set(await src.firewall.get(options), options));
    if (!o.ignoreVolumes) {
      for (const vol of await src.volumeNames(options)) {
        const vi = await src.volume(vol).info(options);
        if (!vi.saveOnStop) continue;
        await attempt(async () => dst.volume(vol).cloneTo(await src.volume(vol).cloneFrom(options), options));
      }
    }
    if (!o.ignoreDevices) {
      for (const cls of await this.deviceClasses(options)) {
        for (const a of await src.devices(cls).assigned(undefined, options)) {
          const { frontendDomain: _omit, ...rest } = a;
          await attempt(() => dst.devices(cls).assign(rest, options));
        }
      }
    }
    return dst;
  }

  /** Events of everything (or of `dest`), reconnecting; see {@link eventStream}. */
  events(options: EventStreamOptions = {}): AsyncGenerator<QubesEvent> {
    return eventStream(this.client, options);
  }

  /** `vm-stats` of running qubes (all, or `dest`), decoded. */
  async *stats(options: Omit<EventStreamOptions, "method"> = {}): AsyncGenerator<VmStats> {
    for await (const e of eventStream(this.client, { ...options, method: "admin.vm.Stats" })) {
      const s = parseVmStats(e);
      if (s) yield s;
    }
  }

  /** A cache of all qubes kept coherent from events (call `load()` and `follow()`). */
  cache(options?: QubesCacheOptions): QubesCache {
    return new QubesCache(this.client, options);
  }

  backupInfo(profile: string, options?: CallOptions): Promise<string> {
    return this.run(calls.backupInfo(profile), options);
  }
  backupExecute(profile: string, options?: CallOptions): Promise<void> {
    return this.run(calls.backupExecute(profile), { timeout: 0, ...options });
  }
  backupCancel(profile: string, options?: CallOptions): Promise<void> {
    return this.run(calls.backupCancel(profile), options);
  }
}

/** Whether an error is a typed Qubes error with the given wire name. */
export function isQubesError(err: unknown, type?: string): err is QubesException {
  return err instanceof QubesException && (type === undefined || err.qubesType === type);
}
