/**
 * Client-side validation with the rules qubesd and qrexec enforce (see the
 * Admin API notes, §2). A request that breaks one is refused with a
 * {@link QubesValidationError} before anything is sent, so that qrexec never
 * silently rewrites a character and reaches a different object.
 */
import { QubesValidationError } from "./errors.js";

const QUBE_NAME = /^[a-zA-Z][a-zA-Z0-9_.-]*$/;
const UUID_DEST = /^uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SERVICE_CHARS = /^[A-Za-z0-9_.+-]*$/;
const METHOD = /^[A-Za-z0-9_.-]+$/;

function fail(message: string, code: string, field: string): never {
  throw new QubesValidationError(message, code, field);
}

/** Checks a qube name as qubesd's `validate_name` does (for creating or renaming). */
export function validateQubeName(name: string, field = "name"): string {
  if (typeof name !== "string" || name.length === 0) fail(`${field}: qube name must not be empty`, "invalid-qube-name", field);
  if (name.length > 31) fail(`${field}: qube name \`${name}\` is longer than 31 characters`, "invalid-qube-name", field);
  if (!QUBE_NAME.test(name)) {
    fail(
      /^[^a-zA-Z]/.test(name)
        ? `${field}: qube name \`${name}\` cannot start with hyphen, underscore, dot or numbers`
        : `${field}: qube name \`${name}\` contains characters other than letters, digits, \`_\`, \`.\` and \`-\``,
      "invalid-qube-name",
      field,
    );
  }
  if (name === "none" || name === "default" || name === "Domain-0") {
    fail(`${field}: \`${name}\` is a reserved name`, "invalid-qube-name", field);
  }
  if (name.endsWith("-dm")) fail(`${field}: qube name \`${name}\` must not end in \`-dm\``, "invalid-qube-name", field);
  return name;
}

/** Checks a destination: a qube name, `uuid:<canonical lowercase uuid>`, `@adminvm` or `dom0`. */
export function validateDest(dest: string, field = "dest"): string {
  if (dest === "@adminvm" || dest === "dom0") return dest;
  if (dest.startsWith("uuid:")) {
    if (!UUID_DEST.test(dest)) fail(`${field}: \`${dest}\` is not \`uuid:\` followed by a lowercase canonical uuid`, "invalid-dest", field);
    return dest;
  }
  if (dest.length === 0 || dest.length > 31 || !QUBE_NAME.test(dest)) {
    fail(`${field}: \`${dest}\` is not a valid qube name`, "invalid-dest", field);
  }
  return dest;
}

/** Checks a method name (no `+`; the qrexec service character set). */
export function validateMethod(method: string): string {
  if (!METHOD.test(method)) fail(`method \`${method}\` may only contain letters, digits, \`_\`, \`.\` and \`-\``, "invalid-method", "method");
  return method;
}

/** Checks an argument against the qrexec service+argument character set. */
export function validateArg(arg: string, field = "arg"): string {
  if (!SERVICE_CHARS.test(arg)) {
    fail(`${field}: \`${arg}\` may only contain letters, digits, \`_\`, \`.\`, \`+\` and \`-\` (qrexec would rewrite the rest to \`_\`)`, "invalid-arg", field);
  }
  return arg;
}

/** A name used as an argument (property, feature, volume, pool …): non-empty and from `[A-Za-z0-9_.-]`. */
export function validateIdentifier(value: string, what: string): string {
  if (!value) fail(`${what} must not be empty`, `invalid-${what.replace(/ /g, "-")}`, what);
  if (!/^[A-Za-z0-9_.-]+$/.test(value)) {
    fail(`${what} \`${value}\` contains illegal characters (allowed: letters, digits, \`_\`, \`.\`, \`-\`)`, `invalid-${what.replace(/ /g, "-")}`, what);
  }
  return value;
}

/** A tag: non-empty `[A-Za-z0-9_-]` (no dot), else qubesd raises `QubesInvalidTagError`. */
export function validateTag(tag: string): string {
  if (!tag || !/^[A-Za-z0-9_-]+$/.test(tag)) fail(`tag \`${tag}\` contains disallowed characters (allowed: letters, digits, \`_\`, \`-\`)`, "invalid-tag", "tag");
  return tag;
}

/** A feature name for Set: `^[a-zA-Z0-9_.-]+$`. */
export function validateFeatureName(name: string): string {
  if (!name || !/^[a-zA-Z0-9_.-]+$/.test(name)) fail(`feature name \`${name}\` contains illegal characters`, "invalid-feature-name", "feature");
  return name;
}

/** A feature value: printable ASCII `[\x20-\x7E]*` (empty allowed). */
export function validateFeatureValue(name: string, value: string): string {
  if (!/^[\x20-\x7e]*$/.test(value)) fail(`${name} value contains illegal characters (printable ascii only)`, "invalid-feature-value", "value");
  return value;
}

/** A label name: non-empty `[A-Za-z0-9_.-]`; on create also not all digits. */
export function validateLabelName(name: string, creating = false): string {
  validateIdentifier(name, "label name");
  if (creating && /^[0-9]+$/.test(name)) fail(`label name \`${name}\` must not be all digits`, "invalid-label-name", "label");
  return name;
}

/** A label colour: exactly `0x` + 6 hex digits. */
export function validateLabelColor(color: string): string {
  if (!/^0x[0-9a-fA-F]{6}$/.test(color)) fail(`label colour \`${color}\` must be \`0x\` followed by 6 hex digits`, "invalid-label-color", "color");
  return color;
}

/** A property value: ASCII only (qubesd decodes payloads of property Set as ASCII). */
export function validatePropertyValue(name: string, value: string): string {
  if (!/^[\x00-\x7f]*$/.test(value)) fail(`value of property ${name} must be ascii`, "invalid-property-value", "value");
  return value;
}

/** A non-negative decimal number as qubesd's `validate_number` wants it. */
export function formatNumber(value: number | bigint | string, what: string): string {
  const s = typeof value === "string" ? value : value.toString();
  if (!/^(0|[1-9][0-9]{0,18})$/.test(s)) fail(`${what} must be a non-negative decimal integer below 10^19, got \`${s}\``, "invalid-number", what);
  return s;
}

/** A volume revision: `[A-Za-z0-9:_.-]`. */
export function validateRevision(rev: string): string {
  if (!rev || !/^[A-Za-z0-9:_.-]+$/.test(rev)) fail(`revision \`${rev}\` contains illegal characters`, "invalid-revision", "revision");
  return rev;
}

/** A policy file name of the policy admin API: `[A-Za-z0-9_-]+` (the file name without `.policy`). */
export function validatePolicyName(name: string): string {
  if (!name || !/^[A-Za-z0-9_-]+$/.test(name)) {
    fail(`policy file name \`${name}\` may only contain letters, digits, \`_\` and \`-\``, "invalid-policy-name", "name");
  }
  return name;
}
