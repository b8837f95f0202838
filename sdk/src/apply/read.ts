/**
 * The read phase of plan: the live system through the SDK, concurrent per
 * qube. Two passes: {@link readLight} reads what every plan needs of every
 * qube (class, power state, writable properties, features, tags), the global
 * properties, labels, pools and the policy file names; {@link readDeep} then
 * reads, for the qubes a plan touches, the parts the stack manages (firewall,
 * device assignments, volumes, notes), the policy files, and the devices a
 * selector needs. A saved plan keeps the scope of the deep pass, so `apply`
 * re-reads exactly the same and compares fingerprints.
 */
import { createHash } from "node:crypto";
import { QUBE_PROPERTIES, type DeclarableClass } from "@qubes-kit/language";
import { calls } from "../calls.js";
import { formatFirewallRule } from "../firewall.js";
import { QubesEmptyReplyError } from "../errors.js";
import { mapLimit } from "../events.js";
import type { Qubes } from "../qubes.js";
import type { PropertyValue } from "../values.js";
import type { PolicyTarget } from "./policy-target.js";
import type { FingerprintView, LiveDevice, LiveProperty, LiveQube, LiveSystem, StaleChange } from "./types.js";

/** What the deep pass reads of one qube. */
export interface DeepRead {
  firewall?: boolean;
  /** Device classes whose assignments are read. */
  devices?: string[];
  volumes?: boolean;
  notes?: boolean;
}

/** The scope of the deep pass. */
export interface ReadScope {
  deep: Record<string, DeepRead>;
  /** Policy files to read when they exist: `NAME` or `include/NAME`. */
  policy: string[];
  /** `backend:devclass` pairs whose available devices are read. */
  available: string[];
}

/** Options of the read. */
export interface ReadOptions {
  /**
   * The qubes whose every feature value is read (the declared ones). Of the
   * others only the ownership features (`x-qkit-*`) are read, which saves a
   * call per feature; dom0's features are always read. Default: every qube.
   */
  focus?: Iterable<string>;
  /** Concurrent calls (default 16). */
  concurrency?: number;
  signal?: AbortSignal;
}

const DECLARABLE = new Set(["AppVM", "TemplateVM", "StandaloneVM", "DispVM"]);

/** The writable property names of a class, as the planner compares them. */
export function managedPropertyNames(klass: string): Set<string> {
  if (!DECLARABLE.has(klass)) return new Set();
  return new Set(QUBE_PROPERTIES[klass as DeclarableClass].filter((p) => p.access === "rw").map((p) => p.name));
}

function liveProperty(p: PropertyValue): LiveProperty {
  return { default: p.isDefault, value: p.value === undefined ? null : p.value };
}

/** The first pass: every qube's class, state, properties, features and tags; globals, labels, pools, policy names. */
export async function readLight(qubes: Qubes, policy: PolicyTarget, options: ReadOptions = {}): Promise<LiveSystem> {
  const opts = options.signal ? { signal: options.signal } : {};
  const limit = options.concurrency ?? 16;
  const focus = options.focus === undefined ? undefined : new Set(options.focus);
  const [list, globals, labelNames, pools, mainNames, includeNames] = await Promise.all([
    qubes.run(calls.vmList(), opts),
    qubes.run(calls.propertyGetAll(), opts),
    qubes.run(calls.labelList(), opts),
    qubes.run(calls.poolList(), opts),
    policy.list(false),
    policy.list(true),
  ]);
  const labels: Record<string, string> = {};
  const colours = await mapLimit(labelNames, limit, (l) =>
    qubes.run(calls.labelGet(l), opts).catch((err: unknown) => {
      if (err instanceof QubesEmptyReplyError) return "";
      throw err;
    }),
  );
  labelNames.forEach((l, i) => (labels[l] = colours[i]!));
  const live: LiveSystem = {
    qubes: {},
    globals: {},
    labels,
    pools: [...pools].sort(),
    policyNames: [...mainNames.sort(), ...includeNames.sort().map((n) => `include/${n}`)],
    policy: {},
    available: {},
  };
  for (const [name, v] of globals) live.globals[name] = liveProperty(v);
  const read = await mapLimit(list, limit, async (entry): Promise<LiveQube> => {
    const [props, tags, featureNames] = await Promise.all([
      qubes.run(calls.propertyGetAll(entry.name), opts),
      qubes.run(calls.tagList(entry.name), opts),
      qubes.run(calls.featureList(entry.name), opts),
    ]);
    const wanted = focus === undefined || focus.has(entry.name) || entry.class === "AdminVM" ? featureNames : featureNames.filter((f) => f.startsWith("x-qkit-"));
    const values = await Promise.all(wanted.map((f) => qubes.run(calls.featureGet(entry.name, f), opts)));
    const features: Record<string, string> = {};
    wanted.forEach((f, i) => Object.defineProperty(features, f, { value: values[i]!, enumerable: true, writable: true, configurable: true }));
    const keep = managedPropertyNames(entry.class);
    const properties: Record<string, LiveProperty> = {};
    let qid: number | undefined;
    for (const [name, v] of props) {
      if (keep.has(name)) properties[name] = liveProperty(v);
      else if (name === "qid" && typeof v.value === "number") qid = v.value;
    }
    return { name: entry.name, class: entry.class, state: entry.state, properties, features, tags: [...tags].sort(), ...(qid !== undefined ? { qid } : {}) };
  });
  for (const q of read) live.qubes[q.name] = q;
  return live;
}

/**
 * Reads the device classes qubesd has into `live.deviceClasses` when the stack moves a qube (its
 * assignments of every class are copied) or declares devices (a class qubesd lacks, such as usb
 * without the USB proxy, is then refused at plan time, at its line).
 */
export async function readDeviceClassesFor(qubes: Qubes, live: LiveSystem, model: { qubes: readonly { moved_from?: string; devices?: Record<string, unknown> }[] }, options: ReadOptions = {}): Promise<void> {
  if (!model.qubes.some((q) => q.moved_from !== undefined || Object.keys(q.devices ?? {}).length > 0)) return;
  live.deviceClasses = [...(await qubes.run(calls.deviceClassList(), options.signal ? { signal: options.signal } : {}))].sort();
}

/** Reads every feature value of `names` into `live` (after a {@link readLight} with a narrower focus). */
export async function readFeatures(qubes: Qubes, live: LiveSystem, names: Iterable<string>, options: ReadOptions = {}): Promise<void> {
  const opts = options.signal ? { signal: options.signal } : {};
  const todo = [...new Set(names)].filter((n) => live.qubes[n] && live.qubes[n]!.class !== "AdminVM");
  await mapLimit(todo, options.concurrency ?? 16, async (name) => {
    const q = live.qubes[name]!;
    const featureNames = await qubes.run(calls.featureList(name), opts);
    const values = await Promise.all(featureNames.map((f) => qubes.run(calls.featureGet(name, f), opts)));
    const features: Record<string, string> = {};
    featureNames.forEach((f, i) => Object.defineProperty(features, f, { value: values[i]!, enumerable: true, writable: true, configurable: true }));
    q.features = features;
  });
}

/** The second pass, in place: the deep parts of the qubes in scope, the policy files, the available devices. */
export async function readDeep(qubes: Qubes, policy: PolicyTarget, live: LiveSystem, scope: ReadScope, options: ReadOptions = {}): Promise<LiveSystem> {
  const opts = options.signal ? { signal: options.signal } : {};
  const limit = options.concurrency ?? 16;
  const jobs: (() => Promise<void>)[] = [];
  for (const [name, what] of Object.entries(scope.deep)) {
    const q = live.qubes[name];
    if (!q || q.class === "AdminVM") continue;
    if (what.firewall)
      jobs.push(async () => {
        q.firewall = (await qubes.run(calls.firewallGet(name), opts)).map((r) => formatFirewallRule(r));
      });
    if (what.notes)
      jobs.push(async () => {
        q.notes = await qubes.run(calls.notesGet(name), opts);
      });
    if (what.volumes)
      jobs.push(async () => {
        const names = await qubes.run(calls.volumeList(name), opts);
        const infos = await Promise.all(names.map((v) => qubes.run(calls.volumeInfo(name, v), opts)));
        q.volumes = {};
        names.forEach((v, i) => {
          const info = infos[i]!;
          q.volumes![v] = { pool: info.pool, size: info.size, revisions_to_keep: info.revisionsToKeep, rw: info.rw, ephemeral: info.ephemeral ?? false };
        });
      });
    for (const devclass of [...new Set(what.devices ?? [])].sort())
      jobs.push(async () => {
        const assigned = await qubes.run(calls.deviceAssigned(name, devclass), opts);
        q.devices ??= {};
        q.devices[devclass] = assigned
          .map((a) => ({ devclass, backend: a.backendDomain, port: a.portId, deviceId: a.deviceId, mode: a.mode, options: { ...a.options } }))
          .sort((a, b) => cmp(`${a.backend}+${a.port}+${a.deviceId}`, `${b.backend}+${b.port}+${b.deviceId}`));
      });
  }
  const listed = new Set(live.policyNames);
  for (const key of [...new Set(scope.policy)].sort()) {
    if (!listed.has(key)) continue;
    const include = key.startsWith("include/");
    const name = include ? key.slice("include/".length) : key;
    if (!/^[A-Za-z0-9_-]+$/.test(name)) continue;
    jobs.push(async () => {
      const f = await policy.get(name, include);
      if (f) live.policy[key] = f;
    });
  }
  for (const pair of [...new Set(scope.available)].sort()) {
    const [backend, devclass] = pair.split(":") as [string, string];
    if (!live.qubes[backend]) continue;
    jobs.push(async () => {
      const infos = await qubes.run(calls.deviceAvailable(backend, devclass), opts);
      live.available[pair] = infos.map((d): LiveDevice => {
        const dev: LiveDevice = { backend, devclass, port: d.portId, deviceId: d.deviceId, interfaces: [...d.interfaces] };
        if (d.vendor !== undefined) dev.vendor = d.vendor;
        if (d.product !== undefined) dev.product = d.product;
        return dev;
      });
    });
  }
  await mapLimit(jobs, limit, (j) => j());
  return live;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** JSON with sorted object keys (arrays keep their order). */
export function stableJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  const keys = Object.keys(value as Record<string, unknown>).sort();
  return `{${keys
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`)
    .join(",")}}`;
}

/** The properties of qubes outside the plan that its steps can depend on. */
const REFERENCE_PROPERTIES = ["provides_network", "template_for_dispvms", "netvm", "template", "default_dispvm", "management_dispvm", "guivm", "audiovm", "installed_by_rpm"];

/**
 * The fingerprint of what a plan depends on: the qubes in scope and the
 * qubes owned by any stack in full, for every other qube its class and the
 * properties references depend on (a qube that appears or disappears changes
 * it), dom0's features (the globals records), the global properties, labels, pools, the policy
 * file names and the tokens of the files read, and the devices offered.
 */
export function fingerprint(live: LiveSystem, scope: ReadScope): string {
  return `sha256:${createHash("sha256").update(stableJson(fingerprintData(live, scope))).digest("hex")}`;
}

/** What {@link fingerprint} hashes (and {@link fingerprintView} cuts into parts). */
function fingerprintData(live: LiveSystem, scope: ReadScope) {
  const qubes: Record<string, unknown> = {};
  for (const [name, q] of Object.entries(live.qubes)) {
    if (inFull(name, q, scope)) {
      qubes[name] = q;
      continue;
    }
    // Other qubes: what a plan's references depend on (class, roles, wiring), not their memory or power state.
    const refs: Record<string, unknown> = {};
    for (const p of REFERENCE_PROPERTIES) if (q.properties[p]) refs[p] = q.properties[p];
    qubes[name] = { class: q.class, refs, dependents: q.class === "AdminVM" ? q.features : undefined };
  }
  const policy: Record<string, string> = {};
  for (const [k, f] of Object.entries(live.policy)) policy[k] = f.token;
  return { qubes, globals: live.globals, labels: live.labels, pools: live.pools, policyNames: live.policyNames, policy, available: live.available };
}

/** Whether the fingerprint holds all of a qube (in scope, or owned by a stack), not only its references. */
function inFull(name: string, q: LiveQube, scope: ReadScope): boolean {
  return !!scope.deep[name] || (q.features["x-qkit-stack"] ?? "") !== "";
}

function digest(value: unknown): string {
  return createHash("sha256").update(stableJson(value)).digest("hex").slice(0, 16);
}

/** The {@link FingerprintView} of what `live` holds for `scope` (the same data {@link fingerprint} hashes). */
export function fingerprintView(live: LiveSystem, scope: ReadScope): FingerprintView {
  const data = fingerprintData(live, scope);
  const qubes: Record<string, Record<string, string>> = {};
  const parts = (out: Record<string, string>, key: string, value: unknown) => {
    // Maps of named things (properties, features, devices, volumes): one part per entry.
    if (value !== null && typeof value === "object" && !Array.isArray(value)) for (const [k, v] of Object.entries(value)) out[`${key}:${k}`] = digest(v);
    else if (value !== undefined) out[key] = digest(value);
  };
  for (const [name, q] of Object.entries(live.qubes)) {
    const out: Record<string, string> = {};
    if (inFull(name, q, scope)) {
      out["form"] = "full";
      for (const [k, v] of Object.entries(q)) if (k !== "name") parts(out, k, v);
    } else {
      const d = data.qubes[name] as { class: string; refs: Record<string, unknown>; dependents?: Record<string, string> };
      out["form"] = "refs";
      parts(out, "class", d.class);
      parts(out, "properties", d.refs);
      if (d.dependents) parts(out, "features", d.dependents);
    }
    qubes[name] = out;
  }
  const each = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, digest(v)]));
  return {
    qubes,
    globals: each(data.globals),
    labels: each(data.labels),
    pools: [...data.pools],
    policyNames: [...data.policyNames],
    policy: Object.fromEntries(Object.entries(data.policy).map(([k, t]) => [k, t.slice(0, 23)])),
    available: each(data.available),
  };
}

/** A qube part as said: `memory`, `feature NAME`, `power state`, `pci devices`, `volume private`. */
function partText(part: string): string {
  const i = part.indexOf(":");
  if (i < 0) return part === "state" ? "power state" : part;
  const [kind, name] = [part.slice(0, i), part.slice(i + 1)];
  if (kind === "properties") return name;
  if (kind === "features") return `feature ${name}`;
  if (kind === "devices") return `${name} devices`;
  if (kind === "volumes") return `volume ${name}`;
  return `${kind} ${name}`;
}

/** A qube's parts in the plan's order: class, power state, properties, features, tags, firewall, devices, volumes, notes. */
const PART_ORDER = ["class", "state", "properties", "features", "tags", "firewall", "devices", "volumes", "notes"];

function partRank(part: string): number {
  const i = PART_ORDER.indexOf(part.split(":")[0]!);
  return i < 0 ? PART_ORDER.length : i;
}

function policyFileText(key: string): string {
  return key.startsWith("include/") ? key : `${key}.policy`;
}

/**
 * What differs between two {@link FingerprintView}s, in order (qubes by name,
 * then globals, labels, pools, policy files, offered devices), each as a
 * subject and what of it: `{ subject: "qube work", what: "memory" }`,
 * `{ subject: "policy file 30-user.policy", what: "" }`.
 */
export function fingerprintChanges(before: FingerprintView, after: FingerprintView): StaleChange[] {
  const out: StaleChange[] = [];
  const keys = (a: object, b: object) => [...new Set([...Object.keys(a), ...Object.keys(b)])].sort(cmp);
  const lists = (subject: (k: string) => string, a: Record<string, string>, b: Record<string, string>) => {
    for (const k of keys(a, b)) {
      if (a[k] === b[k]) continue;
      out.push({ subject: subject(k), what: a[k] === undefined ? "new" : b[k] === undefined ? "gone" : "" });
    }
  };
  for (const name of keys(before.qubes, after.qubes)) {
    const a = before.qubes[name];
    const b = after.qubes[name];
    const subject = `qube ${name}`;
    if (!a || !b) {
      out.push({ subject, what: a ? "gone" : "new" });
      continue;
    }
    // Owned by a stack now, or no longer: the fingerprint holds all of it, or only its references.
    if (a["form"] !== b["form"]) {
      out.push({ subject, what: "feature x-qkit-stack" });
      continue;
    }
    const parts = keys(a, b).sort((x, y) => partRank(x) - partRank(y) || cmp(x, y));
    for (const part of parts) if (a[part] !== b[part]) out.push({ subject, what: partText(part) });
  }
  lists((k) => `global property ${k}`, before.globals, after.globals);
  lists((k) => `label ${k}`, before.labels, after.labels);
  const set = (xs: string[]) => Object.fromEntries(xs.map((x) => [x, "1"]));
  lists((k) => `pool ${k}`, set(before.pools), set(after.pools));
  // A file listed or no longer listed is said once (its token appears or disappears with it).
  const names = { before: set(before.policyNames), after: set(after.policyNames) };
  lists((k) => `policy file ${policyFileText(k)}`, names.before, names.after);
  const listedBoth = (k: string) => names.before[k] !== undefined && names.after[k] !== undefined;
  lists((k) => `policy file ${policyFileText(k)}`, Object.fromEntries(Object.entries(before.policy).filter(([k]) => listedBoth(k))), Object.fromEntries(Object.entries(after.policy).filter(([k]) => listedBoth(k))));
  lists((k) => `devices offered by ${k.split(":")[0]} (${k.split(":")[1]})`, before.available, after.available);
  return out;
}

/**
 * The first `max` differences of {@link fingerprintChanges} as one phrase,
 * grouped by subject, then `and N more`: `qube work: memory, power state;
 * policy file 30-user.policy (new); and 2 more`. `""` when there is none.
 */
export function describeChanges(changes: readonly StaleChange[], max = 3): string {
  const shown = changes.slice(0, max);
  const groups: { subject: string; whats: string[] }[] = [];
  for (const c of shown) {
    const last = groups.at(-1);
    if (last && last.subject === c.subject) last.whats.push(c.what);
    else groups.push({ subject: c.subject, whats: [c.what] });
  }
  const parts = groups.map((g) => {
    const whats = g.whats.filter((w) => w !== "" && w !== "new" && w !== "gone");
    const state = g.whats.includes("new") ? " (new)" : g.whats.includes("gone") ? " (gone)" : "";
    return `${g.subject}${whats.length ? `: ${whats.join(", ")}` : ""}${state}`;
  });
  const more = changes.length - shown.length;
  if (more > 0) parts.push(`and ${more} more`);
  return parts.join("; ");
}
