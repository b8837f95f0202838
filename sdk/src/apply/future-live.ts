/**
 * Reading the live system for what-if: `internal.GetSystemInfo` as
 * {@link systemInfo} builds it, plus the extension keys `future.ts` reads
 * (`template`, `properties` = the explicitly set properties, `features` =
 * the few features what-if needs) and the global properties.
 */
import type { DomainInfo } from "@qubes-kit/language";
import { KEYS_FEATURE, OWNER_FEATURE } from "@qubes-kit/language";
import { calls } from "../calls.js";
import { QubesFeatureNotFoundError } from "../errors.js";
import { mapLimit } from "../events.js";
import type { Qubes } from "../qubes.js";
import { systemInfo } from "../system-info.js";
import type { PropertyValue } from "../values.js";
import type { WhatIfSystem } from "./future.js";

/** The features what-if looks at (ownership, managed keys, icon, ask targets). */
const FEATURES = [OWNER_FEATURE, KEYS_FEATURE, "servicevm", "internal"];

function jsValue(p: PropertyValue): string | number | boolean | null {
  return p.value === undefined ? null : p.value;
}

/** The live system with the extension keys of `future.ts`, through the Admin API. */
export async function readWhatIfSystem(qubes: Qubes, options: { concurrency?: number } = {}): Promise<WhatIfSystem> {
  const info = await systemInfo(qubes, options.concurrency ? { concurrency: options.concurrency } : {});
  const names = Object.keys(info.domains).filter((n) => !n.startsWith("uuid:"));
  const extra = await mapLimit(names, options.concurrency ?? 8, async (name): Promise<[string, Partial<DomainInfo>]> => {
    const props = await qubes.run(calls.propertyGetAll(name));
    const properties: Record<string, string | number | boolean | null> = {};
    for (const [k, p] of props) if (!p.isDefault) properties[k] = jsValue(p);
    const features: Record<string, string> = {};
    for (const f of FEATURES) {
      try {
        features[f] = await qubes.run(calls.featureGet(name, f));
      } catch (err) {
        if (!(err instanceof QubesFeatureNotFoundError)) throw err;
      }
    }
    const out: Partial<DomainInfo> = { properties, features };
    const t = props.get("template");
    if (t && typeof t.value === "string") out["template"] = t.value;
    return [name, out];
  });
  for (const [name, e] of extra) Object.assign(info.domains[name]!, e);
  const global: Record<string, string | number | boolean | null> = {};
  const globalDefaults: string[] = [];
  for (const [k, p] of await qubes.run(calls.propertyGetAll())) {
    global[k] = jsValue(p);
    if (p.isDefault) globalDefaults.push(k);
  }
  return { ...info, global, globalDefaults };
}
