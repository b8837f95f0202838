/**
 * The qrexec edges of a flow graph, over groups of nodes rather than pairs of
 * qubes.
 *
 * Each (service, argument) of the request space is decided once per class of
 * qubes that no rule *of that service and argument* tells apart
 * (`qubeClasses` over those rules only: the decisions of a request read no
 * other rule), and once per class of targets; the other members follow by
 * swapping names, an automorphism of the system and of those rules. Every
 * way data moves (a {@link Way}: service, argument, action, deciding rule,
 * direction) is then stored once, as the set of groups its callers are in and
 * the set of groups its callees are in, with the relation between them
 * (`same`: the callee is the caller's own `@dispvm:` node, or the caller;
 * `cross`: any other pair). Groups are the classes of the whole policy (which
 * refine every per-service class), their `@dispvm:X` nodes, and single nodes.
 * Nothing is expanded per pair of qubes until a path shows a hop.
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
import { evaluate } from "../eval/evaluate.js";
import { prepared } from "../eval/system.js";
import type { Decision, DomainInfo, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy } from "../loader/types.js";
import { qubeClasses, requestSpace, tokenNames } from "../audit/space.js";
import { movesBackward, movesForward, serviceFlow, type FlowDirection, type ServiceCatalogue } from "./catalogue.js";
import type { FlowEdge, QrexecEvidence } from "./graph.js";

/** One way data moves over qrexec, for every pair of its caller and callee groups. */
export interface Way {
  /** The same number for the same (service, argument, action, rule, direction, control). */
  sig: number;
  /** The groups of the nodes data leaves (the callers, or the callees when {@link Way.evidence}.reverse). */
  from: number[];
  /** The groups of the nodes data reaches. */
  to: number[];
  /** `same`: only pairs of one base qube (a qube and its own `@dispvm:` node); `cross`: only pairs of different ones. */
  rel: "same" | "cross";
  allow: boolean;
  /** The evidence of the representative pair (its request is the one evaluated). */
  evidence: QrexecEvidence;
  /** The representative callee's base qube (null: a node that no swap moves). */
  calleeBase: string | null;
}

/** A group of nodes: the members of one class of qubes, their `@dispvm:` nodes, or one node. */
export interface NodeGroup {
  members: string[];
  /** The class of the members' base qubes (-1: a single node that is not a qube's). */
  cls: number;
  kind: "qube" | "dispvm" | "node";
}

/** The qrexec edges in group form. */
export interface QrexecClasses {
  groups: NodeGroup[];
  /** The group of a node. */
  groupOf: Map<string, number>;
  /** The base qube of a node (`@dispvm:X` → X); nodes that are not a qube's map to themselves. */
  baseOf: Map<string, string>;
  ways: Way[];
  /** The disposable callers' qubes: template X → the name it has in {@link dispSystem}. */
  disposableNames: Map<string, string>;
  /** The system model with one new disposable of every disposable template (for deciding their calls again). */
  dispSystem: SystemInfo;
  evaluated: number;
}

/** Options of {@link qrexecClasses}. */
export interface QrexecOptions {
  catalogue: ServiceCatalogue;
  /** Decide every source and target (no classes): the reference, slow. */
  bruteForce?: boolean;
  /** Also decide the calls of new disposables (`@dispvm:X` as a caller). Default true. */
  disposableSources?: boolean;
}

function swapName(x: string, s: string, a: string): string {
  if (s === a) return x;
  if (x === s) return a;
  if (x === a) return s;
  if (x.startsWith("@dispvm:")) return "@dispvm:" + swapName(x.slice(8), s, a);
  return x;
}

/** `@adminvm` is dom0's node. */
export function nodeName(x: string): string {
  return x === "@adminvm" ? "dom0" : x;
}

/** The directions of the services no rule names: the default and every catalogue entry that can match such a service. */
function otherServicesFlow(catalogue: ServiceCatalogue, named: Set<string>): { direction: FlowDirection; control: boolean; plain: boolean; note: string } {
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

type Granted = Decision & { ok: true; action: "allow" | "ask" };

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
    const name = fresh(`disp-of-${x}`.slice(0, 31), taken);
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

/** The qrexec edges of `policy` on `system` in group form (see the module comment). Never throws. */
export function qrexecClasses(policy: CompiledPolicy, system: SystemInfo, options: QrexecOptions): QrexecClasses {
  const space = requestSpace([policy], system);
  const globalClasses = options.bruteForce ? space.qubes.map((q) => [q]) : qubeClasses([policy], system);
  const classOf = new Map<string, number>();
  globalClasses.forEach((c, i) => c.forEach((q) => classOf.set(q, i)));
  const groups: NodeGroup[] = [];
  const groupOf = new Map<string, number>();
  const baseOf = new Map<string, string>();
  const qubeGroup = globalClasses.map((c, i) => {
    groups.push({ members: c, cls: i, kind: "qube" });
    for (const q of c) {
      groupOf.set(q, groups.length - 1);
      baseOf.set(q, q);
    }
    return groups.length - 1;
  });
  const dispGroups = new Map<number, number>();
  const dispGroup = (cls: number): number => {
    let g = dispGroups.get(cls);
    if (g === undefined) {
      const members = globalClasses[cls]!.map((q) => "@dispvm:" + q);
      groups.push({ members, cls, kind: "dispvm" });
      g = groups.length - 1;
      dispGroups.set(cls, g);
      members.forEach((m, i) => {
        groupOf.set(m, g!);
        baseOf.set(m, globalClasses[cls]![i]!);
      });
    }
    return g;
  };
  const nodeGroup = (n: string): number => {
    let g = groupOf.get(n);
    if (g === undefined) {
      groups.push({ members: [n], cls: -1, kind: "node" });
      g = groups.length - 1;
      groupOf.set(n, g);
      baseOf.set(n, n);
    }
    return g;
  };

  const named = new Set(space.services.filter((s) => s.display !== "*").map((s) => s.service));
  const qubeSet = new Set(space.qubes);
  const templates = new Set(space.dispvmTemplates);
  const withDisposables = options.disposableSources !== false && space.dispvmTemplates.length > 0;
  const disp = disposableSystem(policy, system, withDisposables ? space.dispvmTemplates : []);
  const synTemplate = new Map([...disp.names].map(([x, n]) => [n, x]));
  const ways: Way[] = [];
  const sigIds = new Map<string, number>();
  const sigOf = (key: string) => {
    let id = sigIds.get(key);
    if (id === undefined) sigIds.set(key, (id = sigIds.size));
    return id;
  };
  let evaluated = 0;
  const rulesByService = new Map<string, CompiledPolicy["rules"][number][]>();
  for (const r of policy.rules) {
    for (const svc of r.service === null ? space.services.map((x) => x.service) : [r.service]) {
      let l = rulesByService.get(svc);
      if (!l) rulesByService.set(svc, (l = []));
      l.push(r);
    }
  }
  // Per-service classes depend only on the names and tags the rules mention: shared between services.
  const classCache = new Map<string, string[][]>();
  // `targetsOnly`: the classes of targets for one fixed caller, which no source token can tell apart
  // (a swap of two targets fixes the caller, so the rules match it as before).
  const classesFor = (rules: CompiledPolicy["rules"], sys: SystemInfo, tag: string, targetsOnly = false): string[][] => {
    if (options.bruteForce) return prepared(sys).names.map((q) => [q]);
    const names = new Set<string>();
    const tags = new Set<string>();
    for (const r of rules) for (const t of [targetsOnly ? null : r.source, r.target, r.redirect, r.defaultTarget]) tokenNames(t, names, tags);
    const key = `${tag}\0${targetsOnly}\0${[...names].sort().join("\0")}\0\0${[...tags].sort().join("\0")}`;
    let c = classCache.get(key);
    if (!c) {
      const used = targetsOnly ? rules.map((r) => ({ ...r, source: { kind: "wildcard" as const, text: "*", value: "" } })) : rules;
      classCache.set(key, (c = qubeClasses([{ ...policy, rules: used }], sys)));
    }
    return c;
  };

  // Services whose applicable rules are the same but for the service name decide alike (rule for
  // rule): their findings are computed once, by that shape.
  const shapeKey = (rules: CompiledPolicy["rules"]) =>
    rules
      .map((r) =>
        r.service === null
          ? `#${r.index}`
          : `${r.argument}\u0001${r.source.text}\u0001${r.target.text}\u0001${r.action}\u0001${r.redirect?.text ?? ""}\u0001${r.defaultTarget?.text ?? ""}\u0001${r.autostart}`,
      )
      .join("\u0002");
  const shapes = new Map<string, Findings[]>();
  // The callers and targets of a partition into classes, and their groups (shared by every service
  // with the same partition).
  type Partition = {
    sourceClasses: string[][];
    targetClasses: string[][];
    psClass: Map<string, number>;
    psGlobal: number[][];
    callers: { caller: number[]; callerClasses: Set<number> }[];
    /** The groups of each class's qubes, and of their `@dispvm:` nodes (filled on first use; shared arrays). */
    qubeDests: number[][];
    dispDests: number[][];
  };
  const partitions = new Map<string[][], Partition>();
  const partition = (all: string[][], pass: "real" | "disposable"): Partition => {
    let p = partitions.get(all);
    if (p) return p;
    // Real callers: the classes of real qubes, which are also the targets. Disposable callers: the
    // new disposables, split from the real qubes of their classes (a split class is still a class).
    const sourceClasses: string[][] = [];
    const targetClasses: string[][] = [];
    for (const c of all) {
      const real = c.filter((q) => !synTemplate.has(q));
      const syn = c.filter((q) => synTemplate.has(q));
      if (real.length) targetClasses.push(real);
      if (syn.length && pass === "disposable") sourceClasses.push(syn);
    }
    if (pass === "real") sourceClasses.push(...targetClasses);
    const psClass = new Map<string, number>();
    targetClasses.forEach((c, i) => c.forEach((q) => psClass.set(q, i)));
    const psGlobal = targetClasses.map((c) => [...new Set(c.map((x) => classOf.get(x)!))]);
    const callers = sourceClasses.map((cls) => {
      const g = new Set<number>();
      for (const a of cls) g.add(pass === "disposable" ? dispGroup(classOf.get(synTemplate.get(a)!)!) : qubeGroup[classOf.get(a)!]!);
      const caller = [...g];
      return { caller, callerClasses: new Set(caller.map((x) => groups[x]!.cls)) };
    });
    p = { sourceClasses, targetClasses, psClass, psGlobal, callers, qubeDests: psGlobal.map(() => []), dispDests: psGlobal.map(() => []) };
    partitions.set(all, p);
    return p;
  };
  type Found = { t: string; action: "allow" | "ask"; rule: number; dest: string; control: boolean };
  type Findings = { found: Found[]; part: Partition };

  for (const svc of space.services) {
    const flow = svc.display === "*" ? otherServicesFlow(options.catalogue, named) : { ...serviceFlow(options.catalogue, svc.service), plain: false };
    // Plain services reach the qube the call runs in; control services the qube they name (the services
    // no rule names include both kinds).
    const plain = flow.plain || !flow.control;
    const fwd = movesForward(flow.direction);
    const bwd = movesBackward(flow.direction);
    if (!fwd && !bwd) continue;
    for (const arg of svc.arguments) {
      const call =
        svc.display === "*" ? "any service no rule names" : arg.display !== "*" ? svc.service + arg.argument : svc.arguments.length === 1 ? svc.service : `${svc.service} (other arguments)`;
      const rules = (rulesByService.get(svc.service) ?? []).filter((r) => r.argument === null || r.argument === arg.argument);
      const sigBase = `${svc.display}\0${arg.display}\0`;
      const ruleAt = new Map<string, number>();
      let ambiguous = false;
      rules.forEach((r, i) => {
        const k = `${r.origin.file}\0${r.origin.line}`;
        if (ruleAt.has(k)) ambiguous = true;
        ruleAt.set(k, i);
      });
      for (const pass of withDisposables ? (["real", "disposable"] as const) : (["real"] as const)) {
        const sys = pass === "real" ? system : disp.system;
        const { sourceClasses, callers } = partition(classesFor(rules, sys, pass), pass);
        const wellFormed = prepared(sys).wellFormed;
        const shape = ambiguous ? undefined : `${pass}\u0003${flow.control}\u0003${plain}\u0003${shapeKey(rules)}`;
        let foundLists = shape === undefined ? undefined : shapes.get(shape);
        if (!foundLists) {
          foundLists = sourceClasses.map((cls) => decideClass(cls, pass === "disposable"));
          if (shape !== undefined) shapes.set(shape, foundLists);
        }
        // The distinct (decision, destination orbit) pairs of the representative of a class over every
        // target, with the target that shows each best (one naming its destination, else @default).
        function decideClass(cls: string[], sourceIsSyn: boolean): Findings {
          const s = cls[0]!;
          // The targets of s are told apart only by the rules that can match s as a source (the first
          // match and the ask offer read no other), so their classes are coarser than the service's.
          const relevant = wellFormed
            ? rules.filter((r) => !((r.source.kind === "name" && r.source.text !== s && r.source.text !== "dom0" && !r.source.text.startsWith("uuid:")) || r.source.kind === "dispvm-template" || r.source.kind === "dispvm-tag"))
            : rules;
          const part = partition(classesFor(relevant, sys, pass, true), pass);
          const { targetClasses, psClass } = part;
          const found = new Map<string, Found>();
          const orbit = (dest: string): string => {
            const isDisp = dest.startsWith("@dispvm:");
            const q = isDisp ? dest.slice(8) : dest;
            const c = psClass.get(q);
            if (c === undefined) return `f\0${dest}`;
            return `${isDisp ? "d" : "q"}\0${c}\0${!sourceIsSyn && q === s ? "same" : "cross"}`;
          };
          const add = (t: string, d: Granted, rawDest: string, control: boolean) => {
            const dest = nodeName(rawDest);
            if (synTemplate.has(dest) || (dest.startsWith("@dispvm:") && synTemplate.has(dest.slice(8)))) return;
            if (!sourceIsSyn && dest === s) return;
            const key = `${d.action}\0${d.rule.file}\0${d.rule.line}\0${control}\0${orbit(dest)}`;
            const had = found.get(key);
            if (!had || (had.t !== had.dest && (t === rawDest || (t === "@default" && had.t !== "@default"))))
              found.set(key, { t, action: d.action, rule: ruleAt.get(`${d.rule.file}\0${d.rule.line}`) ?? -1, dest, control });
          };
          const plainDests = (t: string, d: Granted): boolean => d.action === "ask" || plain || !qubeSet.has(t);
          // The offers of the asks, grouped by orbit once each (an offer is usually the same for every
          // target: the engine collects it from every rule that matches but the target).
          const offers: { list: readonly string[]; set: Set<string>; orbits: string[][]; rules: Set<string> }[] = [];
          const offerOf = (list: readonly string[]) => {
            for (const o of offers) if (o.list.length === list.length && o.list.every((x, i) => x === list[i])) return o;
            const byOrbit = new Map<string, string[]>();
            for (const x of list) {
              const k = orbit(nodeName(x));
              const l = byOrbit.get(k);
              if (l) l.push(x);
              else byOrbit.set(k, [x]);
            }
            const o = { list, set: new Set(list), orbits: [...byOrbit.values()], rules: new Set<string>() };
            offers.push(o);
            return o;
          };
          const record = (t: string, d: Granted) => {
            if (d.action === "ask") {
              const offer = offerOf(d.targetsForAsk);
              const key = `${d.rule.file}\0${d.rule.line}`;
              if (offer.rules.has(key)) {
                if (offer.set.has(t)) add(t, d, t, false);
                return;
              }
              offer.rules.add(key);
              for (const l of offer.orbits) add(t, d, l.includes(t) ? t : l[0]!, false);
            } else {
              if (plainDests(t, d)) add(t, d, d.target, false);
              if (flow.control && qubeSet.has(t) && (!plain || t !== d.target)) add(t, d, t, true);
            }
          };
          const decide = (t: string) => {
            evaluated++;
            const d = evaluate(policy, { service: svc.service, argument: arg.argument, source: s, target: t }, sys);
            if (d.ok && d.action !== "deny") record(t, d);
          };
          for (const t of ["@default", "@adminvm", "@dispvm"]) decide(t);
          // Targets by class: one decided; the others of its class decide alike with the two swapped (an
          // automorphism that fixes s), which maps every destination into its own orbit: nothing new.
          for (const D of targetClasses) {
            const hasS = !sourceIsSyn && D.includes(s);
            if (hasS) {
              decide(s);
              if (templates.has(s)) decide("@dispvm:" + s);
            }
            const r = hasS ? D.find((x) => x !== s) : D[0];
            if (r === undefined) continue;
            decide(r);
            if (templates.has(r)) decide("@dispvm:" + r);
          }
          return { found: [...found.values()], part };
        }
        sourceClasses.forEach((cls, ci) => {
          const s = cls[0]!;
          const sourceIsSyn = pass === "disposable";
          const { caller, callerClasses } = callers[ci]!;
          const { found, part } = foundLists![ci]!;
          const { psClass, psGlobal, qubeDests, dispDests } = part;
          for (const f of found) {
            const rule = rules[f.rule];
            if (!rule) continue;
            const dest = f.dest;
            const isDisp = dest.startsWith("@dispvm:");
            const q = isDisp ? dest.slice(8) : dest;
            const pc = psClass.get(q);
            let destGroups: number[];
            let rel: "same" | "cross" = "cross";
            let calleeBase: string | null = q;
            if (pc === undefined) {
              destGroups = [nodeGroup(dest)];
              calleeBase = null;
            } else {
              const cache = (isDisp ? dispDests : qubeDests)[pc]!;
              destGroups = cache.length ? cache : cache.concat(psGlobal[pc]!.map((c) => (isDisp ? dispGroup(c) : qubeGroup[c]!)));
              if (!cache.length) (isDisp ? dispDests : qubeDests)[pc] = destGroups;
              if (!sourceIsSyn && q === s) rel = "same";
            }
            const note = f.control && svc.display === "*" ? "every service no rule names (`*` rules), Admin API calls among them: the caller manages the qube it names" : flow.note;
            const request = { service: svc.service, argument: arg.argument, source: s, target: f.t };
            const ref = { file: rule.origin.file, line: rule.origin.line };
            const base = { kind: "qrexec" as const, service: svc.display, argument: arg.display, call, request, action: f.action, rule: ref, direction: flow.direction, control: f.control, note };
            const put = (reverse: boolean) => {
              const sig = sigOf(`${sigBase}${f.action}\0${f.rule}\0${reverse}\0${f.control}`);
              const evidence: QrexecEvidence = { ...base, reverse, ...(sourceIsSyn ? { disposable: synTemplate.get(s)! } : {}) };
              const w: Way = { sig, from: reverse ? destGroups : caller, to: reverse ? caller : destGroups, rel, allow: f.action === "allow", evidence, calleeBase };
              ways.push(w);
              // A disposable's calls reach its own template's qubes whatever the pair: the same pairs too.
              if (sourceIsSyn && pc !== undefined && destGroups.some((g) => callerClasses.has(groups[g]!.cls))) ways.push({ ...w, rel: "same" });
            };
            if (fwd) put(false);
            if (bwd) put(true);
          }
        });
      }
    }
  }
  return { groups, groupOf, baseOf, ways, disposableNames: disp.names, dispSystem: disp.system, evaluated };
}

/**
 * The concrete edge of a way between two nodes of its groups: its evidence's
 * request with the names swapped onto this pair (a request the evaluator
 * decides as the representative's). `from`/`to` must be in the way's groups
 * and relation.
 */
export function wayEdge(q: QrexecClasses, w: Way, from: string, to: string): FlowEdge {
  const ev = w.evidence;
  const callerNode = ev.reverse ? to : from;
  const calleeNode = ev.reverse ? from : to;
  const a = q.baseOf.get(callerNode) ?? callerNode;
  const b = q.baseOf.get(calleeNode) ?? calleeNode;
  let source: string;
  let target = ev.request.target ?? "@default";
  if (ev.disposable !== undefined) {
    source = q.disposableNames.get(a) ?? ev.request.source;
    if (w.calleeBase !== null) target = swapName(target, w.calleeBase, b);
  } else {
    const c0 = ev.request.source;
    const tau1 = (x: string) => swapName(x, c0, a);
    target = tau1(target);
    if (w.calleeBase !== null) target = swapName(target, tau1(w.calleeBase), b);
    source = a;
  }
  return {
    from,
    to,
    via: "qrexec",
    ask: !w.allow,
    evidence: { ...ev, request: { ...ev.request, source, target }, ...(ev.disposable !== undefined ? { disposable: a } : {}) },
  };
}
