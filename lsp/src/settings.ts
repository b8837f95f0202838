/**
 * The server's settings as the client sent them, checked key by key.
 *
 * Settings arrive from `workspace/configuration`, `initializationOptions` or
 * `workspace/didChangeConfiguration`, typed by nobody: a value of the wrong
 * type is left out (its default applies) and reported in one line with the
 * setting's full name, what it is and what it may be, so that a typo such as
 * `system.source: "flie"` is not silently the same as no setting at all.
 */
import type { QubesPolicySettings, SystemSource } from "./protocol.js";

/** The settings that were usable, and one line per value that was not. */
export interface SettingsReading {
  settings: QubesPolicySettings;
  problems: string[];
}

const SOURCES: readonly SystemSource[] = ["none", "file", "socket", "qrexec"];
const SEVERITIES = ["error", "warning", "info", "hint", "off"] as const;
const CONNECTIONS = ["auto", "simulator", "socket", "qrexec", "none"] as const;
const KNOWN = new Set(["system", "policyDir", "runtimeDir", "legacyDir", "analysis", "codeLens", "template", "trace"]);

/** A short JSON text of a value for a message (one line, clipped). */
function shown(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  s = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Reads the `qubesPolicy` settings object: every known key of the right type
 * is kept, every other value is reported (code `invalid-setting`) and left to
 * its default. Never throws.
 */
export function readSettings(raw: unknown): SettingsReading {
  const problems: string[] = [];
  const settings: QubesPolicySettings = {};
  const bad = (key: string, v: unknown, want: string) => problems.push(`setting qubesPolicy.${key} is ${shown(v)}, which is not ${want}: it is ignored (the default applies); fix it in your editor's settings [invalid-setting]`);
  if (!isObject(raw)) {
    if (raw !== undefined && raw !== null) bad("", raw, "an object of settings");
    return { settings, problems };
  }
  const str = (key: string, v: unknown): string | undefined => {
    // an empty string is how editors show a path setting left unset
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v === "string") return v;
    bad(key, v, "a string (a path)");
    return undefined;
  };
  /** One of `allowed`, or undefined (reported unless absent). */
  const oneOf = <T extends string>(key: string, v: unknown, allowed: readonly T[]): T | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v === "string" && (allowed as readonly string[]).includes(v)) return v as T;
    bad(key, v, `one of ${allowed.join(", ")}`);
    return undefined;
  };
  for (const k of Object.keys(raw))
    if (!KNOWN.has(k)) problems.push(`setting qubesPolicy.${k} is not a setting of the qubes policy server (known: ${[...KNOWN].join(", ")}): it is ignored [unknown-setting]`);
  if (raw.system !== undefined && raw.system !== null) {
    if (!isObject(raw.system)) bad("system", raw.system, "an object (source, file, socket)");
    else {
      const sys: NonNullable<QubesPolicySettings["system"]> = {};
      const src = oneOf("system.source", raw.system.source, SOURCES);
      if (src !== undefined) sys.source = src;
      const file = str("system.file", raw.system.file);
      if (file !== undefined) sys.file = file;
      const socket = str("system.socket", raw.system.socket);
      if (socket !== undefined) sys.socket = socket;
      settings.system = sys;
    }
  }
  for (const key of ["policyDir", "runtimeDir", "legacyDir"] as const) {
    const v = str(key, raw[key]);
    if (v !== undefined) settings[key] = v;
  }
  if (raw.analysis !== undefined && raw.analysis !== null) {
    if (!isObject(raw.analysis)) bad("analysis", raw.analysis, "an object of severities by diagnostic code");
    else {
      const out: NonNullable<QubesPolicySettings["analysis"]> = {};
      for (const [code, sev] of Object.entries(raw.analysis)) {
        const s = oneOf(`analysis.${code}`, sev, SEVERITIES);
        if (s !== undefined) out[code] = s;
      }
      settings.analysis = out;
    }
  }
  if (raw.codeLens !== undefined && raw.codeLens !== null) {
    if (typeof raw.codeLens === "boolean") settings.codeLens = raw.codeLens;
    else bad("codeLens", raw.codeLens, "true or false");
  }
  if (raw.template !== undefined && raw.template !== null) {
    if (!isObject(raw.template)) bad("template", raw.template, "an object (connection, socket, policyDir)");
    else {
      const t: NonNullable<QubesPolicySettings["template"]> = {};
      const c = oneOf("template.connection", raw.template.connection, CONNECTIONS);
      if (c !== undefined) t.connection = c;
      const socket = str("template.socket", raw.template.socket);
      if (socket !== undefined) t.socket = socket;
      const dir = str("template.policyDir", raw.template.policyDir);
      if (dir !== undefined) t.policyDir = dir;
      settings.template = t;
    }
  }
  return { settings, problems };
}
