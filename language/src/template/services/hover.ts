/**
 * Hover in stack files: a property's help text (qubesd's), type, default and
 * when a change takes effect; the documentation of the format's own keys; what
 * a qube name refers to; and the policy hover inside `rules: |` blocks.
 */
import type { Span } from "../../diagnostics.js";
import { DECLARABLE_CLASSES, propertySpec, type DeclarableClass, type PropertySpec } from "../../qubes/properties.js";
import { hover as hoverPolicy } from "../../services/hover.js";
import type { TemplateAnalysis } from "./analysis.js";
import { blockAt, blockToSource } from "./stack-index.js";
import { qubeAt } from "./navigation.js";
import {
  DEVICE_KEYS,
  EXPECT_KEYS,
  KNOWN_FEATURES,
  KNOWN_SERVICES,
  MATCH_KEYS,
  OPTION_KEYS,
  PARAM_KEYS,
  POLICY_KEYS,
  QUBE_KEYS,
  SOURCE_KEYS,
  TOP_KEYS,
  USE_KEYS,
  VOLUME_KEYS,
  type KeyDoc,
} from "./vocabulary.js";
import { yamlContextAt } from "./yaml-context.js";

/** A hover: Markdown for a span of the stack file. */
export interface TemplateHover {
  span: Span;
  markdown: string;
}

const EFFECT: Record<PropertySpec["effect"], string> = {
  live: "applies at once, also to a running qube",
  "next-start": "applies at the next start of the qube",
  "needs-halt": "the qube must be halted to change it",
  none: "no effect on a running qube",
};

/** The Markdown documentation of a property: help text, type, default, effect. */
export function describeProperty(p: PropertySpec): string {
  const type = p.type === "vm" ? `qube name${p.allowNone ? " or `none`" : ""}` : p.type === "label" ? "label" : p.type;
  const lines = [p.help, "", `- type: ${type}${p.vmclass ? ` (a ${p.vmclass})` : ""}${p.dispvmTemplate ? " (a disposable template)" : ""}${p.providesNetwork ? " (provides network)" : ""}`];
  lines.push(`- default: ${p.defaultText || "(none)"}`);
  lines.push(`- effect: ${EFFECT[p.effect]}`);
  if (p.access !== "rw") lines.push(`- access: ${p.access}`);
  return lines.join("\n");
}

function keyDoc(docs: readonly KeyDoc[], key: string): string | undefined {
  const d = docs.find((x) => x.key === key);
  return d ? `**${d.key}** (${d.type})\n\n${d.doc}` : undefined;
}

function classOf(a: TemplateAnalysis, name: string | undefined): DeclarableClass {
  const c = a.index.qubes.find((q) => q.name === name)?.class;
  return c && (DECLARABLE_CLASSES as readonly string[]).includes(c) ? (c as DeclarableClass) : "AppVM";
}

/** The documentation of the key at a path (the path of its mapping, and the key). */
function docForKey(a: TemplateAnalysis, path: string[], key: string): string | undefined {
  const d = path.length;
  if (d === 0) return keyDoc(TOP_KEYS, key);
  if (path[0] === "qubes" && d === 2) {
    const klass = classOf(a, path[1]);
    const spec = propertySpec(klass, key);
    if (spec) return `**${key}** · property of ${klass}\n\n${describeProperty(spec)}`;
    return keyDoc(QUBE_KEYS, key);
  }
  if (path[0] === "qubes" && d === 3) {
    if (path[2] === "features") return keyDoc(KNOWN_FEATURES, key) ?? `feature \`${key}\``;
    if (path[2] === "services") return keyDoc(KNOWN_SERVICES, key) ?? `service \`${key}\` (the feature \`service.${key}\`)`;
    if (path[2] === "source") return keyDoc(SOURCE_KEYS, key);
  }
  if (path[0] === "qubes" && path[2] === "devices" && d === 5) return keyDoc(DEVICE_KEYS, key);
  if (path[0] === "qubes" && path[2] === "devices" && d === 6 && path[5] === "match") return keyDoc(MATCH_KEYS, key);
  if (path[0] === "qubes" && path[2] === "volumes" && d === 4) return keyDoc(VOLUME_KEYS, key);
  if (path[0] === "global" && d === 1) {
    const spec = propertySpec("@global", key);
    return spec ? `**${key}** · global property\n\n${describeProperty(spec)}` : undefined;
  }
  if (path[0] === "options" && d === 1) return keyDoc(OPTION_KEYS, key);
  if (path[0] === "use" && d === 2) return keyDoc(USE_KEYS, key);
  if (path[0] === "policy" && d === 2) return keyDoc(POLICY_KEYS, key);
  if (path[0] === "expect" && d === 2) return keyDoc(EXPECT_KEYS, key);
  if (path[0] === "params" && d === 2) return keyDoc(PARAM_KEYS, key);
  return undefined;
}

/** Hover at `offset` of a stack file. Never throws. */
export function hoverTemplate(a: TemplateAnalysis, offset: number): TemplateHover | undefined {
  try {
    const inBlock = blockAt(a.index, offset);
    if (inBlock) {
      const doc = a.blockDocument(a.path, inBlock.block);
      const h = doc ? hoverPolicy(doc, inBlock.offset, { snapshot: a.policy(), path: a.blockPath(a.path, inBlock.block) }) : undefined;
      return h ? { markdown: h.markdown, span: { start: blockToSource(inBlock.block, h.span.start), end: blockToSource(inBlock.block, h.span.end) } } : undefined;
    }
    const q = qubeAt(a, offset);
    if (q) return { span: q.span, markdown: describeQube(a, q.name) };
    const ctx = yamlContextAt(a.text, offset);
    if (ctx.comment || ctx.at !== "key") return undefined;
    const key = a.text.slice(ctx.span.start, ctx.span.end);
    if (!key) return undefined;
    const md = docForKey(a, ctx.path, key);
    return md ? { span: ctx.span, markdown: md } : undefined;
  } catch {
    return undefined;
  }
}

/** What the stack and the machine know about a qube. */
function describeQube(a: TemplateAnalysis, name: string): string {
  for (const [path, idx] of a.files) {
    const q = idx.qubes.find((x) => x.name === name);
    if (!q) continue;
    const facts = [`**${name}** · ${q.class ?? "qube"} declared in ${path === a.path ? "this file" : `\`${path.slice(path.lastIndexOf("/") + 1)}\``}`];
    for (const key of ["template", "label", "netvm"]) {
      const v = q.values.get(key);
      if (v) facts.push(`- ${key}: \`${v.value}\``);
    }
    if (q.templateForDispvms) facts.push("- disposable template");
    if (q.providesNetwork) facts.push("- provides network");
    if (q.tags.length) facts.push(`- tags: ${q.tags.map((t) => `\`${t.value}\``).join(", ")}`);
    return facts.join("\n");
  }
  const fromBundle = a.bundleQubes.get(name);
  if (fromBundle) {
    const file = [...a.files].find(([, idx]) => idx.qubes.includes(fromBundle))?.[0];
    const facts = [`**${name}** · ${fromBundle.class ?? "qube"} declared by a bundle instance${file ? ` (\`${file.slice(file.lastIndexOf("/") + 1)}\`)` : ""}`];
    for (const key of ["label"]) {
      const v = fromBundle.values.get(key);
      if (v && !v.value.includes("${")) facts.push(`- ${key}: \`${v.value}\``);
    }
    if (fromBundle.templateForDispvms) facts.push("- disposable template");
    if (fromBundle.providesNetwork) facts.push("- provides network");
    return facts.join("\n");
  }
  const info = a.env.system?.domains.get(name);
  if (info) {
    const facts = [`**${name}** · ${info.type ?? "qube"} on the machine (not declared in the stack)`];
    if (info.template_for_dispvms) facts.push("- disposable template");
    if (info.tags?.length) facts.push(`- tags: ${info.tags.map((t) => `\`${t}\``).join(", ")}`);
    return facts.join("\n");
  }
  return `**${name}** · not declared in the stack${a.env.system ? " and not on the machine" : " (no system model: it may exist on the machine)"}`;
}
