/**
 * Completion: every token valid at the cursor's column.
 */
import type { Span } from "../diagnostics.js";
import type { ActionName, PolicyDocument, TokenContext, Word } from "../syntax/tree.js";
import { ACTIONS, DIRECTIVES, PARAMS, paramsFor, serviceInfo, TOKENS } from "./catalog.js";
import { isSpace, splitWords } from "./util.js";
import { vocabulary, type Vocabulary } from "./vocabulary.js";
import type { PolicySnapshot } from "./workspace.js";
import { pyTruthy } from "../syntax/python.js";

/** What a completion item stands for. */
export type CompletionKind =
  | "service"
  | "argument"
  | "qube"
  | "keyword"
  | "prefix"
  | "tag"
  | "type"
  | "dispvm-template"
  | "action"
  | "param"
  | "value"
  | "directive"
  | "file";

/** One completion proposal. */
export interface CompletionItem {
  label: string;
  kind: CompletionKind;
  /** Short text shown next to the label. */
  detail?: string;
  /** Longer description (Markdown). */
  documentation?: string;
  /** Text that replaces {@link span} (default: the label). */
  insertText?: string;
  /** The text the item replaces: the word under the cursor, or an empty span at it. */
  span: Span;
  /** Text the editor filters against (default: the insert text). */
  filterText?: string;
  /** Sorts before items with a greater key. */
  sortText?: string;
  /** True when the editor should ask for completions again after inserting (prefixes such as `@tag:`). */
  retrigger?: boolean;
}

/** One entry of a policy directory, as `!include` completion offers it. */
export interface CompletionFile {
  /** The path relative to the policy directory (`include/work`). */
  path: string;
  dir: boolean;
}

/**
 * What completion needs of a snapshot, as plain data (structured-clonable): the vocabulary
 * as offered and the policy directory's entries two levels deep. A language server can make
 * it where the analysis runs and answer completion elsewhere (another thread) from it.
 */
export interface CompletionData {
  vocabulary: Vocabulary;
  files: CompletionFile[];
}

/** Where the cursor is and what surrounds it: a snapshot, or the {@link CompletionData} made from one. */
export interface CompletionContext {
  snapshot?: PolicySnapshot;
  /** Used instead of {@link snapshot} when given. */
  data?: CompletionData;
}

/**
 * The {@link CompletionData} of a snapshot: `complete(doc, offset, { data: completionData(s) })`
 * answers as `complete(doc, offset, { snapshot: s })` (the directory is read now, not at each call).
 */
export function completionData(snapshot: PolicySnapshot): CompletionData {
  return { vocabulary: offeredVocabulary(vocabulary(snapshot), snapshot), files: policyFiles(snapshot) };
}

interface Cursor {
  words: Word[];
  /** The index of the word being completed (may equal `words.length`). */
  index: number;
  /** The text of the current word before the cursor. */
  prefix: string;
  span: Span;
}

function cursorAt(doc: PolicyDocument, offset: number, commas: boolean): Cursor | "comment" {
  const text = doc.text;
  offset = Math.max(0, Math.min(offset, text.length));
  let start = offset;
  while (start > 0 && text[start - 1] !== "\n" && text[start - 1] !== "\r") start--;
  let end = offset;
  while (end < text.length && text[end] !== "\n" && text[end] !== "\r") end++;
  let first = start;
  while (first < end && isSpace(text[first]!)) first++;
  if (text[first] === "#" && first < offset) return "comment";
  const words = splitWords(text, start, end, commas);
  const at = words.findIndex((w) => w.span.start <= offset && offset <= w.span.end);
  if (at >= 0) {
    const w = words[at]!;
    return { words, index: at, prefix: text.slice(w.span.start, offset), span: w.span };
  }
  const index = words.filter((w) => w.span.end < offset).length;
  return { words, index, prefix: "", span: { start: offset, end: offset } };
}

/** Completion proposals at `offset` of a document. Never throws for any input. */
export function complete(doc: PolicyDocument, offset: number, ctx: CompletionContext = {}): CompletionItem[] {
  const legacy = doc.syntax === "service";
  const cur = cursorAt(doc, offset, legacy);
  if (cur === "comment") return [];
  const data = ctx.data;
  const vocab = data ? data.vocabulary : offeredVocabulary(vocabulary(ctx.snapshot), ctx.snapshot);
  const files = (): CompletionFile[] => (data ? data.files : ctx.snapshot ? policyFiles(ctx.snapshot) : []);
  const first = cur.words[0]?.text ?? "";
  const isDirective = cur.index === 0 ? cur.prefix.startsWith("!") || cur.prefix.startsWith("$include") : first.startsWith("!") || first.startsWith("$include:");
  if (isDirective) return completeDirective(cur, vocab, files, legacy);

  const columns: Array<"service" | "argument" | "source" | "target" | "action"> = legacy
    ? ["source", "target", "action"]
    : ["service", "argument", "source", "target", "action"];
  const column = columns[cur.index];
  const items: CompletionItem[] = [];
  switch (column) {
    case "service":
      items.push(...serviceItems(cur.span, vocab));
      if (cur.prefix === "" || cur.prefix.startsWith("!")) items.push(...directiveItems(cur.span, legacy));
      break;
    case "argument":
      items.push(...argumentItems(cur.span, vocab, cur.words[0]?.text ?? ""));
      break;
    case "source":
      items.push(...qubeItems(cur, vocab, "source"));
      if (legacy && cur.index === 0 && cur.prefix === "") items.push(...directiveItems(cur.span, legacy));
      break;
    case "target":
      items.push(...qubeItems(cur, vocab, "target"));
      break;
    case "action":
      for (const a of Object.keys(ACTIONS) as ActionName[]) {
        items.push({ label: a, kind: "action", detail: "action", documentation: ACTIONS[a], span: cur.span });
      }
      break;
    default: {
      const actionWord = cur.words[columns.length - 1]?.text;
      if (actionWord === "allow" || actionWord === "deny" || actionWord === "ask") items.push(...paramItems(cur, vocab, actionWord, legacy));
    }
  }
  return items;
}

function serviceItems(span: Span, vocab: Vocabulary): CompletionItem[] {
  const items: CompletionItem[] = [{ label: "*", kind: "keyword", detail: "any service", documentation: "the rule applies to every service (then the argument must be `*`)", span, sortText: "0" }];
  for (const name of [...vocab.services.keys()].sort()) {
    const info = serviceInfo(name);
    items.push({ label: name, kind: "service", detail: info?.description ?? "service used in this policy", span, sortText: "1" + name });
  }
  return items;
}

function argumentItems(span: Span, vocab: Vocabulary, service: string): CompletionItem[] {
  const items: CompletionItem[] = [
    { label: "*", kind: "keyword", detail: "any argument", span, sortText: "0" },
    { label: "+", kind: "keyword", detail: "the empty argument only", span, sortText: "1" },
  ];
  if (service !== "*") {
    for (const arg of [...(vocab.services.get(service) ?? [])].sort()) {
      if (arg === "+") continue;
      items.push({ label: arg, kind: "argument", detail: `argument of ${service}`, span, sortText: "2" + arg });
    }
  }
  return items;
}

function directiveItems(span: Span, legacy: boolean): CompletionItem[] {
  const list = legacy ? DIRECTIVES.filter((d) => d.name === "!include") : DIRECTIVES;
  return list.map((d) => ({
    label: d.name,
    kind: "directive" as const,
    detail: d.params ? `${d.name} ${d.params}` : d.name,
    documentation: d.description,
    insertText: d.params ? `${d.name} ` : d.name,
    span,
    sortText: "9" + d.name,
    retrigger: d.params !== "",
  }));
}

/** The entries of the policy directory, two levels deep, in name order (a directory before its entries). */
function policyFiles(snapshot: PolicySnapshot): CompletionFile[] {
  const out: CompletionFile[] = [];
  const fs = snapshot.fs;
  const visit = (dir: string, rel: string, depth: number) => {
    const names = fs.readDir(dir);
    if (!names) return;
    for (const n of [...names].sort()) {
      const p = `${dir}/${n}`;
      const kind = fs.stat(p);
      const r = rel ? `${rel}/${n}` : n;
      if (kind === "dir") {
        out.push({ path: r, dir: true });
        if (depth < 2) visit(p, r, depth + 1);
      } else if (kind === "file") {
        out.push({ path: r, dir: false });
      }
    }
  };
  visit(snapshot.policyDir, "", 0);
  return out;
}

/** Directories (`!include-dir`), or the files below the top level (`!include`: the top level is read anyway). */
function fileItems(span: Span, files: CompletionFile[], dirsOnly: boolean): CompletionItem[] {
  const out: CompletionItem[] = [];
  for (const f of files) {
    if (f.dir) {
      if (dirsOnly) out.push({ label: f.path, kind: "file", detail: "directory", span });
    } else if (!dirsOnly && f.path.includes("/")) {
      out.push({ label: f.path, kind: "file", detail: "policy file", span });
    }
  }
  return out;
}

function completeDirective(cur: Cursor, vocab: Vocabulary, files: () => CompletionFile[], legacy: boolean): CompletionItem[] {
  if (cur.index === 0) return directiveItems(cur.span, legacy);
  const name = cur.words[0]!.text;
  if (name === "!include" || name.startsWith("$include:")) return cur.index === 1 ? fileItems(cur.span, files(), false) : [];
  if (name === "!include-dir") return cur.index === 1 ? fileItems(cur.span, files(), true) : [];
  if (name === "!include-service") {
    if (cur.index === 1) return serviceItems(cur.span, vocab);
    if (cur.index === 2) return argumentItems(cur.span, vocab, cur.words[1]?.text ?? "");
    if (cur.index === 3) return fileItems(cur.span, files(), false);
  }
  return [];
}

const offered = new WeakMap<Vocabulary, Vocabulary>();

/**
 * The vocabulary as completion offers it: without the disposable templates
 * that are internal qubes of the system model (`default-mgmt-dvm`), as the
 * qube names already are: users never mean them, in `@dispvm:` of a target
 * column or of `target=`/`default_target=`.
 */
function offeredVocabulary(vocab: Vocabulary, snapshot: PolicySnapshot | undefined): Vocabulary {
  const system = snapshot?.system;
  if (!system) return vocab;
  let v = offered.get(vocab);
  if (!v) {
    const internal = (name: string) => pyTruthy(system.domains.get(name)?.internal);
    v = { ...vocab, dispvmTemplates: new Map([...vocab.dispvmTemplates].filter(([name]) => !internal(name))) };
    offered.set(vocab, v);
  }
  return v;
}

/** Qube tokens valid in a context, filtered by the prefix typed so far. */
function qubeItems(cur: Pick<Cursor, "prefix" | "span">, vocab: Vocabulary, context: TokenContext, valuePrefix = ""): CompletionItem[] {
  const { prefix, span } = cur;
  const items: CompletionItem[] = [];
  const valid = (kind: string) => TOKENS.some((t) => t.text === kind && t.contexts.includes(context));
  const mk = (label: string, kind: CompletionKind, detail: string, extra: Partial<CompletionItem> = {}): CompletionItem => ({
    label,
    kind,
    detail,
    span,
    insertText: valuePrefix + label,
    filterText: valuePrefix + label,
    ...extra,
  });
  if (prefix.startsWith(valuePrefix + "@dispvm:@tag:") && valid("@dispvm:@tag:")) {
    for (const [t, d] of vocab.tags) items.push(mk(`@dispvm:@tag:${t}`, "tag", d));
    return items;
  }
  if (prefix.startsWith(valuePrefix + "@dispvm:") && valid("@dispvm:")) {
    for (const [t, d] of vocab.dispvmTemplates) items.push(mk(`@dispvm:${t}`, "dispvm-template", d));
    if (valid("@dispvm:@tag:")) items.push(mk("@dispvm:@tag:", "prefix", "disposable of a template tagged …", { retrigger: true }));
    return items;
  }
  if (prefix.startsWith(valuePrefix + "@tag:") && valid("@tag:")) {
    for (const [t, d] of vocab.tags) items.push(mk(`@tag:${t}`, "tag", d));
    return items;
  }
  if (prefix.startsWith(valuePrefix + "@type:") && valid("@type:")) {
    for (const [t, d] of vocab.types) items.push(mk(`@type:${t}`, "type", d));
    return items;
  }
  for (const t of TOKENS) {
    if (!t.contexts.includes(context)) continue;
    items.push(mk(t.text, t.prefix ? "prefix" : "keyword", t.description, { sortText: "0" + t.text, retrigger: t.prefix }));
  }
  items.push(mk("dom0", "qube", "the admin qube", { sortText: "1dom0" }));
  for (const [name, d] of vocab.qubes) {
    if (name === "dom0") continue;
    items.push(mk(name, "qube", d, { sortText: "2" + name }));
  }
  if (context !== "source") {
    for (const [name, d] of vocab.dispvmTemplates) items.push(mk(`@dispvm:${name}`, "dispvm-template", d, { sortText: "3" + name }));
  }
  return items;
}

function paramItems(cur: Cursor, vocab: Vocabulary, action: ActionName, legacySeparator = false): CompletionItem[] {
  const eq = cur.prefix.indexOf("=");
  if (eq >= 0) {
    const key = cur.prefix.slice(0, eq);
    const info = PARAMS.find((p) => p.key === key);
    if (!info || !info.actions.includes(action)) return [];
    if (info.values) {
      return info.values.map((v) => ({ label: v, kind: "value" as const, detail: `${key}=${v}`, insertText: `${key}=${v}`, filterText: `${key}=${v}`, span: cur.span }));
    }
    if (key === "target" || key === "default_target") return qubeItems(cur, vocab, "redirect", `${key}=`);
    if (key === "user") {
      return ["root", "user"].map((u) => ({ label: u, kind: "value" as const, detail: `run as ${u}`, insertText: `user=${u}`, filterText: `user=${u}`, span: cur.span }));
    }
    return [];
  }
  const word = cur.words[cur.index];
  // At the start of an existing word (`|target=@dispvm:x`): a new key is inserted before it,
  // with the separator, and no key already on the line is offered (the word's own included).
  if (word && cur.prefix === "" && word.text !== "" && cur.span.start === word.span.start) {
    const present = new Set(cur.words.map((w) => w.text.split("=")[0]));
    const at = { start: word.span.start, end: word.span.start };
    const sep = legacySeparator ? "," : " ";
    return paramsFor(action)
      .filter((p) => !present.has(p.key))
      .map((p) => ({ label: `${p.key}=`, kind: "param" as const, detail: `parameter of ${action}`, documentation: p.description, insertText: `${p.key}=${sep}`, filterText: `${p.key}=`, span: at }));
  }
  const used = new Set(cur.words.slice(0, cur.index).concat(cur.words.slice(cur.index + 1)).map((w) => w.text.split("=")[0]));
  // Completing the key of a word that already has a value (`tar|get=@dispvm:x`) replaces
  // only the key and its `=`, never the value after it.
  const eqInWord = word ? word.text.indexOf("=") : -1;
  const span = word && eqInWord >= 0 ? { start: cur.span.start, end: word.span.start + eqInWord + 1 } : cur.span;
  return paramsFor(action)
    .filter((p) => !used.has(p.key))
    .map((p) => ({ label: `${p.key}=`, kind: "param" as const, detail: `parameter of ${action}`, documentation: p.description, span, retrigger: true }));
}
