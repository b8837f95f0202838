/**
 * `loadPolicy`: the whole policy, loaded as the qrexec daemon loads it.
 *
 * Three loaders are imitated: the daemon's file loader (`FilePolicy`: the
 * runtime and main directories, includes resolved against the policy
 * directory, universal newlines), the in-memory loader of
 * `qubes-policy-lint` (`StringPolicy`: files by key, `\n` only, include keys
 * restricted to `include/NAME`), and the policy admin API's validation
 * (`ValidateParser`: overridden files loaded last, no runtime directory).
 *
 * Loading is strict: the first error stops it and is the policy's error, as
 * in the engine (where any error denies every call). With `collectAll` it
 * goes on after errors to collect every diagnostic, for editors.
 */
import { Diagnostic, type Span } from "../diagnostics.js";
import { checkDirective, checkRule, scanLines, splitFields, splitLegacyFields, type LineSkip, type ScannedLine } from "../syntax/lines.js";
import { fastValidRule, ruleLinePattern } from "../syntax/fastcheck.js";
import { pyCompare, pyRepr } from "../syntax/python.js";
import { ensureStarts, isLineError, newTokenCache, type Fields, type LineError, type ServiceArgument, type TokenCache } from "../syntax/rule.js";
import type { NewlineMode, SyntaxKind } from "../syntax/tree.js";
import { basename, dirname, joinPath, normalizePath, purePosix } from "./memfs.js";
import { lineAtOffset, NOT_UTF8_HELP, notUtf8Message } from "./utf8.js";
import {
  LEGACY_POLICY_DIR,
  POLICY_DIR,
  RUNTIME_POLICY_DIR,
  type CompiledPolicy,
  type LoadedFile,
  type LoadOptions,
  type LoadResult,
  type PolicyError,
  type PolicyFileSystem,
  type PolicyRule,
  type RuleOrigin,
} from "./types.js";

const FILENAME_CHARS = /^[0-9a-z_.-]*$/;
const COMPAT_NAME_CHARS = /^[A-Za-z0-9+._-]*$/;
const COMPAT_IGNORED_SUFFIXES = [".rpmsave", ".rpmnew", ".swp"];

/** Python's `PurePath.suffix`. */
function suffix(name: string): string {
  const i = name.lastIndexOf(".");
  return i > 0 && i < name.length - 1 ? name.slice(i) : "";
}

/** Unwinds the loader at the first error (internal; never leaves `loadPolicy`). */
class Stop {
  constructor(readonly error: PolicyError) {}
}

/** Where relative include paths of the file being read resolve, and how its rules are tagged. */
interface Frame {
  /** `policy`: against the policy dir of the top-level file; `legacy`: against the legacy dir (inside `!compat-4.0`). */
  base: "policy" | "legacy";
  /** The include chain that led here (outermost first). */
  via: RuleOrigin[];
}

const NO_VIA: RuleOrigin[] = [];

/** What the lines of a file being read share (see `Loader.line`). */
interface FileState {
  path: string;
  display: string;
  text: string;
  syntax: SyntaxKind;
  serviceSa: ServiceArgument | null;
  via: RuleOrigin[];
  inner: Frame;
  only: string | undefined;
}

class Loader {
  readonly rules: PolicyRule[] = [];
  /** Rules seen (kept or not). */
  ruleCount = 0;
  readonly files: LoadedFile[] = [];
  readonly diagnostics: Diagnostic[] = [];
  readonly warnings: Diagnostic[] = [];
  error: PolicyError | undefined;
  private readonly stack: string[] = [];
  private readonly cache: TokenCache = newTokenCache();
  private readonly fields: Fields = { texts: [], starts: [] };
  private policyPath: string | null = null;
  readonly kind: "file" | "string" | "validate";
  readonly policyDir: string;
  readonly legacyDir: string;

  constructor(
    private readonly fs: PolicyFileSystem | undefined,
    private readonly opts: LoadOptions,
    /** Whether to build the rule list (the evaluator's input), or only validate. */
    private readonly keepRules = true,
  ) {
    this.kind = opts.loader === "string" ? "string" : opts.overrides ? "validate" : "file";
    this.policyDir = normalizePath(opts.policyDir ?? POLICY_DIR);
    this.legacyDir = normalizePath(opts.legacyDir ?? LEGACY_POLICY_DIR);
  }

  /** The file name used in decisions: relative to the policy dir inside it, else absolute. */
  display(path: string): string {
    if (this.kind === "string") return path;
    const prefix = this.policyDir === "/" ? "/" : this.policyDir + "/";
    return path.startsWith(prefix) ? path.slice(prefix.length) : path;
  }

  /** Whether a built rule is kept: always, or with `service`, when it can decide a request for it. */
  private wanted(r: PolicyRule): boolean {
    const only = this.opts.service;
    return only === undefined || r.service === null || r.service === only;
  }

  // ---- failures -----------------------------------------------------------

  private fail(error: PolicyError, diagnostic?: Diagnostic): void {
    if (diagnostic) this.diagnostics.push(diagnostic);
    this.error ??= error;
    if (!this.opts.collectAll) throw new Stop(error);
  }

  private syntaxError(path: string, line: number | null, err: LineError): void {
    const file = this.display(path);
    const d = Diagnostic.create(err.code, err.message, err.span, line ?? 0);
    d.file = file;
    if (err.help) d.help = err.help;
    this.fail(
      { error: "PolicySyntaxError", code: err.code, message: `${path}:${line}: ${err.message}`, file, line, detail: err.message, notify: true },
      d,
    );
  }

  private accessDenied(code: string, message: string, file?: string, span?: Span, line?: number): void {
    let d: Diagnostic | undefined;
    if (file !== undefined) {
      d = Diagnostic.create(code as Diagnostic["code"], message, span ?? { start: 0, end: 0 }, line ?? 1);
      d.file = file;
    }
    this.fail({ error: "AccessDenied", code, message, notify: true }, d);
  }

  private crash(crash: string, code: string, message: string, file?: string, span?: Span, line?: number, help?: string): void {
    let d: Diagnostic | undefined;
    if (file !== undefined) {
      d = Diagnostic.create(code as Diagnostic["code"], message, span ?? { start: 0, end: 0 }, line ?? 1);
      d.file = file;
      if (help) d.help = help;
    }
    this.fail({ error: "EngineError", code, crash, message }, d);
  }

  // ---- entry points -------------------------------------------------------

  run(): void {
    try {
      if (this.kind === "string") this.runString();
      else if (this.kind === "validate") this.runValidate();
      else this.runFile();
    } catch (e) {
      if (!(e instanceof Stop)) throw e;
    }
  }

  private runString(): void {
    const strings = this.opts.strings ?? {};
    if (!Object.prototype.hasOwnProperty.call(strings, "__main__")) {
      this.fail({ error: "PolicySyntaxError", code: "no-such-policy-file", message: `<unknown>:None: no such policy file: '__main__'`, file: "<unknown>", line: null, detail: "no such policy file: '__main__'", notify: true });
      return;
    }
    this.loadFile("__main__[in-memory]", strings["__main__"]!, "policy", "lf", { base: "policy", via: NO_VIA }, null, null, "__main__");
  }

  private runFile(): void {
    const dirs = this.opts.runtimeDir === null ? [this.policyDir] : [normalizePath(this.opts.runtimeDir ?? RUNTIME_POLICY_DIR), this.policyDir];
    const seen = new Set<string>();
    const finalList: string[] = [];
    for (const dir of dirs) {
      const paths = this.filterPolicyFiles(dir);
      if (paths === undefined) return;
      for (const p of paths) {
        const name = basename(p);
        if (!seen.has(name)) {
          seen.add(name);
          finalList.push(p);
        }
      }
    }
    finalList.sort((a, b) => pyCompare(basename(a), basename(b)));
    for (const path of finalList) {
      const text = this.fs!.readFile(path);
      if (text === undefined) {
        this.accessDenied("failed-to-load", `failed to load ${path} file: [Errno 2] No such file or directory: ${pyRepr(path)}`);
        continue;
      }
      this.policyPath = dirname(path);
      this.loadFile(path, text, "policy", "universal", { base: "policy", via: NO_VIA }, null, null);
      this.policyPath = null;
    }
  }

  private runValidate(): void {
    this.policyPath = this.policyDir;
    this.loadPolicyDir(this.policyDir, { base: "policy", via: NO_VIA });
  }

  /** `filter_filepaths(dir.iterdir())`: regular `*.policy` files not starting with `.`; one bad name fails everything. */
  private filterPolicyFiles(dir: string): string[] | undefined {
    const names = this.fs!.readDir(dir);
    if (names === undefined) {
      this.accessDenied("failed-to-load", `failed to load ${dir} file: [Errno 2] No such file or directory: ${pyRepr(dir)}`);
      return undefined;
    }
    const kept = names
      .filter((n) => suffix(n) === ".policy" && !n.startsWith(".") && this.fs!.stat(joinPath(dir, n)) === "file")
      .sort(pyCompare);
    const out: string[] = [];
    for (const n of kept) {
      const path = joinPath(dir, n);
      if (!FILENAME_CHARS.test(n)) {
        this.accessDenied("invalid-filename", `invalid filename: ${path}`, this.display(path), { start: 0, end: 0 }, 1);
        continue;
      }
      out.push(path);
    }
    return out;
  }

  /** `load_policy_dir` (and `ValidateParser`'s version of it when validating). */
  private loadPolicyDir(dir: string, frame: Frame): void {
    const paths = this.filterPolicyFiles(dir);
    if (paths === undefined) return;
    const overrides = this.opts.overrides;
    for (const path of paths) {
      if (overrides && Object.prototype.hasOwnProperty.call(overrides, path)) continue;
      const text = this.fs!.readFile(path);
      if (text === undefined) {
        this.accessDenied("failed-to-load", `failed to load ${path} file: [Errno 2] No such file or directory: ${pyRepr(path)}`);
        continue;
      }
      this.loadFile(path, text, "policy", "universal", frame, null, null);
    }
    if (overrides) {
      for (const [p, content] of Object.entries(overrides)) {
        const path = normalizePath(p);
        if (dirname(path) === dir && content !== null) this.loadFile(path, content, "policy", "lf", frame, null, null);
      }
    }
  }

  // ---- reading one file ---------------------------------------------------

  /**
   * Reads one file line by line, handling directives as they come (an
   * include is read at the point of its directive, as in the engine).
   */
  private loadFile(
    path: string,
    text: string,
    syntax: SyntaxKind,
    newlines: NewlineMode,
    frame: Frame,
    sa: ServiceArgument | null,
    includedFrom: { path: string; line: number; span: Span } | null,
    key?: string,
  ): void {
    const canonical = this.kind === "string" ? (key ?? path) : this.fs?.realPath ? this.fs.realPath(path) : normalizePath(path);
    if (this.stack.includes(canonical)) {
      const chain = [...this.stack.slice(this.stack.indexOf(canonical)), canonical].map((p) => (this.kind === "string" ? p : this.display(p)));
      const at = includedFrom;
      this.crash(
        "RecursionError",
        "include-cycle",
        `include cycle: ${chain.join(" -> ")} (the engine recurses until it crashes, so every call is denied)`,
        at ? this.display(at.path) : undefined,
        at?.span,
        at?.line,
      );
      return;
    }
    const display = this.display(path);
    // Bytes that are not UTF-8: the engine's read fails before it parses a line of the file.
    const bad = this.fs?.notUtf8?.(path);
    if (bad) {
      this.files.push({ path, file: display, syntax, text, newlines });
      this.crash("UnicodeDecodeError", "not-utf8", notUtf8Message(display, bad), display, { start: bad.textOffset, end: bad.textOffset + 1 }, lineAtOffset(text, bad.textOffset), NOT_UTF8_HELP);
      return;
    }
    this.files.push({ path, file: display, syntax, text, newlines });
    this.stack.push(canonical);
    const outer = this.cur;
    try {
      const serviceSa: ServiceArgument | null = syntax === "service" ? sa : null;
      const via = includedFrom ? [...frame.via, { file: this.display(includedFrom.path), path: includedFrom.path, line: includedFrom.line }] : frame.via;
      const only = this.opts.service;
      // Validation only (or rules of one service only): the lines of certainly valid rules
      // that need no rule built are passed over by the scanner, a whole line per match.
      const skip: LineSkip | undefined =
        syntax === "policy" && (!this.keepRules || only !== undefined) ? { pattern: ruleLinePattern(this.keepRules ? only : undefined), skipped: 0 } : undefined;
      // What the lines of this file share, read by `line` (an include read meanwhile has its own, then this one is back).
      this.cur = { path, display, text, syntax, serviceSa, via, inner: { base: frame.base, via }, only };
      scanLines(text, newlines, this.onLine, skip);
      if (skip) this.ruleCount += skip.skipped;
    } finally {
      this.cur = outer;
      this.stack.pop();
    }
  }

  /**
   * The file being read, for {@link line}: one callback for every file (a
   * closure of its own for each would be a new function to the optimised
   * scanner each time, which throws its code away).
   */
  private cur: FileState | undefined;
  private readonly scratch = { start: 0, end: 0 };
  private readonly onLine = (l: ScannedLine): void => this.line(l);

  /** One line of the file being read (see {@link cur}). */
  private line(l: ScannedLine): void {
    if (l.kind === "blank" || l.kind === "comment") return;
    const c = this.cur!;
    const { text, syntax, only } = c;
    // Validation only: most rule lines are certainly valid by one regular expression.
    // With `service`, the same for a certainly valid rule of another service.
    if ((!this.keepRules || only !== undefined) && l.kind === "rule" && syntax === "policy" && fastValidRule(text, l.start, l.end)) {
      if (!this.keepRules || !serviceMayBe(text, l.start, only!)) {
        this.ruleCount++;
        return;
      }
    }
    const f = this.fields;
    let directive = l.kind === "directive";
    if (syntax === "service") directive = splitLegacyFields(text, l.start, l.end, f) && f.texts[0]!.startsWith("!");
    else splitFields(text, l.start, l.end, f, true);
    const line = l.line;
    if (directive) {
      this.directive(c.path, line, { start: l.start, end: l.end }, syntax, c.inner, c.serviceSa);
      return;
    }
    // One span object reused for every rule line (checkRule copies it into an error).
    const scratch = this.scratch;
    scratch.start = l.start;
    scratch.end = l.end;
    const r = checkRule(f, c.serviceSa, scratch, this.cache, undefined, this.keepRules ? { index: this.rules.length, origin: { file: c.display, path: c.path, line }, via: c.via } : false);
    if (isLineError(r)) {
      this.syntaxError(c.path, line, r);
      return;
    }
    this.ruleCount++;
    if (this.keepRules && this.wanted(r as PolicyRule)) this.rules.push(r as PolicyRule);
  }

  private directive(path: string, line: number, span: Span, syntax: SyntaxKind, frame: Frame, sa: ServiceArgument | null): void {
    const f = this.fields;
    const check = checkDirective(f, syntax, span);
    const params = f.texts.slice(1);
    ensureStarts(f);
    const paramSpan = f.starts.length > 1 ? { start: f.starts[1]!, end: f.starts[f.starts.length - 1]! + f.texts[f.texts.length - 1]!.length } : span;
    const at = { path, line, span: paramSpan };
    if (syntax === "service") {
      // Only `!include PATH` exists here; it keeps this file's service and argument.
      if (check.error) return this.syntaxError(path, line, check.error);
      // The in-memory loader checks include keys in the main policy, not inside `!compat-4.0`.
      if (this.kind === "string" && frame.base !== "legacy" && !this.checkStringKey(params[0]!, path, line, paramSpan)) return;
      return this.includeService(sa!, params[0]!, frame, at);
    }
    if (check.error) {
      // The in-memory loader checks an include key before the service and argument.
      if (this.kind === "string" && check.directive === "include-service" && check.error.code !== "invalid-number-of-params") {
        if (!this.checkStringKey(params[2]!, path, line, paramSpan)) return;
      }
      return this.syntaxError(path, line, check.error);
    }
    switch (check.directive) {
      case "include":
        if (this.kind === "string" && !this.checkStringKey(params[0]!, path, line, paramSpan)) return;
        return this.include(params[0]!, frame, at);
      case "include-dir":
        return this.includeDir(params[0]!, frame, at);
      case "include-service":
        if (this.kind === "string" && !this.checkStringKey(params[2]!, path, line, paramSpan)) return;
        return this.includeService({ service: check.service ?? null, argument: check.argument ?? null }, params[2]!, frame, at);
      case "compat-4.0":
        return this.compat40(path, line, span, frame);
    }
  }

  /** The in-memory loader's rule for include keys: a key with `/` must be `include/NAME`. */
  private checkStringKey(raw: string, path: string, line: number, span: Span): boolean {
    const key = purePosix(raw);
    if (key.includes("/") && (!key.startsWith("include/") || key.split("/").length - 1 > 1)) {
      this.syntaxError(path, line, {
        code: "invalid-include-path",
        message: `invalid path ${key}, only paths inside the directories ${POLICY_DIR} and ${POLICY_DIR}/include are considered`,
        span,
        help: "qubes-policy-lint only follows `NAME` and `include/NAME`; the daemon itself accepts any path",
      });
      return false;
    }
    return true;
  }

  /** Resolves an include path (`resolve_path`) for the current frame. */
  private resolve(raw: string, frame: Frame): string {
    const pure = purePosix(raw);
    const base = frame.base === "legacy" ? this.legacyDir : this.policyPath ?? this.policyDir;
    const joined = joinPath(base, pure);
    return this.fs?.realPath ? this.fs.realPath(joined) : normalizePath(joined);
  }

  /** Opens an include target: `{path, text, newlines}` or a reported failure. */
  private open(raw: string, frame: Frame, at: { path: string; line: number; span: Span }): { path: string; text: string; newlines: NewlineMode; key?: string } | undefined {
    if (this.kind === "string") {
      // Inside `!compat-4.0` the in-memory loader reads the legacy table.
      const legacyStrings = frame.base === "legacy";
      const key = purePosix(raw);
      const table = legacyStrings ? this.opts.legacyStrings ?? {} : this.opts.strings ?? {};
      if (!Object.prototype.hasOwnProperty.call(table, key)) {
        this.syntaxError(at.path, at.line, { code: "no-such-policy-file", message: `no such policy file: ${pyRepr(key)}`, span: at.span });
        return undefined;
      }
      return { path: `${key}[in-memory]`, text: table[key]!, newlines: "lf", key: (legacyStrings ? "legacy:" : "") + key };
    }
    const path = this.resolve(raw, frame);
    if (this.kind === "validate" && this.opts.overrides && Object.prototype.hasOwnProperty.call(this.opts.overrides, path)) {
      const content = this.opts.overrides[path];
      if (content === null || content === undefined) {
        this.syntaxError(at.path, at.line, { code: "not-a-file", message: `including a file that will be removed: ${path}`, span: at.span });
        return undefined;
      }
      return { path, text: content, newlines: "lf" };
    }
    if (this.fs!.stat(path) !== "file") {
      this.syntaxError(at.path, at.line, { code: "not-a-file", message: `not a file: ${path}`, span: at.span, help: "include paths resolve against the policy directory" });
      return undefined;
    }
    const text = this.fs!.readFile(path);
    if (text === undefined) {
      this.accessDenied("failed-to-load", `failed to load ${path} file: [Errno 2] No such file or directory: ${pyRepr(path)}`);
      return undefined;
    }
    return { path, text, newlines: "universal" };
  }

  private include(raw: string, frame: Frame, at: { path: string; line: number; span: Span }): void {
    const file = this.open(raw, frame, at);
    if (file) this.loadFile(file.path, file.text, "policy", file.newlines, frame, null, at, file.key);
  }

  private includeService(sa: ServiceArgument, raw: string, frame: Frame, at: { path: string; line: number; span: Span }): void {
    const file = this.open(raw, frame, at);
    if (file) this.loadFile(file.path, file.text, "service", file.newlines, frame, sa, at, file.key);
  }

  private includeDir(raw: string, frame: Frame, at: { path: string; line: number; span: Span }): void {
    if (this.kind === "string") {
      this.crash("NotImplementedError", "include-dir-unsupported", "!include-dir is unsupported in StringPolicy", this.display(at.path), at.span, at.line);
      return;
    }
    const dir = this.resolve(raw, frame);
    if (this.fs!.stat(dir) !== "dir") {
      this.syntaxError(at.path, at.line, { code: "not-a-directory", message: `not a directory: ${dir}`, span: at.span });
      return;
    }
    this.loadPolicyDir(dir, { base: frame.base, via: [...frame.via, { file: this.display(at.path), path: at.path, line: at.line }] });
  }

  /** `!compat-4.0`: every legacy file, services sorted, `*` last, with implicit denies after argument files. */
  private compat40(path: string, line: number, span: Span, frame: Frame): void {
    const w = Diagnostic.create("compat-transitional", `!compat-4.0 directive in file ${path} line ${line} is transitional and will be deprecated`, span, line, "warning");
    w.file = this.display(path);
    this.warnings.push(w);
    let names: string[];
    if (this.kind === "string") {
      names = Object.keys(this.opts.legacyStrings ?? {});
    } else {
      const listed = this.fs!.readDir(this.legacyDir);
      if (listed === undefined) {
        this.accessDenied("failed-to-load", `failed to load ${this.legacyDir} file: [Errno 2] No such file or directory: ${pyRepr(this.legacyDir)}`);
        return;
      }
      names = listed.filter(
        (n) =>
          this.fs!.stat(joinPath(this.legacyDir, n)) === "file" &&
          !COMPAT_IGNORED_SUFFIXES.includes(suffix(n)) &&
          !n.startsWith(".") &&
          COMPAT_NAME_CHARS.test(n),
      );
    }
    const services = new Map<string, Map<string, string>>();
    for (const n of names) {
      const plus = n.indexOf("+");
      const service = plus < 0 ? n : n.slice(0, plus);
      const argument = plus < 0 ? "*" : "+" + n.slice(plus + 1);
      let m = services.get(service);
      if (!m) services.set(service, (m = new Map()));
      m.set(argument, n);
    }
    const at = { path, line, span };
    const legacyFrame: Frame = { base: "legacy", via: frame.via };
    for (const service of [...services.keys()].sort(pyCompare)) {
      const args = services.get(service)!;
      const sorted = [...args.keys()].sort((a, b) => (a === b ? 0 : a === "*" ? 1 : b === "*" ? -1 : pyCompare(a, b)));
      for (const argument of sorted) {
        const name = args.get(argument)!;
        const sa = validateCompat(service, argument);
        if (isLineError(sa)) {
          this.syntaxError(path, line, { ...sa, span });
          continue;
        }
        const filePath = this.kind === "string" ? name : joinPath(this.legacyDir, name);
        this.includeService(sa, filePath, legacyFrame, at);
        if (argument !== "*") {
          for (const target of ["@anyvm", "@adminvm"] as const) {
            const f: Fields = { texts: ["@anyvm", target, "deny"], starts: [0, 0, 0] };
            const origin = { file: this.kind === "string" ? name : this.display(filePath), path: filePath, line: null };
            const r = checkRule(f, sa, span, this.cache, undefined, { index: this.rules.length, origin, via: legacyFrame.via }) as PolicyRule;
            this.ruleCount++;
            if (this.keepRules && this.wanted(r)) this.rules.push(r);
          }
        }
      }
    }
  }
}

/**
 * Whether the service column of a rule line that `fastValidRule` accepted
 * (so it starts at `start` and is `*` or a plain name, never rewritten) may
 * be `service`: it is `*` or exactly `service`.
 */
function serviceMayBe(text: string, start: number, service: string): boolean {
  const c = text.charCodeAt(start);
  if (c === 42 /* * */) {
    const n = text.charCodeAt(start + 1);
    if (n === 32 || n === 9) return true;
  }
  if (!text.startsWith(service, start)) return false;
  const n = text.charCodeAt(start + service.length);
  return n === 32 || n === 9;
}

function validateCompat(service: string, argument: string): ServiceArgument | LineError {
  const f: Fields = { texts: [service, argument], starts: [0, 0] };
  // Reuse the directive check of `!include-service` for the same rules.
  const check = checkDirective({ texts: ["!include-service", ...f.texts, "x"], starts: [0, 0, 0, 0] }, "policy", { start: 0, end: 0 });
  if (check.error) return check.error;
  return { service: check.service ?? null, argument: check.argument ?? null };
}

class Compiled implements CompiledPolicy {
  /** @internal */
  index: unknown = undefined;
  readonly service?: string;
  constructor(
    readonly rules: PolicyRule[],
    readonly files: LoadedFile[],
    readonly warnings: Diagnostic[],
    readonly ruleCount: number,
    service: string | undefined,
  ) {
    if (service !== undefined) this.service = service;
  }
}

/** The result of {@link checkPolicy}. */
export interface CheckResult {
  ok: boolean;
  /** The engine's error (the first one), when the policy does not load. */
  error?: PolicyError;
  /** Every diagnostic found, errors and warnings, each with its `file`. */
  diagnostics: Diagnostic[];
  /** The number of rules the policy has (counting repeated includes), as far as it loaded. */
  rules: number;
  files: LoadedFile[];
}

/**
 * Validates a whole policy without building the evaluator's rule list:
 * what `qkit policy check` and editors need. It finds the same problems as
 * {@link loadPolicy} with `collectAll` (the first error is the engine's).
 */
export function checkPolicy(fs: PolicyFileSystem | undefined, options: LoadOptions = {}): CheckResult {
  const loader = new Loader(fs, { collectAll: true, ...options }, false);
  try {
    loader.run();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const error: PolicyError = { error: "EngineError", code: "internal-error", crash: "InternalError", message: `internal error while loading the policy: ${message}` };
    return { ok: false, error, diagnostics: [...loader.diagnostics], rules: loader.ruleCount, files: loader.files };
  }
  const diagnostics = [...loader.diagnostics, ...loader.warnings];
  const out: CheckResult = { ok: !loader.error, diagnostics, rules: loader.ruleCount, files: loader.files };
  if (loader.error) out.error = loader.error;
  return out;
}

/**
 * Loads a whole policy. Never throws. `ok: true` only when there is no error
 * at all: that is the only way to get a {@link CompiledPolicy}, the input of
 * the evaluator.
 *
 * @example
 * ```ts
 * // Files in memory, keyed relative to /etc/qubes/policy.d (or by absolute path):
 * const r = loadPolicy(createMemoryFileSystem({ "30-user.policy": "qubes.GetDate * @anyvm dom0 allow\n" }));
 * if (r.ok) console.log(r.policy.rules.length);
 * else console.error(r.error.message); // the daemon would deny every call
 * // A directory on disk: loadPolicyDirectory("policy.d") from @qubes-kit/sdk/node
 * ```
 */
export function loadPolicy(fs: PolicyFileSystem | undefined, options: LoadOptions = {}): LoadResult {
  const loader = new Loader(fs, options);
  try {
    loader.run();
  } catch (e) {
    // INVARIANT: loading never throws; an unexpected exception is a bug reported as an engine error.
    const message = e instanceof Error ? e.message : String(e);
    const error: PolicyError = { error: "EngineError", code: "internal-error", crash: "InternalError", message: `internal error while loading the policy: ${message}` };
    return { ok: false, error, diagnostics: [...loader.diagnostics], files: loader.files };
  }
  const diagnostics = [...loader.diagnostics, ...loader.warnings];
  if (loader.error) return { ok: false, error: loader.error, diagnostics, files: loader.files };
  return { ok: true, policy: new Compiled(loader.rules, loader.files, loader.warnings, loader.ruleCount, options.service), diagnostics };
}
