/**
 * The information-flow graph of a machine: an edge A → B says data can move
 * from A to B in one hop, and carries its evidence.
 *
 * - qrexec: an edge A → B for service S exists exactly when some call (S, an
 *   argument of the request space, source A, any target of the space) is
 *   allowed to B, or asked with B among the offered targets, and S's
 *   direction moves data that way (caller → target for `forward`, target →
 *   caller for `backward`). Decisions are the evaluator's. Sources are
 *   decided once per class of qubes no rule tells apart (`audit/space.ts`):
 *   the decisions of another member `a` of the class of `s` are those of
 *   `s` with `s` and `a` swapped, since that swap is an automorphism of the
 *   system and the policy. For `control` services (Admin API) an allowed
 *   call reaches the qube it names, not the qube it runs in (dom0); the
 *   services no rule names include both kinds, so they reach both.
 * - network: a qube and its netvm see each other's traffic (both ways); a
 *   qube reaches the outside network (`@network`) through its netvm chain
 *   when its firewall accepts anything (DNS included); the qube at the end
 *   of a chain (netvm none) providing network reaches `@network` by its own
 *   devices. Qubes behind the same netvm reach each other only through that
 *   netvm (qubes-firewall drops traffic between downstream qubes).
 * - devices: the backend of a USB or block device sees its data (both ways,
 *   PCI passthrough excepted), and two qubes with the same device assigned
 *   or attached exchange data through it.
 *
 * Nodes: qube names, `@dispvm:X` (a new disposable of X) and `@network`.
 */
import { evaluate } from "../eval/evaluate.js";
import type { Decision, PolicyRequest, RuleRef, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy } from "../loader/types.js";
import { qubeClasses, requestSpace } from "../audit/space.js";
import { movesBackward, movesForward, serviceFlow, type FlowDirection, type ServiceCatalogue } from "./catalogue.js";

/** The node of the outside network. */
export const NETWORK_NODE = "@network";

/** Why data can move over a qrexec call. */
export interface QrexecEvidence {
  kind: "qrexec";
  /** As in the request space: `*` for the services (arguments) no rule names. */
  service: string;
  argument: string;
  /** The service and argument as text: `qubes.Filecopy`, `qubes.StartApp+firefox`, `qubes.StartApp (other arguments)`, `any service no rule names`. */
  call: string;
  /** A concrete call that shows the edge (as evaluated). */
  request: PolicyRequest;
  action: "allow" | "ask";
  /** The deciding rule. */
  rule: RuleRef;
  direction: FlowDirection;
  control: boolean;
  /** Data moves from the target back to the caller (the edge runs target → caller). */
  reverse: boolean;
  /** The catalogue entry's note. */
  note: string;
}

/** Why data can move over the network, or because dom0 administers a qube. */
export interface PropertyEvidence {
  kind: "property";
  /** The qube whose property decides. */
  qube: string;
  property: "netvm" | "firewall" | "provides_network" | "dom0";
  value: string;
  note: string;
}

/** Why data can move through a device. */
export interface DeviceEvidence {
  kind: "device";
  devclass: string;
  backend: string;
  port: string;
  deviceId: string;
  /** The qubes it is assigned or attached to, with the mode (`required`, `auto-attach`, `ask-to-attach`, `attached`). */
  frontends: { qube: string; mode: string }[];
  note: string;
}

/** One way data can move from {@link from} to {@link to}. */
export interface FlowEdge {
  from: string;
  to: string;
  via: "qrexec" | "network" | "device" | "admin";
  /** The user must confirm (a qrexec `ask`). */
  ask: boolean;
  evidence: QrexecEvidence | PropertyEvidence | DeviceEvidence;
}

/** A device as assigned or attached to a qube. */
export interface FlowDevice {
  devclass: string;
  backend: string;
  port: string;
  deviceId?: string;
  /** `required`, `auto-attach`, `ask-to-attach`, or `attached` (attached now, not assigned). */
  mode?: string;
}

/** What the graph needs of a qube beyond `internal.GetSystemInfo`. */
export interface FlowQubeInfo {
  /** The netvm (`null`: none). Absent: unknown, no network edge. */
  netvm?: string | null;
  providesNetwork?: boolean;
  /** Firewall rules in qubesd's `Get` form (`action=accept dsthost=… proto=tcp`); absent: not read. */
  firewall?: string[];
  devices?: FlowDevice[];
}

/** The network and device wiring of a machine. */
export interface FlowMachine {
  qubes: Record<string, FlowQubeInfo>;
}

/** A problem in the machine description (the graph is built without the bad part). */
export interface FlowWarning {
  code: "flow-unknown-qube" | "flow-netvm-loop" | "flow-bad-value";
  message: string;
}

/** Options of {@link flowGraph}. */
export interface FlowGraphOptions {
  catalogue: ServiceCatalogue;
  /** Decide every source (no classes): the reference, slow. */
  bruteForce?: boolean;
  /** dom0 administers every qube (qvm-run and qvm-copy from dom0 need no policy): add dom0 → every qube. */
  dom0Relays?: boolean;
}

/** The graph of a machine. */
export interface FlowGraph {
  nodes: string[];
  edges: FlowEdge[];
  warnings: FlowWarning[];
  /** Calls decided (qrexec). */
  evaluated: number;
}

function swapName(x: string, s: string, a: string): string {
  if (s === a) return x;
  if (x === s) return a;
  if (x === a) return s;
  if (x.startsWith("@dispvm:")) return "@dispvm:" + swapName(x.slice(8), s, a);
  return x;
}

function node(x: string): string {
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

/** The qrexec edges of a policy on a system (see the module comment). Never throws. */
export function qrexecEdges(policy: CompiledPolicy, system: SystemInfo, options: FlowGraphOptions): { edges: FlowEdge[]; evaluated: number } {
  const space = requestSpace([policy], system);
  const classes = options.bruteForce ? space.qubes.map((q) => [q]) : qubeClasses([policy], system);
  const named = new Set(space.services.filter((s) => s.display !== "*").map((s) => s.service));
  const qubeSet = new Set(space.qubes);
  const edges: FlowEdge[] = [];
  const seen = new Set<string>();
  let evaluated = 0;
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
      for (const cls of classes) {
        const s = cls[0]!;
        // The distinct (decision, destination) pairs of the representative, with the first target that shows each.
        const found = new Map<string, { t: string; d: Decision & { ok: true; action: "allow" | "ask" }; dest: string; control: boolean }>();
        for (const t of space.targets) {
          const request: PolicyRequest = { service: svc.service, argument: arg.argument, source: s, target: t };
          const d: Decision = evaluate(policy, request, system);
          evaluated++;
          if (!d.ok || d.action === "deny") continue;
          const dests: [string, boolean][] = [];
          if (d.action === "ask") for (const x of d.targetsForAsk) dests.push([x, false]);
          else {
            const named = qubeSet.has(t);
            if (plain || !named) dests.push([d.target, false]);
            if (flow.control && named && (!plain || t !== d.target)) dests.push([t, true]);
          }
          for (const [dest, control] of dests) {
            const key = [d.action, d.rule.file, d.rule.line, dest, control].join("\0");
            const had = found.get(key);
            // Show the call that names its destination when there is one, else one with @default.
            if (!had || (had.t !== dest && (t === dest || (t === "@default" && had.t !== "@default")))) found.set(key, { t, d, dest, control });
          }
        }
        for (const { t, d, dest: raw, control } of found.values()) {
          for (const a of cls) {
            const req: PolicyRequest = { service: svc.service, argument: arg.argument, source: a, target: swapName(t, s, a) };
            const dest = node(swapName(raw, s, a));
            if (dest === a) continue;
            const add = (from: string, to: string, reverse: boolean) => {
              const key = [from, to, svc.display, arg.display, d.action, d.rule.file, d.rule.line, reverse, control].join("\0");
              if (seen.has(key)) return;
              seen.add(key);
              edges.push({
                from,
                to,
                via: "qrexec",
                ask: d.action === "ask",
                evidence: { kind: "qrexec", service: svc.display, argument: arg.display, call, request: req, action: d.action, rule: d.rule, direction: flow.direction, control, reverse, note: control && svc.display === "*" ? "every service no rule names (`*` rules), Admin API calls among them: the caller manages the qube it names" : flow.note },
              });
            };
            if (fwd) add(a, dest, false);
            if (bwd) add(dest, a, true);
          }
        }
      }
    }
  }
  return { edges, evaluated };
}

/** The first firewall rule that accepts anything, or why the qube may send anywhere. */
function firewallAccepts(fw: unknown): { accepts: boolean; value: string; note: string } {
  if (fw === undefined) return { accepts: true, value: "(not read)", note: "the firewall was not read; qubesd's default accepts everything" };
  if (!Array.isArray(fw)) return { accepts: true, value: "(unreadable)", note: "the firewall value is not a list of rules; counted as accepting everything" };
  if (fw.length === 0) return { accepts: true, value: "(no rules)", note: "no firewall rules: everything is accepted" };
  for (let i = 0; i < fw.length; i++) {
    const r = fw[i];
    if (typeof r !== "string") continue;
    if (/(^|\s)action=accept(\s|$)/.test(r)) return { accepts: true, value: r, note: `firewall rule ${i + 1} \`${r}\` accepts traffic` };
  }
  return { accepts: false, value: fw.filter((x) => typeof x === "string").join("; "), note: "no firewall rule accepts anything" };
}

/** The network and device edges of a machine (see the module comment). Never throws. */
export function wiringEdges(machine: FlowMachine, known: ReadonlySet<string>): { edges: FlowEdge[]; warnings: FlowWarning[] } {
  const edges: FlowEdge[] = [];
  const warnings: FlowWarning[] = [];
  const qubes = machine && typeof machine === "object" && machine.qubes && typeof machine.qubes === "object" ? machine.qubes : {};
  const names = Object.keys(qubes).sort();
  const netvmOf = new Map<string, string>();
  const consumers = new Set<string>();
  for (const q of names) {
    const info = qubes[q];
    if (!info || typeof info !== "object") continue;
    if (!known.has(q)) {
      warnings.push({ code: "flow-unknown-qube", message: `the machine describes \`${q}\`, which is not a qube of the system model; its wiring is ignored` });
      continue;
    }
    const n = info.netvm;
    if (n === undefined || n === null || n === "") continue;
    if (typeof n !== "string") {
      warnings.push({ code: "flow-bad-value", message: `the netvm of \`${q}\` is not a qube name; its network is ignored` });
      continue;
    }
    if (!known.has(n)) {
      warnings.push({ code: "flow-unknown-qube", message: `the netvm of \`${q}\` is \`${n}\`, which is not a qube of the system model; its network is ignored` });
      continue;
    }
    netvmOf.set(q, n);
    consumers.add(n);
  }
  const prop = (qube: string, property: PropertyEvidence["property"], value: string, note: string): PropertyEvidence => ({ kind: "property", qube, property, value, note });
  for (const [q, n] of netvmOf) {
    edges.push({ from: q, to: n, via: "network", ask: false, evidence: prop(q, "netvm", n, `${n} is the netvm of ${q}: it sees all of ${q}'s network traffic`) });
    edges.push({ from: n, to: q, via: "network", ask: false, evidence: prop(q, "netvm", n, `${n} is the netvm of ${q}: it sends ${q} its network traffic`) });
  }
  // The end of each chain.
  const rootOf = (q: string): string | null => {
    const seen = new Set<string>([q]);
    let cur = q;
    for (;;) {
      const n = netvmOf.get(cur);
      if (n === undefined) return cur;
      if (seen.has(n)) return null;
      seen.add(n);
      cur = n;
    }
  };
  const rootsReported = new Set<string>();
  for (const [q] of netvmOf) {
    const root = rootOf(q);
    if (root === null) {
      warnings.push({ code: "flow-netvm-loop", message: `the netvm chain of \`${q}\` is a loop; it reaches no outside network` });
      continue;
    }
    const fw = firewallAccepts(qubes[q]!.firewall);
    if (fw.accepts) {
      const chain: string[] = [];
      for (let c = netvmOf.get(q); c !== undefined; c = netvmOf.get(c)) chain.push(c);
      const via = chain.join(" → ");
      edges.push({ from: q, to: NETWORK_NODE, via: "network", ask: false, evidence: prop(q, "firewall", fw.value, `${q} reaches the outside network through ${via}: ${fw.note}`) });
      edges.push({ from: NETWORK_NODE, to: q, via: "network", ask: false, evidence: prop(q, "firewall", fw.value, `the outside network answers ${q}'s connections through ${via}: ${fw.note}`) });
    }
    rootsReported.add(root);
  }
  for (const q of names) {
    if (!known.has(q) || netvmOf.has(q)) continue;
    const info = qubes[q]!;
    if ((info.providesNetwork === true || consumers.has(q)) && (info.netvm === null || info.netvm === "")) {
      const why = consumers.has(q) ? `${q} is a netvm with no netvm of its own` : `${q} provides network and has no netvm`;
      edges.push({ from: q, to: NETWORK_NODE, via: "network", ask: false, evidence: prop(q, "provides_network", "True", `${why}: its own network devices reach the outside network`) });
      edges.push({ from: NETWORK_NODE, to: q, via: "network", ask: false, evidence: prop(q, "provides_network", "True", `${why}: the outside network reaches it through its network devices`) });
    }
  }
  // Devices.
  const byDevice = new Map<string, { dev: Required<FlowDevice>; frontends: { qube: string; mode: string }[] }>();
  for (const q of names) {
    if (!known.has(q)) continue;
    const list = qubes[q]!.devices;
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      warnings.push({ code: "flow-bad-value", message: `the devices of \`${q}\` are not a list; they are ignored` });
      continue;
    }
    for (const d of list) {
      if (!d || typeof d !== "object" || typeof d.devclass !== "string" || typeof d.backend !== "string" || typeof d.port !== "string") {
        warnings.push({ code: "flow-bad-value", message: `a device of \`${q}\` lacks devclass, backend or port; it is ignored` });
        continue;
      }
      const dev: Required<FlowDevice> = { devclass: d.devclass, backend: d.backend, port: d.port, deviceId: typeof d.deviceId === "string" ? d.deviceId : "*", mode: typeof d.mode === "string" ? d.mode : "attached" };
      const key = `${dev.devclass}\0${dev.backend}\0${dev.port}`;
      let e = byDevice.get(key);
      if (!e) byDevice.set(key, (e = { dev, frontends: [] }));
      if (!e.frontends.some((f) => f.qube === q)) e.frontends.push({ qube: q, mode: dev.mode });
    }
  }
  for (const { dev, frontends } of byDevice.values()) {
    const name = `${dev.devclass} device ${dev.backend}:${dev.port}${dev.deviceId !== "*" ? ` (${dev.deviceId})` : ""}`;
    const ev = (note: string): DeviceEvidence => ({ kind: "device", devclass: dev.devclass, backend: dev.backend, port: dev.port, deviceId: dev.deviceId, frontends, note });
    if (dev.devclass !== "pci" && known.has(dev.backend)) {
      for (const f of frontends) {
        if (f.qube === dev.backend) continue;
        edges.push({ from: dev.backend, to: f.qube, via: "device", ask: false, evidence: ev(`${dev.backend} is the backend of the ${name} ${f.mode === "attached" ? "attached" : `assigned (${f.mode})`} to ${f.qube}: it sees the device's data`) });
        edges.push({ from: f.qube, to: dev.backend, via: "device", ask: false, evidence: ev(`${f.qube} writes to the ${name}, whose backend ${dev.backend} sees the data`) });
      }
    } else if (!known.has(dev.backend)) {
      warnings.push({ code: "flow-unknown-qube", message: `the backend \`${dev.backend}\` of the ${name} is not a qube of the system model` });
    }
    for (const f of frontends) {
      for (const g of frontends) {
        if (f.qube === g.qube) continue;
        edges.push({ from: f.qube, to: g.qube, via: "device", ask: false, evidence: ev(`the ${name} is assigned or attached to both ${f.qube} (${f.mode}) and ${g.qube} (${g.mode}): what one writes the other can read`) });
      }
    }
  }
  return { edges, warnings };
}

/**
 * The information-flow graph: qrexec edges of `policy` (when given) on
 * `system`, and the network and device edges of `machine`. Never throws.
 */
export function flowGraph(policy: CompiledPolicy | undefined, system: SystemInfo, machine: FlowMachine, options: FlowGraphOptions): FlowGraph {
  const space = requestSpace(policy ? [policy] : [], system);
  const known = new Set(space.qubes);
  const q = policy ? qrexecEdges(policy, system, options) : { edges: [], evaluated: 0 };
  const w = wiringEdges(machine, known);
  const edges = [...q.edges, ...w.edges];
  if (options.dom0Relays && known.has("dom0")) {
    for (const x of space.qubes) {
      if (x === "dom0") continue;
      edges.push({ from: "dom0", to: x, via: "admin", ask: false, evidence: { kind: "property", qube: x, property: "dom0", value: "dom0", note: `dom0 administers ${x} (qvm-run, qvm-copy-to-vm need no policy)` } });
    }
  }
  const nodes = new Set<string>(space.qubes);
  for (const e of edges) {
    nodes.add(e.from);
    nodes.add(e.to);
  }
  return { nodes: [...nodes].sort(), edges, warnings: w.warnings, evaluated: q.evaluated };
}

/**
 * The wiring of a machine from a system model file whose domains carry, besides
 * `internal.GetSystemInfo`'s keys, `netvm`, `provides_network`, `firewall`
 * (rules in qubesd's `Get` form) and `devices` (`{devclass, backend, port,
 * device_id?, mode?}`). Keys of other types are reported and skipped.
 */
export function machineFromSystemJson(raw: unknown): { machine: FlowMachine; warnings: FlowWarning[] } {
  const machine: FlowMachine = { qubes: {} };
  const warnings: FlowWarning[] = [];
  const domains = raw && typeof raw === "object" ? (raw as { domains?: unknown }).domains : undefined;
  if (!domains || typeof domains !== "object" || Array.isArray(domains)) return { machine, warnings };
  for (const [name, d] of Object.entries(domains as Record<string, unknown>)) {
    if (name.startsWith("uuid:") || !d || typeof d !== "object" || Array.isArray(d)) continue;
    const r = d as Record<string, unknown>;
    const info: FlowQubeInfo = {};
    if ("netvm" in r) {
      if (r["netvm"] === null || typeof r["netvm"] === "string") info.netvm = (r["netvm"] as string | null) || null;
      else warnings.push({ code: "flow-bad-value", message: `\`${name}\`: \`netvm\` must be a qube name or null; ignored` });
    }
    if ("provides_network" in r) {
      if (typeof r["provides_network"] === "boolean") info.providesNetwork = r["provides_network"];
      else warnings.push({ code: "flow-bad-value", message: `\`${name}\`: \`provides_network\` must be true or false; ignored` });
    }
    if ("firewall" in r) {
      const f = r["firewall"];
      if (Array.isArray(f) && f.every((x) => typeof x === "string")) info.firewall = f as string[];
      else warnings.push({ code: "flow-bad-value", message: `\`${name}\`: \`firewall\` must be a list of rules (strings); ignored` });
    }
    if ("devices" in r) {
      const list = r["devices"];
      if (!Array.isArray(list)) warnings.push({ code: "flow-bad-value", message: `\`${name}\`: \`devices\` must be a list; ignored` });
      else {
        info.devices = [];
        for (const x of list) {
          const o = x && typeof x === "object" ? (x as Record<string, unknown>) : {};
          if (typeof o["devclass"] !== "string" || typeof o["backend"] !== "string" || typeof o["port"] !== "string") {
            warnings.push({ code: "flow-bad-value", message: `\`${name}\`: a device needs \`devclass\`, \`backend\` and \`port\` strings; ignored` });
            continue;
          }
          const dev: FlowDevice = { devclass: o["devclass"], backend: o["backend"], port: o["port"] };
          if (typeof o["device_id"] === "string") dev.deviceId = o["device_id"];
          if (typeof o["mode"] === "string") dev.mode = o["mode"];
          info.devices.push(dev);
        }
      }
    }
    if (Object.keys(info).length) machine.qubes[name] = info;
  }
  return { machine, warnings };
}
