/**
 * Simulation for editors: decide a request, explain it, list what the
 * system model knows, and build a service's decision table.
 */
import { decisionToJson } from "../conformance.js";
import { askListTargets } from "../eval/ask.js";
import { denyMessage } from "../eval/decide.js";
import { evaluate, explain } from "../eval/evaluate.js";
import { utf8Decode } from "../eval/utf8.js";
import { scanDecide, type ScanDecision } from "../eval/fast.js";
import type { Decision, ExecResult, Explanation, PolicyRequest, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy, PolicyRule } from "../loader/types.js";
import { dispvmTemplates, systemQubes, systemTags, systemTypes } from "./describe.js";
import type { PolicySnapshot } from "./workspace.js";

/** The refusal used when the policy does not load: the daemon then denies every call. */
function loadFailure(snapshot: PolicySnapshot): Decision {
  const err = snapshot.load.ok ? undefined : snapshot.load.error;
  return {
    ok: false,
    stage: "load",
    error: err?.error ?? "AccessDenied",
    message: err?.message ?? "the policy does not load",
    code: err?.code ?? "failed-to-load",
    ...(err?.file !== undefined ? { file: err.file } : {}),
    ...(err?.line !== undefined ? { line: err.line } : {}),
  };
}

function internalError(e: unknown): Decision {
  return { ok: false, stage: "evaluate", error: "EngineError", message: `internal error: ${String(e).split("\n")[0]}`, code: "internal-error" };
}

/** Decides a request against the snapshot's policy and a system model. Never throws. */
export function evaluateRequest(snapshot: PolicySnapshot, request: PolicyRequest, system: SystemInfo): Decision {
  if (!snapshot.policy) return loadFailure(snapshot);
  try {
    return evaluate(snapshot.policy, request, system);
  } catch (e) {
    return internalError(e);
  }
}

/** Decides a request and says why. Never throws. */
export function explainRequest(snapshot: PolicySnapshot, request: PolicyRequest, system: SystemInfo): Explanation {
  if (!snapshot.policy) return { decision: loadFailure(snapshot), request, trace: [], skipped: 0 };
  try {
    return explain(snapshot.policy, request, system);
  } catch (e) {
    return { decision: internalError(e), request, trace: [], skipped: 0 };
  }
}

/** What the system model holds, for pickers. */
export interface SystemModelSummary {
  qubes: Array<{ name: string; type: string | null; tags: string[]; label: string | null; powerState: string | null; templateForDispvms: boolean; defaultDispvm: string | null; internal: boolean }>;
  tags: string[];
  types: string[];
  dispvmTemplates: string[];
}

/** Summarises a system model. */
export function summarizeSystem(system: SystemInfo | null): SystemModelSummary {
  if (!system) return { qubes: [], tags: [], types: [], dispvmTemplates: [] };
  return {
    qubes: systemQubes(system).map((name) => {
      const i = system.domains.get(name)!;
      return {
        name,
        type: typeof i.type === "string" ? i.type : null,
        tags: Array.isArray(i.tags) ? [...i.tags] : [],
        label: typeof i.label === "string" ? i.label : null,
        powerState: typeof i.power_state === "string" ? i.power_state : null,
        templateForDispvms: i.template_for_dispvms === true,
        defaultDispvm: typeof i.default_dispvm === "string" ? i.default_dispvm : null,
        internal: Boolean(i.internal),
      };
    }),
    tags: systemTags(system),
    types: systemTypes(system),
    dispvmTemplates: dispvmTemplates(system),
  };
}

/** One cell of a decision table (the expanded form: see {@link expandDecisionTable}). */
export interface DecisionCell {
  /** `error` when the engine refuses without a rule (or the policy does not load). */
  action: "allow" | "deny" | "ask" | "error";
  /** The resolved target of an allow, or the default target of an ask. */
  target?: string;
  /** The targets offered by an ask. */
  targets?: string[];
  /** The deciding rule. */
  rule?: { file: string; line: number | null; path?: string };
  /** The refusal message of a deny or an error. */
  message?: string;
}

/** A service's decisions for every source × target, one cell object each (large: prefer {@link CompactDecisionTable}). */
export interface DecisionTable {
  service: string;
  argument: string;
  sources: string[];
  targets: string[];
  /** `cells[i][j]`: source `sources[i]` calling target `targets[j]`. */
  cells: DecisionCell[][];
}

/**
 * One kind of cell of a {@link CompactDecisionTable}: what the cells that
 * decide alike share. References are indices into the table's lists.
 */
export interface DecisionKind {
  action: "allow" | "deny" | "ask" | "error";
  /**
   * allow: the resolved target, absent when it is the cell's own column
   * (the call goes where it was asked to); ask: the preselected target.
   */
  target?: string;
  /** ask: the offered targets, `offers[offer]`. */
  offer?: number;
  /** The deciding rule, `rules[rule]`. */
  rule?: number;
  /** The refusal message of a deny or an error. */
  message?: string;
}

/**
 * A service's decision table, compact: every distinct offer list, deciding
 * rule and kind of cell once, and each cell the index of its kind. The
 * 300-qube table of an `ask` service is a few hundred kilobytes this way
 * (one object per cell with its offer list was hundreds of megabytes).
 * {@link expandDecisionTable} gives the one-object-per-cell form.
 */
export interface CompactDecisionTable {
  /** The shape's version: 2 (version 1 was {@link DecisionTable}). */
  version: 2;
  service: string;
  argument: string;
  sources: string[];
  targets: string[];
  /** The distinct lists of targets an ask offers, each sorted. */
  offers: string[][];
  /** The distinct deciding rules (`path`: the document's path, where the snapshot has it). */
  rules: Array<{ file: string; line: number | null; path?: string }>;
  /** The distinct kinds of cell. */
  kinds: DecisionKind[];
  /** `cells[i][j]`: the kind (index into `kinds`) of source `sources[i]` calling target `targets[j]`. */
  cells: number[][];
}

/** Options of {@link decisionTable}. */
export interface DecisionTableOptions {
  /** Sources (default: every qube of the system model). */
  sources?: string[];
  /** Targets (default: every qube plus `@default` and `@dispvm`). */
  targets?: string[];
}

/**
 * A service's decisions grouped into distinct decisions: the engine-level
 * form of a decision table, from which {@link CompactDecisionTable} and the
 * CLI's tables are made.
 */
export interface DecisionGrid {
  service: string;
  argument: string;
  sources: string[];
  targets: string[];
  /** The distinct offer lists (sorted, each the `targetsForAsk` of the asks that offer it: the same array). */
  offers: string[][];
  /** The distinct decisions; an ask's `targetsForAsk` is one of `offers` (shared: do not modify). */
  decisions: Decision[];
  /** Per decision: the index of its offer list (asks only), else -1. */
  offerOf: number[];
  /**
   * Per decision: true when its `intendedTarget` stands for the cell's
   * column (as requested: `@default` for the empty target), whichever that
   * is; {@link gridDecision} gives the decision of one cell.
   */
  relative: boolean[];
  /** `cells[i][j]`: the index into `decisions` of `sources[i]` calling `targets[j]`. */
  cells: Uint32Array[];
}

/** Options of {@link decisionGrid}. */
export interface DecisionGridOptions {
  /** Sources (default: every qube of the system model). */
  sources?: string[];
  /** Targets (default: every qube plus `@default` and `@dispvm`). */
  targets?: string[];
  /** The decision of every cell when there is no policy (it does not load). */
  loadFailure?: Decision;
}

/** What the decision of a request the scan decided depends on, as a key. */
function gridKey(s: ScanDecision, offer: number | undefined, source: string, column: string): string {
  // A refusal of the evaluation stage: as `run` words it (see `fast.ts`).
  if (s.error) return "e\0" + JSON.stringify(decisionToJson(s.error));
  const rule = s.rule;
  if (rule === null) return "n";
  const id = rule.origin.file + "\0" + rule.origin.line + "\0";
  // A deny's or an ask's decision reads the intended target only to name it: where that is the cell's column, the cells of every column share one.
  const intended = s.intended === column ? "\u0002" : s.intended;
  switch (rule.action) {
    case "deny":
      return "d\0" + id + intended;
    case "allow":
      // The daemon's answer reads the source only to compare it with the target.
      return "a\0" + id + s.intended + "\0" + s.target + "\0" + (source === s.target ? 1 : 0);
    case "ask":
      return "k\0" + id + intended + "\0" + offer + "\0" + (s.defaultTarget ?? "\u0001");
  }
}

/** The decision `run` makes for what the scan found (as `json.ts` writes it). */
function decisionOfScan(s: ScanDecision, offer: number | undefined, offers: string[][], execOf: (b: Uint8Array) => ExecResult): Decision {
  if (s.error) return s.error;
  const rule = s.rule;
  if (rule === null) return { ok: false, error: "AccessDenied", code: "no-matching-rule", message: "no matching rule found", stage: "match", notify: true };
  const ref = { file: rule.origin.file, line: rule.origin.line };
  switch (rule.action) {
    case "deny":
      return { ok: true, action: "deny", notify: rule.notify, rule: ref, message: denyMessage(rule), intendedTarget: s.intended };
    case "allow":
      return { ok: true, action: "allow", target: s.target!, user: rule.user, notify: rule.notify, autostart: rule.autostart, rule: ref, intendedTarget: s.intended, exec: execOf(s.exec!) };
    case "ask":
      return { ok: true, action: "ask", targetsForAsk: offers[offer!]!, defaultTarget: s.defaultTarget ?? null, user: rule.user, notify: rule.notify, autostart: rule.autostart, rule: ref, intendedTarget: s.intended };
  }
}

/**
 * Decides every source × target of one call, each distinct decision once:
 * cells that decide alike (the same rule, target, offer and answer) share
 * one decision, and equal offer lists one array. Every cell's decision is
 * exactly `evaluate`'s for its request (`@default` is asked as the empty
 * target); the ordinary path decides without building an offer list per
 * cell. Never throws.
 */
export function decisionGrid(policy: CompiledPolicy | null, service: string, argument: string, system: SystemInfo, options: DecisionGridOptions = {}): DecisionGrid {
  const b = decisionGridBuilder(policy, service, argument, system, options);
  while (b.next());
  return b.grid;
}

/** A {@link decisionGrid} decided a row at a time (a server yields between rows, and stops when cancelled). */
export interface DecisionGridBuilder {
  /** The grid so far: `cells` has a row per source decided. */
  readonly grid: DecisionGrid;
  /** Decides the next row; false when every row is decided. */
  next(): boolean;
}

/** Starts a {@link decisionGrid} to decide a row at a time. */
export function decisionGridBuilder(policy: CompiledPolicy | null, service: string, argument: string, system: SystemInfo, options: DecisionGridOptions = {}): DecisionGridBuilder {
  const qubes = systemQubes(system);
  const sources = options.sources ?? qubes;
  const targets = options.targets ?? [...qubes, "@default", "@dispvm"];
  const offers: string[][] = [];
  const offerByList = new Map<object, number>();
  const decisions: Decision[] = [];
  const offerOf: number[] = [];
  const relative: boolean[] = [];
  const byKey = new Map<string, number>();
  const info = system.domains;
  const offerByText = new Map<string, number>();
  const offerIndex = (list: string[]): number => {
    const text = list.join("\0");
    let i = offerByText.get(text);
    if (i === undefined) {
      offerByText.set(text, (i = offers.length));
      offers.push(list);
    }
    return i;
  };
  // A source's asks by one rule offer the same list on every target (the engine collects them over the rules that match but for the target):
  // the row's last list of the rule is compared item by item before the list is looked up by its text.
  let rowOffers = new Map<PolicyRule, number>();
  const sameList = (a: string[], b: string[]): boolean => {
    if (a.length !== b.length) return false;
    for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
    return true;
  };
  const offerKey = (s: ScanDecision): number => {
    if (s.askList) {
      let i = offerByList.get(s.askList);
      if (i === undefined) offerByList.set(s.askList, (i = offerIndex(askListTargets(s.askList, info))));
      return i;
    }
    const list = s.targets!;
    const last = rowOffers.get(s.rule!);
    if (last !== undefined && sameList(offers[last]!, list)) return last;
    const i = offerIndex(list);
    rowOffers.set(s.rule!, i);
    return i;
  };
  const execs = new Map<Uint8Array, ExecResult>();
  const execOf = (b: Uint8Array): ExecResult => {
    let e = execs.get(b);
    if (e === undefined) execs.set(b, (e = JSON.parse(utf8Decode(b, 0, b.length)) as ExecResult));
    return e;
  };
  /** `known`: the index of an ask's offer list, which is its `targetsForAsk` already. */
  const add = (d: Decision, known?: number, isRelative = false): number => {
    let offer = -1;
    if (d.ok && d.action === "ask") {
      offer = known ?? offerIndex(d.targetsForAsk);
      if (known === undefined) d = { ...d, targetsForAsk: offers[offer]! };
    }
    decisions.push(d);
    offerOf.push(offer);
    relative.push(isRelative);
    return decisions.length - 1;
  };
  const cells: Uint32Array[] = [];
  const grid: DecisionGrid = { service, argument, sources, targets, offers, decisions, offerOf, relative, cells };
  const next = (): boolean => {
    const i = cells.length;
    if (i >= sources.length) return false;
    const source = sources[i]!;
    if (rowOffers.size) rowOffers = new Map();
    const row = new Uint32Array(targets.length);
    for (let j = 0; j < targets.length; j++) {
      const target = targets[j]!;
      const request: PolicyRequest = { service, argument, source, target: target === "@default" ? "" : target };
      if (!policy) {
        row[j] = decisions.length ? 0 : add(options.loadFailure ?? { ok: false, stage: "load", error: "AccessDenied", message: "the policy does not load", code: "failed-to-load" });
        continue;
      }
      let key: string | null = null;
      let scanned: { decision: Decision; offer?: number; relative: boolean } | undefined;
      try {
        const s = scanDecide(policy, request, system);
        if (s !== null) {
          const offer = s.rule?.action === "ask" && !s.error ? offerKey(s) : undefined;
          key = gridKey(s, offer, source, target);
          if (!byKey.has(key)) scanned = { decision: decisionOfScan(s, offer, offers, execOf), ...(offer !== undefined ? { offer } : {}), relative: key.includes("\u0002") };
        }
      } catch {
        key = null;
      }
      let k = key === null ? undefined : byKey.get(key);
      if (k === undefined && key !== null) {
        k = add(scanned!.decision, scanned!.offer, scanned!.relative);
        byKey.set(key, k);
      }
      if (k === undefined) {
        let d: Decision;
        try {
          d = evaluate(policy, request, system);
        } catch (e) {
          d = internalError(e);
        }
        k = add(d);
        // Decided fully: alike decisions still share one entry.
        const text = JSON.stringify(decisionToJson(decisions[k]!)) + "\0" + offerOf[k];
        const seen = byKey.get(text);
        if (seen !== undefined) {
          decisions.pop();
          offerOf.pop();
          relative.pop();
          k = seen;
        } else byKey.set(text, k);
      }
      row[j] = k;
    }
    cells.push(row);
    return cells.length < sources.length;
  };
  return { grid, next };
}

/** The decision of source `i` calling target `j` of a grid: exactly `evaluate`'s (shared: do not modify). */
export function gridDecision(grid: DecisionGrid, i: number, j: number): Decision {
  const k = grid.cells[i]![j]!;
  const d = grid.decisions[k]!;
  const column = grid.targets[j]!;
  return grid.relative[k] && "intendedTarget" in d && d.intendedTarget !== column ? { ...d, intendedTarget: column } : d;
}

/** The compact table of a grid (`pathOf`: a rule file's document path). */
export function compactGrid(grid: DecisionGrid, pathOf: (file: string) => string | undefined = () => undefined): CompactDecisionTable {
  const rules: CompactDecisionTable["rules"] = [];
  const ruleIds = new Map<string, number>();
  const ruleOf = (r: { file: string; line: number | null }): number => {
    const key = `${r.file}\0${r.line}`;
    let i = ruleIds.get(key);
    if (i === undefined) {
      const path = pathOf(r.file);
      ruleIds.set(key, (i = rules.length));
      rules.push({ file: r.file, line: r.line, ...(path !== undefined ? { path } : {}) });
    }
    return i;
  };
  const kinds: DecisionKind[] = [];
  const kindIds = new Map<string, number>();
  const kindOf = (k: DecisionKind): number => {
    const key = `${k.action}\0${k.target ?? "\u0001"}\0${k.offer ?? -1}\0${k.rule ?? -1}\0${k.message ?? "\u0001"}`;
    let i = kindIds.get(key);
    if (i === undefined) {
      kindIds.set(key, (i = kinds.length));
      kinds.push(k);
    }
    return i;
  };
  // Per decision: its kind, or (allows to where they were asked) the kind of its column's and of any other column.
  const memo = new Map<number, number>();
  const cells = grid.cells.map((row) => {
    const out = new Array<number>(row.length);
    for (let j = 0; j < row.length; j++) {
      const di = row[j]!;
      const d = grid.decisions[di]!;
      const sameColumn = d.ok && d.action === "allow" && d.target === grid.targets[j];
      const mk = di * 2 + (sameColumn ? 1 : 0);
      let k = memo.get(mk);
      if (k === undefined) {
        const rule = "rule" in d && d.rule ? ruleOf(d.rule) : undefined;
        const r = rule !== undefined ? { rule } : {};
        let kind: DecisionKind;
        if (!d.ok) kind = { action: "error", message: d.message, ...r };
        else if (d.action === "allow") kind = { action: "allow", ...(sameColumn ? {} : { target: d.target }), ...r };
        else if (d.action === "ask") kind = { action: "ask", offer: grid.offerOf[di]!, ...(d.defaultTarget ? { target: d.defaultTarget } : {}), ...r };
        else kind = { action: "deny", message: d.message, ...r };
        memo.set(mk, (k = kindOf(kind)));
      }
      out[j] = k;
    }
    return out;
  });
  return { version: 2, service: grid.service, argument: grid.argument, sources: grid.sources, targets: grid.targets, offers: grid.offers, rules, kinds, cells };
}

/** The cell of source `i` calling target `j` of a compact table, expanded (a fresh object). */
export function compactCell<R>(table: { targets: string[]; offers: string[][]; rules: R[]; kinds: DecisionKind[]; cells: number[][] }, i: number, j: number): { action: DecisionKind["action"]; target?: string; targets?: string[]; rule?: R; message?: string } {
  const k = table.kinds[table.cells[i]![j]!]!;
  const cell: { action: DecisionKind["action"]; target?: string; targets?: string[]; rule?: R; message?: string } = { action: k.action };
  if (k.action === "allow") cell.target = k.target ?? table.targets[j]!;
  if (k.action === "ask") {
    cell.targets = table.offers[k.offer!]!;
    if (k.target !== undefined) cell.target = k.target;
  }
  if (k.rule !== undefined) cell.rule = table.rules[k.rule]!;
  if (k.message !== undefined) cell.message = k.message;
  return cell;
}

/** The one-object-per-cell form of a compact table (offer lists and rules shared, not copied). */
export function expandDecisionTable(table: CompactDecisionTable): DecisionTable {
  const cells = table.cells.map((row, i) => row.map((_, j) => compactCell(table, i, j) as DecisionCell));
  return { service: table.service, argument: table.argument, sources: table.sources, targets: table.targets, cells };
}

/** The paths of the snapshot's documents by rule file name (for {@link compactGrid}). */
export function snapshotRulePaths(snapshot: PolicySnapshot): (file: string) => string | undefined {
  const pathOf = new Map<string, string>();
  for (const [p, f] of snapshot.files) if (!pathOf.has(f.file)) pathOf.set(f.file, p);
  return (file) => pathOf.get(file);
}

/** Starts the decision table of a service on a snapshot, a row at a time (finish with {@link compactGrid}). */
export function snapshotGridBuilder(snapshot: PolicySnapshot, service: string, argument: string | undefined, system: SystemInfo, options: DecisionTableOptions = {}): DecisionGridBuilder {
  return decisionGridBuilder(snapshot.policy ?? null, service, argument ?? "+", system, { ...options, ...(snapshot.policy ? {} : { loadFailure: loadFailure(snapshot) }) });
}

/** Builds the compact decision table of a service (argument default `+`). Never throws. */
export function compactDecisionTable(snapshot: PolicySnapshot, service: string, argument: string | undefined, system: SystemInfo, options: DecisionTableOptions = {}): CompactDecisionTable {
  const b = snapshotGridBuilder(snapshot, service, argument, system, options);
  while (b.next());
  return compactGrid(b.grid, snapshotRulePaths(snapshot));
}

/** Builds the decision table of a service (argument default `+`), one object per cell. Never throws. */
export function decisionTable(snapshot: PolicySnapshot, service: string, argument: string | undefined, system: SystemInfo, options: DecisionTableOptions = {}): DecisionTable {
  return expandDecisionTable(compactDecisionTable(snapshot, service, argument, system, options));
}
