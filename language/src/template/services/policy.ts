/**
 * The policy services inside `rules: |` blocks, in the YAML file's offsets:
 * diagnostics of the block as the generated policy file (engine errors and
 * analysis lints against the future system model), and semantic tokens.
 */
import type { Span } from "../../diagnostics.js";
import type { AnalysisDiagnostic } from "../../services/analysis.js";
import { semanticTokens, type SemanticToken } from "../../services/semantic.js";
import { formatDocument, type TextEdit } from "../../services/format.js";
import { codeActions } from "../../services/actions.js";
import type { TemplateAnalysis } from "./analysis.js";
import { blockToSource, sourceToBlock, type PolicyBlock } from "./stack-index.js";

function mapSpan(block: PolicyBlock, span: Span): Span {
  return { start: blockToSource(block, span.start), end: blockToSource(block, span.end) };
}

/** The diagnostics of this file's policy blocks, as the generated files would get them, mapped into the YAML file. */
export function templatePolicyDiagnostics(a: TemplateAnalysis): AnalysisDiagnostic[] {
  const out: AnalysisDiagnostic[] = [];
  try {
    const snapshot = a.policy();
    for (const block of a.index.policyBlocks) {
      const path = a.blockPath(a.path, block);
      for (const d of snapshot.diagnostics.get(path) ?? []) {
        const { related: _related, ...rest } = d;
        out.push({ ...rest, span: mapSpan(block, d.span), file: a.path });
      }
    }
  } catch {
    // Never throws: a failure of the policy core leaves the blocks without diagnostics.
  }
  return out;
}

/** Semantic tokens of the policy blocks, in the YAML file's offsets (one line each). */
export function templateSemanticTokens(a: TemplateAnalysis): SemanticToken[] {
  const out: SemanticToken[] = [];
  try {
    for (const block of a.index.policyBlocks) {
      const doc = a.blockDocument(a.path, block);
      if (!doc) continue;
      for (const t of semanticTokens(doc)) out.push({ ...t, span: mapSpan(block, t.span) });
    }
  } catch {
    return out;
  }
  return out;
}

/**
 * Formatting of the policy blocks (the policy formatter's column alignment), in the YAML
 * file's offsets: each edit replaces the text of one block line after the block's
 * indentation, so the YAML around the blocks is never touched. With `range`, only the
 * lines that meet it.
 */
export function templateFormatEdits(a: TemplateAnalysis, range?: Span): TextEdit[] {
  const out: TextEdit[] = [];
  try {
    for (const block of a.index.policyBlocks) {
      if (range && (block.span.end < range.start || block.span.start > range.end)) continue;
      const doc = a.blockDocument(a.path, block);
      if (!doc) continue;
      for (const e of formatDocument(doc)) {
        if (block.text.slice(e.span.start, e.span.end).includes("\n") || e.newText.includes("\n")) continue;
        const span = mapSpan(block, e.span);
        if (range && (span.end < range.start || span.start > range.end)) continue;
        out.push({ span, newText: e.newText });
      }
    }
  } catch {
    return [];
  }
  return out;
}

/** A quick fix of a policy block, in the YAML file's offsets. */
export interface TemplateCodeAction {
  title: string;
  kind: "quickfix" | "refactor.rewrite";
  diagnostics: AnalysisDiagnostic[];
  edits: TextEdit[];
  isPreferred?: boolean;
}

/**
 * The policy quick fixes (`alow` → `allow`, a misspelt qube…) of the policy blocks that
 * meet `span`. Only fixes that edit the block itself, within its lines, are offered (a
 * fix that renames a file or adds lines does not apply to a block).
 */
export function templateCodeActions(a: TemplateAnalysis, span: Span): TemplateCodeAction[] {
  const out: TemplateCodeAction[] = [];
  try {
    const snapshot = a.policy();
    for (const block of a.index.policyBlocks) {
      if (span.end < block.span.start || span.start > block.span.end) continue;
      const doc = a.blockDocument(a.path, block);
      if (!doc) continue;
      const path = a.blockPath(a.path, block);
      const start = sourceToBlock(block, span.start) ?? 0;
      const end = sourceToBlock(block, span.end) ?? block.text.length;
      const diags = snapshot.diagnostics.get(path) ?? [];
      for (const action of codeActions(doc, path, { start, end: Math.max(start, end) }, diags, { snapshot })) {
        if (action.rename || !action.edits) continue;
        const paths = Object.keys(action.edits);
        if (paths.some((p) => p !== path)) continue;
        const edits = action.edits[path] ?? [];
        if (!edits.length || edits.some((e) => e.newText.includes("\n") || block.text.slice(e.span.start, e.span.end).includes("\n"))) continue;
        out.push({
          title: action.title,
          kind: action.kind,
          diagnostics: action.diagnostics.map(({ related: _r, ...d }) => ({ ...d, span: mapSpan(block, d.span), file: a.path })),
          edits: edits.map((e) => ({ span: mapSpan(block, e.span), newText: e.newText })),
          ...(action.isPreferred ? { isPreferred: true } : {}),
        });
      }
    }
  } catch {
    return out;
  }
  return out;
}
