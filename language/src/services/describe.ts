/**
 * Policy rules and qube tokens in words, for hovers, code lenses and symbols.
 */
import type { DomainInfo, SystemInfo } from "../eval/types.js";
import type { QubeToken, RuleNode, TokenContext } from "../syntax/tree.js";
import { isDom0ish } from "./util.js";

/** Says which qubes a token stands for, e.g. `any qube tagged work`. */
export function describeToken(token: QubeToken, context: TokenContext = "target"): string {
  switch (token.kind) {
    case "wildcard":
      return context === "source" ? "any qube (dom0 included)" : "any qube (dom0 and every target keyword included)";
    case "anyvm":
      return "any qube except dom0";
    case "adminvm":
      return "dom0";
    case "default":
      return "the default target (the caller named none)";
    case "dispvm":
      return "a new disposable of the source's default disposable template";
    case "type":
      return `any qube of type ${token.value}`;
    case "tag":
      return `any qube tagged ${token.value}`;
    case "dispvm-template":
      return context === "source" ? `disposables of ${token.value} (never matches as a source)` : `a new disposable based on ${token.value}`;
    case "dispvm-tag": {
      const tag = token.value.startsWith("@tag:") ? token.value.slice(5) : token.value;
      return context === "source"
        ? `disposables of templates tagged ${tag} (never matches as a source)`
        : `a new disposable based on any disposable template tagged ${tag}`;
    }
    case "name":
      return isDom0ish(token.text) ? "dom0" : token.text;
  }
}

/** The service column in words. */
export function describeService(service: string | null, argument: string | null): string {
  if (service === null) return "any service";
  if (argument === null) return service;
  if (argument === "+") return `${service} with an empty argument`;
  return `${service}${argument}`;
}

/** What a rule decides, in one line, e.g. `allows qubes.Filecopy from any qube tagged work to vault`. */
export function describeRule(rule: RuleNode): string {
  const verb = rule.action === "allow" ? "allows" : rule.action === "deny" ? "denies" : "asks before allowing";
  const parts = [
    verb,
    describeService(rule.service, rule.argument),
    "from",
    describeToken(rule.source, "source"),
    "to",
    describeToken(rule.target, "target"),
  ];
  if (rule.redirect) {
    parts.push(rule.action === "ask" ? `(offering only ${describeToken(rule.redirect, "redirect")})` : `(redirected to ${describeToken(rule.redirect, "redirect")})`);
  }
  if (rule.defaultTarget) parts.push(`(default choice ${describeToken(rule.defaultTarget, "redirect")})`);
  if (rule.user !== null && rule.user !== "") parts.push(`as user ${rule.user}`);
  if (rule.action === "deny" && !rule.notify) parts.push("without notification");
  if (rule.action !== "deny" && rule.notify) parts.push("with a notification");
  if (rule.action !== "deny" && !rule.autostart) parts.push("only if the target is already running");
  return parts.join(" ");
}

/** The qubes of a system that a source or target token matches (names only; keywords excluded). */
export function qubesMatching(token: QubeToken, system: SystemInfo): string[] {
  const out: string[] = [];
  for (const [name, info] of system.domains) {
    if (name.startsWith("uuid:")) continue;
    if (tokenMatchesQube(token, name, info)) out.push(name);
  }
  return out.sort();
}

/** True when a source/target token matches a qube of the system, as the engine matches names. */
export function tokenMatchesQube(token: QubeToken, name: string, info: DomainInfo): boolean {
  switch (token.kind) {
    case "wildcard":
      return true;
    case "anyvm":
      return !isDom0ish(name);
    case "adminvm":
      return isDom0ish(name);
    case "type":
      return info.type === token.value;
    case "tag":
      return Array.isArray(info.tags) && info.tags.includes(token.value);
    case "name": {
      if (isDom0ish(token.text)) return isDom0ish(name);
      if (token.text === name) return true;
      if (token.text.startsWith("uuid:")) return info.uuid === token.text.slice(5);
      return false;
    }
    default:
      // Disposable tokens name new qubes, not existing ones; keywords match no named qube.
      return false;
  }
}

/** The disposable templates of a system (qubes with `template_for_dispvms`). */
export function dispvmTemplates(system: SystemInfo): string[] {
  const out: string[] = [];
  for (const [name, info] of system.domains) {
    if (!name.startsWith("uuid:") && info.template_for_dispvms === true) out.push(name);
  }
  return out.sort();
}

/** Every tag carried by some qube. */
export function systemTags(system: SystemInfo): string[] {
  const tags = new Set<string>();
  for (const [name, info] of system.domains) {
    if (name.startsWith("uuid:") || !Array.isArray(info.tags)) continue;
    for (const t of info.tags) tags.add(t);
  }
  return [...tags].sort();
}

/** Every type some qube has. */
export function systemTypes(system: SystemInfo): string[] {
  const types = new Set<string>();
  for (const [name, info] of system.domains) {
    if (!name.startsWith("uuid:") && typeof info.type === "string") types.add(info.type);
  }
  return [...types].sort();
}

/** The qube names of a system (without the `uuid:` aliases), sorted. */
export function systemQubes(system: SystemInfo): string[] {
  return [...system.domains.keys()].filter((n) => !n.startsWith("uuid:")).sort();
}
