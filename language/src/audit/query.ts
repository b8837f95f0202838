/**
 * Who-can queries and decision tables: every answer is a decision of
 * {@link evaluate} over the request space of a system (see `space.ts`).
 */
import { evaluate } from "../eval/evaluate.js";
import { execRefusal } from "../eval/exec.js";
import type { Decision, PolicyRequest, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy } from "../loader/types.js";
import { requestSpace } from "./space.js";
import { validateServiceArgument } from "../syntax/rule.js";
import { closest } from "../services/util.js";
import { decisionGrid, gridDecision, type DecisionGrid } from "../services/simulate.js";

/** One decided request of a query. */
export interface QueryRow {
  /** As shown: `*` for the services (arguments) no rule names. */
  service: string;
  argument: string;
  source: string;
  target: string;
  request: PolicyRequest;
  decision: Decision;
}

/**
 * Is a decision a refusal: a deny rule, the engine's refusal, or an allow
 * the daemon refuses to run (a call from a qube to itself: "loopback qrexec
 * connection not supported", and the caller is answered `result=deny`)?
 */
export function isDenied(d: Decision): boolean {
  return !d.ok || d.action === "deny" || execRefusal(d) !== undefined;
}

/**
 * Every source that calls `service` with `argument` on each target (all
 * targets of the space, or only `target`), decided. Never throws.
 */
export function whoCan(policy: CompiledPolicy, system: SystemInfo, query: { service: string; argument?: string; target?: string }): QueryRow[] {
  const space = requestSpace([policy], system);
  const argument = query.argument ?? "+";
  const targets = query.target !== undefined ? [query.target] : space.targets;
  const rows: QueryRow[] = [];
  for (const target of targets) {
    for (const source of space.qubes) {
      const request: PolicyRequest = { service: query.service, argument, source, target };
      rows.push({ service: query.service, argument, source, target, request, decision: evaluate(policy, request, system) });
    }
  }
  return rows;
}

/**
 * Everything `source` can call: every service and argument of the space
 * (those the rules name, plus `*` for all others) on every target, decided.
 */
export function whatCan(policy: CompiledPolicy, system: SystemInfo, source: string): QueryRow[] {
  const space = requestSpace([policy], system);
  const rows: QueryRow[] = [];
  for (const s of space.services) {
    for (const a of s.arguments) {
      for (const target of space.targets) {
        const request: PolicyRequest = { service: s.service, argument: a.argument, source, target };
        rows.push({ service: s.display, argument: a.display, source, target, request, decision: evaluate(policy, request, system) });
      }
    }
  }
  return rows;
}

/**
 * The rows of {@link whoCan}, in its order and with its decisions, decided
 * as one decision grid (`decisionGrid`: each distinct decision once, a
 * number per cell) and made one at a time as they are read. Memory is the
 * grid's (four bytes a cell), not the rows': a 2,000-qube system's every
 * source × every target is 16 MB, where the rows as objects did not fit in
 * the heap. Iterable again without deciding again. Decisions are shared
 * between rows: do not modify them.
 */
export function whoCanRows(policy: CompiledPolicy, system: SystemInfo, query: { service: string; argument?: string; target?: string }): Iterable<QueryRow> {
  const argument = query.argument ?? "+";
  let grid: DecisionGrid | undefined;
  return {
    *[Symbol.iterator]() {
      if (!grid) {
        const space = requestSpace([policy], system);
        grid = decisionGrid(policy, query.service, argument, system, { sources: space.qubes, targets: query.target !== undefined ? [query.target] : space.targets });
      }
      const g = grid;
      for (let j = 0; j < g.targets.length; j++) {
        const target = g.targets[j]!;
        // A decision that names its column is copied per cell by `gridDecision`: once per column here.
        const column = new Map<number, Decision>();
        for (let i = 0; i < g.sources.length; i++) {
          const k = g.cells[i]![j]!;
          let decision = column.get(k);
          if (decision === undefined) column.set(k, (decision = gridDecision(g, i, j)));
          const source = g.sources[i]!;
          yield { service: query.service, argument, source, target, request: { service: query.service, argument, source, target }, decision };
        }
      }
    },
  };
}

/**
 * The rows of {@link whatCan}, in its order and with its decisions, a
 * decision grid of one row per service and argument (see {@link whoCanRows}).
 * Iterable again without deciding again.
 */
export function whatCanRows(policy: CompiledPolicy, system: SystemInfo, source: string): Iterable<QueryRow> {
  const space = requestSpace([policy], system);
  const grids = new Map<string, DecisionGrid>();
  return {
    *[Symbol.iterator]() {
      for (const s of space.services) {
        for (const a of s.arguments) {
          const key = s.service + "\0" + a.argument;
          let g = grids.get(key);
          if (!g) grids.set(key, (g = decisionGrid(policy, s.service, a.argument, system, { sources: [source], targets: space.targets })));
          for (let j = 0; j < g.targets.length; j++) {
            const target = g.targets[j]!;
            yield { service: s.display, argument: a.display, source, target, request: { service: s.service, argument: a.argument, source, target }, decision: gridDecision(g, 0, j) };
          }
        }
      }
    },
  };
}

/** A decision matrix (the table of `qkit policy table`): rows are sources, columns targets. */
export interface DecisionMatrix {
  service: string;
  argument: string;
  sources: string[];
  targets: string[];
  /** `cells[i][j]`: the decision for `sources[i]` → `targets[j]`. */
  cells: Decision[][];
}

/** The decision table of one service and argument over the sources and targets of the space. */
export function decisionMatrix(policy: CompiledPolicy, system: SystemInfo, service: string, argument = "+", options: { targets?: string[]; sources?: string[] } = {}): DecisionMatrix {
  const space = requestSpace([policy], system);
  const sources = options.sources ?? space.qubes;
  const targets = options.targets ?? space.targets;
  const cells = sources.map((source) => targets.map((target) => evaluate(policy, { service, argument, source, target }, system)));
  return { service, argument, sources, targets, cells };
}

/**
 * A short cell text: `allow`, `allow→X` (when the resolved target is not
 * the requested one), `ask`, `ask:X` (with default target X), `deny`.
 */
export function cellText(d: Decision, target: string): string {
  if (isDenied(d)) return "deny";
  if (d.ok && d.action === "allow") return d.target === target ? "allow" : `allow→${d.target}`;
  if (d.ok && d.action === "ask") return d.defaultTarget ? `ask:${d.defaultTarget}` : "ask";
  return "deny";
}

/**
 * Why a query's call is not one call the daemon could receive, in the
 * engine's wording (`service 'qu bes' contains invalid characters: (' ',)`),
 * or undefined. `argument` is `+` or `+ARG`.
 */
export function queryCallProblem(service: string, argument: string): string | undefined {
  if (service === "" || service === "*") return `a query names one service, not ${service === "" ? "an empty one" : "`*`"}`;
  const span = { start: 0, end: 0 };
  const r = validateServiceArgument(service, argument === "+" ? "*" : argument, span, span);
  if ("code" in r) return `${r.message}${r.help ? `; ${r.help}` : ""}`;
  return undefined;
}

const namedServices = new WeakMap<CompiledPolicy, Set<string>>();

/**
 * A service no rule of the policy names while one it names is a letter or
 * two away (a misspelling: only \`*\` rules decide it, so an answer about it
 * is an answer about another call than meant), said with the names it is
 * close to; undefined otherwise (a service with rules, or a name close to
 * none: a real service the policy leaves to its \`*\` rules).
 */
export function serviceNameProblem(policy: CompiledPolicy, service: string): string | undefined {
  let named = namedServices.get(policy);
  if (!named) {
    named = new Set(policy.rules.map((r) => r.service).filter((s): s is string => s !== null));
    namedServices.set(policy, named);
  }
  if (named.has(service)) return undefined;
  const near = closest(service, named, 3);
  if (near.length === 0) return undefined;
  return `service \`${service}\` is named by no rule of the policy (only \`*\` rules decide it); did you mean ${near.map((x) => `\`${x}\``).join(" or ")}?`;
}

/**
 * Why `name` is not a source (`what: "source"`) or an intended target
 * (`"target"`) of the request space, with a "did you mean", or undefined.
 * Targets are the qube names, `@default`, `@adminvm`, `@dispvm` and
 * `@dispvm:X` for each disposable template.
 */
export function queryNameProblem(policy: CompiledPolicy, system: SystemInfo, name: string, what: "source" | "target"): string | undefined {
  const space = requestSpace([policy], system);
  const valid = what === "source" ? space.qubes : space.targets;
  if (valid.includes(name)) return undefined;
  if (name === "") return what === "target" ? "an empty target is `@default`: write `@default`" : "an empty source is not a qube";
  const near = closest(name, valid, 3);
  const hint = near.length ? `; did you mean ${near.map((x) => `\`${x}\``).join(" or ")}?` : "";
  if (what === "target" && name.startsWith("@")) {
    return `\`${name}\` is not a target of the system model (qube names, @default, @adminvm, @dispvm, or @dispvm:X for a disposable template)${hint}`;
  }
  return `\`${name}\` is not a qube of the system model${hint}`;
}
