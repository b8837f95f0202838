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

describe("analyzeWorkspace", () => {
  test("reuses the parses of unchanged files from the previous snapshot", async () => {
    const { analyzeWorkspace } = await import("@qubes-kit/language");
    const files = { "10-a.policy": "qubes.A * work vault allow\n", "20-b.policy": "qubes.B * work vault allow\n" };
    const first = analyzeWorkspace(createMemoryFileSystem(files));
    const second = analyzeWorkspace(createMemoryFileSystem({ ...files, "20-b.policy": "qubes.B * work vault deny\n" }), { previous: first });
    expect(second.document("/etc/qubes/policy.d/10-a.policy")).toBe(first.document("/etc/qubes/policy.d/10-a.policy"));
    expect(second.document("/etc/qubes/policy.d/20-b.policy")).not.toBe(first.document("/etc/qubes/policy.d/20-b.policy"));
    expect(second.rules.map((r) => r.action)).toEqual(["allow", "deny"]);
  });

  test("the strict load is lazy and sees the files as they were", async () => {
    const { analyzeWorkspace } = await import("@qubes-kit/language");
    const files: Record<string, string> = { "10-a.policy": "qubes.A * work vault allow\n" };
    const fs = createMemoryFileSystem(files);
    const snapshot = analyzeWorkspace(fs);
    expect(snapshot.policy?.rules).toHaveLength(1);
    expect(snapshot.load.ok).toBe(true);
  });
});

describe("incremental snapshots", () => {
  test("a chain of edits gives the same rules and diagnostics as fresh analyses", async () => {
    const { analyzeWorkspace } = await import("@qubes-kit/language");
    const fc = (await import("fast-check")).default;
    const lines = ["qubes.A * work vault allow", "qubes.A * @anyvm vault deny", "qubes.B * @anyvm @anyvm ask", "qubes.A * work vault alow", "!include include/x", "* * @anyvm @anyvm deny"];
    const fileArb = fc.array(fc.constantFrom(...lines), { maxLength: 5 }).map((ls) => ls.join("\n") + "\n");
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom("10-a.policy", "20-b.policy", "include/x"), fileArb), { minLength: 1, maxLength: 6 }), (edits) => {
        const files: Record<string, string> = { "10-a.policy": "", "20-b.policy": "", "include/x": "qubes.C * a b allow\n" };
        let prev: ReturnType<typeof analyzeWorkspace> | undefined;
        for (const [name, text] of edits) {
          files[name] = text;
          const fs = createMemoryFileSystem({ ...files });
          const next = analyzeWorkspace(fs, prev ? { previous: prev } : {});
          const fresh = analyzeWorkspace(createMemoryFileSystem({ ...files }));
          expect(next.rules.map(ruleKey)).toEqual(fresh.rules.map(ruleKey));
          expect(JSON.stringify([...next.diagnostics])).toEqual(JSON.stringify([...fresh.diagnostics]));
          prev = next;
        }
      }),
      { numRuns: 100 },
    );
  });
});
