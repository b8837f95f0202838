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
import type { LiveDevice, LiveProperty, LiveQube, LiveSystem } from "./types.js";

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
  const qubes: Record<string, unknown> = {};
  for (const [name, q] of Object.entries(live.qubes)) {
    if (scope.deep[name] || (q.features["x-qkit-stack"] ?? "") !== "") {
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
  const data = { qubes, globals: live.globals, labels: live.labels, pools: live.pools, policyNames: live.policyNames, policy, available: live.available };
  return `sha256:${createHash("sha256").update(stableJson(data)).digest("hex")}`;
}
