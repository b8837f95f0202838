/**
 * A system snapshot in exactly the shape of qubesd's `internal.GetSystemInfo`
 * (the model the qrexec policy engine evaluates against), built through the
 * public Admin API: `admin.vm.List`, then per qube `property.GetAll`,
 * `tag.List` and `feature.Get+internal`, plus `label.Get` per label.
 */
import type { DomainInfo, RawSystemInfo } from "@qubes-kit/language";
import { calls } from "./calls.js";
import type { CallOptions } from "./client.js";
import { QubesEmptyReplyError, QubesFeatureNotFoundError } from "./errors.js";
import { mapLimit } from "./events.js";
import type { Qubes } from "./qubes.js";
import type { PropertyValue } from "./values.js";

/** Options of {@link systemInfo}. */
export interface SystemInfoOptions {
  /** Concurrent calls (default 8). */
  concurrency?: number;
  signal?: AbortSignal;
}

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
  const infos = await mapLimit(list, options.concurrency ?? 8, async (entry): Promise<[string, DomainInfo]> => {
    const [props, tags, internal] = await Promise.all([
      qubes.run(calls.propertyGetAll(entry.name), opts),
      qubes.run(calls.tagList(entry.name), opts),
      qubes.run(calls.featureGet(entry.name, "internal"), opts).catch((err: unknown) => {
        if (err instanceof QubesFeatureNotFoundError) return null;
        throw err;
      }),
    ]);
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
  return { domains };
}
