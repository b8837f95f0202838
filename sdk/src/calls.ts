/**
 * Every Admin API call described as data (`{ method, dest, arg, payload, parse }`).
 * The object model ({@link Qubes}, {@link Qube} …) is a thin layer over these;
 * scripts can also run them directly with `qubes.run(calls.vmList())`.
 *
 * Builders validate their arguments (names, tags, numbers …) and throw
 * {@link QubesValidationError} before anything is sent.
 */
import type { AdminCall } from "./client.js";
import {
  deviceArg,
  parseDeviceAssignmentLine,
  parseDeviceInfoLine,
  portArg,
  serializeAssignment,
  validateInterfaceCodes,
  type AssignmentMode,
  type DeviceAssignment,
  type DeviceInfo,
} from "./devices.js";
import { QubesParseError, QubesValidationError } from "./errors.js";
import { formatFirewallRule, normalizeFirewallRule, parseFirewallRule, parseFirewallRules, type FirewallRule } from "./firewall.js";
import {
  parseCurrentState,
  parseKvLines,
  parseLines,
  parsePoolDrivers,
  parsePropertyAll,
  parsePropertyDefault,
  parsePropertyValue,
  parseUsageDetails,
  parseVmList,
  parseVolumeInfo,
  type CurrentState,
  type PoolDriver,
  type PropertyValue,
  type QubeListEntry,
  type VolumeInfo,
} from "./values.js";
import {
  formatNumber,
  validateFeatureName,
  validateFeatureValue,
  validateIdentifier,
  validateLabelColor,
  validateLabelName,
  validateQubeName,
  validateRevision,
  validateTag,
} from "./validate.js";

const ADMIN = "dom0";
const none = (): void => undefined;
const text = (t: string): string => t;
const list = (t: string): string[] => parseLines(t);

function emptyOk(method: string) {
  return (t: string): void => {
    if (t !== "") throw new QubesParseError(`${method}: expected an empty reply, got \`${t.slice(0, 80)}\``);
  };
}

/** Options of {@link calls.create}. */
export interface CreateOptions {
  /** The class, e.g. `AppVM`, `TemplateVM`, `StandaloneVM`, `DispVM`. */
  class: string;
  name: string;
  /** The label name (required by qubesd). */
  label: string;
  /** The template (or disposable template for `DispVM`); omitted = the default template. */
  template?: string;
  /** One pool for every volume (uses `CreateInPool`). */
  pool?: string;
  /** A pool per volume (`root`, `private`, `volatile`, `kernel`), uses `CreateInPool`. */
  pools?: Record<string, string>;
  /** Use `CreateInPool` even without a pool (default: only when `pool`/`pools` is given). */
  inPool?: boolean;
}

/** The payload of `Create`/`CreateInPool`. */
export function createPayload(o: CreateOptions): string {
  validateQubeName(o.name);
  validateLabelName(o.label);
  const parts = [`name=${o.name}`, `label=${o.label}`];
  if (o.pool !== undefined) parts.push(`pool=${validateIdentifier(o.pool, "pool name")}`);
  for (const [vol, pool] of Object.entries(o.pools ?? {})) {
    parts.push(`pool:${validateIdentifier(vol, "volume name")}=${validateIdentifier(pool, "pool name")}`);
  }
  return parts.join(" ");
}

function bool(v: boolean): string {
  return v ? "True" : "False";
}

function tagValue(t: string): boolean {
  if (t === "1") return true;
  if (t === "0") return false;
  throw new QubesParseError(`admin.vm.tag.Get: expected 1 or 0, got \`${t}\``);
}

/** The Admin API calls, as data. */
export const calls = {
  // ---- global ------------------------------------------------------------
  vmList: (dest = ADMIN): AdminCall<QubeListEntry[]> => ({ method: "admin.vm.List", dest, parse: parseVmList }),
  vmClassList: (): AdminCall<string[]> => ({ method: "admin.vmclass.List", dest: ADMIN, parse: list }),
  deviceClassList: (): AdminCall<string[]> => ({ method: "admin.deviceclass.List", dest: ADMIN, parse: list }),

  // ---- properties (global when dest is omitted) ---------------------------
  propertyList: (dest?: string): AdminCall<string[]> => ({ method: dest ? "admin.vm.property.List" : "admin.property.List", dest: dest ?? ADMIN, parse: list }),
  propertyGet: (name: string, dest?: string): AdminCall<PropertyValue> => ({
    method: dest ? "admin.vm.property.Get" : "admin.property.Get",
    dest: dest ?? ADMIN,
    arg: validateIdentifier(name, "property name"),
    parse: (t) => parsePropertyValue(t, name),
  }),
  propertyGetAll: (dest?: string): AdminCall<Map<string, PropertyValue>> => ({
    method: dest ? "admin.vm.property.GetAll" : "admin.property.GetAll",
    dest: dest ?? ADMIN,
    parse: parsePropertyAll,
  }),
  propertyGetDefault: (name: string, dest?: string): AdminCall<Omit<PropertyValue, "isDefault"> | undefined> => ({
    method: dest ? "admin.vm.property.GetDefault" : "admin.property.GetDefault",
    dest: dest ?? ADMIN,
    arg: validateIdentifier(name, "property name"),
    parse: (t) => parsePropertyDefault(t, name),
  }),
  propertyHelp: (name: string, dest?: string): AdminCall<string> => ({
    method: dest ? "admin.vm.property.Help" : "admin.property.Help",
    dest: dest ?? ADMIN,
    arg: validateIdentifier(name, "property name"),
    parse: text,
  }),
  /** `value` is already encoded (see {@link encodePropertyValue}). */
  propertySet: (name: string, value: string, dest?: string): AdminCall<void> => ({
    method: dest ? "admin.vm.property.Set" : "admin.property.Set",
    dest: dest ?? ADMIN,
    arg: validateIdentifier(name, "property name"),
    payload: value,
    parse: emptyOk("property.Set"),
  }),
  propertyReset: (name: string, dest?: string): AdminCall<void> => ({
    method: dest ? "admin.vm.property.Reset" : "admin.property.Reset",
    dest: dest ?? ADMIN,
    arg: validateIdentifier(name, "property name"),
    parse: emptyOk("property.Reset"),
  }),

  // ---- labels --------------------------------------------------------------
  labelList: (): AdminCall<string[]> => ({ method: "admin.label.List", dest: ADMIN, parse: list }),
  labelGet: (name: string): AdminCall<string> => ({ method: "admin.label.Get", dest: ADMIN, arg: validateLabelName(name), parse: text }),
  labelIndex: (name: string): AdminCall<number> => ({
    method: "admin.label.Index",
    dest: ADMIN,
    arg: validateLabelName(name),
    parse: (t) => {
      if (!/^[0-9]+$/.test(t)) throw new QubesParseError(`admin.label.Index: \`${t}\` is not a number`);
      return Number(t);
    },
  }),
  labelCreate: (name: string, color: string): AdminCall<void> => ({
    method: "admin.label.Create",
    dest: ADMIN,
    arg: validateLabelName(name, true),
    payload: validateLabelColor(color),
    parse: emptyOk("admin.label.Create"),
  }),
  labelRemove: (name: string): AdminCall<void> => ({ method: "admin.label.Remove", dest: ADMIN, arg: validateLabelName(name), parse: emptyOk("admin.label.Remove") }),

  // ---- qube lifecycle -------------------------------------------------------
  create: (o: CreateOptions): AdminCall<void> => ({
    method: `${o.inPool || o.pool !== undefined || o.pools !== undefined ? "admin.vm.CreateInPool" : "admin.vm.Create"}.${validateIdentifier(o.class, "qube class")}`,
    dest: ADMIN,
    arg: o.template === undefined ? "" : validateQubeName(o.template, "template"),
    payload: createPayload(o),
    parse: emptyOk("admin.vm.Create"),
  }),
  /** `dest` is the disposable template, or `dom0` for the caller's `default_dispvm`. Returns the new name or `uuid:…`. */
  createDisposable: (dest: string, options: { uuid?: boolean; preload?: boolean } = {}): AdminCall<string> => ({
    method: "admin.vm.CreateDisposable",
    dest,
    arg: options.preload ? "preload" : "",
    payload: options.uuid ? "uuid" : "",
    parse: text,
  }),
  remove: (dest: string): AdminCall<void> => ({ method: "admin.vm.Remove", dest, parse: emptyOk("admin.vm.Remove") }),
  start: (dest: string): AdminCall<void> => ({ method: "admin.vm.Start", dest, parse: none }),
  shutdown: (dest: string, options: { force?: boolean; wait?: boolean } = {}): AdminCall<void> => ({
    method: "admin.vm.Shutdown",
    dest,
    arg: [options.force ? "force" : "", options.wait ? "wait" : ""].filter(Boolean).join("+"),
    parse: none,
  }),
  kill: (dest: string): AdminCall<void> => ({ method: "admin.vm.Kill", dest, parse: none }),
  pause: (dest: string): AdminCall<void> => ({ method: "admin.vm.Pause", dest, parse: none }),
  unpause: (dest: string): AdminCall<void> => ({ method: "admin.vm.Unpause", dest, parse: none }),
  suspend: (dest: string): AdminCall<void> => ({ method: "admin.vm.Suspend", dest, parse: none }),
  resume: (dest: string): AdminCall<void> => ({ method: "admin.vm.Resume", dest, parse: none }),
  currentState: (dest: string): AdminCall<CurrentState> => ({ method: "admin.vm.CurrentState", dest, parse: parseCurrentState }),
  /** Returns the pty path qubesd reports (used by the `admin.vm.Console` qrexec script). */
  console: (dest: string): AdminCall<string> => ({ method: "admin.vm.Console", dest, parse: text }),

  // ---- notes ------------------------------------------------------------------
  notesGet: (dest: string): AdminCall<string> => ({ method: "admin.vm.notes.Get", dest, parse: text }),
  notesSet: (dest: string, notes: string): AdminCall<void> => {
    const size = new TextEncoder().encode(notes).length;
    if (size > 256000) throw new QubesValidationError(`notes of ${size} bytes are over the 256000-byte limit`, "notes-too-large", "payload");
    return { method: "admin.vm.notes.Set", dest, payload: notes, parse: emptyOk("admin.vm.notes.Set") };
  },

  // ---- features ------------------------------------------------------------------
  featureList: (dest: string): AdminCall<string[]> => ({ method: "admin.vm.feature.List", dest, parse: list }),
  featureGet: (
    dest: string,
    name: string,
    via: "" | "CheckWithTemplate" | "CheckWithNetvm" | "CheckWithAdminVM" | "CheckWithTemplateAndAdminVM" = "",
  ): AdminCall<string> => ({ method: via ? `admin.vm.feature.${via}` : "admin.vm.feature.Get", dest, arg: validateFeatureName(name), parse: text }),
  /** `false` is sent as the empty value, `true` as `1` (qubesadmin's convention). */
  featureSet: (dest: string, name: string, value: string | boolean): AdminCall<void> => {
    const v = typeof value === "boolean" ? (value ? "1" : "") : value;
    return { method: "admin.vm.feature.Set", dest, arg: validateFeatureName(name), payload: validateFeatureValue(name, v), parse: emptyOk("admin.vm.feature.Set") };
  },
  featureRemove: (dest: string, name: string): AdminCall<void> => ({ method: "admin.vm.feature.Remove", dest, arg: validateFeatureName(name), parse: emptyOk("admin.vm.feature.Remove") }),

  // ---- tags --------------------------------------------------------------------------
  tagList: (dest: string): AdminCall<string[]> => ({ method: "admin.vm.tag.List", dest, parse: list }),
  tagGet: (dest: string, tag: string): AdminCall<boolean> => ({ method: "admin.vm.tag.Get", dest, arg: validateTag(tag), parse: tagValue }),
  tagSet: (dest: string, tag: string): AdminCall<void> => ({ method: "admin.vm.tag.Set", dest, arg: validateTag(tag), parse: emptyOk("admin.vm.tag.Set") }),
  tagRemove: (dest: string, tag: string): AdminCall<void> => ({ method: "admin.vm.tag.Remove", dest, arg: validateTag(tag), parse: emptyOk("admin.vm.tag.Remove") }),

  // ---- devices -------------------------------------------------------------------------
  deviceAvailable: (dest: string, devclass: string, portId = ""): AdminCall<DeviceInfo[]> => ({
    method: `admin.vm.device.${validateIdentifier(devclass, "device class")}.Available`,
    dest,
    arg: portId === "" ? "" : validateIdentifier(portId, "port id"),
    parse: (t) => parseLines(t).map((l) => parseDeviceInfoLine(l, { backendDomain: dest, devclass })),
  }),
  deviceAssigned: (dest: string, devclass: string, filter?: { backendDomain: string; portId: string }): AdminCall<DeviceAssignment[]> => ({
    method: `admin.vm.device.${validateIdentifier(devclass, "device class")}.Assigned`,
    dest,
    arg: filter ? portArg(filter.backendDomain, filter.portId) : "",
    parse: (t) => parseLines(t).map((l) => parseDeviceAssignmentLine(l, { frontendDomain: dest, devclass })),
  }),
  deviceAttached: (dest: string, devclass: string, filter?: { backendDomain: string; portId: string }): AdminCall<DeviceAssignment[]> => ({
    method: `admin.vm.device.${validateIdentifier(devclass, "device class")}.Attached`,
    dest,
    arg: filter ? portArg(filter.backendDomain, filter.portId) : "",
    parse: (t) => parseLines(t).map((l) => parseDeviceAssignmentLine(l, { frontendDomain: dest, devclass })),
  }),
  deviceAssign: (dest: string, a: DeviceAssignment): AdminCall<void> => {
    if (a.mode === "manual") throw new QubesValidationError("assign needs mode required, ask-to-attach or auto-attach (manual is for attach)", "invalid-assignment-mode", "mode");
    return {
      method: `admin.vm.device.${validateIdentifier(a.devclass, "device class")}.Assign`,
      dest,
      arg: deviceArg(a),
      payload: serializeAssignment(a),
      parse: emptyOk("device.Assign"),
    };
  },
  deviceUnassign: (dest: string, a: Pick<DeviceAssignment, "backendDomain" | "portId" | "deviceId" | "devclass">): AdminCall<void> => ({
    method: `admin.vm.device.${validateIdentifier(a.devclass, "device class")}.Unassign`,
    dest,
    arg: deviceArg(a),
    parse: emptyOk("device.Unassign"),
  }),
  deviceAttach: (dest: string, a: DeviceAssignment): AdminCall<void> => ({
    method: `admin.vm.device.${validateIdentifier(a.devclass, "device class")}.Attach`,
    dest,
    arg: deviceArg(a),
    payload: serializeAssignment({ ...a, mode: "manual" }),
    parse: emptyOk("device.Attach"),
  }),
  deviceDetach: (dest: string, a: Pick<DeviceAssignment, "backendDomain" | "portId" | "deviceId" | "devclass">): AdminCall<void> => ({
    method: `admin.vm.device.${validateIdentifier(a.devclass, "device class")}.Detach`,
    dest,
    arg: deviceArg(a),
    parse: emptyOk("device.Detach"),
  }),
  deviceSetAssignment: (dest: string, a: Pick<DeviceAssignment, "backendDomain" | "portId" | "deviceId" | "devclass">, mode: Exclude<AssignmentMode, "manual">): AdminCall<void> => {
    if (!["required", "ask-to-attach", "auto-attach"].includes(mode)) {
      throw new QubesValidationError(`assignment mode must be required, ask-to-attach or auto-attach, got \`${String(mode)}\``, "invalid-assignment-mode", "mode");
    }
    return {
      method: `admin.vm.device.${validateIdentifier(a.devclass, "device class")}.Set.assignment`,
      dest,
      arg: deviceArg(a),
      payload: mode,
      parse: emptyOk("device.Set.assignment"),
    };
  },
  deniedList: (dest: string): AdminCall<string[]> => ({ method: "admin.vm.device.denied.List", dest, parse: (t) => t.split("\n").filter((l) => l !== "") }),
  deniedAdd: (dest: string, codes: string[]): AdminCall<void> => ({ method: "admin.vm.device.denied.Add", dest, payload: validateInterfaceCodes(codes), parse: emptyOk("denied.Add") }),
  /** `"all"` removes every entry. */
  deniedRemove: (dest: string, codes: string[] | "all"): AdminCall<void> => ({
    method: "admin.vm.device.denied.Remove",
    dest,
    payload: codes === "all" ? "all" : validateInterfaceCodes(codes),
    parse: emptyOk("denied.Remove"),
  }),

  // ---- firewall ---------------------------------------------------------------------------
  firewallGet: (dest: string): AdminCall<FirewallRule[]> => ({ method: "admin.vm.firewall.Get", dest, parse: parseFirewallRules }),
  /**
   * Replaces the whole rule list. Typed rules are printed in qubesadmin's
   * order; strings are checked (parsed) and sent as written.
   */
  firewallSet: (dest: string, rules: readonly (FirewallRule | string)[]): AdminCall<void> => {
    const lines = rules.map((r) => {
      if (typeof r !== "string") return formatFirewallRule(r, { order: "set" });
      try {
        normalizeFirewallRule(parseFirewallRule(r));
      } catch (err) {
        throw new QubesValidationError(err instanceof Error ? err.message : String(err), "invalid-firewall-rule", "rule");
      }
      return r;
    });
    return { method: "admin.vm.firewall.Set", dest, payload: lines.map((l) => `${l}\n`).join(""), parse: emptyOk("admin.vm.firewall.Set") };
  },
  firewallReload: (dest: string): AdminCall<void> => ({ method: "admin.vm.firewall.Reload", dest, parse: emptyOk("admin.vm.firewall.Reload") }),

  // ---- volumes ---------------------------------------------------------------------------------
  volumeList: (dest: string): AdminCall<string[]> => ({ method: "admin.vm.volume.List", dest, parse: list }),
  volumeInfo: (dest: string, volume: string): AdminCall<VolumeInfo> => ({ method: "admin.vm.volume.Info", dest, arg: validateIdentifier(volume, "volume name"), parse: parseVolumeInfo }),
  volumeListSnapshots: (dest: string, volume: string): AdminCall<string[]> => ({ method: "admin.vm.volume.ListSnapshots", dest, arg: validateIdentifier(volume, "volume name"), parse: list }),
  volumeRevert: (dest: string, volume: string, revision: string): AdminCall<void> => ({
    method: "admin.vm.volume.Revert",
    dest,
    arg: validateIdentifier(volume, "volume name"),
    payload: validateRevision(revision),
    parse: emptyOk("admin.vm.volume.Revert"),
  }),
  volumeResize: (dest: string, volume: string, size: number | bigint): AdminCall<void> => ({
    method: "admin.vm.volume.Resize",
    dest,
    arg: validateIdentifier(volume, "volume name"),
    payload: formatNumber(size, "volume size"),
    parse: emptyOk("admin.vm.volume.Resize"),
  }),
  volumeSetRevisionsToKeep: (dest: string, volume: string, n: number): AdminCall<void> => {
    if (!Number.isInteger(n) || n < -1) throw new QubesValidationError(`revisions_to_keep must be an integer >= -1, got ${n}`, "invalid-number", "payload");
    return { method: "admin.vm.volume.Set.revisions_to_keep", dest, arg: validateIdentifier(volume, "volume name"), payload: String(n), parse: emptyOk("volume.Set.revisions_to_keep") };
  },
  volumeSetRw: (dest: string, volume: string, rw: boolean): AdminCall<void> => ({
    method: "admin.vm.volume.Set.rw",
    dest,
    arg: validateIdentifier(volume, "volume name"),
    payload: bool(rw),
    parse: emptyOk("volume.Set.rw"),
  }),
  volumeSetEphemeral: (dest: string, volume: string, ephemeral: boolean): AdminCall<void> => ({
    method: "admin.vm.volume.Set.ephemeral",
    dest,
    arg: validateIdentifier(volume, "volume name"),
    payload: bool(ephemeral),
    parse: emptyOk("volume.Set.ephemeral"),
  }),
  volumeClear: (dest: string, volume: string): AdminCall<void> => ({ method: "admin.vm.volume.Clear", dest, arg: validateIdentifier(volume, "volume name"), parse: emptyOk("admin.vm.volume.Clear") }),
  volumeCloneFrom: (dest: string, volume: string): AdminCall<string> => ({ method: "admin.vm.volume.CloneFrom", dest, arg: validateIdentifier(volume, "volume name"), parse: text }),
  volumeCloneTo: (dest: string, volume: string, token: string): AdminCall<void> => {
    if (!/^[A-Za-z0-9]+$/.test(token)) throw new QubesValidationError(`clone token \`${token}\` must be alphanumeric`, "invalid-clone-token", "payload");
    return { method: "admin.vm.volume.CloneTo", dest, arg: validateIdentifier(volume, "volume name"), payload: token, parse: emptyOk("admin.vm.volume.CloneTo") };
  },

  // ---- pools ---------------------------------------------------------------------------------------
  poolList: (): AdminCall<string[]> => ({ method: "admin.pool.List", dest: ADMIN, parse: list }),
  poolListDrivers: (): AdminCall<PoolDriver[]> => ({ method: "admin.pool.ListDrivers", dest: ADMIN, parse: parsePoolDrivers }),
  poolInfo: (pool: string): AdminCall<Record<string, string>> => ({ method: "admin.pool.Info", dest: ADMIN, arg: validateIdentifier(pool, "pool name"), parse: (t) => parseKvLines(t, "admin.pool.Info") }),
  poolUsageDetails: (pool: string): AdminCall<Record<string, number>> => ({ method: "admin.pool.UsageDetails", dest: ADMIN, arg: validateIdentifier(pool, "pool name"), parse: parseUsageDetails }),
  poolVolumeList: (pool: string): AdminCall<string[]> => ({ method: "admin.pool.volume.List", dest: ADMIN, arg: validateIdentifier(pool, "pool name"), parse: list }),
  poolAdd: (driver: string, name: string, config: Record<string, string> = {}): AdminCall<void> => {
    validateIdentifier(name, "pool name");
    const lines = [`name=${name}`];
    for (const [k, v] of Object.entries(config)) {
      validateIdentifier(k, "pool option");
      if (/[\n\x00]/.test(v) || !/^[\x20-\x7e]*$/.test(v)) throw new QubesValidationError(`pool option ${k} must be printable ascii on one line`, "invalid-pool-option", "payload");
      lines.push(`${k}=${v}`);
    }
    return { method: "admin.pool.Add", dest: ADMIN, arg: validateIdentifier(driver, "pool driver"), payload: lines.map((l) => `${l}\n`).join(""), parse: emptyOk("admin.pool.Add") };
  },
  poolRemove: (pool: string): AdminCall<void> => ({ method: "admin.pool.Remove", dest: ADMIN, arg: validateIdentifier(pool, "pool name"), parse: emptyOk("admin.pool.Remove") }),
  poolSetRevisionsToKeep: (pool: string, n: number): AdminCall<void> => {
    if (!Number.isInteger(n) || n < -1) throw new QubesValidationError(`revisions_to_keep must be an integer >= -1, got ${n}`, "invalid-number", "payload");
    return { method: "admin.pool.Set.revisions_to_keep", dest: ADMIN, arg: validateIdentifier(pool, "pool name"), payload: String(n), parse: emptyOk("pool.Set.revisions_to_keep") };
  },
  poolSetEphemeralVolatile: (pool: string, value: boolean): AdminCall<void> => ({
    method: "admin.pool.Set.ephemeral_volatile",
    dest: ADMIN,
    arg: validateIdentifier(pool, "pool name"),
    payload: bool(value),
    parse: emptyOk("pool.Set.ephemeral_volatile"),
  }),

  // ---- backup ---------------------------------------------------------------------------------------
  backupInfo: (profile: string): AdminCall<string> => ({ method: "admin.backup.Info", dest: ADMIN, arg: validateIdentifier(profile, "backup profile"), parse: text }),
  backupExecute: (profile: string): AdminCall<void> => ({ method: "admin.backup.Execute", dest: ADMIN, arg: validateIdentifier(profile, "backup profile"), parse: none }),
  backupCancel: (profile: string): AdminCall<void> => ({ method: "admin.backup.Cancel", dest: ADMIN, arg: validateIdentifier(profile, "backup profile"), parse: none }),
} as const;
