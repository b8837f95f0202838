/**
 * The diagnostics of a stack file for the editor: everything `checkStack`
 * finds in this file (the strict YAML profile, keys and types per class,
 * cross-references, the embedded policy through the policy core), plus the
 * policy analysis lints of its `rules: |` blocks against the future system
 * model (a rule naming a qube that will not exist…), in the YAML file's
 * offsets. Never throws.
 */
import type { DiagnosticCode } from "../../diagnostics.js";
import type { SystemInfo } from "../../eval/types.js";
import type { AnalysisDiagnostic } from "../../services/analysis.js";
import { checkStack } from "../check.js";
import type { StackSystem, TemplateDiagnostic } from "../types.js";
import { resolveStackPath, type TemplateAnalysis } from "./analysis.js";
import { templatePolicyDiagnostics } from "./policy.js";

/**
 * The checker's view of a live system model: `internal.GetSystemInfo`, or the
 * SDK's richer read with `properties` (the non-default property values).
 * A bare GetSystemInfo answer has no `provides_network`: it is then unknown
 * (the checker flags only a qube known not to provide network), never guessed.
 */
export function stackSystemOf(system: SystemInfo, labels?: readonly string[], storage: Pick<StackSystem, "kernels" | "pools"> = {}): StackSystem {
  const qubes: StackSystem["qubes"] = {};
  for (const [name, info] of system.domains) {
    if (name.startsWith("uuid:")) continue;
    const props = info["properties"] && typeof info["properties"] === "object" ? (info["properties"] as Record<string, unknown>) : undefined;
    const own = (key: string): unknown => (props && key in props ? props[key] : info[key]);
    const pn = own("provides_network");
    const netvm = own("netvm");
    const template = info["template"] ?? props?.["template"];
    qubes[name] = {
      class: info.type ?? "AppVM",
      ...(typeof pn === "boolean" ? { provides_network: pn } : props ? { provides_network: false } : {}),
      template_for_dispvms: info.template_for_dispvms === true,
      tags: info.tags ?? [],
      ...(typeof info.label === "string" && !info.label.startsWith("0x") ? { label: info.label } : {}),
      ...(typeof template === "string" ? { template } : {}),
      ...(typeof netvm === "string" || netvm === null ? { netvm: (netvm as string | null) || null } : {}),
    };
  }
  return { qubes, ...(labels ? { labels: [...labels] } : {}), ...storage };
}

/**
 * The installed kernels and the storage pools a system model file lists
 * (top-level `kernels` and `pools`, as `qkit system snapshot` writes them),
 * for the checks of `kernel:` and pool names; a key that is absent or not a
 * list of names leaves its check off.
 */
export function storageOf(raw: unknown): Pick<StackSystem, "kernels" | "pools"> {
  const out: Pick<StackSystem, "kernels" | "pools"> = {};
  if (!raw || typeof raw !== "object") return out;
  for (const key of ["kernels", "pools"] as const) {
    const v = (raw as Record<string, unknown>)[key];
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) out[key] = [...(v as string[])].sort();
  }
  return out;
}

/** A checker diagnostic in the editor's shape (related places keep their file). */
function toAnalysis(d: TemplateDiagnostic): AnalysisDiagnostic {
  const out: AnalysisDiagnostic = { code: d.code as DiagnosticCode, severity: d.severity, message: d.message, span: d.span, line: d.line, file: d.file };
  if (d.help) out.help = d.help;
  if (d.related?.length) out.related = d.related.map((r) => ({ path: r.file, span: r.span, line: 0, message: r.message }));
  return out;
}

/** The 1-based line of `offset`. */
function lineOf(text: string, offset: number): number {
  let n = 1;
  for (let i = text.indexOf("\n"); i >= 0 && i < offset; i = text.indexOf("\n", i + 1)) n++;
  return n;
}

/** `p` as written from the folder of `from` when it is under it, else absolute. */
function shownPath(from: string, p: string): string {
  const dir = from.slice(0, from.lastIndexOf("/") + 1);
  return dir && p.startsWith(dir) ? p.slice(dir.length) : p;
}

/**
 * The errors of the stack's other files (an `include:` file, a bundle), which
 * the editor shows nowhere while those files are closed although the stack
 * fails to check: one error at each `include:` or `use:` path of this file
 * through which a file with errors is reached (each file counted at the
 * first such path), with how many and the first of them.
 */
function errorsThroughSites(a: TemplateAnalysis, all: readonly TemplateDiagnostic[]): AnalysisDiagnostic[] {
  const byFile = new Map<string, TemplateDiagnostic[]>();
  for (const d of all) {
    if (d.severity !== "error" || d.file === a.path) continue;
    let list = byFile.get(d.file);
    if (!list) byFile.set(d.file, (list = []));
    list.push(d);
  }
  if (!byFile.size) return [];
  const out: AnalysisDiagnostic[] = [];
  const seen = new Set<string>([a.path]);
  const bundles = new Set(a.index.uses.map((u) => u.bundle));
  for (const site of a.index.files) {
    const errors: TemplateDiagnostic[] = [];
    const queue = [resolveStackPath(a.path, site.value)];
    while (queue.length) {
      const p = queue.shift()!;
      if (seen.has(p)) continue;
      seen.add(p);
      errors.push(...(byFile.get(p) ?? []));
      for (const f of a.files.get(p)?.files ?? []) queue.push(resolveStackPath(p, f.value));
    }
    const first = errors[0];
    if (!first) continue;
    const what = bundles.has(site) ? "bundle" : "included file";
    const where = first.file === resolveStackPath(a.path, site.value) ? `line ${first.line}` : `${shownPath(a.path, first.file)} line ${first.line}`;
    const count = errors.length === 1 ? "an error" : `${errors.length} errors`;
    out.push({
      code: "included-file-errors" as DiagnosticCode,
      severity: "error",
      message: `${what} ${site.value} has ${count}, so the stack does not check; ${errors.length === 1 ? "at" : "the first at"} ${where}: ${first.message} [${first.code}]`,
      span: site.span,
      line: lineOf(a.text, site.span.start),
      file: a.path,
      help: "open that file to see its diagnostics, or run `qkit template check` on this stack",
      related: errors.slice(0, 20).map((d) => ({ path: d.file, span: d.span, line: d.line, message: `${d.message} [${d.code}]` })),
    });
  }
  return out;
}

/** Policy lints about names the system model does not know. */
const UNKNOWN_NAME = new Set(["unknown-qube", "unknown-tag", "unknown-type", "unknown-dispvm-template"]);

/** Every diagnostic of the analysed file, sorted by position. */
export function templateDiagnostics(a: TemplateAnalysis): AnalysisDiagnostic[] {
  const out: AnalysisDiagnostic[] = [];
  try {
    const fs = {
      readFile: (p: string): string | undefined => {
        if (p === a.path) return a.text;
        try {
          return a.env.readFile?.(p);
        } catch {
          return undefined;
        }
      },
    };
    const system = a.env.system
      ? { ...stackSystemOf(a.env.system, a.env.labels), ...(a.env.kernels ? { kernels: [...a.env.kernels] } : {}), ...(a.env.pools ? { pools: [...a.env.pools] } : {}) }
      : undefined;
    const result = checkStack(fs, a.path, { documents: a.documents, ...(system ? { system } : {}) });
    for (const d of result.diagnostics) if (d.file === a.path) out.push(toAnalysis(d));
    out.push(...errorsThroughSites(a, result.diagnostics));
  } catch {
    // checkStack never throws; nothing to add if it does.
  }
  // The analysis lints of the policy blocks; engine errors the checker already reported are not repeated.
  const seen = new Set(out.map((d) => `${d.span.start}:${d.message}`));
  const seenCode = new Set(out.map((d) => `${d.span.start}:${d.code}`));
  // A bundle's policy is checked per instance by the checker (its `${param}`s substituted): no lints on the raw text.
  const lints = a.index.kind === "bundle" ? [] : templatePolicyDiagnostics(a);
  for (const d of lints) {
    if (seen.has(`${d.span.start}:${d.message}`) || seenCode.has(`${d.span.start}:${d.code}`)) continue;
    if (d.severity === "error") continue;
    if (a.text.slice(d.span.start, d.span.end).includes("${")) continue;
    // Without a system model a name the stack does not declare may exist on the machine: a note, as the checker says.
    if (!a.env.system && UNKNOWN_NAME.has(d.code)) {
      out.push({ ...d, severity: "info", help: "no system model: it must exist on the machine (configure qubesPolicy.system to check)" });
      continue;
    }
    out.push(d);
  }
  return out.sort((x, y) => x.span.start - y.span.start);
}
