/**
 * Code lenses: above every rule, what it decides (and whether it ever can).
 */
import type { Span } from "../diagnostics.js";
import type { PolicyRule } from "../loader/types.js";
import type { PolicyDocument } from "../syntax/tree.js";
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
