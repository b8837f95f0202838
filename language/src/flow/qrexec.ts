/**
 * Helpers of the qrexec edges (`sweep.ts`): the node names of targets, the
 * direction of the services no rule names, and the system model with one
 * new disposable of each disposable template.
 *
 * Disposables as callers: the node `@dispvm:X` calls services as a new qube
 * would that qubesd creates from X: of type `DispVM`, with X's tags, `internal`,
 * `default_dispvm` and `guivm`, running. Its calls are decided with that qube
 * added to the system model (a fresh name no rule names): rules whose source is
 * `*`, `@anyvm`, `@type:DispVM` or `@tag:T` (X tagged T) match it; a source
 * `@dispvm:X` or `@dispvm:@tag:T` never matches any call (the engine compares
 * the source as a plain name), and no rule can name a disposable that does not
 * exist yet.
 */
import { prepared } from "../eval/system.js";
import type { DomainInfo, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy } from "../loader/types.js";
import { tokenNames } from "../audit/space.js";
import { movesBackward, movesForward, serviceFlow, type FlowDirection, type ServiceCatalogue } from "./catalogue.js";

/** `@adminvm` is dom0's node. */
export function nodeName(x: string): string {
  return x === "@adminvm" ? "dom0" : x;
}

/** The directions of the services no rule names: the default and every catalogue entry that can match such a service. */
export function otherServicesFlow(catalogue: ServiceCatalogue, named: Set<string>): { direction: FlowDirection; control: boolean; plain: boolean; note: string } {
  let f = false;
  let b = false;
  let control = false;
  let plain = false;
  const dflt = serviceFlow(catalogue, "\0no such service");
  for (const e of [...catalogue.entries, dflt]) {
    if (!e.pattern.includes("*") && named.has(e.pattern)) continue;
    f ||= movesForward(e.direction);
    b ||= movesBackward(e.direction);
    control ||= e.control;
    plain ||= !e.control;
  }
  return { direction: f && b ? "both" : f ? "forward" : b ? "backward" : "none", control, plain, note: "every service no rule names (`*` rules)" };
}

function fresh(base: string, taken: Set<string>): string {
  let s = base;
  for (let i = 2; taken.has(s); i++) s = `${base}-${i}`;
  return s;
}

/** The system with one new disposable of each template added (see the module comment), and their names. */
export function disposableSystem(policy: CompiledPolicy | undefined, system: SystemInfo, templates: readonly string[]): { system: SystemInfo; names: Map<string, string> } {
  const sys = prepared(system);
  const taken = new Set<string>(sys.domains.keys());
  const tags = new Set<string>();
  if (policy) for (const r of policy.rules) for (const t of [r.source, r.target, r.redirect, r.defaultTarget]) tokenNames(t, taken, tags);
  const domains = new Map(sys.domains);
  const aliases = [...sys.domains.keys()].some((k) => k.startsWith("uuid:"));
  const names = new Map<string, string>();
  templates.forEach((x, i) => {
    // Not cut to the 31 characters of a real qube name: it is never sent to qubesd, and a longer name can be no real qube.
    const name = fresh(`disp-of-${x}`, taken);
    taken.add(name);
    const t = (sys.domains.get(x) ?? {}) as Record<string, unknown>;
    const uuid = `ffffffff-0000-4000-8000-${String(i + 1).padStart(12, "0")}`;
    const d: DomainInfo = {
      ...(t as DomainInfo),
      name,
      type: "DispVM",
      tags: Array.isArray(t["tags"]) ? [...(t["tags"] as string[])] : [],
      template_for_dispvms: false,
      power_state: "Running",
      relayvm: null,
      transport_rpc: null,
      uuid,
    } as DomainInfo;
    domains.set(name, d);
    if (aliases) domains.set("uuid:" + uuid, d);
    names.set(x, name);
  });
  return { system: prepared({ domains }), names };
}
