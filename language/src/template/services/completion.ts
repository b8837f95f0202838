/**
 * Completion in stack files: keys per level and per qube class, values by
 * what the position requires (classes, labels, qubes filtered by role, enum
 * values, features, services, tags, device ports), and the policy services
 * inside `rules: |` blocks with their spans mapped back to the YAML file.
 */
import type { Span } from "../../diagnostics.js";
import {
  DECLARABLE_CLASSES,
  GLOBAL_PROPERTIES,
  propertySpec,
  STANDARD_LABELS,
  writableProperties,
  type DeclarableClass,
  type PropertySpec,
} from "../../qubes/properties.js";
import { complete as completePolicy, type CompletionKind } from "../../services/completion.js";
import { resolveStackPath, type TemplateAnalysis } from "./analysis.js";
import { blockAt, blockToSource, type IndexedQube } from "./stack-index.js";
import {
  DECISIONS,
  DEVICE_CLASSES,
  DEVICE_KEYS,
  DEVICE_MODES,
  EXPECT_KEYS,
  KNOWN_FEATURES,
  KNOWN_SERVICES,
  MATCH_CLASSES,
  MATCH_KEYS,
  OPTION_KEYS,
  PARAM_KEYS,
  PARAM_TYPES,
  POLICY_KEYS,
  QUBE_KEYS,
  RESTART_MODES,
  SOURCE_KEYS,
  STATES,
  TOP_KEYS,
  USE_KEYS,
  VIRT_MODES,
  VOLUME_KEYS,
  VOLUME_NAMES,
  type KeyDoc,
} from "./vocabulary.js";
import { yamlContextAt, type YamlContext } from "./yaml-context.js";
import { describeProperty } from "./hover.js";
import { stackSystemOf } from "./diagnostics.js";

/** What a template completion item stands for. */
export type TemplateCompletionKind = CompletionKind | "key" | "property" | "class" | "label" | "enum" | "feature" | "device";

/** One completion proposal in a stack file. */
export interface TemplateCompletionItem {
  label: string;
  kind: TemplateCompletionKind;
  detail?: string;
  documentation?: string;
  /** Text that replaces {@link span} (default: the label). */
  insertText?: string;
  span: Span;
  filterText?: string;
  sortText?: string;
  retrigger?: boolean;
}

/** A qube the stack declares or the machine has, with what completion filters on. */
export interface QubeCandidate {
  name: string;
  klass: string | undefined;
  templateForDispvms: boolean;
  /** `undefined` when the source does not say (a live model without the property). */
  providesNetwork: boolean | undefined;
  declared: boolean;
  tags: string[];
}

/**
 * Every qube the stack declares (in any of its files) and every live qube, with
 * `provides_network` and `template_for_dispvms` as the checker resolves them
 * after apply: the declared value, else the live one (read as `checkStack` reads
 * the system model), else qubesd's default false for a new qube. Qubes the stack
 * removes (`absent: true`) are left out.
 */
export function qubeCandidates(a: TemplateAnalysis): QubeCandidate[] {
  const out = new Map<string, QubeCandidate>();
  const live = a.env.system ? stackSystemOf(a.env.system).qubes : {};
  const absent = new Set<string>();
  const declare = (q: IndexedQube) => {
    if (q.name.includes("${") || out.has(q.name) || absent.has(q.name)) return;
    if (q.values.get("absent")?.value === "true") {
      absent.add(q.name);
      return;
    }
    const l = Object.hasOwn(live, q.name) ? live[q.name] : undefined;
    out.set(q.name, {
      name: q.name,
      klass: q.class,
      templateForDispvms: q.keys.has("template_for_dispvms") ? q.templateForDispvms : l ? l.template_for_dispvms === true : false,
      providesNetwork: q.keys.has("provides_network") ? q.providesNetwork : l ? l.provides_network : false,
      declared: true,
      tags: q.tags.map((t) => t.value),
    });
  };
  for (const idx of a.files.values()) for (const q of idx.qubes) declare(q);
  for (const q of a.bundleQubes.values()) declare(q);
  for (const [name, q] of Object.entries(live)) {
    if (out.has(name) || absent.has(name)) continue;
    out.set(name, { name, klass: q.class, templateForDispvms: q.template_for_dispvms === true, providesNetwork: q.provides_network, declared: false, tags: q.tags ?? [] });
  }
  return [...out.values()];
}

function keyItems(docs: readonly KeyDoc[], ctx: YamlContext, sort = "1"): TemplateCompletionItem[] {
  return docs
    .filter((d) => !ctx.siblings.includes(d.key))
    .map((d) => ({ label: d.key, kind: "key" as const, detail: d.type, documentation: d.doc, insertText: `${d.key}: `, filterText: d.key, span: ctx.span, sortText: `${sort}${d.key}` }));
}

function valueItems(values: readonly string[], ctx: YamlContext, kind: TemplateCompletionKind = "enum", detail?: string): TemplateCompletionItem[] {
  return values.map((v) => ({ label: v, kind, span: ctx.span, ...(detail ? { detail } : {}) }));
}

function propertyItems(specs: readonly PropertySpec[], ctx: YamlContext, skip: ReadonlySet<string>): TemplateCompletionItem[] {
  return specs
    .filter((p) => p.access === "rw" && !skip.has(p.name) && !ctx.siblings.includes(p.name))
    .map((p) => ({
      label: p.name,
      kind: "property" as const,
      detail: `${p.type}${p.allowNone ? " | none" : ""} · ${p.effect}`,
      documentation: describeProperty(p),
      insertText: `${p.name}: `,
      filterText: p.name,
      span: ctx.span,
      sortText: `2${p.name}`,
    }));
}

/** The qube entry the path `qubes.NAME…` is in. */
function qubeOf(a: TemplateAnalysis, path: string[]): IndexedQube | undefined {
  if (path[0] !== "qubes" || path.length < 2) return undefined;
  return a.index.qubes.find((q) => q.name === path[1]);
}

function classOf(q: IndexedQube | undefined): DeclarableClass {
  const c = q?.class;
  return c && (DECLARABLE_CLASSES as readonly string[]).includes(c) ? (c as DeclarableClass) : "AppVM";
}

function qubeItem(c: QubeCandidate, span: Span, why: string): TemplateCompletionItem {
  return {
    label: c.name,
    kind: "qube",
    detail: `${c.klass ?? "qube"}${c.declared ? " · declared in the stack" : " · on the machine"}`,
    documentation: why,
    span,
    sortText: `${c.declared ? "1" : "2"}${c.name}`,
  };
}

/** Qube names for a VM-valued key, filtered by what qubesd accepts there. */
function vmValueItems(a: TemplateAnalysis, spec: PropertySpec, self: string | undefined, klass: DeclarableClass | "@global", ctx: YamlContext): TemplateCompletionItem[] {
  const out: TemplateCompletionItem[] = [];
  // Offered for netvm: what `checkStack` accepts there, a qube that provides network after apply. A
  // qube the system model says nothing about is offered last, unless the model records
  // provides_network for some qube (a `qkit system snapshot` does, for the qubes it read): it then
  // leaves it out only for qubes that do not provide network.
  const candidates = qubeCandidates(a);
  const recorded = spec.providesNetwork === true && candidates.some((c) => !c.declared && c.providesNetwork !== undefined);
  if (spec.allowNone) out.push({ label: "none", kind: "keyword", detail: "no qube", span: ctx.span, sortText: "0none" });
  if (klass !== "@global" && spec.name !== "template") out.push({ label: "default", kind: "keyword", detail: `reset: ${spec.defaultText}`, span: ctx.span, sortText: "0default" });
  for (const c of candidates) {
    if (c.name === self) continue;
    if (spec.name === "template" && klass === "DispVM") {
      if (c.templateForDispvms) out.push(qubeItem(c, ctx.span, "a disposable template (`template_for_dispvms: true`)"));
    } else if (spec.vmclass) {
      if (c.klass === spec.vmclass) out.push(qubeItem(c, ctx.span, `a ${spec.vmclass}`));
    } else if (spec.dispvmTemplate) {
      if (c.templateForDispvms) out.push(qubeItem(c, ctx.span, "a disposable template (`template_for_dispvms: true`)"));
    } else if (spec.providesNetwork) {
      if (c.providesNetwork === true) out.push(qubeItem(c, ctx.span, "provides network"));
      else if (c.providesNetwork === undefined && !recorded && c.klass !== "TemplateVM" && c.klass !== "AdminVM") {
        out.push({ ...qubeItem(c, ctx.span, "the system model does not say whether it provides network"), sortText: `3${c.name}` });
      }
    } else if (c.klass !== "TemplateVM" || spec.name === "clockvm" || spec.name === "updatevm") {
      out.push(qubeItem(c, ctx.span, ""));
    }
  }
  return out;
}

function labelNames(a: TemplateAnalysis): string[] {
  const names = new Set<string>(a.env.labels ?? STANDARD_LABELS);
  for (const idx of a.files.values()) for (const l of idx.labels.keys()) names.add(l);
  return [...names];
}

/** Every tag the stack declares, the live system has, or the stack's policy names. */
function tagNames(a: TemplateAnalysis): string[] {
  const tags = new Set<string>();
  for (const idx of a.files.values()) for (const q of idx.qubes) for (const t of q.tags) tags.add(t.value);
  if (a.env.system) for (const info of a.env.system.domains.values()) for (const t of info.tags ?? []) tags.add(t);
  for (const idx of a.files.values()) for (const b of idx.policyBlocks) for (const m of b.text.matchAll(/@tag:([A-Za-z0-9_-]+)/g)) tags.add(m[1]!);
  return [...tags].sort();
}

function propertyValueItems(a: TemplateAnalysis, spec: PropertySpec, q: IndexedQube | undefined, klass: DeclarableClass | "@global", ctx: YamlContext): TemplateCompletionItem[] {
  if (spec.type === "vm") return vmValueItems(a, spec, q?.name, klass, ctx);
  const items: TemplateCompletionItem[] = [];
  if (spec.type === "label") items.push(...valueItems(labelNames(a), ctx, "label"));
  else if (spec.type === "bool") items.push(...valueItems(["true", "false"], ctx, "enum"));
  else if (spec.name === "virt_mode") items.push(...valueItems(VIRT_MODES, ctx));
  else if ((spec.name === "kernel" || spec.name === "default_kernel") && a.env.kernels) items.push(...valueItems(a.env.kernels, ctx, "enum", "installed kernel"));
  if (spec.allowNone) items.push({ label: "none", kind: "keyword", span: ctx.span, sortText: "0none" });
  // `template` and `label` have no default to reset to (the checker's cannot-reset).
  if ((klass !== "@global" || spec.access === "rw") && spec.type !== "label" && spec.name !== "template") items.push({ label: "default", kind: "keyword", detail: `reset: ${spec.defaultText}`, span: ctx.span, sortText: "0default" });
  return items;
}

function completeQubeValue(a: TemplateAnalysis, ctx: YamlContext, q: IndexedQube | undefined, key: string): TemplateCompletionItem[] {
  const klass = classOf(q);
  switch (key) {
    case "class":
      return valueItems(DECLARABLE_CLASSES, ctx, "class");
    case "state":
      return valueItems(STATES, ctx);
    case "absent":
    case "protect":
      return valueItems(["true", "false"], ctx);
    case "moved_from":
      // A qube of the machine of the same class that the stack does not declare (a move keeps the class; a declared one cannot be moved away).
      return qubeCandidates(a)
        .filter((c) => !c.declared && c.name !== q?.name && c.klass === klass)
        .map((c) => qubeItem(c, ctx.span, ""));
  }
  const spec = propertySpec(klass, key);
  return spec ? propertyValueItems(a, spec, q, klass, ctx) : [];
}

function deviceItems(a: TemplateAnalysis, ctx: YamlContext, devclass: string, backend: string | undefined): TemplateCompletionItem[] {
  return (a.env.devices ?? [])
    .filter((d) => d.devclass === devclass && (!backend || d.backend === backend))
    .map((d) => ({
      label: d.port,
      kind: "device" as const,
      detail: `${d.backend}${d.description ? ` · ${d.description}` : ""}`,
      ...(d.deviceId ? { documentation: `device id \`${d.deviceId}\`` } : {}),
      span: ctx.span,
    }));
}

/** Completion of keys and values outside policy blocks. */
function completeYaml(a: TemplateAnalysis, ctx: YamlContext): TemplateCompletionItem[] {
  const p = ctx.path;
  const q = qubeOf(a, p);
  const depth = p.length;
  if (ctx.at === "key") {
    if (depth === 0) return keyItems(TOP_KEYS.filter((d) => (a.index.kind === "bundle" ? d.key !== "stack" : d.key !== "bundle" && d.key !== "params" && d.key !== "description")), ctx);
    if (p[0] === "qubes" && depth === 2) {
      const klass = classOf(q);
      const own = new Set(["name", "qid", "uuid", "dispid"]);
      return [...keyItems(QUBE_KEYS.filter((d) => d.key !== "source" || klass === "TemplateVM" || klass === "StandaloneVM"), ctx), ...propertyItems(writableProperties(klass), ctx, own)];
    }
    if (p[0] === "qubes" && depth === 3) {
      switch (p[2]) {
        case "source":
          return keyItems(SOURCE_KEYS, ctx);
        case "features":
          return keyItems(KNOWN_FEATURES, ctx).map((i) => ({ ...i, kind: "feature" as const }));
        case "services":
          // meminfo-writer is refused by the checker (qubesd rewrites it into maxmem): not offered.
          return keyItems(KNOWN_SERVICES.filter((d) => d.key !== "meminfo-writer"), ctx).map((i) => ({ ...i, kind: "feature" as const }));
        case "devices":
          return keyItems(DEVICE_CLASSES, ctx);
        case "volumes":
        case "pools":
          return keyItems(VOLUME_NAMES, ctx);
      }
    }
    if (p[0] === "qubes" && depth === 4 && p[2] === "tags" && p[3] === "-") return valueItems(tagNames(a), ctx, "tag");
    if (p[0] === "qubes" && depth === 4 && p[2] === "ignore_changes" && p[3] === "-") {
      return valueItems([...QUBE_KEYS.map((d) => d.key), ...writableProperties(classOf(q)).map((s) => s.name)], ctx, "property");
    }
    if (p[0] === "qubes" && depth === 4 && p[2] === "volumes") return keyItems(VOLUME_KEYS, ctx);
    if (p[0] === "qubes" && depth === 5 && p[2] === "devices" && p[4] === "-") return keyItems(DEVICE_KEYS, ctx);
    if (p[0] === "qubes" && depth === 6 && p[2] === "devices" && p[5] === "match") return keyItems(MATCH_KEYS, ctx);
    if (p[0] === "qubes" && depth === 6 && p[2] === "devices" && p[5] === "options") return keyItems([{ key: "no-strict-reset", type: "bool", doc: "Allow a PCI device without a reset method." }, { key: "permissive", type: "bool", doc: "Permissive mode for the PCI device (access to config space)." }], ctx);
    if (depth === 1 && p[0] === "global") return propertyItems(GLOBAL_PROPERTIES, ctx, new Set());
    if (depth === 1 && p[0] === "options") return keyItems(OPTION_KEYS, ctx);
    if (depth === 2 && p[0] === "use" && p[1] === "-") return keyItems(USE_KEYS, ctx);
    if (depth === 2 && p[0] === "include" && p[1] === "-") return pathItems(a, ctx, "fragment");
    if (depth === 3 && p[0] === "use" && p[2] === "with") return bundleParamItems(a, ctx);
    if (depth === 2 && p[0] === "policy" && p[1] === "-") return keyItems(POLICY_KEYS, ctx);
    if (depth === 2 && p[0] === "expect" && p[1] === "-") return keyItems(EXPECT_KEYS, ctx);
    if (depth === 2 && p[0] === "params") return keyItems(PARAM_KEYS, ctx);
    return [];
  }
  const key = ctx.key ?? "";
  if (depth === 0) return [];
  if (p[0] === "qubes" && depth === 2) return completeQubeValue(a, ctx, q, key);
  if (p[0] === "qubes" && depth === 3 && p[2] === "source" && key === "clone") return qubeCandidates(a).filter((c) => c.name !== q?.name && c.klass !== "AdminVM").map((c) => qubeItem(c, ctx.span, ""));
  if (p[0] === "qubes" && depth === 3 && (p[2] === "features" || p[2] === "services")) return valueItems(["true", "false", "null"], ctx);
  if (p[0] === "qubes" && depth === 5 && p[2] === "devices" && p[4] === "-") {
    const devclass = p[3]!;
    if (key === "mode") return valueItems(DEVICE_MODES, ctx);
    if (key === "backend") return qubeCandidates(a).map((c) => qubeItem(c, ctx.span, ""));
    if (key === "port") return deviceItems(a, ctx, devclass, devicePortQuery(a, ctx.span.start)?.backend);
  }
  if (p[0] === "qubes" && depth === 6 && p[5] === "match" && key === "class") return valueItems(MATCH_CLASSES, ctx);
  if (p[0] === "qubes" && depth === 6 && p[5] === "options") return valueItems(["true", "false"], ctx);
  if (p[0] === "global" && depth === 1) {
    const spec = propertySpec("@global", key);
    return spec ? propertyValueItems(a, spec, undefined, "@global", ctx) : [];
  }
  if (p[0] === "options" && depth === 1) {
    if (key === "restart") return valueItems(RESTART_MODES, ctx);
    if (key === "prune" || key === "adopt") return valueItems(["true", "false"], ctx);
  }
  if (p[0] === "expect" && depth === 2 && key === "decision") return valueItems(DECISIONS, ctx);
  if (p[0] === "use" && depth === 2 && key === "bundle") return pathItems(a, ctx, "bundle");
  if (p[0] === "params" && depth === 2 && key === "type") return valueItems(PARAM_TYPES, ctx);
  if (p[0] === "use" && depth === 3 && p[2] === "with") return qubeCandidates(a).map((c) => qubeItem(c, ctx.span, ""));
  return [];
}

/**
 * Stack files for `include:` entries and `use[].bundle`, as paths relative to this file:
 * the `*.qubes.yaml` files of the folder the typed prefix names, and its sub-folders.
 */
function pathItems(a: TemplateAnalysis, ctx: YamlContext, want: "bundle" | "fragment"): TemplateCompletionItem[] {
  if (!a.env.readDir) return [];
  const typed = ctx.prefix;
  const slash = typed.lastIndexOf("/");
  const dirPart = slash >= 0 ? typed.slice(0, slash + 1) : "./";
  const dir = resolveStackPath(a.path, dirPart === "./" ? "." : dirPart);
  let names: string[] | undefined;
  try {
    names = a.env.readDir(dir);
  } catch {
    names = undefined;
  }
  const out: TemplateCompletionItem[] = [];
  for (const name of (names ?? []).sort()) {
    if (name.startsWith(".")) continue;
    const full = `${dir === "/" ? "" : dir}/${name}`;
    const rel = `${dirPart}${name}`;
    if (name.endsWith(".qubes.yaml")) {
      if (full === a.path) continue;
      const idx = a.files.get(full);
      if (idx && (want === "bundle" ? idx.kind !== "bundle" : idx.kind === "bundle")) continue;
      out.push({ label: rel, kind: "file", detail: idx?.kind === "bundle" ? `bundle ${idx.stack ?? ""}`.trim() : "stack file", span: ctx.span, sortText: `1${rel}` });
    } else if (!name.includes(".")) {
      out.push({ label: `${rel}/`, kind: "file", detail: "folder", span: ctx.span, sortText: `2${rel}`, retrigger: true });
    }
  }
  return out;
}

/** The parameters of the bundle of the `use:` entry at the cursor. */
function bundleParamItems(a: TemplateAnalysis, ctx: YamlContext): TemplateCompletionItem[] {
  const out: TemplateCompletionItem[] = [];
  const seen = new Set<string>();
  // The `use:` entry the cursor is in: the last one that starts before it.
  const use = [...a.index.uses].reverse().find((u) => u.span.start <= ctx.span.start);
  const bundlePath = use?.bundle ? resolveStackPath(a.path, use.bundle.value) : undefined;
  for (const [path, idx] of a.files) {
    if (path !== bundlePath || idx.kind !== "bundle") continue;
    for (const [name, p] of idx.params) {
      if (seen.has(name) || ctx.siblings.includes(name)) continue;
      seen.add(name);
      out.push({ label: name, kind: "key", detail: p.type, documentation: `parameter of bundle \`${idx.stack ?? path}\``, insertText: `${name}: `, filterText: name, span: ctx.span });
    }
  }
  return out;
}

/**
 * The devices a port completion at `offset` needs: the device class and the backend of the
 * `devices:` entry (its `backend:`, else `dom0` for PCI), or `undefined` elsewhere. A language
 * server loads those devices from the machine, then completes with them in the environment.
 */
export function devicePortQuery(a: TemplateAnalysis, offset: number): { backend: string; devclass: string } | undefined {
  try {
    const ctx = yamlContextAt(a.text, offset);
    const p = ctx.path;
    if (ctx.at !== "value" || ctx.key !== "port" || p[0] !== "qubes" || p.length !== 5 || p[2] !== "devices" || p[4] !== "-") return undefined;
    const devclass = p[3]!;
    // The entry's lines: up to its `- ` line, down while indented deeper than that dash.
    const lines = a.text.split("\n");
    let row = a.text.slice(0, offset).split("\n").length - 1;
    const keyCol = (lines[row] ?? "").search(/\S/);
    let backend: string | undefined;
    const look = (l: string) => {
      const m = /^\s*(?:-\s+)?backend\s*:\s*([^\s#]+)/.exec(l);
      if (m) backend = m[1]!.replace(/^["']|["']$/g, "");
    };
    let dashCol = keyCol;
    for (let r = row; r >= 0; r--) {
      const l = lines[r]!;
      look(l);
      const dash = /^(\s*)-\s/.exec(l);
      if (dash && dash[1]!.length < keyCol + 1) {
        dashCol = dash[1]!.length;
        row = r;
        break;
      }
    }
    for (let r = row + 1; r < lines.length; r++) {
      const l = lines[r]!;
      if (l.trim() === "") continue;
      if (l.search(/\S/) <= dashCol) break;
      look(l);
    }
    const b = backend ?? (devclass === "pci" ? "dom0" : undefined);
    return b ? { backend: b, devclass } : undefined;
  } catch {
    return undefined;
  }
}

/** Completion proposals at `offset` of a stack file. Never throws. */
export function completeTemplate(a: TemplateAnalysis, offset: number): TemplateCompletionItem[] {
  try {
    const inBlock = blockAt(a.index, offset);
    if (inBlock) {
      const doc = a.blockDocument(a.path, inBlock.block);
      if (!doc) return [];
      return completePolicy(doc, inBlock.offset, { snapshot: a.policy() }).map((item) => ({
        ...item,
        span: { start: blockToSource(inBlock.block, item.span.start), end: blockToSource(inBlock.block, item.span.end) },
      }));
    }
    const ctx = yamlContextAt(a.text, offset);
    if (ctx.comment) return [];
    return completeYaml(a, ctx);
  } catch {
    return [];
  }
}
