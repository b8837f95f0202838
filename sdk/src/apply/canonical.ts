/**
 * Canonical comparison: a declared value and a live value compare equal
 * exactly when applying the declaration would change nothing, so a plan
 * right after an apply is empty (no false changes).
 */
import { formatFirewallRule, parseFirewallRule } from "../firewall.js";
import { isAutomaticTag, propertySpec, type DeclarableClass, type PropertySpec, type PropertyValue as DeclaredValue } from "@qubes-kit/language";
import type { LiveProperty } from "./types.js";

/** A declared property value normalised by the class table (type and setter): the wire value qubesd would store. */
export function canonicalValue(spec: PropertySpec | undefined, value: Exclude<DeclaredValue, { default: true }>): { ok: true; value: string | number | boolean | null } | { ok: false; message: string } {
  if (!spec) return { ok: true, value };
  let v: string | number | boolean | null = value;
  if (v !== null) {
    switch (spec.type) {
      case "int":
        if (typeof v === "string" && /^-?[0-9]+$/.test(v)) v = Number(v);
        if (typeof v !== "number" || !Number.isInteger(v)) return { ok: false, message: `${spec.name} needs an integer, got ${JSON.stringify(value)}` };
        break;
      case "bool":
        if (v === "True" || v === "true") v = true;
        else if (v === "False" || v === "false") v = false;
        if (typeof v !== "boolean") return { ok: false, message: `${spec.name} needs true or false, got ${JSON.stringify(value)}` };
        break;
      case "vm":
      case "label":
      case "str":
        if (typeof v !== "string") v = String(v);
        if (spec.type === "vm" && (v === "" || v === "none")) v = null;
        break;
    }
  }
  if (v === null && spec.type !== "vm" && !spec.allowNone) return { ok: false, message: `${spec.name} cannot be none` };
  if (spec.check && v !== null) {
    const r = spec.check(v);
    if (!r.ok) return { ok: false, message: r.message };
    v = r.value;
  }
  return { ok: true, value: v };
}

/** Whether a live property equals a canonical declared value (both explicit and default values count: the caller decides about pinning). */
export function sameValue(live: LiveProperty | undefined, value: string | number | boolean | null): boolean {
  if (!live) return false;
  return live.value === value || (live.value === "" && value === null);
}

/** A property value for plan output: `none` for None, `default (X)` when inherited. */
export function showProperty(p: LiveProperty | undefined): string {
  if (!p) return "absent";
  const v = showValue(p.value);
  // A default qubesd reports empty (an `ip` of a qube with no network) is just `default`.
  return p.default ? (p.value === "" ? "default" : `default (${v})`) : v;
}

/** A plain value for plan output. */
export function showValue(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return "none";
  if (typeof v === "boolean") return v ? "true" : "false";
  return String(v);
}

/** The spec of a property of a class, or of a global (`@global`). */
export function specOf(klass: string, name: string): PropertySpec | undefined {
  if (klass === "@global") return propertySpec("@global", name);
  if (klass !== "AppVM" && klass !== "TemplateVM" && klass !== "StandaloneVM" && klass !== "DispVM") return undefined;
  return propertySpec(klass as DeclarableClass, name);
}

/**
 * A firewall rule in qubesd's normalised `Get` form (`dsthost` IP → `dst4`
 * with a prefix, ports `a-b`, key order of `Get`); throws a `QubesParseError`
 * or `QubesValidationError` for a rule qubesd would refuse.
 */
export function canonicalFirewallRule(rule: string): string {
  return formatFirewallRule(parseFirewallRule(rule.trim()));
}

/** Declared rules as `Get` would return them after `Set` at time `now` (seconds): normalised, expired rules dropped. */
export function canonicalFirewall(rules: readonly string[], now: number): string[] {
  return rules.map(canonicalFirewallRule).filter((r) => {
    const m = / expire=([0-9]+)/.exec(r);
    return !m || Number(m[1]) > now;
  });
}

/** The tags a stack compares: everything but qubesd's automatic tags. */
export function managedTags(tags: readonly string[]): string[] {
  return tags.filter((t) => !isAutomaticTag(t)).sort();
}

/** Options of a device assignment compared canonically (sorted keys). */
export function sameOptions(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}
