/**
 * A system snapshot in exactly the shape of qubesd's `internal.GetSystemInfo`
 * (the model the qrexec policy engine evaluates against), built through the
 * public Admin API: `admin.vm.List`, then per qube `property.GetAll`,
 * `tag.List` and `feature.Get+internal`, plus `label.Get` per label; with
 * `services`, also what each qube's agent advertises (`supported_rpc`).
 */
import type { DomainInfo, RawSystemInfo } from "@qubes-kit/language";
import { calls } from "./calls.js";
import type { CallOptions } from "./client.js";
import { PermissionDenied, QubesEmptyReplyError, QubesFeatureNotFoundError, QubesNoSuchPropertyError, QubesVMNotFoundError } from "./errors.js";
import { mapLimit } from "./events.js";
import type { Qubes } from "./qubes.js";
import type { PropertyValue } from "./values.js";

/** Options of {@link systemInfo}. */
export interface SystemInfoOptions {
  /** Concurrent calls (default 8). */
  concurrency?: number;
  signal?: AbortSignal;
  /**
   * Also read the qrexec services each qube advertises (see {@link systemInfo}): one
   * `feature.List` per qube and one `feature.Get` per `supported-rpc.*` feature. Default `false`.
   */
  services?: boolean;
}

/** The prefix of the features that list the qrexec services a qube's agent advertises. */
const SUPPORTED_RPC = "supported-rpc.";

function vmValue(p: PropertyValue | undefined): string | null {
  return p && typeof p.value === "string" && p.value !== "" ? p.value : null;
}

/**
 * Builds the `internal.GetSystemInfo` JSON through the Admin API. Keys and
 * their order are those of qubesd: `internal, tags, type,
 * template_for_dispvms, default_dispvm, icon, label, guivm, relayvm,
 * transport_rpc, power_state, uuid`. `icon` is the label's icon
 * (`appvm-<label>`), `label` its colour. Tags are sorted. From a management
 * qube the result only holds the qubes its policy lets it see.
 *
 * With `services: true`, each qube may end with one more key, our documented
 * extension of the shape (the policy engine ignores it): `supported_rpc`, the
 * sorted names of the qrexec services whose `supported-rpc.NAME` feature is
 * true (not empty), each looked up on the qube first, else on its template
 * chain, as `admin.vm.feature.CheckWithTemplate` does. The agent advertises
 * them at `qubes.PostInstall` (every executable or socket in its
 * `/etc/qubes-rpc`, the `+ARG` part dropped), so a qube whose chain
 * advertises nothing (an old agent, Windows, dom0, which is not asked) has no
 * key: its services are unknown. So is a qube whose features or template
 * cannot be read (not visible, or refused from a management qube).
 *
 * A label whose colour cannot be read (qubesd answers `label.Get` on labels
 * made with `admin.label.Create` with an empty reply, an upstream bug) gets
 * the colour `""`.
 *
 * @example
 * ```ts
 * import { prepareSystemInfo, evaluate } from "@qubes-kit/language";
 * import { Qubes, systemInfo } from "@qubes-kit/sdk";
 *
 * const system = prepareSystemInfo(await systemInfo(Qubes.local()));
 * const d = evaluate(policy, makeRequest("qubes.Filecopy", "work", "vault"), system);
 * ```
 */
export async function systemInfo(qubes: Qubes, options: SystemInfoOptions = {}): Promise<RawSystemInfo> {
  const opts: CallOptions = options.signal ? { signal: options.signal } : {};
  const list = await qubes.run(calls.vmList(), opts);
  const colours = new Map<string, Promise<string>>();
  const colour = (label: string): Promise<string> => {
    let c = colours.get(label);
    if (!c) {
      c = qubes.run(calls.labelGet(label), opts).catch((err: unknown) => {
        if (err instanceof QubesEmptyReplyError) return "";
        throw err;
      });
      colours.set(label, c);
    }
    return c;
  };
  const templates = new Map<string, string | null>();
  const infos = await mapLimit(list, options.concurrency ?? 8, async (entry): Promise<[string, DomainInfo]> => {
    const [props, tags, internal] = await Promise.all([
      qubes.run(calls.propertyGetAll(entry.name), opts),
      qubes.run(calls.tagList(entry.name), opts),
      qubes.run(calls.featureGet(entry.name, "internal"), opts).catch((err: unknown) => {
        if (err instanceof QubesFeatureNotFoundError) return null;
        throw err;
      }),
    ]);
    templates.set(entry.name, vmValue(props.get("template")));
    const label = vmValue(props.get("label"));
    const tfd = props.get("template_for_dispvms");
    const transport = props.get("transport_rpc");
    const info: DomainInfo = {
      internal,
      tags: [...tags].sort(),
      type: entry.class,
      template_for_dispvms: tfd?.value === true,
      default_dispvm: vmValue(props.get("default_dispvm")),
      icon: label ? `appvm-${label}` : "",
      label: label ? await colour(label) : "",
      guivm: vmValue(props.get("guivm")),
      relayvm: vmValue(props.get("relayvm")),
      transport_rpc: transport && typeof transport.value === "string" && transport.value !== "" ? transport.value : null,
      power_state: entry.state,
      uuid: entry.uuid ?? "",
    };
    return [entry.name, info];
  });
  const domains: Record<string, DomainInfo> = {};
  for (const [name, info] of infos) domains[name] = info;
  if (options.services) {
    const own = await advertised(qubes, list.filter((e) => e.class !== "AdminVM").map((e) => e.name), options.concurrency ?? 8, opts);
    for (const [name] of own) {
      const services = resolveServices(name, own, templates);
      if (services && services.length > 0) domains[name]!["supported_rpc"] = services;
    }
  }
  return { domains };
}

/**
 * The qrexec services each qube advertises, by qube name, as {@link systemInfo} with `services`
 * reads them (`supported_rpc`), for a caller that already has the rest of the model (the
 * language server reads `internal.GetSystemInfo` from qubesd's internal socket, which does not
 * carry them): `admin.vm.List`, per qube `property.Get+template`, then the features. Qubes whose
 * services are unknown are left out. {@link addAdvertisedServices} puts them into a model.
 */
export async function advertisedServices(qubes: Qubes, options: Omit<SystemInfoOptions, "services"> = {}): Promise<Map<string, string[]>> {
  const opts: CallOptions = options.signal ? { signal: options.signal } : {};
  const concurrency = options.concurrency ?? 8;
  const list = (await qubes.run(calls.vmList(), opts)).filter((e) => e.class !== "AdminVM");
  const templates = new Map<string, string | null>();
  await mapLimit(list, concurrency, async (entry) => {
    try {
      templates.set(entry.name, vmValue(await qubes.run(calls.propertyGet("template", entry.name), opts)));
    } catch (err) {
      if (err instanceof QubesNoSuchPropertyError) templates.set(entry.name, null);
      else if (!(err instanceof PermissionDenied || err instanceof QubesEmptyReplyError || err instanceof QubesVMNotFoundError)) throw err;
    }
  });
  const own = await advertised(qubes, list.map((e) => e.name), concurrency, opts);
  // A qube whose template could not be read: its chain is unknown.
  for (const entry of list) if (!templates.has(entry.name)) own.set(entry.name, null);
  const out = new Map<string, string[]>();
  for (const [name] of own) {
    const services = resolveServices(name, own, templates);
    if (services && services.length > 0) out.set(name, services);
  }
  return out;
}

/**
 * Adds `supported_rpc` to the qubes of a GetSystemInfo answer (by name; after their other keys),
 * from {@link advertisedServices}. Returns the same object.
 */
export function addAdvertisedServices(raw: RawSystemInfo, services: ReadonlyMap<string, readonly string[]>): RawSystemInfo {
  for (const [name, list] of services) {
    const info = raw.domains[name];
    if (info && typeof info === "object") info["supported_rpc"] = [...list];
  }
  return raw;
}

/**
 * Each qube's own `supported-rpc.*` features (service name → value): `feature.List` per qube, then
 * `feature.Get` of each of those features; `null` for a qube whose features cannot be read (it is
 * gone, or qubesd refuses: a management qube's policy).
 */
async function advertised(qubes: Qubes, names: readonly string[], concurrency: number, opts: CallOptions): Promise<Map<string, Map<string, string> | null>> {
  const own = new Map<string, Map<string, string> | null>();
  const refused = (err: unknown) => err instanceof PermissionDenied || err instanceof QubesEmptyReplyError || err instanceof QubesVMNotFoundError;
  const lists = await mapLimit(names, concurrency, async (name): Promise<[string, string[] | null]> => {
    try {
      return [name, (await qubes.run(calls.featureList(name), opts)).filter((f) => f.startsWith(SUPPORTED_RPC) && f.length > SUPPORTED_RPC.length)];
    } catch (err) {
      if (refused(err)) return [name, null];
      throw err;
    }
  });
  const gets: Array<[string, string]> = [];
  for (const [name, features] of lists) {
    own.set(name, features && new Map());
    for (const f of features ?? []) gets.push([name, f]);
  }
  const values = await mapLimit(gets, concurrency, async ([name, f]): Promise<[string, string, string | undefined | null]> => {
    try {
      return [name, f, await qubes.run(calls.featureGet(name, f), opts)];
    } catch (err) {
      // Removed between List and Get: not set.
      if (err instanceof QubesFeatureNotFoundError) return [name, f, undefined];
      if (refused(err)) return [name, f, null];
      throw err;
    }
  });
  for (const [name, f, value] of values) {
    if (value === null) own.set(name, null);
    else if (value !== undefined) own.get(name)?.set(f.slice(SUPPORTED_RPC.length), value);
  }
  return own;
}

/**
 * The services a qube advertises, each feature from the qube first, else from its template chain
 * (qubesd's `check_with_template`), true when not empty; sorted. `undefined` when some qube of the
 * chain could not be read or is not in the list.
 */
function resolveServices(name: string, own: ReadonlyMap<string, Map<string, string> | null>, templates: ReadonlyMap<string, string | null>): string[] | undefined {
  const resolved = new Map<string, string>();
  const seen = new Set<string>();
  for (let q: string | null | undefined = name; q; q = templates.get(q)) {
    if (seen.has(q)) break;
    seen.add(q);
    const features = own.get(q);
    if (!features) return undefined;
    for (const [service, value] of features) if (!resolved.has(service)) resolved.set(service, value);
  }
  return [...resolved].filter(([, v]) => v !== "").map(([s]) => s).sort();
}
