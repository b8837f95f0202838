/**
 * `workspace/executeCommand`: the commands of code lenses and explanations,
 * run by the server so they work in every editor (see `SERVER_COMMANDS`; the
 * lenses keep `qubesPolicy.simulateRule`, which the server also runs outside VS Code).
 * `qkit.simulateRule` explains a call the rule decides and shows the
 * decision; `qkit.addRuleForCall` adds the rule that decides a call as asked,
 * through `workspace/applyEdit`.
 */
import { ErrorCodes, MessageType, ResponseError, ShowMessageNotification, type CancellationToken, type ExecuteCommandParams, type TextEdit as LspTextEdit } from "vscode-languageserver";
import { addRuleForCall, addRuleRefusal, representativeCall, ruleLineAt, ruleTextForCall, type PolicyRequest, type SystemInfo } from "@qubes-kit/language";
import { toRange } from "../convert.js";
import { SERVER_COMMANDS, SIMULATE_RULE_COMMAND, type AddRuleParams, type AddRuleResult, type ExplainResult } from "../protocol.js";
import { requestOf } from "./params.js";
import { explain } from "./simulate.js";
import type { ServerContext, ServerFeature } from "./types.js";

const ACTIONS = ["allow", "deny", "ask"] as const;

/** One line for the user: the call and its decision. */
function summaryLine(r: ExplainResult): string {
  const q = r.request;
  const call = `${q.service}${q.argument && q.argument !== "+" ? q.argument : ""} from ${q.source} to ${q.target || "@default"}`;
  const d = r.decision;
  const what = d.ok ? `${d.action}${"target" in d && d.target ? ` (target ${d.target})` : ""}` : `error: ${d.message}`;
  const where = r.steps.length || r.location ? (r.explanation.decidingRule ? ` by ${r.explanation.decidingRule.origin.file}:${r.explanation.decidingRule.origin.line}` : " (no rule matches)") : "";
  return `${call}: ${what}${where}`;
}

/** Shows a message (a notification: nothing waits for the user, and a client that cannot show it loses nothing). */
function show(ctx: ServerContext, type: MessageType, message: string): void {
  ctx.connection.sendNotification(ShowMessageNotification.type, { type, message }).catch(() => undefined);
}

async function simulateRule(ctx: ServerContext, args: unknown[], token: CancellationToken): Promise<ExplainResult | null> {
  const [uri, line] = args;
  if (typeof uri !== "string" || typeof line !== "number" || !Number.isInteger(line) || line < 1) {
    throw new ResponseError(ErrorCodes.InvalidParams, `${SERVER_COMMANDS.simulateRule} takes [uri, line] (a document URI and a 1-based line)`);
  }
  const project = ctx.projectFor(uri);
  const snapshot = await ctx.analysed(project, token);
  const c = ctx.context(uri);
  const node = c ? ruleLineAt(c.doc, line) : undefined;
  const path = c?.path ?? project.toVirtual(ctx.pathOfUri(uri));
  const rule = node?.rule ?? snapshot.rules.find((r) => r.origin.path === path && r.origin.line === line);
  if (!rule) {
    show(ctx, MessageType.Warning, `line ${line} of ${uri} is not a valid rule: fix it first, then simulate`);
    return null;
  }
  const call = representativeCall(rule, ctx.system);
  if ("error" in call) {
    show(ctx, MessageType.Warning, `cannot simulate the rule at line ${line}: ${call.error}`);
    return null;
  }
  const r = await explain(ctx, { uri, service: call.service, argument: call.argument, source: call.source, target: call.target ?? "" }, token);
  if (r) show(ctx, r.decision.ok ? MessageType.Info : MessageType.Warning, summaryLine(r));
  return r;
}

async function addRule(ctx: ServerContext, args: unknown[], token: CancellationToken): Promise<AddRuleResult> {
  const p = args[0] as AddRuleParams | undefined;
  if (typeof p !== "object" || p === null || !ACTIONS.includes(p.action)) {
    throw new ResponseError(ErrorCodes.InvalidParams, `${SERVER_COMMANDS.addRuleForCall} takes [{service, source, target?, argument?, uri?, action: "allow" | "deny" | "ask"}]`);
  }
  // A call no real call can have (a word the parser would not read as one token, a newline) is refused before anything is written.
  const request = requestOf(p);
  const project = ctx.scopeProject(p.uri);
  if (!project) return { applied: false, error: "no policy is open: open a policy file first" };
  const snapshot = await ctx.analysed(project, token);
  const canWrite = (path: string) => {
    const d = project.toDisk(path);
    return d !== null && ctx.mapperForPath(project, snapshot, d) !== undefined;
  };
  const add = addRuleForCall(snapshot, request, p.action, { system: ctx.system, canWrite });
  if (!add.ok) return { applied: false, error: `${add.reason} [${add.code}]` };
  const disk = project.toDisk(add.path);
  const mapper = disk === null ? undefined : ctx.mapperForPath(project, snapshot, disk);
  if (disk === null || !mapper) return { applied: false, error: `cannot write to ${add.path}` };
  const uri = ctx.uriOf(disk);
  const edit: LspTextEdit = { range: toRange(mapper, add.edit.span), newText: add.edit.newText };
  const location = { uri, range: { start: { line: add.line - 1, character: 0 }, end: { line: add.line - 1, character: add.text.length } } };
  // A client that says it cannot apply edits is not asked; one that does not say is asked, and a refusal is reported.
  if (ctx.clientCaps.workspace?.applyEdit === false) return { applied: false, rule: add.text, location, error: "this editor cannot apply edits from the server (workspace/applyEdit): add the rule by hand" };
  let res: { applied?: unknown; failureReason?: unknown } | null | undefined;
  try {
    res = await ctx.connection.workspace.applyEdit({ label: `add a rule: ${add.text}`, edit: { changes: { [uri]: [edit] } } });
  } catch (e) {
    return { applied: false, rule: add.text, location, error: `the editor refused the edit: ${e instanceof Error ? e.message : String(e)}` };
  }
  // A client may answer anything (null included): only `applied: true` counts as applied.
  if (res === null || typeof res !== "object" || res.applied !== true) {
    const reason = res !== null && typeof res === "object" && typeof res.failureReason === "string" ? res.failureReason : undefined;
    return { applied: false, rule: add.text, location, error: reason ?? "the editor did not apply the edit: add the rule by hand" };
  }
  return {
    applied: true,
    rule: add.text,
    location,
  };
}

/**
 * The "add a rule for this call" commands of an explanation: one per action
 * that can be written for the call (none for a call with a qube the system
 * does not have; no `allow` to `@default`), each titled with the rule it adds.
 * Running one still proves the edit against the engine and may refuse it.
 */
export function addRuleCommands(params: { uri?: string } & PolicyRequest, system: SystemInfo | null): NonNullable<ExplainResult["addRule"]> {
  const call = { ...(params.uri ? { uri: params.uri } : {}), service: params.service, ...(params.argument ? { argument: params.argument } : {}), source: params.source, target: params.target ?? "" };
  const request: PolicyRequest = { service: call.service, argument: call.argument ?? "+", source: call.source, target: call.target };
  return ACTIONS.filter((action) => addRuleRefusal(request, action, system) === undefined).map((action) => ({
    title: `add a rule: ${action} this call (\`${ruleTextForCall(request, action).replace(/ {2}/g, " ")}\`)`,
    command: SERVER_COMMANDS.addRuleForCall,
    arguments: [{ ...call, action }] as [AddRuleParams],
  }));
}

export const commandsFeature: ServerFeature = {
  name: "commands",
  // The lenses' own command too, except for VS Code, whose extension registers it (a client registers
  // every announced command, and a second registration of the same id fails).
  capabilities: (ctx) => ({ executeCommandProvider: { commands: [...(ctx.retriggerCommand ? [] : [SIMULATE_RULE_COMMAND]), ...Object.values(SERVER_COMMANDS)] } }),
  requests: (ctx) => [
    {
      method: "workspace/executeCommand",
      fallback: null,
      params: "object",
      async run(params: ExecuteCommandParams, token: CancellationToken): Promise<unknown> {
        const args = Array.isArray(params.arguments) ? params.arguments : [];
        switch (params.command) {
          case SIMULATE_RULE_COMMAND:
          case SERVER_COMMANDS.simulateRule:
            return simulateRule(ctx, args, token);
          case SERVER_COMMANDS.addRuleForCall:
            return addRule(ctx, args, token);
          default:
            throw new ResponseError(ErrorCodes.InvalidParams, `unknown command ${JSON.stringify(params.command)}: the server runs ${[SIMULATE_RULE_COMMAND, ...Object.values(SERVER_COMMANDS)].join(", ")}`);
        }
      },
    },
  ],
};
