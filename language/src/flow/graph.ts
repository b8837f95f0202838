/**
 * The information-flow graph of a machine: an edge A → B says data can move
 * from A to B in one hop, and carries its evidence.
 *
 * - qrexec: an edge A → B for service S exists exactly when some call (S, an
 *   argument of the request space, source A, any target of the space) is
 *   allowed to B, or asked with B among the offered targets, and S's
 *   direction moves data that way (caller → target for `forward`, target →
 *   caller for `backward`). Decisions are the evaluator's: every caller's
 *   rules are swept in order over every target at once (`sweep.ts`). For
 *   `control` services (Admin API, `qubes.VMShell`) an allowed call reaches
 *   the qube it names and the qube it runs in (dom0 for a redirected
 *   `admin.*` call, the redirect's qube for a redirected shell); the
 *   services no rule names include both kinds, so they reach both.
 * - network: a qube and its netvm see each other's traffic (both ways); a
 *   qube reaches the outside network (`@network`) through its netvm chain
 *   when its firewall lets anything out (DNS queries included; `firewall.ts`
 *   reads it first-match, as qubes-firewall applies it, and the evidence
 *   lists each accepting rule's destinations); the qube at the end
 *   of a chain (netvm none) providing network reaches `@network` by its own
 *   devices. Qubes behind the same netvm reach each other only through that
 *   netvm (qubes-firewall drops traffic between downstream qubes).
 * - devices: the backend of a USB or block device sees its data (both ways,
 *   PCI passthrough excepted), and two qubes with the same device assigned
 *   or attached exchange data through it.
 *
 * Nodes: qube names, `@dispvm:X` (a new disposable of X) and `@network`.
 */
import type { PolicyRequest, RuleRef, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy } from "../loader/types.js";
import { requestSpace } from "../audit/space.js";
import type { FlowDirection, ServiceCatalogue } from "./catalogue.js";
import { QrexecFlow, type FlowWay } from "./sweep.js";
import { readFirewall, type FirewallDestination } from "./firewall.js";

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
  /** The caller is a new disposable of this disposable template (the request's source is its name in the model with disposables). */
  disposable?: string;
}

/** Why data can move over the network, or because dom0 administers a qube. */
export interface PropertyEvidence {
  kind: "property";
  /** The qube whose property decides. */
  qube: string;
  property: "netvm" | "firewall" | "provides_network" | "dom0";
  value: string;
  note: string;
  /** For `firewall`: what it lets out, each accepting rule's destination (see `firewall.ts`). */
  destinations?: FirewallDestination[];
  /** For `firewall`: what it lets out in a few words (graph labels). */
  label?: string;
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
  code: "flow-unknown-qube" | "flow-netvm-loop" | "flow-bad-value" | "flow-no-wiring";
  message: string;
}

/** Options of {@link flowGraph}. */
export interface FlowGraphOptions {
  catalogue: ServiceCatalogue;
  /** New disposables (`@dispvm:X`) call services too, and have X's network and device assignments. Default true. */
  disposableSources?: boolean;
  /** dom0 administers every qube (qvm-run and qvm-copy from dom0 need no policy): add dom0 → every qube. */
  dom0Relays?: boolean;
  /**
   * The qrexec edges kept per pair of qubes (default: all). Whether a pair has an edge, and whether
   * one of them is an allow (a hop without the user), stays exact; the others are counted in
   * {@link FlowGraph.more}.
   */
  evidencePerHop?: number;
}

/** The graph of a machine. */
export interface FlowGraph {
  nodes: string[];
  /** The edges given one by one: network, devices, dom0 administration (and any edge of a graph made by hand). */
  edges: FlowEdge[];
  /** The qrexec edges: which pairs, and each hop's ways on demand (see `sweep.ts`); {@link flowEdges} lists them one by one. */
  qrexec?: QrexecFlow;
  /** The qrexec ways shown per hop (default: all); the others are counted. */
  evidencePerHop?: number;
  warnings: FlowWarning[];
  /** Calls decided (qrexec). */
  evaluated: number;
  /** Ways not kept as {@link edges} of a graph made by hand, by `FROM\0TO`. */
  more?: Map<string, number>;
}

/**
 * Every edge of a graph one by one: the edges given as such and the qrexec
 * ways of its group form on every pair of nodes they join (at most
 * `evidencePerHop` ways per pair, allows first; the others counted in
 * `more`). Large on large systems: the path functions never call it.
 */
export function flowEdges(graph: FlowGraph): { edges: FlowEdge[]; more: Map<string, number> } {
  const edges = [...graph.edges];
  const more = new Map(graph.more ?? []);
  const q = graph.qrexec;
  if (!q) return { edges, more };
  const cap = graph.evidencePerHop ?? Infinity;
  for (const [k, h] of q.allWays(cap)) {
    for (const w of h.ways) edges.push(w.edge);
    if (h.total > h.ways.length) more.set(k, (more.get(k) ?? 0) + h.total - h.ways.length);
  }
  return { edges, more };
}

/** The ways kept as evidence of one hop: allows first, then in policy order, at most `cap` (the order `QrexecFlow.ways` keeps). */
export function keptWays(ways: readonly FlowWay[], cap: number): FlowWay[] {
  const sorted = [...ways].sort((x, y) => (x.allow !== y.allow ? (x.allow ? -1 : 1) : x.sig - y.sig));
  return sorted.slice(0, Math.max(1, Math.min(cap, sorted.length)));
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
    const fw = readFirewall(qubes[q]!.firewall);
    for (const u of fw.unreadable) warnings.push({ code: "flow-bad-value", message: `firewall rule ${u.rule} of \`${q}\` cannot be read (${u.reason}); its firewall counts as accepting everything` });
    if (fw.accepts) {
      const chain: string[] = [];
      for (let c = netvmOf.get(q); c !== undefined; c = netvmOf.get(c)) chain.push(c);
      const via = chain.join(" → ");
      const ev = (note: string): PropertyEvidence => ({ ...prop(q, "firewall", fw.value, note), destinations: fw.destinations, label: fw.label });
      edges.push({ from: q, to: NETWORK_NODE, via: "network", ask: false, evidence: ev(`${q} reaches the outside network through ${via}: ${fw.summary}`) });
      edges.push({ from: NETWORK_NODE, to: q, via: "network", ask: false, evidence: ev(`the outside network answers ${q}'s connections through ${via}: ${fw.summary}`) });
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
  const q = policy ? new QrexecFlow(policy, system, options) : undefined;
  // A new disposable of X has X's netvm, firewall and device assignments (not X's current attachments).
  const wired: FlowMachine = { qubes: { ...(machine && typeof machine === "object" && machine.qubes && typeof machine.qubes === "object" ? machine.qubes : {}) } };
  const dispKnown = new Set(known);
  if (options.disposableSources !== false) {
    for (const x of space.dispvmTemplates) {
      const info = wired.qubes[x];
      const n = "@dispvm:" + x;
      dispKnown.add(n);
      if (!info || typeof info !== "object" || Object.prototype.hasOwnProperty.call(wired.qubes, n)) continue;
      const copy: FlowQubeInfo = {};
      if (info.netvm !== undefined) copy.netvm = info.netvm;
      if (info.firewall !== undefined) copy.firewall = info.firewall;
      if (Array.isArray(info.devices)) copy.devices = info.devices.filter((d) => d && typeof d === "object" && d.mode !== undefined && d.mode !== "attached");
      wired.qubes[n] = copy;
    }
  }
  const w = wiringEdges(wired, dispKnown);
  const edges = [...w.edges];
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
  if (q) {
    // The nodes some qrexec edge touches.
    const n = q.nodes.length;
    const touched = new Uint8Array(n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++)
        if (q.status[i * n + j]) {
          touched[i] = 1;
          touched[j] = 1;
        }
    q.nodes.forEach((x, i) => touched[i] && nodes.add(x));
    for (const k of q.strays.keys()) for (const x of k.split("\0")) nodes.add(x);
  }
  return { nodes: [...nodes].sort(), edges, ...(q ? { qrexec: q } : {}), ...(options.evidencePerHop !== undefined ? { evidencePerHop: options.evidencePerHop } : {}), warnings: w.warnings, evaluated: q?.evaluated ?? 0 };
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
  let qubes = 0;
  let wired = 0;
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
    qubes++;
    if (Object.keys(info).length) {
      machine.qubes[name] = info;
      wired++;
    }
  }
  // A bare GetSystemInfo answer (or a snapshot made with --no-wiring) says nothing of netvm,
  // firewall or devices: flows through the network and devices cannot be seen, so say so.
  if (qubes > 0 && wired === 0)
    warnings.push({ code: "flow-no-wiring", message: "the system model has no netvm, firewall or devices: no path through the network or devices is considered; make it with `qkit system snapshot` (not --no-wiring) or use `--system live`" });
  return { machine, warnings };
}
