/**
 * Parsers of the text formats inside successful replies: lists, property
 * values, `key=value` blocks, `admin.vm.List`, current state, volumes, pools.
 * Each throws {@link QubesParseError} for text it cannot read.
 */
import { QubesParseError } from "./errors.js";

/** The five property types on the wire. */
export type PropertyType = "str" | "int" | "bool" | "vm" | "label";

/** The decoded value of a property, by wire type. */
export type PropertyJsValue = string | number | boolean | null | undefined;

/**
 * A property as `admin.(vm.)property.Get` describes it.
 * `value` is: `str` → string; `int` → number (`undefined` when empty: no value);
 * `bool` → boolean (`undefined` when empty); `vm`/`label` → name or `null`.
 */
export interface PropertyValue<T extends PropertyJsValue = PropertyJsValue> {
  /** Whether the value is the default (inherited / computed) rather than set. */
  isDefault: boolean;
  type: PropertyType;
  value: T;
  /** The value text exactly as sent (after GetAll unescaping). */
  raw: string;
}

/** One line of `admin.vm.List`. */
export interface QubeListEntry {
  name: string;
  /** The qube class (`AppVM`, `TemplateVM` …). */
  class: string;
  /** The power state (`Halted`, `Running` …). */
  state: PowerState;
  /** The UUID (absent only from very old servers). */
  uuid: string | undefined;
}

/** Power states qubesd reports. */
export type PowerState = "Halted" | "Transient" | "Running" | "Paused" | "Suspended" | "Halting" | "Dying" | "Crashed" | "NA" | (string & {});

/** Sets a key on a record, also when the key is `__proto__` (server text is data, never a prototype). */
export function setKey<V>(obj: Record<string, V>, key: string, value: V): void {
  if (key === "__proto__") Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** Splits newline-terminated list text into its lines (no trailing empty line). */
export function parseLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** Python's `str(bool)` back to a boolean. */
export function parsePyBool(text: string, what: string): boolean {
  if (text === "True") return true;
  if (text === "False") return false;
  throw new QubesParseError(`${what}: expected True or False, got \`${text}\``);
}

function parseTyped(type: PropertyType, raw: string, what: string): PropertyJsValue {
  switch (type) {
    case "str":
      return raw;
    case "int": {
      if (raw === "") return undefined;
      if (!/^-?[0-9]+$/.test(raw)) throw new QubesParseError(`${what}: int value \`${raw}\` is not a number`);
      return Number(raw);
    }
    case "bool":
      if (raw === "") return undefined;
      return parsePyBool(raw, what);
    case "vm":
    case "label":
      return raw === "" ? null : raw;
  }
}

const TYPES = new Set(["str", "int", "bool", "vm", "label"]);

function checkType(t: string, what: string): PropertyType {
  if (!TYPES.has(t)) throw new QubesParseError(`${what}: unknown property type \`${t}\``);
  return t as PropertyType;
}

/** Parses `default=<True|False> type=<t> <value>` (the reply of property.Get). */
export function parsePropertyValue(text: string, what = "property"): PropertyValue {
  const m = /^default=(True|False) type=([a-z]+) ([\s\S]*)$/.exec(text);
  if (!m) throw new QubesParseError(`${what}: cannot parse property reply \`${text.slice(0, 80)}\``);
  const type = checkType(m[2]!, what);
  return { isDefault: m[1] === "True", type, value: parseTyped(type, m[3]!, what), raw: m[3]! };
}

/** Parses a GetDefault reply: `type=<t> <value>`, or `undefined` for an empty reply (no default). */
export function parsePropertyDefault(text: string, what = "property"): Omit<PropertyValue, "isDefault"> | undefined {
  if (text === "") return undefined;
  const m = /^type=([a-z]+) ([\s\S]*)$/.exec(text);
  if (!m) throw new QubesParseError(`${what}: cannot parse default reply \`${text.slice(0, 80)}\``);
  const type = checkType(m[1]!, what);
  return { type, value: parseTyped(type, m[2]!, what), raw: m[2]! };
}

/** Undoes the GetAll escaping of values (`\\` → `\`, `\n` → newline). */
export function unescapeGetAll(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

/** Parses a GetAll reply into an ordered map name → value (order as sent, which is not alphabetical). */
export function parsePropertyAll(text: string): Map<string, PropertyValue> {
  const out = new Map<string, PropertyValue>();
  for (const line of parseLines(text)) {
    const sp = line.indexOf(" ");
    if (sp <= 0) throw new QubesParseError(`property.GetAll: cannot parse line \`${line.slice(0, 80)}\``);
    const name = line.slice(0, sp);
    const v = parsePropertyValue(line.slice(sp + 1), name);
    const raw = unescapeGetAll(v.raw);
    out.set(name, { isDefault: v.isDefault, type: v.type, value: parseTyped(v.type, raw, name), raw });
  }
  return out;
}

/** Parses `admin.vm.List`. */
export function parseVmList(text: string): QubeListEntry[] {
  return parseLines(text).map((line) => {
    const parts = line.split(" ");
    const name = parts[0]!;
    const kv: Record<string, string> = {};
    for (const p of parts.slice(1)) {
      const eq = p.indexOf("=");
      if (eq < 0) throw new QubesParseError(`admin.vm.List: cannot parse \`${line.slice(0, 80)}\``);
      setKey(kv, p.slice(0, eq), p.slice(eq + 1));
    }
    if (!name || kv["class"] === undefined || kv["state"] === undefined) {
      throw new QubesParseError(`admin.vm.List: line without name, class or state: \`${line.slice(0, 80)}\``);
    }
    return { name, class: kv["class"], state: kv["state"], uuid: kv["uuid"] };
  });
}

/** Parses space-separated `k=v` pairs on one line. */
export function parseSpacedKv(text: string, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of text.trim().split(" ")) {
    if (p === "") continue;
    const eq = p.indexOf("=");
    if (eq <= 0) throw new QubesParseError(`${what}: cannot parse \`${p}\``);
    setKey(out, p.slice(0, eq), p.slice(eq + 1));
  }
  return out;
}

/** Parses newline-separated `k=v` lines. */
export function parseKvLines(text: string, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of parseLines(text)) {
    const eq = line.indexOf("=");
    if (eq <= 0) throw new QubesParseError(`${what}: cannot parse line \`${line.slice(0, 80)}\``);
    setKey(out, line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

/** `admin.vm.CurrentState`. `cputime` is in nanoseconds and can exceed 2^53, hence a bigint. */
export interface CurrentState {
  /** Current memory in KiB. */
  mem: number;
  /** Static maximum memory in KiB. */
  memStaticMax: number;
  /** CPU time in nanoseconds. */
  cputime: bigint;
  powerState: PowerState;
}

function int(v: string | undefined, what: string): number {
  if (v === undefined || !/^-?[0-9]+$/.test(v)) throw new QubesParseError(`${what}: expected an integer, got \`${v ?? ""}\``);
  return Number(v);
}

/** Parses `admin.vm.CurrentState`. */
export function parseCurrentState(text: string): CurrentState {
  const kv = parseSpacedKv(text, "admin.vm.CurrentState");
  const cpu = kv["cputime"] ?? "";
  if (!/^[0-9]+$/.test(cpu)) throw new QubesParseError(`admin.vm.CurrentState: cputime \`${cpu}\` is not a number`);
  if (kv["power_state"] === undefined) throw new QubesParseError("admin.vm.CurrentState: no power_state");
  return {
    mem: int(kv["mem"], "admin.vm.CurrentState mem"),
    memStaticMax: int(kv["mem_static_max"], "admin.vm.CurrentState mem_static_max"),
    cputime: BigInt(cpu),
    powerState: kv["power_state"],
  };
}

/** `admin.vm.volume.Info`. */
export interface VolumeInfo {
  pool: string;
  vid: string;
  size: number;
  usage: number;
  rw: boolean;
  source: string | null;
  path: string;
  saveOnStop: boolean;
  snapOnStart: boolean;
  revisionsToKeep: number;
  ephemeral: boolean | undefined;
  isOutdated: boolean | undefined;
  /** Every key as sent. */
  raw: Record<string, string>;
}

/** Parses `admin.vm.volume.Info`. */
export function parseVolumeInfo(text: string): VolumeInfo {
  const kv = parseKvLines(text, "admin.vm.volume.Info");
  const b = (k: string) => (kv[k] === undefined ? undefined : parsePyBool(kv[k]!, `volume ${k}`));
  return {
    pool: kv["pool"] ?? "",
    vid: kv["vid"] ?? "",
    size: int(kv["size"], "volume size"),
    usage: int(kv["usage"] ?? "0", "volume usage"),
    rw: b("rw") ?? false,
    source: kv["source"] ? kv["source"] : null,
    path: kv["path"] ?? "",
    saveOnStop: b("save_on_stop") ?? false,
    snapOnStart: b("snap_on_start") ?? false,
    revisionsToKeep: int(kv["revisions_to_keep"] ?? "0", "volume revisions_to_keep"),
    ephemeral: b("ephemeral"),
    isOutdated: b("is_outdated"),
    raw: kv,
  };
}

/** One pool driver of `admin.pool.ListDrivers`. */
export interface PoolDriver {
  driver: string;
  parameters: string[];
}

/** Parses `admin.pool.ListDrivers`. */
export function parsePoolDrivers(text: string): PoolDriver[] {
  return parseLines(text).map((l) => {
    const [driver, ...parameters] = l.split(" ");
    return { driver: driver!, parameters };
  });
}

/** Parses `admin.pool.UsageDetails` into numbers. */
export function parseUsageDetails(text: string): Record<string, number> {
  const kv = parseKvLines(text, "admin.pool.UsageDetails");
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(kv)) setKey(out, k, int(v, `pool ${k}`));
  return out;
}
