/**
 * The qrexec edges of a flow graph, decided by sweeping each caller's rules
 * in order (first match), many targets at once.
 *
 * For one caller and one (service, argument) of the request space, the
 * rules that can match the caller come from the evaluator's index
 * (`candidateLists`), in policy order. Every request target of the space
 * (qube names, `@dispvm:X` of the disposable templates, `@default`,
 * `@adminvm`, `@dispvm`) starts undecided; each rule takes, as a bitset, the
 * undecided targets its target token matches (the evaluator's `matchTarget`,
 * once per token and system, and per caller only for `@dispvm` against
 * `@dispvm:X`/`@dispvm:@tag:T` tokens). The first rule that takes a target
 * is the rule the evaluator's first match finds for that request, so a rule
 * decides exactly the targets it takes; a crash of the engine while
 * matching decides them too (a denial). The sweep stops once nothing is
 * undecided, so its cost is the rules up to the caller's catch-all, not
 * rules × targets.
 *
 * What a rule grants is the evaluator's: a deny nothing; an `ask` offers
 * the same targets for every request it decides (the offer depends on the
 * caller, the service and argument, the rule's `target=` and `autostart`),
 * so one request per rule is decided by the evaluator itself (`run`); an
 * `allow` with `target=` resolves to one target whatever the request, again
 * decided once; an `allow` without `target=` goes to the request's own
 * target (`@adminvm` is dom0, `@dispvm` the caller's default disposable
 * template, `@default` is refused, `autostart=no` keeps the running qubes).
 *
 * Two uses: the hop table (every caller swept, what each reaches kept as
 * bitsets: allow, or ask only), and the evidence of a few hops (their two
 * ends swept again, each way with its deciding rule and a request that shows
 * it). Nothing is stored per pair of qubes and way.
 *
 * Disposables as callers: the node `@dispvm:X` calls as a new DispVM of X
 * would (see `disposableSystem`): decided in the system model with that
 * qube added.
 */
import { prep } from "../eval/index.js";
import { run } from "../eval/decide.js";
import { collectTargetsForAsk } from "../eval/ask.js";
import { isDom0Token } from "../syntax/tokens.js";
import { buildRequest, dispvmTemplateOf, matchSource, matchTarget, truthy, type VerifiedTarget } from "../eval/match.js";
import { allowNoAutostart } from "../eval/exec.js";
import type { Decision, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import type { QubeToken } from "../syntax/tree.js";
import { qubeClasses, requestSpace } from "../audit/space.js";
import { movesBackward, movesForward, serviceFlow, type FlowDirection, type ServiceCatalogue } from "./catalogue.js";
import type { FlowEdge, QrexecEvidence } from "./graph.js";
import { disposableSystem, nodeName, otherServicesFlow } from "./qrexec.js";

/** One way data moves over one hop (a service, argument, action, deciding rule, direction), as evidence. */
export interface FlowWay {
  /** The same number for the same (service, argument, rule, action, direction, control); ascending in policy order. */
  sig: number;
  allow: boolean;
  /** Made on first read. */
  readonly edge: FlowEdge;
}

/** One (service, argument) of the request space with its direction of data. */
interface Call {
  service: string;
  display: string;
  argument: string;
  argDisplay: string;
  text: string;
  fwd: boolean;
  bwd: boolean;
  control: boolean;
  /** Plain services reach the qube the call runs in; control services that qube and the qube they name. */
  plain: boolean;
  direction: FlowDirection;
  note: string;
  /** The rules a call of this service and argument can match (its own and the `*` ones), ascending. */
  rules: Int32Array;
}

/** A node that calls services: a qube, or a new disposable of a template. */
interface Caller {
  node: string;
  /** The request's source (a qube, or the new disposable's name in {@link QrexecFlow.dispSystem}). */
  source: string;
  /** 0: the system model; 1: the one with the new disposables. */
  sysIdx: 0 | 1;
  disposable?: string;
}

/** The target bitset of a token: the targets it matches, and those whose matching crashes the engine. */
interface TokenMatch {
  bits: Uint32Array;
  crash: Uint32Array;
  /** `@dispvm` is matched per caller (`@dispvm:X` and `@dispvm:@tag:T` tokens read the caller's default). */
  perCaller: boolean;
}

/** Options of {@link qrexecFlow}. */
export interface QrexecFlowOptions {
  catalogue: ServiceCatalogue;
  /** Also decide the calls of new disposables (`@dispvm:X` as a caller). Default true. */
  disposableSources?: boolean;
}

/** A way whose edge (with its evidence) is made on first read. */
function lazyWay(sig: number, allow: boolean, make: () => FlowEdge): FlowWay {
  let edge: FlowEdge | undefined;
  return {
    sig,
    allow,
    get edge() {
      return (edge ??= make());
    },
  };
}

/**
 * The ways of one hop as far as they are kept: the first `cap` in the order
 * evidence is shown (allows first, then by {@link FlowWay.sig}), and how many
 * there are in all (every way is counted, few are made).
 */
export interface HopWays {
  /** At most the cap, in shown order. */
  ways: FlowWay[];
  /** Every way of the hop (kept or not). */
  total: number;
  /** Of {@link total}, the allows (a hop without asks shows and counts only these). */
  allows: number;
  /** The search stopped once the ways shown were certain: {@link total} and {@link allows} are lower bounds. */
  atLeast?: boolean;
}

/** `x` is shown before `y` (allows first, then policy order). */
const before = (allowX: boolean, sigX: number, y: FlowWay) => (allowX !== y.allow ? allowX : sigX < y.sig);

/**
 * Counts a way of a hop and keeps it when it is among the first `cap`
 * (`make` is called only then). A way already kept (same sig) is not counted twice.
 */
function addWay(h: HopWays, cap: number, sig: number, allow: boolean, make: () => FlowWay): void {
  const ws = h.ways;
  const full = ws.length >= cap;
  if (full && !before(allow, sig, ws[ws.length - 1]!)) {
    if (ws[ws.length - 1]!.sig === sig) return;
    h.total++;
    if (allow) h.allows++;
    return;
  }
  let i = ws.length;
  while (i > 0 && before(allow, sig, ws[i - 1]!)) i--;
  if (i > 0 && ws[i - 1]!.sig === sig) return;
  h.total++;
  if (allow) h.allows++;
  ws.splice(i, 0, make());
  if (ws.length > cap) ws.pop();
}

/** The rules (global indices, ascending) a call of `service` with `argument` can match: the service's own and the `*` ones. */
function callRules(policy: CompiledPolicy, byService: Map<string, number[]>, star: number[], service: string, argument: string): Int32Array {
  const own = byService.get(service) ?? [];
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < own.length || j < star.length) {
    const x = j >= star.length || (i < own.length && own[i]! < star[j]!) ? own[i++]! : star[j++]!;
    const a = policy.rules[x]!.argument;
    if (a === null || a === argument) out.push(x);
  }
  return Int32Array.from(out);
}

/** `x` with the qubes `s` and `a` swapped, in a `@dispvm:` node too. */
function swapName(x: string, s: string, a: string): string {
  if (s === a) return x;
  if (x === s) return a;
  if (x === a) return s;
  if (x.startsWith("@dispvm:")) return "@dispvm:" + swapName(x.slice(8), s, a);
  return x;
}

const has = (b: Uint32Array, i: number) => (b[i >>> 5]! & (1 << (i & 31))) !== 0;
const put = (b: Uint32Array, i: number) => {
  b[i >>> 5]! |= 1 << (i & 31);
};

/**
 * The qrexec part of a flow graph (see the module comment): which pairs of
 * nodes data moves between (`status`), and the ways of any hop on demand.
 */
export class QrexecFlow {
  /** The nodes: qubes and `@dispvm:X` (in request-target order), then other nodes a call can reach (dom0, `@dispvm:X` of a default that is no template). */
  readonly nodes: string[];
  readonly ids: Map<string, number>;
  /** Per pair of {@link nodes} (row major): 0 no qrexec edge, 1 every edge asks, 2 some edge needs no user. */
  readonly status: Uint8Array;
  /** The disposable callers' qubes: template X → the name it has in {@link dispSystem}. */
  readonly disposableNames: Map<string, string>;
  /** The system model with one new disposable of every disposable template (for deciding their calls again). */
  readonly dispSystem: SystemInfo;
  /** Calls decided by the evaluator, and sweeps of one caller and (service, argument). */
  evaluated = 0;

  private readonly calls: Call[] = [];
  private readonly callers: Caller[] = [];
  private readonly callerOf = new Map<string, Caller>();
  /** A qube's class's first member, when the class has others and they are found by swapping. */
  private readonly repOf = new Map<string, string>();
  /** Per caller swept for the hop table: the calls that grant it anything (the others are not swept again). */
  private readonly useful = new Map<Caller, Uint8Array>();
  private readonly systems: [SystemInfo, SystemInfo];
  /** The request targets: the first `K` are nodes (same ids), then `@default`, `@adminvm`, `@dispvm`. */
  private readonly K: number;
  private readonly W: number;
  private readonly targetText: string[];
  private readonly verified: (VerifiedTarget | null)[];
  /** Request targets the engine can build a request for. */
  private readonly valid: Uint32Array;
  /** Request targets that are qubes (not `@dispvm:X`, not the specials). */
  private readonly qubeMask: Uint32Array;
  /** Request targets among the nodes (qubes and `@dispvm:X`). */
  private readonly nodeMask: Uint32Array;
  /** Per system: the node targets an `autostart=no` allow may go to. */
  private readonly running: [Uint32Array, Uint32Array];
  private readonly ruleTok: Int32Array;
  /** Per rule: the id of its source token (by kind and text). */
  private readonly ruleSrc: Int32Array;
  /** Per rule: 1 for a deny. */
  private readonly ruleDeny: Uint8Array;
  /** The caller {@link srcVec} and {@link dispVec} are for. */
  private vecCaller: Caller | null = null;
  /** Per source token id, for {@link vecCaller}: 255 not yet matched, 0 no, 1 matches, 2 the engine crashes. */
  private srcVec = new Uint8Array(0);
  /** Per target token id, for {@link vecCaller}: how `@dispvm` matches it (same values). */
  private dispVec = new Uint8Array(0);
  private readonly tokens: QubeToken[] = [];
  private readonly tokMatch: [(TokenMatch | undefined)[], (TokenMatch | undefined)[]] = [[], []];
  private readonly synNames: Set<string>;
  private readonly offerBits = new WeakMap<readonly string[], { bits: Uint32Array; strays: string[] }>();
  /** Edges to nodes outside {@link nodes} (never expected; kept so nothing is lost): `FROM\0TO` → status. */
  readonly strays = new Map<string, number>();

  constructor(
    private readonly policy: CompiledPolicy,
    system: SystemInfo,
    options: QrexecFlowOptions,
  ) {
    const space = requestSpace([policy], system);
    const sys0 = prep(system);
    const templates = new Set(space.dispvmTemplates);
    const withDisposables = options.disposableSources !== false && space.dispvmTemplates.length > 0;
    const disp = disposableSystem(policy, sys0, withDisposables ? space.dispvmTemplates : []);
    this.disposableNames = disp.names;
    this.dispSystem = disp.system;
    this.systems = [sys0, disp.system];
    this.synNames = new Set(disp.names.values());

    // Nodes: the request targets that are nodes first (their ids are their bits), then the others.
    const nodes: string[] = [];
    for (const q of space.qubes) {
      nodes.push(q);
      if (templates.has(q)) nodes.push("@dispvm:" + q);
    }
    this.K = nodes.length;
    const targetText = [...nodes, "@default", "@adminvm", "@dispvm"];
    const extra = new Set<string>(["dom0"]);
    for (const s of [sys0, prep(disp.system)])
      for (const q of s.names) {
        try {
          const d = dispvmTemplateOf(s.domains, q);
          if (d !== null) extra.add(d);
        } catch {
          // A default_dispvm the engine cannot read: that caller's `@dispvm` is refused.
        }
      }
    // An `ask` with `target=` offers that text as it is (a qube, `@dispvm`, `@dispvm:X`).
    for (const r of policy.rules) if (r.action === "ask" && r.redirect) extra.add(nodeName(isDom0Token(r.redirect.text) ? "dom0" : r.redirect.text));
    for (const x of nodes) extra.delete(x);
    for (const n of this.synNames) extra.delete(n);
    nodes.push(...[...extra].sort());
    this.nodes = nodes;
    this.ids = new Map(nodes.map((n, i) => [n, i]));
    this.targetText = targetText;
    const U = Math.max(nodes.length, targetText.length) + 3;
    this.W = (U + 31) >>> 5;
    const W = this.W;
    this.scratchUnd = new Uint32Array(W);
    this.scratchN = new Uint32Array(W);
    this.valid = new Uint32Array(W);
    this.qubeMask = new Uint32Array(W);
    this.nodeMask = new Uint32Array(W);
    const qubeSet = new Set(space.qubes);
    this.verified = targetText.map((t, i) => {
      try {
        const b = buildRequest({ service: "qkit.Flow", argument: "+", source: "dom0", target: t }, sys0);
        put(this.valid, i);
        if (i < this.K) put(this.nodeMask, i);
        if (qubeSet.has(t)) put(this.qubeMask, i);
        return b.target;
      } catch {
        return null;
      }
    });
    this.running = [this.runningMask(sys0), this.runningMask(prep(disp.system))];

    // Target tokens by (kind, text): matched once per system; source tokens by (kind, text): once per caller.
    const tokIds = new Map<string, number>();
    const srcIds = new Map<string, number>();
    this.ruleTok = new Int32Array(policy.rules.length);
    this.ruleSrc = new Int32Array(policy.rules.length);
    this.ruleDeny = new Uint8Array(policy.rules.length);
    for (const r of policy.rules) {
      if (r.action === "deny") this.ruleDeny[r.index] = 1;
      const sk = `${r.source.kind}\0${r.source.text}`;
      let sid = srcIds.get(sk);
      if (sid === undefined) srcIds.set(sk, (sid = srcIds.size));
      this.ruleSrc[r.index] = sid;
      const key = `${r.target.kind}\0${r.target.text}`;
      let id = tokIds.get(key);
      if (id === undefined) {
        tokIds.set(key, (id = this.tokens.length));
        this.tokens.push(r.target);
      }
      this.ruleTok[r.index] = id;
    }
    this.srcVec = new Uint8Array(srcIds.size);
    this.dispVec = new Uint8Array(this.tokens.length);

    // Calls, each with its rules in policy order (one pass over the policy).
    const byService = new Map<string, number[]>();
    const star: number[] = [];
    for (const r of policy.rules) {
      if (r.service === null) star.push(r.index);
      else {
        const l = byService.get(r.service);
        if (l) l.push(r.index);
        else byService.set(r.service, [r.index]);
      }
    }
    const named = new Set(space.services.filter((s) => s.display !== "*").map((s) => s.service));
    for (const svc of space.services) {
      const flow = svc.display === "*" ? otherServicesFlow(options.catalogue, named) : { ...serviceFlow(options.catalogue, svc.service), plain: false };
      const fwd = movesForward(flow.direction);
      const bwd = movesBackward(flow.direction);
      if (!fwd && !bwd) continue;
      for (const arg of svc.arguments) {
        const text =
          svc.display === "*" ? "any service no rule names" : arg.display !== "*" ? svc.service + arg.argument : svc.arguments.length === 1 ? svc.service : `${svc.service} (other arguments)`;
        this.calls.push({ service: svc.service, display: svc.display, argument: arg.argument, argDisplay: arg.display, text, fwd, bwd, control: flow.control, plain: flow.plain || !flow.control, direction: flow.direction, note: flow.note, rules: callRules(policy, byService, star, svc.service, arg.argument) });
      }
    }

    // Callers.
    for (const q of space.qubes) this.callers.push({ node: q, source: q, sysIdx: 0 });
    for (const [x, name] of disp.names) this.callers.push({ node: "@dispvm:" + x, source: name, sysIdx: 1, disposable: x });
    for (const c of this.callers) this.callerOf.set(c.node, c);

    // The hop table: every caller swept once.
    const n = nodes.length;
    this.status = new Uint8Array(n * n);
    const fa = new Uint32Array(W);
    const fs = new Uint32Array(W);
    const ba = new Uint32Array(W);
    const bs = new Uint32Array(W);
    const A = new Uint32Array(W);
    const S = new Uint32Array(W);
    // Real callers by class of qubes no rule tells apart (`audit/space.ts`): one member is swept, and
    // the others' rows are its row with the two swapped (with their `@dispvm:` nodes), an
    // automorphism of the system and the policy. Disposable callers are swept one by one.
    const classOf = new Map<string, string[]>();
    for (const cls of qubeClasses([policy], sys0)) for (const q of cls) classOf.set(q, cls);
    const full = new Uint32Array(W);
    this.offerable = [this.offerableMask(sys0, policy), this.offerableMask(prep(disp.system), policy)];
    const sweepAll = (c: Caller) => {
      fa.fill(0);
      fs.fill(0);
      ba.fill(0);
      bs.fill(0);
      const useful = new Uint8Array(this.calls.length);
      this.useful.set(c, useful);
      // Every node but the caller: once a direction reaches all of them, an ask's offer adds nothing
      // to the table there, and is not computed (the call still counts as granting something).
      full.set(this.offerable[c.sysIdx]);
      const self = this.ids.get(c.node)!;
      full[self >>> 5]! &= ~(1 << (self & 31));
      const covers = (x: Uint32Array, y: Uint32Array) => {
        for (let w = 0; w < W; w++) if (((x[w]! | y[w]!) & full[w]!) >>> 0 !== full[w]!) return false;
        return true;
      };
      for (let ki = 0; ki < this.calls.length; ki++) {
        const k = this.calls[ki]!;
        A.fill(0);
        S.fill(0);
        const strays = this.strays.size;
        this.skipAsks = !((k.fwd && !covers(fa, fs)) || (k.bwd && !covers(ba, bs)));
        this.skipped = false;
        this.sweep(c, k, (r, N) => this.reach(c, k, r, N, A, S));
        this.skipAsks = false;
        let any = this.strays.size !== strays || this.skipped ? 1 : 0;
        for (let w = 0; w < W; w++) any |= A[w]! | S[w]!;
        if (any) useful[ki] = 1;
        for (let w = 0; w < W; w++) {
          if (k.fwd) {
            fa[w]! |= A[w]!;
            fs[w]! |= S[w]!;
          }
          if (k.bwd) {
            ba[w]! |= A[w]!;
            bs[w]! |= S[w]!;
          }
        }
      }
    };
    for (const c of this.callers) {
      const cls = c.sysIdx === 0 ? classOf.get(c.node) : undefined;
      if (cls && cls[0] !== c.node) continue;
      const strays = this.strays.size;
      sweepAll(c);
      this.write(c.node, c.node, fa, fs, ba, bs);
      if (!cls || cls.length === 1) continue;
      // A destination outside the nodes (recorded by name) does not swap: sweep every member then.
      const alone = this.strays.size !== strays;
      if (!alone) for (const member of cls) this.repOf.set(member, c.node);
      for (const member of cls.slice(1)) {
        if (alone) {
          sweepAll(this.callerOf.get(member)!);
          this.write(member, member, fa, fs, ba, bs);
        } else this.write(c.node, member, fa, fs, ba, bs);
      }
    }
  }

  /** Writes the row (forward) and column (backward) of `member`, swept as `swept` (same class). */
  private write(swept: string, member: string, fa: Uint32Array, fs: Uint32Array, ba: Uint32Array, bs: Uint32Array): void {
    const n = this.nodes.length;
    const st = this.status;
    const ci = this.ids.get(member)!;
    // The swap of the two qubes and of their `@dispvm:` nodes.
    const a = this.ids.get(swept)!;
    const da = this.ids.get("@dispvm:" + swept);
    const db = this.ids.get("@dispvm:" + member);
    const sw = (d: number) => (d === a ? ci : d === ci ? a : da !== undefined && db !== undefined ? (d === da ? db : d === db ? da : d) : d);
    for (let d = 0; d < n; d++) {
      const to = sw(d);
      if (to === ci) continue;
      const f = has(fa, d) ? 2 : has(fs, d) ? 1 : 0;
      if (f > st[ci * n + to]!) st[ci * n + to] = f;
      const b = has(ba, d) ? 2 : has(bs, d) ? 1 : 0;
      if (b > st[to * n + ci]!) st[to * n + ci] = b;
    }
  }

  private runningMask(sys: SystemInfo): Uint32Array {
    const m = new Uint32Array(this.W);
    const info = prep(sys).domains;
    for (let i = 0; i < this.K; i++) {
      try {
        if (allowNoAutostart(this.targetText[i]!, info)) put(m, i);
      } catch {
        // The engine crashes on it: refused.
      }
    }
    return m;
  }

  private tokenMatch(sysIdx: 0 | 1, id: number): TokenMatch {
    const cache = this.tokMatch[sysIdx];
    let m = cache[id];
    if (m) return m;
    const tok = this.tokens[id]!;
    const info = prep(this.systems[sysIdx]).domains;
    const perCaller = tok.kind === "dispvm-template" || tok.kind === "dispvm-tag";
    const bits = new Uint32Array(this.W);
    const crash = new Uint32Array(this.W);
    const dispvm = this.K + 2;
    for (let i = 0; i < this.verified.length; i++) {
      const t = this.verified[i];
      if (!t || (perCaller && i === dispvm)) continue;
      try {
        if (matchTarget(tok, t, "dom0", info)) put(bits, i);
      } catch {
        put(crash, i);
      }
    }
    return (cache[id] = { bits, crash, perCaller });
  }

  /**
   * The first-match sweep of one caller and call: `visit(rule, N)` for every
   * allow or ask rule with the targets `N` it decides (a scratch bitset).
   */
  private sweep(c: Caller, k: Call, visit: (r: PolicyRule, N: Uint32Array) => void): void {
    this.evaluated++;
    const info = prep(this.systems[c.sysIdx]).domains;
    const W = this.W;
    const und = this.scratchUnd;
    const N = this.scratchN;
    und.set(this.valid);
    const rules = this.policy.rules;
    if (this.vecCaller !== c) {
      this.vecCaller = c;
      this.srcVec.fill(255);
      this.dispVec.fill(255);
    }
    const srcVec = this.srcVec;
    const ruleSrc = this.ruleSrc;
    const list = k.rules;
    const dispvm = this.K + 2;
    const dispvmTarget = this.verified[dispvm];
    const deny = this.ruleDeny;
    for (let n = 0; n < list.length; n++) {
      const i = list[n]!;
      // The rule's source against the caller: once per source token and caller.
      const sid = ruleSrc[i]!;
      let sm = srcVec[sid]!;
      if (sm === 255) {
        try {
          sm = matchSource(rules[i]!.source, c.source, info) ? 1 : 0;
        } catch {
          sm = 2;
        }
        srcVec[sid] = sm;
      }
      // The engine crashes on this rule for every request still undecided: all refused.
      if (sm === 2) return;
      if (sm === 0) continue;
      const m = this.tokenMatch(c.sysIdx, this.ruleTok[i]!);
      let any = 0;
      let left = 0;
      const bits = m.bits;
      const crash = m.crash;
      for (let w = 0; w < W; w++) {
        const u = und[w]!;
        if (u === 0) continue;
        const nb = bits[w]! & u;
        N[w] = nb;
        any |= nb;
        const rest = u & ~nb & ~crash[w]!;
        und[w] = rest;
        left |= rest;
      }
      if (m.perCaller && dispvmTarget && has(und, dispvm)) {
        // `@dispvm` against `@dispvm:X`/`@dispvm:@tag:T`: the caller's default decides.
        // Once per target token and caller.
        const tid = this.ruleTok[i]!;
        let dm = this.dispVec[tid]!;
        if (dm === 255) {
          try {
            dm = matchTarget(rules[i]!.target, dispvmTarget, c.source, info) ? 1 : 0;
          } catch {
            dm = 2;
          }
          this.dispVec[tid] = dm;
        }
        const hit = dm === 1;
        const crashed = dm === 2;
        if (hit || crashed) {
          und[dispvm >>> 5]! &= ~(1 << (dispvm & 31));
          if (hit) {
            N[dispvm >>> 5]! |= 1 << (dispvm & 31);
            any = 1;
          }
          left = 0;
          for (let w = 0; w < W; w++) left |= und[w]!;
        }
      }
      if (any !== 0) {
        if (deny[i] === 0) visit(rules[i]!, N);
        for (let w = 0; w < W; w++) N[w] = 0;
      }
      if (left === 0) return;
    }
  }

  private readonly scratchUnd: Uint32Array;
  private readonly scratchN: Uint32Array;

  /** The lowest target of `N`, the specials first (the order requests were decided in before). */
  private firstTarget(N: Uint32Array): number {
    for (let i = this.K; i < this.K + 3; i++) if (has(N, i)) return i;
    for (let w = 0; w < this.W; w++) if (N[w]) return w * 32 + (31 - Math.clz32(N[w]! & -N[w]!));
    return -1;
  }

  /** The evaluator's decision of one request of a caller (as `run` gives it, the offered list shared). */
  private decide(c: Caller, k: Call, t: number): Decision {
    this.evaluated++;
    return run(this.policy, { service: k.service, argument: k.argument, source: c.source, target: this.targetText[t]! }, this.systems[c.sysIdx], undefined, undefined, false, true).decision;
  }

  /** The offered targets as node bits (and names that are no node: none expected). */
  private offer(list: readonly string[]): { bits: Uint32Array; strays: string[] } {
    let o = this.offerBits.get(list);
    if (!o) {
      o = { bits: new Uint32Array(this.W), strays: [] };
      for (const x of list) {
        const d = nodeName(x);
        if (this.synNames.has(d)) continue;
        const id = this.ids.get(d);
        if (id === undefined) o.strays.push(d);
        else put(o.bits, id);
      }
      this.offerBits.set(list, o);
    }
    return o;
  }

  private stray(c: Caller, k: Call, dest: string, v: number): void {
    if (dest === c.node || this.synNames.has(dest)) return;
    const add = (key: string) => this.strays.set(key, Math.max(this.strays.get(key) ?? 0, v));
    if (k.fwd) add(`${c.node}\0${dest}`);
    if (k.bwd) add(`${dest}\0${c.node}`);
  }

  /** The resolved target of an allow without `target=` for request target `t` (null: refused). */
  private allowTarget(c: Caller, r: PolicyRule, t: number): string | null {
    const text = this.targetText[t]!;
    if (t < this.K) return r.autostart || has(this.running[c.sysIdx], t) ? text : null;
    if (text === "@default") return null;
    if (text === "@adminvm") return "dom0";
    // `@dispvm`: the caller's default disposable template, never without autostart.
    if (!r.autostart) return null;
    try {
      return dispvmTemplateOf(prep(this.systems[c.sysIdx]).domains, c.source);
    } catch {
      return null;
    }
  }

  /** Per system: every node an ask's offer can hold, for any caller (see {@link offerableMask}). */
  private offerable: [Uint32Array, Uint32Array] = [new Uint32Array(0), new Uint32Array(0)];

  /**
   * The nodes an offer may hold: every node but the internal qubes (and their `@dispvm:` nodes),
   * which the engine never offers, unless an ask's `target=` names them (offered as written).
   */
  private offerableMask(sys: SystemInfo, policy: CompiledPolicy): Uint32Array {
    const m = new Uint32Array(this.W);
    const named = new Set<string>();
    for (const r of policy.rules) if (r.action === "ask" && r.redirect) named.add(nodeName(isDom0Token(r.redirect.text) ? "dom0" : r.redirect.text));
    const info = prep(sys).domains;
    this.nodes.forEach((x, i) => {
      const q = x.startsWith("@dispvm:") ? x.slice(8) : x;
      const d = info.get(q) as Record<string, unknown> | undefined;
      const internal = !!d && typeof d === "object" && !Array.isArray(d) && truthy(d["internal"]);
      if (!internal || named.has(x)) put(m, i);
    });
    return m;
  }

  /** The hop table already holds every ask the current call could add: offers are not computed. */
  private skipAsks = false;
  /** An ask was not computed (so the call may grant something). */
  private skipped = false;

  /** What rule `r` grants for the targets `N` it decides, as node bits: `A` allowed, `S` asked. */
  private reach(c: Caller, k: Call, r: PolicyRule, N: Uint32Array, A: Uint32Array, S: Uint32Array): void {
    const W = this.W;
    if (r.action === "ask") {
      if (this.skipAsks) {
        this.skipped = true;
        return;
      }
      const d = this.askDecision(c, k, r);
      if (!d) return;
      const o = this.offer(d);
      for (let w = 0; w < W; w++) S[w]! |= o.bits[w]!;
      for (const x of o.strays) this.stray(c, k, x, 1);
      return;
    }
    if (!r.redirect) {
      const run = r.autostart ? this.nodeMask : this.running[c.sysIdx];
      const mask = this.nodeMask;
      for (let w = 0; w < W; w++) A[w]! |= N[w]! & mask[w]! & run[w]!;
      for (let t = this.K; t < this.K + 3; t++) {
        if (!has(N, t)) continue;
        const to = this.allowTarget(c, r, t);
        if (to !== null) this.allowTo(c, k, to, A);
      }
      return;
    }
    const d = this.redirectDecision(c, k, r, N);
    if (!d) return;
    // Every service reaches the target the call runs in (a redirected `qubes.VMShell` is a shell
    // there); control services (and the services no rule names) also reach the qube the request names
    // (an `admin.*` call redirected to dom0 manages that qube).
    this.allowTo(c, k, d, A);
    if (k.control) for (let w = 0; w < W; w++) A[w]! |= N[w]! & this.qubeMask[w]!;
  }

  private allowTo(c: Caller, k: Call, target: string, A: Uint32Array): void {
    const dest = nodeName(target);
    const id = this.ids.get(dest);
    if (id === undefined) this.stray(c, k, dest, 2);
    else put(A, id);
  }

  /**
   * The ask decisions of the last (caller, call) by (`target=`, `autostart`): all an ask's offer depends
   * on besides the caller, service and argument.
   */
  private readonly asks = new Map<string, readonly string[] | null>();
  private asksCaller: Caller | null = null;
  private asksCall: Call | null = null;

  /**
   * Per caller (the last one): what an `ask` or `allow` with `target=` gives, by kind, `target=` and
   * `autostart`. Neither depends on the service, the argument or the request's target: an ask with
   * `target=` offers that text; an allow with `target=` goes where that text resolves for the caller.
   */
  private readonly fixed = new Map<string, readonly string[] | string | null>();
  private fixedCaller: Caller | null = null;

  private fixedOf(c: Caller): Map<string, readonly string[] | string | null> {
    if (this.fixedCaller !== c) {
      this.fixed.clear();
      this.fixedCaller = c;
    }
    return this.fixed;
  }

  private askDecision(c: Caller, k: Call, r: PolicyRule): readonly string[] | null {
    let memo: Map<string, readonly string[] | string | null>;
    if (r.redirect) memo = this.fixedOf(c);
    else {
      if (this.asksCaller !== c || this.asksCall !== k) {
        this.asks.clear();
        this.asksCaller = c;
        this.asksCall = k;
      }
      memo = this.asks as Map<string, readonly string[] | null>;
    }
    const key = `a\0${r.redirect?.text ?? ""}\0${r.autostart}`;
    const had = memo.get(key);
    if (had !== undefined) return had as readonly string[] | null;
    // The evaluator's `ask` branch (`decide.ts`): the offer, or a refusal (null).
    this.evaluated++;
    let offer: readonly string[] | null;
    try {
      const sys = prep(this.systems[c.sysIdx]);
      let targets: readonly string[];
      if (r.redirect) targets = [isDom0Token(r.redirect.text) ? "dom0" : r.redirect.text];
      else targets = collectTargetsForAsk(this.policy, buildRequest({ service: k.service, argument: k.argument, source: c.source, target: "@default" }, sys), sys);
      if (!r.autostart) targets = targets.filter((t) => allowNoAutostart(t, sys.domains));
      offer = targets.length ? targets : null;
    } catch {
      offer = null;
    }
    memo.set(key, offer);
    return offer;
  }

  /** Where an allow with `target=` sends the caller's calls (null: refused); the evaluator decides one request of `N`, once per caller. */
  private redirectDecision(c: Caller, k: Call, r: PolicyRule, N: Uint32Array): string | null {
    const memo = this.fixedOf(c);
    const key = `r\0${r.redirect!.text}\0${r.autostart}`;
    const had = memo.get(key);
    if (had !== undefined) return had as string | null;
    const d = this.decide(c, k, this.firstTarget(N));
    let to = d.ok && d.action === "allow" ? d.target : null;
    // `target=uuid:UUID` resolves to the UUID text (as the engine reports it); the node is the qube's name.
    if (to !== null && to.startsWith("uuid:")) {
      const name = (this.systems[c.sysIdx].domains.get(to) as { name?: unknown } | undefined)?.name;
      if (typeof name === "string") to = name;
    }
    memo.set(key, to);
    return to;
  }

  /**
   * The ways of some hops (deduplicated by {@link FlowWay.sig}), by
   * `FROM\0TO`: the first `cap` of each (allows first), the others counted.
   * Each end is swept once: `FROM` as the caller of the ways that move data
   * forward, `TO` of those that move it back. `bounded`: a hop's search stops
   * once the ways it shows are certain and one more is found (the count is
   * then a lower bound, {@link HopWays.atLeast}); the ways shown are the same.
   * `noAsk`: asks are not looked for (neither kept nor counted).
   */
  ways(pairs: Iterable<readonly [string, string]>, cap = Infinity, bounded = false, noAsk = false): Map<string, HopWays> {
    const wants = new Map<string, { fwd?: Set<string>; bwd?: Set<string> }>();
    const want = (node: string, dir: "fwd" | "bwd", other: string) => {
      let w = wants.get(node);
      if (!w) wants.set(node, (w = {}));
      (w[dir] ??= new Set()).add(other);
    };
    for (const [a, b] of pairs) {
      if (this.callerOf.has(a)) want(a, "fwd", b);
      if (this.callerOf.has(b)) want(b, "bwd", a);
    }
    return this.gather(wants, false, Math.max(1, cap), bounded, noAsk);
  }

  /** Every way of every hop (for small graphs: tests, `flowEdges`), the first `cap` of each made. */
  allWays(cap = Infinity): Map<string, HopWays> {
    return this.gather(new Map(this.callers.map((c) => [c.node, {}])), true, Math.max(1, cap));
  }

  /**
   * The ways of the wanted callers. The qubes of a class are swept once, as
   * their class's first member, and its ways are moved onto each member by
   * swapping the two (with their `@dispvm:` nodes): the swap is an
   * automorphism, so each moved request decides as the swept one (and its
   * way has the same sig).
   */
  private gather(wants: Map<string, { fwd?: Set<string>; bwd?: Set<string> }>, all: boolean, cap: number, bounded = false, noAsk = false): Map<string, HopWays> {
    const out = new Map<string, HopWays>();
    const byRep = new Map<string, string[]>();
    for (const node of wants.keys()) {
      const rep = this.repOf.get(node) ?? node;
      const l = byRep.get(rep);
      if (l) l.push(node);
      else byRep.set(rep, [node]);
    }
    for (const [rep, members] of byRep) {
      const c = this.callerOf.get(rep)!;
      if (members.length === 1 && members[0] === rep) {
        // The class's first member alone: swept as itself (nothing to move). Any other member is moved
        // from its class's sweep even when alone, so that its ways (and their sample requests) do not
        // depend on which other hops were asked for.
        const w = wants.get(members[0]!)!;
        this.collect(this.callerOf.get(members[0]!)!, w.fwd, w.bwd, out, all, cap, bounded, noAsk);
        continue;
      }
      const swapOf = (m: string) => (x: string) => swapName(x, rep, m);
      let fwd: Set<string> | undefined;
      let bwd: Set<string> | undefined;
      for (const m of members) {
        const sw = swapOf(m);
        const w = wants.get(m)!;
        for (const x of w.fwd ?? []) (fwd ??= new Set()).add(sw(x));
        for (const x of w.bwd ?? []) (bwd ??= new Set()).add(sw(x));
      }
      const mine = new Map<string, HopWays>();
      this.collect(c, fwd, bwd, mine, all, cap, bounded, noAsk);
      for (const m of members) {
        const sw = swapOf(m);
        const w = wants.get(m)!;
        // The member's hops in the swept qube's terms: every one (all), else the wanted ones.
        let moved: [string, string, HopWays][];
        if (all) moved = [...mine].map(([key, hw]) => [...(key.split("\0") as [string, string]), hw]);
        else {
          moved = [];
          for (const x of w.fwd ?? []) {
            const b = sw(x);
            const hw = mine.get(`${rep}\0${b}`);
            if (hw) moved.push([rep, b, hw]);
          }
          for (const x of w.bwd ?? []) {
            const a = sw(x);
            const hw = mine.get(`${a}\0${rep}`);
            if (hw) moved.push([a, rep, hw]);
          }
        }
        for (const [a, b, hw] of moved) {
          const A = sw(a);
          const B = sw(b);
          const k2 = `${A}\0${B}`;
          let target = out.get(k2);
          if (!target) out.set(k2, (target = { ways: [], total: 0, allows: 0 }));
          // The ways not kept are counted as they are (a sig is never found twice for one hop).
          target.total += hw.total - hw.ways.length;
          if (hw.atLeast) target.atLeast = true;
          target.allows += hw.allows - hw.ways.filter((x) => x.allow).length;
          for (const way of hw.ways)
            addWay(target, cap, way.sig, way.allow, () =>
              lazyWay(way.sig, way.allow, () => {
                const ev = way.edge.evidence as QrexecEvidence;
                const evidence: QrexecEvidence = { ...ev, request: { ...ev.request, source: sw(ev.request.source), target: sw(ev.request.target ?? "@default") } };
                return { ...way.edge, from: A, to: B, evidence };
              }),
            );
        }
      }
    }
    return out;
  }

  /** Sweeps one caller over every call, keeping the ways to the wanted nodes (`all`: every node). */
  private collect(c: Caller, fwdTo: Set<string> | undefined, bwdFrom: Set<string> | undefined, out: Map<string, HopWays>, all: boolean, cap: number, bound = false, noAsk = false): void {
    const R = this.policy.rules.length + 1;
    const W = this.W;
    // The wanted destinations as node bits per direction, for any way and for asks (`null`: all); other
    // names (strays) by name. Bounded: a destination leaves `ask*` once cap + 1 ways to it are found (a
    // later ask comes after all of them), and `want*` once cap of them are allows too (nothing later can
    // be shown); its count of ways is then a lower bound.
    const bounded = bound && !all && cap !== Infinity;
    const bitsOf = (xs: Set<string> | undefined) => {
      const b = new Uint32Array(W);
      for (const x of xs ?? []) {
        const id = this.ids.get(x);
        if (id !== undefined) put(b, id);
      }
      return b;
    };
    const wantF = bitsOf(fwdTo);
    const wantB = bitsOf(bwdFrom);
    const askF = wantF.slice();
    const askB = wantB.slice();
    const wayN = bounded ? [new Int32Array(this.nodes.length), new Int32Array(this.nodes.length)] : null;
    const allowN = bounded ? [new Int32Array(this.nodes.length), new Int32Array(this.nodes.length)] : null;
    const strayF = [...(fwdTo ?? [])].some((x) => !this.ids.has(x));
    const strayB = [...(bwdFrom ?? [])].some((x) => !this.ids.has(x));
    const wantBits: Uint32Array | null = all ? null : new Uint32Array(W);
    const askBits: Uint32Array | null = all ? null : new Uint32Array(W);
    const any = (b: Uint32Array) => {
      for (let w = 0; w < W; w++) if (b[w]) return true;
      return false;
    };
    /** Whether a way of `dir` (0 forward, 1 back) to `dest` is still wanted. */
    const wanted = (dir: 0 | 1, dest: string, ask: boolean) => {
      if (all) return true;
      const id = this.ids.get(dest);
      if (id === undefined) return (dir === 0 ? fwdTo : bwdFrom)?.has(dest) ?? false;
      return has(dir === 0 ? (ask ? askF : wantF) : ask ? askB : wantB, id);
    };
    /** Counts a way found to node `id` (bounded search only). */
    const found1 = (dir: 0 | 1, id: number, allow: boolean) => {
      wayN![dir]![id]!++;
      if (allow) allowN![dir]![id]!++;
    };
    /**
     * After a rule's ways (all of one call and rule, so ahead of every later way of this caller): drops
     * the destinations of `h` (direction `dir`, node `id`) from the wanted sets when it may.
     */
    const settle = (dir: 0 | 1, id: number, h: HopWays) => {
      if (wayN![dir]![id]! <= cap) return;
      h.atLeast = true;
      const m = ~(1 << (id & 31));
      (dir === 0 ? askF : askB)[id >>> 5]! &= m;
      if (allowN![dir]![id]! >= cap) (dir === 0 ? wantF : wantB)[id >>> 5]! &= m;
    };
    // The calls that grant anything are the same for every qube of a class (swapped).
    const rep = this.repOf.get(c.node);
    const useful = this.useful.get(c) ?? (rep !== undefined ? this.useful.get(this.callerOf.get(rep)!) : undefined);
    for (let ki = 0; ki < this.calls.length; ki++) {
      const k = this.calls[ki]!;
      if (useful && !useful[ki]) continue;
      const fwd = k.fwd && (all || (!!fwdTo && (!bounded || strayF || any(wantF))));
      const bwd = k.bwd && (all || (!!bwdFrom && (!bounded || strayB || any(wantB))));
      if (!fwd && !bwd) {
        if (bounded && !strayF && !strayB && !any(wantF) && !any(wantB)) break;
        continue;
      }
      let asks = !noAsk;
      if (wantBits && askBits) {
        for (let w = 0; w < W; w++) {
          wantBits[w] = (fwd ? wantF[w]! : 0) | (bwd ? wantB[w]! : 0);
          askBits[w] = (fwd ? askF[w]! : 0) | (bwd ? askB[w]! : 0);
        }
        // No ask can add a way shown: its offer is not computed.
        asks &&= (fwd && strayF) || (bwd && strayB) || any(askBits);
      }
      this.sweep(c, k, (r, N) => {
        // Per (control, destination): the request that shows it best (one naming it, else @default).
        let found: Map<string, { t: number; score: number; dest: string; control: boolean }> | undefined;
        const isAsk = r.action === "ask";
        const add = (t: number, rawDest: string, control: boolean) => {
          const dest = nodeName(rawDest);
          if (dest === c.node || this.synNames.has(dest)) return;
          if (!(fwd && wanted(0, dest, isAsk)) && !(bwd && wanted(1, dest, isAsk))) return;
          const text = this.targetText[t]!;
          const score = text === rawDest ? 0 : text === "@default" ? 1 : 2;
          const key = `${control ? 1 : 0}\0${dest}`;
          found ??= new Map();
          const had = found.get(key);
          if (!had || score < had.score) found.set(key, { t, score, dest, control });
        };
        const first = this.firstTarget(N);
        const dflt = this.K;
        /** The request that best shows a way to `dest`: the target naming it, else @default, else the first. */
        const sample = (dest: string) => {
          const i = this.ids.get(dest);
          return i !== undefined && i < this.K && has(N, i) ? i : has(N, dflt) ? dflt : first;
        };
        if (r.action === "ask") {
          if (!asks) return;
          const offer = this.askDecision(c, k, r);
          if (!offer) return;
          if (askBits === null) for (const x of offer) add(sample(x), x, false);
          else {
            // Only the wanted nodes of the offer (as bits), and any name outside the nodes.
            const o = this.offer(offer);
            for (let w = 0; w < this.W; w++) {
              let x = o.bits[w]! & askBits[w]!;
              while (x) {
                const name = this.nodes[w * 32 + (31 - Math.clz32(x & -x))]!;
                add(sample(name), name, false);
                x &= x - 1;
              }
            }
            for (const x of o.strays) add(sample(x), x, false);
          }
        } else {
          // Plain services reach the target the call runs in; control services that target and the qube
          // the request names (without `target=`, the same qube).
          const fixed = r.redirect ? this.redirectDecision(c, k, r, N) : null;
          if (r.redirect && fixed === null) return;
          const one = (t: number) => {
            const to = r.redirect ? fixed : this.allowTarget(c, r, t);
            if (to === null) return;
            const isQube = has(this.qubeMask, t);
            if (k.plain || !isQube) add(t, to, false);
            if (k.control && isQube && (!k.plain || this.targetText[t] !== to)) add(t, this.targetText[t]!, true);
          };
          if (r.redirect) {
            // Every request goes to the one target: a plain way to it (for control services, from a
            // request naming no qube where there is one) with its best sample, and control ways to the
            // wanted qubes named.
            if (k.plain) add(sample(fixed!), fixed!, false);
            else {
              const nonQube = this.targetOrder(N).filter((t) => !has(this.qubeMask, t));
              const i = this.ids.get(fixed!);
              if (nonQube.length) add(i !== undefined && nonQube.includes(i) ? i : nonQube[0]!, fixed!, false);
              else add(sample(fixed!), fixed!, false);
            }
            if (k.control) for (const t of this.targetOrder(N, wantBits)) if (has(this.qubeMask, t) && (!k.plain || this.targetText[t] !== fixed)) add(t, this.targetText[t]!, true);
          } else for (const t of this.targetOrder(N, wantBits)) one(t);
        }
        if (!found) return;
        const touched: [0 | 1, number, HopWays][] | null = bounded ? [] : null;
        for (const f of found.values()) {
          const allow = r.action === "allow";
          const sig0 = ((ki * R + r.index) * 2 + (f.control ? 1 : 0)) * 2;
          const t = f.t;
          const control = f.control;
          // The evidence is made only for the ways a hop shows (most are only counted).
          const evidenceOf = (reverse: boolean): QrexecEvidence => ({
            kind: "qrexec",
            service: k.display,
            argument: k.argDisplay,
            call: k.text,
            request: { service: k.service, argument: k.argument, source: c.source, target: this.targetText[t]! },
            action: r.action as "allow" | "ask",
            rule: { file: r.origin.file, line: r.origin.line },
            direction: k.direction,
            control,
            reverse,
            note: control && k.display === "*" ? "every service no rule names (`*` rules), Admin API calls among them: the caller manages the qube it names" : k.note,
            ...(c.disposable !== undefined ? { disposable: c.disposable } : {}),
          });
          const keep = (from: string, to: string, reverse: boolean) => {
            const key = `${from}\0${to}`;
            let h = out.get(key);
            if (!h) out.set(key, (h = { ways: [], total: 0, allows: 0 }));
            const sig = sig0 + (reverse ? 1 : 0);
            addWay(h, cap, sig, allow, () => lazyWay(sig, allow, () => ({ from, to, via: "qrexec", ask: !allow, evidence: evidenceOf(reverse) })));
            return h;
          };
          const id = bounded ? this.ids.get(f.dest) : undefined;
          if (fwd && wanted(0, f.dest, !allow)) {
            const h = keep(c.node, f.dest, false);
            if (id !== undefined) {
              found1(0, id, allow);
              touched!.push([0, id, h]);
            }
          }
          if (bwd && wanted(1, f.dest, !allow)) {
            const h = keep(f.dest, c.node, true);
            if (id !== undefined) {
              found1(1, id, allow);
              touched!.push([1, id, h]);
            }
          }
        }
        if (touched) for (const [dir, id, h] of touched) settle(dir, id, h);
      });
    }
  }

  /** The targets of `N`: the specials first, then by id (only the wanted ones among the nodes, when given). */
  private targetOrder(N: Uint32Array, want: Uint32Array | null = null): number[] {
    const out: number[] = [];
    for (let i = this.K; i < this.K + 3; i++) if (has(N, i)) out.push(i);
    for (let w = 0; w < this.W; w++) {
      let x = want === null ? N[w]! : N[w]! & want[w]!;
      while (x) {
        const b = 31 - Math.clz32(x & -x);
        const i = w * 32 + b;
        if (i < this.K) out.push(i);
        x &= x - 1;
      }
    }
    return out;
  }
}

/** The qrexec part of the flow graph of `policy` on `system` (see the module comment). Never throws. */
export function qrexecFlow(policy: CompiledPolicy, system: SystemInfo, options: QrexecFlowOptions): QrexecFlow {
  return new QrexecFlow(policy, system, options);
}
