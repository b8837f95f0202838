/**
 * Policy workspaces of the incremental-analysis tests: files as lines under
 * /etc/qubes/policy.d, and what a client sees of a snapshot.
 */
import { createMemoryFileSystem, type PolicySnapshot } from "@qubes-kit/language";

export const DIR = "/etc/qubes/policy.d";

/** Policy files by name (relative to {@link DIR}), as lines. */
export type Files = Record<string, string[]>;

/** The files in memory, with the policy directory and its `include` folder. */
export function fsOf(files: Files) {
  const map: Record<string, string> = {};
  for (const [name, lines] of Object.entries(files)) map[`${DIR}/${name}`] = lines.join("\n") + "\n";
  return createMemoryFileSystem(map, [DIR, `${DIR}/include`]);
}

/** Everything a client sees of a snapshot: rules and diagnostics (with related places and fix data). */
export function view(s: PolicySnapshot) {
  const diagnostics = [...s.diagnostics.entries()]
    .filter(([, list]) => list.length)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([path, list]) => [path, list.map((d) => ({ code: d.code, severity: d.severity, message: d.message, span: d.span, line: d.line, help: d.help, related: d.related, data: d.data }))]);
  const rules = s.rules.map((r) => `${r.index} ${r.origin.path}:${r.origin.line} ${r.service} ${r.argument} ${r.source.text} ${r.target.text} ${r.action}`);
  return { rules, diagnostics, policy: s.policyDiagnostics.map((d) => d.message) };
}
