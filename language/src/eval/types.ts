/**
 * The system model and the request/decision types of the evaluator.
 */
import type { PolicyError, PolicyRule } from "../loader/types.js";

/** One qube as qubesd's `internal.GetSystemInfo` describes it. Keys may be missing on purpose. */
export interface DomainInfo {
  type?: string;
  tags?: string[];
  template_for_dispvms?: boolean;
  default_dispvm?: string | null;
  power_state?: string;
  uuid?: string;
  internal?: string | null;
  icon?: string;
  label?: string;
  guivm?: string | null;
  relayvm?: string | null;
  transport_rpc?: string | null;
  /**
   * Our extension, not qubesd's (the engine ignores it): the sorted names of the qrexec services
   * the qube's agent advertises, its truthy `supported-rpc.NAME` features, each from the qube
   * first, else from its template chain (`admin.vm.feature.CheckWithTemplate`). Written by
   * `systemInfo(qubes, { services: true })` (`qkit system snapshot --services`) only for qubes
   * that advertise something; a qube without it is unknown (dom0, an old agent, Windows). Read by
   * the `service-not-provided` analysis.
   */
  supported_rpc?: string[];
  /** Added by {@link prepareSystemInfo}. */
  name?: string;
  [key: string]: unknown;
}

/** The raw `internal.GetSystemInfo` answer. */
export interface RawSystemInfo {
  domains: Record<string, DomainInfo>;
}

/** The post-processed system model (names added, `uuid:` aliases), as the engine uses it. */
export interface SystemInfo {
  readonly domains: ReadonlyMap<string, DomainInfo>;
}

/** A qrexec call to decide. */
export interface PolicyRequest {
  service: string;
  /** Starts with `+`; `+` alone is the empty argument. Default `+`. */
  argument?: string;
  source: string;
  /** The intended target; `""` or absent means `@default`. */
  target?: string;
  /** Qubes Air: the source that a relay qube calls on behalf of. */
  requestedSource?: string | null;
}

/** Where in the pipeline a failure happened. */
export type Stage = "load" | "request" | "match" | "evaluate";

/** The deciding rule, as `{file, line}`. */
export interface RuleRef {
  file: string;
  line: number | null;
}

/** The daemon's answer for an allow (key=value lines as an object), or its refusal. */
export type ExecResult = Record<string, string> | { error: string; message: string };

/** An allow decision. */
export interface AllowDecision {
  ok: true;
  action: "allow";
  target: string;
  user: string | null;
  notify: boolean;
  autostart: boolean;
  rule: RuleRef;
  intendedTarget: string;
  exec: ExecResult;
}

/** An ask decision. */
export interface AskDecision {
  ok: true;
  action: "ask";
  /** Sorted. */
  targetsForAsk: string[];
  defaultTarget: string | null;
  user: string | null;
  notify: boolean;
  autostart: boolean;
  rule: RuleRef;
  intendedTarget: string;
}

/** A deny by a deny rule. */
export interface DenyDecision {
  ok: true;
  action: "deny";
  notify: boolean;
  rule: RuleRef;
  message: string;
  intendedTarget: string;
}

/** A denial by the engine (or a crash of the real engine, `error: "EngineError"`). */
export interface ErrorDecision extends PolicyError {
  ok: false;
  stage: Stage;
  rule?: RuleRef;
  intendedTarget?: string;
}

/** Any decision. `ok: false` and `action: "deny"` both mean the call is refused. */
export type Decision = AllowDecision | AskDecision | DenyDecision | ErrorDecision;

/** Why one rule did not match, or that it did. */
export interface TraceStep {
  rule: PolicyRule;
  matched: boolean;
  /** Which column failed (`service`, `argument`, `source`, `target`), absent when matched. */
  failed?: "service" | "argument" | "source" | "target";
  /** One lowercase sentence. */
  reason: string;
}

/** Where an offered `ask` target came from. */
export interface AskContribution {
  rule: PolicyRule;
  effect: "add" | "remove";
  targets: string[];
  /**
   * For `add`: the offered targets (`targetsForAsk`) that came from these:
   * `@dispvm` as the source's `@dispvm:X`, `@adminvm` as `dom0`, and
   * without the source itself and internal qubes, which are never offered.
   * Empty when all it added was dropped so.
   */
  offered?: string[];
}

/** The full story of one decision. */
export interface Explanation {
  decision: Decision;
  request: PolicyRequest;
  /** The intended target after verification, and how it got there. */
  intendedTarget?: string;
  targetNote?: string;
  /** Every rule of the requested service and argument before the deciding one, in order, with the reason it did not match. */
  trace: TraceStep[];
  /** Rules of other services or arguments, counted (not listed). */
  skipped: number;
  decidingRule?: PolicyRule;
  /** For allow: how the final target was resolved (redirect, `@dispvm`, `@adminvm`). */
  resolution?: string[];
  /** For ask without `target=`: which rule decided each target, in policy order (the first rule naming a target decides it). */
  askContributions?: AskContribution[];
  /** For ask without `target=`: what happened to the collected targets afterwards (`@dispvm`, `@adminvm`, the source, internal qubes). */
  askNotes?: string[];
}
