/**
 * The editor extension starts in a workspace that holds only policy test
 * files (`*.policytest.yaml` / `.yml`), so their diagnostics and the rules'
 * coverage lenses appear without opening a policy file first.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { POLICY_TEST_SUFFIXES } from "@qubes-kit/language";

const manifest = JSON.parse(readFileSync(fileURLToPath(new URL("../../vscode-extension/package.json", import.meta.url)), "utf8")) as { activationEvents: string[] };

/** The file names a `workspaceContains:` glob of the form `**\/*.X.{a,b}` matches. */
function globSuffixes(glob: string): string[] {
  const m = /^workspaceContains:\*\*\/\*(\.[^{]*)(?:\{([^}]*)\})?$/.exec(glob);
  if (!m) return [];
  return m[2] === undefined ? [m[1]!] : m[2].split(",").map((x) => m[1]! + x);
}

describe("vscode activation for policy test files", () => {
  it.each([...POLICY_TEST_SUFFIXES])("a workspace with only *%s files activates the extension", (suffix) => {
    expect(manifest.activationEvents.flatMap(globSuffixes)).toContain(suffix);
  });
});
