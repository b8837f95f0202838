/**
 * "Add a rule for this call", from an explanation: the rule that decides
 * exactly this call (its service, argument, source and target written out),
 * placed where it is the first to match it: just above the rule that decides
 * the call now when that rule is in a writable file of the new syntax, else
 * above the `!include`/`!include-service` line that brought that rule in
 * (innermost first), or, when no rule decides the call, after the last rule
 * of the policy. Every place is proved before it is offered: the policy is
 * loaded again with the edit and the call must then be decided as asked, by
 * the new rule; otherwise the edit is refused with one line saying why.
 */
import { evaluate } from "../eval/evaluate.js";
import type { Decision, DomainInfo, PolicyRequest, SystemInfo } from "../eval/types.js";
import { loadPolicy } from "../loader/load.js";
import type { PolicyFileSystem } from "../loader/types.js";
import { callNameWarnings, callSyntaxError } from "./callcheck.js";
import type { TextEdit } from "./format.js";
import { lineByNumber, normalize } from "./util.js";
import type { PolicySnapshot } from "./workspace.js";

/** What the new rule does. */
export type NewRuleAction = "allow" | "deny" | "ask";

/** The rule text for a call (`@default` for an empty target, `+` for no argument). The call is not checked: see {@link addRuleForCall}. */
export function ruleTextForCall(request: PolicyRequest, action: NewRuleAction): string {
  const target = request.target ? request.target : "@default";
  const argument = request.argument && request.argument !== "" ? request.argument : "+";
  return `${request.service}  ${argument}  ${request.source}  ${target}  ${action}`;
}

/** The edit that adds the rule (by absolute path), proved to make the call decided as asked. */
export interface AddRulePlan {
  ok: true;
  path: string;
  /** 1-based line of the new rule after the edit. */
  line: number;
  edit: TextEdit;
  /** The rule line written. */
  text: string;
}

/** Why no rule is added: a stable code and one line. */
export interface AddRuleRefusal {
  ok: false;
  code: string;
  reason: string;
}

/** Options of {@link addRuleForCall}. */
export interface AddRuleOptions {
  /** The system model the call is decided with (empty: the call's qubes are assumed to exist). */
  system: SystemInfo | null;
  /** Whether the editor can write a file (default: every file). */
  canWrite?: (path: string) => boolean;
}

/**
 * Why a new rule for the call cannot be written at all (whatever the
 * policy), or `undefined`: a call no real call can have, a qube that is not
 * in the system model, or an `allow` to `@default` (the engine needs a named
 * target for it). Cheap: used to decide which commands to offer.
 */
export function addRuleRefusal(request: PolicyRequest, action: NewRuleAction, system: SystemInfo | null): AddRuleRefusal | undefined {
  const bad = callSyntaxError(request);
  if (bad) return { ok: false, code: bad.code, reason: bad.message };
  const unknown = callNameWarnings(request, system)[0];
  if (unknown) return { ok: false, code: unknown.code, reason: `${unknown.message}; a rule for it never decides a real call` };
  const target = request.target || "@default";
  if (action === "allow" && target === "@default") {
    return { ok: false, code: "allow-without-target", reason: "an `allow` to @default needs a named target, which a call to @default does not give: add an `ask` rule, or a rule for the call to the qube you mean" };
  }
  return undefined;
}

/** A file system that shows `text` at `path` and the base's files elsewhere. */
function withFile(base: PolicyFileSystem, path: string, text: string): PolicyFileSystem {
  const fs: PolicyFileSystem = {
    stat: (p) => base.stat(p),
    readDir: (p) => base.readDir(p),
    readFile: (p) => (normalize(p) === path ? text : base.readFile(p)),
  };
  if (base.realPath) fs.realPath = (p) => base.realPath!(p);
  return fs;
}

/** The system the proof decides with: without a model, one where the call's named qubes exist. */
function proofSystem(request: PolicyRequest, system: SystemInfo | null): SystemInfo {
  if (system && system.domains.size > 0) return system;
  const domains = new Map<string, DomainInfo>([["dom0", { type: "AdminVM", name: "dom0", tags: [] }]]);
  for (const n of [request.source, request.target ?? ""]) if (n && !n.startsWith("@") && !domains.has(n)) domains.set(n, { type: "AppVM", name: n, tags: [] });
  return { domains };
}

function describeDecision(d: Decision): string {
  if (!d.ok) return `the engine refuses it (${d.error}: ${d.message})`;
  return `it is decided \`${d.action}\` by ${d.rule.file}:${d.rule.line ?? "(implicit rule)"}`;
}

/** Loads the policy with `text` at `path` and decides the call; `undefined` when the edit is proved. */
function disprove(snapshot: PolicySnapshot, path: string, text: string, line: number, request: PolicyRequest, action: NewRuleAction, system: SystemInfo): string | undefined {
  const loaded = loadPolicy(withFile(snapshot.fs, normalize(path), text), { policyDir: snapshot.policyDir, runtimeDir: snapshot.runtimeDir, legacyDir: snapshot.legacyDir, service: request.service });
  if (!loaded.ok) return `the policy would not load with it (${loaded.error.message})`;
  const own = loaded.policy.rules.find((r) => r.origin.path === path && r.origin.line === line);
  let d: Decision;
  try {
    d = evaluate(loaded.policy, request, system);
  } catch (e) {
    return `internal error while checking the new rule: ${String(e).split("\n")[0]}`;
  }
  if (own && d.ok && d.action === action && d.rule.file === own.origin.file && d.rule.line === line) {
    // An allow the daemon then fails to run (a call to the calling qube itself …) is no allow.
    if (d.action === "allow" && "error" in d.exec) return `the new rule decides it, but the daemon refuses to run it (${d.exec.error}: ${d.exec.message})`;
    return undefined;
  }
  return `with the new rule at ${own?.origin.file ?? path}:${line}, ${describeDecision(d)}`;
}

interface Place {
  path: string;
  /** Insert before this 1-based line, or after it (`after`). */
  line: number;
  after?: boolean;
}

/** The places, best first, where a rule comes before the rule deciding the call now. */
function placesFor(snapshot: PolicySnapshot, request: PolicyRequest, system: SystemInfo, canWrite: (p: string) => boolean): { places: Place[]; decided?: Decision | undefined } {
  const out: Place[] = [];
  const writable = (path: string) => snapshot.document(path)?.syntax === "policy" && canWrite(path);
  let decided: Decision | undefined;
  if (snapshot.policy) {
    try {
      decided = evaluate(snapshot.policy, request, system);
    } catch {
      decided = undefined;
    }
  }
  const ref = decided && "rule" in decided ? decided.rule : undefined;
  const rule = ref && ref.line !== null ? snapshot.rules.find((r) => r.origin.file === ref.file && r.origin.line === ref.line) : undefined;
  if (rule) {
    // The deciding rule itself, then the include lines that brought it in, innermost first.
    for (const o of [rule.origin, ...[...rule.via].reverse()]) {
      if (o.line !== null && writable(o.path)) out.push({ path: o.path, line: o.line });
    }
    return { places: out, decided };
  }
  // No rule decides it: after the last rule of a writable file of the new syntax.
  for (let i = snapshot.rules.length - 1; i >= 0; i--) {
    const r = snapshot.rules[i]!;
    if (r.origin.line === null || !writable(r.origin.path)) continue;
    out.push({ path: r.origin.path, line: r.origin.line, after: true });
    break;
  }
  return { places: out, decided };
}

/**
 * The edit that adds a rule deciding `request` as `action`, proved against
 * the engine (see the module comment), or why there is none. Never throws.
 */
export function addRuleForCall(snapshot: PolicySnapshot, request: PolicyRequest, action: NewRuleAction, options: AddRuleOptions): AddRulePlan | AddRuleRefusal {
  const refused = addRuleRefusal(request, action, options.system);
  if (refused) return refused;
  const text = ruleTextForCall(request, action);
  const system = proofSystem(request, options.system);
  const { places, decided } = placesFor(snapshot, request, system, options.canWrite ?? (() => true));
  if (places.length === 0) {
    const now = decided ? `; now ${describeDecision(decided)}` : "";
    return { ok: false, code: "no-place-for-rule", reason: `no file of the new syntax that the editor can write is read before the rule that decides this call: add the rule by hand where the daemon reads it first${now}` };
  }
  let first: string | undefined;
  for (const place of places) {
    const doc = snapshot.document(place.path);
    const l = doc ? lineByNumber(doc, place.line) : undefined;
    if (!doc || !l) continue;
    let at: number;
    let newText: string;
    let line: number;
    if (place.after) {
      const end = l.lineSpan.end;
      const nl = doc.text.slice(end, end + 2).startsWith("\r\n") ? 2 : doc.text[end] === "\n" || doc.text[end] === "\r" ? 1 : 0;
      at = end + nl;
      newText = nl ? `${text}\n` : `\n${text}\n`;
      line = l.line + 1;
    } else {
      at = l.lineSpan.start;
      newText = `${text}\n`;
      line = l.line;
    }
    const edited = doc.text.slice(0, at) + newText + doc.text.slice(at);
    const why = disprove(snapshot, place.path, edited, line, request, action, system);
    if (why === undefined) return { ok: true, path: place.path, line, edit: { span: { start: at, end: at }, newText }, text };
    first ??= why;
  }
  return { ok: false, code: "rule-would-not-decide", reason: `a new rule cannot decide this call as \`${action}\`: ${first ?? "no place for it"}` };
}
