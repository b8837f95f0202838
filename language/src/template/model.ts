/**
 * The intermediate model of a domain template ("stack"): what the YAML front
 * end (`parseStack`/`checkStack`) and the SDK builder (`defineStack`) both
 * produce, and what the planner, the rehearsal and what-if consume.
 *
 * Values are already canonical: feature values are strings (`true` → `"1"`,
 * `false` → `""`), `null` feature values mean "remove", property values are
 * typed by the class table (`language/src/qubes/properties.ts`), and the
 * keyword `default` is the {@link DEFAULT} marker. Bundles are expanded: every
 * qube, policy file and expectation carries its {@link Provenance}.
 *
 * Pure data: no classes, JSON-serialisable.
 */
import type { DeclarableClass } from "../qubes/properties.js";

/** "Reset this setting to qubesd's default" (the YAML keyword `default`). */
export const DEFAULT = { default: true } as const;
export type DefaultMarker = typeof DEFAULT;

/** Where a declaration comes from: a file and a UTF-16 range, and the bundle instance when expanded from one. */
export interface Provenance {
  file: string;
  start: number;
  end: number;
  /** The `use:` instance (`as`) this came from, and the use site. */
  bundle?: { as: string; bundle: string; file: string; start: number; end: number };
}

/** A property value: `null` is None (for VM properties: `none`). */
export type PropertyValue = string | number | boolean | null | DefaultMarker;

export type DeviceMode = "required" | "auto-attach" | "ask-to-attach";

/** One device assignment: a port, or a selector resolved against the backend's available devices at plan time. */
export interface DeviceDecl {
  devclass: "pci" | "usb" | "block" | (string & {});
  /** Backend qube (PCI: `dom0`, the default). */
  backend: string;
  /** A port (`00_14.0`), or unset when `match` selects. */
  port?: string;
  /** A device id (`0x1050:0x0407::u030000`, `8086:a0f0::p028000`), or `*`. */
  deviceId?: string;
  /** Selector: interface class (`network`, `usb-controller`, `audio`, or a code such as `p0c03**`), vendor, product. */
  match?: { class?: string; vendor?: string; product?: string };
  mode: DeviceMode;
  /** Options (`no-strict-reset`, `permissive`) as strings (`"True"`), canonical. */
  options: Record<string, string>;
  provenance?: Provenance;
}

export interface VolumeDecl {
  /** Bytes. */
  size?: number;
  revisions_to_keep?: number;
  ephemeral?: boolean;
  rw?: boolean;
}

export type PowerStateDecl = "running" | "halted" | "any";

/** One qube. Keys that are absent are not managed. */
export interface QubeDecl {
  name: string;
  class: DeclarableClass;
  /** Create-time source of a TemplateVM/StandaloneVM. */
  source?: { clone: string } | { install: string } | { empty: true };
  /**
   * The qube's former name: a rename. While a qube of that name exists and
   * none of this name, the plan clones it (its persistent volumes, settings,
   * features, tags, firewall, notes and device assignments) under this name,
   * moves its users over, and removes it. Once moved (or when no such qube
   * exists), it changes nothing: a qube still to create is then created as
   * declared (from its `source`, for a TemplateVM or StandaloneVM).
   */
  moved_from?: string;
  /** Properties by name (`template`, `label`, `netvm` included); `DEFAULT` resets. */
  properties: Record<string, PropertyValue>;
  /** Feature name → value; `null` removes. `services:` are folded in as `service.X`. */
  features: Record<string, string | null>;
  /** Managed tags (a set: sorted, unique); absent = tags not managed. */
  tags?: string[];
  /** Firewall rules in qubesd's `key=value` form, in order; absent = firewall not managed. */
  firewall?: string[];
  /** Device assignments per class; a class present here is managed strictly. */
  devices?: Record<string, DeviceDecl[]>;
  volumes?: Record<string, VolumeDecl>;
  /** Create-time pools per volume (`private: vm-pool`), or one pool for all. */
  pools?: Record<string, string>;
  notes?: string;
  state: PowerStateDecl;
  absent: boolean;
  protect: boolean;
  /** Keys left alone after creation (`memory`, `features.x`, `firewall`). */
  ignore_changes: string[];
  provenance?: Provenance;
  /** Provenance per key (`memory`, `features.x`, `tags`, `firewall`, `devices.pci`), for diagnostics and plan output. */
  keyProvenance?: Record<string, Provenance>;
}

/** One generated policy file: `/etc/qubes/policy.d/<priority>-qkit-<stack>-<file>.policy`. */
export interface PolicyFileDecl {
  file: string;
  priority: number;
  /** Policy text exactly as written (the header is added when generated). */
  rules: string;
  /** Include file (`policy.d/include/<name>`) instead of a numbered file. */
  include?: boolean;
  provenance?: Provenance;
  /** Where the first line of `rules` is in `provenance.file`: its 1-based line and the block's indentation (column). Absent when the text cannot be mapped per character (a folded or escaped scalar). */
  rulesOffset?: { line: number; indent: number };
}

/** A what-if assertion. */
export interface Expectation {
  service: string;
  /** `+ARG` form (with the plus) or `""`. */
  argument: string;
  source: string;
  target: string;
  decision: "allow" | "ask" | "deny";
  /** allow: the resolved target; ask: the default target. */
  target_is?: string;
  /** ask: targets that must all be offered. */
  targets_include?: string[];
  /** ask: the exact set of targets offered. */
  targets_exact?: string[];
  provenance?: Provenance;
}

export interface StackOptions {
  prune: boolean;
  restart: "never" | "if-needed";
  policy_priority: number;
  adopt: boolean;
}

/** The whole resolved stack. */
export interface StackModel {
  format: 1;
  stack: string;
  /** Global properties. */
  global: Record<string, PropertyValue>;
  /** Where each global property is declared (its key), for diagnostics and plan output. */
  globalProvenance?: Record<string, Provenance>;
  /** Custom labels: name → `0xRRGGBB`. */
  labels: Record<string, string>;
  /** Where each custom label is declared (its name), for diagnostics and plan output. */
  labelProvenance?: Record<string, Provenance>;
  /** Qubes by name, in declaration order. */
  qubes: QubeDecl[];
  policy: PolicyFileDecl[];
  expect: Expectation[];
  options: StackOptions;
}

/** The file name of a generated policy file. */
export function policyFileName(stack: string, file: PolicyFileDecl): string {
  return file.include ? `include/qkit-${stack}-${file.file}` : `${String(file.priority).padStart(2, "0")}-qkit-${stack}-${file.file}.policy`;
}

/** The header line written at the top of every generated policy file. */
export function policyFileHeader(stack: string): string {
  return `# managed by qkit stack ${stack}; edits are overwritten by \`qkit template apply\``;
}

/** The feature that records the owning stack on a qube. */
export const OWNER_FEATURE = "x-qkit-stack";
/** The feature that records the managed keys of a qube (space-separated). */
export const KEYS_FEATURE = "x-qkit-keys";
/** The dom0 feature prefix that records a stack's managed global properties. */
export const GLOBALS_FEATURE_PREFIX = "x-qkit-globals-";
