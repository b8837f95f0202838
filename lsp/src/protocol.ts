/**
 * The custom requests of the qrexec policy language server, and its settings.
 *
 * Every request is a JSON-RPC request on the ordinary LSP connection. The
 * `XxxRequest` namespaces carry the method name; params and results are the
 * types below, e.g. `client.sendRequest<EvaluateResult>(EvaluateRequest.method, params)`.
 * This module has no runtime dependencies, so clients and webviews can import it.
 */
import type { Location } from "vscode-languageserver-types";
import type { Decision, Explanation, PolicyRequest } from "@qubes-kit/language";
import type { Plan } from "@qubes-kit/sdk";

/** Where the server gets its system model from (`qubesPolicy.system.source`). */
export type SystemSource = "none" | "file" | "socket" | "qrexec";

/** The server's settings (section `qubesPolicy`). Every key is optional. */
export interface QubesPolicySettings {
  system?: {
    /** Default `none`: then the checks of qube, tag and type names are off. */
    source?: SystemSource;
    /** `file`: a GetSystemInfo JSON snapshot (absolute, or relative to the workspace folder). */
    file?: string;
    /** `socket`: qubesd's internal socket (default `/var/run/qubesd.internal.sock`). */
    socket?: string;
  };
  /** The policy directory on disk, when it is not found automatically (a `policy.d` folder). */
  policyDir?: string;
  /** A folder loaded as the runtime directory `/run/qubes/policy.d`. */
  runtimeDir?: string;
  /** A folder used as the legacy directory `/etc/qubes-rpc/policy`. */
  legacyDir?: string;
  /** Severity overrides of the analysis rules by code: `error`, `warning`, `info`, `hint` or `off`. */
  analysis?: Record<string, "error" | "warning" | "info" | "hint" | "off">;
  /** Show a code lens above every rule (default true). */
  codeLens?: boolean;
  /** Where stack plans and what-ifs read the machine (stack files, `*.qubes.yaml`). */
  template?: {
    /**
     * `auto` (default): from `system.source` (`file`: an offline simulator seeded from that
     * snapshot and the workspace policy, `socket`: qubesd's admin socket, `qrexec`: qrexec);
     * or one of `simulator`, `socket`, `qrexec`, `none`.
     */
    connection?: "auto" | "simulator" | "socket" | "qrexec" | "none";
    /** The Admin API socket for `socket` (default `/var/run/qubesd.sock`). */
    socket?: string;
    /** A policy directory read instead of the policy admin API (as `qkit template plan --policy-dir`). */
    policyDir?: string;
  };
}

/** Which policy a request is about: a document of it (its URI). Without one, the first policy of the workspace. */
export interface PolicyScope {
  uri?: string;
}

/** Params of `qubes/evaluate` and `qubes/explain`: a qrexec call. */
export interface EvaluateParams extends PolicyScope {
  /** The service, e.g. `qubes.Filecopy` (an argument may follow after `+` when `argument` is absent). */
  service: string;
  /** The argument with its leading `+`; default `+` (or the part of `service` after its first `+`). */
  argument?: string;
  source: string;
  /** The intended target; `""` or absent means `@default`. */
  target?: string;
  /** Qubes Air: the source a relay qube calls on behalf of. */
  requestedSource?: string | null;
}

/** Result of `qubes/evaluate`. */
export interface EvaluateResult {
  /** The engine's decision (an `ok: false` decision when the policy does not load or no system model is known). */
  decision: Decision;
  /** The request as decided (argument split from the service when needed). */
  request: PolicyRequest;
  /** The deciding rule's location, when there is one. */
  location?: Location;
  /** The system model the decision used (`none` gives an empty system and a note). */
  systemSource: SystemSource;
  note?: string;
}

/** One step of an explanation trace, with its location. */
export interface ExplainStep {
  /** The rule as written, e.g. `qubes.Filecopy * work vault allow`. */
  rule: string;
  file: string;
  line: number | null;
  location?: Location;
  matched: boolean;
  failed?: "service" | "argument" | "source" | "target";
  reason: string;
}

/** Result of `qubes/explain`. */
export interface ExplainResult extends EvaluateResult {
  /** The core explanation (rules serialised as plain data). */
  explanation: Explanation;
  /** The considered rules with locations, in order. */
  steps: ExplainStep[];
  /** The deciding rule in words. */
  summary?: string;
  /** "Add a rule for this call": commands (`qkit.addRuleForCall`) that make the call allowed, asked or denied by a rule of its own. */
  addRule?: Array<{ title: string; command: string; arguments: [AddRuleParams] }>;
}

/** Params of `qubes/systemModel`. */
export type SystemModelParams = PolicyScope;

/** Result of `qubes/systemModel`: what the server knows about the system. */
export interface SystemModelResult {
  source: SystemSource;
  /** Why the model is empty or stale, when it is. */
  error?: string;
  qubes: Array<{ name: string; type: string | null; tags: string[]; label: string | null; powerState: string | null; templateForDispvms: boolean; defaultDispvm: string | null; internal: boolean }>;
  tags: string[];
  types: string[];
  dispvmTemplates: string[];
  /** Services seen in the policy and the standard ones. */
  services: string[];
}

/** Params of `qubes/decisionTable`. */
export interface DecisionTableParams extends PolicyScope {
  service: string;
  /** Default `+` (the empty argument). */
  argument?: string;
  /** Default: every qube of the system model. */
  sources?: string[];
  /** Default: every qube plus `@default` and `@dispvm`. */
  targets?: string[];
}

/** One cell of a decision table, expanded (see {@link decisionTableCell}). */
export interface DecisionTableCell {
  action: "allow" | "deny" | "ask" | "error";
  /** allow: the resolved target; ask: the preselected target. */
  target?: string;
  /** ask: the offered targets. */
  targets?: string[];
  message?: string;
  rule?: DecisionTableRule;
}

/** A deciding rule of a decision table. */
export interface DecisionTableRule {
  file: string;
  line: number | null;
  location?: Location;
}

/** One kind of cell: what the cells that decide alike share (indices into the result's lists). */
export interface DecisionTableKind {
  action: "allow" | "deny" | "ask" | "error";
  /** allow: the resolved target, absent when it is the cell's own column; ask: the preselected target. */
  target?: string;
  /** ask: `offers[offer]` are the offered targets. */
  offer?: number;
  /** `rules[rule]` decides. */
  rule?: number;
  /** deny and error: the refusal message. */
  message?: string;
}

/**
 * Result of `qubes/decisionTable` (shape version 2, compact): `cells[i][j]`
 * is the index into `kinds` of source `sources[i]` calling `targets[j]`;
 * each distinct offer list, rule and kind is sent once.
 */
export interface DecisionTableResult {
  version: 2;
  service: string;
  argument: string;
  sources: string[];
  targets: string[];
  /** The distinct lists of targets an ask offers (sorted). */
  offers: string[][];
  /** The distinct deciding rules. */
  rules: DecisionTableRule[];
  kinds: DecisionTableKind[];
  cells: number[][];
  systemSource: SystemSource;
  note?: string;
}

/** The cell of source `i` calling target `j`, expanded (offer lists and rules shared, not copied). */
export function decisionTableCell(table: Pick<DecisionTableResult, "targets" | "offers" | "rules" | "kinds" | "cells">, i: number, j: number): DecisionTableCell {
  const k = table.kinds[table.cells[i]![j]!]!;
  const cell: DecisionTableCell = { action: k.action };
  if (k.action === "allow") cell.target = k.target ?? table.targets[j]!;
  if (k.action === "ask") {
    cell.targets = table.offers[k.offer!] ?? [];
    if (k.target !== undefined) cell.target = k.target;
  }
  if (k.rule !== undefined && table.rules[k.rule]) cell.rule = table.rules[k.rule]!;
  if (k.message !== undefined) cell.message = k.message;
  return cell;
}

/** `qubes/evaluate`: decide a qrexec call against the workspace policy. */
export namespace EvaluateRequest {
  export const method = "qubes/evaluate";
}

/** `qubes/explain`: decide a call and return the trace of rules considered. */
export namespace ExplainRequest {
  export const method = "qubes/explain";
}

/** `qubes/systemModel`: the qubes, tags and types the server knows. */
export namespace SystemModelRequest {
  export const method = "qubes/systemModel";
}

/** `qubes/decisionTable`: a service's decisions for every source × target. */
export namespace DecisionTableRequest {
  export const method = "qubes/decisionTable";
}

/**
 * `qubes/documentSyntax` (server → client notification): the grammar the
 * policy reads an open document in, when it differs from what its file name
 * suggests (a file under `policy.d/include/` that an `!include-service`
 * loads is in legacy service syntax). Clients switch the document's
 * language so that highlighting matches.
 */
export namespace DocumentSyntaxNotification {
  export const method = "qubes/documentSyntax";
}

/** The parameters of {@link DocumentSyntaxNotification}. */
export interface DocumentSyntaxParams {
  uri: string;
  syntax: "policy" | "service";
  /** The VS Code language id for that syntax. */
  languageId: "qrexecpolicy" | "qrexecpolicy-service";
}

/**
 * `qubes/systemModelStatus` (server → client notification): sent after every load of the
 * system model (start, settings change, change of the model file), so clients can show why
 * it failed. `error` is absent when the model loaded (or `source` is `none`).
 */
export namespace SystemModelStatusNotification {
  export const method = "qubes/systemModelStatus";
}

/** The parameters of {@link SystemModelStatusNotification}. */
export interface SystemModelStatusParams {
  /** The `qubesPolicy.system.source` setting the server used. */
  source: string;
  /** One line: what went wrong (e.g. `system model file not found: /x/system.json`). */
  error?: string;
}

/** The command a code lens runs: `qubesPolicy.simulateRule` with `[uri, line]` (1-based line). */
export const SIMULATE_RULE_COMMAND = "qubesPolicy.simulateRule";

/**
 * The commands the server runs itself (`workspace/executeCommand`), so code lenses and
 * explanations work in every editor: VS Code's extension keeps its own
 * `qubesPolicy.simulateRule` (with prompts); other editors get these.
 */
export const SERVER_COMMANDS = {
  /** `[uri, line]`: explains a representative call of the rule at the 1-based line; shows the decision and returns the {@link ExplainResult}. */
  simulateRule: "qkit.simulateRule",
  /** `[AddRuleParams]`: adds the rule that decides the call as asked (through `workspace/applyEdit`); returns {@link AddRuleResult}. */
  addRuleForCall: "qkit.addRuleForCall",
} as const;

/** The argument of `qkit.addRuleForCall`: the call (as in `qubes/explain`) and what the new rule does. */
export interface AddRuleParams extends EvaluateParams {
  action: "allow" | "deny" | "ask";
}

/** The result of `qkit.addRuleForCall`. */
export interface AddRuleResult {
  /** True when the client applied the edit. */
  applied: boolean;
  /** The rule added, as written. */
  rule?: string;
  /** Where it went. */
  location?: Location;
  /** Why nothing was added. */
  error?: string;
}

/** The command of the "plan" code lens of a stack file: `qubesTemplate.plan` with `[uri]`. */
export const TEMPLATE_PLAN_COMMAND = "qubesTemplate.plan";
/** The command of the "what-if" code lenses of a stack file: `qubesTemplate.whatif` with `[uri]`. */
export const TEMPLATE_WHATIF_COMMAND = "qubesTemplate.whatif";

/** Params of `qubes/templatePlan` and `qubes/templateWhatif`: the stack file. */
export interface TemplateParams {
  uri: string;
}

/** One diagnostic of a stack that cannot be planned, with its 1-based line. */
export interface TemplateProblem {
  file: string;
  line: number;
  code: string;
  severity: string;
  message: string;
}

/** Result of `qubes/templatePlan`. */
export interface TemplatePlanResult {
  /** The stack file. */
  file: string;
  /** What was read, e.g. `qubesd at /var/run/qubesd.sock and the policy admin api`. */
  connection: string;
  /** Why there is no plan (one line), when there is none. */
  error?: string;
  /** The stack's errors, when they stop the plan. */
  problems?: TemplateProblem[];
  /** The SDK's plan (steps in order, errors, summary). */
  plan?: Plan;
  /** Running qubes at read time (a needs-halt change of one is deferred). */
  running?: string[];
}

/** One `expect:` entry after apply. */
export interface TemplateExpectationResult {
  text: string;
  ok: boolean;
  problem?: string;
}

/** One decision that changes once the stack is applied. */
export interface TemplateDecisionChange {
  service: string;
  argument: string;
  source: string;
  target: string;
  kind: "grant" | "revoke" | "change";
  /** The decision today and after apply, in words (`allow to vault`, `ask (vault-gpg)`, `deny`). */
  before: string;
  after: string;
}

/** Result of `qubes/templateWhatif`. */
export interface TemplateWhatifResult {
  file: string;
  connection: string;
  error?: string;
  problems?: TemplateProblem[];
  /** Every expectation holds and the future policy loads. */
  ok?: boolean;
  expectations?: TemplateExpectationResult[];
  /** Policies that do not load (today or after apply). */
  loadErrors?: Array<{ when: "today" | "future"; message: string }>;
  changes?: TemplateDecisionChange[];
}

/** `qubes/templatePlan`: the plan of a stack file against the configured machine (nothing is changed). */
export namespace TemplatePlanRequest {
  export const method = "qubes/templatePlan";
}

/** `qubes/templateWhatif`: the expectations of a stack file and the decisions it changes, before anything is applied. */
export namespace TemplateWhatifRequest {
  export const method = "qubes/templateWhatif";
}
