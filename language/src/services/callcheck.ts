/**
 * Checks of a call given by hand (the editor's simulator, "add a rule for this
 * call"): the fields no real call can have are refused with one line saying
 * what is wrong (the engine's wording where it has one, `qkit policy eval`'s
 * otherwise), and names that are not qubes of the system are noted as the CLI
 * warns about them (`[unknown-qube]`).
 */
import type { PolicyRequest, SystemInfo } from "../eval/types.js";
import { qubeNameError } from "../qubes/properties.js";
import { validateServiceArgument } from "../syntax/rule.js";
import { parseQubeToken } from "../syntax/tokens.js";
import { closest } from "./util.js";

/** A refused field of a call: a stable code and one line. */
export interface CallProblem {
  code: "invalid-service" | "invalid-argument" | "argument-without-plus" | "invalid-source" | "invalid-target" | "unknown-qube";
  message: string;
}

const NO_SPAN = { start: 0, end: 0 };
const UUID_NAME = /^uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Why `name` cannot be the name of a qube in a call, or `undefined`. */
function nameError(name: string): string | undefined {
  if (UUID_NAME.test(name)) return undefined;
  return qubeNameError(name);
}

/**
 * The first field of `request` that no real call can have, or `undefined`.
 * The service and argument follow the policy parser's token rules (a call to
 * `*` or with an argument without `+` does not exist), the source is one qube
 * name, and the target is a qube name or a token the engine accepts as an
 * intended target (`@default`, `@dispvm`, `@dispvm:NAME`, `@adminvm`).
 */
export function callSyntaxError(request: PolicyRequest): CallProblem | undefined {
  const argument = request.argument ?? "+";
  if (request.service === "*" || request.service === "") {
    return { code: "invalid-service", message: `a call names one service, not ${JSON.stringify(request.service)}: give the service (for example \`qubes.Filecopy\`)` };
  }
  if (argument === "*") return { code: "invalid-argument", message: "a call has one argument, not `*`: give `+` (no argument) or `+VALUE`" };
  if (argument !== "" && !argument.startsWith("+")) {
    return {
      code: "argument-without-plus",
      message: `argument \`${argument}\` has no leading \`+\`: the daemon always passes it as \`+${argument}\`, and the engine fails on it as given; did you mean \`+${argument}\`?`,
    };
  }
  const sa = validateServiceArgument(request.service, argument === "" ? "+" : argument, NO_SPAN, NO_SPAN);
  if ("code" in sa) return { code: sa.code === "invalid-service" ? "invalid-service" : "invalid-argument", message: `${sa.message}: ${sa.help ?? ""}`.replace(/: $/, "") };
  const source = request.source;
  if (source.startsWith("@") || source === "*") {
    return { code: "invalid-source", message: `source \`${source}\` is a rule token, not a qube: a call comes from one qube; give its name` };
  }
  const se = nameError(source);
  if (se) return { code: "invalid-source", message: `source ${JSON.stringify(source)} is not a qube name (${se}): give the name of the calling qube` };
  const target = request.target ?? "";
  if (target !== "") {
    const t = parseQubeToken(target, "intendedtarget");
    if (!t.token) return { code: "invalid-target", message: `${t.error}: give a qube name, \`@default\`, \`@dispvm\`, \`@dispvm:NAME\` or \`@adminvm\`` };
    if (t.token.kind === "name") {
      const te = nameError(target);
      if (te) return { code: "invalid-target", message: `target ${JSON.stringify(target)} is not a qube name (${te}): give a qube name or a token such as \`@default\`` };
    }
  }
  const rs = request.requestedSource;
  if (rs) {
    const re = nameError(rs);
    if (re) return { code: "invalid-source", message: `requested source ${JSON.stringify(rs)} is not a qube name (${re})` };
  }
  return undefined;
}

function didYouMean(word: string, system: SystemInfo): string {
  const names = [...system.domains.keys()].filter((k) => !k.startsWith("uuid:"));
  const c = closest(word, names, 3);
  return c.length === 0 ? "" : `; did you mean ${c.map((x) => `\`${x}\``).join(" or ")}?`;
}

/**
 * The names of a call that are not qubes of the system, in `qkit policy
 * eval`'s wording (`[unknown-qube]`): the daemon never receives a call from
 * such a source, and treats such a target as `@default`. Empty without a
 * system model (`null`) and for a syntactically bad call.
 */
export function callNameWarnings(request: PolicyRequest, system: SystemInfo | null): CallProblem[] {
  if (!system || system.domains.size === 0) return [];
  const out: CallProblem[] = [];
  if (!request.source.startsWith("@") && !system.domains.has(request.source)) {
    out.push({ code: "unknown-qube", message: `source \`${request.source}\` is not a qube of the system: the daemon never receives a call from it; check the name${didYouMean(request.source, system)}` });
  }
  const t = request.target ?? "";
  if (t !== "" && !t.startsWith("@") && !system.domains.has(t)) {
    out.push({ code: "unknown-qube", message: `target \`${t}\` is not a qube of the system: the daemon treats it as @default${didYouMean(t, system)}` });
  }
  return out;
}
