/**
 * Paths in a flow graph: every simple path from A to B (shortest first), and
 * every node reachable from A. A hop groups every edge between two nodes; a
 * hop needs the user when all its edges are asks, and a path needs the user
 * when one of its hops does ("with the user in the loop").
 */
import type { FlowEdge, FlowGraph } from "./graph.js";

/** One step of a path: every way data moves from {@link from} to {@link to}. */
export interface FlowHop {
  from: string;
  to: string;
  edges: FlowEdge[];
  /** Every edge is an ask: the user must confirm this hop. */
  ask: boolean;
}

/** A path from the first hop's `from` to the last hop's `to`. */
export interface FlowPath {
  nodes: string[];
  hops: FlowHop[];
  /** Some hop needs the user's confirmation. */
  ask: boolean;
}

/** Options of {@link findPaths} and {@link reachableFrom}. */
export interface PathOptions {
  /** The longest path, in hops (default 6). */
  maxHops?: number;
  /** Stop after this many paths (default 100). */
  maxPaths?: number;
  /** Nodes a path may not go through (they may still be its ends). */
  avoid?: Iterable<string>;
  /** Leave out paths (and reachability) that need the user. */
  noAsk?: boolean;
}

/** The result of {@link findPaths}. */
export interface PathsResult {
  from: string;
  to: string;
  paths: FlowPath[];
  /** More paths within the hop limit exist than were listed (`maxPaths`, or too many partial paths to follow). */
  truncated: boolean;
  /** The fewest hops from `from` to `to`, whatever the hop limit (more than `maxHops`: no path was listed), or null when there is no path at all. */
  shortest: number | null;
}

/** Hops by node: `adjacency.get(a).get(b)` is the hop a → b. */
export function hopIndex(graph: FlowGraph, noAsk = false): Map<string, Map<string, FlowHop>> {
  const out = new Map<string, Map<string, FlowHop>>();
  for (const e of graph.edges) {
    if (noAsk && e.ask) continue;
    let m = out.get(e.from);
    if (!m) out.set(e.from, (m = new Map()));
    let h = m.get(e.to);
    if (!h) m.set(e.to, (h = { from: e.from, to: e.to, edges: [], ask: true }));
    h.edges.push(e);
    if (!e.ask) h.ask = false;
  }
  for (const m of out.values()) for (const h of m.values()) h.edges.sort(edgeOrder);
  return out;
}

const VIA_RANK = { qrexec: 0, network: 1, device: 2, admin: 3 } as const;

function edgeOrder(a: FlowEdge, b: FlowEdge): number {
  if (a.ask !== b.ask) return a.ask ? 1 : -1;
  if (a.via !== b.via) return VIA_RANK[a.via] - VIA_RANK[b.via];
  const ka = a.evidence.kind === "qrexec" ? `${a.evidence.service} ${a.evidence.argument}` : a.evidence.note;
  const kb = b.evidence.kind === "qrexec" ? `${b.evidence.service} ${b.evidence.argument}` : b.evidence.note;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function distancesTo(index: Map<string, Map<string, FlowHop>>, to: string, avoid: Set<string>, from: string): Map<string, number> {
  const rev = new Map<string, string[]>();
  for (const [a, m] of index) for (const b of m.keys()) (rev.get(b) ?? rev.set(b, []).get(b)!).push(a);
  const dist = new Map<string, number>([[to, 0]]);
  const queue = [to];
  for (let i = 0; i < queue.length; i++) {
    const x = queue[i]!;
    if (x !== to && avoid.has(x) && x !== from) continue;
    for (const p of rev.get(x) ?? []) {
      if (dist.has(p)) continue;
      dist.set(p, dist.get(x)! + 1);
      queue.push(p);
    }
  }
  return dist;
}

/**
 * Every simple path from `from` to `to` of at most `maxHops` hops, shortest
 * first (then the ones without asks first), up to `maxPaths`. Never throws.
 */
export function findPaths(graph: FlowGraph, from: string, to: string, options: PathOptions = {}): PathsResult {
  const maxHops = options.maxHops ?? 6;
  const maxPaths = options.maxPaths ?? 100;
  const avoid = new Set(options.avoid ?? []);
  const index = hopIndex(graph, options.noAsk);
  const dist = distancesTo(index, to, avoid, from);
  const shortest = from === to ? 0 : (dist.get(from) ?? null);
  const result: PathsResult = { from, to, paths: [], truncated: false, shortest };
  if (from === to || shortest === null) return result;
  // Breadth first over partial paths, pruned by the distance left: paths come out in length order.
  let layer: string[][] = [[from]];
  for (let len = 1; len <= maxHops && layer.length; len++) {
    const next: string[][] = [];
    const done: FlowPath[] = [];
    for (const p of layer) {
      const last = p[p.length - 1]!;
      for (const [b, hop] of index.get(last) ?? []) {
        if (p.includes(b)) continue;
        const left = dist.get(b);
        if (left === undefined || len + left > maxHops) continue;
        if (b === to) {
          const nodes = [...p, b];
          const hops = nodes.slice(1).map((n, i) => index.get(nodes[i]!)!.get(n)!);
          done.push({ nodes, hops, ask: hops.some((h) => h.ask) });
        } else if (!avoid.has(b)) next.push([...p, b]);
      }
      if (next.length > 200_000) {
        result.truncated = true;
        break;
      }
    }
    done.sort((a, b) => (a.ask === b.ask ? 0 : a.ask ? 1 : -1));
    for (const p of done) {
      if (result.paths.length >= maxPaths) {
        result.truncated = true;
        return result;
      }
      result.paths.push(p);
    }
    layer = next;
  }
  return result;
}

/** How a node is reached from the start. */
export interface Reached {
  node: string;
  /** A shortest path (possibly with asks). */
  path: FlowPath;
  /** A shortest path without asks, when the node is reachable without the user. */
  automatic?: FlowPath;
}

function bfs(index: Map<string, Map<string, FlowHop>>, from: string, avoid: Set<string>): Map<string, FlowPath> {
  const prev = new Map<string, FlowHop | null>([[from, null]]);
  const queue = [from];
  for (let i = 0; i < queue.length; i++) {
    const x = queue[i]!;
    if (x !== from && avoid.has(x)) continue;
    for (const [b, hop] of index.get(x) ?? []) {
      if (prev.has(b)) continue;
      prev.set(b, hop);
      queue.push(b);
    }
  }
  const out = new Map<string, FlowPath>();
  for (const n of prev.keys()) {
    if (n === from) continue;
    const hops: FlowHop[] = [];
    for (let h = prev.get(n)!; h; h = prev.get(h.from)!) hops.unshift(h);
    out.set(n, { nodes: [from, ...hops.map((h) => h.to)], hops, ask: hops.some((h) => h.ask) });
  }
  return out;
}

/**
 * Every node reachable from `from` (avoided nodes are reached but not gone
 * through), each with a shortest path and, when there is one, a shortest
 * path without asks. Sorted by node name. Never throws.
 */
export function reachableFrom(graph: FlowGraph, from: string, options: Pick<PathOptions, "avoid" | "noAsk"> = {}): Reached[] {
  const avoid = new Set(options.avoid ?? []);
  const all = bfs(hopIndex(graph, options.noAsk), from, avoid);
  const auto = bfs(hopIndex(graph, true), from, avoid);
  return [...all.keys()].sort().map((node) => {
    const r: Reached = { node, path: all.get(node)! };
    const a = auto.get(node);
    if (a) r.automatic = a;
    return r;
  });
}
