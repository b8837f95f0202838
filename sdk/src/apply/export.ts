/**
 * `qkit template export`: a stack file written from a live system, the way
 * in for existing machines. Per qube: its class, label, template, every
 * other writable property that is not at its default, its features (those
 * the qube reports about itself, the protected ones and qkit's own left
 * out; `service.X` as `services:`), its tags minus the automatic ones, its
 * firewall when it is not the default single `accept`, and its persistent
 * device assignments, and its notes. Global properties that are not at their default and
 * custom labels come too. The output is YAML in the strict profile (block
 * style, no anchors, no tags), in a stable order.
 */
import {
  GLOBALS_FEATURE_PREFIX,
  KEYS_FEATURE,
  OWNER_FEATURE,
  PROTECTED_FEATURES,
  STANDARD_LABELS,
  isAutomaticTag,
  propertySpec,
  type DeclarableClass,
} from "@qubes-kit/language";
import { calls } from "../calls.js";
import { CLONE_FEATURE, MOVED_FEATURE } from "./keys.js";
import type { DeviceAssignment } from "../devices.js";
import { QubesException } from "../errors.js";
import { mapLimit } from "../events.js";
import { formatFirewallRule } from "../firewall.js";
import type { Qubes } from "../qubes.js";
import type { PropertyValue } from "../values.js";

/** Options of {@link exportStack}. */
export interface ExportOptions {
  /** The stack name written (default `exported`). */
  stack?: string;
  /** Only these qubes (default: every qube but dom0 and auto-cleanup disposables). */
  qubes?: string[];
  /** Device classes whose assignments are exported (default `pci`, `usb`, `block`). */
  deviceClasses?: string[];
  concurrency?: number;
}

/** The outcome of {@link exportStack}. */
export interface ExportResult {
  /** The stack file text. */
  yaml: string;
  /** The qubes written. */
  qubes: string[];
  /** One line per thing left out and why (a qube of a class stacks cannot declare, an unreadable setting). */
  notes: string[];
}

/**
 * Features a qube reports about itself (qubes.NotifyTools, qubes.FeaturesRequest,
 * template packaging, the updater): they describe the qube, the stack does not set them.
 */
export function isReportedFeature(name: string): boolean {
  return (
    /^(supported-service|supported-feature|supported-rpc)\./.test(name) ||
    /^template-(name|epoch|version|release|reponame|buildtime|installtime|license|url|summary|description)$/.test(name) ||
    /^os(-|$)/.test(name) ||
    ["qrexec", "gui", "gui-emulated", "vmexec", "last-updates-check", "updates-available", "skip-update", "boot-mode.active", "boot-mode.default-user"].includes(name) ||
    name.startsWith("boot-mode.kernelopts.") ||
    name.startsWith("boot-mode.name.")
  );
}

/** Whether stacks leave a feature alone on export. */
function skipFeature(name: string): boolean {
  return name === OWNER_FEATURE || name === KEYS_FEATURE || name === CLONE_FEATURE || name === MOVED_FEATURE || name.startsWith(GLOBALS_FEATURE_PREFIX) || PROTECTED_FEATURES.has(name) || isReportedFeature(name);
}

/** A YAML scalar: plain when that reads back as the same string, else double-quoted. */
export function yamlScalar(v: string | number | boolean | null): string {
  if (v === null) return "null";
  if (typeof v !== "string") return String(v);
  const plainSafe =
    /^[A-Za-z_./][A-Za-z0-9_./+=:@,*-]*(?: [A-Za-z0-9_./+=:@,*-]+)*$/.test(v) &&
    !/^(true|false|null|yes|no|on|off|y|n|default|none|~)$/i.test(v) &&
    !/: |:$/.test(v) &&
    !/^[0-9.+-]/.test(v);
  return plainSafe ? v : JSON.stringify(v);
}

function yamlKey(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k) && !/^(true|false|null|yes|no|on|off|y|n|~)$/i.test(k) ? k : JSON.stringify(k);
}

/** A scalar written plain whatever it looks like (the keyword `none`). */
class Plain {
  constructor(readonly text: string) {}
}

type Y = string | number | boolean | null | Plain | Y[] | { [k: string]: Y };

/** Block-style YAML of a value (maps and lists indented by two spaces; empty ones in flow style). */
export function toYaml(value: Y, indent = 0): string {
  const pad = " ".repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]\n";
    return (
      "\n" +
      value
        .map((v) => {
          if (v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Plain) && Object.keys(v).length) {
            const body = toYaml(v, indent + 2).replace(/^\n/, "");
            return `${pad}- ${body.slice(indent + 2)}`;
          }
          return `${pad}- ${toYaml(v, indent + 2).replace(/^\n/, "")}`;
        })
        .join("")
    );
  }
  if (value instanceof Plain) return value.text + "\n";
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0) return "{}\n";
    return (
      "\n" +
      entries
        .map(([k, v]) => {
          const inner = toYaml(v, indent + 2);
          return `${pad}${yamlKey(k)}:${inner.startsWith("\n") ? inner : " " + inner}`;
        })
        .join("")
    );
  }
  return yamlScalar(value) + "\n";
}

function propValue(p: PropertyValue, type: string): Y {
  if (p.value === undefined || p.value === null) return type === "vm" ? new Plain("none") : null;
  return p.value;
}

function deviceEntry(a: DeviceAssignment): Y {
  const out: { [k: string]: Y } = {};
  if (a.backendDomain !== "dom0" || a.devclass !== "pci") out["backend"] = a.backendDomain;
  if (a.portId && a.portId !== "*") out["port"] = a.portId;
  if (a.deviceId && a.deviceId !== "*") out["device"] = a.deviceId;
  else if (!out["port"]) out["device"] = "*";
  const mode = a.mode === "manual" ? "auto-attach" : a.mode;
  if (mode !== (a.devclass === "pci" ? "required" : "auto-attach")) out["mode"] = mode;
  const opts = Object.entries(a.options);
  if (opts.length) {
    const o: { [k: string]: Y } = {};
    for (const [k, v] of opts) o[k] = v === "True" ? true : v === "False" ? false : v;
    out["options"] = o;
  }
  return out;
}

const DECLARABLE = new Set(["AppVM", "TemplateVM", "StandaloneVM", "DispVM"]);
/** Properties never exported: identity, create-time facts, timestamps. */
const NOT_EXPORTED = new Set(["name", "qid", "uuid", "dispid", "backup_timestamp", "installed_by_rpm", "label", "template"]);

/** Writes a stack file from the live system. */
export async function exportStack(qubes: Qubes, options: ExportOptions = {}): Promise<ExportResult> {
  const notes: string[] = [];
  const list = await qubes.run(calls.vmList());
  const byName = new Map(list.map((e) => [e.name, e]));
  const wanted = options.qubes ?? list.map((e) => e.name);
  const chosen: string[] = [];
  for (const name of wanted) {
    const e = byName.get(name);
    if (!e) throw new QubesException(`no such qube: ${name}`);
    if (!DECLARABLE.has(e.class)) {
      if (options.qubes) notes.push(`${name}: a ${e.class} is not declared in stacks; left out`);
      continue;
    }
    chosen.push(name);
  }
  const classes = options.deviceClasses ?? ["pci", "usb", "block"];
  const read = await mapLimit(chosen, options.concurrency ?? 8, async (name) => {
    const klass = byName.get(name)!.class as DeclarableClass;
    const [props, featureNames, tags, firewall] = await Promise.all([
      qubes.run(calls.propertyGetAll(name)),
      qubes.run(calls.featureList(name)),
      qubes.run(calls.tagList(name)),
      qubes.run(calls.firewallGet(name)).catch((err: unknown) => {
        notes.push(`${name}: firewall not read (${err instanceof Error ? err.message : String(err)})`);
        return undefined;
      }),
    ]);
    const features: [string, string][] = [];
    for (const f of featureNames.filter((f) => !skipFeature(f)).sort()) features.push([f, await qubes.run(calls.featureGet(name, f))]);
    let text = "";
    try {
      text = await qubes.run(calls.notesGet(name));
    } catch {
      // A qubesd without notes (before 4.3): nothing to export.
    }
    const devices: Record<string, DeviceAssignment[]> = {};
    for (const c of classes) {
      try {
        const a = await qubes.run(calls.deviceAssigned(name, c));
        if (a.length) devices[c] = a;
      } catch {
        // A device class this qubesd does not know: nothing assigned.
      }
    }
    return { name, klass, props, features, tags, firewall, devices, notes: text };
  });
  const autoCleanup = (r: (typeof read)[number]) => r.klass === "DispVM" && r.props.get("auto_cleanup")?.value === true;

  const doc: { [k: string]: Y } = { qkit: 1, stack: options.stack ?? "exported" };
  // Global properties.
  const global: { [k: string]: Y } = {};
  for (const [k, p] of await qubes.run(calls.propertyGetAll())) {
    const spec = propertySpec("@global", k);
    if (!spec || spec.access !== "rw" || p.isDefault) continue;
    global[k] = propValue(p, spec.type);
  }
  if (Object.keys(global).length) doc["global"] = global;
  // Custom labels.
  const labels: { [k: string]: Y } = {};
  for (const l of await qubes.run(calls.labelList())) {
    if ((STANDARD_LABELS as readonly string[]).includes(l)) continue;
    try {
      labels[l] = (await qubes.run(calls.labelGet(l))).toLowerCase();
    } catch (err) {
      notes.push(`label ${l}: colour not readable (${err instanceof Error ? err.message : String(err)}); left out`);
    }
  }
  if (Object.keys(labels).length) doc["labels"] = labels;

  const qmap: { [k: string]: Y } = {};
  const written: string[] = [];
  for (const r of read) {
    if (autoCleanup(r) && !options.qubes) continue;
    const q: { [k: string]: Y } = { class: r.klass };
    const label = r.props.get("label");
    if (label && typeof label.value === "string") q["label"] = label.value;
    const tpl = r.props.get("template");
    if ((r.klass === "AppVM" || r.klass === "DispVM") && tpl && typeof tpl.value === "string") q["template"] = tpl.value;
    for (const [k, p] of [...r.props].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (p.isDefault || NOT_EXPORTED.has(k)) continue;
      const spec = propertySpec(r.klass, k);
      if (!spec || spec.access !== "rw") continue;
      q[k] = propValue(p, spec.type);
    }
    const features: { [k: string]: Y } = {};
    const services: { [k: string]: Y } = {};
    for (const [k, v] of r.features) {
      if (k.startsWith("service.")) services[k.slice("service.".length)] = v === "1" ? true : v === "" ? false : v;
      else features[k] = v;
    }
    if (Object.keys(features).length) q["features"] = features;
    if (Object.keys(services).length) q["services"] = services;
    const tags = r.tags.filter((t) => !isAutomaticTag(t)).sort();
    if (tags.length) q["tags"] = tags;
    if (r.firewall) {
      const rules = r.firewall.map((f) => formatFirewallRule(f));
      if (!(rules.length === 1 && rules[0] === "action=accept")) q["firewall"] = rules;
    }
    const devices: { [k: string]: Y } = {};
    for (const [c, list] of Object.entries(r.devices)) devices[c] = list.map(deviceEntry);
    if (Object.keys(devices).length) q["devices"] = devices;
    if (r.notes !== "") q["notes"] = r.notes;
    qmap[r.name] = q;
    written.push(r.name);
  }
  doc["qubes"] = qmap;
  const header = "# written by `qkit template export`: review it, then `qkit template plan --adopt` it\n";
  return { yaml: header + toYaml(doc).replace(/^\n/, ""), qubes: written, notes };
}
