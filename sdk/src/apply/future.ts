/**
 * The future of a machine once a stack is applied: the system model
 * (`internal.GetSystemInfo` shape, as the policy engine reads it) and the
 * policy directory, computed from the live ones and a {@link StackModel}
 * without touching anything.
 *
 * What qubesd adds on its own is included: `created-by-<applier>` on new
 * qubes, `guivm-<g>`/`audiovm-<a>` tags that follow those properties (also
 * when the global default changes), `default_dispvm` resolved through the
 * future global `default_dispvm` (a DispVM's own default is its template),
 * the icon computed from label, class, `template_for_dispvms` and the
 * `servicevm` feature. Qubes the stack does not declare stay as they are,
 * except for what follows from changed global defaults.
 *
 * Whether a live property is at its default is not part of GetSystemInfo.
 * A domain entry may carry the extension keys `template` (name),
 * `properties` (the explicitly set properties, name → value; a property not
 * listed is at its default) and `features` (name → value, for `x-qkit-keys`,
 * `servicevm`, `internal`), and the snapshot the top-level key `global`
 * (global properties); {@link readWhatIfSystem} reads them all. Without
 * `properties`, a qube's `default_dispvm` counts as inherited when it equals
 * the global one, and its `guivm` when it equals the global `default_guivm`.
 */
import {
  DEFAULT,
  KEYS_FEATURE,
  OWNER_FEATURE,
  isAutomaticTag,
  policyFileHeader,
  policyFileName,
  type DomainInfo,
  type PropertyValue,
  type QubeDecl,
  type RawSystemInfo,
  type StackModel,
} from "@qubes-kit/language";

/** The live system as what-if reads it: GetSystemInfo plus optional extension keys (see the module comment). */
export interface WhatIfSystem extends RawSystemInfo {
  /** Global properties (`admin.property.GetAll`), name → value (`null` = None); only the ones known. */
  global?: Record<string, string | number | boolean | null>;
  /** Names of the global properties at their default (when `global` is given). */
  globalDefaults?: string[];
}

/** Options of {@link futureSystem}. */
export interface FutureOptions {
  /** The qube that runs `apply` (qubesd tags new qubes `created-by-<applier>`). Default `dom0`. */
  applier?: string;
}

/** The colours of the eight standard labels (what a fresh qubes.xml holds). */
export const STANDARD_LABEL_COLOURS: Readonly<Record<string, string>> = {
  red: "0xcc0000",
  orange: "0xf57900",
  yellow: "0xedd400",
  green: "0x73d216",
  gray: "0x555555",
  blue: "0x3465a4",
  purple: "0x75507b",
  black: "0x000000",
};

const ICON_PREFIXES = ["templatevm-", "servicevm-", "dispvm-", "standalonevm-", "remotevm-", "appvm-", "adminvm-"];

/** The label name of a live domain, from its icon (`appvm-blue` → `blue`). */
export function labelOfIcon(icon: unknown): string | undefined {
  if (typeof icon !== "string") return undefined;
  for (const p of ICON_PREFIXES) if (icon.startsWith(p)) return icon.slice(p.length) || undefined;
  return undefined;
}

/** The icon qubesd computes for a qube (as the simulator does). */
export function qubeIcon(klass: string, label: string, templateForDispvms: boolean, servicevm: boolean): string {
  if (klass === "AdminVM") return `adminvm-${label}`;
  if (klass === "TemplateVM") return `templatevm-${label}`;
  if (klass === "AppVM" && templateForDispvms) return `templatevm-${label}`;
  if (servicevm) return `servicevm-${label}`;
  if (klass === "DispVM") return `dispvm-${label}`;
  if (klass === "StandaloneVM") return `standalonevm-${label}`;
  if (klass === "RemoteVM") return `remotevm-${label}`;
  return `appvm-${label}`;
}

type Explicit = Record<string, unknown>;

function record(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function str(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

/** The managed keys recorded on a live qube (`x-qkit-keys`), when known. */
function recordedKeys(d: DomainInfo | undefined): Set<string> {
  const f = record(d?.["features"]);
  const keys = f && typeof f[KEYS_FEATURE] === "string" ? (f[KEYS_FEATURE] as string) : "";
  return new Set(keys.split(/\s+/).filter((k) => k !== ""));
}

function isDefaultMarker(v: PropertyValue | undefined): boolean {
  return v !== null && typeof v === "object" && (v as typeof DEFAULT).default === true;
}

/** A feature as it will be: declared (`null` = removed), else the live one. */
function futureFeature(decl: QubeDecl | undefined, live: DomainInfo | undefined, name: string, keys: Set<string>): string | null {
  const ignored = !!live && !!decl && (decl.ignore_changes.includes(`features.${name}`) || decl.ignore_changes.includes("features"));
  if (decl && !ignored && Object.prototype.hasOwnProperty.call(decl.features, name)) return decl.features[name] ?? null;
  if (decl && !ignored && keys.has(`f:${name}`)) return null; // managed before, dropped from the file: removed
  const f = record(live?.["features"]);
  if (f && name in f) return f[name] === null || f[name] === undefined ? null : String(f[name]);
  if (name === "internal") return live?.internal === undefined || live.internal === null ? null : String(live.internal);
  if (name === "servicevm") return typeof live?.icon === "string" && live.icon.startsWith("servicevm-") ? "1" : null;
  return null;
}

/**
 * How a property of a qube will be: `{set: value}` when explicitly set after
 * apply, `{inherit: true}` when at its default.
 */
type Future = { set: string | null } | { inherit: true };

function futureVmProperty(decl: QubeDecl | undefined, live: DomainInfo | undefined, name: string, keys: Set<string>, liveInherits: boolean): Future {
  const ignored = !!live && !!decl && decl.ignore_changes.includes(name);
  if (decl && !ignored && Object.prototype.hasOwnProperty.call(decl.properties, name)) {
    const v = decl.properties[name];
    if (isDefaultMarker(v)) return { inherit: true };
    return { set: v === null || v === undefined ? null : String(v) };
  }
  if (!live) return { inherit: true };
  if (decl && !ignored && keys.has(`p:${name}`)) return { inherit: true }; // managed before, dropped: reset
  if (liveInherits) return { inherit: true };
  const props = record(live["properties"]);
  if (props && name in props) return { set: str(props[name]) };
  const v = live[name];
  return { set: typeof v === "string" ? v : null };
}

/** Whether a live qube's property is at its default, from the `properties` extension or the heuristic. */
function liveInherits(live: DomainInfo | undefined, name: string, globalValue: string | null): boolean {
  if (!live) return true;
  const props = record(live["properties"]);
  if (props) return !(name in props);
  if (name === "default_dispvm") return live.type !== "DispVM" && (live.default_dispvm ?? null) === globalValue;
  if (name === "guivm") return (live.guivm ?? null) === globalValue;
  if (name === "audiovm") {
    const tag = (live.tags ?? []).find((t) => t.startsWith("audiovm-"));
    return (tag ? tag.slice("audiovm-".length) : null) === globalValue;
  }
  return false;
}

/** Global property values today and after apply. */
function globals(current: WhatIfSystem, stack: StackModel): { today: Record<string, string | null>; future: Record<string, string | null> } {
  const dom0 = Object.values(current.domains ?? {}).find((d) => d?.type === "AdminVM");
  const today: Record<string, string | null> = {
    default_dispvm: dom0 ? (dom0.default_dispvm ?? null) : null,
    default_guivm: "dom0",
    default_audiovm: "dom0",
  };
  for (const [k, v] of Object.entries(current.global ?? {})) today[k] = v === null || v === undefined ? null : String(v);
  const future = { ...today };
  for (const [k, v] of Object.entries(stack.global)) {
    if (isDefaultMarker(v)) {
      // qubesd's defaults of the globals that matter here.
      future[k] = k === "default_guivm" || k === "default_audiovm" ? "dom0" : null;
    } else future[k] = v === null || v === undefined ? null : String(v);
  }
  return { today, future };
}

/** The label colour table: standard colours, the live ones, the stack's custom labels. */
function labelColours(current: WhatIfSystem, stack: StackModel): Map<string, string> {
  const out = new Map(Object.entries(STANDARD_LABEL_COLOURS));
  for (const d of Object.values(current.domains ?? {})) {
    const l = labelOfIcon(d?.icon);
    if (l && typeof d?.label === "string" && d.label !== "" && d.type !== "AdminVM") out.set(l, d.label);
  }
  for (const [k, v] of Object.entries(stack.labels)) out.set(k, v.toLowerCase());
  return out;
}

function placeholderUuid(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

/**
 * The system model after apply, in GetSystemInfo's shape and key order (the
 * extension keys `template` and `properties` kept up to date, so the result
 * can seed what-if again).
 */
export function futureSystem(current: WhatIfSystem, stack: StackModel, options: FutureOptions = {}): WhatIfSystem {
  const applier = options.applier ?? "dom0";
  const live = current.domains ?? {};
  const decls = new Map(stack.qubes.map((q) => [q.name, q]));
  const g = globals(current, stack);
  const colours = labelColours(current, stack);
  const out: Record<string, DomainInfo> = {};
  // Renames (moved_from): the former qube is gone, and a new name not on the machine yet starts as its clone.
  const movedAway = new Set<string>();
  const clones = new Map<string, DomainInfo>();
  for (const q of stack.qubes) {
    const from = q.moved_from;
    if (from === undefined || q.absent || decls.has(from) || !live[from] || live[from]!.type === "AdminVM") continue;
    movedAway.add(from);
    if (!live[q.name]) clones.set(q.name, cloneOf(live[from]!, from, q.name, applier));
  }
  const names = [...Object.keys(live).filter((n) => !n.startsWith("uuid:") && !movedAway.has(n)), ...stack.qubes.map((q) => q.name).filter((n) => !(n in live))];
  let newCount = 0;

  // Templates first, so a DispVM's default (its template) is known.
  const templateOf = (name: string): string | null => {
    const decl = decls.get(name);
    const t = decl?.properties["template"];
    if (typeof t === "string") return t;
    const l = live[name] ?? clones.get(name);
    return l && typeof l["template"] === "string" ? (l["template"] as string) : l?.type === "DispVM" ? (l.default_dispvm ?? null) : null;
  };

  for (const name of names) {
    const decl = decls.get(name);
    const clone = clones.get(name);
    const l = live[name] ?? clone;
    if (decl?.absent) continue;
    if (l && l.type === "AdminVM") {
      out[name] = { ...l, default_dispvm: g.future["default_dispvm"] ?? null };
      continue;
    }
    if (!decl) {
      out[name] = followGlobals(l!, g);
      continue;
    }
    const keys = recordedKeys(l);
    const klass = decl.class;
    // template_for_dispvms
    let tfd: boolean;
    const tv = decl.properties["template_for_dispvms"];
    if (tv !== undefined && !(l && decl.ignore_changes.includes("template_for_dispvms"))) tfd = isDefaultMarker(tv) ? false : tv === true;
    else if (l && !keys.has("p:template_for_dispvms")) tfd = l.template_for_dispvms === true;
    else tfd = false;
    // default_dispvm
    const dd = futureVmProperty(decl, l, "default_dispvm", keys, liveInherits(l, "default_dispvm", g.today["default_dispvm"] ?? null));
    const defaultDispvm = "set" in dd ? dd.set : klass === "DispVM" ? templateOf(name) : (g.future["default_dispvm"] ?? null);
    // guivm / audiovm
    const gv = futureVmProperty(decl, l, "guivm", keys, liveInherits(l, "guivm", g.today["default_guivm"] ?? null));
    const guivm = "set" in gv ? gv.set : (g.future["default_guivm"] ?? null);
    const av = futureVmProperty(decl, l, "audiovm", keys, liveInherits(l, "audiovm", g.today["default_audiovm"] ?? null));
    const audiovm = "set" in av ? av.set : (g.future["default_audiovm"] ?? null);
    // tags
    // Declared tags are the whole managed set (other tags go, automatic ones stay), as the planner does;
    // undeclared, the tags the stack managed before are removed.
    const tags = new Set<string>(l ? (l.tags ?? []) : [`created-by-${applier}`]);
    const ignoreTags = !!l && decl.ignore_changes.includes("tags");
    if (decl.tags && !ignoreTags) {
      for (const t of [...tags]) if (!isAutomaticTag(t)) tags.delete(t);
      for (const t of decl.tags) if (!isAutomaticTag(t)) tags.add(t);
    } else if (!decl.tags) {
      for (const k of keys) if (k.startsWith("t:")) tags.delete(k.slice(2));
    }
    for (const t of [...tags]) if (t.startsWith("guivm-") || t.startsWith("audiovm-")) tags.delete(t);
    if (guivm !== null) tags.add(`guivm-${guivm}`);
    if (audiovm !== null) tags.add(`audiovm-${audiovm}`);
    // label, icon
    const lp = l && decl.ignore_changes.includes("label") ? undefined : decl.properties["label"];
    const label = typeof lp === "string" ? lp : (labelOfIcon(l?.icon) ?? "red");
    const servicevm = futureFeature(decl, l, "servicevm", keys);
    const internal = futureFeature(decl, l, "internal", keys);
    const power =
      decl.state === "running" ? "Running" : decl.state === "halted" ? "Halted" : l && typeof l.power_state === "string" ? l.power_state : "Halted";
    const explicit: Explicit = { ...(record(l?.["properties"]) ?? {}) };
    for (const [k, v] of Object.entries(decl.properties)) {
      if (isDefaultMarker(v)) delete explicit[k];
      else explicit[k] = v;
    }
    for (const k of keys) if (k.startsWith("p:") && !(k.slice(2) in decl.properties)) delete explicit[k.slice(2)];
    const info: DomainInfo = {
      internal: internal,
      tags: [...tags].sort(),
      type: klass,
      template_for_dispvms: tfd,
      default_dispvm: defaultDispvm,
      icon: qubeIcon(klass, label, tfd, servicevm !== null && servicevm !== ""),
      label: colours.get(label) ?? "0x000000",
      guivm,
      relayvm: l ? (l.relayvm ?? null) : null,
      transport_rpc: l ? (l.transport_rpc ?? null) : null,
      power_state: power,
      uuid: l && !clone && typeof l.uuid === "string" ? l.uuid : placeholderUuid(++newCount),
    };
    const template = templateOf(name);
    if (template !== null && (klass === "AppVM" || klass === "DispVM")) info["template"] = template;
    if (l && "properties" in l) info["properties"] = explicit;
    const features = { ...(record(l?.["features"]) ?? {}) } as Record<string, unknown>;
    for (const [k, v] of Object.entries(decl.features)) {
      if (v === null) delete features[k];
      else features[k] = v;
    }
    features[OWNER_FEATURE] = stack.stack;
    info["features"] = features;
    out[name] = info;
  }
  const result: WhatIfSystem = { domains: out };
  if (current.global || Object.keys(stack.global).length > 0) {
    const gl: Record<string, string | number | boolean | null> = { ...(current.global ?? {}) };
    for (const [k, v] of Object.entries(stack.global)) if (!isDefaultMarker(v)) gl[k] = v as string | number | boolean | null;
    for (const k of ["default_dispvm", "default_guivm", "default_audiovm"]) if (k in stack.global) gl[k] = g.future[k] ?? null;
    result.global = gl;
  }
  return result;
}

/** A qube's clone under a new name, as a move's clone step leaves it: halted, its settings and tags (qubesd's `created-by-` tag its own), a value naming the qube itself naming the clone. */
function cloneOf(l: DomainInfo, from: string, to: string, applier: string): DomainInfo {
  const rename = (v: unknown) => (v === from ? to : v);
  const out: DomainInfo = { ...l, power_state: "Halted", tags: [...(l.tags ?? []).filter((t) => !t.startsWith("created-by-")), `created-by-${applier}`] };
  for (const k of ["default_dispvm", "template", "netvm"]) if (k in out) (out as Record<string, unknown>)[k] = rename((out as Record<string, unknown>)[k]);
  const props = record(l["properties"]);
  if (props) out["properties"] = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, rename(v)]));
  delete (out as Record<string, unknown>)["uuid"];
  return out;
}

/** An undeclared qube: unchanged, except for what follows changed global defaults. */
function followGlobals(l: DomainInfo, g: { today: Record<string, string | null>; future: Record<string, string | null> }): DomainInfo {
  const d: DomainInfo = { ...l };
  if (l.type !== "DispVM" && l.type !== "AdminVM" && liveInherits(l, "default_dispvm", g.today["default_dispvm"] ?? null))
    d.default_dispvm = g.future["default_dispvm"] ?? null;
  const tags = new Set(l.tags ?? []);
  for (const which of ["guivm", "audiovm"] as const) {
    const glob = `default_${which}`;
    if (g.today[glob] === g.future[glob]) continue;
    if (!liveInherits(l, which, g.today[glob] ?? null)) continue;
    for (const t of [...tags]) if (t.startsWith(`${which}-`)) tags.delete(t);
    const v = g.future[glob] ?? null;
    if (v !== null) tags.add(`${which}-${v}`);
    if (which === "guivm") d.guivm = v;
  }
  d.tags = [...tags].sort();
  return d;
}

/** A policy directory as path → text, with the keys of `PolicySnapshot.texts` (`NAME.policy`, `include/NAME`). */
export type PolicyTexts = Record<string, string>;

/** The text of a generated policy file: the header line, then the rules (ending with a newline). */
export function generatedPolicyText(stack: string, rules: string): string {
  const body = rules === "" || rules.endsWith("\n") ? rules : rules + "\n";
  return `${policyFileHeader(stack)}\n${body}`;
}

/** Whether a live policy file (path as in {@link PolicyTexts}) was generated by `stack`: its name and its header say so. */
export function isGeneratedBy(stack: string, path: string, text: string): boolean {
  const base = path.startsWith("include/") ? path.slice("include/".length) : path;
  const named = path.startsWith("include/") ? base.startsWith(`qkit-${stack}-`) : /^[0-9]{2}-qkit-/.test(base) && base.slice(3).startsWith(`qkit-${stack}-`) && base.endsWith(".policy");
  return named && text.split("\n", 1)[0] === policyFileHeader(stack);
}

/** The policy directory after apply: this stack's files written (header first), its files the stack no longer declares removed, the rest untouched. */
export function futurePolicy(current: PolicyTexts, stack: StackModel): PolicyTexts {
  const out: PolicyTexts = {};
  const ours = new Map(stack.policy.map((f) => [policyFileName(stack.stack, f), f]));
  for (const [path, text] of Object.entries(current)) {
    if (ours.has(path)) continue;
    if (isGeneratedBy(stack.stack, path, text)) continue;
    out[path] = text;
  }
  for (const [path, f] of ours) out[path] = generatedPolicyText(stack.stack, f.rules);
  return out;
}
