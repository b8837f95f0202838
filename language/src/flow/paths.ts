/**
 * Paths in a flow graph: every simple path from A to B (shortest first), and
 * every node reachable from A. A hop groups every edge between two nodes; a
 * hop needs the user when all its edges are asks, and a path needs the user
 * when one of its hops does ("with the user in the loop").
 */
import type { FlowEdge, FlowGraph } from "./graph.js";
import type { HopWays } from "./sweep.js";

/** One step of a path: every way data moves from {@link from} to {@link to}. */
export interface FlowHop {
  from: string;
  to: string;
  edges: FlowEdge[];
  /** Every edge is an ask: the user must confirm this hop. */
  ask: boolean;
  /** Further qrexec ways over this hop that the graph counted but did not keep as edges. */
  more: number;
  /** {@link more} is a lower bound: the search for ways stopped once the edges shown were certain. */
  moreAtLeast?: boolean;
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
  /** How many paths have the fewest hops (each of them is simple). */
  count?: PathCount;
}

/** The number of shortest paths (a path of the fewest hops), when there is a path within the limits. */
export interface PathCount {
  hops: number;
  paths: number;
}

/**
 * The hops of a graph by node number: which pairs are joined, and whether
 * without the user, in a dense table built from the edges given one by one
 * and the qrexec hop table; the edges of a hop are made only when a hop is
 * shown ({@link FlowIndex.hop}, several at once with {@link FlowIndex.prepare}).
 */
export class FlowIndex {
  readonly nodes: string[];
  readonly ids: Map<string, number>;
  /** 0 no hop, 1 every edge asks, 2 some edge needs no user; row major. */
  readonly status: Uint8Array;
  private readonly succAny: Int32Array[];
  private readonly succAuto: Int32Array[];
  private readonly concrete = new Map<string, FlowEdge[]>();
  private readonly qways = new Map<string, HopWays | null>();
  private readonly hops = new Map<string, FlowHop>();

  /**
   * `bounded`: the qrexec ways of a hop are searched only until the ways it
   * shows are certain (then {@link FlowHop.more} is a lower bound).
   */
  constructor(
    readonly graph: FlowGraph,
    readonly noAsk = false,
    readonly bounded = false,
  ) {
    const names = new Set<string>(graph.nodes);
    for (const e of graph.edges) names.add(e.from).add(e.to);
    const q = graph.qrexec;
    if (q) {
      for (const x of q.nodes) names.add(x);
      for (const k of q.strays.keys()) for (const x of k.split("\0")) names.add(x);
    }
    this.nodes = [...names];
    this.ids = new Map(this.nodes.map((n, i) => [n, i]));
    const n = this.nodes.length;
    const st = (this.status = new Uint8Array(n * n));
    for (const e of graph.edges) {
      if (e.from === e.to || (noAsk && e.ask)) continue;
      const k = `${e.from}\0${e.to}`;
      const l = this.concrete.get(k);
      if (l) l.push(e);
      else this.concrete.set(k, [e]);
      const i = this.ids.get(e.from)! * n + this.ids.get(e.to)!;
      st[i] = Math.max(st[i]!, e.ask ? 1 : 2);
    }
    if (q) {
      const m = q.nodes.length;
      const map = Int32Array.from(q.nodes.map((x) => this.ids.get(x)!));
      for (let i = 0; i < m; i++) {
        const row = map[i]! * n;
        for (let j = 0; j < m; j++) {
          const v = q.status[i * m + j]!;
          if (v === 0 || (noAsk && v === 1)) continue;
          if (st[row + map[j]!]! < v) st[row + map[j]!] = v;
        }
      }
      for (const [k, v] of q.strays) {
        if (noAsk && v === 1) continue;
        const [a, b] = k.split("\0") as [string, string];
        const i = this.ids.get(a)! * n + this.ids.get(b)!;
        if (st[i]! < v) st[i] = v;
      }
    }
    this.succAny = [];
    this.succAuto = [];
    const any: number[] = [];
    const auto: number[] = [];
    for (let i = 0; i < n; i++) {
      any.length = 0;
      auto.length = 0;
      for (let j = 0; j < n; j++) {
        const v = st[i * n + j]!;
        if (v) any.push(j);
        if (v === 2) auto.push(j);
      }
      this.succAny.push(Int32Array.from(any));
      this.succAuto.push(Int32Array.from(auto));
    }
  }

  /** The nodes one hop from node `i` (only hops without the user when `auto`). */
  succ(i: number, auto = false): Int32Array {
    return (auto ? this.succAuto : this.succAny)[i]!;
  }

  /** Finds the qrexec ways of several hops at once (each end swept once), for {@link hop}. */
  prepare(pairs: Iterable<readonly [string, string]>): void {
    const q = this.graph.qrexec;
    if (!q) return;
    const want: [string, string][] = [];
    for (const [a, b] of pairs) {
      const key = `${a}\0${b}`;
      if (this.qways.has(key) || this.hops.has(key)) continue;
      this.qways.set(key, null);
      want.push([a, b]);
    }
    if (!want.length) return;
    for (const [key, h] of q.ways(want, this.graph.evidencePerHop ?? Infinity, this.bounded, this.noAsk)) if (this.qways.has(key)) this.qways.set(key, h);
  }

  /** The hop from `a` to `b` with its edges (undefined: none). */
  hop(a: string, b: string): FlowHop | undefined {
    const key = `${a}\0${b}`;
    const had = this.hops.get(key);
    if (had) return had;
    const ia = this.ids.get(a);
    const ib = this.ids.get(b);
    if (ia === undefined || ib === undefined || !this.status[ia * this.nodes.length + ib]) return undefined;
    const edges = [...(this.concrete.get(key) ?? [])];
    let more = this.graph.more?.get(key) ?? 0;
    let atLeast = false;
    if (this.graph.qrexec) {
      if (!this.qways.has(key)) this.prepare([[a, b]]);
      const h = this.qways.get(key);
      if (h) {
        // Allows are shown first, so the first ways kept hold the first allows.
        const kept = this.noAsk ? h.ways.filter((w) => w.allow) : h.ways;
        for (const w of kept) edges.push(w.edge);
        more += (this.noAsk ? h.allows : h.total) - kept.length;
        atLeast = !!h.atLeast;
      }
      this.qways.delete(key);
    }
    sortEdges(edges);
    const hop: FlowHop = { from: a, to: b, edges, ask: !edges.some((e) => !e.ask), more, ...(atLeast ? { moreAtLeast: true } : {}) };
    this.hops.set(key, hop);
    return hop;
  }
}

/** Hops by node: `adjacency.get(a).get(b)` is the hop a → b. Every hop of the graph: for small graphs (tests, renderers). */
export function hopIndex(graph: FlowGraph, noAsk = false): Map<string, Map<string, FlowHop>> {
  const index = new FlowIndex(graph, noAsk);
  const out = new Map<string, Map<string, FlowHop>>();
  const pairs: [string, string][] = [];
  index.nodes.forEach((a, i) => {
    for (const j of index.succ(i)) pairs.push([a, index.nodes[j]!]);
  });
  index.prepare(pairs);
  index.nodes.forEach((a, i) => {
    for (const j of index.succ(i)) {
      const b = index.nodes[j]!;
      let m = out.get(a);
      if (!m) out.set(a, (m = new Map()));
      m.set(b, index.hop(a, b)!);
    }
  });
  return out;
}

const VIA_RANK = { qrexec: 0, network: 1, device: 2, admin: 3 } as const;

/** The order of a hop's edges: without the user first, then by kind, then by service and argument (or note); stable. */
function sortEdges(edges: FlowEdge[]): void {
  if (edges.length < 2) return;
  // Each edge's text key made once (not once per comparison).
  const keyed = edges.map((e) => ({ e, k: e.evidence.kind === "qrexec" ? `${e.evidence.service} ${e.evidence.argument}` : e.evidence.note }));
  keyed.sort((a, b) => {
    if (a.e.ask !== b.e.ask) return a.e.ask ? 1 : -1;
    if (a.e.via !== b.e.via) return VIA_RANK[a.e.via] - VIA_RANK[b.e.via];
    return a.k < b.k ? -1 : a.k > b.k ? 1 : 0;
  });
  for (let i = 0; i < edges.length; i++) edges[i] = keyed[i]!.e;
}

/** Hops from `from` to every node (breadth first), through no avoided node; -1: unreachable. */
function distances(index: FlowIndex, start: number, reverse: boolean, avoid: Set<number>, keep: number, auto: boolean): Int32Array {
  const n = index.nodes.length;
  const dist = new Int32Array(n).fill(-1);
  let pred: number[][] | undefined;
  if (reverse) {
    pred = Array.from({ length: n }, () => []);
    for (let i = 0; i < n; i++) for (const j of index.succ(i, auto)) pred[j]!.push(i);
  }
  dist[start] = 0;
  const queue = [start];
  for (let k = 0; k < queue.length; k++) {
    const x = queue[k]!;
    if (x !== start && x !== keep && avoid.has(x)) continue;
    for (const y of reverse ? pred![x]! : index.succ(x, auto)) {
      if (dist[y] !== -1) continue;
      dist[y] = dist[x]! + 1;
      queue.push(y);
    }
  }
  return dist;
}

/** The most partial paths followed by one search before it gives up and says so. */
const SEARCH_BUDGET = 2_000_000;

/**
 * Every simple path from `from` to `to` of at most `maxHops` hops, shortest
 * first (within a length, the ones without the user first), up to
 * `maxPaths`; when more exist, `truncated` and `count` (how many shortest
 * paths there are) say so. A search that would follow more than a few
 * million partial paths stops and is marked truncated. Never throws.
 */
export function findPaths(graph: FlowGraph, from: string, to: string, options: PathOptions = {}): PathsResult {
  const maxHops = options.maxHops ?? 6;
  const maxPaths = options.maxPaths ?? 100;
  // Each hop's search for ways stops once the ways it shows are certain (its count is then a lower bound).
  const index = new FlowIndex(graph, options.noAsk, true);
  const result: PathsResult = { from, to, paths: [], truncated: false, shortest: null };
  const s = index.ids.get(from);
  const t = index.ids.get(to);
  if (from === to) {
    result.shortest = 0;
    return result;
  }
  if (s === undefined || t === undefined) return result;
  const avoid = new Set<number>();
  for (const a of options.avoid ?? []) {
    const i = index.ids.get(a);
    if (i !== undefined) avoid.add(i);
  }
  const dist = distances(index, t, true, avoid, s, false);
  if (dist[s] === -1) return result;
  result.shortest = dist[s]!;
  result.count = { hops: dist[s]!, paths: countShortest(index, s, t, avoid, dist[s]!) };
  let budget = SEARCH_BUDGET;
  const onPath = new Uint8Array(index.nodes.length);
  const path: number[] = [s];
  onPath[s] = 1;
  const st = index.status;
  const n = index.nodes.length;
  let stop = false;
  const emit = () => {
    if (found.length >= maxPaths) {
      result.truncated = true;
      stop = true;
      return;
    }
    found.push(path.map((i) => index.nodes[i]!));
  };
  const found: string[][] = [];
  // Paths of exactly `len` hops; `auto`: only hops without the user; else only paths with a hop that asks.
  const walk = (len: number, auto: boolean, asked: boolean) => {
    const x = path[path.length - 1]!;
    const k = path.length - 1;
    for (const y of index.succ(x, auto)) {
      if (stop) return;
      if (--budget < 0) {
        result.truncated = true;
        stop = true;
        return;
      }
      if (onPath[y]) continue;
      const ask = asked || st[x * n + y] === 1;
      if (y === t) {
        if (k + 1 === len && (auto || ask)) {
          path.push(y);
          emit();
          path.pop();
        }
        continue;
      }
      if (avoid.has(y) || dist[y] === -1 || k + 1 + dist[y]! > len) continue;
      onPath[y] = 1;
      path.push(y);
      walk(len, auto, ask);
      path.pop();
      onPath[y] = 0;
    }
  };
  for (let len = result.shortest; len <= maxHops && !stop; len++) {
    walk(len, true, false);
    if (!options.noAsk && !stop) walk(len, false, false);
  }
  result.paths = materialize(index, found);
  return result;
}

/** The number of paths of exactly `hops` hops from s to t through no avoided node (each is simple). */
function countShortest(index: FlowIndex, s: number, t: number, avoid: Set<number>, hops: number): number {
  const fwd = distances(index, s, false, avoid, t, false);
  const n = index.nodes.length;
  const ways = new Float64Array(n);
  ways[s] = 1;
  const order = [...Array(n).keys()].filter((i) => fwd[i]! >= 0 && fwd[i]! < hops).sort((a, b) => fwd[a]! - fwd[b]!);
  for (const x of order) {
    if (x !== s && avoid.has(x)) continue;
    for (const y of index.succ(x)) if (fwd[y] === fwd[x]! + 1) ways[y] += ways[x]!;
  }
  return ways[t]!;
}

/** How a node is reached from the start. */
export interface Reached {
  node: string;
  /** A shortest path (possibly with asks). */
  path: FlowPath;
  /** A shortest path without asks, when the node is reachable without the user. */
  automatic?: FlowPath;
}

function bfs(index: FlowIndex, from: number, avoid: Set<number>, auto: boolean, maxHops: number): Map<string, string[]> {
  const n = index.nodes.length;
  const prev = new Int32Array(n).fill(-2);
  const depth = new Int32Array(n);
  prev[from] = -1;
  const queue = [from];
  for (let i = 0; i < queue.length; i++) {
    const x = queue[i]!;
    if (x !== from && avoid.has(x)) continue;
    // Breadth first, so a node first reached at depth d has no shorter path: beyond the limit, stop.
    if (depth[x]! >= maxHops) continue;
    for (const y of index.succ(x, auto)) {
      if (prev[y] !== -2) continue;
      prev[y] = x;
      depth[y] = depth[x]! + 1;
      queue.push(y);
    }
  }
  const out = new Map<string, string[]>();
  for (const y of queue) {
    if (y === from) continue;
    const ids: number[] = [];
    for (let c = y; c !== -1; c = prev[c]!) ids.unshift(c);
    out.set(index.nodes[y]!, ids.map((i) => index.nodes[i]!));
  }
  return out;
}

/** Paths given by their nodes, with their hops (the qrexec ways of every hop found at once). */
function materialize(index: FlowIndex, paths: readonly string[][]): FlowPath[] {
  const pairs = new Map<string, [string, string]>();
  for (const nodes of paths) for (let i = 1; i < nodes.length; i++) pairs.set(`${nodes[i - 1]}\0${nodes[i]}`, [nodes[i - 1]!, nodes[i]!]);
  index.prepare(pairs.values());
  return paths.map((nodes) => {
    const hops = nodes.slice(1).map((b, i) => index.hop(nodes[i]!, b)!);
    return { nodes, hops, ask: hops.some((h) => h.ask) };
  });
}

/**
 * Every node reachable from `from` in at most `maxHops` hops (default 6;
 * avoided nodes are reached but not gone through), each with a shortest path
 * and, when there is one within the limit, a shortest path without asks.
 * Sorted by node name. Never throws.
 */
export function reachableFrom(graph: FlowGraph, from: string, options: Pick<PathOptions, "avoid" | "noAsk" | "maxHops"> = {}): Reached[] {
  const maxHops = options.maxHops ?? 6;
  // One path per node: each hop's search stops once the ways it shows are certain.
  const index = new FlowIndex(graph, options.noAsk, true);
  const s = index.ids.get(from);
  if (s === undefined) return [];
  const avoid = new Set<number>();
  for (const a of options.avoid ?? []) {
    const i = index.ids.get(a);
    if (i !== undefined) avoid.add(i);
  }
  const all = bfs(index, s, avoid, false, maxHops);
  const auto = bfs(index, s, avoid, true, maxHops);
  const names = [...all.keys()].sort();
  const made = materialize(index, [...names.map((x) => all.get(x)!), ...names.filter((x) => auto.has(x)).map((x) => auto.get(x)!)]);
  let k = names.length;
  return names.map((node, i) => {
    const r: Reached = { node, path: made[i]! };
    if (auto.has(node)) r.automatic = made[k++]!;
    return r;
  });
}
