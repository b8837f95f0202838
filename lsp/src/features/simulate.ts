/**
 * The custom requests that simulate calls: `qubes/evaluate`, `qubes/explain`,
 * `qubes/systemModel` and `qubes/decisionTable`.
 */
import type { CancellationToken } from "vscode-languageserver";
import {
  compactGrid,
  describeRule,
  evaluateRequest,
  explainRequest,
  makeRequest,
  snapshotGridBuilder,
  snapshotRulePaths,
  STANDARD_SERVICES,
  summarizeSystem,
  type PolicyDocument,
  type PolicyRequest,
  type PolicySnapshot,
} from "@qubes-kit/language";
import {
  DecisionTableRequest,
  EvaluateRequest,
  ExplainRequest,
  SystemModelRequest,
  type DecisionTableParams,
  type DecisionTableResult,
  type EvaluateParams,
  type EvaluateResult,
  type ExplainResult,
  type SystemModelParams,
  type SystemModelResult,
} from "../protocol.js";
import { addRuleCommands } from "./commands.js";
import { nameList, noteWithWarnings, requestOf, requireStrings, requireValidCall } from "./params.js";
import { throwIfCancelled, type ServerContext, type ServerFeature } from "./types.js";

/** The text of a rule line, for an explanation step. */
export function describeRuleText(snapshot: PolicySnapshot, path: string, line: number | null): string {
  if (line === null) return "(implicit rule)";
  const doc: PolicyDocument | undefined = snapshot.document(path);
  const l = doc?.lines[line - 1];
  return l ? doc!.text.slice(l.span.start, l.span.end) : "";
}

/** Answers `qubes/explain` (also used by commands that act on an explanation). */
export async function explain(ctx: ServerContext, params: EvaluateParams, token?: CancellationToken): Promise<ExplainResult | null> {
  const request = requestOf(params);
  const project = ctx.scopeProject(params?.uri);
  if (!project) return null;
  const snapshot = await ctx.analysed(project, token);
  const explanation = explainRequest(snapshot, request, ctx.systemOrEmpty());
  const steps = explanation.trace.map((s) => {
    const loc = ctx.ruleLocation(project, snapshot, s.rule.origin);
    const ruleText = describeRuleText(snapshot, s.rule.origin.path, s.rule.origin.line);
    return {
      rule: ruleText,
      file: s.rule.origin.file,
      line: s.rule.origin.line,
      matched: s.matched,
      reason: s.reason,
      ...(s.failed ? { failed: s.failed } : {}),
      ...(loc ? { location: loc } : {}),
    };
  });
  const decision = explanation.decision;
  const location = ctx.ruleLocation(project, snapshot, "rule" in decision ? decision.rule : undefined);
  const note = noteWithWarnings(ctx.noSystemNote(), [request], ctx.system);
  return {
    decision,
    request,
    systemSource: ctx.systemSource,
    explanation,
    steps,
    ...(explanation.decidingRule ? { summary: describeRule(explanation.decidingRule) } : {}),
    addRule: addRuleCommands({ ...(params.uri ? { uri: params.uri } : {}), ...request }, ctx.system),
    ...(location ? { location } : {}),
    ...(note ? { note } : {}),
  };
}

export const simulateFeature: ServerFeature = {
  name: "simulate",
  requests: (ctx) => [
    {
      method: EvaluateRequest.method,
      fallback: null,
      params: "any",
      async run(params: EvaluateParams, token: CancellationToken): Promise<EvaluateResult | null> {
        const request = requestOf(params);
        const project = ctx.scopeProject(params?.uri);
        if (!project) return null;
        const snapshot = await ctx.analysed(project, token);
        const decision = evaluateRequest(snapshot, request, ctx.systemOrEmpty());
        const location = ctx.ruleLocation(project, snapshot, "rule" in decision ? decision.rule : undefined);
        const note = noteWithWarnings(ctx.noSystemNote(), [request], ctx.system);
        return { decision, request, systemSource: ctx.systemSource, ...(location ? { location } : {}), ...(note ? { note } : {}) };
      },
    },
    {
      method: ExplainRequest.method,
      fallback: null,
      params: "any",
      run: (params: EvaluateParams, token: CancellationToken) => explain(ctx, params, token),
    },
    {
      method: SystemModelRequest.method,
      fallback: null,
      params: "any",
      run(params: SystemModelParams | undefined): SystemModelResult {
        const project = ctx.scopeProject(params?.uri);
        const services = new Set(STANDARD_SERVICES.map((s) => s.name));
        if (project) for (const s of project.lastSnapshot()?.services.keys() ?? []) services.add(s);
        return { source: ctx.systemSource, ...(ctx.systemError ? { error: ctx.systemError } : {}), ...summarizeSystem(ctx.system), services: [...services].sort() };
      },
    },
    {
      method: DecisionTableRequest.method,
      fallback: null,
      params: "any",
      async run(params: DecisionTableParams, token: CancellationToken): Promise<DecisionTableResult | null> {
        requireStrings(params, ["service"], ["argument", "uri"]);
        const sourcesParam = nameList(params, "sources");
        const targetsParam = nameList(params, "targets");
        // Without `argument`, a `+` in the service splits it off, as `qrexec-policy-exec` does (`qubes.StartApp+firefox`).
        const split = makeRequest(String(params.service), "", "");
        const service = params.argument == null ? split.service : String(params.service);
        const argument: string = params.argument === "" ? "+" : (params.argument ?? split.argument ?? "+");
        // Every row and column must be a call a real call can have (checked as one call each; `dom0` stands in for the other side).
        const asked: PolicyRequest[] = [{ service, argument, source: "dom0", target: "" }];
        for (const s of sourcesParam ?? []) asked.push({ service, argument, source: s, target: "" });
        for (const t of targetsParam ?? []) asked.push({ service, argument, source: "dom0", target: t });
        for (const r of asked) requireValidCall(r, r.target ? "in `targets`: " : r.source !== "dom0" ? "in `sources`: " : "");
        const project = ctx.scopeProject(params?.uri);
        if (!project) return null;
        const snapshot = await ctx.analysed(project, token);
        const sys = ctx.systemOrEmpty();
        // Row by row, yielding between slices: a large table never blocks other messages, and a cancel stops it.
        const builder = snapshotGridBuilder(snapshot, service, argument, sys, { ...(sourcesParam ? { sources: sourcesParam } : {}), ...(targetsParam ? { targets: targetsParam } : {}) });
        const pace = ctx.slicer(token);
        do await pace();
        while (builder.next());
        const table = compactGrid(builder.grid, snapshotRulePaths(snapshot));
        const rules = table.rules.map((rule) => {
          const location = ctx.ruleLocation(project, snapshot, rule);
          return { file: rule.file, line: rule.line, ...(location ? { location } : {}) };
        });
        throwIfCancelled(token);
        // The names of the table's rows and columns that are not qubes (a source `@` is never checked).
        const named = [...(sourcesParam ?? []).map((source) => ({ service, argument, source, target: "" })), ...(targetsParam ?? []).map((target) => ({ service, argument, source: "@", target }))];
        const note = noteWithWarnings(ctx.noSystemNote(), named, ctx.system);
        return { version: 2, service, argument, sources: table.sources, targets: table.targets, systemSource: ctx.systemSource, ...(note ? { note } : {}), offers: table.offers, rules, kinds: table.kinds, cells: table.cells };
      },
    },
  ],
};
