/**
 * Quick fixes for diagnostics: legacy to new syntax, `target=` for an
 * `@default` allow, removing a shadowed rule, renaming a bad file, and
 * "did you mean" replacements.
 */
import type { Span } from "../diagnostics.js";
import type { PolicyDocument, RuleLine } from "../syntax/tree.js";
import type { AnalysisDiagnostic } from "./analysis.js";
import { fixFileName } from "./analysis.js";
import type { TextEdit } from "./format.js";
import { basename, closest, code, dirname, lineByNumber, lineEndWithTerminator } from "./util.js";
import { vocabulary } from "./vocabulary.js";
import { resolveIncludePath } from "./navigation.js";
import type { PolicySnapshot } from "./workspace.js";
import { PARAMS, paramsFor } from "./catalog.js";
import { moveShadowedRule } from "./move.js";

/** A quick fix or refactoring. */
export interface CodeAction {
  title: string;
  kind: "quickfix" | "refactor.rewrite";
  /** The diagnostics it fixes. */
  diagnostics: AnalysisDiagnostic[];
  /** Text edits by absolute path. */
  edits?: Record<string, TextEdit[]>;
  /** A file rename. */
  rename?: { from: string; to: string };
  isPreferred?: boolean;
}

function overlaps(a: Span, b: Span): boolean {
  return a.start <= b.end && b.start <= a.end;
}

function ruleLineOf(doc: PolicyDocument, d: AnalysisDiagnostic): RuleLine | undefined {
  const l = lineByNumber(doc, d.line);
  return l && l.kind === "rule" ? l : undefined;
}

/**
 * The code actions for a span of a document, given the diagnostics of the
 * document (only those overlapping the span are used). Never throws.
 */
export function codeActions(
  doc: PolicyDocument,
  path: string,
  span: Span,
  diagnostics: readonly AnalysisDiagnostic[],
  ctx: { snapshot?: PolicySnapshot } = {},
): CodeAction[] {
  const out: CodeAction[] = [];
  const edit = (e: TextEdit[]) => ({ [path]: e });
  for (const d of diagnostics) {
    if (!overlaps(d.span, span) && d.code !== "filename-disables-policy" && d.code !== "invalid-filename") continue;
    const replacement = typeof d.data?.replacement === "string" ? d.data.replacement : undefined;
    switch (d.code) {
      case "unknown-qube":
      case "unknown-tag":
      case "unknown-type":
      case "unknown-dispvm-template":
      case "redirect-target-missing":
      case "service-case-mismatch":
        if (replacement !== undefined) out.push({ title: `replace with ${code(replacement)}`, kind: "quickfix", diagnostics: [d], edits: edit([{ span: d.span, newText: replacement }]), isPreferred: true });
        break;
      case "legacy-token-in-new-format":
        out.push({ title: `convert legacy ${code(doc.text.slice(d.span.start, d.span.end))} to new syntax`, kind: "quickfix", diagnostics: [d], edits: edit([{ span: { start: d.span.start, end: d.span.start + 1 }, newText: "@" }]), isPreferred: true });
        break;
      case "invalid-action": {
        const line = ruleLineOf(doc, d);
        const w = line?.actionWord;
        if (!w) break;
        const text = doc.text.slice(w.span.start, w.span.end);
        if (text.includes(",")) {
          // A legacy `allow,target=x` action: commas separate parameters only in the old syntax.
          const fixed = text.split(",").filter(Boolean).join(" ").replace(/\$/g, "@");
          out.push({ title: `convert legacy ${code(text)} to new syntax`, kind: "quickfix", diagnostics: [d], edits: edit([{ span: w.span, newText: fixed }]), isPreferred: true });
        } else {
          for (const a of closest(text, ["allow", "deny", "ask"], 1)) {
            out.push({ title: `replace with ${code(a)}`, kind: "quickfix", diagnostics: [d], edits: edit([{ span: w.span, newText: a }]), isPreferred: true });
          }
        }
        break;
      }
      case "default-target-required": {
        const line = ruleLineOf(doc, d);
        if (!line?.actionWord) break;
        const end = line.words[line.words.length - 1]!.span.end;
        const vocab = vocabulary(ctx.snapshot);
        const candidates = ["@dispvm", ...[...vocab.dispvmTemplates.keys()].slice(0, 3).map((t) => `@dispvm:${t}`), "dom0"];
        candidates.forEach((c, i) =>
          out.push({ title: `add target=${c}`, kind: "quickfix", diagnostics: [d], edits: edit([{ span: { start: end, end }, newText: ` target=${c}` }]), isPreferred: i === 0 }),
        );
        out.push({ title: "change the action to ask", kind: "quickfix", diagnostics: [d], edits: edit([{ span: line.actionWord.span, newText: "ask" }]) });
        break;
      }
      case "shadowed-rule": {
        const line = lineByNumber(doc, d.line);
        if (!line) break;
        if (d.data?.removable === true) {
          out.push({ title: "remove the shadowed rule", kind: "quickfix", diagnostics: [d], edits: edit([{ span: { start: line.lineSpan.start, end: lineEndWithTerminator(doc, line) }, newText: "" }]) });
        }
        const move = ctx.snapshot ? moveShadowedRule(doc, path, d, ctx.snapshot) : undefined;
        if (move) out.push({ title: move.title, kind: "quickfix", diagnostics: [d], edits: move.edits });
        break;
      }
      case "invalid-yes-no": {
        const line = ruleLineOf(doc, d);
        const p = line?.params.find((x) => x.span.start === d.span.start);
        if (!p) break;
        const v = p.value.toLowerCase();
        const truthy = ["true", "1", "on", "y", "enable", "enabled"].includes(v);
        const falsy = ["false", "0", "off", "n", "disable", "disabled", "none"].includes(v);
        for (const value of ["yes", "no"]) {
          out.push({
            title: `replace with ${code(`${p.key}=${value}`)}`,
            kind: "quickfix",
            diagnostics: [d],
            edits: edit([{ span: p.span, newText: `${p.key}=${value}` }]),
            ...((value === "yes" && truthy) || (value === "no" && falsy) ? { isPreferred: true } : {}),
          });
        }
        break;
      }
      case "invalid-params-for-action": {
        const line = ruleLineOf(doc, d);
        const actionText = line?.actionWord?.text;
        // Legacy lines join parameters with commas: removing a word there would leave one behind.
        if (!line || doc.syntax !== "policy" || (actionText !== "allow" && actionText !== "deny" && actionText !== "ask")) break;
        const allowed = paramsFor(actionText).map((x) => x.key);
        const known = PARAMS.map((x) => x.key);
        const written = new Set(line.params.map((x) => x.key));
        for (const p of line.params) {
          if (!p.key || allowed.includes(p.key)) continue;
          const remove: CodeAction = {
            title: `remove ${code(`${p.key}=${p.value}`)}`,
            kind: "quickfix",
            diagnostics: [d],
            edits: edit([{ span: removalSpan(doc, p.span), newText: "" }]),
          };
          if (known.includes(p.key)) {
            // A key of the spec that this action does not take.
            out.push({ ...remove, title: `${remove.title} (${code(actionText)} does not take ${code(p.key + "=")})`, isPreferred: true });
            if (p.key === "default_target" && actionText === "allow") {
              out.push({ title: "change the action to ask", kind: "quickfix", diagnostics: [d], edits: edit([{ span: line.actionWord!.span, newText: "ask" }]) });
            }
          } else {
            const guesses = closest(p.key, allowed.filter((k) => !written.has(k)), 2);
            for (const g of guesses) {
              out.push({ title: `replace with ${code(`${g}=${p.value}`)} (did you mean ${code(g)}?)`, kind: "quickfix", diagnostics: [d], edits: edit([{ span: p.span, newText: `${g}=${p.value}` }]), isPreferred: g === guesses[0] });
            }
            out.push(remove);
          }
        }
        break;
      }
      case "filename-disables-policy":
      case "invalid-filename": {
        const to = typeof d.data?.rename === "string" ? d.data.rename : `${dirname(path)}/${fixFileName(basename(path))}`;
        // Renaming onto an existing file cannot apply (and would hide that file): not offered.
        const taken = ctx.snapshot?.fs.stat(to) !== undefined && ctx.snapshot !== undefined;
        if (to !== path && !taken && basename(path).endsWith(".policy")) out.push({ title: `rename the file to ${code(basename(to))}`, kind: "quickfix", diagnostics: [d], rename: { from: path, to }, isPreferred: true });
        break;
      }
      case "inline-comment": {
        const line = ruleLineOf(doc, d);
        if (!line) break;
        const hash = line.words.find((w) => w.text.startsWith("#"));
        if (!hash) break;
        const body = doc.text.slice(hash.span.start, line.span.end);
        const lineStart = line.lineSpan.start;
        const lineText = doc.text.slice(lineStart, hash.span.start).replace(/\s+$/, "");
        out.push({
          title: "move the comment to its own line",
          kind: "quickfix",
          diagnostics: [d],
          edits: edit([{ span: { start: lineStart, end: line.span.end }, newText: `${body}\n${lineText.trimStart()}` }]),
        });
        break;
      }
      default:
        break;
    }
  }
  // Refactoring: inline an `!include-service` file as new-format rules.
  if (ctx.snapshot && doc.syntax === "policy") {
    const inline = inlineIncludeService(doc, path, span, ctx.snapshot);
    if (inline) out.push(inline);
  }
  // Refactoring: convert every legacy `$` token of a line in a new-format file at once.
  if (doc.syntax === "policy") {
    const legacy = diagnostics.filter((d) => d.code === "legacy-token-in-new-format");
    if (legacy.length > 1) {
      out.push({
        title: "convert every legacy `$` token in this file to new syntax",
        kind: "quickfix",
        diagnostics: legacy,
        edits: edit(legacy.map((d) => ({ span: { start: d.span.start, end: d.span.start + 1 }, newText: "@" }))),
      });
    }
  }
  return out;
}

/** The span to delete for a word: the word and the whitespace before it. */
function removalSpan(doc: PolicyDocument, span: Span): Span {
  let start = span.start;
  while (start > 0 && (doc.text[start - 1] === " " || doc.text[start - 1] === "\t")) start--;
  return { start, end: span.end };
}

/**
 * "Convert to new syntax" for an `!include-service SERVICE ARGUMENT PATH`
 * line: the legacy file's rules, written in the new format with the service
 * and argument columns, replace the directive (comments kept). Offered only
 * when the legacy file has no errors and no includes of its own.
 */
function inlineIncludeService(doc: PolicyDocument, path: string, span: Span, snapshot: PolicySnapshot): CodeAction | undefined {
  const line = doc.lines.find((l) => l.lineSpan.start <= span.start && span.start <= l.lineSpan.end);
  if (!line || line.kind !== "directive" || line.directive !== "include-service" || line.params.length !== 3) return undefined;
  if (doc.diagnostics.some((d) => d.line === line.line && d.severity === "error")) return undefined;
  const target = resolveIncludePath(snapshot, path, line.params[2]!.text);
  const legacy = snapshot.document(target);
  if (!legacy || legacy.syntax !== "service" || legacy.diagnostics.some((d) => d.severity === "error")) return undefined;
  if (legacy.lines.some((l) => l.kind === "directive")) return undefined;
  const service = line.params[0]!.text;
  const argument = line.params[1]!.text;
  const out: string[] = [`# converted from ${line.params[2]!.text} (legacy R4.0 syntax)`];
  for (const l of legacy.lines) {
    if (l.kind === "blank") out.push("");
    else if (l.kind === "comment") out.push(legacy.text.slice(l.span.start, l.span.end));
    else if (l.kind === "rule") out.push([service, argument, ...l.words.map((w) => w.text)].join("  "));
  }
  while (out.length > 1 && out[out.length - 1] === "") out.pop();
  return {
    title: `convert ${code(line.params[2]!.text)} to new syntax here`,
    kind: "refactor.rewrite",
    diagnostics: [],
    edits: { [path]: [{ span: line.span, newText: out.join("\n") }] },
  };
}
