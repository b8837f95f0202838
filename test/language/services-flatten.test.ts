/**
 * Differential test: the editor's incremental loader (`flattenPolicy`) must
 * agree with the strict `loadPolicy` on rules and error diagnostics, on every
 * file-loader case of the conformance corpus.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { createMemoryFileSystem, flattenPolicy, loadPolicy, parseDocument, type Diagnostic, type PolicyRule } from "@qubes-kit/language";

const DIR = fileURLToPath(new URL("../fixtures/conformance/", import.meta.url));

interface Case {
  id: string;
  files?: Record<string, string>;
  policy?: string;
  policy_name?: string;
  loader?: string;
  mode?: string;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const name of ["demo", "edge-cases", "random-public"]) {
    for (const line of readFileSync(`${DIR}${name}.in.jsonl`, "utf8").split("\n")) {
      if (!line.trim()) continue;
      const c = JSON.parse(line) as Case;
      if (c.loader === "string" || c.mode === "lint") continue;
      out.push(c);
    }
  }
  return out;
}

const ruleKey = (r: PolicyRule) => JSON.stringify([r.index, r.origin, r.via, r.service, r.argument, r.source.text, r.target.text, r.action, r.rawParams]);
const diagKey = (d: Diagnostic) => JSON.stringify([d.file, d.line, d.code, d.message, d.span]);

describe("flattenPolicy agrees with loadPolicy", () => {
  const all = cases();
  test("the corpus has cases", () => expect(all.length).toBeGreaterThan(300));
  test("on every file-loader case", () => {
    let compared = 0;
    for (const c of all) {
      const files = c.files ?? { [c.policy_name ?? "30-user.policy"]: c.policy ?? "" };
      const fs = createMemoryFileSystem(files);
      const flat = flattenPolicy(fs, { policyDir: "/etc/qubes/policy.d", runtimeDir: "/run/qubes/policy.d" }, (path, text, syntax, newlines) => parseDocument(text, { syntax, newlines, file: path }));
      if (!flat) continue; // `!compat-4.0`: the strict loader handles it.
      const load = loadPolicy(fs, { collectAll: true });
      compared++;
      expect(flat.ok, c.id).toBe(load.ok);
      const errors = (ds: Diagnostic[]) => [...new Set(ds.filter((d) => d.severity === "error" && d.file !== undefined).map(diagKey))].sort();
      expect(errors(flat.diagnostics), c.id).toEqual(errors(load.diagnostics));
      if (load.ok) expect(flat.rules.map(ruleKey), c.id).toEqual(load.policy.rules.map(ruleKey));
      expect(flat.files.map((f) => f.path), c.id).toEqual((load.ok ? load.policy.files : load.files).map((f) => f.path));
    }
    expect(compared).toBeGreaterThan(300);
  });
});
