/**
 * Inlay hints: what the engine will make of a line, written after it.
 * `@dispvm` (as the target, `target=` or `default_target=`) gets the
 * disposable template it resolves to for the rule's source qubes (their
 * `default_dispvm` in the system model), and a shadowed rule gets the rule
 * that decides its calls first ("shadowed by 30-user.policy:4"). An `ask`
 * to `@default` gets the qubes its dialog offers, for the first source qube
 * it matches (the engine's own target collection, evaluated on the policy).
 */
import type { Span } from "../diagnostics.js";
import type { QubeToken, PolicyDocument } from "../syntax/tree.js";
import { qubesMatching } from "./describe.js";
import { representativeCall } from "./lens.js";
import { evaluateRequest } from "./simulate.js";
import { basename } from "./util.js";
import type { PolicySnapshot } from "./workspace.js";

/** One hint: a label shown at an offset. */
export interface InlayHint {
  /** Where the label is shown (before the character at this offset). */
  offset: number;
  label: string;
  kind: "type" | "note";
  tooltip: string;
}

/** At most this many templates are named in one hint. */
const MAX_NAMED = 3;

/** The disposable templates the `@dispvm` of a rule with this source resolves to, or `undefined` without a system model. */
export function dispvmResolution(source: QubeToken, snapshot: PolicySnapshot): { templates: string[]; sources: number } | undefined {
  const system = snapshot.system;
  if (!system) return undefined;
  const sources = qubesMatching(source, system);
  const templates = new Set<string>();
  let none = 0;
  for (const q of sources) {
    const d = system.domains.get(q)?.default_dispvm;
    if (typeof d === "string" && d) templates.add(d);
    else none++;
  }
  const list = [...templates].sort();
  if (none) list.push("(none)");
  return { templates: list, sources: sources.length };
}

/** The hints of the lines in `range` (the whole document when absent). Never throws. */
export function inlayHints(doc: PolicyDocument, ctx: { snapshot?: PolicySnapshot; path?: string; range?: Span } = {}): InlayHint[] {
  const out: InlayHint[] = [];
  const range = ctx.range ?? { start: 0, end: doc.text.length };
  const shadowed = new Map<number, { file: string; line: number }>();
  if (ctx.snapshot && ctx.path) {
    for (const d of ctx.snapshot.diagnostics.get(ctx.path) ?? []) {
      const by = d.related?.[0];
      if (d.code === "shadowed-rule" && by) shadowed.set(d.line, { file: basename(by.path), line: by.line });
    }
  }
  for (const line of doc.lines) {
    if (line.kind !== "rule" || line.lineSpan.end < range.start || line.lineSpan.start > range.end) continue;
    const rule = line.rule;
    if (rule && ctx.snapshot) {
      const at: Array<[Span, QubeToken]> = [];
      if (rule.target.kind === "dispvm" && line.targetWord) at.push([line.targetWord.span, rule.target]);
      for (const p of line.params) {
        const tok = p.key === "target" ? rule.redirect : p.key === "default_target" ? rule.defaultTarget : null;
        if (tok?.kind === "dispvm") at.push([p.span, tok]);
      }
      for (const [span] of at) {
        const r = dispvmResolution(rule.source, ctx.snapshot);
        if (!r || r.sources === 0) continue;
        const named = r.templates.slice(0, MAX_NAMED).join(", ") + (r.templates.length > MAX_NAMED ? ", …" : "");
        out.push({
          offset: span.end,
          label: `: ${named}`,
          kind: "type",
          tooltip: `\`@dispvm\` starts a disposable of the caller's default_dispvm: ${r.templates.join(", ")} (for ${r.sources} source qube${r.sources === 1 ? "" : "s"} of this rule)`,
        });
      }
    }
    // `ask` to `@default`: what the dialog offers, when this rule decides such a call.
    if (rule && ctx.snapshot?.system && ctx.snapshot.policy && ctx.path && rule.target.kind === "default" && rule.action === "ask" && !rule.redirect && line.targetWord) {
      const call = representativeCall(rule, ctx.snapshot.system);
      if (!("error" in call)) {
        const d = evaluateRequest(ctx.snapshot, call, ctx.snapshot.system);
        const file = ctx.snapshot.rules.find((r) => r.origin.path === ctx.path)?.origin.file;
        if (d.ok && d.action === "ask" && d.rule.line === line.line && d.rule.file === file) {
          const offered = d.targetsForAsk;
          const named = offered.slice(0, MAX_NAMED).join(", ") + (offered.length > MAX_NAMED ? `, … (${offered.length})` : "");
          out.push({
            offset: line.targetWord.span.end,
            label: offered.length ? `: offers ${named}` : ": offers nothing",
            kind: "type",
            tooltip: `for a call from ${call.source}, the dialog offers ${offered.length ? offered.join(", ") : "no qube (the call is refused)"}${d.defaultTarget ? `, ${d.defaultTarget} preselected` : ""}`,
          });
        }
      }
    }
    const by = shadowed.get(line.line);
    if (by) {
      out.push({
        offset: line.span.end,
        label: `shadowed by ${by.file}:${by.line}`,
        kind: "note",
        tooltip: `${by.file} line ${by.line} matches every call this rule matches, so each of them is decided there or by a rule before it; this rule never decides anything`,
      });
    }
  }
  return out;
}
