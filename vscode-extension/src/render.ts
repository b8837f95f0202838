/**
 * Pure rendering of the server's answers for the Qubes commands: one-line decision summaries,
 * the Markdown explanation document and the decision-table webview HTML.
 *
 * INVARIANT: this module imports nothing at run time (no `vscode`), so it is unit-tested
 * in plain Node and bundled as is.
 */
import type { DecisionTableCell, DecisionTableResult, EvaluateResult, ExplainResult } from "@qubes-kit/lsp";

type Decision = EvaluateResult["decision"];

/** `file:line` of a rule reference, as the engine prints it. */
function where(rule: { file: string; line: number | null } | undefined): string {
  return rule ? `${rule.file}:${rule.line ?? "None"}` : "";
}

/** The request in qrexec's words: `qubes.Filecopy+arg from work to personal`. */
export function describeRequest(request: EvaluateResult["request"]): string {
  const argument = request.argument && request.argument !== "+" ? request.argument : "";
  const target = request.target ? request.target : "@default";
  return `${request.service}${argument} from ${request.source} to ${target}`;
}

/** One line saying what the engine decided, e.g. `allow: work → personal (rule 30-user.policy:3)`. */
export function describeDecision(decision: Decision): string {
  if (!decision.ok) return `deny (${decision.error}): ${decision.message}`;
  switch (decision.action) {
    case "allow": {
      const user = decision.user ? ` as user ${decision.user}` : "";
      return `allow: call goes to ${decision.target}${user} (${where(decision.rule)})`;
    }
    case "ask": {
      const offered = decision.targetsForAsk.length ? decision.targetsForAsk.join(", ") : "no targets";
      const dflt = decision.defaultTarget ? `, default ${decision.defaultTarget}` : "";
      return `ask: the user chooses among ${offered}${dflt} (${where(decision.rule)})`;
    }
    case "deny":
      return `deny: ${decision.message}`;
  }
}

/** Escapes text for Markdown table cells and inline text. */
function md(text: string): string {
  return text.replace(/[\\`*_{}[\]<>|]/g, (c) => `\\${c}`);
}

/** Text for a Markdown table cell: keeps the server's \`code\` spans, escapes what breaks a table. */
function tableCell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

/** The Markdown document a simulation opens: request, decision, notes and the rule trace. */
export function explanationMarkdown(result: ExplainResult): string {
  const lines: string[] = [];
  lines.push(`# Qubes policy: ${md(describeRequest(result.request))}`, "");
  lines.push(`**Decision:** ${md(describeDecision(result.decision))}`, "");
  if (result.summary) lines.push(`**Rule:** ${tableCell(result.summary)}`, "");
  const intended = result.explanation?.intendedTarget;
  if (intended !== undefined) {
    const note = result.explanation.targetNote ? ` (${md(result.explanation.targetNote)})` : "";
    lines.push(`**Intended target:** ${md(intended)}${note}`, "");
  }
  for (const step of result.explanation?.resolution ?? []) lines.push(`- ${md(step)}`);
  if (result.explanation?.resolution?.length) lines.push("");
  lines.push(`**System model:** ${result.systemSource}${result.note ? ` — ${md(result.note)}` : ""}`, "");
  if (result.steps.length) {
    lines.push("## Rules considered", "", "| # | Rule | Where | Result |", "|---|---|---|---|");
    result.steps.forEach((step, i) => {
      const outcome = step.matched ? "**matched**" : tableCell(step.reason);
      lines.push(`| ${i + 1} | \`${step.rule.replace(/[`|]/g, "'")}\` | ${md(where(step))} | ${outcome} |`);
    });
    lines.push("");
  }
  const skipped = result.explanation?.skipped ?? 0;
  if (skipped) lines.push(`${skipped} rule${skipped === 1 ? "" : "s"} for other services skipped.`, "");
  return lines.join("\n");
}

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** Offered targets named in full in a tooltip; longer lists are named by count (and listed once below the table). */
const OFFER_NAMES = 12;

/** The short label and the tooltip of one decision-table cell (`offer`: the number of its offer list, when it is listed). */
export function cellText(cell: DecisionTableCell, offer?: number): { label: string; title: string } {
  const rule = cell.rule ? ` (${where(cell.rule)})` : "";
  switch (cell.action) {
    case "allow": {
      const label = cell.target ? `allow → ${cell.target}` : "allow";
      return { label, title: `${label}${rule}` };
    }
    case "ask": {
      const all = cell.targets ?? [];
      const listed = offer !== undefined ? ` (offer list ${offer + 1})` : "";
      const targets = !all.length
        ? "no targets"
        : all.length <= OFFER_NAMES
          ? all.join(", ")
          : `${all.length} targets${listed}: ${all.slice(0, OFFER_NAMES).join(", ")}, …`;
      const dflt = cell.target ? ` (default ${cell.target})` : "";
      return { label: cell.target ? `ask → ${cell.target}` : "ask", title: `ask: ${targets}${dflt}${rule}` };
    }
    case "deny":
      return { label: "deny", title: `${cell.message ?? "deny"}${rule}` };
    case "error":
      return { label: "error", title: `${cell.message ?? "error"}${rule}` };
  }
}

/**
 * The cell of source `i` calling target `j` of a (compact, version 2) table, expanded; the
 * same as the server package's `decisionTableCell`, repeated so the bundle does not pull in
 * the server. `undefined` for a cell the table does not have.
 */
export function decisionCellAt(table: Pick<DecisionTableResult, "targets" | "offers" | "rules" | "kinds" | "cells">, i: number, j: number): DecisionTableCell | undefined {
  const k = table.kinds[table.cells[i]?.[j] ?? -1];
  if (!k) return undefined;
  const cell: DecisionTableCell = { action: k.action };
  if (k.action === "allow") cell.target = k.target ?? table.targets[j]!;
  if (k.action === "ask") {
    cell.targets = table.offers[k.offer ?? -1] ?? [];
    if (k.target !== undefined) cell.target = k.target;
  }
  const rule = k.rule !== undefined ? table.rules[k.rule] : undefined;
  if (rule) cell.rule = rule;
  if (k.message !== undefined) cell.message = k.message;
  return cell;
}

/** Options for {@link decisionTableHtml}. */
export interface TableHtmlOptions {
  /** The webview's `cspSource`. */
  cspSource: string;
  /** A fresh nonce for the one inline script (click → go to rule). */
  nonce: string;
}

/**
 * The decision-table webview: sources (rows) × targets (columns) for one service, one
 * colour per action. The page stays small on a large machine: a cell carries only its
 * label, its class and its kind (`data-k`); the tooltip of a kind is written once and set
 * when the pointer first reaches a cell, and offer lists longer than a tooltip shows are
 * listed once below the table. Clicking (or Enter on) a cell whose kind has a deciding
 * rule posts `{ row, col }` to the extension, which opens the rule.
 */
export function decisionTableHtml(table: DecisionTableResult, options: TableHtmlOptions): string {
  const title = `${table.service}${table.argument && table.argument !== "+" ? table.argument : ""}`;
  const head = table.targets.map((t) => `<th scope="col">${escapeHtml(t)}</th>`).join("");
  // What each kind shows (allows to another target than their column are labelled per cell).
  const kindTitle: string[] = [];
  const long = new Set<number>();
  table.kinds.forEach((k, n) => {
    if (k.action === "ask" && k.offer !== undefined && (table.offers[k.offer]?.length ?? 0) > OFFER_NAMES) long.add(k.offer);
    const probe: DecisionTableCell = { action: k.action };
    if (k.target !== undefined) probe.target = k.target;
    if (k.action === "ask") probe.targets = table.offers[k.offer ?? -1] ?? [];
    if (k.rule !== undefined && table.rules[k.rule]) probe.rule = table.rules[k.rule]!;
    if (k.message !== undefined) probe.message = k.message;
    kindTitle[n] = k.action === "allow" && k.target === undefined ? `allow${probe.rule ? ` (${where(probe.rule)})` : ""}` : cellText(probe, k.offer).title;
  });
  const counts = { allow: 0, ask: 0, deny: 0, error: 0 };
  const rows = table.sources
    .map((source, i) => {
      let cells = "";
      for (let j = 0; j < table.targets.length; j++) {
        const n = table.cells[i]?.[j] ?? -1;
        const k = table.kinds[n];
        if (!k) {
          cells += `<td class="none">—</td>`;
          continue;
        }
        counts[k.action]++;
        const label = k.action === "allow" ? (k.target ? `allow → ${k.target}` : "allow") : k.action === "ask" && k.target ? `ask → ${k.target}` : k.action;
        const link = k.rule !== undefined && table.rules[k.rule]?.location ? ' tabindex="0"' : "";
        cells += `<td class="${k.action}" data-k="${n}"${link}>${escapeHtml(label)}</td>`;
      }
      return `<tr><th scope="row">${escapeHtml(source)}</th>${cells}</tr>`;
    })
    .join("\n");
  const note = table.note ? `<p class="note">${escapeHtml(table.note)}</p>` : "";
  const offerList = [...long]
    .sort((a, b) => a - b)
    .map((o) => `<li id="offer-${o + 1}" value="${o + 1}">${escapeHtml(table.offers[o]!.join(", "))}</li>`)
    .join("\n");
  const offersHtml = offerList ? `\n<h3>Offer lists of the asks</h3>\n<ol class="offers">\n${offerList}\n</ol>` : "";
  // The tooltips as JSON in a script: `<` escaped so no text closes the element.
  const titlesJson = JSON.stringify(kindTitle).replace(/</g, "\\u003c");
  const csp = `default-src 'none'; style-src ${options.cspSource} 'unsafe-inline'; script-src 'nonce-${options.nonce}';`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp.replace(/"/g, "&quot;")}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Decision table: ${escapeHtml(title)}</title>
<style>
  body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); }
  table { border-collapse: collapse; font-size: 0.9em; }
  th, td { border: 1px solid var(--vscode-panel-border, #8884); padding: 2px 6px; white-space: nowrap; }
  thead th { position: sticky; top: 0; background: var(--vscode-editor-background); }
  th[scope="row"] { text-align: left; }
  td[tabindex] { cursor: pointer; }
  td.allow { background: rgba(40, 160, 70, 0.35); }
  td.ask { background: rgba(230, 170, 20, 0.35); }
  td.deny { background: rgba(200, 50, 50, 0.30); }
  td.error { background: rgba(140, 40, 160, 0.35); }
  .legend span { display: inline-block; padding: 0 6px; margin-right: 6px; }
  .note { font-style: italic; }
  .offers li { white-space: normal; }
</style>
</head>
<body>
<h2>${escapeHtml(title)}: source (rows) → target (columns)</h2>
<p class="legend"><span style="background: rgba(40,160,70,.35)">allow ${counts.allow}</span><span style="background: rgba(230,170,20,.35)">ask ${counts.ask}</span><span style="background: rgba(200,50,50,.30)">deny ${counts.deny}</span><span style="background: rgba(140,40,160,.35)">error ${counts.error}</span> system model: ${escapeHtml(table.systemSource)}</p>
${note}
<table>
<thead><tr><th></th>${head}</tr></thead>
<tbody>
${rows}
</tbody>
</table>${offersHtml}
<script nonce="${options.nonce}">
  const vscode = acquireVsCodeApi();
  const titles = ${titlesJson};
  const cellOf = (e) => (e.target instanceof Element ? e.target.closest("td[data-k]") : null);
  const body = document.querySelector("tbody");
  body.addEventListener("mouseover", (e) => {
    const td = cellOf(e);
    if (td && !td.title) td.title = titles[Number(td.dataset.k)] ?? "";
  });
  const open = (td) => vscode.postMessage({ row: td.parentElement.rowIndex - 1, col: td.cellIndex - 1 });
  body.addEventListener("click", (e) => {
    const td = cellOf(e);
    if (td && td.hasAttribute("tabindex")) open(td);
  });
  body.addEventListener("keydown", (e) => {
    const td = cellOf(e);
    if (td && td.hasAttribute("tabindex") && e.key === "Enter") open(td);
  });
</script>
</body>
</html>
`;
}

/**
 * The service, argument, source and target columns of a rule line of a policy file, or
 * `undefined` for comments, directives and short lines. Fields are split on whitespace as
 * the engine does; a wildcard or keyword column is returned as written.
 */
export function ruleColumns(lineText: string): { service: string; argument: string; source: string; target: string } | undefined {
  const fields = lineText.trim().split(/[\s\x1c-\x1f\x85]+/u);
  if (fields.length < 5 || fields[0]!.startsWith("#") || fields[0]!.startsWith("!")) return undefined;
  const [service, argument, source, target] = fields as [string, string, string, string];
  return { service, argument, source, target };
}

/** Whether a rule column names one concrete qube (so a simulation can use it as is). */
export function isConcreteQube(token: string): boolean {
  return token !== "*" && !token.startsWith("@");
}

/**
 * The path of a read-only document titled `title` (its tab shows the last segment): one
 * segment, no control characters, at most 80 characters, ending in `.md` so that VS Code
 * opens it as Markdown.
 */
export function documentPath(title: string): string {
  // eslint-disable-next-line no-control-regex
  let name = title.replace(/[\u0000-\u001f\u007f/\\]+/g, " ").replace(/\s+/g, " ").trim();
  if (name === "") name = "Qubes";
  if (name.length > 80) name = `${name.slice(0, 79)}…`;
  return `/${name}.md`;
}
