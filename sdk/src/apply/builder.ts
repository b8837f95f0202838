/**
 * `defineStack({...})`: a stack written in TypeScript, for integrators. The
 * input is typed per qube class (a property another class has, an unknown
 * key, or a value of the wrong type does not compile), and the result is the
 * same {@link StackModel} the YAML front end produces for the same content:
 * the input goes through that very front end (`checkStack`), so every check
 * and every canonical form is shared. Errors throw a
 * {@link StackDefinitionError} carrying the diagnostics.
 *
 * Differences from YAML, all in TypeScript's favour: `none` is `null`,
 * `default` is the {@link DEFAULT} marker, and bundles are plain functions
 * that return qubes, policy and expectations to spread into the definition.
 */
import { DEFAULT, checkStack, type DefaultMarker, type DeviceMode, type StackModel, type TemplateDiagnostic } from "@qubes-kit/language";

export { DEFAULT };

/** Reset to qubesd's default (`default` in YAML). */
type D = DefaultMarker;
/** A qube reference: a name, `null` for none, or {@link DEFAULT}. */
export type VmRef = string | null | D;
type Int = number | D;
type Bool = boolean | D;
type Str = string | D;

/** Properties every qube class has (the writable ones of the shared property table). */
export interface QubePropertyInput {
  label?: string;
  audiovm?: VmRef;
  autostart?: Bool;
  backup_timestamp?: number | null | D;
  bootmode?: Str;
  debug?: Bool;
  default_dispvm?: VmRef;
  default_user?: Str;
  devices_denied?: Str;
  guivm?: VmRef;
  include_in_backups?: Bool;
  installed_by_rpm?: Bool;
  ip?: string | null | D;
  ip6?: string | null | D;
  kernel?: string | null | D;
  kernelopts?: Str;
  keyboard_layout?: Str;
  mac?: Str;
  management_dispvm?: VmRef;
  /** MiB. */
  maxmem?: Int;
  /** MiB. */
  memory?: Int;
  /** A network provider, `null` for none, {@link DEFAULT} for the global default_netvm. */
  netvm?: VmRef;
  provides_network?: Bool;
  qrexec_timeout?: Int;
  shutdown_timeout?: Int;
  stubdom_mem?: number | null | D;
  vcpus?: Int;
  virt_mode?: "hvm" | "pv" | "pvh" | D;
}

/** One device assignment. */
export interface DeviceInput {
  /** A port (`00_14.0`, `2-1`). */
  port?: string;
  /** A device id (`0x1050:0x0407::u030000`), or `*`. */
  device?: string;
  /** A selector resolved at plan time: `network`, `usb-controller`, `audio`, `display`, `storage` or an interface code. */
  match?: { class?: string; vendor?: string; product?: string };
  /** The backend qube (PCI: dom0, the default). */
  backend?: string;
  mode?: DeviceMode;
  options?: Record<string, string | boolean>;
}

/** One volume's settings. */
export interface VolumeInput {
  /** Bytes, or a size such as `"20GiB"`. */
  size?: number | `${number}${"KiB" | "MiB" | "GiB" | "TiB" | "KB" | "MB" | "GB" | "TB"}`;
  revisions_to_keep?: number;
  ephemeral?: boolean;
  rw?: boolean;
}

type VolumeName = "root" | "private" | "volatile" | "kernel";

/** The keys of a qube that are not properties. */
export interface QubeStructure {
  /** The qube's former name: the plan clones that qube under this name, moves its users over and removes it (once moved, nothing). */
  moved_from?: string;
  /** Feature values: `true` → `"1"`, `false` → `""`, `null` removes. */
  features?: Record<string, string | number | boolean | null>;
  /** Shorthand for `service.NAME` features. */
  services?: Record<string, boolean | string | null>;
  /** The managed tags. */
  tags?: string[];
  /** Firewall rules in qubesd's `key=value` form, in order. */
  firewall?: string[];
  devices?: Partial<Record<"pci" | "usb" | "block" | "mic", DeviceInput[]>>;
  volumes?: Partial<Record<VolumeName, VolumeInput>>;
  /** Create-time pools per volume. */
  pools?: Partial<Record<VolumeName, string>>;
  notes?: string;
  state?: "running" | "halted" | "any";
  absent?: boolean;
  protect?: boolean;
  ignore_changes?: string[];
}

/** Where a TemplateVM or StandaloneVM comes from, at creation. */
export type SourceInput = { clone: string } | { install: string } | { empty: true };

export interface AppVMInput extends QubePropertyInput, QubeStructure {
  class: "AppVM";
  template?: string;
  template_for_dispvms?: Bool;
}
export interface TemplateVMInput extends QubePropertyInput, QubeStructure {
  class: "TemplateVM";
  source?: SourceInput;
  appvm_default_bootmode?: Str;
}
export interface StandaloneVMInput extends QubePropertyInput, QubeStructure {
  class: "StandaloneVM";
  source?: SourceInput;
  template_for_dispvms?: Bool;
}
export interface DispVMInput extends QubePropertyInput, QubeStructure {
  class: "DispVM";
  /** A disposable template (`template_for_dispvms`). */
  template?: string;
  auto_cleanup?: Bool;
}
/** One qube: the keys allowed depend on `class`. */
export type QubeInput = AppVMInput | TemplateVMInput | StandaloneVMInput | DispVMInput;

/** Global properties (`admin.property.*`). */
export interface GlobalInput {
  check_updates_vm?: Bool;
  clockvm?: VmRef;
  default_audiovm?: VmRef;
  default_dispvm?: VmRef;
  default_guivm?: VmRef;
  /** No `DEFAULT`: qubesd has no default for it (resetting it breaks its save; the checker's `cannot-reset`). */
  default_kernel?: string | null;
  default_netvm?: VmRef;
  default_pool?: Str;
  default_pool_kernel?: Str;
  default_pool_private?: Str;
  default_pool_root?: Str;
  default_pool_volatile?: Str;
  default_qrexec_timeout?: Int;
  default_shutdown_timeout?: Int;
  default_template?: VmRef;
  management_dispvm?: VmRef;
  stats_interval?: Int;
  updatevm?: VmRef;
}

/** One generated policy file. */
export interface PolicyInput {
  file: string;
  /** Default: `options.policy_priority` (40). */
  priority?: number;
  /** Policy text. */
  rules: string;
  /** An include file (`policy.d/include/qkit-STACK-FILE`). */
  include?: boolean;
}

/** An expectation: `"qubes.Gpg2 work @default => ask vault-gpg"`, or the object form. */
export type ExpectInput =
  | string
  | { call: string; decision: "allow" | "ask" | "deny"; target?: string; targets_include?: string[]; targets_exact?: string[] };

/** A whole stack. */
export interface StackInput {
  stack: string;
  description?: string;
  global?: GlobalInput;
  /** Custom labels: name → `0xRRGGBB`. */
  labels?: Record<string, string>;
  qubes?: Record<string, QubeInput>;
  policy?: PolicyInput[];
  expect?: ExpectInput[];
  options?: { prune?: boolean; restart?: "never" | "if-needed"; policy_priority?: number; adopt?: boolean };
}

/** The property keys of each class in {@link QubeInput}: checked against the shared property table by the tests. */
type Keys<T> = { [K in Exclude<keyof T, keyof QubeStructure | "class" | "source">]-?: true };
const COMMON: Keys<QubePropertyInput> = {
  label: true,
  audiovm: true,
  autostart: true,
  backup_timestamp: true,
  bootmode: true,
  debug: true,
  default_dispvm: true,
  default_user: true,
  devices_denied: true,
  guivm: true,
  include_in_backups: true,
  installed_by_rpm: true,
  ip: true,
  ip6: true,
  kernel: true,
  kernelopts: true,
  keyboard_layout: true,
  mac: true,
  management_dispvm: true,
  maxmem: true,
  memory: true,
  netvm: true,
  provides_network: true,
  qrexec_timeout: true,
  shutdown_timeout: true,
  stubdom_mem: true,
  vcpus: true,
  virt_mode: true,
};
const APPVM: Keys<AppVMInput> = { ...COMMON, template: true, template_for_dispvms: true };
const TEMPLATEVM: Keys<TemplateVMInput> = { ...COMMON, appvm_default_bootmode: true };
const STANDALONEVM: Keys<StandaloneVMInput> = { ...COMMON, template_for_dispvms: true };
const DISPVM: Keys<DispVMInput> = { ...COMMON, template: true, auto_cleanup: true };
const GLOBAL: { [K in keyof GlobalInput]-?: true } = {
  check_updates_vm: true,
  clockvm: true,
  default_audiovm: true,
  default_dispvm: true,
  default_guivm: true,
  default_kernel: true,
  default_netvm: true,
  default_pool: true,
  default_pool_kernel: true,
  default_pool_private: true,
  default_pool_root: true,
  default_pool_volatile: true,
  default_qrexec_timeout: true,
  default_shutdown_timeout: true,
  default_template: true,
  management_dispvm: true,
  stats_interval: true,
  updatevm: true,
};

/** The property names the builder types accept, per class and for `global` (sorted). */
export const BUILDER_PROPERTY_KEYS: Readonly<Record<QubeInput["class"] | "@global", readonly string[]>> = {
  AppVM: Object.keys(APPVM).sort(),
  TemplateVM: Object.keys(TEMPLATEVM).sort(),
  StandaloneVM: Object.keys(STANDALONEVM).sort(),
  DispVM: Object.keys(DISPVM).sort(),
  "@global": Object.keys(GLOBAL).sort(),
};

/** The virtual file a definition is checked as. */
export const BUILDER_FILE = "/defineStack.qubes.yaml";

/** Thrown by {@link defineStack} when the definition has errors; `diagnostics` holds every one. */
export class StackDefinitionError extends Error {
  override name = "StackDefinitionError";
  constructor(readonly diagnostics: TemplateDiagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === "error");
    super(`the stack definition has ${errors.length} error${errors.length === 1 ? "" : "s"}: ${errors.map((d) => `${d.message} [${d.code}]`).join("; ")}`);
  }
}

const DEFAULT_TOKEN = "\u0000qkit-default\u0000";

/**
 * The definition as YAML text for the front end: JSON (a subset of YAML 1.2)
 * with every {@link DEFAULT} marker written as the plain keyword `default`.
 */
export function stackInputToYaml(input: StackInput): string {
  const json = JSON.stringify(
    { qkit: 1, ...input },
    (_k, v: unknown) =>
      typeof v === "bigint"
        ? `${BIGINT_TOKEN}${v}${BIGINT_TOKEN}`
        : v !== null && typeof v === "object" && !Array.isArray(v) && (v as { default?: unknown }).default === true && Object.keys(v).length === 1
          ? DEFAULT_TOKEN
          : v,
    1,
  );
  // A bigint is written as its digits (the checker keeps them in feature values, refuses unsafe integers elsewhere).
  return json.split(JSON.stringify(DEFAULT_TOKEN)).join("default").replace(BIGINT_PATTERN, "$1") + "\n";
}

const BIGINT_TOKEN = "\u0000qkit-bigint\u0000";
/** A bigint's marker as JSON.stringify writes it (`\u0000` escaped). */
const BIGINT_PATTERN = new RegExp(`"${JSON.stringify(BIGINT_TOKEN).slice(1, -1).replace(/\\/g, "\\\\")}(-?\\d+)${JSON.stringify(BIGINT_TOKEN).slice(1, -1).replace(/\\/g, "\\\\")}"`, "g");

/** An object without the given keys (the others in their order). */
function without<T extends object>(o: T, keys: readonly string[]): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (!keys.includes(k)) out[k] = v;
  return out as T;
}

/**
 * Removes what only says where a declaration was written (`provenance`, `keyProvenance`,
 * `rulesOffset`, `globalProvenance`, `labelProvenance`, a device's `provenance`), to compare models. Only those places:
 * a feature or a property value called `provenance` stays.
 */
export function withoutProvenance(model: StackModel): StackModel {
  const out = without(model, ["globalProvenance", "labelProvenance"]);
  if (Array.isArray(model.qubes)) {
    out.qubes = model.qubes.map((q) => {
      const d = without(q, ["provenance", "keyProvenance"]);
      if (q.devices) d.devices = Object.fromEntries(Object.entries(q.devices).map(([cls, list]) => [cls, list.map((x) => without(x, ["provenance"]))]));
      return d;
    });
  }
  if (Array.isArray(model.policy)) out.policy = model.policy.map((f) => without(f, ["provenance", "rulesOffset"]));
  if (Array.isArray(model.expect)) out.expect = model.expect.map((e) => without(e, ["provenance"]));
  return out;
}

/**
 * Builds a stack from TypeScript. The result is the model the YAML front end
 * gives for the same content (without provenance: the definition has no file).
 * Throws {@link StackDefinitionError} with the diagnostics when there are errors.
 */
export function defineStack(input: StackInput): StackModel {
  const text = stackInputToYaml(input);
  const r = checkStack({ readFile: (p) => (p === BUILDER_FILE ? text : undefined) }, BUILDER_FILE);
  if (!r.model) throw new StackDefinitionError(r.diagnostics);
  return withoutProvenance(r.model);
}
