/**
 * The whole-policy analyses, per service and incremental: which earlier rule
 * shadows each rule, which rules feed `ask` prompts, and which `ask` rules can
 * offer no target.
 *
 * A rule of service `S` can only be shadowed by an earlier rule of `S` or of
 * `*`, so the shadowing of `S` is a function of the rules of `S` and `*` alone
 * (their arguments, sources and targets, in order). Each service keeps the
 * "shape" of that sequence from the last run; when it is unchanged, the result
 * is reused and only mapped onto the new rule objects (whose lines may have
 * moved). An edit therefore re-analyses only the services whose rules it
 * touches. The ask analyses are a linear pass over counters and are simply
 * recomputed.
 *
 * INVARIANT: the result equals a from-scratch analysis of the same rules (a
 * property test compares them after random edit sequences).
 */
import type { PolicyRule } from "../loader/types.js";
import type { LineNode, PolicyDocument, QubeToken } from "../syntax/tree.js";
import type { Span } from "../diagnostics.js";
import type { AnalysisDiagnostic, AnalysisOutputs } from "./analysis.js";
import { isDom0ish } from "./util.js";

/** The findings of {@link serviceFindings}, aligned with the rule list they were computed for. */
export interface ServiceFindings {
  /** For each rule: the earliest earlier rule that matches every call it matches, or `undefined`. */
  readonly shadowedBy: ReadonlyArray<PolicyRule | undefined>;
  /** For each rule: 1 when some `ask` rule without `target=` could collect targets from it. */
  readonly feedsAsk: Uint8Array;
  /** For each rule: 1 when it is an `ask` rule with target `@default`, no `target=`, and no rule could offer it a target. */
  readonly askWithoutTargets: Uint8Array;
  /** The services (`null` for `*`) whose shadowing was computed afresh in this run; the others were reused. */
  readonly recomputed: ReadonlyArray<string | null>;
}

/** What a run of rules of one file contributes to the per-service grouping, computed once per run. */
interface SegmentInfo {
  /** The shape id of each rule of the run. */
  shapes: Int32Array;
  /** The positions (in the run) of each service's rules; services in order of first appearance. */
  groups: Map<string | null, Int32Array>;
}

/** @internal The shadowed-rule warnings of one file, reused while their inputs are the same objects. */
export interface FileShadow {
  document: PolicyDocument;
  severity: string;
  /** For each rule of the file (in order): the rule that shadows it, and whether it feeds `ask` prompts. */
  by: Array<PolicyRule | undefined>;
  feeds: Uint8Array;
  /** The documents the broader rules' places were read from, by path. */
  byDocs: Map<string, PolicyDocument | undefined>;
  found: AnalysisDiagnostic[];
  /** The broader rule of each of `found`. */
  foundBy: PolicyRule[];
  /** The position in the file's rules (`by`) of each of `found`'s rule (its first copy's). */
  foundK?: number[];
  /** The positions in `found` by the path of the broader rule. */
  foundAt: Map<string, number[]>;
  /** The whole-list findings arrays and the file's runs of rules it was computed from. */
  shadowedBy: ReadonlyArray<PolicyRule | undefined>;
  feedsAsk: Uint8Array;
  runs: ReadonlyArray<readonly PolicyRule[]>;
}

interface ServiceEntry {
  /** Shape ids of the service's merged sequence (its rules and the `*` rules, in order). */
  ids: Int32Array;
  /** For each position of the sequence: the position of its earliest shadower, or -1. */
  shadow: Int32Array;
  /** For each position of a rule of the service: 1 when an `ask` rule of the sequence could collect targets from it. */
  feeds: Uint8Array;
  /** For each position of a rule of the service: 1 when it is an `ask` rule to `@default` that no rule of the sequence offers a target. */
  noTargets: Uint8Array;
  /** The service's own `ask` rules without `target=`, and its own rules that offer targets, by argument. */
  asks: ArgCounter;
  offers: ArgCounter;
}

/** An `ask` rule that only `@default` would target: it needs other rules to offer targets. */
function isAskWithoutTarget(r: PolicyRule): boolean {
  return r.action === "ask" && r.redirect === null && r.target.kind === "default";
}

/** A rule that adds targets to `ask` prompts of its calls. */
function offersTargets(r: PolicyRule): boolean {
  return r.action !== "deny" && (r.redirect ?? r.target).kind !== "default";
}

/** Analyses one service's merged sequence from scratch. */
function analyseSequence(seq: readonly PolicyRule[], service: string | null, ids: Int32Array): ServiceEntry {
  const asks = new ArgCounter();
  const offers = new ArgCounter();
  const seqAsks = new ArgCounter();
  const seqOffers = new ArgCounter();
  for (const r of seq) {
    const ask = r.action === "ask" && r.redirect === null;
    const offer = offersTargets(r);
    if (ask) seqAsks.add(r.argument);
    if (offer) seqOffers.add(r.argument);
    if (r.service === service) {
      if (ask) asks.add(r.argument);
      if (offer) offers.add(r.argument);
    }
  }
  const feeds = new Uint8Array(seq.length);
  const noTargets = new Uint8Array(seq.length);
  for (let k = 0; k < seq.length; k++) {
    const r = seq[k]!;
    if (r.service === null) continue;
    if (seqAsks.matches(r.argument)) feeds[k] = 1;
    if (isAskWithoutTarget(r) && !seqOffers.matches(r.argument)) noTargets[k] = 1;
  }
  return { ids, shadow: shadowPositions(seq), feeds, noTargets, asks, offers };
}

/**
 * What one run hands to the next: interned shapes and each service's last
 * sequence and result. Create one per policy and pass it to every run.
 */
export class ServiceAnalysisCache {
  /** @internal Interned token identities (`kind` and `text`), by token object (tokens are shared within a parse). */
  readonly tokenIds = new WeakMap<QubeToken, number>();
  /** @internal */
  readonly tokenNames = new Map<string, number>();
  /** @internal */
  readonly argIds = new Map<string, number>();
  /** @internal Shape ids by (source, target) then (argument, `*` service). */
  readonly shapeIds = new Map<number, Map<number, number>>();
  /** @internal */
  readonly entries = new Map<string | null, ServiceEntry>();
  /** @internal Shadowed-rule diagnostics by line (its parsed rule, which a moved line keeps, else its node), reused while the finding is unchanged (see `presentedFor` in `analysis.ts`). */
  readonly presented = new WeakMap<object, { byPath: string; byFile: string; byLine: number | null; bySpan: Span | undefined; feeds: boolean; d: AnalysisDiagnostic }>();
  /** @internal The last rule list and its findings (a second call with the same list is free). */
  last: { rules: readonly PolicyRule[]; findings: ServiceFindings; segments?: ReadonlyArray<readonly PolicyRule[]>; entriesVersion?: number } | undefined;
  /**
   * @internal Counts the changes of `entries`. `last.entriesVersion` is its value when `entries`
   * said exactly what `last.findings` were made from: a run dropped after changing some entries
   * leaves them apart, and {@link splicedFindings}, which trusts the entries of the services it
   * does not check, then is not used until a whole grouping has checked them all.
   */
  entriesVersion = 0;
  /** @internal Shapes and service groups of each run of rules of one file (see `FlatPolicy.segments`), by the run's array. */
  readonly segmentInfo = new WeakMap<readonly PolicyRule[], SegmentInfo>();
  /** @internal The services of each run of rules, with the arguments seen for each (see `workspace.ts`). */
  readonly segmentServices = new WeakMap<readonly PolicyRule[], Map<string, Set<string>>>();
  /** @internal The shadowed-rule warnings of each file and what they were computed from (see `analysis.ts`). */
  readonly shadowFiles = new Map<string, FileShadow>();
  /** @internal The services of a rule list, with their arguments (see `PolicySnapshot.services`), by the list. */
  readonly servicesByRules = new WeakMap<readonly PolicyRule[], Map<string, Set<string>>>();
  /** @internal What the last analysis run reported per path (see `runAnalysisSteps`). */
  outputs: AnalysisOutputs | undefined;

  /** @internal */
  tokenId(t: QubeToken): number {
    let id = this.tokenIds.get(t);
    if (id === undefined) {
      const name = `${t.kind}\u0001${t.text}`;
      id = this.tokenNames.get(name);
      if (id === undefined) this.tokenNames.set(name, (id = this.tokenNames.size));
      this.tokenIds.set(t, id);
    }
    return id;
  }

  /** @internal The shape of a rule as far as these analyses are concerned: `*` service or not, argument, source, target, action, kind of `target=`. */
  shapeOf(r: PolicyRule): number {
    const known = this.ruleShapes.get(r);
    if (known !== undefined) return known;
    let arg = 0;
    if (r.argument !== null) {
      const a = this.argIds.get(r.argument);
      if (a === undefined) this.argIds.set(r.argument, (arg = this.argIds.size + 1));
      else arg = a;
    }
    const outer = this.tokenId(r.source) * 1_048_576 + this.tokenId(r.target);
    let inner = this.shapeIds.get(outer);
    if (!inner) this.shapeIds.set(outer, (inner = new Map()));
    // `*` service or not, the action, and what `target=` is (none, `@default`, other): what the ask analyses look at.
    const action = r.action === "allow" ? 0 : r.action === "deny" ? 1 : 2;
    const redirect = r.redirect === null ? 0 : r.redirect.kind === "default" ? 1 : 2;
    const key = ((arg * 2 + (r.service === null ? 1 : 0)) * 3 + action) * 3 + redirect;
    let id = inner.get(key);
    if (id === undefined) inner.set(key, (id = this.shapeCount++));
    this.ruleShapes.set(r, id);
    return id;
  }

  /** Shapes of rule objects seen before (the loader reuses the rule objects of unchanged documents). */
  private readonly ruleShapes = new WeakMap<PolicyRule, number>();

  private shapeCount = 0;
}

/** True when token `a` matches every qube or keyword that token `b` matches, on every system. */
export function tokenCovers(a: QubeToken, b: QubeToken): boolean {
  if (a.kind === "wildcard") return true;
  if (isDom0ish(a.text) && isDom0ish(b.text)) return true;
  if (a.kind === b.kind && a.text === b.text) return true;
  if (a.kind === "anyvm") {
    switch (b.kind) {
      case "anyvm":
      case "default":
      case "dispvm":
      case "dispvm-template":
      case "dispvm-tag":
        return true;
      case "name":
        return !isDom0ish(b.text) && !b.text.startsWith("uuid:");
      default:
        return false;
    }
  }
  return false;
}

/** True when rule `a` matches every request rule `b` matches, on every system. */
export function ruleCovers(a: PolicyRule, b: PolicyRule): boolean {
  if (a.service !== null && a.service !== b.service) return false;
  if (a.argument !== null && a.argument !== b.argument) return false;
  return tokenCovers(a.source, b.source) && tokenCovers(a.target, b.target);
}

/** The index key of a token: keywords by kind, dom0's spellings as one, other tokens by text. */
function coverKey(t: QubeToken): string {
  if (t.kind === "wildcard") return "*";
  if (t.kind === "anyvm") return "@anyvm";
  return isDom0ish(t.text) ? "dom0" : t.text;
}

/**
 * For every position of `rules` (in first-match order), the position of the
 * earliest earlier rule that covers it, or -1. Only rules whose service,
 * argument, source and target keys could cover a rule are looked up (at most
 * 36 exact keys), so this is linear in the number of rules.
 */
export function shadowPositions(rules: readonly PolicyRule[]): Int32Array {
  const out = new Int32Array(rules.length).fill(-1);
  // The earliest rule for each service → argument → source key → target key.
  type BySrc = Map<string, Map<string, number>>;
  const first = new Map<string | null, Map<string | null, BySrc>>();
  let best = -1;
  let r: PolicyRule;
  let srcKey = "";
  let tgtKey = "";
  // Allocation-free probes: this runs for every rule of every re-analysed service.
  const probeTarget = (byTgt: Map<string, number>, key: string) => {
    const c = byTgt.get(key);
    if (c !== undefined && (best < 0 || c < best) && ruleCovers(rules[c]!, r)) best = c;
  };
  const probeSource = (bySrc: BySrc, key: string) => {
    const byTgt = bySrc.get(key);
    if (!byTgt) return;
    probeTarget(byTgt, "*");
    probeTarget(byTgt, "@anyvm");
    if (tgtKey !== "*" && tgtKey !== "@anyvm") probeTarget(byTgt, tgtKey);
  };
  const probeArgument = (byArg: Map<string | null, BySrc>, arg: string | null) => {
    const bySrc = byArg.get(arg);
    if (!bySrc) return;
    probeSource(bySrc, "*");
    probeSource(bySrc, "@anyvm");
    if (srcKey !== "*" && srcKey !== "@anyvm") probeSource(bySrc, srcKey);
  };
  const probeService = (svc: string | null) => {
    const byArg = first.get(svc);
    if (!byArg) return;
    probeArgument(byArg, null);
    if (r.argument !== null) probeArgument(byArg, r.argument);
  };
  for (let i = 0; i < rules.length; i++) {
    r = rules[i]!;
    srcKey = coverKey(r.source);
    tgtKey = coverKey(r.target);
    // `@dispvm:` sources never match a call, so nothing about them is reported.
    if (r.source.kind !== "dispvm-template" && r.source.kind !== "dispvm-tag") {
      best = -1;
      probeService(null);
      if (r.service !== null) probeService(r.service);
      out[i] = best;
    }
    let byArg = first.get(r.service);
    if (!byArg) first.set(r.service, (byArg = new Map()));
    let bySrc = byArg.get(r.argument);
    if (!bySrc) byArg.set(r.argument, (bySrc = new Map()));
    let byTgt = bySrc.get(srcKey);
    if (!byTgt) bySrc.set(srcKey, (byTgt = new Map()));
    if (!byTgt.has(tgtKey)) byTgt.set(tgtKey, i);
  }
  return out;
}

/** Counters of rules by argument (`null` = `*`), for the linear ask analyses. */
class ArgCounter {
  any = 0;
  wildcard = 0;
  readonly byArg = new Map<string, number>();
  add(arg: string | null): void {
    this.any++;
    if (arg === null) this.wildcard++;
    else this.byArg.set(arg, (this.byArg.get(arg) ?? 0) + 1);
  }
  /** Adds the counts of another counter. */
  merge(o: ArgCounter): void {
    this.any += o.any;
    this.wildcard += o.wildcard;
    for (const [k, v] of o.byArg) this.byArg.set(k, (this.byArg.get(k) ?? 0) + v);
  }
  /** True when some counted rule `o` has `o.argument` compatible with `arg` (either is `*`, or they are equal). */
  matches(arg: string | null): boolean {
    if (arg === null) return this.any > 0;
    return this.wildcard > 0 || (this.byArg.get(arg) ?? 0) > 0;
  }
}

/**
 * Rule positions looked at between two steps of {@link serviceFindingsSteps} (a few milliseconds:
 * a server answers requests in between). A re-analysed position counts as several.
 */
const GROUP_WORK = 16384;

/**
 * The per-service findings, as a sequence of steps: the generator yields
 * after each re-analysed service, so that a caller can spread the work over
 * time or drop it (cancellation) and start again with newer rules; the cache
 * keeps what finished services computed.
 */
export function* serviceFindingsSteps(
  rules: readonly PolicyRule[],
  cache: ServiceAnalysisCache,
  segments?: ReadonlyArray<readonly PolicyRule[]>,
): Generator<void, ServiceFindings, void> {
  if (cache.last?.rules === rules) return cache.last.findings;
  const n = rules.length;
  if (segments) {
    const last = cache.last;
    const layout = yield* sameLayoutFindings(rules, segments, cache);
    if (layout) {
      // The entries are as they were: as consistent with these findings as with the last ones.
      cache.last = { rules, findings: layout, segments, ...(last?.entriesVersion !== undefined ? { entriesVersion: last.entriesVersion } : {}) };
      return layout;
    }
    const spliced = last?.entriesVersion === cache.entriesVersion ? yield* splicedFindings(rules, segments, cache) : undefined;
    if (spliced) {
      cache.last = { rules, findings: spliced, segments, entriesVersion: cache.entriesVersion };
      return spliced;
    }
  }
  // 1. Group positions by service; the `*` rules go into every service's sequence. With the rules
  //    cut into runs of one file, each run is grouped once and unchanged runs cost a copy.
  const shapes = new Int32Array(n);
  let groups = new Map<string | null, number[]>();
  let wildcard: number[] = [];
  groups.set(null, wildcard);
  let grouped = false;
  if (segments) {
    let start = 0;
    // Rules looked at since the last step (a new run's shapes cost more than an old run's copy).
    let work = 0;
    for (const seg of segments) {
      if (work >= GROUP_WORK) {
        work = 0;
        yield;
      }
      let info = cache.segmentInfo.get(seg);
      if (!info) {
        cache.segmentInfo.set(seg, (info = segmentInfoOf(seg, cache)));
        // An edit that moved every later rule makes every later run new.
        work += 4 * seg.length;
      }
      work += seg.length;
      if (start + seg.length > n) break;
      shapes.set(info.shapes, start);
      for (const [service, at] of info.groups) {
        let g = groups.get(service);
        if (!g) groups.set(service, (g = []));
        for (let k = 0; k < at.length; k++) g.push(at[k]! + start);
      }
      start += seg.length;
    }
    // INVARIANT: the runs make up the list; if they did not, group rule by rule.
    grouped = start === n;
    if (!grouped) {
      groups = new Map([[null, (wildcard = [])]]);
    }
  }
  if (!grouped) {
    for (let i = 0; i < n; i++) {
      const r = rules[i]!;
      shapes[i] = cache.shapeOf(r);
      let g = groups.get(r.service);
      if (!g) groups.set(r.service, (g = []));
      g.push(i);
    }
  }
  yield;

  // 2. Per service, reused when the service's sequence has the same shapes: shadowing, and the
  //    ask analyses of its own rules (the `ask` rules and target offers of a service's calls come
  //    from the rules of that service and of `*`, exactly its sequence).
  const shadowedBy: Array<PolicyRule | undefined> = new Array(n).fill(undefined);
  const feedsAsk = new Uint8Array(n);
  const askWithoutTargets = new Uint8Array(n);
  const recomputed: Array<string | null> = [];
  for (const key of [...cache.entries.keys()]) if (!groups.has(key)) (cache.entries.delete(key), cache.entriesVersion++);
  // Positions looked at since the last step.
  let work = 0;
  const isWildcard = new Uint8Array(n);
  for (const i of wildcard) isWildcard[i] = 1;
  for (const [service, own] of groups) {
    // The merged sequence (positions in `rules`), in global order.
    const seq = service === null ? own : mergeSorted(wildcard, own);
    const ids = new Int32Array(seq.length);
    for (let k = 0; k < seq.length; k++) ids[k] = shapes[seq[k]!]!;
    const entry = entryOf(cache, service, seq, ids, rules, recomputed);
    for (let k = 0; k < seq.length; k++) {
      const i = seq[k]!;
      // A `*` rule's findings come from the `*` sequence (a rule of a service never covers a `*` rule).
      if (service !== null && isWildcard[i] === 1) continue;
      const p = entry.shadow[k]!;
      if (p >= 0) shadowedBy[i] = rules[seq[p]!];
      feedsAsk[i] = entry.feeds[k]!;
      askWithoutTargets[i] = entry.noTargets[k]!;
    }
    work += seq.length;
    if (recomputed[recomputed.length - 1] === service) work += 8 * seq.length;
    if (work >= GROUP_WORK) {
      work = 0;
      yield;
    }
  }
  // 3. The `*` rules take part in every service's calls: their ask findings look at every rule.
  if (wildcard.length) wildcardAskFindings(cache, rules, wildcard, feedsAsk, askWithoutTargets);
  const findings: ServiceFindings = { shadowedBy, feedsAsk, askWithoutTargets, recomputed };
  // Every service's entry was checked against this grouping.
  cache.last = segments && grouped ? { rules, findings, segments, entriesVersion: cache.entriesVersion } : { rules, findings, entriesVersion: cache.entriesVersion };
  return findings;
}

/**
 * The last findings, when the new runs have the same layout as the last ones: the same number of
 * runs, each the same array or one of the same length whose rules have the same shapes and
 * services (an edit that changed no rule's shape, such as a line inserted or a rule's comment
 * typed, which renumbers the lines of a file's later rules). Findings depend only on that layout,
 * so they are the same by position; only broader rules that now are other objects (in a changed
 * run) are looked up again. `undefined` when the layout differs.
 */
function* sameLayoutFindings(rules: readonly PolicyRule[], segments: ReadonlyArray<readonly PolicyRule[]>, cache: ServiceAnalysisCache): Generator<void, ServiceFindings | undefined, void> {
  const last = cache.last;
  const before = last?.segments;
  if (!last || !before || before.length !== segments.length || last.rules.length !== rules.length) return undefined;
  let start = 0;
  let changed = false;
  for (let k = 0; k < segments.length; k++) {
    const a = before[k]!;
    const b = segments[k]!;
    if (a.length !== b.length) return undefined;
    start += b.length;
    if (a === b) continue;
    const ia = cache.segmentInfo.get(a);
    if (!ia) return undefined;
    let ib = cache.segmentInfo.get(b);
    if (!ib) cache.segmentInfo.set(b, (ib = segmentInfoOf(b, cache)));
    if (!sameSegmentInfo(ia, ib)) return undefined;
    changed = true;
  }
  // INVARIANT: the runs make up the list.
  if (start !== rules.length) return undefined;
  const old = last.findings;
  if (!changed) return { ...old, recomputed: [] };
  let shadowedBy = old.shadowedBy;
  for (let i = 0; i < shadowedBy.length; i++) {
    if ((i & (GROUP_WORK - 1)) === GROUP_WORK - 1) yield;
    const s = shadowedBy[i];
    if (s === undefined) continue;
    // INVARIANT: a rule's index is its place in its list (else: the whole grouping).
    if (last.rules[s.index] !== s) return undefined;
    const now = rules[s.index];
    if (now === s) continue;
    if (now === undefined) return undefined;
    if (shadowedBy === old.shadowedBy) shadowedBy = shadowedBy.slice();
    (shadowedBy as Array<PolicyRule | undefined>)[i] = now;
  }
  return { shadowedBy, feedsAsk: old.feedsAsk, askWithoutTargets: old.askWithoutTargets, recomputed: [] };
}

/** Rules whose shape or service changed, at most, for {@link splicedFindings} (more: the whole grouping). */
const SPLICE_MAX = 64;

/**
 * The last findings with a few rules of one run added, removed or changed (a rule typed or broken in
 * the middle of a policy): the runs are the last ones but for one, and that one differs from its
 * former self in a few consecutive rules (by shape and service). Only the services of those rules
 * can decide otherwise; every other rule's findings are the last ones, moved by the change in
 * length. Those services' sequences are analysed again (or taken from the cache), and the `*`
 * rules' ask findings, which look at every service, are recomputed. `undefined` when the change is
 * of another kind (a `*` rule among the changed ones, several runs changed, many rules).
 */
function* splicedFindings(rules: readonly PolicyRule[], segments: ReadonlyArray<readonly PolicyRule[]>, cache: ServiceAnalysisCache): Generator<void, ServiceFindings | undefined, void> {
  const last = cache.last;
  const before = last?.segments;
  if (!last || !before) return undefined;
  const infoOf = (seg: readonly PolicyRule[]): SegmentInfo => {
    let info = cache.segmentInfo.get(seg);
    if (!info) cache.segmentInfo.set(seg, (info = segmentInfoOf(seg, cache)));
    return info;
  };
  const sameSeg = (a: readonly PolicyRule[], b: readonly PolicyRule[]): boolean => {
    if (a === b) return true;
    if (a.length !== b.length) return false;
    const ia = cache.segmentInfo.get(a);
    return ia !== undefined && sameSegmentInfo(ia, infoOf(b));
  };
  // The one run that differs: the runs before it and after it have the same layout.
  const min = Math.min(before.length, segments.length);
  let a = 0;
  while (a < min && sameSeg(before[a]!, segments[a]!)) a++;
  let b = 0;
  while (b < min - a && sameSeg(before[before.length - 1 - b]!, segments[segments.length - 1 - b]!)) b++;
  if (before.length - a - b !== 1 || segments.length - a - b !== 1) return undefined;
  const oldSeg = before[a]!;
  const newSeg = segments[a]!;
  const io = cache.segmentInfo.get(oldSeg);
  if (!io) return undefined;
  const inew = infoOf(newSeg);
  let start = 0;
  for (let k = 0; k < a; k++) start += segments[k]!.length;
  // The rules of that run that differ: the same shape and service before `p` and after `q` from the end.
  const lo = oldSeg.length;
  const ln = newSeg.length;
  let p = 0;
  while (p < lo && p < ln && io.shapes[p] === inew.shapes[p] && oldSeg[p]!.service === newSeg[p]!.service) p++;
  let q = 0;
  while (q < lo - p && q < ln - p && io.shapes[lo - 1 - q] === inew.shapes[ln - 1 - q] && oldSeg[lo - 1 - q]!.service === newSeg[ln - 1 - q]!.service) q++;
  if (lo - q - p + (ln - q - p) > SPLICE_MAX) return undefined;
  const involved = new Set<string | null>();
  for (let k = p; k < lo - q; k++) involved.add(oldSeg[k]!.service);
  for (let k = p; k < ln - q; k++) involved.add(newSeg[k]!.service);
  if (involved.has(null)) return undefined;
  const n = rules.length;
  const oldN = last.rules.length;
  const d = ln - lo;
  if (oldN + d !== n) return undefined;
  // Positions: before `from` the same; from `oldTo` (old) and `newTo` (new) on, moved by `d`.
  const from = start + p;
  const oldTo = start + lo - q;
  const newTo = start + ln - q;
  const old = last.findings;
  const oldRules = last.rules;
  const shadowedBy: Array<PolicyRule | undefined> = new Array(n);
  let lost = false;
  const moveRef = (s: PolicyRule | undefined): PolicyRule | undefined => {
    if (s === undefined) return undefined;
    const j = s.index;
    // INVARIANT: a rule's index is its place in its list (else: the whole grouping).
    if (oldRules[j] !== s) lost = true;
    // A broader rule among the changed ones is of an involved service: its rules are redone below.
    if (j >= from && j < oldTo) return undefined;
    return rules[j < from ? j : j + d];
  };
  for (let i = 0; i < from; i++) {
    if ((i & (GROUP_WORK - 1)) === GROUP_WORK - 1) yield;
    shadowedBy[i] = moveRef(old.shadowedBy[i]);
  }
  for (let i = newTo; i < n; i++) {
    if ((i & (GROUP_WORK - 1)) === GROUP_WORK - 1) yield;
    shadowedBy[i] = moveRef(old.shadowedBy[i - d]);
  }
  if (lost) return undefined;
  yield;
  const feedsAsk = new Uint8Array(n);
  const askWithoutTargets = new Uint8Array(n);
  feedsAsk.set(old.feedsAsk.subarray(0, from), 0);
  feedsAsk.set(old.feedsAsk.subarray(oldTo), newTo);
  askWithoutTargets.set(old.askWithoutTargets.subarray(0, from), 0);
  askWithoutTargets.set(old.askWithoutTargets.subarray(oldTo), newTo);
  // The `*` rules and each involved service's rules, with their shapes, in order.
  const wildPos: number[] = [];
  const wildIds: number[] = [];
  const own = new Map<string | null, { pos: number[]; ids: number[] }>();
  for (const s of involved) own.set(s, { pos: [], ids: [] });
  let at = 0;
  for (const seg of segments) {
    const info = infoOf(seg);
    const w = info.groups.get(null);
    if (w) for (let k = 0; k < w.length; k++) (wildPos.push(at + w[k]!), wildIds.push(info.shapes[w[k]!]!));
    for (const [s, list] of own) {
      const g = info.groups.get(s);
      if (g) for (let k = 0; k < g.length; k++) (list.pos.push(at + g[k]!), list.ids.push(info.shapes[g[k]!]!));
    }
    at += seg.length;
  }
  if (at !== n) return undefined;
  const recomputed: Array<string | null> = [];
  for (const [service, list] of own) {
    yield;
    if (!list.pos.length) {
      if (cache.entries.delete(service)) cache.entriesVersion++;
      continue;
    }
    // The merged sequence, as the full grouping makes it.
    const m = wildPos.length + list.pos.length;
    const seq: number[] = new Array(m);
    const ids = new Int32Array(m);
    let x = 0;
    let y = 0;
    for (let k = 0; k < m; k++) {
      if (y >= list.pos.length || (x < wildPos.length && wildPos[x]! < list.pos[y]!)) (seq[k] = wildPos[x]!), (ids[k] = wildIds[x++]!);
      else (seq[k] = list.pos[y]!), (ids[k] = list.ids[y++]!);
    }
    const entry = entryOf(cache, service, seq, ids, rules, recomputed);
    // Every rule of the service is written (a `*` rule's findings come from the `*` sequence).
    x = 0;
    for (let k = 0; k < m; k++) {
      const i = seq[k]!;
      if (x < wildPos.length && wildPos[x] === i) {
        x++;
        continue;
      }
      const sp = entry.shadow[k]!;
      shadowedBy[i] = sp >= 0 ? rules[seq[sp]!] : undefined;
      feedsAsk[i] = entry.feeds[k]!;
      askWithoutTargets[i] = entry.noTargets[k]!;
    }
  }
  if (wildPos.length) {
    yield;
    wildcardAskFindings(cache, rules, wildPos, feedsAsk, askWithoutTargets);
  }
  return { shadowedBy, feedsAsk, askWithoutTargets, recomputed };
}

/** A service's cached analysis when its sequence has the same shapes, else analysed again (and listed in `recomputed`). */
function entryOf(cache: ServiceAnalysisCache, service: string | null, seq: readonly number[], ids: Int32Array, rules: readonly PolicyRule[], recomputed: Array<string | null>): ServiceEntry {
  let entry = cache.entries.get(service);
  if (!entry || !sameIds(entry.ids, ids)) {
    entry = analyseSequence(seq.map((i) => rules[i]!), service, ids);
    cache.entries.set(service, entry);
    cache.entriesVersion++;
    recomputed.push(service);
  }
  return entry;
}

/** The `*` rules take part in every service's calls: their ask findings look at every service's entry. */
function wildcardAskFindings(cache: ServiceAnalysisCache, rules: readonly PolicyRule[], wildcard: readonly number[], feedsAsk: Uint8Array, askWithoutTargets: Uint8Array): void {
  const allAsks = new ArgCounter();
  const allOffers = new ArgCounter();
  for (const e of cache.entries.values()) {
    allAsks.merge(e.asks);
    allOffers.merge(e.offers);
  }
  for (const i of wildcard) {
    const r = rules[i]!;
    feedsAsk[i] = allAsks.matches(r.argument) ? 1 : 0;
    // Such a rule never offers a target itself, so "another rule" is any counted rule.
    askWithoutTargets[i] = isAskWithoutTarget(r) && !allOffers.matches(r.argument) ? 1 : 0;
  }
}

function sameSegmentInfo(a: SegmentInfo, b: SegmentInfo): boolean {
  if (a === b) return true;
  if (!sameIds(a.shapes, b.shapes) || a.groups.size !== b.groups.size) return false;
  for (const [service, at] of a.groups) {
    const other = b.groups.get(service);
    if (!other || !sameIds(at, other)) return false;
  }
  return true;
}

/** Shapes and per-service positions of one run of rules. */
function segmentInfoOf(seg: readonly PolicyRule[], cache: ServiceAnalysisCache): SegmentInfo {
  const shapes = new Int32Array(seg.length);
  const lists = new Map<string | null, number[]>();
  for (let k = 0; k < seg.length; k++) {
    const r = seg[k]!;
    shapes[k] = cache.shapeOf(r);
    let g = lists.get(r.service);
    if (!g) lists.set(r.service, (g = []));
    g.push(k);
  }
  const groups = new Map<string | null, Int32Array>();
  for (const [service, at] of lists) groups.set(service, Int32Array.from(at));
  return { shapes, groups };
}

/** Runs {@link serviceFindingsSteps} to the end. Without a cache, everything is computed from scratch. */
export function serviceFindings(rules: readonly PolicyRule[], cache: ServiceAnalysisCache = new ServiceAnalysisCache(), segments?: ReadonlyArray<readonly PolicyRule[]>): ServiceFindings {
  const steps = serviceFindingsSteps(rules, cache, segments);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

function mergeSorted(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = new Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i]! < b[j]! ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

function sameIds(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
