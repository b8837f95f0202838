/**
 * The system model: qubesd's `internal.GetSystemInfo`, post-processed as the
 * engine does it before evaluating.
 */
import { pyStr } from "./py.js";
import type { DomainInfo, RawSystemInfo, SystemInfo } from "./types.js";

/** The prepared model, with lookups the evaluator derives from it once. */
export interface PreparedSystem extends SystemInfo {
  /** UUID string → the names (non-`uuid:` keys) whose `uuid` is that string. */
  readonly namesByUuid: ReadonlyMap<string, readonly string[]>;
  /** The names (keys not starting with `uuid:`), in order. */
  readonly names: readonly string[];
  /**
   * Every entry is an object with `type`, a `tags` list and
   * `template_for_dispvms`: then matching `@type:`/`@tag:` tokens cannot
   * crash, which lets the evaluator skip rules by index.
   */
  readonly wellFormed: boolean;
}

/**
 * Adds `name` to every entry and an alias key `uuid:<uuid>` for the same
 * entry, exactly like `qrexec.utils.get_system_info()`; when the input
 * already has a `uuid:` key, the step is skipped as a whole (as the engine's
 * harness does). Keys are kept in input order; missing keys stay missing.
 */
export function prepareSystemInfo(raw: RawSystemInfo | { domains?: unknown } | null | undefined): SystemInfo {
  const domainsIn = raw && typeof raw === "object" && raw.domains && typeof raw.domains === "object" ? (raw.domains as Record<string, DomainInfo>) : {};
  const domains = new Map<string, DomainInfo>();
  const keys = Object.keys(domainsIn);
  // JavaScript orders integer-like keys first; the engine keeps file order.
  // Only the order of iteration could differ, and no decision depends on it.
  if (keys.some((k) => k.startsWith("uuid:"))) {
    for (const k of keys) domains.set(k, domainsIn[k]!);
  } else {
    for (const k of keys) {
      const entry = domainsIn[k];
      const copy = entry && typeof entry === "object" && !Array.isArray(entry) ? { ...entry, name: k } : (entry as DomainInfo);
      domains.set(k, copy);
    }
    for (const k of keys) {
      const entry = domains.get(k);
      if (entry && typeof entry === "object" && !Array.isArray(entry) && Object.prototype.hasOwnProperty.call(entry, "uuid")) {
        domains.set("uuid:" + pyStr(entry.uuid), entry);
      }
    }
  }
  return withLookups(domains);
}

function withLookups(domains: Map<string, DomainInfo>): PreparedSystem {
  const namesByUuid = new Map<string, string[]>();
  const names: string[] = [];
  for (const [k, v] of domains) {
    if (k.startsWith("uuid:")) continue;
    names.push(k);
    const u = v && typeof v === "object" ? (v as DomainInfo).uuid : undefined;
    if (typeof u === "string") {
      let l = namesByUuid.get(u);
      if (!l) namesByUuid.set(u, (l = []));
      l.push(k);
    }
  }
  const wellFormed = [...domains.values()].every((d) => {
    const o = d as Record<string, unknown> | null;
    return !!o && typeof o === "object" && !Array.isArray(o) && "type" in o && Array.isArray(o["tags"]) && "template_for_dispvms" in o;
  });
  return { domains, namesByUuid, names, wellFormed };
}

/** The prepared view of any {@link SystemInfo} (computing the lookups for foreign objects). */
export function prepared(system: SystemInfo): PreparedSystem {
  const s = system as Partial<PreparedSystem>;
  if (s.namesByUuid && s.names && s.wellFormed !== undefined) return s as PreparedSystem;
  return withLookups(new Map(system.domains));
}
