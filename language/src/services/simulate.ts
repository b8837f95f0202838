/**
 * Simulation for editors: decide a request, explain it, list what the
 * system model knows, and build a service's decision table.
 */
import { evaluate, explain } from "../eval/evaluate.js";
import type { Decision, Explanation, PolicyRequest, SystemInfo } from "../eval/types.js";
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

/** One cell of a decision table. */
export interface DecisionCell {
  /** `error` when the engine refuses without a rule (or the policy does not load). */
  action: "allow" | "deny" | "ask" | "error";
  /** The resolved target of an allow, or the targets offered by an ask. */
  target?: string;
  targets?: string[];
  /** The deciding rule. */
  rule?: { file: string; line: number | null; path?: string };
  /** The refusal message of a deny or an error. */
  message?: string;
}

/** A service's decisions for every source × target. */
export interface DecisionTable {
  service: string;
  argument: string;
  sources: string[];
  targets: string[];
  /** `cells[i][j]`: source `sources[i]` calling target `targets[j]`. */
  cells: DecisionCell[][];
}

/** Options of {@link decisionTable}. */
export interface DecisionTableOptions {
  /** Sources (default: every qube of the system model). */
  sources?: string[];
  /** Targets (default: every qube plus `@default` and `@dispvm`). */
  targets?: string[];
}

/** Builds the decision table of a service (argument default `+`). Never throws. */
export function decisionTable(snapshot: PolicySnapshot, service: string, argument: string | undefined, system: SystemInfo, options: DecisionTableOptions = {}): DecisionTable {
  const qubes = systemQubes(system);
  const sources = options.sources ?? qubes;
  const targets = options.targets ?? [...qubes, "@default", "@dispvm"];
  const arg = argument ?? "+";
  const pathOf = new Map<string, string>();
  for (const [p, f] of snapshot.files) if (!pathOf.has(f.file)) pathOf.set(f.file, p);
  const cells = sources.map((source) =>
    targets.map((target): DecisionCell => {
      const d = evaluateRequest(snapshot, { service, argument: arg, source, target: target === "@default" ? "" : target }, system);
      const rule = "rule" in d && d.rule ? { file: d.rule.file, line: d.rule.line, ...(pathOf.has(d.rule.file) ? { path: pathOf.get(d.rule.file)! } : {}) } : undefined;
      if (!d.ok) return { action: "error", message: d.message, ...(rule ? { rule } : {}) };
      if (d.action === "allow") return { action: "allow", target: d.target, ...(rule ? { rule } : {}) };
      if (d.action === "ask") return { action: "ask", targets: d.targetsForAsk, ...(d.defaultTarget ? { target: d.defaultTarget } : {}), ...(rule ? { rule } : {}) };
      return { action: "deny", message: d.message, ...(rule ? { rule } : {}) };
    }),
  );
  return { service, argument: arg, sources, targets, cells };
}
