/**
 * Hover: what the token under the cursor means and, on a rule, what the rule decides.
 */
import type { Span } from "../diagnostics.js";
import { parseQubeToken } from "../syntax/tokens.js";
import type { PolicyDocument, QubeToken, RuleLine, RuleNode, TokenContext } from "../syntax/tree.js";
import { ACTIONS, DIRECTIVES, PARAMS, serviceInfo } from "./catalog.js";
import { describeRule, describeToken, qubesMatching } from "./describe.js";
import { resolveIncludePath } from "./navigation.js";
import { code, lineAt, touches } from "./util.js";
import type { PolicySnapshot } from "./workspace.js";

/** A hover: Markdown text for a span. */
export interface Hover {
  span: Span;
  markdown: string;
}

function matchingLine(token: QubeToken, snapshot: PolicySnapshot | undefined): string | undefined {
  const system = snapshot?.system;
  if (!system) return undefined;
  if (token.kind !== "tag" && token.kind !== "type" && token.kind !== "anyvm" && token.kind !== "wildcard" && token.kind !== "name") return undefined;
  const names = qubesMatching(token, system);
  if (token.kind === "name") return names.length ? undefined : "not in the system model";
  if (!names.length) return "matches no qube of the system model";
  const shown = names.slice(0, 12).map(code).join(", ");
  return `matches ${names.length} qube${names.length === 1 ? "" : "s"}: ${shown}${names.length > 12 ? ", …" : ""}`;
}

function tokenHover(text: string, context: TokenContext, snapshot: PolicySnapshot | undefined): string {
  const { token, error } = parseQubeToken(text, context);
  if (!token) return `${code(text)}: ${error ?? "invalid token"}`;
  const lines = [`**${context}** ${code(token.text)}: ${describeToken(token, context)}`];
  const m = matchingLine(token, snapshot);
  if (m) lines.push(m);
  if (token.kind === "name" && snapshot?.system) {
    const info = snapshot.system.domains.get(token.text);
    if (info) {
      const bits = [typeof info.type === "string" ? info.type : undefined, Array.isArray(info.tags) && info.tags.length ? `tags ${info.tags.join(", ")}` : undefined, typeof info.power_state === "string" ? info.power_state : undefined];
      lines.push(bits.filter(Boolean).join(" · "));
    }
  }
  return lines.join("\n\n");
}

function ruleHover(line: RuleLine, offset: number, snapshot: PolicySnapshot | undefined, legacy: boolean, path: string | undefined): string | undefined {
  const word = line.words.find((w) => touches(w.span, offset));
  if (!word) return undefined;
  const parts: string[] = [];
  if (word === line.serviceWord) {
    if (word.text === "*") parts.push("**service** `*`: any service");
    else parts.push(`**service** ${code(word.text)}${serviceInfo(word.text) ? `: ${serviceInfo(word.text)!.description}` : ""}`);
  } else if (word === line.argumentWord) {
    parts.push(
      word.text === "*" ? "**argument** `*`: any argument" : word.text === "+" ? "**argument** `+`: the empty argument only" : `**argument** ${code(word.text)}: calls with exactly this argument`,
    );
  } else if (word === line.sourceWord) {
    parts.push(tokenHover(word.text, "source", snapshot));
  } else if (word === line.targetWord) {
    parts.push(tokenHover(word.text, "target", snapshot));
  } else if (word === line.actionWord) {
    const a = word.text as keyof typeof ACTIONS;
    parts.push(ACTIONS[a] ? `**action** ${code(a)}: ${ACTIONS[a]}` : `${code(word.text)} is not an action (allow, deny or ask)`);
  } else {
    const eq = word.text.indexOf("=");
    const key = eq >= 0 ? word.text.slice(0, eq) : word.text;
    const info = PARAMS.find((p) => p.key === key);
    parts.push(info ? `**parameter** ${code(key)}: ${info.description}` : `${code(word.text)} is not a parameter`);
    if ((key === "target" || key === "default_target") && eq >= 0) parts.push(tokenHover(word.text.slice(eq + 1), "redirect", snapshot));
  }
  if (line.rule) parts.push(`---\nThis rule ${describeRule(ruleOf(line, snapshot, legacy, path))}.`);
  return parts.join("\n\n");
}

/** The rule of a line; in legacy files the service comes from the including directive, so it is taken from the loaded rule. */
function ruleOf(line: RuleLine, snapshot: PolicySnapshot | undefined, legacy: boolean, path: string | undefined): RuleNode {
  const rule = line.rule!;
  if (legacy && rule.service === null && snapshot && path) {
    const loaded = snapshot.rules.find((r) => r.origin.path === path && r.origin.line === line.line);
    if (loaded) return loaded;
  }
  return rule;
}

/** The hover at `offset`, or `undefined` where there is nothing to say. Never throws. */
export function hover(doc: PolicyDocument, offset: number, ctx: { snapshot?: PolicySnapshot; path?: string } = {}): Hover | undefined {
  const line = lineAt(doc, offset);
  if (!line) return undefined;
  if (line.kind === "directive") {
    if (touches(line.name.span, offset)) {
      const d = DIRECTIVES.find((x) => x.name === line.name.text);
      return { span: line.name.span, markdown: d ? `**${d.name}** ${d.params}\n\n${d.description}` : `${code(line.name.text)} is not a directive` };
    }
    const p = line.params.find((w) => touches(w.span, offset));
    if (!p) return undefined;
    const last = line.params[line.params.length - 1];
    if (p === last && line.directive && line.directive !== "compat-4.0") {
      const resolved = ctx.path && ctx.snapshot ? resolveIncludePath(ctx.snapshot, ctx.path, p.text) : undefined;
      const kind = resolved && ctx.snapshot ? ctx.snapshot.fs.stat(resolved) : undefined;
      const what = line.directive === "include-dir" ? "directory" : "file";
      const status = resolved ? (kind ? `${code(resolved)}` : `${code(resolved)} (does not exist)`) : code(p.text);
      return { span: p.span, markdown: `includes the ${what} ${status}${line.directive === "include-service" ? " in legacy R4.0 syntax" : ""}` };
    }
    return { span: p.span, markdown: line.directive === "include-service" ? (p === line.params[0] ? `**service** ${code(p.text)}` : `**argument** ${code(p.text)}`) : code(p.text) };
  }
  if (line.kind !== "rule") return undefined;
  const word = line.words.find((w) => touches(w.span, offset));
  if (!word) {
    // Between the columns of a valid rule: what the rule decides.
    if (!line.rule || offset < line.span.start || offset > line.span.end) return undefined;
    return { span: line.span, markdown: `This rule ${describeRule(ruleOf(line, ctx.snapshot, doc.syntax === "service", ctx.path))}.` };
  }
  const md = ruleHover(line, offset, ctx.snapshot, doc.syntax === "service", ctx.path);
  return md ? { span: word.span, markdown: md } : undefined;
}
