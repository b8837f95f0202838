/**
 * Event streams (`admin.Events`, `admin.vm.Stats`) as async iterators that
 * reconnect, and a cache of qubes kept coherent from events.
 *
 * Every connection starts with `connection-established` (subject `null`);
 * after a reconnect the consumer sees it again and must resync, which
 * {@link QubesCache} does by reloading everything.
 */
import type { AdminClient } from "./client.js";
import { calls } from "./calls.js";
import { QubesAbortError, QubesClientError, QubesDaemonAccessError, QubesException, QubesTimeoutError } from "./errors.js";
import type { QubesEvent } from "./protocol.js";
import type { PropertyValue, PowerState, QubeListEntry } from "./values.js";

/** Options of {@link eventStream}. */
export interface EventStreamOptions {
  /** `dom0` (default) for every event, or one qube's name. */
  dest?: string;
  /** `admin.Events` (default) or `admin.vm.Stats`. */
  method?: "admin.Events" | "admin.vm.Stats";
  /** Reconnect when the stream ends or the connection fails (default `true`), like qubesadmin. */
  reconnect?: boolean;
  /** Delay before reconnecting in ms (default 1000, qubesadmin's `QUBESD_RECONNECT_DELAY`). */
  reconnectDelay?: number;
  /** Stops the stream (the iterator then ends without an error). */
  signal?: AbortSignal;
  /** Called when a connection is lost and will be retried. */
  onDisconnect?: (error: unknown) => void;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Whether a failure is worth reconnecting for (transport trouble, not a refusal by qubesd). */
function transient(err: unknown): boolean {
  if (err instanceof QubesAbortError) return false;
  if (err instanceof QubesDaemonAccessError || err instanceof QubesTimeoutError) return true;
  if (err instanceof QubesClientError) return err.code === "truncated-event";
  return !(err instanceof QubesException);
}

/**
 * Yields events until `signal` aborts (then ends quietly) or, with
 * `reconnect: false`, until the server closes. qubesd refusals
 * (`PermissionDenied`, `ProtocolError` …) are thrown, never retried.
 */
export async function* eventStream(client: AdminClient, options: EventStreamOptions = {}): AsyncGenerator<QubesEvent> {
  const reconnect = options.reconnect ?? true;
  const delay = options.reconnectDelay ?? 1000;
  const signal = options.signal;
  for (;;) {
    if (signal?.aborted) return;
    try {
      for await (const e of client.stream({ method: options.method ?? "admin.Events", dest: options.dest ?? "dom0" }, signal ? { signal } : {})) {
        yield e;
      }
      if (!reconnect) return;
      options.onDisconnect?.(undefined);
    } catch (err) {
      if (signal?.aborted) return;
      if (!reconnect || !transient(err)) throw err;
      options.onDisconnect?.(err);
    }
    await sleep(delay, signal);
  }
}

/** One `vm-stats` event, decoded. */
export interface VmStats {
  qube: string;
  memoryKb: number;
  cpuTime: number;
  cpuUsage: number;
  onlineVcpus: number | undefined;
  /** Every key as sent. */
  raw: Record<string, string>;
}

/** Decodes a `vm-stats` event (numbers are sent as text). */
export function parseVmStats(e: QubesEvent): VmStats | undefined {
  if (e.event !== "vm-stats" || e.subject === null) return undefined;
  const n = (k: string) => (e.kwargs[k] === undefined ? NaN : Number(e.kwargs[k]));
  return {
    qube: e.subject,
    memoryKb: n("memory_kb"),
    cpuTime: n("cpu_time"),
    cpuUsage: n("cpu_usage"),
    onlineVcpus: e.kwargs["online_vcpus"] === undefined ? undefined : n("online_vcpus"),
    raw: e.kwargs,
  };
}

/** A qube as {@link QubesCache} holds it. */
export interface CachedQube {
  name: string;
  class: string;
  state: PowerState;
  uuid: string | undefined;
  /** Known property values; a missing entry is fetched on demand. */
  properties: Map<string, PropertyValue>;
  /** Whether `properties` holds the full GetAll answer (minus invalidated entries). */
  propertiesLoaded: boolean;
  /** Tags, or `undefined` until loaded. */
  tags: Set<string> | undefined;
  /** Features, or `undefined` until loaded. */
  features: Map<string, string> | undefined;
}

/** Options of {@link QubesCache}. */
export interface QubesCacheOptions {
  /** Load every qube's properties and tags up front (default `true`). */
  eager?: boolean;
  /** Concurrent calls while loading (default 8). */
  concurrency?: number;
}

const POWER_EVENTS: Record<string, PowerState> = {
  "domain-pre-start": "Transient",
  "domain-start": "Running",
  "domain-start-failed": "Halted",
  "domain-pre-shutdown": "Halting",
  "domain-shutdown": "Halted",
  "domain-paused": "Paused",
  "domain-unpaused": "Running",
  "domain-suspended": "Suspended",
  "domain-resumed": "Running",
};

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/**
 * A cache of every visible qube (list entry, properties, tags, features),
 * kept coherent from `admin.Events`: property changes update or invalidate
 * entries, power events update the state, tags and features are applied,
 * qubes appear and disappear, and `connection-established` reloads all.
 */
export class QubesCache {
  /** The qubes by name. */
  readonly qubes = new Map<string, CachedQube>();
  /** Global properties (subject `null`), filled on demand. */
  readonly globals = new Map<string, PropertyValue>();
  private readonly client: AdminClient;
  private readonly eager: boolean;
  private readonly concurrency: number;
  private loads = 0;

  constructor(client: AdminClient, options: QubesCacheOptions = {}) {
    this.client = client;
    this.eager = options.eager ?? true;
    this.concurrency = options.concurrency ?? 8;
  }

  /** How many full (re)loads happened. */
  get loadCount(): number {
    return this.loads;
  }

  /** (Re)loads every qube from `admin.vm.List` (and, when eager, properties and tags). */
  async load(signal?: AbortSignal): Promise<void> {
    const opts = signal ? { signal } : {};
    const list = await this.client.run(calls.vmList(), opts);
    const fresh = new Map<string, CachedQube>();
    for (const e of list) fresh.set(e.name, this.entry(e));
    if (this.eager) {
      await mapLimit([...fresh.values()], this.concurrency, async (q) => {
        q.properties = await this.client.run(calls.propertyGetAll(q.name), opts);
        q.propertiesLoaded = true;
        q.tags = new Set(await this.client.run(calls.tagList(q.name), opts));
      });
    }
    this.qubes.clear();
    for (const [k, v] of fresh) this.qubes.set(k, v);
    this.globals.clear();
    this.loads++;
  }

  private entry(e: QubeListEntry): CachedQube {
    return { name: e.name, class: e.class, state: e.state, uuid: e.uuid, properties: new Map(), propertiesLoaded: false, tags: undefined, features: undefined };
  }

  /** A property of a qube, from the cache or fetched (and cached). */
  async getProperty(qube: string, name: string): Promise<PropertyValue> {
    const q = this.qubes.get(qube);
    const hit = q?.properties.get(name);
    if (hit) return hit;
    const v = await this.client.run(calls.propertyGet(name, qube));
    this.qubes.get(qube)?.properties.set(name, v);
    return v;
  }

  /** A global property, from the cache or fetched (and cached until it changes). */
  async getGlobal(name: string): Promise<PropertyValue> {
    const hit = this.globals.get(name);
    if (hit) return hit;
    const v = await this.client.run(calls.propertyGet(name));
    this.globals.set(name, v);
    return v;
  }

  /** The tags of a qube, from the cache or fetched. */
  async getTags(qube: string): Promise<Set<string>> {
    const q = this.qubes.get(qube);
    if (q?.tags) return q.tags;
    const tags = new Set(await this.client.run(calls.tagList(qube)));
    if (q) q.tags = tags;
    return tags;
  }

  /** The features of a qube, from the cache or fetched. */
  async getFeatures(qube: string): Promise<Map<string, string>> {
    const q = this.qubes.get(qube);
    if (q?.features) return q.features;
    const names = await this.client.run(calls.featureList(qube));
    const features = new Map<string, string>();
    await mapLimit(names, this.concurrency, async (n) => {
      features.set(n, await this.client.run(calls.featureGet(qube, n)));
    });
    if (q) q.features = features;
    return features;
  }

  /**
   * Applies one event. Returns a promise when the event needs a call (a new
   * qube, or a full reload on `connection-established`).
   */
  apply(e: QubesEvent): Promise<void> | undefined {
    if (e.event === "connection-established") return this.load();
    if (e.subject === null) {
      if (e.event === "domain-add" && e.kwargs["vm"]) {
        const name = e.kwargs["vm"];
        return this.client.run(calls.vmList(name)).then((entries) => {
          for (const en of entries) if (en.name === name) this.qubes.set(name, this.entry(en));
        });
      }
      if (e.event === "domain-delete" && e.kwargs["vm"]) {
        this.qubes.delete(e.kwargs["vm"]);
        return undefined;
      }
      const prop = /^property-(?:set|reset|del):(.+)$/.exec(e.event);
      if (prop) this.globals.delete(prop[1]!);
      return undefined;
    }
    const q = this.qubes.get(e.subject);
    if (!q) return undefined;
    const power = POWER_EVENTS[e.event];
    if (power) q.state = power;
    const colon = e.event.indexOf(":");
    const kind = colon < 0 ? e.event : e.event.slice(0, colon);
    const key = colon < 0 ? "" : e.event.slice(colon + 1);
    switch (kind) {
      case "property-set": {
        const old = q.properties.get(key);
        const nv = e.kwargs["newvalue"];
        if (old && nv !== undefined && (old.type === "str" || old.type === "vm" || old.type === "label")) {
          const value = old.type === "str" ? nv : nv === "None" || nv === "" ? null : nv;
          q.properties.set(key, { isDefault: false, type: old.type, value, raw: value ?? "" });
        } else if (old && nv !== undefined && old.type === "int" && /^-?[0-9]+$/.test(nv)) {
          q.properties.set(key, { isDefault: false, type: "int", value: Number(nv), raw: nv });
        } else if (old && (nv === "True" || nv === "False") && old.type === "bool") {
          q.properties.set(key, { isDefault: false, type: "bool", value: nv === "True", raw: nv });
        } else {
          q.properties.delete(key);
        }
        if (key === "name") return this.load();
        break;
      }
      case "property-reset":
      case "property-del":
        q.properties.delete(key);
        break;
      case "domain-tag-add":
        q.tags?.add(e.kwargs["tag"] ?? key);
        break;
      case "domain-tag-delete":
        q.tags?.delete(e.kwargs["tag"] ?? key);
        break;
      case "domain-feature-set":
        q.features?.set(e.kwargs["feature"] ?? key, e.kwargs["value"] ?? "");
        break;
      case "domain-feature-delete":
        q.features?.delete(e.kwargs["feature"] ?? key);
        break;
    }
    return undefined;
  }

  /**
   * Follows `admin.Events` (reconnecting) and keeps the cache coherent until
   * `signal` aborts. Each event is applied before the next is read.
   * `onEvent` sees every event after it was applied.
   */
  async follow(options: { signal?: AbortSignal; reconnectDelay?: number; onEvent?: (e: QubesEvent) => void } = {}): Promise<void> {
    const streamOptions: EventStreamOptions = {};
    if (options.signal) streamOptions.signal = options.signal;
    if (options.reconnectDelay !== undefined) streamOptions.reconnectDelay = options.reconnectDelay;
    for await (const e of eventStream(this.client, streamOptions)) {
      await this.apply(e);
      options.onEvent?.(e);
    }
  }
}
