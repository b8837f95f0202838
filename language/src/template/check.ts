/**
 * `checkStack`: every file of a stack (the entry, its `include:` files, the
 * bundles of its `use:` entries) read, cross-checked and turned into a
 * {@link StackModel}, or the diagnostics that say why not.
 *
 * Never throws: an unexpected exception becomes an `internal-error` diagnostic.
 */
import type { Diagnostic, Span } from "../diagnostics.js";
import { checkPolicy } from "../loader/load.js";
import { createMemoryFileSystem, dirname, joinPath, normalizePath } from "../loader/memfs.js";
import { POLICY_DIR } from "../loader/types.js";
import { NOT_UTF8_HELP, type Utf8Problem } from "../loader/utf8.js";
import { STANDARD_LABELS } from "../qubes/properties.js";
import { closest } from "../services/util.js";
import { DocumentReader, newAccumulator, withArticle, type Accumulator, type BundleContext, type QubeEntry, type QubeRef } from "./build.js";
import { diagnosticAt, parseStackText, type StackDocument } from "./document.js";
import { DEFAULT, policyFileHeader, policyFileName, type PolicyFileDecl, type PropertyValue, type StackModel } from "./model.js";
import { policySpanToSource, type EmbeddedPolicy } from "./policy.js";
import type { RelatedInformation, StackFileSystem, StackSystem, SystemQube, TemplateDiagnostic } from "./types.js";

/** Options of {@link checkStack}. */
export interface CheckStackOptions {
  /** The live system: references must then exist on it (or be declared). */
  system?: StackSystem;
  /** Open documents already parsed (by path), reused instead of reading and parsing again. */
  documents?: Map<string, StackDocument>;
  /** The time firewall rules' `expire=` is compared with, in seconds since the epoch (default: now). */
  now?: number;
}

/**
 * The outcome of {@link checkStack}.
 *
 * A bundle file given as the entry is checked on its own: its parameters take
 * their defaults, and values that use a parameter without default stay as
 * written (`${name}`) and unchecked; the model is then the bundle's (its
 * `stack` is the bundle's name), useful to editors, not to apply.
 */
export interface StackCheckResult {
  /** The resolved model; `undefined` exactly when some diagnostic is an error. */
  model?: StackModel;
  /** Every diagnostic, sorted by file and position, each once. */
  diagnostics: TemplateDiagnostic[];
  /** Every file read (entry, includes, bundles), by absolute path. */
  documents: Map<string, StackDocument>;
  /** Every `rules` block as a virtual policy document (one per bundle instance for bundle policy). */
  policyBlocks: EmbeddedPolicy[];
}

/** Reads, checks and resolves a stack. Never throws. */
export function checkStack(fs: StackFileSystem, entryPath: string, options: CheckStackOptions = {}): StackCheckResult {
  const documents = new Map<string, StackDocument>();
  const acc = newAccumulator(options.now);
  const blocks: EmbeddedPolicy[] = [];
  try {
    return run(fs, normalizePath(entryPath.startsWith("/") ? entryPath : `/${entryPath}`), options, documents, acc, blocks);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    acc.diagnostics.push({ code: "internal-error", severity: "error", message: `internal error while checking the stack: ${message}`, file: entryPath, span: { start: 0, end: 0 }, line: 1, help: "please report this with the file that caused it" });
    return { diagnostics: finish(acc.diagnostics), documents, policyBlocks: blocks };
  }
}

function readDoc(fs: StackFileSystem, path: string, options: CheckStackOptions, documents: Map<string, StackDocument>): StackDocument | undefined {
  const cached = documents.get(path);
  if (cached) return cached;
  const open = options.documents?.get(path);
  let doc: StackDocument | undefined = open;
  if (!doc) {
    let text: string | undefined;
    try {
      text = fs.readFile(path);
    } catch {
      text = undefined;
    }
    if (typeof text !== "string") return undefined;
    doc = parseStackText(text, path);
    markNotUtf8(doc, fs.notUtf8, path);
  }
  documents.set(path, doc);
  return doc;
}

/**
 * Records on a stack file read from disk that its bytes are not UTF-8 (as
 * the host's `notUtf8` says of `path`; a host that throws says nothing): an
 * error at the first such byte, as its text (with U+FFFD there) is not what
 * the file holds.
 */
export function markNotUtf8(doc: StackDocument, notUtf8: ((path: string) => Utf8Problem | undefined) | undefined, path: string): void {
  let bad: Utf8Problem | undefined;
  try {
    bad = notUtf8?.(path);
  } catch {
    bad = undefined;
  }
  if (!bad) return;
  const hex = bad.byte.toString(16).padStart(2, "0");
  doc.diagnostics.unshift(
    diagnosticAt(doc, "not-utf8", "error", `the file is not UTF-8 text: byte 0x${hex} at offset ${bad.offset} (${bad.reason}); its text would be read, and applied, with U+FFFD in place of such bytes`, { start: bad.textOffset, end: bad.textOffset + 1 }, NOT_UTF8_HELP),
  );
}

/** The host's reason a file cannot be read, when it says one (never throws). */
function readProblem(fs: StackFileSystem, path: string): { reason: string; help: string } | undefined {
  try {
    const r = fs.readProblem?.(path);
    return r && typeof r.reason === "string" && typeof r.help === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}

function run(fs: StackFileSystem, entry: string, options: CheckStackOptions, documents: Map<string, StackDocument>, acc: Accumulator, blocks: EmbeddedPolicy[]): StackCheckResult {
  const system = options.system;
  const entryDoc = readDoc(fs, entry, options, documents);
  if (!entryDoc) {
    acc.diagnostics.push({ code: "file-not-found", severity: "error", message: `cannot read ${entry}`, file: entry, span: { start: 0, end: 0 }, line: 1, help: "check the path" });
    return { diagnostics: finish(acc.diagnostics), documents, policyBlocks: blocks };
  }
  acc.diagnostics.push(...entryDoc.diagnostics);
  const bundleAlone = entryDoc.kind === "bundle";
  if (bundleAlone) {
    const params = DocumentReader.readParams(entryDoc, acc, undefined, undefined);
    const name = bundleName(entryDoc);
    const ctx: BundleContext = { as: name, bundle: entry, useFile: entry, useSpan: { start: 0, end: 0 }, params };
    new DocumentReader(entryDoc, acc, "bundle", ctx).read();
    acc.stack = { name, file: entry, span: { start: 0, end: 0 } };
  } else {
    new DocumentReader(entryDoc, acc, "stack").read();
  }

  // include: files (same schema, relative to the including file), each once.
  const included = new Set<string>([entry]);
  for (let i = 0; i < acc.includes.length; i++) {
    const inc = acc.includes[i]!;
    const path = resolve(inc.file, inc.path);
    const at = documents.get(inc.file)!;
    if (included.has(path)) {
      acc.diagnostics.push(diagnosticAt(at, "include-cycle", "error", path === entry ? `the stack file includes itself: ${inc.path}` : `file included twice: ${inc.path}`, inc.span, "include each file once"));
      continue;
    }
    included.add(path);
    const doc = readDoc(fs, path, options, documents);
    if (!doc) {
      const why = readProblem(fs, path);
      acc.diagnostics.push(diagnosticAt(at, "include-not-found", "error", `cannot read included file ${path}${why ? `: ${why.reason}` : ""}`, inc.span, why?.help ?? "paths are relative to the including file"));
      continue;
    }
    acc.diagnostics.push(...doc.diagnostics);
    if (doc.kind === "bundle") {
      acc.diagnostics.push(diagnosticAt(at, "include-is-bundle", "error", `${inc.path} is a bundle: use it under use:, not include:`, inc.span, "write `use: [{ bundle: PATH, as: NAME }]`"));
      continue;
    }
    new DocumentReader(doc, acc, "fragment").read();
  }

  // use: bundle instances.
  const instances = new Map<string, { file: string; span: Span }>();
  const bundleDiagnosticsAdded = new Set<string>();
  for (const use of acc.uses) {
    const at = documents.get(use.file)!;
    const prev = instances.get(use.as);
    if (prev) {
      const d = diagnosticAt(at, "duplicate-instance", "error", `bundle instance ${use.as} is declared twice`, use.asSpan, "give each use a different `as:`");
      d.related = [{ file: prev.file, span: prev.span, message: "first declared here" }];
      acc.diagnostics.push(d);
      continue;
    }
    instances.set(use.as, { file: use.file, span: use.asSpan });
    const path = resolve(use.file, use.bundlePath);
    const doc = readDoc(fs, path, options, documents);
    if (!doc) {
      const why = readProblem(fs, path);
      acc.diagnostics.push(diagnosticAt(at, "bundle-not-found", "error", `cannot read bundle ${path}${why ? `: ${why.reason}` : ""}`, use.bundleSpan, why?.help ?? "paths are relative to the using file"));
      continue;
    }
    if (!bundleDiagnosticsAdded.has(path)) {
      bundleDiagnosticsAdded.add(path);
      acc.diagnostics.push(...doc.diagnostics);
    }
    if (doc.kind !== "bundle") {
      acc.diagnostics.push(diagnosticAt(at, "not-a-bundle", "error", `${use.bundlePath} is not a bundle (it has no bundle: key)`, use.bundleSpan, "a bundle file starts with `qkit: 1` and `bundle: NAME`"));
      continue;
    }
    const params = DocumentReader.readParams(doc, acc, use, at);
    const ctx: BundleContext = { as: use.as, bundle: path, useFile: use.file, useSpan: use.span, params };
    new DocumentReader(doc, acc, "bundle", ctx).read();
  }

  crossCheck(acc, documents, system);
  const stackName = acc.stack?.name;
  const policy = checkPolicyBlocks(acc, documents, stackName, blocks);

  const diagnostics = finish(acc.diagnostics);
  const result: StackCheckResult = { diagnostics, documents, policyBlocks: blocks };
  if (!diagnostics.some((d) => d.severity === "error") && stackName !== undefined) {
    result.model = {
      format: 1,
      stack: stackName,
      global: Object.fromEntries([...acc.global].map(([k, v]) => [k, v.value])),
      globalProvenance: Object.fromEntries([...acc.global].map(([k, v]) => [k, { file: v.file, start: v.keySpan.start, end: v.keySpan.end }])),
      labels: Object.fromEntries([...acc.labels].map(([k, v]) => [k, v.color])),
      labelProvenance: Object.fromEntries([...acc.labels].map(([k, v]) => [k, { file: v.file, start: v.span.start, end: v.span.end }])),
      qubes: acc.qubes.map((q) => q.decl),
      policy,
      expect: acc.expect.map((e) => e.expectation),
      options: acc.options,
    };
  }
  return result;
}

function bundleName(doc: StackDocument): string {
  const v = doc.nodeAtPath(["bundle"]);
  const s = v && "value" in v ? String((v as { value: unknown }).value) : "bundle";
  return /^[a-z0-9][a-z0-9_-]*$/.test(s) ? s : "bundle";
}

function resolve(fromFile: string, p: string): string {
  return normalizePath(p.startsWith("/") ? p : joinPath(dirname(fromFile), p));
}

/** Sorted by file then position; identical diagnostics (a bundle used twice) merged, their `related` joined. */
function finish(list: TemplateDiagnostic[]): TemplateDiagnostic[] {
  const byKey = new Map<string, TemplateDiagnostic>();
  for (const d of list) {
    const key = `${d.file}\0${d.span.start}\0${d.span.end}\0${d.code}\0${d.message}`;
    const prev = byKey.get(key);
    if (!prev) {
      byKey.set(key, d.related ? { ...d, related: [...d.related] } : d);
      continue;
    }
    for (const r of d.related ?? []) {
      if (!prev.related) prev.related = [];
      if (!prev.related.some((x) => x.file === r.file && x.span.start === r.span.start && x.message === r.message)) prev.related.push(r);
    }
  }
  return [...byKey.values()].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.span.start - b.span.start || a.span.end - b.span.end));
}

// ───────────────────────────── cross-checks ─────────────────────────────

interface Resolved {
  klass: string;
  /** `undefined`: not known (a live qube the system model says nothing about). */
  providesNetwork: boolean | undefined;
  templateForDispvms: boolean | undefined;
  /** The netvm after apply: a name, null (none), "default" (the global default_netvm), or undefined when not known. */
  netvm: string | null | undefined;
  usesDefaultNetvm: boolean;
  declared?: QubeEntry;
  system?: SystemQube;
}

/** A declared boolean property after apply: the declared value, else the live one, else (a new qube) qubesd's default false. */
function boolProp(v: PropertyValue | undefined, live: boolean | undefined, exists: boolean): boolean | undefined {
  if (v === undefined) return exists ? live : false;
  return v === true;
}

function crossCheck(acc: Accumulator, documents: Map<string, StackDocument>, system: StackSystem | undefined): void {
  const doc = (file: string) => documents.get(file) ?? { path: file, lineStarts: [0] };
  const push = (file: string, code: string, severity: TemplateDiagnostic["severity"], message: string, span: Span, help?: string, related?: RelatedInformation[]) => {
    const d = diagnosticAt(doc(file), code, severity, message, span, help);
    if (related?.length) d.related = related;
    acc.diagnostics.push(d);
  };

  // Duplicate qubes.
  // Every place of a qube declared more than once is reported: each declaration, and the `use:`
  // entry of each bundle instance that declares it (instances of one bundle share its line).
  const declared = new Map<string, QubeEntry>();
  const declarations = new Map<string, QubeEntry[]>();
  for (const q of acc.qubes) {
    const list = declarations.get(q.decl.name);
    if (list) list.push(q);
    else declarations.set(q.decl.name, [q]);
    if (!declared.has(q.decl.name)) declared.set(q.decl.name, q);
  }
  for (const [name, list] of declarations) {
    if (list.length < 2) continue;
    const times = list.length === 2 ? "twice" : `${list.length} times`;
    const help = "each qube is declared in exactly one place (a bundle may reference a qube, not modify it)";
    const place = (q: QubeEntry, i: number): RelatedInformation => ({ file: q.file, span: q.keySpan, message: i === 0 ? "first declared here" : "declared again here" });
    list.forEach((q, i) => {
      const others = list.map(place).filter((_, j) => j !== i);
      push(q.file, "duplicate-qube", "error", `qube ${name} is declared ${times}`, q.keySpan, help, [...others, ...(q.related ?? [])]);
      for (const use of q.related ?? []) push(use.file, "duplicate-qube", "error", `qube ${name} is declared ${times}: ${/^in (bundle instance \S+)/.exec(use.message)?.[1] ?? "a bundle instance"} declares it`, use.span, help, list.map(place));
    });
  }
  const globalNetvm = acc.global.get("default_netvm")?.value;

  const resolveQube = (name: string): Resolved | undefined => {
    const d = declared.get(name);
    const s = system?.qubes[name];
    if (d && !d.decl.absent) {
      const p = d.decl.properties;
      const netvm = p.netvm;
      const template = d.decl.class === "TemplateVM";
      let nv: string | null | undefined;
      let usesDefault = false;
      if (netvm === undefined) {
        if (s) nv = s.netvm;
        else if (template) nv = null;
        else usesDefault = true;
      } else if (netvm !== null && typeof netvm === "object") {
        if (template) nv = null;
        else usesDefault = true;
      } else nv = netvm === null ? null : String(netvm);
      const r: Resolved = {
        klass: d.decl.class,
        providesNetwork: boolProp(p.provides_network, s?.provides_network, !!s),
        templateForDispvms: boolProp(p.template_for_dispvms, s?.template_for_dispvms, !!s),
        netvm: nv,
        usesDefaultNetvm: usesDefault,
        declared: d,
      };
      if (s) r.system = s;
      return r;
    }
    if (d && d.decl.absent) return undefined;
    if (s) return { klass: s.class, providesNetwork: s.provides_network, templateForDispvms: s.template_for_dispvms, netvm: s.netvm, usesDefaultNetvm: false, system: s };
    if (name === "dom0") return { klass: "AdminVM", providesNetwork: false, templateForDispvms: false, netvm: null, usesDefaultNetvm: false };
    return undefined;
  };

  // "did you mean": the qubes the stack declares and, with a system, the machine's.
  let candidates: Set<string> | undefined;
  const didYouMean = (name: string): string | undefined => {
    candidates ??= new Set([...[...declared.values()].filter((q) => !q.decl.absent && !q.symbolic).map((q) => q.decl.name), ...Object.keys(system?.qubes ?? {})]);
    const c = closest(name, candidates, 1);
    return c.length ? `did you mean \`${c[0]}\`?` : undefined;
  };

  // Renames (moved_from): one qube moves from a name, and that name is not declared too.
  const movedAway = new Map<string, QubeEntry>();
  for (const q of declared.values()) {
    const from = q.decl.moved_from;
    if (from === undefined || q.symbolic || from.includes("${") || q.decl.absent) continue;
    const span = q.valueSpans.get("moved_from") ?? q.keySpan;
    const other = movedAway.get(from);
    if (other) {
      push(q.file, "invalid-move", "error", `${q.decl.name} and ${other.decl.name} both move from ${from}`, span, "a qube moves to one new name: remove one of the two moved_from", [{ file: other.file, span: other.valueSpans.get("moved_from") ?? other.keySpan, message: `${other.decl.name} moves from it too` }]);
      continue;
    }
    const same = declared.get(from);
    if (same) {
      push(q.file, "invalid-move", "error", `${q.decl.name} moves from ${from}, which the stack declares too${same.decl.absent ? " (absent)" : ""}`, span, `remove the declaration of ${from} (a move removes it), or remove moved_from`, [{ file: same.file, span: same.keySpan, message: `${from} is declared here` }]);
      continue;
    }
    movedAway.set(from, q);
    const old = system?.qubes[from];
    if (old && old.class !== q.decl.class && !q.classInvalid)
      push(q.file, "invalid-move", "error", `${q.decl.name} moves from ${from}, which is ${withArticle(old.class)} on this machine, but is declared as ${withArticle(q.decl.class)}`, span, `a move keeps the class: declare ${q.decl.name} as ${withArticle(old.class)} (change the class in another apply)`, q.related);
  }

  // References.
  const checkRef = (ref: QubeRef): Resolved | undefined => {
    const d = declared.get(ref.name);
    if (d?.symbolic || ref.name.includes("${")) return undefined;
    const mover = movedAway.get(ref.name);
    if (mover && !d) {
      push(ref.file, "reference-to-absent", "error", `${ref.via} names ${ref.name}, which ${mover.decl.name} moves away (moved_from: ${ref.name}): it is removed once moved`, ref.span, `name ${mover.decl.name}, its new name`, [{ file: mover.file, span: mover.valueSpans.get("moved_from") ?? mover.keySpan, message: "moved from here" }, ...(ref.related ?? [])]);
      return undefined;
    }
    if (d && d.decl.absent) {
      push(ref.file, "reference-to-absent", "error", `${ref.via} names ${ref.name}, which this stack removes (absent: true)`, ref.span, "point it at another qube, or keep the qube", [{ file: d.file, span: d.keySpan, message: "declared absent here" }, ...(ref.related ?? [])]);
      return undefined;
    }
    const r = resolveQube(ref.name);
    if (!r) {
      const guess = didYouMean(ref.name);
      if (system) push(ref.file, "unknown-qube", "error", `no such qube: ${ref.name} (${ref.via})`, ref.span, guess ?? "declare it in the stack, or fix the name", ref.related);
      else push(ref.file, "undeclared-qube", "info", `${ref.name} is not declared in this stack; it must exist on the machine`, ref.span, guess ?? "check with a system (--system or a connection) to verify it", ref.related);
    }
    return r;
  };

  for (const ref of acc.refs) {
    const r = checkRef(ref);
    if (!r) continue;
    const fromClass = ref.from === "@global" ? "@global" : declared.get(ref.from)?.decl.class;
    const rel = ref.related;
    switch (ref.via) {
      case "template":
        if (fromClass === "AppVM" && r.klass !== "TemplateVM")
          push(ref.file, "template-wrong-class", "error", `template of ${ref.from} must be a TemplateVM; ${ref.name} is ${withArticle(r.klass)}`, ref.span, "name a TemplateVM", rel);
        if (fromClass === "DispVM") {
          if (r.klass !== "AppVM" && r.klass !== "StandaloneVM")
            push(ref.file, "template-wrong-class", "error", `template of disposable ${ref.from} must be a disposable template (AppVM or StandaloneVM); ${ref.name} is ${withArticle(r.klass)}`, ref.span, "name an AppVM with template_for_dispvms: true", rel);
          else if (r.templateForDispvms === false)
            push(ref.file, "not-a-dispvm-template", "error", `${ref.name} is not a disposable template (template_for_dispvms is not true)`, ref.span, r.declared ? `set template_for_dispvms: true on ${ref.name}` : `set template_for_dispvms on ${ref.name}, or name another qube`, relWith(rel, r.declared, "declared here"));
        }
        break;
      case "default_dispvm":
      case "management_dispvm":
        if (r.templateForDispvms === false)
          push(ref.file, "not-a-dispvm-template", "error", `${ref.via} must be a disposable template: ${ref.name} does not have template_for_dispvms`, ref.span, r.declared ? `set template_for_dispvms: true on ${ref.name}` : "name a disposable template", relWith(rel, r.declared, "declared here"));
        break;
      case "netvm":
      case "default_netvm":
        if (r.providesNetwork === false)
          push(ref.file, "netvm-not-provider", "error", `${ref.name} does not provide network (provides_network is not true)`, ref.span, r.declared ? `set provides_network: true on ${ref.name}` : "name a qube that provides network, or none", relWith(rel, r.declared, "declared here"));
        break;
      case "default_template":
        if (r.klass !== "TemplateVM") push(ref.file, "template-wrong-class", "error", `default_template must be a TemplateVM; ${ref.name} is ${withArticle(r.klass)}`, ref.span, "name a TemplateVM", rel);
        break;
      case "source":
        if (r.klass !== "TemplateVM" && r.klass !== "StandaloneVM" && ref.from !== "@param") {
          const to = declared.get(ref.from)?.decl.class;
          if (to === "TemplateVM" && r.klass !== "TemplateVM") push(ref.file, "template-wrong-class", "error", `a TemplateVM is cloned from a TemplateVM; ${ref.name} is ${withArticle(r.klass)}`, ref.span, undefined, rel);
        }
        break;
    }
  }

  // Class of declared qubes against the system.
  if (system) {
    for (const q of declared.values()) {
      const s = system.qubes[q.decl.name];
      // A refused class (or dom0) is reported where it is written; `decl.class` is then only a fallback.
      if (s && s.class !== q.decl.class && !q.decl.absent && !q.symbolic && !q.classInvalid && s.class !== "AdminVM") {
        push(q.file, "class-change", "warning", `${q.decl.name} is ${withArticle(s.class)} on this machine; declaring it as ${withArticle(q.decl.class)} replaces it (its data is lost)`, q.keySpan, "keep the class it has, or remove the qube first", q.related);
      }
      // A qube moved from one that exists is its clone: the label, template and volumes come from there.
      const movingFrom = q.decl.moved_from !== undefined && !!system.qubes[q.decl.moved_from];
      if (!s && !movingFrom && !q.decl.absent && !q.symbolic && q.decl.name !== "dom0") {
        // A key that is written but was refused (or sits in a YAML syntax error) is reported where it is written.
        if (q.decl.properties.label === undefined && !q.valueSpans.has("label"))
          push(q.file, "missing-key", "error", `new qube ${q.decl.name} needs a label`, q.keySpan, "add `label: red` (or another label): qubesd requires it at creation", q.related);
        if ((q.decl.class === "TemplateVM" || q.decl.class === "StandaloneVM") && !q.decl.source && !q.valueSpans.has("source"))
          push(q.file, "missing-key", "error", `new ${q.decl.class} ${q.decl.name} needs a source`, q.keySpan, "add `source: { clone: QUBE }`, `source: { install: PACKAGE }` or `source: { empty: true }`", q.related);
        if (q.decl.class === "DispVM" && q.decl.properties.template === undefined && !q.valueSpans.has("template"))
          push(q.file, "missing-key", "error", `new disposable ${q.decl.name} needs a template`, q.keySpan, "add `template: NAME` (a disposable template)", q.related);
      }
    }
  }

  // provides_network: false while something declared uses it.
  for (const q of declared.values()) {
    if (q.decl.properties.provides_network === false || q.decl.properties.provides_network === DEFAULT) {
      const users = [...declared.values()].filter((o) => o.decl.properties.netvm === q.decl.name && !o.decl.absent);
      if (users.length)
        push(q.file, "netvm-not-provider", "error", `${q.decl.name} turns provides_network off while ${users.map((u) => u.decl.name).join(", ")} use it as netvm`, q.valueSpans.get("provides_network") ?? q.keySpan, "keep provides_network: true, or move those qubes to another netvm", users.map((u) => ({ file: u.file, span: u.valueSpans.get("netvm") ?? u.keySpan, message: `${u.decl.name} uses it` })));
    }
  }

  // Netvm loops over declared + live qubes (default netvm resolved through the declared global, if any).
  const defaultNetvm = typeof globalNetvm === "string" ? globalNetvm : undefined;
  const netvmOf = (name: string): string | null | undefined => {
    const r = resolveQube(name);
    if (!r) return undefined;
    return r.usesDefaultNetvm ? defaultNetvm : r.netvm;
  };
  const reported = new Set<string>();
  for (const q of declared.values()) {
    if (q.decl.absent || q.symbolic) continue;
    const path: string[] = [q.decl.name];
    const seen = new Set(path);
    let cur: string | null | undefined = netvmOf(q.decl.name);
    while (cur) {
      if (cur === q.decl.name) {
        const key = [...path].sort().join(" ");
        if (!reported.has(key)) {
          reported.add(key);
          const others = path.slice(1).map((n) => declared.get(n)).filter((x): x is QubeEntry => !!x);
          push(q.file, "netvm-loop", "error", `netvm loop: ${[...path, q.decl.name].join(" → ")}`, q.valueSpans.get("netvm") ?? q.keySpan, "a qube cannot reach the network through itself: break the chain", [
            ...others.map((o) => ({ file: o.file, span: o.valueSpans.get("netvm") ?? o.keySpan, message: `${o.decl.name}'s netvm` })),
            ...(q.related ?? []),
          ]);
        }
        break;
      }
      if (seen.has(cur)) break; // a loop further down, reported from its own members
      seen.add(cur);
      path.push(cur);
      cur = netvmOf(cur);
    }
  }

  // Labels.
  const knownLabels = new Set<string>([...STANDARD_LABELS, ...acc.labels.keys(), ...(system?.labels ?? [])]);
  for (const l of acc.labelRefs) {
    if (l.name.includes("${") || knownLabels.has(l.name) || /^label-\d+$/.test(l.name)) continue;
    push(l.file, "unknown-label", "error", `no such label: ${l.name} (QubesLabelNotFoundError)`, l.span, `declare it under labels:, or use ${STANDARD_LABELS.join(", ")}`, l.related);
  }
  if (system?.kernels) {
    const kernels = new Set(system.kernels);
    for (const k of acc.kernelRefs)
      if (!kernels.has(k.name) && !k.name.includes("${"))
        push(k.file, "unknown-kernel", "error", `Kernel '${k.name}' not installed (QubesPropertyValueError)`, k.span, system.kernels.length ? `installed: ${system.kernels.join(", ")}` : "install the kernel in dom0 first", k.related);
  }
  if (system?.pools) {
    const pools = new Set(system.pools);
    for (const p of acc.poolRefs)
      if (!pools.has(p.name) && !p.name.includes("${")) push(p.file, "unknown-pool", "error", `no such storage pool: ${p.name}`, p.span, system.pools.length ? `pools: ${system.pools.join(", ")}` : undefined, p.related);
  }
  // A system model without the lists (an older snapshot, a bare GetSystemInfo answer): the names
  // are not checked, and the check says so where they are rather than passing them in silence.
  if (system) {
    const again = "make the system model with `qkit system snapshot` (it lists them), or check with a connection";
    if (!system.kernels)
      for (const k of acc.kernelRefs) if (!k.name.includes("${")) push(k.file, "unchecked-kernel", "info", `kernel ${k.name} is not checked: the system model lists no installed kernels`, k.span, again, k.related);
    if (!system.pools)
      for (const p of acc.poolRefs) if (!p.name.includes("${")) push(p.file, "unchecked-pool", "info", `storage pool ${p.name} is not checked: the system model lists no pools`, p.span, again, p.related);
  }

  // Expectations name known qubes.
  for (const e of acc.expect) {
    if (e.symbolic) continue;
    const x = e.expectation;
    const names = [x.source, x.target, x.target_is, ...(x.targets_include ?? []), ...(x.targets_exact ?? [])]
      .filter((t): t is string => !!t)
      .map((t) => (t.startsWith("@dispvm:") ? t.slice(8) : t))
      .filter((t) => !t.startsWith("@") && t !== "dom0");
    for (const n of new Set(names)) {
      if (declared.get(n)?.decl.absent) {
        push(e.file, "expect-unknown-qube", "error", `the expectation names ${n}, which this stack removes`, e.span, "expectations are checked against the system after apply", e.related);
        continue;
      }
      if (declared.has(n) || system?.qubes[n]) continue;
      const guess = didYouMean(n);
      if (system) push(e.file, "expect-unknown-qube", "error", `the expectation names an unknown qube: ${n}`, e.span, guess ?? "declare the qube, or fix the name", e.related);
      else push(e.file, "undeclared-qube", "info", `${n} is not declared in this stack; it must exist on the machine`, e.span, guess, e.related);
    }
  }
}

function relWith(rel: RelatedInformation[] | undefined, q: QubeEntry | undefined, message: string): RelatedInformation[] | undefined {
  const out = [...(rel ?? [])];
  if (q) out.push({ file: q.file, span: q.keySpan, message });
  return out.length ? out : undefined;
}

// ───────────────────────────── policy ─────────────────────────────

function checkPolicyBlocks(acc: Accumulator, documents: Map<string, StackDocument>, stack: string | undefined, blocks: EmbeddedPolicy[]): PolicyFileDecl[] {
  const decls: PolicyFileDecl[] = [];
  const header = policyFileHeader(stack ?? "?");
  const byPath = new Map<string, { block: EmbeddedPolicy; nameSpan: Span; symbolic: boolean }>();
  const doc = (file: string) => documents.get(file) ?? { path: file, lineStarts: [0] };
  for (const e of acc.policy) {
    const decl: PolicyFileDecl = { file: e.name, priority: e.include ? 0 : (e.priority ?? acc.options.policy_priority), rules: e.text };
    if (e.include) decl.include = true;
    decl.provenance = { file: e.file, start: e.entrySpan.start, end: e.entrySpan.end };
    if (e.bundle) decl.provenance.bundle = { as: e.bundle.as, bundle: e.bundle.bundle, file: e.bundle.useFile, start: e.bundle.useSpan.start, end: e.bundle.useSpan.end };
    const d = documents.get(e.file);
    if (d && e.exact && e.segments.length) {
      const first = e.segments[0]!;
      const line = d.positionAt(first.src);
      decl.rulesOffset = { line: line.line, indent: line.column };
    }
    const path = stack ? `${POLICY_DIR}/${policyFileName(stack, decl)}` : "";
    const block: EmbeddedPolicy = { file: e.file, name: e.name, path, text: e.text, header, segments: e.segments, span: e.span, exact: e.exact };
    if (e.bundle) block.use = { as: e.bundle.as, bundle: e.bundle.bundle, file: e.bundle.useFile, span: e.bundle.useSpan };
    blocks.push(block);
    decls.push(decl);
    if (!path) continue;
    const prev = byPath.get(path);
    if (prev) {
      const dd = diagnosticAt(doc(e.file), "duplicate-policy-file", "error", `two policy entries make the same file: ${path}`, e.nameSpan, "give each policy entry its own file: name");
      dd.related = [{ file: prev.block.file, span: prev.nameSpan, message: "the other entry" }];
      acc.diagnostics.push(dd);
      continue;
    }
    byPath.set(path, { block, nameSpan: e.nameSpan, symbolic: e.symbolic });
  }
  if (byPath.size === 0) return decls;

  // The future policy files of this stack, loaded as the daemon will load them.
  const files: Record<string, string> = {};
  for (const [path, { block, symbolic }] of byPath) if (!symbolic) files[path] = `${header}\n${block.text}`;
  const includes = Object.keys(files).filter((p) => p.startsWith(`${POLICY_DIR}/include/`));
  const checker = `${POLICY_DIR}/zz-qkit-check-includes.policy`;
  if (includes.length) files[checker] = includes.map((p) => `!include ${p.slice(POLICY_DIR.length + 1)}`).join("\n") + "\n";
  const mfs = createMemoryFileSystem(files, [`${POLICY_DIR}/include`]);
  const result = checkPolicy(mfs, { runtimeDir: null, collectAll: true });
  for (const pd of result.diagnostics) {
    const path = pd.file === undefined ? undefined : pd.file.startsWith("/") ? pd.file : `${POLICY_DIR}/${pd.file}`;
    const entry = path ? byPath.get(path) : undefined;
    if (!entry) continue; // the synthetic include checker, or a file-level failure without a line
    acc.diagnostics.push(mapPolicyDiagnostic(pd, entry.block, header, doc(entry.block.file), byPath));
  }
  return decls;
}

function mapPolicyDiagnostic(
  pd: Diagnostic,
  block: EmbeddedPolicy,
  header: string,
  d: { path: string; lineStarts: readonly number[] },
  ours: Map<string, unknown>,
): TemplateDiagnostic {
  const shift = header.length + 1;
  let span: Span;
  let param: string | undefined;
  if (pd.span.start < shift) span = block.span;
  else {
    const m = policySpanToSource(block, { start: pd.span.start - shift, end: Math.max(pd.span.start, pd.span.end) - shift });
    span = m.span;
    param = m.param;
  }
  let severity = pd.severity;
  let help = pd.help;
  if (pd.code === "not-a-file") {
    const target = /not a file: (\S+)/.exec(pd.message)?.[1];
    if (target && !ours.has(target)) {
      severity = "warning";
      help = "this stack does not declare that file: it must exist on the machine when the policy loads";
    }
  }
  const out = diagnosticAt(d, pd.code, severity, pd.message, span, help);
  const related: RelatedInformation[] = [];
  if (block.use) related.push({ file: block.use.file, span: block.use.span, message: param ? `\${${param}} comes from bundle instance ${block.use.as}` : `in bundle instance ${block.use.as}` });
  if (related.length) out.related = related;
  return out;
}
