/**
 * Code lenses of a stack file: "plan" and "what-if" on the `stack:` line,
 * "what-if" on `expect:` and on each policy entry. The language server turns
 * them into commands that run the SDK's plan and what-if.
 */
import type { Span } from "../../diagnostics.js";
import type { TemplateAnalysis } from "./analysis.js";

/** One code lens: what it runs, and where. */
export interface TemplateLens {
  span: Span;
  title: string;
  command: "plan" | "whatif";
}

/** The code lenses of a stack file (none for a bundle: it is planned through the stacks that use it). */
export function templateLenses(a: TemplateAnalysis): TemplateLens[] {
  const idx = a.index;
  if (idx.kind !== "stack" || !idx.headSpan) return [];
  const at = (s: Span): Span => ({ start: s.start, end: s.start });
  const out: TemplateLens[] = [
    { span: at(idx.headSpan), title: "plan against this machine", command: "plan" },
    { span: at(idx.headSpan), title: "what-if", command: "whatif" },
  ];
  const expect = idx.topKeys.get("expect");
  if (expect) out.push({ span: at(expect), title: "what-if: check the expectations", command: "whatif" });
  for (const b of idx.policyBlocks) out.push({ span: at(b.entrySpan), title: `what-if: decisions changed by ${b.file}`, command: "whatif" });
  return out;
}
