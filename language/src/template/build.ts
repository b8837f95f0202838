/**
 * From one parsed file to declarations: the schema of the stack format (known
 * keys, types per class from the property table, canonical values), with a
 * diagnostic for everything that does not fit. Bundle files are read once per
 * `use:` instance, with `${param}` substituted in string scalars and keys.
 *
 * Cross-file checks (references, loops, duplicates, policy loading) are the
 * checker's (`check.ts`); this module only reads.
 */
import { isAlias, isMap, isScalar, isSeq, type Node, type Pair, type Scalar, type YAMLMap, type YAMLSeq } from "yaml";
import type { Span } from "../diagnostics.js";
import {
  DECLARABLE_CLASSES,
  FEATURE_PATTERN,
  LABEL_COLOR_PATTERN,
  LABEL_NAME_PATTERN,
  PROTECTED_FEATURES,
  STANDARD_LABELS,
  TAG_PATTERN,
  cannotReset,
  featureValueError,
  isAutomaticTag,
  propertySpec,
  qubeNameError,
  serviceNameError,
  type DeclarableClass,
  type PropertySpec,
} from "../qubes/properties.js";
import { closest } from "../services/util.js";
import { diagnosticAt, nodeSpan, type StackDocument } from "./document.js";
import { parseExpectation } from "./expect.js";
import { normalizeFirewallRule } from "./firewall.js";
import {
  ALL_QUBE_KEYS,
  BUNDLE_KEYS,
  DEVICE_KEYS,
  DEVICE_CLASS_NAMES,
  DEVICE_MATCH_CLASSES,
  DEVICE_MODES,
  EXPECT_KEYS,
  FRAGMENT_KEYS,
  ID_PATTERN,
  MATCH_KEYS,
  OPTIONS_KEYS,
  PARAM_KEYS,
  PARAM_TYPES,
  POLICY_ENTRY_KEYS,
  POWER_STATES,
  QUBE_STRUCTURAL_KEYS,
  SOURCE_KEYS,
  STACK_KEYS,
  USE_KEYS,
  VOLUME_KEYS,
  VOLUME_NAMES,
  type ParamType,
} from "./keys.js";
import { DEFAULT, GLOBALS_FEATURE_PREFIX, KEYS_FEATURE, OWNER_FEATURE, type DeviceDecl, type Expectation, type PropertyValue, type Provenance, type QubeDecl, type StackOptions, type VolumeDecl } from "./model.js";
import { PARAM_REF, coarseSegments, scalarSegments, substitute, type PolicySegment } from "./policy.js";
import type { RelatedInformation, TemplateDiagnostic } from "./types.js";

/** A bundle parameter's value for one instance. */
export interface ParamValue {
  type: ParamType;
  value: string | number | boolean | string[];
  /** Where the value was written (the `with:` entry, or the default in the bundle). */
  file: string;
  span: Span;
}

/** The bundle instance a file is being read for. */
export interface BundleContext {
  as: string;
  bundle: string;
  /** The `use:` entry. */
  useFile: string;
  useSpan: Span;
  /** Values by parameter name; a name without value (checking a bundle on its own) is left as written. */
  params: Map<string, ParamValue | "symbolic">;
}

/** A reference from a declaration to a qube, checked once every file is read. */
export interface QubeRef {
  name: string;
  /** `template`, `netvm`, `default_dispvm`, `device`, `source`, `param` … */
  via: string;
  /** The declaring qube, or `@global`. */
  from: string;
  file: string;
  span: Span;
  related?: RelatedInformation[];
}

/** A qube as read from one place. */
export interface QubeEntry {
  decl: QubeDecl;
  file: string;
  /** The key (the qube's name) in the file. */
  keySpan: Span;
  /** Spans of keys, for cross-checks (`netvm` → its value). */
  valueSpans: Map<string, Span>;
  related?: RelatedInformation[];
  /** Name or value uses an unresolved bundle parameter (checking a bundle alone). */
  symbolic: boolean;
  /** The class as written was refused (or the qube is dom0): `decl.class` is only the fallback AppVM. */
  classInvalid?: boolean;
}

/** A `rules` block read from a file (raw mapping, before the checker assigns paths). */
export interface PolicyEntry {
  file: string;
  name: string;
  priority: number | undefined;
  include: boolean;
  text: string;
  segments: PolicySegment[];
  exact: boolean;
  span: Span;
  entrySpan: Span;
  nameSpan: Span;
  bundle?: BundleContext;
  /** Uses a parameter without a value: the text is not loaded (it cannot be checked). */
  symbolic: boolean;
}

/** An expectation read from a file, with the spans of its tokens. */
export interface ExpectEntry {
  expectation: Expectation;
  file: string;
  span: Span;
  related?: RelatedInformation[];
  symbolic: boolean;
}

/** A `use:` entry of a stack or fragment. */
export interface UseEntry {
  bundlePath: string;
  as: string;
  with: YAMLMap | undefined;
  file: string;
  span: Span;
  bundleSpan: Span;
  asSpan: Span;
}

/** Everything read from the files of one stack. */
export interface Accumulator {
  diagnostics: TemplateDiagnostic[];
  stack?: { name: string; file: string; span: Span };
  global: Map<string, { value: PropertyValue; file: string; span: Span; keySpan: Span }>;
  labels: Map<string, { color: string; file: string; span: Span }>;
  qubes: QubeEntry[];
  policy: PolicyEntry[];
  expect: ExpectEntry[];
  options: StackOptions;
  optionsSeen: boolean;
  refs: QubeRef[];
  /** Label names used, with their place (checked once custom labels are known). */
  labelRefs: { name: string; file: string; span: Span; related?: RelatedInformation[] }[];
  kernelRefs: { name: string; file: string; span: Span; related?: RelatedInformation[] }[];
  poolRefs: { name: string; file: string; span: Span; related?: RelatedInformation[] }[];
  includes: { path: string; file: string; span: Span }[];
  uses: UseEntry[];
  /** The time firewall `expire=` values are compared with (seconds since the epoch). */
  now: number;
}

export function newAccumulator(now = Date.now() / 1000): Accumulator {
  return {
    now,
    diagnostics: [],
    global: new Map(),
    labels: new Map(),
    qubes: [],
    policy: [],
    expect: [],
    options: { prune: false, restart: "never", policy_priority: 40, adopt: false },
    optionsSeen: false,
    refs: [],
    labelRefs: [],
    kernelRefs: [],
    poolRefs: [],
    includes: [],
    uses: [],
  };
}

/** A scalar's value after substitution. */
interface ScalarRead {
  value: string | number | boolean | null | string[];
  /** Written as a plain scalar (so `yes`, `default`, `none` are keywords). */
  plain: boolean;
  /** The source text of a plain scalar (`6.6` for a kernel, not the float). */
  source: string;
  /** Depends on a parameter without a value: not checked. */
  symbolic: boolean;
  span: Span;
  /** The exact decimal digits of an integer beyond 2^53 - 1, which `value` (a double) has rounded. */
  unsafeInteger?: string;
}

const YAML11_BOOLEANS = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/;

/** How a document is being read. */
export type ReadRole = "stack" | "fragment" | "bundle";

/** Reads one document into the accumulator. */
export class DocumentReader {
  constructor(
    private readonly doc: StackDocument,
    private readonly acc: Accumulator,
    private readonly role: ReadRole,
    private readonly bundle?: BundleContext,
  ) {}

  private related(): RelatedInformation[] | undefined {
    if (!this.bundle) return undefined;
    return [{ file: this.bundle.useFile, span: this.bundle.useSpan, message: `in bundle instance ${this.bundle.as} (${this.bundle.bundle})` }];
  }

  private report(code: string, severity: TemplateDiagnostic["severity"], message: string, span: Span, help?: string): void {
    // A node that a YAML syntax error runs through is not judged again: the syntax error says it.
    for (const e of this.doc.syntaxDamage) if (e.start <= span.end && span.start <= e.end && span.end > span.start) return;
    const d = diagnosticAt(this.doc, code, severity, message, span, help);
    const rel = this.related();
    if (rel) d.related = rel;
    this.acc.diagnostics.push(d);
  }

  /** Reports at a node; nothing for an alias (already reported as \`yaml-alias\`, its value is not read). */
  private error(node: Node | null | undefined, code: string, message: string, help?: string): void {
    if (isAlias(node)) return;
    this.report(code, "error", message, nodeSpan(node), help);
  }

  private errorHelp(node: Node | null | undefined, code: string, message: string, help: string): void {
    this.error(node, code, message, help);
  }

  private prov(node: Node | null | undefined): Provenance {
    const s = nodeSpan(node);
    const p: Provenance = { file: this.doc.path, start: s.start, end: s.end };
    if (this.bundle) p.bundle = { as: this.bundle.as, bundle: this.bundle.bundle, file: this.bundle.useFile, start: this.bundle.useSpan.start, end: this.bundle.useSpan.end };
    return p;
  }

  /** Reads a scalar (substituting parameters). `undefined` when the node is not a scalar. */
  private scalar(node: unknown): ScalarRead | undefined {
    if (!isScalar(node)) return undefined;
    const span = nodeSpan(node);
    const plain = node.type === "PLAIN" || node.type === undefined;
    const source = plain && node.range ? this.doc.text.slice(node.range[0], node.range[1]) : String(node.value);
    let value = node.value as ScalarRead["value"];
    if (typeof value === "bigint") value = Number(value);
    if (typeof value === "number" && !Number.isFinite(value)) value = source;
    if (typeof value !== "string" || !value.includes("${")) {
      if (value !== null && typeof value === "object") value = String(value);
      const read: ScalarRead = { value, plain, source, symbolic: false, span };
      if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value)) read.unsafeInteger = exactInteger(source, value);
      return read;
    }
    return this.substituteScalar(value, plain, span);
  }

  /** Refuses a float literal (`2.0`, `1e3`) where an integer goes: YAML reads it as a float. */
  private notIntegerLiteral(s: ScalarRead, what: string): void {
    const n = s.value as number;
    this.report("not-an-integer-literal", "error", `${what} must be an integer: ${s.source.trim()} is a float in YAML`, s.span, `write ${Number.isSafeInteger(n) ? String(n) : "the integer"} (digits only, no decimal point or exponent)`);
  }

  /** Refuses an integer a double cannot hold exactly (it would be stored with other digits). */
  private unsafeInteger(s: ScalarRead, what: string): void {
    this.report("unsafe-integer", "error", `${what} is too large to keep exactly: ${s.unsafeInteger ?? s.source} (the limit is ±${Number.MAX_SAFE_INTEGER})`, s.span, "write a smaller number");
  }

  private substituteScalar(text: string, plain: boolean, span: Span): ScalarRead {
    const refs = [...text.matchAll(PARAM_REF)];
    if (!this.bundle) {
      if (refs.length) this.errorSpan(span, "param-outside-bundle", `parameters are only substituted in bundles: ${refs[0]![0]}`, "write the value, or move these declarations into a bundle file (`bundle:` with `params:`)");
      return { value: text, plain, source: text, symbolic: false, span };
    }
    const whole = refs.length === 1 && refs[0]![0] === text ? refs[0]![1]! : undefined;
    let symbolic = false;
    if (whole !== undefined) {
      const p = this.bundle.params.get(whole);
      if (p === undefined) {
        this.errorSpan(span, "unknown-param", `unknown parameter: ${whole}`, this.paramHelp(whole));
        return { value: text, plain, source: text, symbolic: true, span };
      }
      if (p === "symbolic") return { value: text, plain, source: text, symbolic: true, span };
      const v = p.value;
      return { value: v, plain: true, source: Array.isArray(v) ? v.join(" ") : String(v), symbolic: false, span };
    }
    const res = substitute(text, [{ out: 0, len: text.length, src: 0, srcLen: text.length }], (name) => {
      const p = this.bundle!.params.get(name);
      if (p === undefined) return { error: `unknown parameter: ${name}`, help: this.paramHelp(name) };
      if (p === "symbolic") {
        symbolic = true;
        return { text: `\${${name}}` };
      }
      if (Array.isArray(p.value)) return { error: `a list parameter cannot be part of a string: ${name}`, help: "use it as the whole value of a list key" };
      return { text: String(p.value) };
    }, (_raw, message, help) => this.errorSpan(span, message.startsWith("unknown") ? "unknown-param" : "invalid-param-use", message, help));
    return { value: res.text, plain, source: res.text, symbolic, span };
  }

  private paramHelp(name: string): string {
    const c = closest(name, [...(this.bundle?.params.keys() ?? [])]);
    return c.length ? `did you mean \`${c[0]}\`?` : "declare it under `params:` in the bundle";
  }

  private errorSpan(span: Span, code: string, message: string, help?: string): void {
    this.report(code, "error", message, span, help);
  }

  /** The key text of a pair (substituted). */
  private key(pair: Pair): ScalarRead | undefined {
    const k = this.scalar(pair.key);
    if (!k) return undefined;
    if (typeof k.value !== "string") k.value = k.source;
    return k;
  }

  /** Reports keys outside `allowed` (with suggestions) and returns the known pairs by key. */
  private known(map: YAMLMap, allowed: readonly string[], where: string, extra?: (key: string, pair: Pair) => boolean): Map<string, Pair> {
    const out = new Map<string, Pair>();
    for (const pair of map.items) {
      const k = this.key(pair);
      if (!k) continue;
      const name = String(k.value);
      if (name === "<<" && k.plain) continue; // a merge key: reported by the YAML profile
      if (allowed.includes(name)) {
        if (!out.has(name)) out.set(name, pair);
        continue;
      }
      if (extra && extra(name, pair)) continue;
      const c = closest(name, allowed);
      this.report("unknown-key", "error", `unknown key in ${where}: ${name}`, k.span, c.length ? `did you mean \`${c[0]}\`?` : `known keys: ${allowed.join(", ")}`);
    }
    return out;
  }

  /** An explicit `null` or `~` (an empty value, `key:` with nothing after it, stays an empty mapping or list). */
  private explicitNull(node: unknown, what: string, shape: string): boolean {
    if (!isScalar(node) || node.value !== null || !node.range || node.range[1] <= node.range[0]) return false;
    this.errorHelp(node, "wrong-type", `${what} must be ${shape}, not null`, `leave ${what} out, or write ${shape === "a mapping" ? "{}" : "[]"}`);
    return true;
  }

  private expectMap(node: unknown, what: string): YAMLMap | undefined {
    if (this.explicitNull(node, what, "a mapping")) return undefined;
    if (node === null || node === undefined || (isScalar(node) && node.value === null)) return undefined;
    if (isMap(node)) return node;
    this.error(node as Node, "wrong-type", `${what} must be a mapping`);
    return undefined;
  }

  private expectSeq(node: unknown, what: string): YAMLSeq | undefined {
    if (this.explicitNull(node, what, "a list")) return undefined;
    if (node === null || node === undefined || (isScalar(node) && node.value === null)) return undefined;
    if (isSeq(node)) return node;
    this.error(node as Node, "wrong-type", `${what} must be a list`);
    return undefined;
  }

  /** The items of a list, or of a `${param}` of type list<qube> standing for one. */
  private listItems(node: unknown, what: string): unknown[] | undefined {
    if (isScalar(node) && typeof node.value === "string" && node.value.includes("${") && this.bundle) {
      const s = this.scalar(node);
      if (s && (Array.isArray(s.value) || s.symbolic)) return s.symbolic ? [] : [node];
    }
    return this.expectSeq(node, what)?.items;
  }

  private str(node: unknown, what: string): ScalarRead | undefined {
    const s = this.scalar(node);
    if (!s || s.value === null || Array.isArray(s.value)) {
      this.error(node as Node, "wrong-type", `${what} must be a string`);
      return undefined;
    }
    if (typeof s.value !== "string") s.value = s.source;
    return s;
  }

  private bool(node: unknown, what: string): boolean | undefined {
    const s = this.scalar(node);
    if (s && typeof s.value === "boolean") return s.value;
    if (s && s.plain && typeof s.value === "string" && YAML11_BOOLEANS.test(s.value)) {
      this.errorHelp(node as Node, "yaml-boolean", `${s.value} is not a boolean in YAML 1.2: ${what} must be true or false`, `write ${/^(y|yes|on)$/i.test(s.value) ? "true" : "false"}`);
      return undefined;
    }
    if (s?.symbolic) return undefined;
    this.error(node as Node, "wrong-type", `${what} must be true or false`);
    return undefined;
  }

  private int(node: unknown, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const s = this.scalar(node);
    if (s?.symbolic) return undefined;
    if (!s || typeof s.value !== "number" || !Number.isInteger(s.value)) {
      this.error(node as Node, "wrong-type", `${what} must be an integer`);
      return undefined;
    }
    if (floatLiteral(s)) {
      this.notIntegerLiteral(s, what);
      return undefined;
    }
    if (s.unsafeInteger !== undefined) {
      this.unsafeInteger(s, what);
      return undefined;
    }
    if (s.value < min || s.value > max) {
      this.error(node as Node, "out-of-range", `${what} must be ${max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `between ${min} and ${max}`}: ${s.value}`);
      return undefined;
    }
    return s.value;
  }

  // ───────────────────────────── top level ─────────────────────────────

  /** Reads the whole document. */
  read(): void {
    const root = this.doc.yaml.contents;
    if (root === null || (isScalar(root) && (root.value === null || root.value === ""))) {
      if (this.doc.diagnostics.some((d) => d.severity === "error")) return;
      this.report("empty-file", "error", "the file is empty", { start: 0, end: 0 }, this.role === "bundle" ? "start it with `qkit: 1` and `bundle: NAME`" : "start it with `qkit: 1` and `stack: NAME`");
      return;
    }
    if (!isMap(root)) return;
    const allowed = this.role === "bundle" ? BUNDLE_KEYS : this.role === "fragment" ? FRAGMENT_KEYS : STACK_KEYS;
    const keys = this.known(root, allowed, this.role === "bundle" ? "a bundle file" : this.role === "fragment" ? "an included file" : "a stack file", (name, pair) => {
      if (this.role === "fragment" && name === "options") {
        this.errorHelp(pair.key as Node, "options-in-include", "options belong in the stack file, not in an included file", "move `options:` to the file given to qkit");
        return true;
      }
      if (this.role === "bundle" && (name === "stack" || name === "include" || name === "use" || name === "global" || name === "labels" || name === "options")) {
        this.errorHelp(pair.key as Node, "not-in-bundle", `a bundle cannot have ${name}:`, "bundles declare qubes, policy and expectations; the stack that uses them holds the rest");
        return true;
      }
      return false;
    });
    const version = keys.get("qkit");
    if (!version) this.report("missing-key", "error", "missing key: qkit (the format version)", { start: 0, end: 0 }, "add `qkit: 1` at the top of the file");
    else {
      const v = this.scalar(version.value);
      if (!v || v.value !== 1) this.errorHelp(version.value as Node, "unsupported-version", `unsupported format version: ${v ? v.source : "?"}`, "this qkit reads `qkit: 1`");
    }
    if (this.role === "stack") {
      const st = keys.get("stack");
      if (!st) this.report("missing-key", "error", "missing key: stack (the stack's name)", { start: 0, end: 0 }, "add `stack: NAME` (lowercase letters, digits, - and _)");
      else {
        const s = this.str(st.value, "stack");
        if (s && !s.symbolic) {
          const name = String(s.value);
          if (!ID_PATTERN.test(name) || name.length > 48) this.errorHelp(st.value as Node, "invalid-stack-name", `invalid stack name: ${name}`, "use lowercase letters, digits, - and _ (it names policy files and ownership features), at most 48 characters");
          else this.acc.stack = { name, file: this.doc.path, span: s.span };
        }
      }
    } else if (this.role === "fragment") {
      const st = keys.get("stack");
      if (st) {
        const s = this.str(st.value, "stack");
        if (s && this.acc.stack && s.value !== this.acc.stack.name) {
          const d = diagnosticAt(this.doc, "stack-mismatch", "error", `this file belongs to stack ${String(s.value)}, not ${this.acc.stack.name}`, s.span, "an included file is part of the including stack: remove `stack:` or fix the name");
          d.related = [{ file: this.acc.stack.file, span: this.acc.stack.span, message: "the stack is named here" }];
          this.acc.diagnostics.push(d);
        }
      }
    }
    if (keys.has("description")) this.str(keys.get("description")!.value, "description");
    const inc = keys.get("include");
    if (inc) this.readIncludes(inc.value);
    const use = keys.get("use");
    if (use) this.readUses(use.value);
    const glob = keys.get("global");
    if (glob) this.readGlobal(glob.value);
    const labels = keys.get("labels");
    if (labels) this.readLabels(labels.value);
    const qubes = keys.get("qubes");
    if (qubes) {
      const m = this.expectMap(qubes.value, "qubes");
      if (m) for (const pair of m.items) this.readQube(pair);
    }
    const policy = keys.get("policy");
    if (policy) {
      const s = this.expectSeq(policy.value, "policy");
      if (s) for (const item of s.items) this.readPolicyEntry(item);
    }
    const expect = keys.get("expect");
    if (expect) {
      const s = this.expectSeq(expect.value, "expect");
      if (s) for (const item of s.items) this.readExpect(item);
    }
    const options = keys.get("options");
    if (options) this.readOptions(options.value);
  }

  private readIncludes(node: unknown): void {
    const items = isScalar(node) ? [node] : this.expectSeq(node, "include")?.items ?? [];
    for (const it of items) {
      const s = this.str(it, "an include entry");
      if (!s) continue;
      const p = String(s.value);
      if (!p.endsWith(".qubes.yaml")) this.report("invalid-include", "error", `included files must be *.qubes.yaml: ${p}`, s.span, "name the file NAME.qubes.yaml");
      else this.acc.includes.push({ path: p, file: this.doc.path, span: s.span });
    }
  }

  private readUses(node: unknown): void {
    const seq = this.expectSeq(node, "use");
    if (!seq) return;
    for (const item of seq.items) {
      const m = this.expectMap(item, "a use entry");
      if (!m) continue;
      const keys = this.known(m, USE_KEYS, "a use entry");
      const b = keys.get("bundle");
      const a = keys.get("as");
      if (!b) {
        this.errorHelp(m, "missing-key", "missing key in a use entry: bundle", "add `bundle: ./bundles/NAME.qubes.yaml`");
        continue;
      }
      const bs = this.str(b.value, "bundle");
      if (!bs) continue;
      // The rule of include: entries: only stack files are read (never /etc/passwd or any other file).
      if (!String(bs.value).endsWith(".qubes.yaml")) {
        this.report("invalid-bundle-path", "error", `bundle files must be *.qubes.yaml: ${String(bs.value)}`, bs.span, "name the bundle file NAME.qubes.yaml");
        continue;
      }
      let as: string;
      let asSpan: Span;
      if (a) {
        const s = this.str(a.value, "as");
        if (!s) continue;
        as = String(s.value);
        asSpan = s.span;
      } else {
        as = String(bs.value).replace(/^.*\//, "").replace(/\.qubes\.yaml$/, "");
        asSpan = bs.span;
      }
      if (!ID_PATTERN.test(as)) {
        this.report("invalid-instance-name", "error", `invalid instance name: ${as}`, asSpan, "use lowercase letters, digits, - and _ (it names the instance's policy files)");
        continue;
      }
      const w = keys.get("with");
      const withMap = w ? this.expectMap(w.value, "with") : undefined;
      this.acc.uses.push({ bundlePath: String(bs.value), as, with: withMap, file: this.doc.path, span: nodeSpan(m), bundleSpan: bs.span, asSpan });
    }
  }

  private readGlobal(node: unknown): void {
    const m = this.expectMap(node, "global");
    if (!m) return;
    for (const pair of m.items) {
      const k = this.key(pair);
      if (!k) continue;
      const name = String(k.value);
      const spec = propertySpec("@global", name);
      if (!spec) {
        const c = closest(name, [...globalNames()]);
        this.report("unknown-key", "error", `unknown global property: ${name}`, k.span, c.length ? `did you mean \`${c[0]}\`?` : "global properties are those of `qubes-prefs` (listed by `qkit template schema`)");
        continue;
      }
      if (spec.access !== "rw") {
        this.report("read-only-property", "error", `property '${name}' is read-only`, k.span, "remove it: qubesd computes it");
        continue;
      }
      const v = this.property("@global", spec, pair.value as Node, "@global");
      if (v === undefined) continue;
      const prev = this.acc.global.get(name);
      if (prev) {
        const d = diagnosticAt(this.doc, "duplicate-global", "error", `global property ${name} is declared twice`, k.span, "declare each global property once in the whole stack");
        d.related = [{ file: prev.file, span: prev.keySpan, message: "first declared here" }];
        this.acc.diagnostics.push(d);
        continue;
      }
      this.acc.global.set(name, { value: v, file: this.doc.path, span: nodeSpan(pair.value as Node), keySpan: k.span });
    }
  }

  private readLabels(node: unknown): void {
    const m = this.expectMap(node, "labels");
    if (!m) return;
    for (const pair of m.items) {
      const k = this.key(pair);
      if (!k) continue;
      const name = String(k.value);
      if (!LABEL_NAME_PATTERN.test(name)) {
        this.report("invalid-label-name", "error", `invalid label name: ${name}`, k.span, "letters, digits, - and _");
        continue;
      }
      if ((STANDARD_LABELS as readonly string[]).includes(name)) {
        this.report("standard-label", "error", `label ${name} is built in and cannot be redefined`, k.span, "pick another name for a custom label");
        continue;
      }
      const v = this.scalar(pair.value);
      const color = v ? (typeof v.value === "string" ? v.value : v.source) : "";
      if (!v || !LABEL_COLOR_PATTERN.test(color)) {
        this.errorHelp(pair.value as Node, "invalid-label-color", `invalid label colour: ${color || "(none)"}`, 'write the colour as a quoted string "0xRRGGBB"');
        continue;
      }
      const prev = this.acc.labels.get(name);
      if (prev) {
        const d = diagnosticAt(this.doc, "duplicate-label", "error", `label ${name} is declared twice`, k.span);
        d.related = [{ file: prev.file, span: prev.span, message: "first declared here" }];
        this.acc.diagnostics.push(d);
        continue;
      }
      this.acc.labels.set(name, { color: color.toLowerCase().replace(/^0x/, "0x"), file: this.doc.path, span: k.span });
    }
  }

  private readOptions(node: unknown): void {
    const m = this.expectMap(node, "options");
    if (!m) return;
    this.acc.optionsSeen = true;
    const keys = this.known(m, OPTIONS_KEYS, "options");
    const o = this.acc.options;
    if (keys.has("prune")) o.prune = this.bool(keys.get("prune")!.value, "prune") ?? o.prune;
    if (keys.has("adopt")) o.adopt = this.bool(keys.get("adopt")!.value, "adopt") ?? o.adopt;
    if (keys.has("policy_priority")) o.policy_priority = this.int(keys.get("policy_priority")!.value, "policy_priority", 0, 99) ?? o.policy_priority;
    if (keys.has("restart")) {
      const node = keys.get("restart")!.value;
      const s = this.str(node, "restart");
      if (s && s.value !== "never" && s.value !== "if-needed") this.errorHelp(node as Node, "invalid-value", `invalid restart: ${String(s.value)}`, "never or if-needed");
      else if (s) o.restart = s.value as StackOptions["restart"];
    }
  }

  // ───────────────────────────── qubes ─────────────────────────────

  private readQube(pair: Pair): void {
    const k = this.key(pair);
    if (!k) {
      this.error(pair.key as Node, "wrong-type", "a qube name must be a string");
      return;
    }
    const name = String(k.value);
    const symbolic = k.symbolic;
    // dom0 is the AdminVM: one error says so (plan refuses it the same way, `cannot-manage-dom0`), not its class.
    const dom0 = !symbolic && name === "dom0";
    if (dom0) this.report("cannot-manage-dom0", "error", "dom0 is the AdminVM: a stack cannot declare it", k.span, "remove it from qubes: (global properties go under global:)");
    else if (!symbolic) {
      const err = qubeNameError(name);
      if (err) this.report("invalid-qube-name", "error", `invalid qube name: ${name}: ${err}`, k.span, qubeNameHelp(name));
    }
    const m = this.expectMap(pair.value, `qube ${name}`);
    const decl: QubeDecl = { name, class: "AppVM", properties: {}, features: {}, state: "any", absent: false, protect: false, ignore_changes: [], provenance: this.prov(pair.key as Node), keyProvenance: {} };
    const entry: QubeEntry = { decl, file: this.doc.path, keySpan: k.span, valueSpans: new Map(), symbolic };
    const rel = this.related();
    if (rel) entry.related = rel;
    if (!m) {
      this.report("missing-key", "error", `qube ${name} needs at least class:`, k.span, "write `class: AppVM` (or TemplateVM, StandaloneVM, DispVM) under the name");
      this.acc.qubes.push(entry);
      return;
    }
    const cls = m.items.find((p) => isScalar(p.key) && p.key.value === "class");
    const absent = m.items.some((p) => isScalar(p.key) && p.key.value === "absent" && isScalar(p.value) && p.value.value === true);
    let klass: DeclarableClass | undefined;
    if (dom0) entry.classInvalid = true;
    if (!cls) {
      if (!absent && !dom0) this.report("missing-key", "error", `qube ${name} has no class`, k.span, "add `class: AppVM` (or TemplateVM, StandaloneVM, DispVM)");
    } else {
      const s = this.str(cls.value, "class");
      if (!s) entry.classInvalid = true;
      else {
        const v = String(s.value);
        if ((DECLARABLE_CLASSES as readonly string[]).includes(v)) klass = v as DeclarableClass;
        else if (dom0 && v === "AdminVM") entry.classInvalid = true;
        else {
          entry.classInvalid = true;
          const c = closest(v, DECLARABLE_CLASSES);
          this.report("invalid-class", "error", v === "AdminVM" || v === "RemoteVM" ? `class ${v} cannot be declared in a stack` : `unknown qube class: ${v}`, s.span, c.length ? `did you mean \`${c[0]}\`?` : "AppVM, TemplateVM, StandaloneVM or DispVM");
        }
      }
    }
    decl.class = klass ?? "AppVM";
    this.acc.qubes.push(entry);
    const seen = new Set<string>();
    for (const p of m.items) {
      const kk = this.key(p);
      if (!kk) continue;
      const key = String(kk.value);
      if (key === "class" || seen.has(key) || (key === "<<" && kk.plain)) continue;
      seen.add(key);
      const prov = this.prov(p.value as Node);
      entry.valueSpans.set(key, nodeSpan(p.value as Node, kk.span));
      if ((QUBE_STRUCTURAL_KEYS as readonly string[]).includes(key)) {
        this.readStructural(entry, key, p, klass);
        decl.keyProvenance![key] = prov;
        continue;
      }
      if (!klass) continue; // properties depend on the class: checked once it is right
      const spec = propertySpec(klass, key);
      if (!spec) {
        const other = DECLARABLE_CLASSES.filter((c) => propertySpec(c, key)?.access === "rw");
        if (other.length) this.report("property-not-for-class", "error", `${klass} has no property ${key}`, kk.span, `${key} belongs to ${other.join(", ")}`);
        else {
          const c = closest(key, ALL_QUBE_KEYS);
          this.report("unknown-key", "error", `unknown key in qube ${name}: ${key}`, kk.span, c.length ? `did you mean \`${c[0]}\`?` : `a qube's keys are ${QUBE_STRUCTURAL_KEYS.join(", ")} and the properties of its class (listed by \`qkit template schema\`)`);
        }
        continue;
      }
      if (spec.access === "read-only") {
        this.report("read-only-property", "error", `property '${key}' is read-only`, kk.span, "remove it: qubesd computes this property");
        continue;
      }
      if (spec.access === "write-once") {
        this.report("write-once-property", "error", key === "name" ? "the name is the key of the qube, not a property" : `property '${key}' is assigned by qubesd and cannot be set`, kk.span, "remove it");
        continue;
      }
      const v = this.property(klass, spec, p.value as Node, name);
      if (v === undefined) continue;
      decl.properties[key] = v;
      decl.keyProvenance![key] = prov;
    }
    if (klass) this.classRules(entry, klass, m);
    else if (absent) this.classRules(entry, decl.class, m);
  }

  /** Rules about keys that depend on the class (template presence, source). */
  private classRules(entry: QubeEntry, klass: DeclarableClass, m: YAMLMap): void {
    const d = entry.decl;
    if (d.absent && d.protect) this.report("absent-and-protected", "error", `${d.name} is both absent and protected`, entry.valueSpans.get("absent") ?? entry.keySpan, "protect: true keeps the qube; remove one of the two");
    if (d.absent && d.moved_from !== undefined) this.report("invalid-move", "error", `${d.name} is absent but moved_from: ${d.moved_from}`, entry.valueSpans.get("moved_from") ?? entry.keySpan, "remove moved_from (a qube that is declared absent is removed, not moved)");
    if (d.absent && d.state === "running") this.report("absent-and-running", "error", `${d.name} is absent but state: running`, entry.valueSpans.get("state") ?? entry.keySpan, "remove state: (an absent qube is halted and removed)");
    if (d.source && klass !== "TemplateVM" && klass !== "StandaloneVM") {
      const p = m.items.find((it) => isScalar(it.key) && it.key.value === "source");
      this.errorHelp(p?.key as Node, "source-not-for-class", `${klass} has no source: it is created from its template`, "source: applies to TemplateVM and StandaloneVM");
    }
    // A new disposable without template is an error, reported by the checker when a system says the qube is new.
  }

  /** Reads one property value typed by the table; `undefined` after reporting an error. */
  private property(klass: DeclarableClass | "@global", spec: PropertySpec, node: Node, owner: string): PropertyValue | undefined {
    const s = this.scalar(node);
    const name = spec.name;
    if (!s) {
      this.error(node, "wrong-type", `${name} must be ${typeWord(spec)}`);
      return undefined;
    }
    if (s.symbolic) return typeof s.value === "string" ? s.value : undefined;
    if (klass !== "@global" && (name === "installed_by_rpm" || name === "backup_timestamp")) {
      // Declarable, but kept by other tools: said, and still planned as declared.
      const help =
        name === "installed_by_rpm"
          ? "template packages set it (qvm-template); declared true, qubesd refuses to remove the qube (absent: and --prune then fail): remove the line"
          : "qvm-backup writes it after each backup; declared, the stack resets what backups record: remove the line";
      this.report("bookkeeping-property", "warning", `${name} is kept by ${name === "installed_by_rpm" ? "template packaging" : "backups"}, not by a stack`, s.span, help);
    }
    if (s.plain && s.value === "default") {
      if (cannotReset(klass, name)) {
        if (name === "default_kernel")
          this.errorHelp(node, "cannot-reset", "default_kernel cannot be reset: qubesd has no default for it, and fails saving qubes.xml once it is reset (property 'default_kernel' have no default)", "name an installed kernel (`qkit system snapshot` lists them under kernels)");
        else this.errorHelp(node, "cannot-reset", `${name} cannot be reset to a default`, name === "template" ? "name the template (qubesd: cannot unset template, set it to the current default)" : "name a label");
        return undefined;
      }
      return DEFAULT;
    }
    // `none` (or YAML null) is None where the property has one; for VM properties it is always the keyword.
    if (s.value === null || (s.plain && s.value === "none" && (spec.type === "vm" || spec.allowNone))) {
      if (spec.allowNone) return null;
      this.errorHelp(node, "invalid-property-value", `${name} cannot be none`, `write ${typeWord(spec)}, or \`default\` to reset it`);
      return undefined;
    }
    let value: string | number | boolean;
    switch (spec.type) {
      case "int": {
        let n = s.value;
        if (typeof n === "string" && (name === "memory" || name === "maxmem" || name === "stubdom_mem")) {
          const bytes = parseSize(n);
          if (bytes !== undefined && bytes % 2 ** 20 === 0) n = bytes / 2 ** 20;
        }
        if (typeof n !== "number" || !Number.isInteger(n)) {
          this.errorHelp(node, "wrong-type", `${name} must be an integer${unitOf(name)}, not ${describe(s)}`, `write a number${unitOf(name)}`);
          return undefined;
        }
        if (floatLiteral(s)) {
          this.notIntegerLiteral(s, name);
          return undefined;
        }
        if (s.unsafeInteger !== undefined || !Number.isSafeInteger(n)) {
          this.unsafeInteger(s, name);
          return undefined;
        }
        value = n;
        break;
      }
      case "bool":
        if (typeof s.value !== "boolean") {
          if (s.plain && typeof s.value === "string" && YAML11_BOOLEANS.test(s.value))
            this.errorHelp(node, "yaml-boolean", `${s.value} is not a boolean in YAML 1.2: ${name} must be true or false`, `write ${/^(y|yes|on)$/i.test(s.value) ? "true" : "false"}`);
          else this.errorHelp(node, "wrong-type", `${name} must be true or false, not ${describe(s)}`, "write true or false");
          return undefined;
        }
        value = s.value;
        break;
      case "vm": {
        if (typeof s.value !== "string") {
          this.errorHelp(node, "wrong-type", `${name} must be a qube name, not ${describe(s)}`, "write the qube's name, none, or default");
          return undefined;
        }
        const err = qubeNameError(s.value);
        if (err && s.value !== "dom0") {
          this.report("invalid-qube-name", "error", `invalid qube name: ${s.value}: ${err}`, s.span, qubeNameHelp(s.value));
          return undefined;
        }
        this.acc.refs.push({ name: s.value, via: name, from: owner, file: this.doc.path, span: s.span, ...(this.related() ? { related: this.related()! } : {}) });
        value = s.value;
        break;
      }
      case "label": {
        const v = typeof s.value === "string" ? s.value : s.source;
        if (!LABEL_NAME_PATTERN.test(v)) {
          this.report("invalid-label-name", "error", `invalid label name: ${v}`, s.span);
          return undefined;
        }
        this.acc.labelRefs.push({ name: v, file: this.doc.path, span: s.span, ...(this.related() ? { related: this.related()! } : {}) });
        value = v;
        break;
      }
      default: {
        if (Array.isArray(s.value)) {
          this.error(node, "wrong-type", `${name} must be a string`);
          return undefined;
        }
        value = typeof s.value === "string" ? s.value : s.source;
      }
    }
    if (spec.check) {
      const r = spec.check(value);
      if (!r.ok) {
        this.report("invalid-property-value", "error", `${r.message} (${r.error})`, s.span, `qubesd refuses this value for ${name}`);
        return undefined;
      }
      value = r.value as string | number | boolean;
    }
    if (name === "kernel" && typeof value === "string" && value !== "") this.acc.kernelRefs.push({ name: value, file: this.doc.path, span: s.span, ...(this.related() ? { related: this.related()! } : {}) });
    if (name === "default_kernel" && typeof value === "string" && value !== "") this.acc.kernelRefs.push({ name: value, file: this.doc.path, span: s.span });
    if (klass === "@global" && name.startsWith("default_pool") && typeof value === "string") this.acc.poolRefs.push({ name: value, file: this.doc.path, span: s.span });
    if (name === "kernelopts" && typeof value === "string" && value.length > 512) {
      this.report("invalid-property-value", "error", "kernelopts must be at most 512 characters", s.span);
      return undefined;
    }
    return value;
  }

  private readStructural(entry: QubeEntry, key: string, p: Pair, klass: DeclarableClass | undefined): void {
    const d = entry.decl;
    const node = p.value as Node;
    switch (key) {
      case "source": {
        const m = this.expectMap(node, "source");
        if (!m) return;
        const keys = this.known(m, SOURCE_KEYS, "source");
        if (keys.size !== 1) {
          this.errorHelp(m, "invalid-source", "source takes exactly one of clone, install, empty", "e.g. `source: { clone: debian-13 }`");
          return;
        }
        const [kind, pair] = [...keys][0]!;
        if (kind === "empty") {
          if (this.bool(pair.value, "empty") === true) d.source = { empty: true };
          return;
        }
        const s = this.str(pair.value, kind);
        if (!s) return;
        const v = String(s.value);
        if (kind === "clone") {
          if (!s.symbolic) {
            const err = qubeNameError(v);
            if (err) return this.report("invalid-qube-name", "error", `invalid qube name: ${v}: ${err}`, s.span, qubeNameHelp(v));
            this.acc.refs.push({ name: v, via: "source", from: d.name, file: this.doc.path, span: s.span, ...(this.related() ? { related: this.related()! } : {}) });
          }
          d.source = { clone: v };
        } else {
          if (!/^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(v)) return this.report("invalid-source", "error", `invalid template package name: ${v}`, s.span);
          d.source = { install: v };
        }
        return;
      }
      case "moved_from": {
        const s = this.str(node, key);
        if (!s) return;
        const v = String(s.value);
        if (!s.symbolic) {
          const err = qubeNameError(v);
          if (err) return this.report("invalid-qube-name", "error", `invalid qube name: ${v}: ${err}`, s.span, qubeNameHelp(v));
          if (v === d.name) return this.report("invalid-move", "error", `qube ${d.name} cannot move from itself`, s.span, "write the qube's former name, or remove moved_from");
        }
        d.moved_from = v;
        return;
      }
      case "features":
      case "services": {
        const m = this.expectMap(node, key);
        if (!m) return;
        for (const fp of m.items) {
          const k = this.key(fp);
          if (!k) continue;
          const fname = key === "services" ? `service.${String(k.value)}` : String(k.value);
          if (!k.symbolic) {
            if (key === "services") {
              const err = serviceNameError(String(k.value));
              if (err) {
                this.report("invalid-service-name", "error", `${err}: ${String(k.value)}`, k.span);
                continue;
              }
            }
            if (!FEATURE_PATTERN.test(fname)) {
              this.report("invalid-feature-name", "error", `invalid feature name: ${fname}`, k.span, "feature names use letters, digits, _ . -");
              continue;
            }
            if (fname.startsWith("service.") && key === "features") {
              const err = serviceNameError(fname.slice(8));
              if (err) {
                this.report("invalid-service-name", "error", `${err}: ${fname.slice(8)}`, k.span);
                continue;
              }
            }
            if (PROTECTED_FEATURES.has(fname)) {
              this.report("protected-feature", "error", `feature ${fname} is protected: qubesd refuses to change it (PermissionDenied)`, k.span, "remove it: qubesd manages this feature itself");
              continue;
            }
            if (fname === OWNER_FEATURE || fname === KEYS_FEATURE || fname.startsWith(GLOBALS_FEATURE_PREFIX)) {
              this.report("reserved-feature", "error", `feature ${fname} is written by qkit itself`, k.span, "remove it: qkit records ownership in it");
              continue;
            }
          }
          if (fname in d.features) {
            this.report("duplicate-feature", "error", `feature ${fname} is set twice (features and services)`, k.span, "keep one of the two");
            continue;
          }
          const v = this.featureValue(fp.value as Node, key === "services", fname);
          if (v === undefined) continue;
          if (fname === "service.meminfo-writer" && !k.symbolic && v !== null) {
            // An error, as in plan (`rewritten-feature`): a stack that sets it can never converge (design §8.5, apply then plan is empty).
            this.report("meminfo-writer", "error", "qubesd turns service.meminfo-writer into the maxmem property and deletes the feature, so it can never match", k.span, "set `maxmem` instead (0 disables memory balancing, `default` enables it), or null to remove the feature");
            continue;
          }
          d.features[fname] = v;
          d.keyProvenance![`features.${fname}`] = this.prov(fp.key as Node);
        }
        return;
      }
      case "tags": {
        const items = this.listItems(node, "tags");
        d.tags = [];
        if (!items) return;
        const set = new Set<string>();
        for (const it of items) {
          const s = this.scalar(it);
          if (s && Array.isArray(s.value)) {
            for (const t of s.value) this.addTag(set, t, s);
            continue;
          }
          const st = this.str(it, "a tag");
          if (!st) continue;
          this.addTag(set, String(st.value), st);
        }
        d.tags = [...set].sort();
        return;
      }
      case "firewall": {
        const seq = this.expectSeq(node, "firewall");
        d.firewall = [];
        if (!seq) return;
        for (const it of seq.items) {
          const s = this.str(it, "a firewall rule");
          if (!s) continue;
          if (s.symbolic) {
            d.firewall.push(String(s.value));
            continue;
          }
          const text = String(s.value);
          const r = normalizeFirewallRule(text);
          // A part of the rule in the file: exact for a scalar written as is, else the whole scalar.
          const exactMap = isScalar(it) && (it.type === "PLAIN" || it.type === "QUOTE_SINGLE" || it.type === "QUOTE_DOUBLE") && !String(it.source ?? "").includes("${") && !this.bundleSubstituted(it);
          const off = s.span.start + (isScalar(it) && it.type !== "PLAIN" ? 1 : 0);
          const partSpan = (start: number, end: number): Span => (exactMap ? { start: off + start, end: off + end } : s.span);
          if (!r.ok) {
            this.report("invalid-firewall-rule", "error", r.message, partSpan(r.start, r.end), r.help);
            continue;
          }
          // qubesd keeps an expired rule but never applies it, and leaves it out of firewall.Get (plan then drops it too).
          const expire = / expire=(\d+)/.exec(r.rule);
          if (expire && Number(expire[1]) <= this.acc.now) {
            const at = /(?:^|\s)(expire=\S*)/.exec(text);
            const start = at ? at.index + at[0].length - at[1]!.length : 0;
            this.report("firewall-rule-expired", "warning", `this firewall rule expired on ${utcTime(Number(expire[1]))} (expire=${expire[1]}): qubesd will not apply it`, at ? partSpan(start, start + at[1]!.length) : s.span, "remove the rule, or set expire= to a time in the future (seconds since the epoch)");
          }
          d.firewall.push(r.rule);
        }
        return;
      }
      case "devices":
        return this.readDevices(entry, node, klass);
      case "volumes": {
        const m = this.expectMap(node, "volumes");
        if (!m) return;
        d.volumes = {};
        for (const vp of m.items) {
          const k = this.key(vp);
          if (!k) continue;
          const vname = String(k.value);
          if (!(VOLUME_NAMES as readonly string[]).includes(vname)) {
            const c = closest(vname, VOLUME_NAMES);
            this.report("unknown-volume", "error", `unknown volume: ${vname}`, k.span, c.length ? `did you mean \`${c[0]}\`?` : "root, private, volatile or kernel");
            continue;
          }
          const vm = this.expectMap(vp.value, `volume ${vname}`);
          if (!vm) continue;
          const keys = this.known(vm, VOLUME_KEYS, `volume ${vname}`);
          const vol: VolumeDecl = {};
          // Where the plan's findings about this volume point: the volume, and each of its settings.
          d.keyProvenance![`volumes.${vname}`] = this.prov(vp.value as Node);
          for (const [vk, pair] of keys) d.keyProvenance![`volumes.${vname}.${vk}`] = this.prov(pair.value as Node);
          const size = keys.get("size");
          if (size) {
            const s = this.scalar(size.value);
            const bytes = s ? (typeof s.value === "number" ? s.value : typeof s.value === "string" ? parseSize(s.value) : undefined) : undefined;
            if (s?.symbolic) {
              /* unchecked */
            } else if (bytes === undefined || !Number.isInteger(bytes) || bytes <= 0) {
              this.errorHelp(size.value as Node, "invalid-size", `invalid size: ${s?.source ?? "?"}`, "a number of bytes, or a size such as 4GiB, 512MiB, 20GB");
            } else if (vname === "root" && (klass === "AppVM" || klass === "DispVM")) {
              this.errorHelp(size.value as Node, "volume-not-resizable", `the root volume of ${withArticle(klass)} is its template's and cannot be resized here`, "resize the template's root volume");
            } else vol.size = bytes;
          }
          if (keys.has("revisions_to_keep")) {
            const n = this.int(keys.get("revisions_to_keep")!.value, "revisions_to_keep", 0);
            if (n !== undefined) vol.revisions_to_keep = n;
          }
          if (keys.has("ephemeral")) {
            const b = this.bool(keys.get("ephemeral")!.value, "ephemeral");
            if (b !== undefined) vol.ephemeral = b;
          }
          if (keys.has("rw")) {
            const b = this.bool(keys.get("rw")!.value, "rw");
            if (b !== undefined) vol.rw = b;
          }
          d.volumes[vname] = vol;
        }
        return;
      }
      case "pools": {
        const m = this.expectMap(node, "pools");
        if (!m) return;
        d.pools = {};
        for (const pp of m.items) {
          const k = this.key(pp);
          if (!k) continue;
          const vname = String(k.value);
          if (!(VOLUME_NAMES as readonly string[]).includes(vname)) {
            this.report("unknown-volume", "error", `unknown volume: ${vname}`, k.span, "root, private, volatile or kernel");
            continue;
          }
          const s = this.str(pp.value, `pool of ${vname}`);
          if (!s) continue;
          d.pools[vname] = String(s.value);
          this.acc.poolRefs.push({ name: String(s.value), file: this.doc.path, span: s.span, ...(this.related() ? { related: this.related()! } : {}) });
        }
        return;
      }
      case "notes": {
        const s = this.str(node, "notes");
        if (!s) return;
        const notes = String(s.value);
        if (!s.symbolic) {
          const err = notesError(notes);
          if (err) {
            this.report("invalid-notes", "error", err, s.span, "notes are printable text with tabs and line breaks; remove the character, or every plan shows a change");
            return;
          }
        }
        d.notes = notes;
        return;
      }
      case "state": {
        const s = this.str(node, "state");
        if (!s) return;
        if (!(POWER_STATES as readonly string[]).includes(String(s.value))) {
          const c = closest(String(s.value), POWER_STATES);
          this.report("invalid-value", "error", `invalid state: ${String(s.value)}`, s.span, c.length ? `did you mean \`${c[0]}\`?` : "running, halted or any");
          return;
        }
        d.state = s.value as QubeDecl["state"];
        return;
      }
      case "absent":
      case "protect": {
        const b = this.bool(node, key);
        if (b !== undefined) d[key] = b;
        return;
      }
      case "ignore_changes": {
        const seq = this.expectSeq(node, "ignore_changes");
        if (!seq) return;
        for (const it of seq.items) {
          const s = this.str(it, "an ignore_changes entry");
          if (!s) continue;
          const v = String(s.value);
          const base = v.split(".")[0]!;
          const ok = (QUBE_STRUCTURAL_KEYS as readonly string[]).includes(base) || (klass !== undefined && propertySpec(klass, v)?.access === "rw");
          if (!ok || base === "class" || base === "ignore_changes" || ((base === "features" || base === "services") && v === base + ".")) {
            const c = closest(v, ALL_QUBE_KEYS);
            this.report("unknown-key", "error", `ignore_changes names no key of this qube: ${v}`, s.span, c.length ? `did you mean \`${c[0]}\`?` : "a property, features.NAME, tags, firewall, devices.CLASS or volumes.NAME");
            continue;
          }
          d.ignore_changes.push(v);
        }
        return;
      }
    }
  }

  private bundleSubstituted(node: Scalar): boolean {
    return typeof node.value === "string" && node.value.includes("${");
  }

  private addTag(set: Set<string>, tag: string, s: ScalarRead): void {
    if (s.symbolic) {
      set.add(tag);
      return;
    }
    if (!TAG_PATTERN.test(tag)) return this.report("invalid-tag", "error", `invalid tag name: ${tag}`, s.span, "tags use letters, digits, - and _");
    if (isAutomaticTag(tag)) return this.report("automatic-tag", "error", `tag ${tag} is added by qubesd itself and cannot be managed`, s.span, "remove it: created-by-*, guivm-* and audiovm-* tags follow the qube's properties");
    if (set.has(tag)) return this.report("duplicate-tag", "warning", `tag ${tag} is listed twice`, s.span, "remove the repetition");
    set.add(tag);
  }

  private featureValue(node: Node, service: boolean, fname: string): string | null | undefined {
    const s = this.scalar(node);
    if (!s || Array.isArray(s.value)) {
      this.errorHelp(node, "wrong-type", service ? "a service is true or false" : "a feature value must be a string, a number, true, false or null", "write a scalar value");
      return undefined;
    }
    if (s.value === null) return null;
    if (service) {
      if (typeof s.value !== "boolean") {
        if (s.symbolic) return String(s.value);
        if (s.plain && typeof s.value === "string" && YAML11_BOOLEANS.test(s.value))
          this.errorHelp(node, "yaml-boolean", `${s.value} is not a boolean in YAML 1.2: a service is true or false`, `write ${/^(y|yes|on)$/i.test(s.value) ? "true" : "false"}`);
        else this.errorHelp(node, "wrong-type", `a service is true or false, not ${describe(s)}`, "true enables the service, false disables it, null removes the setting");
        return undefined;
      }
      return s.value ? "1" : "";
    }
    let v: string;
    if (typeof s.value === "boolean") v = s.value ? "1" : "";
    else if (typeof s.value === "number") {
      v = s.unsafeInteger ?? (Number.isInteger(s.value) ? String(s.value) : s.source);
      // `0755`, `0o17`, `0x1F`, `1.0`, `1e3`, `+1`: a YAML number whose decimal digits are not the text.
      const written = s.source.trim();
      if (s.plain && !s.symbolic && v !== written)
        this.report("yaml-number-converted", "warning", `feature ${fname}: ${written} is a YAML number, stored as "${v}"`, s.span, `quote it ('${written}') to keep the text as written`);
    } else v = s.value;
    if (!s.symbolic) {
      const err = featureValueError(v);
      if (err) {
        this.errorHelp(node, "invalid-feature-value", err, "feature values are printable ASCII on one line");
        return undefined;
      }
      if (s.plain && typeof s.value === "string" && YAML11_BOOLEANS.test(s.value) && /^(yes|no|on|off)$/i.test(s.value))
        this.report("yaml-boolean", "warning", `${s.value} is the string "${s.value}" in YAML 1.2, stored as is`, s.span, `write true ("1") or false ("") for a flag, or quote "${s.value}" if the text is meant`);
    }
    return v;
  }

  private readDevices(entry: QubeEntry, node: Node, klass: DeclarableClass | undefined): void {
    const m = this.expectMap(node, "devices");
    if (!m) return;
    const d = entry.decl;
    d.devices = {};
    for (const cp of m.items) {
      const k = this.key(cp);
      if (!k) continue;
      const devclass = String(k.value);
      if (!k.symbolic && !(DEVICE_CLASS_NAMES as readonly string[]).includes(devclass)) {
        const c = closest(devclass, DEVICE_CLASS_NAMES);
        this.report("unknown-device-class", "error", `unknown device class: ${devclass}`, k.span, `${c.length ? `did you mean \`${c[0]}\`? ` : ""}the device classes are ${DEVICE_CLASS_NAMES.join(", ")}`);
        continue;
      }
      const list: DeviceDecl[] = [];
      d.devices[devclass] = list;
      const seq = this.expectSeq(cp.value, `devices.${devclass}`);
      if (!seq) continue;
      for (const it of seq.items) {
        const dm = this.expectMap(it, "a device assignment");
        if (!dm) continue;
        const keys = this.known(dm, DEVICE_KEYS, "a device assignment");
        const dev: DeviceDecl = { devclass, backend: "dom0", mode: devclass === "pci" ? "required" : "auto-attach", options: {}, provenance: this.prov(dm) };
        const backend = keys.get("backend");
        if (backend) {
          const s = this.str(backend.value, "backend");
          if (!s) continue;
          dev.backend = String(s.value);
          if (!s.symbolic) {
            const err = dev.backend === "dom0" ? undefined : qubeNameError(dev.backend);
            if (err) {
              this.report("invalid-qube-name", "error", `invalid qube name: ${dev.backend}: ${err}`, s.span, qubeNameHelp(dev.backend));
              continue;
            }
            if (dev.backend !== "dom0") this.acc.refs.push({ name: dev.backend, via: "device backend", from: d.name, file: this.doc.path, span: s.span, ...(this.related() ? { related: this.related()! } : {}) });
          }
        } else if (devclass !== "pci") {
          this.errorHelp(dm, "device-backend-required", `a ${devclass} assignment needs backend: (the qube that has the device)`, devclass === "usb" ? "e.g. `backend: sys-usb`" : "add `backend: QUBE`");
          continue;
        }
        const port = keys.get("port");
        const device = keys.get("device");
        const match = keys.get("match");
        if (port && match) {
          this.errorHelp(match.key as Node, "device-port-and-match", "a device assignment takes a port or a match selector, not both", "keep `port:` for one exact device, `match:` to select by class/vendor/product");
          continue;
        }
        if (!port && !match && !device) {
          this.errorHelp(dm, "device-selector-required", "a device assignment needs port:, device: or match:", "e.g. `port: 00_14.0` or `match: { class: network }`");
          continue;
        }
        if (port) {
          const s = this.scalar(port.value);
          const v = s ? (typeof s.value === "string" ? s.value : s.source) : "";
          if (!s || (!s.symbolic && !/^[A-Za-z0-9_.:-]+$/.test(v) && v !== "*")) {
            this.errorHelp(port.value as Node, "invalid-device", `invalid port: ${v || "?"}`, devclass === "pci" ? "a PCI port such as 00_14.0" : "a port such as 2-1");
            continue;
          }
          dev.port = v;
        }
        if (device) {
          const s = this.str(device.value, "device");
          if (!s) continue;
          const v = String(s.value);
          if (!s.symbolic && !/^[\x21-\x7e]+$/.test(v)) {
            this.report("invalid-device", "error", `invalid device id: ${v}`, s.span, "a device id such as 0x1050:0x0407::u030000, or *");
            continue;
          }
          dev.deviceId = v;
          // A device named without a port is assigned by its identity, on whatever port it is plugged in.
          if (!port && !match) {
            if (v === "*") {
              // qubesd: "Cannot set port to '*' if device_id is '*'" (that would be every device).
              this.report("device-selector-required", "error", "a device assignment needs a port or a device id: `device: \"*\"` alone would be every device", s.span, "add `port:` for one port, or give the device id (`0x1050:0x0407::u030000`)");
              continue;
            }
            dev.port = "*";
          }
        }
        if (match) {
          const mm = this.expectMap(match.value, "match");
          if (!mm) continue;
          const mk = this.known(mm, MATCH_KEYS, "match");
          const sel: NonNullable<DeviceDecl["match"]> = {};
          let bad = false;
          for (const [mkey, mp] of mk) {
            const s = this.str(mp.value, mkey);
            if (!s) {
              bad = true;
              continue;
            }
            const v = String(s.value);
            if (mkey === "class" && !s.symbolic && !(v in DEVICE_MATCH_CLASSES) && !/^[bump*][0-9a-f*]{6}$/.test(v)) {
              const c = closest(v, Object.keys(DEVICE_MATCH_CLASSES));
              this.report("invalid-device", "error", `unknown device class selector: ${v}`, s.span, c.length ? `did you mean \`${c[0]}\`?` : `one of ${Object.keys(DEVICE_MATCH_CLASSES).join(", ")}, or an interface code such as p0c03**`);
              bad = true;
              continue;
            }
            sel[mkey as keyof typeof sel] = v;
          }
          if (bad) continue;
          if (Object.keys(sel).length === 0) {
            this.errorHelp(mm, "device-selector-required", "match: needs class, vendor or product", "e.g. `match: { class: network }`");
            continue;
          }
          dev.match = sel;
        }
        const mode = keys.get("mode");
        if (mode) {
          const s = this.str(mode.value, "mode");
          if (!s) continue;
          const v = String(s.value);
          if (v === "manual") {
            this.report("invalid-device", "error", "mode manual is not an assignment: qubesd refuses to assign it", s.span, "required, auto-attach or ask-to-attach");
            continue;
          }
          if (!(DEVICE_MODES as readonly string[]).includes(v)) {
            const c = closest(v, DEVICE_MODES);
            this.report("invalid-device", "error", `invalid mode: ${v}`, s.span, c.length ? `did you mean \`${c[0]}\`?` : "required, auto-attach or ask-to-attach");
            continue;
          }
          dev.mode = v as DeviceDecl["mode"];
        }
        const opts = keys.get("options");
        if (opts) {
          const om = this.expectMap(opts.value, "options");
          if (om)
            for (const op of om.items) {
              const ok = this.key(op);
              if (!ok) continue;
              const s = this.scalar(op.value);
              if (!s || s.value === null || Array.isArray(s.value)) {
                this.error(op.value as Node, "wrong-type", `device option ${String(ok.value)} must be a scalar`);
                continue;
              }
              dev.options[String(ok.value)] = typeof s.value === "boolean" ? (s.value ? "True" : "False") : typeof s.value === "string" ? s.value : s.source;
            }
        }
        if (devclass === "pci" && dev.backend !== "dom0") this.report("invalid-device", "error", "PCI devices belong to dom0", nodeSpan(backend?.value as Node), "remove backend:");
        list.push(dev);
      }
    }
    if (klass && d.devices.pci?.length && d.properties.virt_mode === "pvh") {
      this.report("pvh-with-pci", "error", "a qube with PCI devices cannot use virt_mode pvh (qubesd refuses to start it)", entry.valueSpans.get("virt_mode") ?? entry.keySpan, "use virt_mode: hvm");
    }
  }

  // ───────────────────────────── policy and expect ─────────────────────────────

  private readPolicyEntry(item: unknown): void {
    const m = this.expectMap(item, "a policy entry");
    if (!m) return;
    const keys = this.known(m, POLICY_ENTRY_KEYS, "a policy entry");
    const f = keys.get("file");
    const r = keys.get("rules");
    if (!f) return this.errorHelp(m, "missing-key", "missing key in a policy entry: file", "add `file: NAME` (it names the generated policy file)");
    if (!r) return this.errorHelp(m, "missing-key", "missing key in a policy entry: rules", "add `rules: |` followed by the policy lines");
    const fs = this.str(f.value, "file");
    if (!fs) return;
    let name = String(fs.value);
    if (!fs.symbolic && !ID_PATTERN.test(name)) return this.report("invalid-policy-file-name", "error", `invalid policy file name: ${name}`, fs.span, "use lowercase letters, digits, - and _ (the policy daemon ignores other file names)");
    if (this.bundle) name = `${this.bundle.as}-${name}`;
    let priority: number | undefined;
    if (keys.has("priority")) priority = this.int(keys.get("priority")!.value, "priority", 0, 99);
    let include = false;
    if (keys.has("include")) include = this.bool(keys.get("include")!.value, "include") ?? false;
    if (include && keys.has("priority")) this.errorHelp(keys.get("priority")!.key as Node, "priority-of-include", "an include file has no priority", "remove priority: (include files are read where a policy file includes them)");
    const rn = r.value as Node;
    if (!isScalar(rn) || (rn.value !== null && typeof rn.value !== "string")) return this.errorHelp(rn, "wrong-type", "rules must be a block of policy text", "write `rules: |` and the policy lines below it, indented");
    const raw = rn.value === null ? "" : (rn.value as string);
    if (rn.type === "BLOCK_FOLDED") this.report("rules-not-literal", "warning", "rules in a folded block (>) lose their line breaks", nodeSpan(rn), "use a literal block: `rules: |`");
    let segments = raw === "" ? [] : scalarSegments(this.doc.text, this.doc.lineStarts, rn);
    const exact = segments !== undefined;
    if (!segments) segments = coarseSegments(raw.length, nodeSpan(rn));
    let text = raw;
    let symbolic = false;
    if (raw.includes("${")) {
      if (!this.bundle) {
        const res = substitute(raw, segments, (p) => ({ error: `parameters are only substituted in bundles: \${${p}}` }), (span, message) =>
          this.report("param-outside-bundle", "error", message, span, "write the value, or move this policy into a bundle file"),
        );
        text = res.text;
        segments = res.segments;
      } else {
        const b = this.bundle;
        symbolic = false;
        const res = substitute(
          raw,
          segments,
          (p) => {
            const v = b.params.get(p);
            if (v === undefined) return { error: `unknown parameter: ${p}`, help: this.paramHelp(p) };
            if (v === "symbolic") {
              symbolic = true;
              return { text: `\${${p}}` };
            }
            if (Array.isArray(v.value)) return { error: `a list parameter cannot be used in policy text: ${p}` };
            return { text: String(v.value) };
          },
          (span, message, help) => this.report(message.startsWith("unknown") ? "unknown-param" : "invalid-param-use", "error", message, span, help),
        );
        text = res.text;
        segments = res.segments;
      }
    }
    const entry: PolicyEntry = { file: this.doc.path, name, priority, include, text, segments, exact, span: nodeSpan(rn), entrySpan: nodeSpan(m), nameSpan: fs.span, symbolic };
    if (this.bundle) entry.bundle = this.bundle;
    this.acc.policy.push(entry);
  }

  private readExpect(item: unknown): void {
    const span = nodeSpan(item as Node);
    const related = this.related();
    if (isScalar(item)) {
      const s = this.str(item, "an expectation");
      if (!s) return;
      const text = String(s.value);
      if (s.symbolic) return; // uses a parameter without a value: checked where the bundle is used
      const r = parseExpectation(text);
      if (!r.ok) {
        const off = s.span.start + (item.type === "PLAIN" ? 0 : 1);
        const exact = text === item.value;
        this.report("invalid-expectation", "error", r.message, exact && r.span.end > r.span.start ? { start: off + r.span.start, end: off + r.span.end } : s.span, r.help ?? "write `SERVICE SOURCE TARGET => allow|ask|deny [TARGET]`");
        return;
      }
      r.expectation.provenance = this.prov(item);
      this.acc.expect.push({ expectation: r.expectation, file: this.doc.path, span, symbolic: s.symbolic, ...(related ? { related } : {}) });
      return;
    }
    const m = this.expectMap(item, "an expectation");
    if (!m) return;
    const keys = this.known(m, EXPECT_KEYS, "an expectation");
    const obj: Record<string, unknown> = {};
    let symbolic = false;
    for (const [k, pair] of keys) {
      // A label for people (as in a policy test file): not part of the call or the decision.
      if (k === "name") {
        this.str(pair.value, k);
        continue;
      }
      if (k === "targets_include" || k === "targets_exact") {
        const items = this.listItems(pair.value, k);
        if (!items) continue;
        const list: string[] = [];
        for (const it of items) {
          const s = this.scalar(it);
          if (s && Array.isArray(s.value)) list.push(...s.value);
          else if (s && typeof s.value === "string") {
            list.push(s.value);
            symbolic ||= s.symbolic;
          } else this.error(it as Node, "wrong-type", `${k} must list qube names`);
        }
        obj[k] = list;
      } else {
        const s = this.str(pair.value, k);
        if (!s) continue;
        obj[k] = String(s.value);
        symbolic ||= s.symbolic;
      }
    }
    if (symbolic) return;
    if (!keys.has("call") || !keys.has("decision")) {
      this.errorHelp(m, "invalid-expectation", `an expectation needs call: and decision:`, "e.g. `{ call: \"qubes.Filecopy work -> vault\", decision: deny }`");
      return;
    }
    const r = parseExpectation(obj as never);
    if (!r.ok) {
      const pair = r.key ? keys.get(r.key) : undefined;
      const valueSpan = nodeSpan(pair?.value as Node, span);
      const callNode = pair?.value;
      const exact = r.key === "call" && isScalar(callNode) && r.span.end > r.span.start && !String(callNode.value).includes("${");
      const off = valueSpan.start + (isScalar(callNode) && callNode.type !== "PLAIN" ? 1 : 0);
      this.report("invalid-expectation", "error", r.message, exact ? { start: off + r.span.start, end: off + r.span.end } : valueSpan, r.help);
      return;
    }
    r.expectation.provenance = this.prov(m);
    this.acc.expect.push({ expectation: r.expectation, file: this.doc.path, span: nodeSpan(keys.get("call")!.value as Node, span), symbolic, ...(related ? { related } : {}) });
  }

  // ───────────────────────────── bundle parameters ─────────────────────────────

  /**
   * Reads a bundle's `params:` and an instance's `with:` values: every
   * parameter gets a typed value (or `symbolic` when `withMap` is `null`, i.e.
   * checking the bundle alone and the parameter has no default).
   */
  static readParams(
    bundleDoc: StackDocument,
    acc: Accumulator,
    use: UseEntry | undefined,
    useDoc: StackDocument | undefined,
  ): Map<string, ParamValue | "symbolic"> {
    const out = new Map<string, ParamValue | "symbolic">();
    const root = bundleDoc.yaml.contents;
    if (!isMap(root)) return out;
    const bundleReader = new DocumentReader(bundleDoc, acc, "bundle");
    const useReader = useDoc ? new DocumentReader(useDoc, acc, "stack") : undefined;
    const paramsPair = root.items.find((p) => isScalar(p.key) && p.key.value === "params");
    const declared = new Map<string, { type: ParamType; default?: Node; keyNode: Node }>();
    if (paramsPair) {
      // Reported for every use; identical diagnostics are merged by the checker.
      const quiet = bundleReader;
      const pm = quiet.expectMap(paramsPair.value, "params");
      if (pm)
        for (const p of pm.items) {
          if (!isScalar(p.key)) continue;
          const name = String(p.key.value);
          if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) {
            quiet.errorSpan(nodeSpan(p.key as Node), "invalid-param-name", `invalid parameter name: ${name}`, "letters, digits, _ and -, starting with a letter");
            continue;
          }
          let type: ParamType | undefined;
          let def: Node | undefined;
          if (isScalar(p.value)) {
            const t = String(p.value.value);
            if ((PARAM_TYPES as readonly string[]).includes(t)) type = t as ParamType;
            else quiet.errorSpan(nodeSpan(p.value), "invalid-param-type", `unknown parameter type: ${t}`, `one of ${PARAM_TYPES.join(", ")}`);
          } else {
            const dm = quiet.expectMap(p.value, `parameter ${name}`);
            if (!dm) continue;
            const keys = quiet.known(dm, PARAM_KEYS, `parameter ${name}`);
            const t = keys.get("type");
            if (!t) quiet.errorSpan(nodeSpan(dm), "missing-key", `parameter ${name} needs a type`, `type: one of ${PARAM_TYPES.join(", ")}`);
            else {
              const ts = isScalar(t.value) ? String(t.value.value) : "";
              if ((PARAM_TYPES as readonly string[]).includes(ts)) type = ts as ParamType;
              else {
                const c = closest(ts, PARAM_TYPES);
                quiet.errorSpan(nodeSpan(t.value as Node), "invalid-param-type", `unknown parameter type: ${ts}`, c.length ? `did you mean \`${c[0]}\`?` : `one of ${PARAM_TYPES.join(", ")}`);
              }
            }
            def = keys.get("default")?.value as Node | undefined;
            if (keys.has("description")) quiet.str(keys.get("description")!.value, "description");
          }
          if (type) declared.set(name, { type, ...(def ? { default: def } : {}), keyNode: p.key as Node });
        }
    }
    const given = new Map<string, Pair>();
    if (use?.with && useReader) {
      for (const p of use.with.items) {
        if (!isScalar(p.key)) continue;
        const name = String(p.key.value);
        if (!declared.has(name)) {
          const c = closest(name, [...declared.keys()]);
          useReader.errorSpan(nodeSpan(p.key as Node), "unknown-param", `bundle ${use.bundlePath} has no parameter ${name}`, c.length ? `did you mean \`${c[0]}\`?` : declared.size ? `parameters: ${[...declared.keys()].join(", ")}` : "this bundle takes no parameters");
          continue;
        }
        given.set(name, p);
      }
    }
    for (const [name, decl] of declared) {
      const g = given.get(name);
      if (g && useReader && useDoc) {
        const v = useReader.paramValue(decl.type, g.value as Node, name);
        if (v !== undefined) out.set(name, { type: decl.type, value: v, file: useDoc.path, span: nodeSpan(g.value as Node) });
        else out.set(name, "symbolic");
      } else if (decl.default) {
        const v = bundleReader.paramValue(decl.type, decl.default, name);
        if (v !== undefined) out.set(name, { type: decl.type, value: v, file: bundleDoc.path, span: nodeSpan(decl.default) });
        else out.set(name, "symbolic");
      } else if (use && useReader) {
        useReader.errorSpan(use.asSpan.start === use.bundleSpan.start ? use.bundleSpan : use.asSpan, "missing-param", `missing parameter ${name} (${decl.type}) for bundle ${use.bundlePath}`, `add \`${name}:\` under \`with:\``);
        out.set(name, "symbolic");
      } else out.set(name, "symbolic");
    }
    return out;
  }

  /** A parameter value of a type, read from `with:` or a default. */
  private paramValue(type: ParamType, node: Node, name: string): ParamValue["value"] | undefined {
    const fail = (message: string, help?: string) => {
      this.report("invalid-param-value", "error", message, nodeSpan(node), help);
      return undefined;
    };
    if (type === "list<qube>") {
      if (!isSeq(node)) return fail(`parameter ${name} is a list of qube names`, "write a list: [a, b]");
      const list: string[] = [];
      for (const it of node.items) {
        const s = isScalar(it) && typeof it.value === "string" ? it.value : undefined;
        if (s === undefined || (qubeNameError(s) && s !== "dom0")) return fail(`parameter ${name}: invalid qube name in the list: ${isScalar(it) ? String(it.value) : "?"}`, s === undefined ? "write qube names" : qubeNameHelp(s));
        list.push(s);
        this.acc.refs.push({ name: s, via: `parameter ${name}`, from: "@param", file: this.doc.path, span: nodeSpan(it as Node) });
      }
      return list;
    }
    if (!isScalar(node)) return fail(`parameter ${name} must be a single value (${type})`);
    if (typeof node.value === "string" && node.value.includes("${")) return fail(`parameter values cannot use parameters: ${node.value}`);
    const v = node.value;
    switch (type) {
      case "int":
        if (typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v)) return fail(`parameter ${name} is too large to keep exactly: ${exactInteger(this.doc.text.slice(node.range![0], node.range![1]), v)} (the limit is ±${Number.MAX_SAFE_INTEGER})`);
        if (typeof v === "number" && Number.isInteger(v) && !INTEGER_LITERAL.test(this.doc.text.slice(node.range![0], node.range![1]).trim()))
          return fail(`parameter ${name} must be an integer: ${this.doc.text.slice(node.range![0], node.range![1]).trim()} is a float in YAML`, `write ${v} (digits only, no decimal point or exponent)`);
        return typeof v === "number" && Number.isInteger(v) ? v : fail(`parameter ${name} must be an integer`);
      case "bool":
        return typeof v === "boolean" ? v : fail(`parameter ${name} must be true or false`);
      case "string":
        return typeof v === "string" ? v : v === null ? fail(`parameter ${name} must be a string`) : String(this.doc.text.slice(node.range![0], node.range![1]));
      case "name":
      case "qube": {
        if (typeof v !== "string") return fail(`parameter ${name} must be a qube name`);
        const err = type === "qube" && v === "dom0" ? undefined : qubeNameError(v);
        if (err) return fail(`parameter ${name}: invalid qube name: ${v}: ${err}`, qubeNameHelp(v));
        return v;
      }
      case "tag":
        if (typeof v !== "string" || !TAG_PATTERN.test(v)) return fail(`parameter ${name}: invalid tag name: ${String(v)}`, "tags use letters, digits, - and _");
        return v;
      case "label":
        if (typeof v !== "string" || !LABEL_NAME_PATTERN.test(v)) return fail(`parameter ${name}: invalid label name: ${String(v)}`);
        return v;
    }
  }
}

/**
 * Why qubesd would not keep notes as written (`admin.vm.notes.Set`): more than
 * 256000 bytes of UTF-8 (ProtocolError), or a code point that is not safe for
 * display (control, format, private-use, surrogate, unassigned, line and
 * paragraph separators; tab and line feed excepted), which qubesd replaces
 * with `_`, so the declared notes would never match the qube's.
 */
function notesError(notes: string): string | undefined {
  let bytes = 0;
  for (const ch of notes) {
    const c = ch.codePointAt(0)!;
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  if (bytes > 256000) return `Maximum note size is 256000 bytes (${bytes} bytes given) (ProtocolError)`;
  let line = 1;
  for (const ch of notes) {
    if (ch === "\n") line++;
    else if (ch !== "\t" && /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Cn}\p{Zl}\p{Zp}]/u.test(ch))
      return `notes contain U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")} (line ${line} of the notes), which qubesd replaces with _`;
  }
  return undefined;
}

/** The exact decimal digits of an integer scalar from its source text (`0x…`, `0o…` included); the double's digits when the text is not an integer literal. */
function exactInteger(source: string, value: number): string {
  const t = source.trim();
  try {
    if (/^[-+]?[0-9]+$/.test(t)) return BigInt(t.replace(/^\+/, "")).toString();
    if (/^0x[0-9a-fA-F]+$|^0o[0-7]+$/.test(t)) return BigInt(t).toString();
  } catch {
    // fall through: not a literal BigInt reads
  }
  return BigInt(value).toString();
}

/**
 * What to do about a qube name qubesd refuses (`validate_name` in qubes/vm/__init__.py),
 * for the rule it breaks, not the general character rules.
 */
export function qubeNameHelp(name: string): string {
  if (name.length > 31) return `shorten the name to at most 31 characters (it has ${name.length})`;
  if (/^[0-9_.-]/.test(name)) return "start the name with a letter";
  if (!/^[a-zA-Z][a-zA-Z0-9_.-]*$/.test(name)) return "use only letters, digits, _ . and - (no spaces or other characters)";
  if (name === "Domain-0") return "Domain-0 is Xen's own name for dom0: pick another name";
  if (name === "none") return "`none` is reserved: as a property value it means no qube (netvm: none), so no qube can have that name; pick another name";
  if (name === "default") return "`default` is reserved: as a property value it resets the property to its default, so no qube can have that name; pick another name";
  if (name.endsWith("-dm")) return "names ending in -dm are reserved for device-model stubdomains (Xen runs the device model of an HVM qube NAME as NAME-dm): pick another name";
  return "names start with a letter and use letters, digits, _ . -, at most 31 characters";
}

/** The integer literals of the YAML 1.2 core schema (decimal, `0o` octal, `0x` hexadecimal). */
const INTEGER_LITERAL = /^[-+]?(?:[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$/;

/** A plain scalar YAML read as a number from a float literal (`2.0`, `1e3`), whatever its value. */
function floatLiteral(s: ScalarRead): boolean {
  return s.plain && !s.symbolic && typeof s.value === "number" && s.unsafeInteger === undefined && s.source !== String(s.value) && !INTEGER_LITERAL.test(s.source.trim());
}

/** A time in seconds since the epoch as `1970-01-01 00:16:40 UTC`. */
function utcTime(seconds: number): string {
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? `${seconds}` : `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** A class or word with its indefinite article: `an AppVM`, `a TemplateVM`. */
export function withArticle(word: string): string {
  return `${/^[AEIOUaeiou]/.test(word) ? "an" : "a"} ${word}`;
}

function globalNames(): string[] {
  return ["check_updates_vm", "clockvm", "default_audiovm", "default_dispvm", "default_guivm", "default_kernel", "default_netvm", "default_pool", "default_pool_kernel", "default_pool_private", "default_pool_root", "default_pool_volatile", "default_qrexec_timeout", "default_shutdown_timeout", "default_template", "management_dispvm", "stats_interval", "updatevm"];
}

function typeWord(spec: PropertySpec): string {
  switch (spec.type) {
    case "int":
      return `an integer${unitOf(spec.name)}`;
    case "bool":
      return "true or false";
    case "vm":
      return spec.allowNone ? "a qube name or none" : "a qube name";
    case "label":
      return "a label name";
    default:
      return "a string";
  }
}

function unitOf(name: string): string {
  return name === "memory" || name === "maxmem" || name === "stubdom_mem" ? " (MiB)" : name.endsWith("timeout") || name === "stats_interval" ? " (seconds)" : "";
}

function describe(s: ScalarRead): string {
  if (s.value === null) return "null";
  if (Array.isArray(s.value)) return "a list";
  if (typeof s.value === "string") return `the string ${JSON.stringify(s.value)}`;
  return String(s.value);
}

const UNITS: Record<string, number> = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };

/** `4GiB`, `512MiB`, `20GB`, `1024` (bytes) → bytes; `undefined` when malformed. */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?\s*$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]) * UNITS[m[2] ?? "B"]!;
  return Number.isSafeInteger(Math.round(n)) && Math.abs(n - Math.round(n)) < 1e-6 ? Math.round(n) : undefined;
}
