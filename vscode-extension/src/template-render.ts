/**
 * Pure rendering of the server's answers for the stack commands: the plan of a
 * stack (`qubes/templatePlan`) and its what-if (`qubes/templateWhatif`) as
 * Markdown documents, and one-line summaries for notifications.
 *
 * INVARIANT: this module imports nothing at run time (no `vscode`), so it is
 * unit-tested in plain Node and bundled as is.
 */
import type { TemplatePlanResult, TemplateProblem, TemplateWhatifResult } from "@qubes-kit/lsp";

type Plan = NonNullable<TemplatePlanResult["plan"]>;
type PlanStep = Plan["steps"][number];

/** Escapes text for Markdown inline text. */
function md(text: string): string {
  return text.replace(/[\\`*_{}[\]<>|]/g, (c) => `\\${c}`);
}

/** Text for a Markdown table cell. */
function cell(text: string | null | undefined): string {
  return (text ?? "").replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, " ⏎ ");
}

function base(file: string): string {
  return file.slice(file.lastIndexOf("/") + 1);
}

function problems(list: readonly TemplateProblem[] | undefined): string[] {
  if (!list?.length) return [];
  return ["## Problems", "", ...list.map((p) => `- ${md(base(p.file))}:${p.line}: ${p.severity}[${md(p.code)}]: ${md(p.message)}`), ""];
}

const SIGN: Partial<Record<PlanStep["kind"], string>> = {
  create: "+",
  "create-label": "+",
  adopt: "+",
  "add-tag": "+",
  "assign-device": "+",
  remove: "-",
  "remove-policy": "-",
  "remove-tag": "-",
  "remove-feature": "-",
  "unassign-device": "-",
  "reset-property": "~",
  "reset-global": "~",
};

/** The sign of a step as the plan prints it: `+` adds, `-` removes, `~` changes. */
export function stepSign(step: PlanStep): string {
  if (step.kind === "write-policy") return step.before === null ? "+" : "~";
  return SIGN[step.kind] ?? "~";
}

const EFFECT: Record<PlanStep["effect"], string> = {
  live: "applies at once",
  "next-start": "at next start",
  "needs-halt": "needs a halt",
  none: "",
};

/** One line summing up a plan answer, for a notification. */
export function planSummary(result: TemplatePlanResult): string {
  if (!result.plan) return result.error ?? "no plan";
  const p = result.plan;
  const visible = p.steps.filter((s) => s.kind !== "record-keys");
  if (p.errors.length) return `${p.errors.length} error${p.errors.length === 1 ? "" : "s"} in the plan: nothing can be applied until fixed`;
  if (!visible.length) return "No changes: the machine matches the stack";
  const s = p.summary;
  return `Plan: ${s.create} to create, ${s.change} to change, ${s.destroy} to destroy${s.adopt ? `, ${s.adopt} to adopt` : ""}; ${s.policy} policy file${s.policy === 1 ? "" : "s"}, ${s.global} global propert${s.global === 1 ? "y" : "ies"}`;
}

/** The Markdown document of a plan: what was read, errors, then the steps grouped by object, in order. */
export function planMarkdown(result: TemplatePlanResult): string {
  const lines: string[] = [`# Plan: ${md(base(result.file))}`, "", `**Read:** ${md(result.connection)}`, ""];
  if (result.error) lines.push(`**Not planned:** ${md(result.error)}`, "");
  lines.push(...problems(result.problems));
  const plan = result.plan;
  if (!plan) return lines.join("\n");
  if (plan.errors.length) {
    lines.push("## Errors", "");
    for (const e of plan.errors) lines.push(`- error[${md(e.code)}]: ${md(e.message)}`);
    lines.push("");
  }
  const running = new Set(result.running ?? []);
  const groups = new Map<string, PlanStep[]>();
  for (const s of plan.steps) if (s.kind !== "record-keys") groups.set(s.target, [...(groups.get(s.target) ?? []), s]);
  if (groups.size) {
    lines.push("## Steps", "", "| | Object | Setting | Before | After | Takes effect |", "|---|---|---|---|---|---|");
    for (const [target, steps] of groups) {
      for (const s of steps) {
        const effect = s.deferred ? `deferred: ${s.deferred}` : running.has(s.object) ? EFFECT[s.effect] : "";
        lines.push(`| ${stepSign(s)} | ${cell(target)} | ${cell(s.key || s.kind)} | ${cell(s.before)} | ${cell(s.after)} | ${cell(effect)} |`);
      }
    }
    lines.push("");
  }
  lines.push(`**${md(planSummary(result))}**`, "");
  if (plan.restartToTakeEffect.length) lines.push(`Restart to take effect: ${plan.restartToTakeEffect.map(md).join(", ")}`, "");
  if (plan.orphans.length) lines.push(`Owned but no longer declared (removed with \`--prune\`): ${plan.orphans.map(md).join(", ")}`, "");
  lines.push("Nothing was changed. Apply with `qkit template apply` in a terminal.", "");
  return lines.join("\n");
}

/** One line summing up a what-if answer, for a notification. */
export function whatifSummary(result: TemplateWhatifResult): string {
  if (result.error) return result.error;
  const failed = (result.expectations ?? []).filter((e) => !e.ok).length;
  const total = result.expectations?.length ?? 0;
  const changes = result.changes?.length ?? 0;
  const exp = total ? (failed ? `${failed} of ${total} expectations fail` : `all ${total} expectations hold`) : "no expectations";
  return `What-if: ${exp}; ${changes} decision${changes === 1 ? "" : "s"} change`;
}

/** The Markdown document of a what-if: expectations, policy load errors, and the decisions that change. */
export function whatifMarkdown(result: TemplateWhatifResult): string {
  const lines: string[] = [`# What-if: ${md(base(result.file))}`, "", `**Read:** ${md(result.connection)}`, ""];
  if (result.error) lines.push(`**Not evaluated:** ${md(result.error)}`, "");
  lines.push(...problems(result.problems));
  if (result.error) return lines.join("\n");
  for (const e of result.loadErrors ?? []) lines.push(`- the ${e.when === "today" ? "current" : "future"} policy does not load: ${md(e.message)} (every call is denied)`);
  if (result.loadErrors?.length) lines.push("");
  if (result.expectations?.length) {
    lines.push("## Expectations", "");
    for (const e of result.expectations) lines.push(`- ${e.ok ? "✓" : "✗"} \`${e.text.replace(/`/g, "'")}\`${e.problem ? `: ${md(e.problem)}` : ""}`);
    lines.push("");
  }
  const changes = result.changes ?? [];
  if (changes.length) {
    lines.push("## Decisions that change", "", "| | Service | Source | Target | Today | After apply |", "|---|---|---|---|---|---|");
    for (const c of changes) {
      const mark = c.kind === "grant" ? "+" : c.kind === "revoke" ? "-" : "~";
      const service = `${c.service}${c.argument && c.argument !== "+" && c.argument !== "*" ? c.argument : ""}`;
      lines.push(`| ${mark} | ${cell(service)} | ${cell(c.source)} | ${cell(c.target)} | ${cell(c.before)} | ${cell(c.after)} |`);
    }
    lines.push("");
  } else lines.push("No qrexec decision changes.", "");
  lines.push(`**${md(whatifSummary(result))}**`, "");
  return lines.join("\n");
}
