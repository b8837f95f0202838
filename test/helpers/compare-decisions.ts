/**
 * The comparison rules of the conformance corpus (`test/fixtures/conformance/README.md`
 * section 4), as a test helper: one expected output line against ours.
 */
const KNOWN = new Set(["AccessDenied", "PolicySyntaxError", "RequestError"]);
const OPTIONAL = ["exec", "warnings", "load_warnings", "stage", "intended_target", "detail"];
const RULE_LIST_KEYS = ["file", "line", "service", "argument", "source", "target", "action", "params"];

type Obj = Record<string, unknown>;

function eq(a: unknown, b: unknown): boolean {
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}

function canon(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === "object") {
    const o: Obj = {};
    for (const k of Object.keys(v as Obj).sort()) o[k] = canon((v as Obj)[k]);
    return o;
  }
  return v;
}

function ruleRef(r: unknown): unknown {
  return r && typeof r === "object" ? [(r as Obj)["file"], (r as Obj)["line"]] : r;
}

function asSet(v: unknown): unknown {
  return Array.isArray(v) ? [...new Set(v.map(String))].sort() : ["not-a-list", v];
}

function normExec(v: unknown): unknown {
  if (v && typeof v === "object" && "error" in (v as Obj)) {
    const e = (v as Obj)["error"] as string;
    return KNOWN.has(e) ? ["error", e, (v as Obj)["message"]] : ["error", "EngineError"];
  }
  return v;
}

/** The mismatching fields of one unit (empty: the unit agrees). */
export function compareUnit(exp: Obj, act: Obj | undefined): string[] {
  if (!act) return ["missing"];
  const bad: string[] = [];
  const must = (f: string, e: unknown, a: unknown) => {
    if (!eq(e, a)) bad.push(f);
  };
  const optional = (f: string, e: Obj, a: Obj, norm: (x: unknown) => unknown = (x) => x) => {
    if (f in e && f in a && !eq(norm(e[f]), norm(a[f]))) bad.push(f);
  };
  if (exp["ok"] !== act["ok"]) return ["ok"];
  if (exp["ok"]) {
    if ("action" in exp) {
      const action = exp["action"];
      must("action", action, act["action"]);
      if (action !== act["action"]) return bad;
      if (action === "allow") for (const f of ["target", "user", "notify", "autostart"]) must(f, exp[f], act[f]);
      else if (action === "ask") {
        must("targets_for_ask", asSet(exp["targets_for_ask"]), asSet(act["targets_for_ask"]));
        for (const f of ["default_target", "user", "notify", "autostart"]) must(f, exp[f], act[f]);
        optional("target", exp, act);
      } else if (action === "deny") {
        must("notify", exp["notify"], act["notify"]);
        optional("message", exp, act);
      }
      must("rule", ruleRef(exp["rule"]), ruleRef(act["rule"]));
    } else if ("rules" in exp) {
      must("rules", exp["rules"], act["rules"]);
      const norm = (rules: unknown) => (Array.isArray(rules) ? rules.map((r) => Object.fromEntries(RULE_LIST_KEYS.map((k) => [k, (r as Obj)[k] ?? null]))) : rules);
      optional("rule_list", exp, act, norm);
    } else if (exp["files"] && typeof exp["files"] === "object") {
      const lint = (o: Obj) => Object.fromEntries(Object.entries(o["files"] as Obj).map(([k, v]) => [k, [(v as Obj)["ok"], (v as Obj)["errors"]]]));
      must("lint", lint(exp), act["files"] ? lint(act) : null);
    } else {
      const strip = (o: Obj) => Object.fromEntries(Object.entries(o).filter(([k]) => !OPTIONAL.includes(k) && k !== "id"));
      must("other", strip(exp), strip(act));
    }
  } else {
    const err = exp["error"] as string;
    if (KNOWN.has(err)) {
      must("error", err, act["error"]);
      if (err !== act["error"]) return bad;
      must("message", exp["message"], act["message"]);
      if ("notify" in exp) must("notify", exp["notify"], act["notify"]);
      if (err === "PolicySyntaxError") for (const f of ["file", "line"]) if (f in exp) must(f, exp[f], act[f]);
      if (exp["rule"] !== undefined && exp["rule"] !== null) must("rule", ruleRef(exp["rule"]), ruleRef(act["rule"]));
    } else {
      if (act["error"] !== "EngineError" && act["error"] !== err) bad.push("error");
      return bad;
    }
  }
  for (const f of OPTIONAL) optional(f, exp, act, f === "exec" ? normExec : undefined);
  return bad;
}

/** Splits an output line into its units (one per request for `results` lines). */
export function units(o: Obj): [string, Obj][] {
  if (Array.isArray(o["results"])) return (o["results"] as Obj[]).map((r, i) => [`#${i}`, r]);
  return [["", o]];
}

/** Compares two output files' lines by id; returns the disagreements. */
export function compareOutputs(expected: Obj[], actual: Obj[]): { total: number; agree: number; diffs: { id: string; fields: string[]; expected: Obj; actual: Obj | undefined }[] } {
  const byId = new Map(actual.map((o) => [String(o["id"]), o]));
  let total = 0;
  let agree = 0;
  const diffs: { id: string; fields: string[]; expected: Obj; actual: Obj | undefined }[] = [];
  for (const exp of expected) {
    const id = String(exp["id"]);
    const act = byId.get(id);
    const actUnits = new Map(act ? (Array.isArray(exp["results"]) ? (Array.isArray(act["results"]) ? units(act) : []) : [["", act] as [string, Obj]]) : []);
    for (const [k, eu] of units(exp)) {
      total++;
      const fields = compareUnit(eu, actUnits.get(k));
      if (fields.length === 0) agree++;
      else diffs.push({ id: id + k, fields, expected: eu, actual: actUnits.get(k) });
    }
  }
  return { total, agree, diffs };
}
