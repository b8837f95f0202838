/**
 * A JSON Schema (draft 2020-12) of the stack format, generated from the
 * property table and the key lists, for editors that validate YAML with a
 * schema (yaml-language-server and others) without our language server.
 *
 * It is the shape only: cross-references, bundle parameter types and the
 * embedded policy are checked by {@link checkStack}.
 */
import { cannotReset, DECLARABLE_CLASSES, GLOBAL_PROPERTIES, QUBE_PROPERTIES, STANDARD_LABELS, TAG_PATTERN, type DeclarableClass, type PropertySpec } from "../qubes/properties.js";
import { FIREWALL_KEYS } from "./firewall.js";
import {
  DEVICE_CLASS_NAMES,
  DEVICE_MATCH_CLASSES,
  DEVICE_MODES,
  POWER_STATES,
  PARAM_TYPES,
  VOLUME_NAMES,
} from "./keys.js";

type Schema = Record<string, unknown>;

const PARAM = "^\\$\\{[A-Za-z_][A-Za-z0-9_-]*\\}$";
const QUBE_NAME = "^(?:[a-zA-Z][a-zA-Z0-9_.-]{0,30}|.*\\$\\{[A-Za-z_][A-Za-z0-9_-]*\\}.*)$";
const ID = "^[a-z0-9][a-z0-9_-]*$";

/** The smallest value the property's own check accepts (1 for "must be positive", 0 for "positive or zero"). */
function minimumOf(spec: PropertySpec): number | undefined {
  if (spec.type !== "int" || !spec.check) return undefined;
  if (!spec.check(-1).ok && spec.check(0).ok) return 0;
  if (!spec.check(0).ok && spec.check(1).ok) return 1;
  return undefined;
}

const ENUMS: Record<string, string[]> = { virt_mode: ["hvm", "pv", "pvh"] };

function describe(spec: PropertySpec, klass: DeclarableClass | "@global"): string {
  const effect = spec.effect === "live" ? "applies live" : spec.effect === "next-start" ? "applies at the next start" : spec.effect === "needs-halt" ? "needs the qube halted" : "";
  // The checker's `cannot-reset`: no default to reset to.
  return [spec.help, spec.defaultText ? `Default: ${spec.defaultText}.` : "", effect ? `Change ${effect}.` : "", cannotReset(klass, spec.name) ? "" : "`default` resets it."].filter(Boolean).join(" ");
}

function valueSchema(spec: PropertySpec, klass: DeclarableClass | "@global"): Schema {
  const alts: Schema[] = [];
  switch (spec.type) {
    case "int": {
      const s: Schema = { type: "integer" };
      const min = minimumOf(spec);
      if (min !== undefined) s.minimum = min;
      alts.push(s);
      if (spec.name === "memory" || spec.name === "maxmem" || spec.name === "stubdom_mem") alts.push({ type: "string", pattern: "^\\d+(?:\\.\\d+)?\\s*(?:B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)$" });
      alts.push({ type: "string", pattern: PARAM });
      break;
    }
    case "bool":
      alts.push({ type: "boolean" }, { type: "string", pattern: PARAM });
      break;
    case "vm":
      // `none` and `default` are keywords, never qube names (validate_name refuses them).
      alts.push({ type: "string", pattern: QUBE_NAME, not: { enum: ["none", "default"] } });
      if (spec.allowNone) alts.push({ const: "none" }, { type: "null" });
      break;
    case "label":
      alts.push({ type: "string", pattern: "^[a-zA-Z0-9_${}-]+$", not: { const: "default" }, examples: [...STANDARD_LABELS] });
      break;
    default:
      alts.push(ENUMS[spec.name] ? { type: "string", enum: ENUMS[spec.name]!.flatMap((v) => [v, v.toUpperCase()]) } : { type: ["string", "number"] });
      if (spec.allowNone) alts.push({ type: "null" });
  }
  if (!cannotReset(klass, spec.name)) alts.push({ const: "default" });
  return { description: describe(spec, klass), anyOf: alts };
}

const stringOrParam: Schema = { type: "string" };

/** Builds the schema (a fresh object each call). */
export function stackJsonSchema(): Schema {
  const rwByClass = new Map(DECLARABLE_CLASSES.map((c) => [c, new Set(QUBE_PROPERTIES[c].filter((p) => p.access === "rw").map((p) => p.name))]));
  const allProps = new Map<string, PropertySpec>();
  for (const c of DECLARABLE_CLASSES) for (const p of QUBE_PROPERTIES[c]) if (p.access === "rw" && !allProps.has(p.name)) allProps.set(p.name, p);

  const qubeProps: Schema = {
    class: { description: "The qube's class.", enum: [...DECLARABLE_CLASSES] },
    source: {
      description: "Where a TemplateVM or StandaloneVM comes from when it is created.",
      type: "object",
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
      properties: { clone: { type: "string", pattern: QUBE_NAME }, install: { type: "string" }, empty: { const: true } },
    },
    features: {
      description: "Features (name → value). true → \"1\", false → \"\", numbers → decimal, null removes.",
      type: "object",
      propertyNames: { pattern: "^(?:[a-zA-Z0-9_.-]|\\$\\{[A-Za-z_][A-Za-z0-9_-]*\\})+$" },
      additionalProperties: { type: ["string", "number", "boolean", "null"] },
    },
    services: {
      description: "Services (shorthand for service.NAME features): true enables, false disables, null removes.",
      type: "object",
      additionalProperties: { anyOf: [{ type: ["boolean", "null"] }, { type: "string", pattern: PARAM }] },
    },
    moved_from: { description: "The qube's former name: the plan clones that qube under this name (volumes, settings, features, tags, firewall, notes, devices), moves its users over and removes it; once moved, nothing.", type: "string", pattern: QUBE_NAME },
    tags: { description: "The managed tags (automatic tags such as created-by-* are never managed).", type: "array", items: { type: "string", pattern: `(?:${TAG_PATTERN.source})|(?:\\$\\{)` } },
    firewall: {
      description: `Firewall rules in qubesd's key=value form (${FIREWALL_KEYS.join(", ")}), in order; the list replaces the qube's rules.`,
      type: "array",
      items: { type: "string", pattern: "^\\s*(?:action|dst4|dst6|dsthost|proto|dstports|icmptype|specialtarget|expire|comment)=" },
    },
    devices: {
      description: `Device assignments per device class (${DEVICE_CLASS_NAMES.join(", ")}).`,
      type: "object",
      propertyNames: { anyOf: [{ enum: [...DEVICE_CLASS_NAMES] }, { pattern: PARAM }] },
      additionalProperties: { type: "array", items: { $ref: "#/$defs/device" } },
    },
    volumes: {
      description: "Volume settings.",
      type: "object",
      propertyNames: { enum: [...VOLUME_NAMES] },
      additionalProperties: { $ref: "#/$defs/volume" },
    },
    pools: { description: "Storage pool per volume, at creation.", type: "object", propertyNames: { enum: [...VOLUME_NAMES] }, additionalProperties: { type: "string" } },
    notes: { description: "The qube's notes.", type: "string" },
    state: { description: "The power state after apply (default any: left as it is).", enum: [...POWER_STATES] },
    absent: { description: "true removes the qube (it must be halted).", type: "boolean" },
    protect: { description: "true: never removed nor replaced by qkit.", type: "boolean" },
    ignore_changes: { description: "Keys set at creation and then left alone.", type: "array", items: { type: "string" } },
  };
  for (const [name, spec] of allProps) qubeProps[name] = valueSchema(spec, "AppVM");

  const perClass = DECLARABLE_CLASSES.map((c) => {
    const absent = [...allProps.keys()].filter((n) => !rwByClass.get(c)!.has(n));
    const then: Schema = { properties: Object.fromEntries(absent.map((n) => [n, false])) };
    if (c !== "TemplateVM" && c !== "StandaloneVM") (then.properties as Schema).source = false;
    return { if: { properties: { class: { const: c } }, required: ["class"] }, then };
  });

  const globalProps: Schema = {};
  for (const p of GLOBAL_PROPERTIES) if (p.access === "rw") globalProps[p.name] = valueSchema(p, "@global");

  const expectation: Schema = {
    anyOf: [
      { type: "string", pattern: "^\\s*\\S+\\s+\\S+\\s+(?:->\\s+)?\\S+\\s+=>\\s+(?:allow|ask|deny)(?:\\s+\\S+)?\\s*$", description: "SERVICE[+ARG] SOURCE TARGET => allow|ask|deny [TARGET]" },
      {
        type: "object",
        additionalProperties: false,
        required: ["call", "decision"],
        properties: {
          call: { type: "string", description: "SERVICE[+ARG] SOURCE -> TARGET" },
          decision: { enum: ["allow", "ask", "deny"] },
          target: { type: "string", description: "allow: the target the call resolves to; ask: the default target." },
          targets_include: { type: "array", items: { type: "string" } },
          targets_exact: { type: "array", items: { type: "string" } },
          name: { type: "string", description: "A name for people (reports show it), as in a policy test file." },
        },
      },
    ],
  };

  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "qkit stack, include or bundle file (*.qubes.yaml)",
    description: "A declarative description of Qubes OS qubes, their settings and qrexec policy (qkit template).",
    type: "object",
    additionalProperties: false,
    required: ["qkit"],
    properties: {
      qkit: { description: "The format version.", const: 1 },
      stack: { description: "The stack's name: it owns every qube and policy file it declares.", type: "string", pattern: ID, maxLength: 48 },
      bundle: { description: "A bundle's name (a reusable set of qubes and policy, instantiated with use:).", type: "string" },
      description: { type: "string" },
      params: {
        description: "A bundle's typed parameters, used as ${name} in string values and keys.",
        type: "object",
        additionalProperties: {
          anyOf: [
            { enum: [...PARAM_TYPES] },
            { type: "object", additionalProperties: false, required: ["type"], properties: { type: { enum: [...PARAM_TYPES] }, default: {}, description: { type: "string" } } },
          ],
        },
      },
      include: { description: "More files of this stack (same schema, no params), relative to this file.", anyOf: [{ type: "string" }, { type: "array", items: { type: "string", pattern: "\\.qubes\\.yaml$" } }] },
      use: {
        description: "Bundle instances.",
        type: "array",
        items: { type: "object", additionalProperties: false, required: ["bundle"], properties: { bundle: stringOrParam, as: { type: "string", pattern: ID }, with: { type: "object" } } },
      },
      global: { description: "Global properties (qubes-prefs).", type: "object", additionalProperties: false, properties: globalProps },
      labels: { description: "Custom labels: name → colour \"0xRRGGBB\".", type: "object", additionalProperties: { type: "string", pattern: "^0x[0-9a-fA-F]{6}$" } },
      qubes: { description: "The qubes, by name; each declared once in the whole stack.", type: "object", propertyNames: { pattern: QUBE_NAME }, additionalProperties: { $ref: "#/$defs/qube" } },
      policy: { description: "qrexec policy files generated by this stack.", type: "array", items: { $ref: "#/$defs/policyFile" } },
      expect: { description: "What the policy must decide after apply (checked by qkit template whatif).", type: "array", items: { $ref: "#/$defs/expectation" } },
      options: {
        type: "object",
        additionalProperties: false,
        properties: {
          prune: { type: "boolean", description: "Remove owned qubes that the stack no longer declares." },
          restart: { enum: ["never", "if-needed"], description: "Whether apply may restart running qubes for changes that need it." },
          policy_priority: { type: "integer", minimum: 0, maximum: 99, description: "The number in front of generated policy file names (default 40)." },
          adopt: { type: "boolean", description: "Take over existing qubes that no stack owns." },
        },
      },
    },
    $defs: {
      qube: { type: "object", required: ["class"], additionalProperties: false, properties: qubeProps, allOf: perClass },
      device: {
        type: "object",
        additionalProperties: false,
        properties: {
          port: { type: "string" },
          device: { type: "string" },
          backend: { type: "string", pattern: QUBE_NAME },
          match: {
            type: "object",
            additionalProperties: false,
            minProperties: 1,
            properties: { class: { anyOf: [{ enum: Object.keys(DEVICE_MATCH_CLASSES) }, { type: "string", pattern: "^[bump*][0-9a-f*]{6}$" }] }, vendor: { type: "string" }, product: { type: "string" } },
          },
          mode: { enum: [...DEVICE_MODES] },
          options: { type: "object", additionalProperties: { type: ["string", "boolean", "number"] } },
        },
        not: { required: ["port", "match"] },
        anyOf: [{ required: ["port"] }, { required: ["device"] }, { required: ["match"] }],
      },
      volume: {
        type: "object",
        additionalProperties: false,
        properties: {
          size: { anyOf: [{ type: "integer", minimum: 1 }, { type: "string", pattern: "^\\d+(?:\\.\\d+)?\\s*(?:B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$" }] },
          revisions_to_keep: { type: "integer", minimum: 0 },
          ephemeral: { type: "boolean" },
          rw: { type: "boolean" },
        },
      },
      policyFile: {
        type: "object",
        additionalProperties: false,
        required: ["file", "rules"],
        properties: {
          file: { type: "string", pattern: "^(?:[a-z0-9][a-z0-9_-]*|.*\\$\\{.*)$", description: "Names the file: <priority>-qkit-<stack>-<file>.policy." },
          priority: { type: "integer", minimum: 0, maximum: 99 },
          include: { type: "boolean", description: "An include file (policy.d/include/qkit-<stack>-<file>) instead of a numbered file." },
          rules: { type: ["string", "null"], description: "qrexec policy text, as a literal block (rules: |)." },
        },
      },
      expectation,
    },
  };
}
