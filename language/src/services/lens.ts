/**
 * Code lenses: above every rule, what it decides (and whether it ever can).
 */
import type { Span } from "../diagnostics.js";
import type { PolicyRule } from "../loader/types.js";
import type { PolicyDocument, QubeToken, RuleNode } from "../syntax/tree.js";
import type { PolicyRequest, SystemInfo } from "../eval/types.js";
import { describeRule, qubesMatching } from "./describe.js";
import type { PolicySnapshot } from "./workspace.js";

/** One lens: a title over a line, with the rule's location for a "simulate" command. */
export interface CodeLens {
  span: Span;
  title: string;
  /** The 1-based line of the rule. */
  line: number;
}

/** A lens per valid rule line. Never throws. */
export function codeLenses(doc: PolicyDocument, ctx: { snapshot?: PolicySnapshot; path?: string } = {}): CodeLens[] {
  const out: CodeLens[] = [];
  const shadowed = new Set<number>();
  const loaded = new Map<number, PolicyRule>();
  if (ctx.snapshot && ctx.path) {
    for (const d of ctx.snapshot.diagnostics.get(ctx.path) ?? []) if (d.code === "shadowed-rule") shadowed.add(d.line);
    if (doc.syntax === "service") {
      for (const r of ctx.snapshot.rules) if (r.origin.path === ctx.path && r.origin.line !== null && !loaded.has(r.origin.line)) loaded.set(r.origin.line, r);
    }
  }
  const system = ctx.snapshot?.system;
  for (const line of doc.lines) {
    if (line.kind !== "rule" || !line.rule) continue;
    const rule = loaded.get(line.line) ?? line.rule;
    let title = describeRule(rule);
    if (system) {
      const sources = rule.source.kind === "tag" || rule.source.kind === "type" || rule.source.kind === "anyvm" || rule.source.kind === "wildcard" ? qubesMatching(rule.source, system).length : undefined;
      if (sources !== undefined) title += ` · ${sources} source qube${sources === 1 ? "" : "s"}`;
    }
    if (shadowed.has(line.line)) title = `never decides (shadowed) · ${title}`;
    out.push({ span: line.span, title, line: line.line });
  }
  return out;
}

/**
 * A call the rule decides (or would, if no earlier rule does), for a lens's
 * "simulate" command: the rule's service and argument, its source and target
 * when they name one qube, else the first qube of the system model they match
 * (by name; dom0 last). An error in words when there is none.
 */
export function representativeCall(rule: RuleNode, system: SystemInfo | null): PolicyRequest | { error: string } {
  if (rule.service === null) return { error: "the rule is for every service (`*`): simulate a call of a named service instead" };
  const pick = (token: QubeToken, not?: string): string | undefined => {
    if (token.kind === "name") return token.text;
    if (token.kind === "adminvm") return "dom0";
    if (!system) return undefined;
    const names = qubesMatching(token, system).filter((n) => n !== not);
    return names.find((n) => n !== "dom0") ?? names[0];
  };
  const source = pick(rule.source);
  if (source === undefined) {
    return { error: system ? `no qube of the system model matches the source \`${rule.source.text}\`` : `the source \`${rule.source.text}\` names no single qube and there is no system model to pick one` };
  }
  let target: string | undefined;
  switch (rule.target.kind) {
    case "default":
      target = "";
      break;
    case "dispvm":
    case "dispvm-template":
    case "adminvm":
      target = rule.target.text;
      break;
    default:
      target = pick(rule.target, source);
  }
  if (target === undefined) {
    return { error: system ? `no qube of the system model other than ${source} matches the target \`${rule.target.text}\`` : `the target \`${rule.target.text}\` names no single qube and there is no system model to pick one` };
  }
  return { service: rule.service, argument: rule.argument ?? "+", source, target };
}
