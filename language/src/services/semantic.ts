/**
 * Semantic tokens: a classification of every word for syntax colouring that
 * knows the columns (a qube name and a service look alike to a regex).
 */
import type { Span } from "../diagnostics.js";
import { parseQubeToken } from "../syntax/tokens.js";
import type { PolicyDocument, TokenContext, Word } from "../syntax/tree.js";

/** Token types, in legend order (standard LSP type names). */
export const SEMANTIC_TOKEN_TYPES = [
  "function", // service
  "string", // argument, include path
  "variable", // qube name
  "keyword", // action, token keyword (`@anyvm`, `*`)
  "type", // `@type:T`
  "enumMember", // `@tag:T`
  "class", // `@dispvm:T`
  "property", // parameter key
  "macro", // directive
  "comment",
  "number", // parameter yes/no values
] as const;

/** Token modifiers, in legend order. */
export const SEMANTIC_TOKEN_MODIFIERS = ["deprecated", "defaultLibrary", "declaration"] as const;

/** One classified span. */
export interface SemanticToken {
  span: Span;
  type: (typeof SEMANTIC_TOKEN_TYPES)[number];
  modifiers: Array<(typeof SEMANTIC_TOKEN_MODIFIERS)[number]>;
}

function qubeType(text: string, context: TokenContext): SemanticToken["type"] {
  const { token } = parseQubeToken(text, context);
  switch (token?.kind) {
    case "type":
      return "type";
    case "tag":
    case "dispvm-tag":
      return "enumMember";
    case "dispvm-template":
      return "class";
    case "name":
      return "variable";
    case undefined:
      return "variable";
    default:
      return "keyword";
  }
}

/** Classifies every word of a document, in document order. Never throws. */
export function semanticTokens(doc: PolicyDocument): SemanticToken[] {
  const out: SemanticToken[] = [];
  const legacyFile = doc.syntax === "service";
  const push = (w: Word | { span: Span; text: string }, type: SemanticToken["type"], mods: SemanticToken["modifiers"] = []) => {
    if (w.span.end > w.span.start) out.push({ span: w.span, type, modifiers: mods });
  };
  for (const line of doc.lines) {
    if (line.kind === "comment") push({ span: line.span, text: "" }, "comment");
    else if (line.kind === "directive") {
      push(line.name, "macro");
      line.params.forEach((p, i) => {
        const last = i === line.params.length - 1;
        if (line.directive === "include-service" && i === 0) push(p, "function");
        else if (line.directive === "include-service" && i === 1) push(p, "string");
        else push(p, last ? "string" : "variable");
      });
    } else if (line.kind === "rule") {
      for (const w of line.words) {
        const original = doc.text.slice(w.span.start, w.span.end);
        const deprecated: SemanticToken["modifiers"] = !legacyFile && original.startsWith("$") ? ["deprecated"] : [];
        if (w === line.serviceWord) push(w, w.text === "*" ? "keyword" : "function");
        else if (w === line.argumentWord) push(w, w.text === "*" ? "keyword" : "string");
        else if (w === line.sourceWord) push(w, qubeType(w.text, "source"), deprecated);
        else if (w === line.targetWord) push(w, qubeType(w.text, "target"), deprecated);
        else if (w === line.actionWord) push(w, "keyword");
        else {
          const eq = w.text.indexOf("=");
          if (eq < 0) {
            push(w, "variable");
            continue;
          }
          push({ span: { start: w.span.start, end: w.span.start + eq }, text: "" }, "property");
          const key = w.text.slice(0, eq);
          const value = w.text.slice(eq + 1);
          const vspan = { start: w.span.start + eq + 1, end: w.span.end };
          if (key === "target" || key === "default_target") push({ span: vspan, text: value }, qubeType(value, "redirect"), !legacyFile && value.startsWith("$") ? ["deprecated"] : []);
          else if (key === "notify" || key === "autostart") push({ span: vspan, text: value }, "number");
          else push({ span: vspan, text: value }, "string");
        }
      }
    }
  }
  return out;
}
