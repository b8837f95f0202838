/**
 * The one message every auditor command gives for a policy that does not
 * load: the policy as the user named it, the engine's error with the file
 * under that name (not the engine's `/etc/qubes/policy.d`), what to do, and
 * the code `policy-does-not-load` (exit 2).
 */
import { POLICY_DIR, type PolicyError } from "@qubes-kit/language";
import { oneLine } from "./text.js";

/** The code of a policy that does not load. */
export const POLICY_DOES_NOT_LOAD = "policy-does-not-load";

/**
 * `the policy \`SPEC\` does not load (the daemon would deny every call):
 * SPEC/FILE:LINE: DETAIL; fix ...`. `spec` is the policy as given: a
 * directory, `REV:PATH`, or `live` (whose files are the real
 * `/etc/qubes/policy.d`, so named as they are).
 */
export function policyLoadMessage(spec: string, error: PolicyError): string {
  let message = error.message;
  // A file that is not UTF-8 is named as the policy names it (relative to its directory): said under the directory too.
  if (error.code === "not-utf8" && !message.startsWith("/")) message = `${POLICY_DIR}/${message}`;
  const shown = spec === "live" ? message : message.split(POLICY_DIR + "/").join(spec.replace(/\/+$/, "") + "/");
  const todo =
    spec === "live"
      ? "fix it in dom0 (`qkit policy check /etc/qubes/policy.d` lists every error)"
      : spec.indexOf(":") > 0 && !spec.startsWith("/")
        ? "that revision's policy cannot be compared; check out a revision whose policy loads"
        : `fix it (\`qkit policy check ${spec}\` lists every error)`;
  // One line: a name with a line break in it (a file, a directory) is escaped, never cut there.
  return oneLine(`the policy \`${spec}\` does not load (the daemon would deny every call): ${shown}; ${todo}`);
}
