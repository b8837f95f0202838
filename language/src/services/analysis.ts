/**
 * Editor analysis: warnings a careful admin wants beyond what the engine
 * rejects. One rule per function, each with its metadata (name, default
 * severity, summary). Rules are exact and conservative: a rule reports only
 * what holds for every system (or, for the rules that need one, for the given
 * system model), never a guess.
 */
import type { Diagnostic, DiagnosticCode, Severity, Span } from "../diagnostics.js";
import type { DomainInfo, SystemInfo } from "../eval/types.js";
import { matchSource } from "../eval/match.js";
import type { PolicyRule } from "../loader/types.js";
import type { LineNode, PolicyDocument, QubeToken, RuleLine, RuleNode, Word } from "../syntax/tree.js";
import { STANDARD_SERVICES, STANDARD_TYPES } from "./catalog.js";
import { dispvmTemplates, systemQubes, systemTags, systemTypes } from "./describe.js";
import { serviceFindings, serviceFindingsSteps, shadowPositions, type FileShadow, type ServiceAnalysisCache, type ServiceFindings } from "./incremental.js";
import { parsedRuleOf } from "./flatten.js";
import { wholePolicyFindings } from "./oneshot.js";
import { hasSupportedRpc, isOffer, providedAnalysis, type ProvidedAnalysis, type ProvidedVerdict, type ServiceProvided } from "./rpc-provided.js";
import { basename, closest, code, dirname, isDom0ish, lineByNumber } from "./util.js";

/** A diagnostic of the analysis, possibly pointing at related places. */
export interface AnalysisDiagnostic extends Diagnostic {
  /** Other places that explain the diagnostic (the shadowing rule …). */
  related?: Array<{ path: string; span: Span; line: number; message: string }>;
  /** Extra data for quick fixes. */
  data?: Record<string, unknown>;
}

/** The metadata of one analysis rule. */
export interface AnalysisRuleMeta {
  /** The diagnostic code the rule reports. */
  name: DiagnosticCode;
  /** Default severity. */
  severity: Severity;
  /** One line: what the rule finds. */
  summary: string;
  /** True when the rule needs a system model (it is off without one). */
  needsSystem: boolean;
  /** True when the rule looks at one document at a time (its findings are cached per document). */
  perDocument?: boolean;
}

/** One document taking part in the analysis. */
export interface AnalyzedDocument {
  /** Absolute path. */
  path: string;
  document: PolicyDocument;
}

/** Everything an analysis rule may look at. */
export interface AnalysisInput {
  /** The rules in global first-match order (may be incomplete when the policy has errors). */
  rules: readonly PolicyRule[];
  /** Every document to check, unique by path. */
  documents: readonly AnalyzedDocument[];
  /** The system model, or `null` (then the name checks are off). */
  system: SystemInfo | null;
  /** The policy directories whose `*.policy` files the engine lists. */
  listedDirs: readonly string[];
  /** State of the per-service analyses from the previous run: unchanged services are not analysed again. */
  serviceCache?: ServiceAnalysisCache;
  /**
   * `rules` cut into runs of consecutive rules of one file (see `FlatPolicy.segments`); with a
   * `serviceCache`, the per-service analyses and the shadowed-rule warnings are then cached per
   * run and per file, so unchanged files cost almost nothing.
   */
  segments?: ReadonlyArray<readonly PolicyRule[]>;
}

/** Reports a finding for a document. */
export type Report = (path: string, diagnostic: AnalysisDiagnostic) => void;

/**
 * @internal A report that also takes a whole list of one path's findings at once, kept by
 * identity: a list reported again as the same array (an unchanged file's warnings) lets the
 * output list of that path be the previous one without looking at its elements.
 */
interface ListReport extends Report {
  list?: (path: string, list: readonly AnalysisDiagnostic[]) => void;
}

/** Reports every finding of a list (as one piece when the report takes lists). */
function reportList(report: Report, path: string, list: readonly AnalysisDiagnostic[]): void {
  const r = report as ListReport;
  if (r.list) r.list(path, list);
  else for (const d of list) report(path, d);
}

/** An analysis rule: metadata plus the check. */
export interface AnalysisRule {
  meta: AnalysisRuleMeta;
  run(input: AnalysisInput, report: Report, severity: Severity): void;
  /**
   * The same work as {@link AnalysisRule.run} in steps (yielding between units such as files), for
   * the rules whose whole-policy pass is long; {@link runAnalysisSteps} prefers it.
   */
  steps?(input: AnalysisInput, report: Report, severity: Severity): Generator<void, void, void>;
}

/** How to configure rules: a severity or `"off"`, by rule name. */
export type AnalysisConfig = Partial<Record<DiagnosticCode, Severity | "off">>;

function diag(code: DiagnosticCode, severity: Severity, message: string, span: Span, line: number, help?: string): AnalysisDiagnostic {
  const d: AnalysisDiagnostic = { code, severity, message, span, line };
  if (help) d.help = help;
  return d;
}

/** Visits every valid rule line of every document. */
function eachRuleLine(input: AnalysisInput, fn: (doc: AnalyzedDocument, line: RuleLine) => void): void {
  for (const doc of input.documents) {
    for (const line of doc.document.lines) {
      if (line.kind === "rule" && line.rule) fn(doc, line);
    }
  }
}

/** The span of the value part of a `key=value` parameter. */
function paramValueSpan(line: RuleLine, key: string): Span | undefined {
  const p = line.params.find((x) => x.key === key);
  if (!p) return undefined;
  return { start: p.span.start + key.length + 1, end: p.span.end };
}

/** Domain lookup that knows the `uuid:` aliases. */
function hasQube(system: SystemInfo, name: string): boolean {
  return system.domains.has(name);
}

function suggest(word: string, candidates: Iterable<string>): string | undefined {
  const c = closest(word, candidates, 1);
  return c.length ? `did you mean ${code(c[0]!)}?` : undefined;
}

/** Attaches a replacement for the diagnostic's span when the help suggests one (`did you mean X?`). */
function withSuggestion(d: AnalysisDiagnostic, original: string, value: string): AnalysisDiagnostic {
  const m = d.help ? /^did you mean `(.*)`\?$/.exec(d.help) : null;
  if (m) d.data = { ...d.data, replacement: original.slice(0, original.length - value.length) + m[1] };
  return d;
}

// ---------------------------------------------------------------------------
// Rules that need a system model.

/** A qube named in a source or target column does not exist in the system model. */
export const unknownQube: AnalysisRule = {
  meta: { name: "unknown-qube", perDocument: true, severity: "warning", needsSystem: true, summary: "a qube named in a rule does not exist in the system model" },
  run(input, report, severity) {
    const system = input.system!;
    const names = systemQubes(system);
    eachRuleLine(input, (doc, line) => {
      const rule = line.rule!;
      const check = (tok: QubeToken, wordOf: () => Word | undefined) => {
        if (tok.kind !== "name" || isDom0ish(tok.text) || hasQube(system, tok.text)) return;
        const word = wordOf();
        if (!word) return;
        // A legacy `$` token in a new-format file has its own, more useful warning.
        if (doc.document.syntax === "policy" && tok.text.startsWith("$")) return;
        report(doc.path, withSuggestion(diag("unknown-qube", severity, `unknown qube ${code(tok.text)}: it is not in the system model`, word.span, line.line, suggest(tok.text, names)), tok.text, tok.text));
      };
      // The words are looked up only for a finding (a one-shot analysis makes them on demand).
      check(rule.source, () => line.sourceWord);
      check(rule.target, () => line.targetWord);
    });
  },
};

/** A tag used in a rule is carried by no qube of the system model. */
export const unknownTag: AnalysisRule = {
  meta: { name: "unknown-tag", perDocument: true, severity: "warning", needsSystem: true, summary: "a tag used in a rule is carried by no qube" },
  run(input, report, severity) {
    const tags = new Set(systemTags(input.system!));
    eachRuleLine(input, (doc, line) => {
      const rule = line.rule!;
      const check = (tok: QubeToken, wordOf: () => Word | undefined) => {
        let tag: string | undefined;
        if (tok.kind === "tag") tag = tok.value;
        else if (tok.kind === "dispvm-tag") tag = tok.value.startsWith("@tag:") ? tok.value.slice(5) : tok.value;
        if (tag === undefined || tags.has(tag)) return;
        const word = wordOf();
        if (!word) return;
        report(doc.path, withSuggestion(diag("unknown-tag", severity, `unknown tag ${code(tag)}: no qube in the system model carries it`, word.span, line.line, suggest(tag, tags)), word.text, tag));
      };
      check(rule.source, () => line.sourceWord);
      check(rule.target, () => line.targetWord);
    });
  },
};

/** A `@type:` names a type that is neither a Qubes class nor the type of any qube. */
export const unknownType: AnalysisRule = {
  meta: { name: "unknown-type", perDocument: true, severity: "warning", needsSystem: true, summary: "a `@type:` names a type no qube has and Qubes does not know" },
  run(input, report, severity) {
    const types = new Set([...systemTypes(input.system!), ...STANDARD_TYPES]);
    eachRuleLine(input, (doc, line) => {
      const rule = line.rule!;
      for (const [tok, source] of [[rule.source, true], [rule.target, false]] as const) {
        if (tok.kind !== "type" || types.has(tok.value)) continue;
        const word = source ? line.sourceWord : line.targetWord;
        if (!word) continue;
        report(doc.path, withSuggestion(diag("unknown-type", severity, `unknown qube type ${code(tok.value)}`, word.span, line.line, suggest(tok.value, types)), word.text, tok.value));
      }
    });
  },
};

/** A `@dispvm:NAME` target names a qube that is not a disposable template. */
export const unknownDispvmTemplate: AnalysisRule = {
  meta: { name: "unknown-dispvm-template", perDocument: true, severity: "warning", needsSystem: true, summary: "a `@dispvm:NAME` target is not a disposable template" },
  run(input, report, severity) {
    const system = input.system!;
    const templates = dispvmTemplates(system);
    eachRuleLine(input, (doc, line) => {
      const rule = line.rule!;
      const tok = rule.target;
      if (tok.kind !== "dispvm-template") return;
      const info = system.domains.get(tok.value);
      if ((info && info.template_for_dispvms === true) || !line.targetWord) return;
      const why = info ? "it is not a disposable template" : "it is not in the system model";
      report(doc.path, withSuggestion(diag("unknown-dispvm-template", severity, `unknown disposable template ${code(tok.value)}: ${why}`, line.targetWord.span, line.line, suggest(tok.value, templates)), line.targetWord.text, tok.value));
    });
  },
};

/**
 * A rule allows or asks for `@dispvm` (as the target or through `target=@dispvm`) from a source
 * whose every qube has no default disposable template: the engine has nothing to start, so the
 * call is refused whatever the rule says. The source token is resolved against the system model
 * as the engine matches sources (a name, `@tag:`, `@type:`, `@anyvm` …). A source that matches
 * some qubes with a default and some without is not reported (the rule works for the others; the
 * simulator shows the refused ones), nor one that matches no qube, nor a qube whose model does
 * not say `default_dispvm` at all.
 */
export const dispvmWithoutDefault: AnalysisRule = {
  meta: { name: "dispvm-without-default", perDocument: true, severity: "warning", needsSystem: true, summary: "a rule allows `@dispvm` from a qube that has no default disposable template" },
  run(input, report, severity) {
    const system = input.system!;
    const lacks = (info: DomainInfo | undefined) => info !== undefined && "default_dispvm" in info && (info.default_dispvm === null || info.default_dispvm === "");
    const names = [...system.domains.keys()].filter((n) => !n.startsWith("uuid:"));
    // Per source token: the matched qubes that lack a default, or `undefined` when one has a default (or none matches).
    const bySource = new Map<string, string[] | undefined>();
    const lacking = (tok: QubeToken): string[] | undefined => {
      if (bySource.has(tok.text)) return bySource.get(tok.text);
      let out: string[] | undefined = [];
      for (const n of names) {
        if (!matchSource(tok, n, system.domains)) continue;
        if (!lacks(system.domains.get(n))) {
          out = undefined;
          break;
        }
        out.push(n);
      }
      if (out && out.length === 0) out = undefined;
      bySource.set(tok.text, out);
      return out;
    };
    eachRuleLine(input, (doc, line) => {
      const rule = line.rule!;
      if (rule.action === "deny") return;
      const viaTarget = rule.target.kind === "dispvm" && rule.redirect === null;
      const viaRedirect = rule.redirect?.kind === "dispvm";
      if ((!viaTarget && !viaRedirect) || !line.sourceWord) return;
      const qubes = lacking(rule.source);
      if (!qubes) return;
      const span = viaRedirect ? (line.params.find((p) => p.key === "target")?.span ?? line.targetWord!.span) : line.targetWord!.span;
      const named = rule.source.kind === "name";
      const shown = qubes.slice(0, 5).map(code).join(", ") + (qubes.length > 5 ? ` and ${qubes.length - 5} more` : "");
      report(
        doc.path,
        diag(
          "dispvm-without-default",
          severity,
          named
            ? `${code(rule.source.text)} has no default disposable template, so \`@dispvm\` from it is always refused`
            : `every qube ${code(rule.source.text)} matches (${shown}) has no default disposable template, so \`@dispvm\` from it is always refused`,
          span,
          line.line,
          named
            ? `set its default_dispvm (\`qvm-prefs ${rule.source.text} default_dispvm NAME\`), or name the template: \`@dispvm:NAME\``
            : `set their default_dispvm (\`qvm-prefs QUBE default_dispvm NAME\`), or name the template: \`@dispvm:NAME\``,
        ),
      );
    });
  },
};

/** A `target=` or `default_target=` names a qube that does not exist (allow then falls back to `@default`). */
export const redirectTargetMissing: AnalysisRule = {
  meta: { name: "redirect-target-missing", perDocument: true, severity: "warning", needsSystem: true, summary: "a `target=` or `default_target=` qube does not exist" },
  run(input, report, severity) {
    const system = input.system!;
    const names = systemQubes(system);
    eachRuleLine(input, (doc, line) => {
      const rule = line.rule!;
      for (const [key, tok] of [["target", rule.redirect], ["default_target", rule.defaultTarget]] as const) {
        if (!tok) continue;
        if (tok.kind === "name" && !isDom0ish(tok.text) && !hasQube(system, tok.text)) {
          const span = paramValueSpan(line, key);
          if (!span) continue;
          const effect =
            key === "default_target"
              ? "the ask dialog will have no default"
              : rule.action === "allow"
                ? "the engine falls back to `@default` and denies the call"
                : "choosing it in the ask dialog fails";
          report(doc.path, withSuggestion(diag("redirect-target-missing", severity, `${key}=${tok.text} names a qube that does not exist: ${effect}`, span, line.line, suggest(tok.text, names)), tok.text, tok.text));
        } else if (tok.kind === "dispvm-template") {
          const info = system.domains.get(tok.value);
          if (info && info.template_for_dispvms === true) continue;
          const span = paramValueSpan(line, key);
          if (!span) continue;
          report(doc.path, diag("redirect-target-missing", severity, `${key}=${tok.text}: ${code(tok.value)} is not a disposable template, so the call is denied`, span, line.line));
        }
      }
    });
  },
};

// ---------------------------------------------------------------------------
// Rules that hold for every system.

export { tokenCovers, ruleCovers } from "./incremental.js";

/**
 * For every rule, the earliest earlier rule that covers it (or `undefined`).
 * Only rules whose service, argument, source and target keys could cover a
 * rule are looked up (at most 36 exact keys), so this is linear in the policy.
 */
export function findShadowingRules(rules: readonly PolicyRule[]): Array<PolicyRule | undefined> {
  const at = shadowPositions(rules);
  return Array.from(at, (p) => (p < 0 ? undefined : rules[p]));
}

/**
 * A predicate: true when some `ask` rule without `target=` could collect
 * targets from rule `r` (then removing `r` may change what ask prompts offer).
 */
export function askFeeders(rules: readonly PolicyRule[]): (r: PolicyRule) => boolean {
  const asks = rules.filter((a) => a.action === "ask" && a.redirect === null);
  const byService = new Map<string | null, PolicyRule[]>();
  for (const a of asks) {
    let list = byService.get(a.service);
    if (!list) byService.set(a.service, (list = []));
    list.push(a);
  }
  const argOk = (a: PolicyRule, r: PolicyRule) => a.argument === null || r.argument === null || a.argument === r.argument;
  const memo = new Map<string, boolean>();
  return (r) => {
    const key = `${r.service ?? "\u0000"}\u0001${r.argument ?? "\u0000"}`;
    let v = memo.get(key);
    if (v === undefined) {
      v =
        r.service === null
          ? asks.some((a) => argOk(a, r))
          : (byService.get(null) ?? []).some((a) => argOk(a, r)) || (byService.get(r.service) ?? []).some((a) => argOk(a, r));
      memo.set(key, v);
    }
    return v;
  };
}

/** True when some `ask` rule without `target=` could collect targets from rule `r`. */
export function feedsAskPrompts(rules: readonly PolicyRule[], r: PolicyRule): boolean {
  return askFeeders(rules)(r);
}

/** The per-service findings of the input's rules (computed once per rule list, incrementally with the input's cache). */
function findingsOf(input: AnalysisInput): ServiceFindings {
  const cache = input.serviceCache;
  // Without a cache (a one-shot analysis), the linear pass over the whole list.
  if (!cache) return wholePolicyFindings(input.rules);
  if (cache.last?.rules === input.rules) return cache.last.findings;
  return serviceFindings(input.rules, cache, input.segments);
}

/** A rule that an earlier rule matches a superset of, so it can never decide. */
export const shadowedRule: AnalysisRule = {
  meta: { name: "shadowed-rule", severity: "warning", needsSystem: false, summary: "an earlier rule matches every call this rule matches, so it never decides" },
  *steps(input, report, severity) {
    if (input.segments && input.serviceCache) yield* shadowedByFile(input, input.segments, input.serviceCache, report, severity);
    else this.run(input, report, severity);
  },
  run(input, report, severity) {
    if (input.segments && input.serviceCache) {
      const steps = shadowedByFile(input, input.segments, input.serviceCache, report, severity);
      while (!steps.next().done);
      return;
    }
    const { shadowedBy, feedsAsk } = findingsOf(input);
    // A line counts as shadowed only when every copy of it (a file included twice) is. Files
    // loaded once (their rules form one run in the list) need no bookkeeping per line.
    const seenPaths = new Set<string>();
    const twice = new Set<string>();
    let lastPath: string | undefined;
    let lastLine = 0;
    for (const r of input.rules) {
      if (r.origin.path === lastPath) {
        // The same file again right after itself (included twice in a row): its lines start over.
        if ((r.origin.line ?? 0) <= lastLine) twice.add(lastPath);
        lastLine = r.origin.line ?? 0;
        continue;
      }
      lastPath = r.origin.path;
      lastLine = r.origin.line ?? 0;
      if (seenPaths.has(lastPath)) twice.add(lastPath);
      else seenPaths.add(lastPath);
    }
    // The rules to look at, by index: a shadowed rule of a file loaded once; the first copy of each
    // line of a file loaded more than once, reported only when no copy of it decides (`notAll`).
    const order: number[] = [];
    const notAll = new Set<number>();
    const firstCopy = new Map<string, Map<number, number>>();
    lastPath = undefined;
    let lines: Map<number, number> | undefined;
    for (let i = 0; i < input.rules.length; i++) {
      const r = input.rules[i]!;
      if (r.origin.line === null) continue;
      const shadowed = shadowedBy[i] !== undefined;
      if (!twice.has(r.origin.path)) {
        if (shadowed) order.push(i);
        continue;
      }
      if (r.origin.path !== lastPath || !lines) {
        lastPath = r.origin.path;
        lines = firstCopy.get(lastPath);
        if (!lines) firstCopy.set(lastPath, (lines = new Map()));
      }
      const first = lines.get(r.origin.line);
      if (first === undefined) {
        lines.set(r.origin.line, i);
        order.push(i);
        if (!shadowed) notAll.add(i);
      } else if (!shadowed) notAll.add(first);
    }
    const docs = new Map(input.documents.map((d) => [d.path, d]));
    const presented = input.serviceCache?.presented;
    // Per broader rule: its line and what its warnings share.
    const broader = new Map<PolicyRule, { node: LineNode | undefined; shared: ShadowShared }>();
    for (const i of order) {
      const by = shadowedBy[i];
      if (!by || notAll.has(i)) continue;
      const rule = input.rules[i]!;
      const doc = docs.get(rule.origin.path);
      if (!doc) continue;
      const feeds = feedsAsk[i] === 1;
      let b = broader.get(by);
      if (!b) {
        const byDoc = docs.get(by.origin.path);
        const node = byDoc && by.origin.line !== null ? lineByNumber(byDoc.document, by.origin.line) : undefined;
        broader.set(by, (b = { node, shared: shadowShared(by, node) }));
      }
      const byLineNode = b.node;
      // The same finding on an unchanged document, with the broader rule at the same place, is the
      // same diagnostic object (so an unchanged file's list is the same list, cheap to skip).
      const line = lineByNumber(doc.document, rule.origin.line!);
      if (!line) continue;
      const kept = presented ? presentedFor(presented, line, by, byLineNode, feeds, severity) : undefined;
      if (kept) {
        report(rule.origin.path, kept);
        continue;
      }
      const d = shadowDiagnostic(by, line.span, line.line, byLineNode, feeds, severity, b.shared);
      presented?.set(presentKey(line), { byPath: by.origin.path, byFile: by.origin.file, byLine: by.origin.line, bySpan: byLineNode?.span, feeds, d });
      report(rule.origin.path, d);
    }
  },
};

/**
 * The shadowed-rule warnings file by file, from the runs of rules of each file: a file whose
 * rules, findings, document and broader rules' documents are the same objects as in the last
 * run reports the same diagnostics (the same objects) without looking at a line. Equal to the
 * whole-list pass above (the property tests of `services-incremental*` compare with scratch).
 */
function* shadowedByFile(input: AnalysisInput, segments: ReadonlyArray<readonly PolicyRule[]>, cache: ServiceAnalysisCache, report: Report, severity: Severity): Generator<void, void, void> {
  const { shadowedBy, feedsAsk } = findingsOf(input);
  const docs = new Map(input.documents.map((d) => [d.path, d]));
  // The runs of each file, with their start in the rule list.
  const byPath = new Map<string, Array<{ start: number; rules: readonly PolicyRule[] }>>();
  let start = 0;
  for (const seg of segments) {
    if (seg.length) {
      const path = seg[0]!.origin.path;
      let list = byPath.get(path);
      if (!list) byPath.set(path, (list = []));
      list.push({ start, rules: seg });
    }
    start += seg.length;
  }
  for (const key of [...cache.shadowFiles.keys()]) if (!byPath.has(key)) cache.shadowFiles.delete(key);
  const presented = cache.presented;
  // Work done since the last step (rules compared, places looked up): a server answers requests every few thousand.
  let work = 0;
  for (const [path, runs] of byPath) {
    if (work >= 2000) {
      work = 0;
      yield;
    }
    const doc = docs.get(path);
    if (!doc) {
      cache.shadowFiles.delete(path);
      continue;
    }
    let count = 0;
    for (const run of runs) count += run.rules.length;
    const prev = cache.shadowFiles.get(path);
    let same = prev !== undefined && prev.document === doc.document && prev.severity === severity && prev.by.length === count;
    // The same findings arrays and the same runs: nothing about this file's rules changed.
    const quick = same && prev!.shadowedBy === shadowedBy && prev!.feedsAsk === feedsAsk && prev!.runs.length === runs.length && prev!.runs.every((r, k) => r === runs[k]!.rules);
    /**
     * Broader rules that are the same line of the same document moved by an edit, by their former
     * place (the warnings' broader rule objects may be older ones at that place): the new rule.
     */
    let movedBy: Map<string, Map<number | null, PolicyRule>> | undefined;
    /**
     * Rules of a file loaded once whose finding really changed (a rule added or removed elsewhere
     * now shadows them, or no longer does): only their warnings are made again, when they are few.
     */
    let changed: number[] | undefined;
    const patchable = runs.length === 1 && prev?.foundK !== undefined;
    const maxChanged = Math.max(16, count >> 4);
    if (same && !quick) {
      work += count;
      let k = 0;
      outer: for (const run of runs) {
        for (let j = 0; j < run.rules.length; j++, k++) {
          // The broader rule at the same place gives the same warning (an edit above both renumbers
          // the rules, so they are new objects): only its place and the ask flag are in the warning.
          const a = prev!.by[k];
          const b = shadowedBy[run.start + j];
          if (prev!.feeds[k] !== feedsAsk[run.start + j]) {
            if (!patchable || (changed ??= []).length >= maxChanged) {
              same = false;
              break outer;
            }
            changed.push(k);
            continue;
          }
          if (a !== b && !sameLineAtPlace(a, b)) {
            // The same line of the broader rule's document, moved by an edit above it: the same
            // warning but for the broader rule's line (in the message and the related place).
            if (!sameMovedLine(a, b)) {
              if (!patchable || (changed ??= []).length >= maxChanged) {
                same = false;
                break outer;
              }
              changed.push(k);
              continue;
            }
            let lines = (movedBy ??= new Map()).get(a!.origin.path);
            if (!lines) movedBy.set(a!.origin.path, (lines = new Map()));
            const known = lines.get(a!.origin.line);
            if (known !== undefined && !samePlace(known, b)) {
              same = false;
              break outer;
            }
            lines.set(a!.origin.line, b!);
          }
          prev!.by[k] = b;
        }
      }
      if (same) {
        prev!.shadowedBy = shadowedBy;
        prev!.feedsAsk = feedsAsk;
        prev!.runs = runs.map((r) => r.rules);
      }
    }
    if (same && movedBy) {
      // Only the warnings whose broader rule moved are made again; the rest are the same objects.
      const found = prev!.found.slice();
      for (const [p, lines] of movedBy) {
        const byDoc = docs.get(p)?.document;
        // The warnings whose broader rule is in that file (their rule objects may be older ones at the same place).
        for (const k of prev!.foundAt.get(p) ?? []) {
          const was = prev!.foundBy[k]!;
          const b = lines.get(was.origin.line);
          if (b === undefined || b.origin.file !== was.origin.file) continue;
          work++;
          const d = found[k]!;
          const at = byDoc && b.origin.line !== null ? lineByNumber(byDoc, b.origin.line) : undefined;
          found[k] = shadowDiagnostic(b, d.span, d.line, at, (d.data as { removable?: boolean } | undefined)?.removable === false, severity);
          prev!.foundBy[k] = b;
        }
      }
      prev!.found = found;
      // The positions by the broader rule's path are unchanged (a moved rule keeps its path); the
      // related places of the other warnings into an edited document are checked below.
    }
    if (same) {
      // The broader rules are the same; documents they live in may have been edited (their lines moved).
      let moved: Map<string, PolicyDocument> | undefined;
      for (const [p, d] of prev!.byDocs) {
        const now = docs.get(p)?.document;
        if (now === d) continue;
        if (now === undefined) same = false;
        else (moved ??= new Map()).set(p, now);
      }
      if (same && moved) {
        // Only the related places into moved documents are read again. A changed list is a new
        // array (the output reuses a path's list while it is the same array).
        let found = prev!.found;
        for (const [p, now] of moved) {
          const at = prev!.foundAt.get(p) ?? [];
          work += 2 * at.length;
          for (const k of at) {
            const b = prev!.foundBy[k]!;
            const d = found[k]!;
            const node = b.origin.line !== null ? lineByNumber(now, b.origin.line) : undefined;
            const rel = d.related?.[0];
            if (node && rel && rel.span.start === node.span.start && rel.span.end === node.span.end && rel.line === node.line) continue;
            if (!node && !rel) continue;
            if (found === prev!.found) found = found.slice();
            // The broader rule's line moved in its document: the same warning with the related place moved.
            found[k] =
              node && rel
                ? movedDiagnostic(d, d.span, d.line, [{ path: rel.path, span: node.span, line: node.line, message: rel.message }])
                : shadowDiagnostic(b, d.span, d.line, node, (d.data as { removable?: boolean } | undefined)?.removable === false, severity);
          }
        }
        prev!.found = found;
        for (const [p, d] of moved) prev!.byDocs.set(p, d);
      }
    }
    if (same && changed) {
      // Merge the kept warnings (in rule order) with those of the changed rules, made afresh.
      const run = runs[0]!;
      const oldFound = prev!.found;
      const oldBy = prev!.foundBy;
      const oldK = prev!.foundK!;
      const found: AnalysisDiagnostic[] = [];
      const foundBy: PolicyRule[] = [];
      const foundK: number[] = [];
      let x = 0;
      for (const k of changed) {
        while (x < oldK.length && oldK[x]! < k) (found.push(oldFound[x]!), foundBy.push(oldBy[x]!), foundK.push(oldK[x]!), x++);
        if (x < oldK.length && oldK[x] === k) x++;
        const i = run.start + k;
        const b = shadowedBy[i];
        prev!.by[k] = b;
        prev!.feeds[k] = feedsAsk[i]!;
        work++;
        const rule = run.rules[k]!;
        if (!b || rule.origin.line === null) continue;
        const line = lineByNumber(doc.document, rule.origin.line);
        if (!line) continue;
        const feedsThis = feedsAsk[i] === 1;
        const byDoc = docs.get(b.origin.path);
        prev!.byDocs.set(b.origin.path, byDoc?.document);
        const byLineNode = byDoc && b.origin.line !== null ? lineByNumber(byDoc.document, b.origin.line) : undefined;
        let d = presentedFor(presented, line, b, byLineNode, feedsThis, severity);
        if (!d) {
          d = shadowDiagnostic(b, line.span, line.line, byLineNode, feedsThis, severity);
          presented.set(presentKey(line), { byPath: b.origin.path, byFile: b.origin.file, byLine: b.origin.line, bySpan: byLineNode?.span, feeds: feedsThis, d });
        }
        found.push(d);
        foundBy.push(b);
        foundK.push(k);
      }
      while (x < oldK.length) (found.push(oldFound[x]!), foundBy.push(oldBy[x]!), foundK.push(oldK[x]!), x++);
      prev!.found = found;
      prev!.foundBy = foundBy;
      prev!.foundK = foundK;
      prev!.foundAt = foundAtOf(foundBy);
    }
    if (same) {
      reportList(report, path, prev!.found);
      continue;
    }
    // Afresh: a line counts as shadowed only when every copy of it (a file included twice) is.
    const by: Array<PolicyRule | undefined> = new Array(count);
    const feeds = new Uint8Array(count);
    const byDocs = new Map<string, PolicyDocument | undefined>();
    // The candidate lines (their first rule's position, its broader rule, and whether every copy of
    // the line is shadowed), as parallel arrays: no object per rule.
    const entryAt: number[] = [];
    const entryK: number[] = [];
    const entryBy: Array<PolicyRule | undefined> = [];
    const entryAll: boolean[] = [];
    const lines = runs.length > 1 ? new Map<number, number>() : undefined;
    let k = 0;
    for (const run of runs) {
      for (let j = 0; j < run.rules.length; j++, k++) {
        const i = run.start + j;
        const b = shadowedBy[i];
        by[k] = b;
        feeds[k] = feedsAsk[i]!;
        const line = run.rules[j]!.origin.line;
        if (line === null) continue;
        if (!lines) {
          if (b) (entryAt.push(i), entryK.push(k), entryBy.push(b), entryAll.push(true));
          continue;
        }
        const e = lines.get(line);
        if (e === undefined) {
          lines.set(line, entryAt.length);
          entryAt.push(i);
          entryK.push(k);
          entryBy.push(b);
          entryAll.push(b !== undefined);
        } else entryAll[e] = entryAll[e]! && b !== undefined;
      }
    }
    const found: AnalysisDiagnostic[] = [];
    const foundBy: PolicyRule[] = [];
    const foundK: number[] = [];
    let made = 0;
    for (let x = 0; x < entryAt.length; x++) {
      const i = entryAt[x]!;
      const b = entryBy[x];
      if (!entryAll[x] || !b) continue;
      // A large file checked afresh is cut into steps too.
      if (++made % 500 === 0) yield;
      const rule = input.rules[i]!;
      const feedsThis = feedsAsk[i] === 1;
      const byDoc = docs.get(b.origin.path);
      byDocs.set(b.origin.path, byDoc?.document);
      const byLineNode = byDoc && b.origin.line !== null ? lineByNumber(byDoc.document, b.origin.line) : undefined;
      // A line node of an edited document that the edit did not touch is the same object: its
      // warning is the same object too while the broader rule stays where it was.
      const line = lineByNumber(doc.document, rule.origin.line!);
      if (!line) continue;
      const kept = presentedFor(presented, line, b, byLineNode, feedsThis, severity);
      if (kept) {
        found.push(kept);
        foundBy.push(b);
        foundK.push(entryK[x]!);
        continue;
      }
      const d = shadowDiagnostic(b, line.span, line.line, byLineNode, feedsThis, severity);
      presented.set(presentKey(line), { byPath: b.origin.path, byFile: b.origin.file, byLine: b.origin.line, bySpan: byLineNode?.span, feeds: feedsThis, d });
      found.push(d);
      foundBy.push(b);
      foundK.push(entryK[x]!);
    }
    cache.shadowFiles.set(path, { document: doc.document, severity, by, feeds, byDocs, found, foundBy, foundK, foundAt: foundAtOf(foundBy), shadowedBy, feedsAsk, runs: runs.map((r) => r.rules) });
    reportList(report, path, found);
    // A file checked afresh is a unit of work: a server answers requests before the next one.
    yield;
  }
}

/** The positions of warnings by the path of their broader rule. */
function foundAtOf(foundBy: readonly PolicyRule[]): Map<string, number[]> {
  const foundAt = new Map<string, number[]>();
  for (let k = 0; k < foundBy.length; k++) {
    const p = foundBy[k]!.origin.path;
    let list = foundAt.get(p);
    if (!list) foundAt.set(p, (list = []));
    list.push(k);
  }
  return foundAt;
}

/**
 * The key of a line's shadowed-rule warning in `ServiceAnalysisCache.presented`: its parsed rule,
 * which a line keeps when an edit above it moves it (the re-parse shifts the line's node and
 * shares the rule), else the node.
 */
function presentKey(line: LineNode): object {
  return line.kind === "rule" && line.rule ? line.rule : line;
}

/**
 * The warning made for this line before, when it says the same (the same broader rule at the same
 * place, the same ask flag and severity): the same object when the line did not move, else a copy
 * at the line's new place (which becomes the kept one).
 */
function presentedFor(presented: ServiceAnalysisCache["presented"], line: LineNode, by: PolicyRule, byLineNode: LineNode | undefined, feeds: boolean, severity: Severity): AnalysisDiagnostic | undefined {
  const hit = presented.get(presentKey(line));
  if (
    !hit ||
    hit.byPath !== by.origin.path ||
    hit.byFile !== by.origin.file ||
    hit.byLine !== by.origin.line ||
    hit.bySpan?.start !== byLineNode?.span.start ||
    hit.bySpan?.end !== byLineNode?.span.end ||
    hit.feeds !== feeds ||
    hit.d.severity !== severity
  )
    return undefined;
  const d = hit.d;
  if (d.span === line.span && d.line === line.line) return d;
  if (d.span.start === line.span.start && d.span.end === line.span.end && d.line === line.line) return d;
  hit.d = movedDiagnostic(d, line.span, line.line, d.related);
  return hit.d;
}

/** A copy of a diagnostic at another place or with other related places (an explicit literal: one object shape, made fast). */
function movedDiagnostic(d: AnalysisDiagnostic, span: Span, line: number, related: AnalysisDiagnostic["related"]): AnalysisDiagnostic {
  const out: AnalysisDiagnostic = { code: d.code, severity: d.severity, message: d.message, span, line };
  if ("file" in d) out.file = d.file;
  if ("help" in d) out.help = d.help;
  if (related !== undefined) out.related = related;
  if ("data" in d) out.data = d.data;
  return out;
}

/** Two rules built from the same parsed line of one file (the line moved in its document). */
function sameMovedLine(a: PolicyRule | undefined, b: PolicyRule | undefined): boolean {
  if (a === undefined || b === undefined || a.origin.path !== b.origin.path || a.origin.file !== b.origin.file) return false;
  const node = parsedRuleOf(a);
  return node !== undefined && node === parsedRuleOf(b);
}

/**
 * Two rules at the same place that are the same line: an unchanged line keeps its parsed rule. A
 * different rule now at the broader rule's old place (a line inserted above it) is another warning.
 */
function sameLineAtPlace(a: PolicyRule | undefined, b: PolicyRule | undefined): boolean {
  if (!samePlace(a, b)) return false;
  // A rule renumbered by the flattener shares its original's origin (see `parsedRuleOf`).
  if (a!.origin === b!.origin) return true;
  const node = parsedRuleOf(a!);
  return node !== undefined && node === parsedRuleOf(b!);
}

/** Two rules at the same place (file and line). */
function samePlace(a: PolicyRule | undefined, b: PolicyRule | undefined): boolean {
  return a !== undefined && b !== undefined && a.origin.path === b.origin.path && a.origin.file === b.origin.file && a.origin.line === b.origin.line;
}

/**
 * What the shadowed-rule warnings of one broader rule have in common: the message and the related
 * place. A one-shot analysis makes them once per broader rule and shares them (a large policy has
 * tens of thousands of warnings and a few thousand broader rules). Never mutated.
 */
interface ShadowShared {
  readonly message: string;
  readonly related: AnalysisDiagnostic["related"];
}

function shadowShared(by: PolicyRule, byLineNode: { span: Span; line: number } | undefined): ShadowShared {
  return {
    message: `rule never decides: the rule at ${by.origin.file}:${by.origin.line ?? "None"} matches every call it matches`,
    related: byLineNode ? [{ path: by.origin.path, span: byLineNode.span, line: byLineNode.line, message: "the broader rule" }] : undefined,
  };
}

/** The fix data of a shadowed-rule warning (shared: never mutated). */
const REMOVABLE: Readonly<Record<string, unknown>> = Object.freeze({ removable: true });
const NOT_REMOVABLE: Readonly<Record<string, unknown>> = Object.freeze({ removable: false });

/** The shadowed-rule warning of a line, with the broader rule as related information. */
function shadowDiagnostic(by: PolicyRule, span: Span, line: number, byLineNode: { span: Span; line: number } | undefined, feeds: boolean, severity: Severity, shared = shadowShared(by, byLineNode)): AnalysisDiagnostic {
  const help = feeds ? "it can still add or remove targets offered by `ask` rules" : "remove it or move it above the broader rule";
  const data = feeds ? NOT_REMOVABLE : REMOVABLE;
  // Every member in one literal (tens of thousands of these: members added later would each need a
  // property array besides the object).
  return shared.related
    ? { code: "shadowed-rule", severity, message: shared.message, span, line, help, related: shared.related, data }
    : { code: "shadowed-rule", severity, message: shared.message, span, line, help, data };
}

/** An `ask` rule whose target is `@default`, without `target=`, where no rule for the service offers any target. */
export const askWithoutTargets: AnalysisRule = {
  meta: { name: "ask-without-targets", severity: "warning", needsSystem: false, summary: "an `ask` rule can offer no target, so it always denies" },
  run(input, report, severity) {
    const { askWithoutTargets: flagged } = findingsOf(input);
    const docs = new Map(input.documents.map((d) => [d.path, d]));
    const seen = new Set<string>();
    for (let i = 0; i < input.rules.length; i++) {
      if (flagged[i] !== 1) continue;
      const r = input.rules[i]!;
      if (r.origin.line === null) continue;
      const key = `${r.origin.path}\0${r.origin.line}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const doc = docs.get(r.origin.path);
      const line = doc ? lineByNumber(doc.document, r.origin.line) : undefined;
      if (!line || line.kind !== "rule") continue;
      const span = line.targetWord?.span ?? line.span;
      report(
        r.origin.path,
        diag("ask-without-targets", severity, "ask rule can offer no target: `@default` adds none and no rule for this service adds any, so every call is denied", span, line.line, "add target=QUBE or a rule that allows some target"),
      );
    }
  },
};

/** Legacy `$` tokens in a new-format file are plain names there and never match. */
export const legacyTokenInNewFormat: AnalysisRule = {
  meta: { name: "legacy-token-in-new-format", perDocument: true, severity: "warning", needsSystem: false, summary: "a legacy `$` token in a new-format file is a plain name that never matches" },
  run(input, report, severity) {
    for (const doc of input.documents) {
      if (doc.document.syntax !== "policy") continue;
      const text = doc.document.text;
      // The next `$` of the text at or after the line looked at (-1: none left), so that a line
      // without one is passed over without its words (made on demand in a one-shot analysis).
      let dollar = text.indexOf("$");
      for (const line of doc.document.lines) {
        if (dollar < 0) break;
        if (line.kind !== "rule") continue;
        const span = line.lineSpan;
        if (dollar < span.start) dollar = text.indexOf("$", span.start);
        if (dollar < 0 || dollar >= span.end) continue;
        const found = (text: string, span: Span) =>
          report(doc.path, diag("legacy-token-in-new-format", severity, `legacy token ${code(text)} is a plain qube name in this file and never matches`, span, line.line, `write ${code("@" + text.slice(1))}`));
        if (line.sourceWord && line.sourceWord.text.charCodeAt(0) === 36) found(line.sourceWord.text, line.sourceWord.span);
        if (line.targetWord && line.targetWord.text.charCodeAt(0) === 36) found(line.targetWord.text, line.targetWord.span);
        for (const p of line.params) {
          if (p.value.charCodeAt(0) === 36) found(p.value, { start: p.span.end - p.value.length, end: p.span.end });
        }
        // A comma-separated legacy action (`allow,target=x`) is an invalid action here; the core reports it.
      }
    }
  },
};

/** A `.policy` file name with characters outside `[0-9a-z_.-]`: the engine then denies every call. */
export const filenameDisablesPolicy: AnalysisRule = {
  meta: { name: "filename-disables-policy", perDocument: true, severity: "error", needsSystem: false, summary: "a `.policy` file name with characters outside [0-9a-z_.-] disables the whole policy" },
  run(input, report, severity) {
    for (const doc of input.documents) {
      const name = basename(doc.path);
      if (!name.endsWith(".policy") || name.startsWith(".")) continue;
      if (!input.listedDirs.includes(dirname(doc.path))) continue;
      if (/^[0-9a-z_.-]*$/.test(name)) continue;
      const first = doc.document.lines[0];
      const span = first ? first.lineSpan : { start: 0, end: 0 };
      const fixed = fixFileName(name);
      // The engine's own code and text (as when the file is not open), on the first line.
      const d = diag(
        "invalid-filename",
        severity,
        `invalid filename: ${doc.path}`,
        span,
        1,
        `the engine rejects names with characters outside [0-9a-z_.-] and then denies every call; rename it to ${code(fixed)}`,
      );
      d.data = { rename: `${dirname(doc.path)}/${fixed}` };
      report(doc.path, d);
    }
  },
};

/** A file name the engine accepts: lowercase, other characters replaced by `-`. */
export function fixFileName(name: string): string {
  const stem = name.slice(0, -".policy".length);
  return stem.toLowerCase().replace(/[^0-9a-z_.-]/g, "-") + ".policy";
}

/** A rule whose source is `@dispvm:X` or `@dispvm:@tag:T`: the engine accepts it, but it never matches. */
export const dispvmNeverSource: AnalysisRule = {
  meta: { name: "dispvm-never-source", perDocument: true, severity: "warning", needsSystem: false, summary: "a `@dispvm:` token in the source column never matches any call" },
  run(input, report, severity) {
    eachRuleLine(input, (doc, line) => {
      const tok = line.rule!.source;
      if ((tok.kind !== "dispvm-template" && tok.kind !== "dispvm-tag") || !line.sourceWord) return;
      report(
        doc.path,
        diag("dispvm-never-source", severity, `${code(tok.text)} never matches as a source: the caller is always a qube name, so this rule never decides`, line.sourceWord.span, line.line, "use `@type:DispVM` (any disposable) or a `@tag:` that the disposables carry"),
      );
    });
  },
};

/** A service name that equals a standard Qubes service except for letter case: qrexec compares names exactly. */
export const serviceCaseMismatch: AnalysisRule = {
  meta: { name: "service-case-mismatch", perDocument: true, severity: "warning", needsSystem: false, summary: "a service name differs from a standard Qubes service only by letter case" },
  run(input, report, severity) {
    eachRuleLine(input, (doc, line) => {
      const service = line.rule!.service;
      if (service === null) return;
      const real = SERVICES_BY_LOWER.get(service.toLowerCase());
      if (real === undefined || real === service || !line.serviceWord) return;
      const d = diag("service-case-mismatch", severity, `service ${code(service)} is not ${code(real)}: qrexec compares service names exactly, so this rule never matches calls of ${code(real)}`, line.serviceWord.span, line.line, `did you mean \`${real}\`?`);
      d.data = { replacement: real };
      report(doc.path, d);
    });
  },
};

const SERVICES_BY_LOWER = new Map(STANDARD_SERVICES.map((s) => [s.name.toLowerCase(), s.name]));

/**
 * A rule for a concrete service whose calls can only end at qubes that do not provide it: every
 * qube it can call advertises its services (`supported_rpc` in the system model) and none lists
 * this one, so every call it lets through fails at the target. Never for rules that can reach
 * dom0 or a qube whose services are unknown (see `rpc-provided.ts`). A whole-policy rule: what an
 * `ask` can offer comes from every file.
 */
/** The message and help of a `service-not-provided` finding, made once per cached verdict. */
type NotProvidedTexts = { message: string; help: string; data: { qubes: string[] } };
/** By verdict, then by service (the parser's strings: no key is built per finding), for calls and for offers. */
const notProvidedCache = new WeakMap<ProvidedVerdict, Map<string, { call?: NotProvidedTexts; ask?: NotProvidedTexts }>>();

function notProvidedTexts(verdict: ProvidedVerdict, service: string, offer: boolean): NotProvidedTexts {
  let byService = notProvidedCache.get(verdict);
  if (!byService) notProvidedCache.set(verdict, (byService = new Map()));
  let both = byService.get(service);
  if (!both) byService.set(service, (both = {}));
  let t = offer ? both.ask : both.call;
  if (!t) {
    const qubes = verdict.provided ? [] : verdict.qubes;
    // An ask rule's qubes are the targets the dialog can offer, not all of which the user may pick.
    const shown = qubes.slice(0, 3).map(code).join(", ") + (qubes.length > 3 ? ` and ${qubes.length - 3} more` : "") + (offer ? (qubes.length === 1 ? " (the target it offers)" : " (the targets it offers)") : "");
    t = {
      message: `no qube this rule can call provides ${code(service)}: ${shown} ${qubes.length === 1 ? "does" : "do"} not advertise it, so the calls it lets through fail at the target`,
      help: `install the service (\`/etc/qubes-rpc/${service}\`) in the template of the qube that should answer, then let its agent advertise it (\`qvm-run --service -u root TEMPLATE qubes.PostInstall\`); or check the service name and the target`,
      // One data object per verdict and text: findings that share it cost one object each.
      data: { qubes },
    };
    if (offer) both.ask = t;
    else both.call = t;
  }
  return t;
}

/** One file's `service-not-provided` findings and what they were made from (see `notProvidedByFile`). */
interface FileProvided {
  document: PolicyDocument;
  severity: Severity;
  /** The keys of its runs of rules (a renumbered run has the key of the run it came from: the same findings). */
  runs: readonly object[];
  /** The services of the file's rules, with the state their verdicts came from. */
  deps: Array<[string, ServiceProvided | undefined]>;
  found: AnalysisDiagnostic[];
}

/** The findings of each file, per verdict store (so per policy and system model). */
const providedFiles = new WeakMap<ProvidedAnalysis, Map<string, FileProvided>>();

/** `rules` cut into runs of consecutive rules of one file (what `FlatPolicy.segments` gives). */
function runsByPath(rules: readonly PolicyRule[]): PolicyRule[][] {
  const runs: PolicyRule[][] = [];
  let run: PolicyRule[] | undefined;
  for (const r of rules) {
    if (!run || run[0]!.origin.path !== r.origin.path) runs.push((run = []));
    run.push(r);
  }
  return runs;
}

/**
 * The `service-not-provided` findings file by file: the verdicts are brought up to date first
 * (service by service, see `ProvidedAnalysis`), then a file whose document, runs of rules and
 * services' verdict states are the same objects as in the last run reports the same list (the
 * same objects); the others are made again. A line loaded more than once (a file included twice)
 * is reported only when every copy is.
 */
function* notProvidedByFile(input: AnalysisInput, report: Report, severity: Severity): Generator<void, void, void> {
  const system = input.system!;
  if (!hasSupportedRpc(system)) return;
  const analysis = providedAnalysis(input.serviceCache ?? null, system);
  const runs = input.segments ?? runsByPath(input.rules);
  const infos = input.serviceCache?.segmentInfo;
  // A renumbered run shares its segment info with the run it came from: it groups the same, and
  // its findings are the same (its rules differ only by their index in the list).
  const keyOf = (run: readonly PolicyRule[]): object => infos?.get(run) ?? run;
  yield* analysis.update(runs, keyOf);
  let files = providedFiles.get(analysis);
  if (!files) providedFiles.set(analysis, (files = new Map()));
  const docs = new Map(input.documents.map((d) => [d.path, d]));
  const byPath = new Map<string, { runs: Array<readonly PolicyRule[]>; keys: object[] }>();
  for (const run of runs) {
    if (!run.length) continue;
    const path = run[0]!.origin.path;
    let list = byPath.get(path);
    if (!list) byPath.set(path, (list = { runs: [], keys: [] }));
    list.runs.push(run);
    list.keys.push(keyOf(run));
  }
  for (const path of [...files.keys()]) if (!byPath.has(path)) files.delete(path);
  for (const [path, { runs: pathRuns, keys }] of byPath) {
    const doc = docs.get(path);
    if (!doc) {
      files.delete(path);
      continue;
    }
    const prev = files.get(path);
    const sameInputs = prev !== undefined && prev.document === doc.document && prev.severity === severity && prev.runs.length === keys.length && prev.runs.every((r, k) => r === keys[k]);
    // The services whose verdicts changed since the file's findings were made.
    let changed: Set<string> | undefined;
    if (sameInputs) for (const [service, st] of prev.deps) if (analysis.serviceState(service) !== st) (changed ??= new Set()).add(service);
    if (sameInputs && !changed) {
      reportList(report, path, prev.found);
      continue;
    }
    // One run of a file in the new syntax, before and now (each line loaded once, its service its
    // own): only the lines that are new and the rules of the services whose verdicts changed are
    // looked at again; the other findings are the previous ones, moved with their lines.
    if (prev && prev.severity === severity && pathRuns.length === 1 && prev.runs.length === 1 && doc.document.syntax === "policy" && prev.document.syntax === "policy" && loadedOnce(pathRuns[0]!)) {
      if (!sameInputs) for (const [service, st] of prev.deps) if (analysis.serviceState(service) !== st) (changed ??= new Set()).add(service);
      const made = yield* notProvidedChanged(doc.document, pathRuns[0]!, prev, changed, analysis, severity);
      files.set(path, { document: doc.document, severity, runs: keys, deps: made.deps, found: made.found });
      reportList(report, path, made.found);
      yield;
      continue;
    }
    const lines = doc.document.lines;
    // By line number: 0 not seen, 1 found so far, 2 provided by some copy.
    const state = new Uint8Array((lines.length ? Math.max(lines.length, lines[lines.length - 1]!.line) : 0) + 1);
    const firsts: Array<{ rule: PolicyRule; verdict: ProvidedVerdict & { provided: false } }> = [];
    const deps = new Map<string, ServiceProvided | undefined>();
    let work = 0;
    for (const run of pathRuns) {
      for (const r of run) {
        const at = r.origin.line;
        if (r.service === null || r.action === "deny") continue;
        if (!deps.has(r.service)) deps.set(r.service, analysis.serviceState(r.service));
        if (at === null || at >= state.length || state[at] === 2) continue;
        const verdict = analysis.verdict(r);
        if (verdict.provided) state[at] = 2;
        else if (state[at] === 0) {
          state[at] = 1;
          firsts.push({ rule: r, verdict });
        }
        if (++work % 5000 === 0) yield;
      }
    }
    const found: AnalysisDiagnostic[] = [];
    for (const { rule: r, verdict } of firsts) {
      if (state[r.origin.line!] !== 1) continue;
      const line = lineByNumber(doc.document, r.origin.line!);
      if (!line || line.kind !== "rule") continue;
      const span = line.serviceWord?.span ?? line.targetWord?.span ?? line.span;
      const t = notProvidedTexts(verdict, r.service!, isOffer(r));
      const d = diag("service-not-provided", severity, t.message, span, line.line, t.help);
      d.data = t.data;
      found.push(d);
    }
    files.set(path, { document: doc.document, severity, runs: keys, deps: [...deps], found });
    reportList(report, path, found);
    yield;
  }
}

/**
 * Whether a run holds each line of its file at most once: its lines strictly increase (one load of
 * a file; two loads of it in a row, which `runsByPath` makes one run, start again).
 */
function loadedOnce(run: readonly PolicyRule[]): boolean {
  let last = 0;
  for (const r of run) {
    const at = r.origin.line;
    if (at === null || at <= last) return false;
    last = at;
  }
  return true;
}

/**
 * A file's `service-not-provided` findings from those of its previous version `prev` (both one run
 * of a file in the new syntax, so a line is loaded once and names its own service). A rule's
 * verdict depends on its parsed line and its service's verdicts only, so a line of the previous
 * version (its parsed rule, which a line an edit did not touch keeps, see `reparse.ts`) whose
 * service is not in `changed` keeps its finding or its lack of one: the previous object, or a copy
 * at the line's new place. The other rules are looked at again. Same list as a full pass.
 */
function* notProvidedChanged(
  document: PolicyDocument,
  run: readonly PolicyRule[],
  prev: FileProvided,
  changed: ReadonlySet<string> | undefined,
  analysis: ProvidedAnalysis,
  severity: Severity,
): Generator<void, { found: AnalysisDiagnostic[]; deps: Array<[string, ServiceProvided | undefined]> }, void> {
  const before = prev.document;
  // The previous findings by parsed rule.
  const byNode = new Map<RuleNode, AnalysisDiagnostic>();
  for (const d of prev.found) {
    const node = before.lines[d.line - 1];
    if (node && node.kind === "rule" && node.rule && node.line === d.line) byNode.set(node.rule, d);
  }
  // The parsed rules of the previous version (every one when the document is the same).
  let work = 0;
  let known: Set<RuleNode> | undefined;
  if (before !== document) {
    known = new Set();
    for (const line of before.lines) {
      if (line.kind === "rule" && line.rule) known.add(line.rule);
      if (++work % 2000 === 0) yield;
    }
  }
  const deps = new Map<string, ServiceProvided | undefined>();
  const found: AnalysisDiagnostic[] = [];
  for (const r of run) {
    if (r.service === null || r.action === "deny") continue;
    if (!deps.has(r.service)) deps.set(r.service, analysis.serviceState(r.service));
    const at = r.origin.line;
    if (at === null) continue;
    if (++work % 2000 === 0) yield;
    const line = lineByNumber(document, at);
    if (!line || line.kind !== "rule") continue;
    const span = line.serviceWord?.span ?? line.targetWord?.span ?? line.span;
    const node = line.rule;
    if (node && !changed?.has(r.service) && (known === undefined || known.has(node))) {
      const d = byNode.get(node);
      if (d) found.push(d.line === line.line && d.span.start === span.start && d.span.end === span.end ? d : movedDiagnostic(d, span, line.line, d.related));
      continue;
    }
    const verdict = analysis.verdict(r);
    if (verdict.provided) continue;
    const t = notProvidedTexts(verdict, r.service, isOffer(r));
    const d = diag("service-not-provided", severity, t.message, span, line.line, t.help);
    d.data = t.data;
    found.push(d);
  }
  return { found, deps: [...deps] };
}

export const serviceNotProvided: AnalysisRule = {
  meta: { name: "service-not-provided", severity: "info", needsSystem: true, summary: "no qube that a rule can call advertises the rule's service" },
  steps(input, report, severity) {
    return notProvidedByFile(input, report, severity);
  },
  run(input, report, severity) {
    const steps = notProvidedByFile(input, report, severity);
    while (!steps.next().done);
  },
};

/**
 * `service-not-provided` for the rules of one file checked on its own (`qkit policy check FILE`),
 * with the default severity: only the rules whose calls do not depend on other rules (`allow`, and
 * `ask` with `target=`). What an `ask` without `target=` offers comes from every rule of its
 * service in the whole policy, which a file alone does not show, so such rules are left out (a
 * finding made from the file's rules alone could be false in the policy that includes it).
 * `rules` are the file's rules with their service (an include-service file's from its include);
 * `doc` is the file, at the path of the rules' origin.
 */
export function serviceNotProvidedAlone(rules: readonly PolicyRule[], doc: AnalyzedDocument, system: SystemInfo): AnalysisDiagnostic[] {
  const out: AnalysisDiagnostic[] = [];
  const input: AnalysisInput = { rules: rules.filter((r) => r.origin.path === doc.path && !isOffer(r)), documents: [doc], system, listedDirs: [] };
  serviceNotProvided.run(input, (_path, d) => out.push(d), serviceNotProvided.meta.severity);
  return out;
}

/** The per-document rules whose findings depend on the whole document, not on one line (see `documentFindings`). */
const DOCUMENT_LEVEL: ReadonlySet<AnalysisRule> = new Set([filenameDisablesPolicy]);

/** Every analysis rule, in reporting order. */
export const ANALYSIS_RULES: readonly AnalysisRule[] = [
  unknownQube,
  unknownTag,
  unknownType,
  unknownDispvmTemplate,
  redirectTargetMissing,
  shadowedRule,
  askWithoutTargets,
  legacyTokenInNewFormat,
  filenameDisablesPolicy,
  dispvmNeverSource,
  serviceCaseMismatch,
  dispvmWithoutDefault,
  serviceNotProvided,
];

/**
 * Findings of the per-document rules, cached by document object: a document
 * that did not change (same parse) is not checked again. Keyed further by the
 * system model and the configuration, which the findings depend on.
 */
export type AnalysisCache = WeakMap<PolicyDocument, AnalysisCacheEntry>;

/** @internal One document's per-document findings, with what they were computed under. */
export interface AnalysisCacheEntry {
  system: SystemInfo | null;
  config: string;
  path: string;
  found: Array<[string, AnalysisDiagnostic]>;
  /** The same findings as one list per path (see `listsOf`). */
  lists?: Map<string, AnalysisDiagnostic[]>;
  /** The document they were computed for, and where each per-document rule's findings end in `found` (for the next version of the document). */
  document?: PolicyDocument;
  ruleEnds?: number[];
}

/** The last entry of each path, per cache: an edited document's entry is computed from its previous version's. */
const lastEntries = new WeakMap<AnalysisCache, Map<string, AnalysisCacheEntry>>();

/** Lines or findings {@link documentFindings} looks at between two steps. */
const DOCUMENT_WORK = 2000;

/**
 * The per-document findings of a document, from the findings of its previous version where its
 * lines are the same: the rules other than `filenameDisablesPolicy` look at one line at a time
 * (with the document's path and syntax, the system and the settings), and a line that an edit did
 * not touch keeps its parsed rule (`reparse.ts` shares it with the moved line's node), so its
 * findings are the previous ones moved with it. Only the other lines are checked. Returns
 * `undefined` when a rule throws (the caller then checks the whole document, which reports it).
 * The findings come in the order a whole-document check gives: rule by rule, line by line.
 */
function* documentFindings(
  doc: AnalyzedDocument,
  prev: AnalysisCacheEntry | undefined,
  rules: readonly AnalysisRule[],
  run: (rule: AnalysisRule, input: AnalysisInput, report: Report) => boolean,
  input: AnalysisInput,
): Generator<void, { found: Array<[string, AnalysisDiagnostic]>; ruleEnds: number[] } | undefined, void> {
  // Lines and findings looked at since the last step: a long document is cut into steps.
  let work = 0;
  const document = doc.document;
  type Item = { rule: number; path: string; d: AnalysisDiagnostic };
  // The findings of the previous version's rule lines that had some, by parsed rule, with that
  // line's place (most lines have none: no object is made for them). A parsed rule belongs to one line.
  const old = new Map<RuleNode, { base: number; line: number; items: Item[] }>();
  const before = prev?.document;
  const incremental = before !== undefined && prev!.ruleEnds !== undefined && before.syntax === document.syntax && prev!.path === doc.path;
  /**
   * Whether a rule line of this version was a line of the previous one. An edit re-parses the lines
   * it touched and keeps the others' parsed rules, at the same index before it and shifted by the
   * change in line count after it: so a kept line is found at one of those two places. A line
   * found at neither (the rare version two edits away) is checked as a new one, which is always right.
   */
  const oldLines = incremental ? before.lines : [];
  const shift = document.lines.length - oldLines.length;
  const wasLine = (i: number, rule: RuleNode): boolean => {
    const a = oldLines[i];
    if (a !== undefined && a.kind === "rule" && a.rule === rule) return true;
    const b = oldLines[i - shift];
    return b !== undefined && b.kind === "rule" && b.rule === rule;
  };
  if (incremental) {
    let start = 0;
    for (let r = 0; r < rules.length; r++) {
      const end = prev!.ruleEnds![r]!;
      if (!DOCUMENT_LEVEL.has(rules[r]!)) {
        for (let i = start; i < end; i++) {
          if (++work >= DOCUMENT_WORK) {
            work = 0;
            yield;
          }
          const [path, d] = prev!.found[i]!;
          const node = before.lines[d.line - 1];
          if (!node || node.kind !== "rule" || !node.rule || node.line !== d.line) continue;
          let o = old.get(node.rule);
          if (!o) old.set(node.rule, (o = { base: node.lineSpan.start, line: node.line, items: [] }));
          o.items.push({ rule: r, path, d });
        }
      }
      start = end;
    }
  }
  // The lines to check, and the previous findings of the others at their new place.
  const fresh: LineNode[] = [];
  const kept: Item[] = [];
  const docLines = document.lines;
  for (let i = 0; i < docLines.length; i++) {
    const line = docLines[i]!;
    if (++work >= DOCUMENT_WORK) {
      work = 0;
      yield;
    }
    if (line.kind !== "rule") continue;
    if (!line.rule || !wasLine(i, line.rule)) {
      fresh.push(line);
      continue;
    }
    // A line of the previous version: its findings (if any) moved with it.
    const o = old.get(line.rule);
    if (!o) continue;
    const by = line.lineSpan.start - o.base;
    const lines = line.line - o.line;
    for (const it of o.items) {
      const d = it.d;
      kept.push(by === 0 && lines === 0 ? it : { rule: it.rule, path: it.path, d: movedDiagnostic(d, { start: d.span.start + by, end: d.span.end + by }, d.line + lines, d.related) });
    }
  }
  const lineInput: AnalysisInput = { ...input, documents: [{ path: doc.path, document: { ...document, lines: fresh } }] };
  const docInput: AnalysisInput = { ...input, documents: [doc] };
  const found: Array<[string, AnalysisDiagnostic]> = [];
  const ruleEnds: number[] = [];
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r]!;
    const mine: Array<[string, AnalysisDiagnostic]> = [];
    if (!run(rule, DOCUMENT_LEVEL.has(rule) ? docInput : lineInput, (path, d) => mine.push([path, d]))) return undefined;
    if (DOCUMENT_LEVEL.has(rule) || kept.length === 0) found.push(...mine);
    else {
      // Both in line order, and a line is either kept or checked: merge by line.
      let k = 0;
      for (const it of kept) {
        if (it.rule !== r) continue;
        while (k < mine.length && mine[k]![1].line < it.d.line) found.push(mine[k++]!);
        found.push([it.path, it.d]);
      }
      while (k < mine.length) found.push(mine[k++]!);
    }
    ruleEnds.push(found.length);
  }
  return { found, ruleEnds };
}

/** The findings of a per-document cache entry as one list per path, in report order (made once per entry). */
function listsOf(entry: { found: Array<[string, AnalysisDiagnostic]>; lists?: Map<string, AnalysisDiagnostic[]> }): Map<string, AnalysisDiagnostic[]> {
  if (entry.lists) return entry.lists;
  const lists = new Map<string, AnalysisDiagnostic[]>();
  for (const [path, d] of entry.found) {
    let list = lists.get(path);
    if (!list) lists.set(path, (list = []));
    list.push(d);
  }
  return (entry.lists = lists);
}

/**
 * @internal What {@link runAnalysisSteps} reported for each path in its last run with a
 * service cache: the pieces (lists reported whole, and runs of single findings) and the list made
 * of them. A path whose pieces are the same gets the same list.
 */
export type AnalysisOutputs = Map<string, { parts: ReadonlyArray<readonly AnalysisDiagnostic[]>; loose: ReadonlySet<readonly AnalysisDiagnostic[]>; list: readonly AnalysisDiagnostic[] }>;

function sameParts(
  a: ReadonlyArray<readonly AnalysisDiagnostic[]>,
  aLoose: ReadonlySet<readonly AnalysisDiagnostic[]>,
  b: ReadonlyArray<readonly AnalysisDiagnostic[]>,
  bLoose: ReadonlySet<readonly AnalysisDiagnostic[]>,
): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    // Runs of single findings are new arrays each time: the same findings make the same run.
    if (!aLoose.has(x) || !bLoose.has(y) || x.length !== y.length) return false;
    for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) return false;
  }
  return true;
}

/**
 * Runs every enabled analysis rule. A rule that throws does not stop the
 * others: it becomes an `internal-error` diagnostic on the first document.
 * Returns the diagnostics by absolute path. With a `cache`, per-document
 * rules skip documents checked before under the same system and settings.
 */
export function runAnalysis(input: AnalysisInput, config: AnalysisConfig = {}, cache?: AnalysisCache): Map<string, AnalysisDiagnostic[]> {
  const steps = runAnalysisSteps(input, config, cache);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

/**
 * {@link runAnalysis} as a sequence of steps: it yields after each document
 * checked afresh, every few thousand lines inside a long one, and inside the
 * per-service analyses, so that a caller can spread the work over time or
 * abandon it.
 */
export function* runAnalysisSteps(input: AnalysisInput, config: AnalysisConfig = {}, cache?: AnalysisCache): Generator<void, Map<string, AnalysisDiagnostic[]>, void> {
  // Each path's findings as pieces: lists reported whole (kept by identity) and runs of single findings.
  const parts = new Map<string, Array<readonly AnalysisDiagnostic[]>>();
  const loose = new Set<readonly AnalysisDiagnostic[]>();
  const report: ListReport = (path, d) => {
    let ps = parts.get(path);
    if (!ps) parts.set(path, (ps = []));
    let last = ps[ps.length - 1];
    if (!last || !loose.has(last)) {
      loose.add((last = []));
      ps.push(last);
    }
    (last as AnalysisDiagnostic[]).push(d);
  };
  report.list = (path, list) => {
    if (!list.length) return;
    let ps = parts.get(path);
    if (!ps) parts.set(path, (ps = []));
    ps.push(list);
  };
  const guarded = (rule: AnalysisRule, ruleInput: AnalysisInput, rep: Report) => {
    const setting = config[rule.meta.name];
    if (setting === "off") return;
    if (rule.meta.needsSystem && !input.system) return;
    try {
      rule.run(ruleInput, rep, setting ?? rule.meta.severity);
    } catch (e) {
      const first = input.documents[0];
      if (first) report(first.path, diag("internal-error", "error", `internal error in analysis rule ${rule.meta.name}: ${String(e).split("\n")[0]}`, { start: 0, end: 0 }, 1));
    }
  };
  const configKey = JSON.stringify(config) + "\0" + input.listedDirs.join("\0");
  const perDocument = ANALYSIS_RULES.filter((r) => r.meta.perDocument);
  // A rule that is off or needs a missing system model reports nothing (as `guarded` does).
  const quiet = (rule: AnalysisRule, ruleInput: AnalysisInput, rep: Report): boolean => {
    const setting = config[rule.meta.name];
    if (setting === "off" || (rule.meta.needsSystem && !input.system)) return true;
    try {
      rule.run(ruleInput, rep, setting ?? rule.meta.severity);
      return true;
    } catch {
      return false;
    }
  };
  let last = cache ? lastEntries.get(cache) : undefined;
  if (cache && !last) lastEntries.set(cache, (last = new Map()));
  for (const doc of input.documents) {
    const hit = cache?.get(doc.document);
    let entry: AnalysisCacheEntry;
    if (hit && hit.system === input.system && hit.config === configKey && hit.path === doc.path) entry = hit;
    else {
      const prev = last?.get(doc.path);
      const same = prev && prev.system === input.system && prev.config === configKey ? prev : undefined;
      const made = yield* documentFindings(doc, same, perDocument, quiet, input);
      if (made) entry = { system: input.system, config: configKey, path: doc.path, found: made.found, document: doc.document, ruleEnds: made.ruleEnds };
      else {
        const found: Array<[string, AnalysisDiagnostic]> = [];
        const docInput: AnalysisInput = { ...input, documents: [doc] };
        for (const rule of perDocument) guarded(rule, docInput, (path, d) => found.push([path, d]));
        entry = { system: input.system, config: configKey, path: doc.path, found };
      }
      cache?.set(doc.document, entry);
      yield;
    }
    last?.set(doc.path, entry);
    for (const [path, list] of listsOf(entry)) report.list(path, list);
  }
  if (last && last.size > input.documents.length) {
    const live = new Set(input.documents.map((d) => d.path));
    for (const p of [...last.keys()]) if (!live.has(p)) last.delete(p);
  }
  // The whole-policy rules share the per-service findings; compute them step by step first.
  if (input.serviceCache && (config["shadowed-rule"] !== "off" || config["ask-without-targets"] !== "off")) {
    try {
      // The same rule list as the last run (an edit that changed no rule): the same findings, none recomputed.
      const last = input.serviceCache.last;
      if (last && last.rules === input.rules && last.findings.recomputed.length) input.serviceCache.last = { ...last, findings: { ...last.findings, recomputed: [] } };
      yield* serviceFindingsSteps(input.rules, input.serviceCache, input.segments);
    } catch {
      // The rules report the failure themselves below.
    }
  }
  // The whole-policy rules, one step each or in their own steps (a server answers other requests in between).
  for (const rule of ANALYSIS_RULES) {
    if (rule.meta.perDocument) continue;
    if (rule.steps) yield* guardedSteps(rule);
    else guarded(rule, input, report);
    yield;
  }
  // The list of each path: the previous run's while its pieces are the same.
  const out = new Map<string, AnalysisDiagnostic[]>();
  const before = input.serviceCache?.outputs;
  const outputs: AnalysisOutputs = new Map();
  for (const [path, ps] of parts) {
    const prev = before?.get(path);
    let list: readonly AnalysisDiagnostic[];
    if (prev && sameParts(prev.parts, prev.loose, ps, loose)) list = prev.list;
    else list = ps.length === 1 ? ps[0]!.slice() : ([] as AnalysisDiagnostic[]).concat(...ps);
    out.set(path, list as AnalysisDiagnostic[]);
    if (input.serviceCache) outputs.set(path, { parts: ps, loose, list });
  }
  if (input.serviceCache) input.serviceCache.outputs = outputs;
  return out;

  function* guardedSteps(rule: AnalysisRule): Generator<void, void, void> {
    const setting = config[rule.meta.name];
    if (setting === "off") return;
    if (rule.meta.needsSystem && !input.system) return;
    const failed = (e: unknown) => {
      const first = input.documents[0];
      if (first) report(first.path, diag("internal-error", "error", `internal error in analysis rule ${rule.meta.name}: ${String(e).split("\n")[0]}`, { start: 0, end: 0 }, 1));
    };
    let steps: Generator<void, void, void>;
    try {
      steps = rule.steps!(input, report, setting ?? rule.meta.severity);
    } catch (e) {
      return failed(e);
    }
    for (;;) {
      try {
        if (steps.next().done) return;
      } catch (e) {
        return failed(e);
      }
      yield;
    }
  }
}
