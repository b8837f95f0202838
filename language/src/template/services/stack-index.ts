/**
 * A navigation index of one stack file, from the `yaml` package's tolerant
 * AST: the qubes it declares (with the ranges of their names and keys), every
 * value that names a qube, its labels and tags, its `include:`/`use:` files,
 * and its embedded `rules: |` policy blocks with the map from the block's
 * text back to the YAML file (line `i` of the block is line `first + i` of
 * the file, shifted by the block's indentation).
 *
 * Pure; never throws (a file YAML cannot read gives an empty index).
 */
import { isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node, type Pair, type YAMLMap } from "yaml";
import type { Span } from "../../diagnostics.js";
import { propertySpec, type DeclarableClass, DECLARABLE_CLASSES } from "../../qubes/properties.js";

/** A scalar as written, with its range. */
export interface ScalarAt {
  value: string;
  span: Span;
}

/** A qube declared under `qubes:`. */
export interface IndexedQube {
  name: string;
  /** The range of the name (the mapping key). */
  span: Span;
  /** The whole entry (key and value). */
  entrySpan: Span;
  class?: DeclarableClass | string;
  /** Keys of the entry, with the range of each key. */
  keys: Map<string, Span>;
  /** Scalar values by key (`template`, `netvm`, `memory`…) as strings. */
  values: Map<string, ScalarAt>;
  tags: ScalarAt[];
  templateForDispvms: boolean;
  providesNetwork: boolean;
}

/** A value that names a qube (a `template`, `netvm`, device backend, global property…). */
export interface QubeReference extends ScalarAt {
  /** The key that holds it, e.g. `template`, `netvm`, `backend`, `global.default_netvm`. */
  role: string;
  /** The qube whose entry holds it, if any. */
  owner?: string;
}

/** An embedded policy block (`rules: |` of a `policy:` entry). */
export interface PolicyBlock {
  /** `file:` of the entry (`machine`). */
  file: string;
  priority?: number;
  include: boolean;
  /** The block's text as the policy reads it (indentation removed). */
  text: string;
  /** For each line of {@link text}: its offset in `text` and the offset in the YAML file it maps to. */
  lines: Array<{ virtual: number; source: number; length: number }>;
  /** The range of the whole block scalar in the YAML file. */
  span: Span;
  /** The range of the `policy:` entry (for code lenses). */
  entrySpan: Span;
}

/** The index of a stack file. */
export interface StackIndex {
  /** `stack:` or `bundle:` name. */
  stack?: string;
  kind: "stack" | "bundle" | "unknown";
  qubes: IndexedQube[];
  references: QubeReference[];
  labels: Map<string, Span>;
  /** `include:` and `use[].bundle` paths as written. */
  files: ScalarAt[];
  /** `params:` of a bundle: name → type (with the written default and its range). */
  params: Map<string, { type: string; span: Span; default?: string; defaultAt?: ScalarAt; defaultItems?: ScalarAt[] }>;
  /** `use:` instances: bundle path and the `with:` keys (scalars in `with`, the items of list values in `withLists`). */
  uses: Array<{ bundle?: ScalarAt; as?: ScalarAt; with: Map<string, ScalarAt>; withLists?: Map<string, ScalarAt[]>; span: Span }>;
  /**
   * Tags named outside a qube's `tags:` list: `with:` values and defaults of
   * bundle parameters of type `tag` (filled by the analysis, which knows the
   * bundles' parameter types, and by the bundle's own defaults).
   */
  tagReferences: Array<ScalarAt & { role: string }>;
  /** The service words of `expect:` calls (`qubes.Gpg2`, without `+ARG`). */
  expectServices: ScalarAt[];
  policyBlocks: PolicyBlock[];
  /** `options.policy_priority`. */
  policyPriority?: number;
  /** Top-level keys with their ranges. */
  topKeys: Map<string, Span>;
  /** The `qkit:`/`stack:` line range (for code lenses). */
  headSpan?: Span;
}

const spanOf = (n: Node | null | undefined): Span | undefined => (n && n.range ? { start: n.range[0], end: n.range[1] } : undefined);

function scalarAt(n: unknown): ScalarAt | undefined {
  if (!isScalar(n) || !n.range) return undefined;
  const v = n.value;
  if (v === null || v === undefined) return undefined;
  if (typeof v === "object") return undefined;
  return { value: String(v), span: { start: n.range[0], end: n.range[1] } };
}

function keyName(p: Pair): string | undefined {
  const k = p.key;
  if (isScalar(k) && k.value !== null && k.value !== undefined && typeof k.value !== "object") return String(k.value);
  return undefined;
}

function pairs(m: unknown): Array<{ key: string; keySpan: Span; pair: Pair }> {
  if (!isMap(m)) return [];
  const out: Array<{ key: string; keySpan: Span; pair: Pair }> = [];
  for (const p of (m as YAMLMap).items) {
    if (!isPair(p)) continue;
    const key = keyName(p);
    const keySpan = spanOf(p.key as Node);
    if (key !== undefined && keySpan) out.push({ key, keySpan, pair: p });
  }
  return out;
}

const truthy = (n: unknown) => isScalar(n) && (n.value === true || n.value === "true" || n.value === "True");

/** Splits a block scalar's source into lines mapped to the value's lines. */
function blockLines(text: string, node: Node): PolicyBlock["lines"] | undefined {
  if (!isScalar(node) || !node.range || (node.type !== "BLOCK_LITERAL" && node.type !== "BLOCK_FOLDED")) return undefined;
  if (node.type === "BLOCK_FOLDED") return undefined;
  const [start, , end] = node.range;
  const header = text.indexOf("\n", start);
  if (header < 0 || header >= end) return [];
  const headerText = text.slice(start, header);
  const explicit = /^\|[+-]?([1-9])|^\|([1-9])/.exec(headerText);
  // The content lines, and their indentation.
  const raw: Array<{ start: number; text: string }> = [];
  let s = header + 1;
  while (s < end) {
    let e = text.indexOf("\n", s);
    if (e < 0 || e > end) e = end;
    let t = text.slice(s, e);
    if (t.endsWith("\r")) t = t.slice(0, -1);
    raw.push({ start: s, text: t });
    s = e + 1;
  }
  let indent = 0;
  if (explicit) {
    // Explicit indentation is relative to the parent's indentation: find the key's line indentation.
    const lineStart = text.lastIndexOf("\n", start - 1) + 1;
    let parent = 0;
    while (text[lineStart + parent] === " ") parent++;
    indent = parent + Number(explicit[1] ?? explicit[2]);
  } else {
    const first = raw.find((l) => l.text.trim() !== "");
    if (!first) return [];
    while (first.text[indent] === " ") indent++;
  }
  const out: PolicyBlock["lines"] = [];
  let v = 0;
  for (const l of raw) {
    const length = Math.max(0, l.text.length - indent);
    out.push({ virtual: v, source: l.start + Math.min(indent, l.text.length), length });
    v += length + 1;
  }
  // Trailing blank lines past the content belong to the next key's indentation: keep them, they are empty.
  return out;
}

/** Indexes a stack (or bundle) file (`parsed`: its YAML document when already parsed, e.g. by `parseStackText`). */
export function indexStack(text: string, parsed?: Document.Parsed): StackIndex {
  const index: StackIndex = {
    kind: "unknown",
    qubes: [],
    references: [],
    labels: new Map(),
    files: [],
    params: new Map(),
    uses: [],
    tagReferences: [],
    expectServices: [],
    policyBlocks: [],
    topKeys: new Map(),
  };
  let doc;
  try {
    doc = parsed ?? parseDocument(text, { uniqueKeys: false, prettyErrors: false });
  } catch {
    return index;
  }
  const root = doc.contents;
  for (const { key, keySpan, pair } of pairs(root)) {
    index.topKeys.set(key, keySpan);
    const value = pair.value;
    switch (key) {
      case "stack":
      case "bundle": {
        const s = scalarAt(value);
        index.kind = key;
        if (s) index.stack = s.value;
        if (key === "stack" || !index.headSpan) index.headSpan = keySpan;
        break;
      }
      case "qubes":
        for (const q of pairs(value)) indexQube(index, q.key, q.keySpan, q.pair);
        break;
      case "global":
        for (const g of pairs(value)) {
          const s = scalarAt(g.pair.value);
          if (s && propertySpec("@global", g.key)?.type === "vm") index.references.push({ ...s, role: `global.${g.key}` });
        }
        break;
      case "labels":
        for (const l of pairs(value)) index.labels.set(l.key, l.keySpan);
        break;
      case "include":
        if (isSeq(value)) for (const item of value.items) {
          const s = scalarAt(item);
          if (s) index.files.push(s);
        }
        break;
      case "params":
        for (const p of pairs(value)) {
          const t = pairs(p.pair.value).find((x) => x.key === "type");
          const ts = t ? scalarAt(t.pair.value) : undefined;
          const dNode = pairs(p.pair.value).find((x) => x.key === "default")?.pair.value;
          const dflt = scalarAt(dNode);
          const type = ts?.value ?? "string";
          const items = isSeq(dNode) ? dNode.items.map(scalarAt).filter((x): x is ScalarAt => x !== undefined) : undefined;
          index.params.set(p.key, { type, span: p.keySpan, ...(dflt ? { default: dflt.value, defaultAt: dflt } : {}), ...(items ? { defaultItems: items } : {}) });
          // A default flows into the generated qubes and policy like a `with:` value.
          const named = [...(dflt ? [dflt] : []), ...(items ?? [])].filter((x) => !x.value.includes("${"));
          if (type === "tag") for (const d of named) index.tagReferences.push({ ...d, role: `default.${p.key}` });
          if (type === "qube" || type === "name" || type === "list<qube>") for (const d of named) if (d.value !== "none" && d.value !== "default") index.references.push({ ...d, role: `default.${p.key}` });
        }
        break;
      case "use":
        if (isSeq(value)) for (const item of value.items) {
          const entry = pairs(item);
          const use: StackIndex["uses"][number] = { with: new Map(), span: spanOf(item as Node) ?? keySpan };
          for (const e of entry) {
            if (e.key === "bundle") use.bundle = scalarAt(e.pair.value);
            else if (e.key === "as") use.as = scalarAt(e.pair.value);
            else if (e.key === "with") for (const w of pairs(e.pair.value)) {
              const s = scalarAt(w.pair.value);
              if (s) use.with.set(w.key, s);
              if (isSeq(w.pair.value)) (use.withLists ??= new Map()).set(w.key, w.pair.value.items.map(scalarAt).filter((x): x is ScalarAt => x !== undefined));
            }
          }
          if (use.bundle) index.files.push(use.bundle);
          index.uses.push(use);
        }
        break;
      case "options":
        for (const o of pairs(value)) if (o.key === "policy_priority") {
          const s = scalarAt(o.pair.value);
          if (s && /^\d+$/.test(s.value)) index.policyPriority = Number(s.value);
        }
        break;
      case "expect":
        if (isSeq(value)) for (const item of value.items) indexExpectation(index, text, item);
        break;
      case "policy":
        if (isSeq(value)) for (const item of value.items) {
          const entry = pairs(item);
          const file = scalarAt(entry.find((e) => e.key === "file")?.pair.value);
          const includeFile = scalarAt(entry.find((e) => e.key === "include_file")?.pair.value);
          const prio = scalarAt(entry.find((e) => e.key === "priority")?.pair.value);
          const rules = entry.find((e) => e.key === "rules")?.pair.value as Node | undefined;
          if (!rules || !isScalar(rules) || !rules.range) continue;
          const lines = blockLines(text, rules);
          if (!lines) continue;
          const blockText = lines.map((l) => text.slice(l.source, l.source + l.length)).join("\n");
          index.policyBlocks.push({
            file: includeFile?.value ?? file?.value ?? `policy-${index.policyBlocks.length + 1}`,
            ...(prio && /^\d+$/.test(prio.value) ? { priority: Number(prio.value) } : {}),
            include: includeFile !== undefined,
            text: blockText,
            lines,
            span: { start: rules.range[0], end: rules.range[2] },
            entrySpan: spanOf(item as Node) ?? { start: rules.range[0], end: rules.range[0] },
          });
        }
        break;
    }
  }
  return index;
}

/**
 * Where a scalar's value is written: `text[base + i]` is `value[i]`, for
 * plain and quoted scalars written on one line without escapes (the others
 * cannot be mapped character by character and are left out).
 */
function scalarBase(text: string, n: unknown): { value: string; base: number } | undefined {
  if (!isScalar(n) || !n.range || typeof n.value !== "string") return undefined;
  const [start, end] = n.range;
  const written = text.slice(start, end);
  if (written === n.value) return { value: n.value, base: start };
  const q = written[0];
  if ((q === '"' || q === "'") && written.length >= 2 && written.endsWith(q) && written.slice(1, -1) === n.value) return { value: n.value, base: start + 1 };
  return undefined;
}

/** The qube a request token of an expectation names (`NAME`, or the `NAME` of `@dispvm:NAME`), with its offset in the token. */
function expectQube(token: string): { name: string; skip: number } | undefined {
  const skip = token.startsWith("@dispvm:") ? 8 : 0;
  const name = token.slice(skip);
  if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(name)) return undefined;
  return { name, skip };
}

/** Indexes the qube names of one `expect:` entry (string or mapping form) as references. */
function indexExpectation(index: StackIndex, text: string, item: unknown): void {
  const push = (token: { text: string; start: number }, base: number, role: string) => {
    const q = expectQube(token.text);
    if (!q) return;
    const start = base + token.start + q.skip;
    index.references.push({ value: q.name, span: { start, end: start + q.name.length }, role });
  };
  const words = (s: string) => [...s.matchAll(/\S+/g)].map((m) => ({ text: m[0], start: m.index ?? 0 }));
  /** The source and target words of a call (`SERVICE SOURCE [->] TARGET`). */
  const call = (ws: Array<{ text: string; start: number }>, base: number) => {
    const parts = ws.filter((w) => w.text !== "->");
    const svc = parts[0];
    if (svc) {
      const service = svc.text.split("+")[0]!;
      index.expectServices.push({ value: service, span: { start: base + svc.start, end: base + svc.start + service.length } });
    }
    if (parts[1]) push(parts[1], base, "expect.source");
    if (parts[2]) push(parts[2], base, "expect.target");
  };
  const str = scalarBase(text, item);
  if (str) {
    const ws = words(str.value);
    const arrow = ws.findIndex((w) => w.text === "=>");
    call(arrow < 0 ? ws : ws.slice(0, arrow), str.base);
    const resolved = arrow < 0 ? undefined : ws[arrow + 2];
    if (resolved) push(resolved, str.base, "expect.target_is");
    return;
  }
  for (const { key, pair } of pairs(item)) {
    if (key === "call") {
      const c = scalarBase(text, pair.value);
      if (c) call(words(c.value), c.base);
    } else if (key === "target") {
      const t = scalarBase(text, pair.value);
      if (t) push({ text: t.value, start: 0 }, t.base, "expect.target_is");
    } else if ((key === "targets_include" || key === "targets_exact") && isSeq(pair.value)) {
      for (const x of pair.value.items) {
        const t = scalarBase(text, x);
        if (t) push({ text: t.value, start: 0 }, t.base, `expect.${key}`);
      }
    }
  }
}

const QUBE_VALUE_KEYS = new Set(["template", "netvm", "default_dispvm", "management_dispvm", "audiovm", "guivm"]);

function indexQube(index: StackIndex, name: string, span: Span, pair: Pair): void {
  const value = pair.value;
  const entryEnd = (value as Node | null)?.range?.[1] ?? span.end;
  const q: IndexedQube = {
    name,
    span,
    entrySpan: { start: span.start, end: entryEnd },
    keys: new Map(),
    values: new Map(),
    tags: [],
    templateForDispvms: false,
    providesNetwork: false,
  };
  for (const { key, keySpan, pair: p } of pairs(value)) {
    q.keys.set(key, keySpan);
    const s = scalarAt(p.value);
    if (s) q.values.set(key, s);
    if (key === "class" && s) q.class = s.value;
    if (key === "template_for_dispvms") q.templateForDispvms = truthy(p.value);
    if (key === "provides_network") q.providesNetwork = truthy(p.value);
    if (key === "tags" && isSeq(p.value)) for (const t of p.value.items) {
      const ts = scalarAt(t);
      if (ts) q.tags.push(ts);
    }
    if (s && QUBE_VALUE_KEYS.has(key) && s.value !== "none" && s.value !== "default") index.references.push({ ...s, role: key, owner: name });
    if (key === "source") for (const src of pairs(p.value)) {
      const ss = scalarAt(src.pair.value);
      if (src.key === "clone" && ss) index.references.push({ ...ss, role: "source.clone", owner: name });
    }
    if (key === "devices") for (const dc of pairs(p.value)) {
      if (!isSeq(dc.pair.value)) continue;
      for (const item of dc.pair.value.items) for (const f of pairs(item)) {
        const fs = scalarAt(f.pair.value);
        if (f.key === "backend" && fs) index.references.push({ ...fs, role: "backend", owner: name });
      }
    }
  }
  if (q.class && !(DECLARABLE_CLASSES as readonly string[]).includes(q.class)) q.class = q.class;
  index.qubes.push(q);
}

/** The offset in the YAML file of an offset in a block's text (clamped to the line). */
export function blockToSource(block: PolicyBlock, virtual: number): number {
  for (let i = block.lines.length - 1; i >= 0; i--) {
    const l = block.lines[i]!;
    if (virtual >= l.virtual) return l.source + Math.min(virtual - l.virtual, l.length);
  }
  return block.lines[0]?.source ?? block.span.start;
}

/** The offset in a block's text of an offset of the YAML file, or `undefined` outside the block's content. */
export function sourceToBlock(block: PolicyBlock, source: number): number | undefined {
  for (const l of block.lines) {
    if (source >= l.source && source <= l.source + l.length) return l.virtual + (source - l.source);
  }
  return undefined;
}

/** The policy block whose content contains `offset`, with the offset inside it. */
export function blockAt(index: StackIndex, offset: number): { block: PolicyBlock; offset: number } | undefined {
  for (const block of index.policyBlocks) {
    if (offset < block.span.start || offset > block.span.end) continue;
    const v = sourceToBlock(block, offset);
    if (v !== undefined) return { block, offset: v };
  }
  return undefined;
}
