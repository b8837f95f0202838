/**
 * The conformance-case runner: one case of the shared corpus format in, the
 * output line the corpus expects out. This is what
 * `qkit policy eval --cases` prints, and how the engine is compared with the
 * real qrexec engine, case by case.
 */
import { evaluate } from "./eval/evaluate.js";
import { prepareSystemInfo } from "./eval/system.js";
import type { Decision, PolicyRequest, RawSystemInfo } from "./eval/types.js";
import { lintText } from "./lint.js";
import { loadPolicy } from "./loader/load.js";
import { createMemoryFileSystem, joinPath } from "./loader/memfs.js";
import { POLICY_DIR, type LoadResult, type PolicyError, type PolicyRule } from "./loader/types.js";

/** One input line of the corpus (unknown keys are ignored). */
export interface ConformanceCase {
  id?: unknown;
  files?: Record<string, string | null>;
  policy?: string;
  policy_name?: string;
  loader?: "file" | "string";
  legacy?: Record<string, string>;
  system?: RawSystemInfo;
  request?: ConformanceRequest;
  requests?: ConformanceRequest[];
  mode?: "eval" | "parse" | "lint";
  emit_rules?: boolean;
  include_service?: boolean;
}

/** A request in corpus form. */
export interface ConformanceRequest {
  service?: string;
  argument?: string;
  source?: string;
  target?: string;
  requested_source?: string | null;
}

type Out = Record<string, unknown>;

function errorOut(e: PolicyError, stage: string): Out {
  const out: Out = { ok: false, error: e.error, message: e.message, stage };
  if (e.error !== "EngineError") out["notify"] = e.notify ?? true;
  if (e.error === "PolicySyntaxError") {
    out["file"] = e.file;
    out["line"] = e.line;
    out["detail"] = e.detail;
  }
  return out;
}

/** The corpus form of a decision. */
export function decisionToJson(d: Decision): Out {
  if (!d.ok) {
    const out = errorOut(d, d.stage);
    if (d.rule) out["rule"] = d.rule;
    if (d.intendedTarget !== undefined) out["intended_target"] = d.intendedTarget;
    return out;
  }
  switch (d.action) {
    case "allow":
      return { rule: d.rule, intended_target: d.intendedTarget, ok: true, action: "allow", target: d.target, user: d.user, notify: d.notify, autostart: d.autostart, exec: d.exec };
    case "ask":
      return {
        rule: d.rule,
        intended_target: d.intendedTarget,
        ok: true,
        action: "ask",
        targets_for_ask: d.targetsForAsk,
        default_target: d.defaultTarget,
        target: null,
        user: d.user,
        notify: d.notify,
        autostart: d.autostart,
      };
    case "deny":
      return { rule: d.rule, intended_target: d.intendedTarget, ok: true, action: "deny", notify: d.notify, message: d.message };
  }
}

function toRequest(r: ConformanceRequest): PolicyRequest {
  let service = r.service ?? "";
  let argument = r.argument;
  if (argument === undefined || argument === null) {
    const plus = service.indexOf("+");
    if (plus >= 0) {
      argument = "+" + service.slice(plus + 1);
      service = service.slice(0, plus);
    } else argument = "+";
  }
  return { service, argument, source: r.source ?? "", target: r.target ?? "", requestedSource: r.requested_source ?? null };
}

function describeRule(r: PolicyRule): Out {
  const params: Out = { notify: r.notify };
  if (r.action !== "deny") {
    params["target"] = r.redirect?.text ?? null;
    if (r.action === "ask") params["default_target"] = r.defaultTarget?.text ?? null;
    params["user"] = r.user;
    params["notify"] = r.notify;
    params["autostart"] = r.autostart;
  }
  return {
    file: r.origin.file,
    line: r.origin.line,
    service: r.service,
    argument: r.argument,
    source: r.source.text,
    target: r.target.text,
    action: r.action,
    params,
  };
}

/** Loads the policy of a case (file or string loader). */
export function loadCase(c: ConformanceCase): LoadResult {
  const files: Record<string, string | null> = { ...(c.files ?? {}) };
  if (typeof c.policy === "string") files[c.policy_name ?? "30-user.policy"] = c.policy;
  if (c.loader === "string") {
    const strings: Record<string, string> = {};
    for (const [k, v] of Object.entries(files)) if (typeof v === "string") strings[k] = v;
    return loadPolicy(undefined, { loader: "string", strings, legacyStrings: c.legacy ?? {} });
  }
  const texts = new Map<string, string>();
  const dirs: string[] = [];
  for (const [k, v] of Object.entries(files)) {
    const path = k.startsWith("/") ? k : joinPath(POLICY_DIR, k);
    if (typeof v === "string") texts.set(path, v);
    else dirs.push(path);
  }
  return loadPolicy(createMemoryFileSystem(texts, dirs));
}

function usage(message: string): Out {
  return { ok: false, error: "UsageError", message };
}

/** What is wrong with the shape of a case, if anything. */
function shapeError(c: ConformanceCase): string | undefined {
  const isObj = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (c.files !== undefined) {
    if (!isObj(c.files)) return "`files` must be an object of path → text";
    for (const [k, v] of Object.entries(c.files)) if (typeof v !== "string" && v !== null) return `\`files\` entry \`${k}\` must be a string (or null for a directory)`;
  }
  if (c.policy !== undefined && typeof c.policy !== "string") return "`policy` must be a string";
  if (c.legacy !== undefined && !isObj(c.legacy)) return "`legacy` must be an object of name → text";
  if (c.requests !== undefined && (!Array.isArray(c.requests) || !c.requests.every(isObj))) return "`requests` must be a list of request objects";
  if (c.request !== undefined && !isObj(c.request)) return "`request` must be an object";
  if (c.system !== undefined && c.system !== null && !isObj(c.system)) return "`system` must be an internal.GetSystemInfo object";
  if (c.mode !== undefined && !["eval", "parse", "lint"].includes(c.mode)) return `unknown mode \`${String(c.mode)}\``;
  return undefined;
}

/** Runs one corpus case; never throws. */
export function runConformanceCase(c: ConformanceCase): Out {
  if (typeof c !== "object" || c === null || Array.isArray(c)) return usage("a case must be a JSON object");
  const id = c.id;
  const withId = (o: Out): Out => (id === undefined ? o : { id, ...o });
  const bad = shapeError(c);
  if (bad) return withId(usage(bad));
  try {
    const mode = c.mode ?? (c.request || c.requests ? "eval" : "parse");
    if (mode === "lint") {
      const files: Record<string, string | null> = { ...(c.files ?? {}) };
      if (typeof c.policy === "string") files[c.policy_name ?? "30-user.policy"] = c.policy;
      const report: Record<string, unknown> = {};
      let ok = true;
      for (const [name, text] of Object.entries(files)) {
        const r = lintText(text ?? "", { name, includeService: !!c.include_service });
        report[name] = r;
        ok &&= r.ok;
      }
      return withId({ ok, files: report });
    }
    const loaded = loadCase(c);
    if (mode === "parse") {
      if (!loaded.ok) return withId(errorOut(loaded.error, "load"));
      const out: Out = { ok: true, rules: loaded.policy.rules.length };
      if (c.emit_rules) out["rule_list"] = loaded.policy.rules.map(describeRule);
      return withId(out);
    }
    const system = prepareSystemInfo(c.system ?? { domains: {} });
    const requests = c.requests ?? (c.request ? [c.request] : []);
    const results = requests.map((r) => (loaded.ok ? decisionToJson(evaluate(loaded.policy, toRequest(r), system)) : errorOut(loaded.error, "load")));
    if (c.requests) return withId({ ok: true, results });
    return withId(results[0] ?? { ok: false, error: "UsageError", message: "no request" });
  } catch (e) {
    // INVARIANT: nothing above throws; if it does, it is our bug, reported as an engine error rather than a crash.
    return withId({ ok: false, error: "EngineError", message: `internal error: ${e instanceof Error ? e.message : String(e)}` });
  }
}
