/**
 * The keys of the stack format outside the property table: what each mapping
 * of a stack, include or bundle file may hold. The checker, the JSON Schema
 * and completion read these lists.
 */
import { DECLARABLE_CLASSES, QUBE_PROPERTIES } from "../qubes/properties.js";

/** Top-level keys of a stack file (`stack:`). */
export const STACK_KEYS = ["qkit", "stack", "description", "include", "use", "global", "labels", "qubes", "policy", "expect", "options"] as const;
/** Top-level keys of an included fragment (same schema as a stack; `stack:` must match if present; no `options`). */
export const FRAGMENT_KEYS = ["qkit", "stack", "description", "include", "use", "global", "labels", "qubes", "policy", "expect"] as const;
/** Top-level keys of a bundle file (`bundle:`). */
export const BUNDLE_KEYS = ["qkit", "bundle", "description", "params", "qubes", "policy", "expect"] as const;

/** Keys of a qube that are not properties. */
export const QUBE_STRUCTURAL_KEYS = [
  "class",
  "source",
  "moved_from",
  "features",
  "services",
  "tags",
  "firewall",
  "devices",
  "volumes",
  "pools",
  "notes",
  "state",
  "absent",
  "protect",
  "ignore_changes",
] as const;

export const POLICY_ENTRY_KEYS = ["file", "priority", "rules", "include"] as const;
export const EXPECT_KEYS = ["call", "decision", "target", "targets_include", "targets_exact", "name"] as const;
export const OPTIONS_KEYS = ["prune", "restart", "policy_priority", "adopt"] as const;
export const USE_KEYS = ["bundle", "as", "with"] as const;
export const PARAM_KEYS = ["type", "default", "description"] as const;
/** Device classes (`admin.vm.device.<class>.*`): qubesd's own `pci` and `block`, `usb` (qubes-app-linux-usb-proxy) and `mic` (audio). */
export const DEVICE_CLASS_NAMES = ["pci", "usb", "block", "mic"] as const;
export const DEVICE_KEYS = ["port", "device", "match", "backend", "mode", "options"] as const;
export const MATCH_KEYS = ["class", "vendor", "product"] as const;
export const VOLUME_KEYS = ["size", "revisions_to_keep", "ephemeral", "rw"] as const;
export const SOURCE_KEYS = ["clone", "install", "empty"] as const;
export const VOLUME_NAMES = ["root", "private", "volatile", "kernel"] as const;
export const POWER_STATES = ["running", "halted", "any"] as const;
export const DEVICE_MODES = ["required", "auto-attach", "ask-to-attach"] as const;
export const PARAM_TYPES = ["name", "qube", "tag", "label", "string", "int", "bool", "list<qube>"] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

/** Named device classes of `match: { class }` and their interface-code patterns. */
export const DEVICE_MATCH_CLASSES: Record<string, string> = {
  network: "p02****",
  "usb-controller": "p0c03**",
  audio: "p0401**",
  display: "p03****",
  storage: "p01****",
};

/** Every property name of any declarable class (for "did you mean" and "not for this class"). */
export const ALL_QUBE_PROPERTY_NAMES: readonly string[] = [...new Set(DECLARABLE_CLASSES.flatMap((c) => QUBE_PROPERTIES[c].map((p) => p.name)))].sort();

/** Every key a qube mapping can have in some class. */
export const ALL_QUBE_KEYS: readonly string[] = [...new Set([...QUBE_STRUCTURAL_KEYS, ...ALL_QUBE_PROPERTY_NAMES])].sort();

/** Names: stack, policy file and bundle instance ids (they end up in policy file names: `[0-9a-z_.-]`). */
export const ID_PATTERN = /^[a-z0-9][a-z0-9_-]*$/;
