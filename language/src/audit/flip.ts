/**
 * What would flip a decision: the one-line edits of the policy (remove a
 * rule, change a rule's action, add a rule before a line) that change how a
 * call is decided. Every candidate is applied to the policy's files, the
 * whole policy is loaded again and the call re-decided by the evaluator;
 * only edits that load and change the decision (as the diff compares:
 * action, allow target, offered targets) are kept, with the new decision.
 */
import { evaluate, explain } from "../eval/evaluate.js";
import type { Decision, PolicyRequest, SystemInfo } from "../eval/types.js";
import { loadPolicy } from "../loader/load.js";
import { POLICY_DIR, type CompiledPolicy, type LoadedFile, type LoadOptions, type PolicyFileSystem, type PolicyRule } from "../loader/types.js";
import { printRule, ruleParams } from "../syntax/print.js";
import type { ActionName, RuleNode } from "../syntax/tree.js";
import { decisionsDiffer } from "./diff.js";

/** One edit of one line. */
export type FlipEdit =
  | { kind: "remove"; file: string; path: string; line: number; rule: string }
  | { kind: "change-action"; file: string; path: string; line: number; rule: string; action: ActionName; newRule: string }
  | {
      kind: "add";
      file: string;
      path: string;
      /** The new rule goes before this line (1-based; one past the end appends). */
      line: number;
      newRule: string;
      /** The file does not exist yet (the policy has no file in the current syntax): the rule is its only line. */
      newFile?: boolean;
    };

/** An edit that changes the decision, with the decision after it. */
export interface FlipSuggestion {
  edit: FlipEdit;
  /** One line: `remove 30-user.policy:13: …`, `change 30-user.policy:13 to: …`, `add before 30-user.policy:13: …`, `add in a new file 30-user.policy: …`. */
  text: string;
  /** The decision of the edited policy, exactly as it decides (its rule lines are those of the edited copy). */
  after: Decision;
  /**
   * The same decision with its deciding rule named by the user's lines (the
   * policy as it is, not the edited copy): what to show. When the added rule
   * decides, `rule.line` is null and {@link afterRule} says so.
   */
  afterInUserLines: Decision;
  /** The deciding rule in words: `30-user.policy:14` (the user's line), `the new rule`, `the changed rule, 30-user.policy:13`. */
  afterRule: string;
}

/** The answer of {@link flipDecision}. */
export interface FlipResult {
  request: PolicyRequest;
  before: Decision;
  suggestions: FlipSuggestion[];
  /** Candidates tried. */
  tried: number;
  /** Candidates that did not load (the engine's message), or left the decision as it was, by text. */
  rejected: { text: string; why: string }[];
}

/** Where the policy came from: the file system and the options it was loaded with. */
export interface FlipSource {
  fs: PolicyFileSystem;
  loadOptions?: LoadOptions;
}

function splitLines(text: string, newlines: LoadedFile["newlines"]): string[] {
  return text.split(newlines === "universal" ? /\r\n|\n|\r/ : /\n/);
}

/** The text of `file` with the edit applied (lines joined with `\n`). */
function applyEdit(file: LoadedFile, edit: FlipEdit): string {
  const lines = splitLines(file.text, file.newlines);
  const i = edit.line - 1;
  if (edit.kind === "remove") lines.splice(i, 1);
  else if (edit.kind === "change-action") lines[i] = edit.newRule;
  else lines.splice(Math.min(i, lines.length), 0, edit.newRule);
  return lines.join("\n");
}

/** A file system that shows `text` at `path` (a file it lists in its directory, if it is new there) and the rest of `base` unchanged. */
function overlay(base: PolicyFileSystem, path: string, text: string): PolicyFileSystem {
  const hit = (p: string) => p === path || (base.realPath ? base.realPath(p) === path : false);
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash);
  const name = path.slice(slash + 1);
  const fs: PolicyFileSystem = {
    stat: (p) => (hit(p) ? "file" : base.stat(p)),
    readDir: (p) => {
      const names = base.readDir(p);
      return p === dir && names !== undefined && !names.includes(name) ? [...names, name] : names;
    },
    readFile: (p) => (hit(p) ? text : base.readFile(p)),
  };
  if (base.realPath) fs.realPath = (p) => base.realPath!(p);
  return fs;
}

function withAction(rule: RuleNode, action: ActionName): RuleNode {
  const next: RuleNode = { ...rule, action, notify: action === "deny", rawParams: [] };
  if (action === "deny") {
    next.redirect = null;
    next.defaultTarget = null;
    next.user = null;
    next.autostart = true;
  } else if (action === "allow") next.defaultTarget = null;
  next.rawParams = ruleParams(next);
  return next;
}

function ruleText(r: PolicyRule): string {
  return printRule(r, " ");
}

function where(file: string, line: number): string {
  return `${file}:${line}`;
}

/**
 * A decision of the edited policy with its rule named by the user's lines:
 * in the edited file, lines after a removed rule move down one, lines after
 * an added rule up one; the added rule itself has no line of the user's.
 */
function inUserLines(d: Decision, edit: FlipEdit, policyPath: string): { decision: Decision; rule: string } {
  const ref = d.rule;
  if (!ref) return { decision: d, rule: "the engine" };
  const shown = (line: number | null) => `${ref.file}:${line ?? "None"}`;
  if (ref.file !== edit.file || ref.line === null) return { decision: d, rule: shown(ref.line) };
  let line: number | null = ref.line;
  let rule: string;
  if (edit.kind === "remove") {
    if (line >= edit.line) line++;
    rule = shown(line);
  } else if (edit.kind === "add") {
    if (line === edit.line) line = null;
    else if (line > edit.line) line--;
    rule = line === null ? "the new rule" : shown(line);
  } else rule = line === edit.line ? `the changed rule, ${shown(line)}` : shown(line);
  if (line === ref.line) return { decision: d, rule };
  const decision = { ...d, rule: { file: ref.file, line } } as Decision;
  // A deny's message names the rule as the daemon does (`denied by policy PATH:LINE`).
  if (decision.ok && decision.action === "deny" && d.ok && d.action === "deny") {
    const from = `${policyPath}:${ref.line}`;
    if (d.message.endsWith(from)) decision.message = line === null ? `${d.message.slice(0, -from.length)}${policyPath} (the new rule, before line ${edit.line})` : `${d.message.slice(0, -from.length)}${policyPath}:${line}`;
  }
  return { decision, rule };
}

/** The file a new rule goes in when the policy has no file in the current syntax (the name the Qubes documentation gives users' own rules). */
const NEW_FILE = "30-user.policy";

/** An empty file at `path`, for {@link applyEdit} to add the rule to. */
function newFileAt(path: string, file: string): LoadedFile {
  return { path, file, syntax: "policy", newlines: "universal", text: "" };
}

/**
 * The one-line edits that change the decision of `request`, each checked by
 * loading the edited policy and deciding the call again. Never throws.
 */
export function flipDecision(policy: CompiledPolicy, source: FlipSource, request: PolicyRequest, system: SystemInfo): FlipResult {
  const before = evaluate(policy, request, system);
  const ex = explain(policy, request, system);
  const result: FlipResult = { request, before, suggestions: [], tried: 0, rejected: [] };
  const fileOf = (path: string) => policy.files.find((f) => f.path === path);
  const candidates: FlipEdit[] = [];
  const decidingRule = ex.decidingRule ?? (before.rule && before.rule.line !== null ? policy.rules.find((r) => r.origin.file === before.rule!.file && r.origin.line === before.rule!.line) : undefined);
  const seenRemove = new Set<string>();
  // A rule as the file writes it (a legacy line keeps its `$` tokens and `,` parameters), else as printed.
  const ownText = (r: PolicyRule): string => {
    const f = fileOf(r.origin.path);
    const line = f && r.origin.line !== null ? splitLines(f.text, f.newlines)[r.origin.line - 1]?.trim() : undefined;
    return line || ruleText(r);
  };
  const remove = (r: PolicyRule) => {
    if (r.origin.line === null) return;
    const key = `${r.origin.path}\0${r.origin.line}`;
    if (seenRemove.has(key)) return;
    seenRemove.add(key);
    candidates.push({ kind: "remove", file: r.origin.file, path: r.origin.path, line: r.origin.line, rule: ownText(r) });
  };
  if (decidingRule) remove(decidingRule);
  for (const c of ex.askContributions ?? []) remove(c.rule);
  const current: ActionName | "refused" = before.ok ? before.action : "refused";
  const decidingFile = decidingRule ? fileOf(decidingRule.origin.path) : undefined;
  if (decidingRule && decidingRule.origin.line !== null && decidingFile) {
    for (const action of ["allow", "ask", "deny"] as const) {
      if (action === decidingRule.action) continue;
      const next = withAction(decidingRule, action);
      // A file in the service syntax (`!include-service`, 4.0 files) has no service and argument columns:
      // the changed line is written in it without them (tokens and parameters in the current spelling).
      const printed = printRule(next, " ");
      const newRule = decidingFile.syntax === "policy" ? printed : printed.split(" ").slice(2).join(" ");
      candidates.push({ kind: "change-action", file: decidingRule.origin.file, path: decidingRule.origin.path, line: decidingRule.origin.line, rule: ownText(decidingRule), action, newRule });
    }
  }
  // Where a new rule goes: before the deciding rule, else at the top of the first file in the new syntax,
  // else (an empty policy directory, or legacy files alone) in a new file of the policy directory.
  let at: { file: string; path: string; line: number; newFile?: boolean } | undefined;
  if (decidingRule && decidingRule.origin.line !== null && fileOf(decidingRule.origin.path)?.syntax === "policy") at = { file: decidingRule.origin.file, path: decidingRule.origin.path, line: decidingRule.origin.line };
  else {
    const first = policy.files.find((f) => f.syntax === "policy");
    if (first) at = { file: first.file, path: first.path, line: 1 };
    else {
      const path = `${source.loadOptions?.policyDir ?? POLICY_DIR}/${NEW_FILE}`;
      if (source.fs.stat(path) === undefined) at = { file: NEW_FILE, path, line: 1, newFile: true };
    }
  }
  const target = request.target === undefined || request.target === "" ? "@default" : request.target;
  if (at && /^[^\s#]+$/.test(request.service) && /^[^\s]+$/.test(request.source) && /^[^\s]+$/.test(target)) {
    const head = `${request.service} ${request.argument ?? "+"} ${request.source} ${target}`;
    const redirects = new Set<string>();
    if (before.ok && before.action === "allow") redirects.add(before.target);
    if (before.ok && before.action === "ask") {
      if (before.defaultTarget) redirects.add(before.defaultTarget);
      else if (before.targetsForAsk[0] !== undefined) redirects.add(before.targetsForAsk[0]);
    }
    for (const action of ["allow", "ask", "deny"] as const) {
      if (action === current) {
        // The same action can still flip an allow's target or an ask's offer: try with target= below.
        if (action === "deny") continue;
      } else candidates.push({ kind: "add", ...at, newRule: `${head} ${action}` });
      if (action !== "deny" && !target.startsWith("@dispvm") && target !== "@adminvm")
        for (const r of redirects) if (r !== target && !r.startsWith("uuid:")) candidates.push({ kind: "add", ...at, newRule: `${head} ${action} target=${r === "dom0" ? "@adminvm" : r}` });
    }
  }
  for (const edit of candidates) {
    result.tried++;
    const file = edit.kind === "add" && edit.newFile ? newFileAt(edit.path, edit.file) : fileOf(edit.path);
    const text =
      edit.kind === "remove"
        ? `remove ${where(edit.file, edit.line)}: ${edit.rule}`
        : edit.kind === "change-action"
          ? `change ${where(edit.file, edit.line)} to: ${edit.newRule}`
          : edit.newFile
            ? `add in a new file ${edit.file}: ${edit.newRule}`
            : `add before ${where(edit.file, edit.line)}: ${edit.newRule}`;
    if (!file) {
      result.rejected.push({ text, why: "the file is not one the policy read" });
      continue;
    }
    let after: Decision;
    try {
      const loaded = loadPolicy(overlay(source.fs, edit.path, applyEdit(file, edit)), source.loadOptions ?? {});
      if (!loaded.ok) {
        result.rejected.push({ text, why: `the edited policy does not load: ${loaded.error.message}` });
        continue;
      }
      after = evaluate(loaded.policy, request, system);
    } catch (e) {
      result.rejected.push({ text, why: `cannot be checked: ${String(e).split("\n")[0]}` });
      continue;
    }
    if (!decisionsDiffer(before, after)) {
      result.rejected.push({ text, why: "the decision stays the same" });
      continue;
    }
    const mapped = inUserLines(after, edit, edit.path);
    result.suggestions.push({ edit, text, after, afterInUserLines: mapped.decision, afterRule: mapped.rule });
  }
  return result;
}
