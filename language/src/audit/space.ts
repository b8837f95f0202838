/**
 * The finite request space of a system for a set of policies, and the
 * equivalence classes of qubes that make deciding it cheap.
 *
 * Services and arguments: those named by the rules of the policies, plus one
 * representative for every service (and, per service, every argument) that
 * no rule names; those all decide alike, since only rules with `*` there
 * match them. Sources: every qube. Targets: every qube name, `@default`,
 * `@adminvm`, `@dispvm`, and `@dispvm:X` for every disposable template X
 * (any other `@dispvm:X` is refused before the policy is read).
 *
 * Two qubes are in one class when nothing any rule of the policies can see
 * tells them apart: neither is named by a rule or referenced by another qube
 * (`default_dispvm`, `relayvm`), and they agree on every attribute the engine
 * reads (type, the tags that rules mention, `template_for_dispvms`,
 * `default_dispvm`, `internal`, `power_state`, `relayvm`, `transport_rpc`,
 * which keys are present at all). Permuting the qubes of a class is then an
 * automorphism of the system and of every policy, so a request decides as
 * any other request obtained from it by such a permutation, up to renaming.
 */
import { isDom0Token } from "../syntax/tokens.js";
import type { QubeToken } from "../syntax/tree.js";
import type { SystemInfo } from "../eval/types.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { pyCompare, pyTruthy } from "../syntax/python.js";
import { prepared } from "../eval/system.js";

/** One argument of a service in the space. */
export interface SpaceArgument {
  /** The argument evaluated (`+` is the empty argument). */
  argument: string;
  /** `*` for the representative of every argument no rule names, else {@link argument}. */
  display: string;
}

/** One service of the space with its arguments. */
export interface SpaceService {
  /** The service evaluated. */
  service: string;
  /** `*` for the representative of every service no rule names, else {@link service}. */
  display: string;
  arguments: SpaceArgument[];
}

/** The request space of a system for some policies. */
export interface RequestSpace {
  services: SpaceService[];
  /** Every qube name (sources, and name targets). */
  qubes: string[];
  /** Every target: qube names, `@default`, `@adminvm`, `@dispvm`, `@dispvm:X` per disposable template. */
  targets: string[];
  /** The qubes whose `@dispvm:NAME` is a valid intended target. */
  dispvmTemplates: string[];
}

function fresh(base: string, taken: Set<string>): string {
  let s = base;
  for (let i = 2; taken.has(s); i++) s = `${base}${i}`;
  return s;
}


function isTemplate(d: unknown): boolean {
  return !!d && typeof d === "object" && !Array.isArray(d) && pyTruthy((d as Record<string, unknown>)["template_for_dispvms"]);
}

/** The request space of `system` for `policies` (see the module comment). */
export function requestSpace(policies: readonly CompiledPolicy[], system: SystemInfo): RequestSpace {
  const named = new Set<string>();
  const argsOf = new Map<string | null, Set<string>>();
  for (const p of policies) {
    for (const r of p.rules) {
      if (r.service !== null) named.add(r.service);
      let s = argsOf.get(r.service);
      if (!s) argsOf.set(r.service, (s = new Set()));
      if (r.argument !== null) s.add(r.argument);
    }
  }
  const otherService = fresh("qkit.OtherService", named);
  const services: SpaceService[] = [];
  for (const [service, display] of [...[...named].sort(pyCompare).map((s) => [s, s] as const), [otherService, "*"] as const]) {
    const args = new Set<string>([...(argsOf.get(service) ?? []), ...(argsOf.get(null) ?? [])]);
    // The representative of the arguments no rule names: the empty argument
    // (the most common call) unless a rule names it.
    const other = args.has("+") ? fresh("+qkit-other-argument", args) : "+";
    services.push({
      service,
      display,
      arguments: [...[...args].sort(pyCompare).map((a) => ({ argument: a, display: a })), { argument: other, display: "*" }],
    });
  }
  const sys = prepared(system);
  const qubes = [...sys.names].sort(pyCompare);
  const dispvmTemplates = qubes.filter((q) => isTemplate(sys.domains.get(q)));
  const targets = [...qubes, "@default", "@adminvm", "@dispvm", ...dispvmTemplates.map((q) => "@dispvm:" + q)];
  return { services, qubes, targets, dispvmTemplates };
}

/** The rules of a policy that can match requests for (service, argument), in order. */
export function rulesFor(policy: CompiledPolicy, service: string, argument: string): PolicyRule[] {
  return policy.rules.filter((r) => (r.service === null || r.service === service) && (r.argument === null || r.argument === argument));
}

const ENGINE_KEYS = ["type", "template_for_dispvms", "default_dispvm", "internal", "power_state", "relayvm", "transport_rpc"] as const;

/** Adds the qube names and the tags a token mentions to `names` and `tags`. */
export function tokenNames(tok: QubeToken | null, names: Set<string>, tags: Set<string>): void {
  if (!tok) return;
  switch (tok.kind) {
    case "name":
      names.add(tok.text);
      break;
    case "dispvm-template":
      names.add(tok.value);
      break;
    case "tag":
    case "dispvm-tag":
      tags.add(tok.value);
      break;
    default:
  }
}

/**
 * The classes of qubes that no rule of `policies` tells apart (see the
 * module comment), each sorted, in the order of their first member.
 * Qubes named by a rule, dom0, qubes another qube refers to, and every qube
 * of a system model with `uuid:` keys of its own, are classes of one.
 */
export function qubeClasses(policies: readonly CompiledPolicy[], system: SystemInfo): string[][] {
  const sys = prepared(system);
  const names = new Set<string>();
  const tags = new Set<string>();
  for (const p of policies) {
    for (const r of p.rules) {
      tokenNames(r.source, names, tags);
      tokenNames(r.target, names, tags);
      tokenNames(r.redirect, names, tags);
      tokenNames(r.defaultTarget, names, tags);
    }
  }
  const referenced = new Set<string>();
  const uuidCount = new Map<string, number>();
  for (const q of sys.names) {
    const d = sys.domains.get(q) as Record<string, unknown> | null;
    if (!d || typeof d !== "object") continue;
    for (const k of ["default_dispvm", "relayvm"]) if (typeof d[k] === "string") referenced.add(d[k] as string);
    const u = d["uuid"];
    if (u !== undefined) uuidCount.set(String(u), (uuidCount.get(String(u)) ?? 0) + 1);
  }
  // A model that carries its own `uuid:` keys is used as is (no aliases added): keep everything apart.
  const entries = new Set(sys.names.map((n) => sys.domains.get(n)));
  const ownAliases = [...sys.domains].some(([k, v]) => k.startsWith("uuid:") && !entries.has(v));
  const classes = new Map<string, string[]>();
  const sorted = [...sys.names].sort(pyCompare);
  for (const q of sorted) {
    const d = sys.domains.get(q) as Record<string, unknown> | null;
    let key: string;
    const plain = !!d && typeof d === "object" && !Array.isArray(d);
    const uuid = plain ? d["uuid"] : undefined;
    const single =
      ownAliases ||
      !plain ||
      isDom0Token(q) ||
      names.has(q) ||
      referenced.has(q) ||
      (uuid !== undefined && (names.has("uuid:" + String(uuid)) || (uuidCount.get(String(uuid)) ?? 0) > 1 || isDom0Token("uuid:" + String(uuid))));
    if (single) key = "\0" + q;
    else {
      const sig: unknown[] = ENGINE_KEYS.map((k) => (k in d ? d[k] : "\0absent"));
      const t = d["tags"];
      sig.push(Array.isArray(t) && t.every((x) => typeof x === "string") ? [...new Set(t.filter((x) => tags.has(x)))].sort() : "tags" in d ? ["\0raw", t] : "\0absent");
      sig.push("uuid" in d ? typeof d["uuid"] : "\0absent");
      sig.push("name" in d ? d["name"] === q : "\0absent");
      key = JSON.stringify(sig);
    }
    let c = classes.get(key);
    if (!c) classes.set(key, (c = []));
    c.push(q);
  }
  return [...classes.values()];
}
