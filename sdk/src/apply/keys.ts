/**
 * Ownership on the system (design §11.1): the owning stack (`x-qkit-stack`)
 * and the managed keys (`x-qkit-keys`) of each qube, the managed global
 * properties, the labels the stack created (`label:NAME`, with the colour it
 * created each with, `label-colour:NAME=0xRRGGBB`: qubesd does not say the
 * colour of a label created since it started) and the existing
 * labels it declares (`label-use:NAME`: no other stack's prune removes them) (dom0 feature
 * `x-qkit-globals-<stack>`), and the generated
 * policy files (name `NN-qkit-<stack>-<file>` and the header line).
 *
 * Keys: `p:NAME` property, `f:NAME` feature, `t:TAG` tag, `fw` firewall,
 * `d:CLASS:BACKEND+PORT` a device assignment made by the stack,
 * `v:VOLUME.size` (and other volume settings), `notes`, and `protect` (the
 * qube was declared `protect: true`: `--prune` never removes it, even once
 * its block left the file). A key that disappears
 * from the file is reset on the next apply: property → `Reset`, feature and
 * tag → `Remove`, firewall → the single rule `action=accept`, device →
 * `Unassign`, notes → empty. Volume settings cannot be reset (sizes only
 * grow): their keys are dropped and the values stay.
 */
import { GLOBALS_FEATURE_PREFIX, KEYS_FEATURE, OWNER_FEATURE, policyFileHeader } from "@qubes-kit/language";

export { OWNER_FEATURE, KEYS_FEATURE };

/**
 * The feature a moved qube (`moved_from`) carries from its creation until its former self is
 * removed: `cloning OLD` while the clone step runs, then the former name `OLD` once the clone is
 * complete. A plan after an apply that stopped half-way clones again onto a qube marked
 * `cloning OLD` (never onto another qube of that name), and only removes OLD once it is `OLD`.
 */
export const MOVED_FEATURE = "x-qkit-moved-from";

/**
 * The feature a qube created as a clone (\`source: { clone: SRC }\`) carries from just after its
 * creation until its volumes are cloned: \`SRC\`. A plan after an apply that stopped between
 * finds it and clones the volumes again (the qube was empty), then takes the mark off.
 */
export const CLONE_FEATURE = "x-qkit-cloning";

/** Whether a step takes off that mark: bookkeeping, not a setting (not shown, not counted as a change). */
export function isMoveMark(step: { key: string }): boolean {
  return step.key === `feature ${MOVED_FEATURE}`;
}

/** The key recorded for `protect: true`. */
export const PROTECT_KEY = "protect";

/** Parses `x-qkit-keys` (space-separated). */
export function parseKeys(value: string | undefined): Set<string> {
  return new Set((value ?? "").split(/\s+/).filter((k) => k !== ""));
}

const KEY = /^(?:p:[A-Za-z_][A-Za-z0-9_]*|f:\S+|t:\S+|fw|notes|protect|v:[^.\s]+\.[a-z_]+|d:[a-z]+:\S+)$/;

/** Whether `k` is a key qkit writes into `x-qkit-keys` (see the module comment). */
export function isKey(k: string): boolean {
  return KEY.test(k);
}

/** Prints keys canonically (sorted, space-separated). */
export function formatKeys(keys: Iterable<string>): string {
  return [...new Set(keys)].sort().join(" ");
}

/** The dom0 feature that records a stack's managed globals. */
export function globalsFeature(stack: string): string {
  return `${GLOBALS_FEATURE_PREFIX}${stack}`;
}

/** Whether a policy admin name (`NAME` or `include/NAME`) has the shape of a file generated for `stack`. */
export function isStackPolicyName(stack: string, key: string): boolean {
  if (key.startsWith("include/")) return key.slice("include/".length).startsWith(`qkit-${stack}-`);
  const m = /^[0-9]+-qkit-(.*)$/.exec(key);
  return !!m && m[1]!.startsWith(`${stack}-`);
}

/** Whether a policy text starts with the header of `stack`. */
export function hasStackHeader(stack: string, text: string): boolean {
  const nl = text.indexOf("\n");
  return (nl < 0 ? text : text.slice(0, nl)) === policyFileHeader(stack);
}

/** The generated text of a policy file: the header line, then the rules (ending with a newline). */
/** The rule lines of a policy text (neither blank nor a comment; the header is a comment). */
export function ruleLineCount(text: string): number {
  let n = 0;
  for (const l of text.split("\n")) if (l.trim() !== "" && !l.trimStart().startsWith("#")) n++;
  return n;
}

export function policyText(stack: string, rules: string): string {
  const body = rules === "" || rules.endsWith("\n") ? rules : `${rules}\n`;
  return `${policyFileHeader(stack)}\n${body}`;
}
