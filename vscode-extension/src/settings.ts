/**
 * The settings the extension sends to the language server, per workspace folder, and what
 * workspace trust takes away from them.
 *
 * INVARIANT: this module imports nothing at run time (no `vscode`), so it is unit-tested in
 * plain Node and bundled as is.
 */
import type { QubesPolicySettings, SystemModelStatusParams } from "@qubes-kit/lsp";

/** The settings section, and the key of `initializationOptions` the server reads it from. */
export const SECTION = "qubesPolicy";

/** Sources and connections that read this machine (qubesd's socket, or qrexec calls). */
const LIVE = new Set(["socket", "qrexec"]);

/**
 * The settings for the server: `raw` as VS Code resolved them for a folder (in an untrusted
 * workspace VS Code has already dropped the workspace's values of the restricted settings
 * listed in `package.json`), with everything that reads this machine turned off when the
 * workspace is not trusted: a `socket`/`qrexec` system model becomes `none`, and plan and
 * what-if over the socket or qrexec (or `auto` from such a source) become `none`.
 * `raw` is not modified; anything that is not an object gives `{}`.
 */
export function serverSettings(raw: unknown, trusted: boolean): QubesPolicySettings {
  const settings = isObject(raw) ? (JSON.parse(JSON.stringify(raw)) as QubesPolicySettings) : {};
  if (trusted) return settings;
  const source = settings.system?.source;
  if (source !== undefined && LIVE.has(source)) settings.system = { ...settings.system, source: "none" };
  const connection = settings.template?.connection ?? "auto";
  if (LIVE.has(connection) || (connection === "auto" && source !== undefined && LIVE.has(source))) {
    settings.template = { ...settings.template, connection: "none" };
  }
  return settings;
}

/** What an untrusted workspace turned off in `raw` (setting names with their values), for a log line. */
export function restrictedByTrust(raw: unknown): string[] {
  const before = serverSettings(raw, true);
  const after = serverSettings(raw, false);
  const off: string[] = [];
  if (before.system?.source !== after.system?.source) off.push(`${SECTION}.system.source: ${String(before.system?.source)}`);
  if ((before.template?.connection ?? "auto") !== after.template?.connection && after.template?.connection === "none") {
    off.push(`${SECTION}.template.connection: ${String(before.template?.connection ?? "auto")}`);
  }
  return off;
}

/**
 * The notification text for a system-model status from the server, or `undefined` when there
 * is nothing to say (the model loaded, or no model is configured). `folder` names the workspace
 * folder in a multi-root window.
 */
export function systemModelMessage(status: SystemModelStatusParams, folder?: string): string | undefined {
  if (!status.error) return undefined;
  const where = folder ? ` (folder ${folder})` : "";
  const error = status.error.replace(/\s+/g, " ").trim();
  return `Qubes: the system model did not load${where}: ${error}; check the ${SECTION}.system settings.`;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}
