/**
 * The editor's view of one stack file: its navigation index, the other files
 * of the stack it reaches (`include:` fragments and `use:` bundles), the
 * future system model (the live model, if any, with every declared qube on
 * top), and the embedded policy blocks as a policy of their own, analysed by
 * the policy services as the generated files will be read
 * (`/etc/qubes/policy.d/<priority>-qkit-<stack>-<file>.policy`).
 *
 * Pure: other files come through `readFile`. Never throws.
 */
import { createMemoryFileSystem, normalizePath } from "../../loader/memfs.js";
import { POLICY_DIR } from "../../loader/types.js";
import { prepareSystemInfo } from "../../eval/system.js";
import type { DomainInfo, RawSystemInfo, SystemInfo } from "../../eval/types.js";
import type { PolicyDocument } from "../../syntax/tree.js";
import { analyzeWorkspace, type PolicySnapshot } from "../../services/workspace.js";
import { SUPPORTED_RPC_KEY } from "../../services/rpc-provided.js";
import { policyFileName } from "../model.js";
import { parseStackText, type StackDocument } from "../document.js";
import { markNotUtf8 } from "../check.js";
import type { Utf8Problem } from "../../loader/utf8.js";
import { indexStack, type IndexedQube, type PolicyBlock, type StackIndex } from "./stack-index.js";

/** A device a backend qube offers (for completion of ports). */
export interface LiveDevice {
  devclass: string;
  backend: string;
  port: string;
  deviceId?: string;
  description?: string;
}

/** What a template service needs besides the file. */
export interface TemplateEnvironment {
  /** The live system model, or `null`/absent (then names the stack does not declare are only notes). */
  system?: SystemInfo | null;
  /** Reads another file by absolute path (includes, bundles); `undefined` when missing. */
  readFile?: (path: string) => string | undefined;
  /**
   * Where the bytes of a file `readFile` read from disk are not UTF-8, or
   * `undefined` (an open document is the editor's text: never). Such a file
   * would be applied with U+FFFD in place of those bytes (`not-utf8`).
   */
  notUtf8?: (path: string) => Utf8Problem | undefined;
  /** Devices available on the machine, when known. */
  devices?: readonly LiveDevice[];
  /** Names in a folder (absolute path), for completing `include:` and `bundle:` paths; `undefined` when unreadable. */
  readDir?: (path: string) => string[] | undefined;
  /** Labels of the machine (default: the eight standard ones plus those the stack declares). */
  labels?: readonly string[];
  /** Kernels installed in dom0 (the `linux-kernel` pool's volumes), when known: completed for `kernel:`, and checked. */
  kernels?: readonly string[];
  /** Storage pools of the machine, when known: pool names are checked. */
  pools?: readonly string[];
}

/** An analysed stack file. */
export interface TemplateAnalysis {
  readonly path: string;
  readonly text: string;
  readonly index: StackIndex;
  readonly env: TemplateEnvironment;
  /** Every file of the stack reached from this one (this one included), by absolute path. */
  readonly files: ReadonlyMap<string, StackIndex>;
  /** The same files parsed by the template front end (handed to `checkStack`, so nothing is parsed twice). */
  readonly documents: Map<string, StackDocument>;
  /** Qubes declared by bundle instances (`use:`), by resolved name. */
  readonly bundleQubes: ReadonlyMap<string, IndexedQube>;
  /** The live model with the declared qubes on top. */
  readonly futureSystem: SystemInfo;
  /** The embedded policy blocks of every file as one policy (computed on first use). */
  policy(): PolicySnapshot;
  /** The virtual policy path of a block of `file`. */
  blockPath(file: string, block: PolicyBlock): string;
  /** The parsed block, as the policy reads it. */
  blockDocument(file: string, block: PolicyBlock): PolicyDocument | undefined;
}

function dirOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

/** Resolves a path written in a stack file against the file's folder. */
export function resolveStackPath(from: string, written: string): string {
  return normalizePath(written.startsWith("/") ? written : `${dirOf(from)}/${written}`);
}

/** Analyses a stack file. */
export function analyzeTemplate(path: string, text: string, env: TemplateEnvironment = {}): TemplateAnalysis {
  const documents = new Map<string, StackDocument>();
  const parse = (p: string, t: string): StackIndex => {
    const doc = parseStackText(t, p);
    // The analysed file is the editor's text; the others may have been read from disk.
    if (p !== path) markNotUtf8(doc, env.notUtf8, p);
    documents.set(p, doc);
    return indexStack(t, doc.yaml);
  };
  const index = parse(path, text);
  const files = new Map<string, StackIndex>([[path, index]]);
  const queue = [path];
  while (queue.length && files.size < 200) {
    const from = queue.shift()!;
    for (const f of files.get(from)!.files) {
      const p = resolveStackPath(from, f.value);
      if (files.has(p)) continue;
      let t: string | undefined;
      try {
        t = env.readFile?.(p);
      } catch {
        t = undefined;
      }
      if (t === undefined) continue;
      files.set(p, parse(p, t));
      queue.push(p);
    }
  }
  // `with:` values of bundle parameters of type `qube`, `name` or `list<qube>` name qubes too.
  for (const [file, idx] of files) {
    for (const use of idx.uses) {
      const bundle = use.bundle ? files.get(resolveStackPath(file, use.bundle.value)) : undefined;
      if (!bundle) continue;
      for (const [param, value] of use.with) {
        const type = bundle.params.get(param)?.type;
        if (type === "qube" || type === "name" || type === "list<qube>") idx.references.push({ ...value, role: `with.${param}` });
        // A tag parameter's value ends up in the generated policy (`@tag:${p}`) and on qubes: it names the tag.
        if (type === "tag") idx.tagReferences.push({ ...value, role: `with.${param}` });
      }
      for (const [param, items] of use.withLists ?? []) {
        if (bundle.params.get(param)?.type !== "list<qube>") continue;
        for (const value of items) idx.references.push({ ...value, role: `with.${param}` });
      }
    }
  }
  const bundleQubes = instances(files);
  const futureSystem = buildFutureSystem(files, env.system ?? null, bundleQubes);
  const stackName = index.stack ?? "stack";
  const blockPath = (file: string, block: PolicyBlock): string => {
    const owner = files.get(file);
    const name = owner && owner.kind === "bundle" ? `${stackName}-${owner.stack ?? "bundle"}` : stackName;
    const priority = block.priority ?? index.policyPriority ?? 40;
    const rel = policyFileName(name, { file: block.file, priority, rules: "", include: block.include });
    return `${POLICY_DIR}/${rel}`;
  };
  let snapshot: PolicySnapshot | undefined;
  const policy = (): PolicySnapshot => {
    if (snapshot) return snapshot;
    const texts = new Map<string, string>();
    for (const [file, idx] of files) for (const b of idx.policyBlocks) texts.set(blockPath(file, b), b.text);
    snapshot = analyzeWorkspace(createMemoryFileSystem(texts), { system: futureSystem, extraDocuments: [...texts.keys()] });
    return snapshot;
  };
  return {
    path,
    text,
    index,
    env,
    files,
    documents,
    bundleQubes,
    futureSystem,
    policy,
    blockPath,
    blockDocument: (file, block) => policy().document(blockPath(file, block)),
  };
}

/** The qubes bundle instances declare, with their `${param}` names resolved: name → the bundle's entry. */
function instances(files: ReadonlyMap<string, StackIndex>): Map<string, IndexedQube> {
  const out = new Map<string, IndexedQube>();
  for (const [file, idx] of files) {
    for (const use of idx.uses) {
      const bundle = use.bundle ? files.get(resolveStackPath(file, use.bundle.value)) : undefined;
      if (!bundle) continue;
      const value = (p: string) => use.with.get(p)?.value ?? bundle.params.get(p)?.default;
      for (const q of bundle.qubes) {
        const name = q.name.replace(/\$\{([A-Za-z_][A-Za-z0-9_-]*)\}/g, (m, p: string) => value(p) ?? m);
        if (!name.includes("${")) out.set(name, q);
      }
    }
  }
  return out;
}

/** The template a model entry names (`template`, or `properties.template` in a full snapshot), if any. */
function templateOf(info: DomainInfo | undefined): string | undefined {
  if (!info || typeof info !== "object") return undefined;
  const props = info["properties"];
  const t = info["template"] ?? (props && typeof props === "object" ? (props as Record<string, unknown>)["template"] : undefined);
  return typeof t === "string" ? t : undefined;
}

/** The live system model with the declared qubes added (or updated) as they will be after apply. */
export function buildFutureSystem(files: ReadonlyMap<string, StackIndex>, live: SystemInfo | null, fromBundles: ReadonlyMap<string, IndexedQube> = new Map()): SystemInfo {
  const domains: Record<string, DomainInfo> = {};
  if (live) for (const [name, info] of live.domains) if (!name.startsWith("uuid:")) domains[name] = { ...info };
  if (!domains["dom0"]) domains["dom0"] = { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running" };
  const declared: Array<[string, IndexedQube]> = [...fromBundles];
  for (const idx of files.values()) for (const q of idx.qubes) if (!q.name.includes("${")) declared.push([q.name, q]);
  {
    for (const [name, q] of declared) {
      const prev = domains[name];
      const dd = q.values.get("default_dispvm")?.value;
      domains[name] = {
        ...(prev ?? { power_state: "Halted", default_dispvm: null }),
        type: q.class ?? prev?.type ?? "AppVM",
        tags: [...new Set([...(prev?.tags ?? []), ...q.tags.map((t) => t.value)])],
        template_for_dispvms: q.templateForDispvms || (prev?.template_for_dispvms === true && !q.keys.has("template_for_dispvms")),
        ...(dd !== undefined ? { default_dispvm: dd === "none" ? null : dd === "default" ? (prev?.default_dispvm ?? null) : dd } : {}),
        ...(q.values.get("label") ? { label: q.values.get("label")!.value } : {}),
      };
      // The services a qube advertises come from its template: a qube whose template the stack
      // sets (to another template, or where the model does not say which it had) gets the new
      // template's list, or none (unknown) when that template is not in the model or advertises nothing known.
      const template = q.values.get("template")?.value;
      if (template !== undefined && template !== templateOf(prev)) {
        const list = live ? (live.domains.get(template) as DomainInfo | null | undefined)?.[SUPPORTED_RPC_KEY] : undefined;
        if (Array.isArray(list)) domains[name]![SUPPORTED_RPC_KEY] = [...(list as string[])];
        else delete domains[name]![SUPPORTED_RPC_KEY];
      }
    }
  }
  const raw: RawSystemInfo = { domains };
  try {
    return prepareSystemInfo(raw);
  } catch {
    return prepareSystemInfo({ domains: {} });
  }
}
