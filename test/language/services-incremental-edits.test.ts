/**
 * The incremental workspace analysis under typing: character-level edits
 * (line endings included) across files, includes and file renames, each
 * analysed from the previous snapshot, give exactly what a from-scratch
 * analysis gives; and the per-file path of the shadowed-rule warnings gives
 * what the whole-list pass gives.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { analyzeWorkspace, createMemoryFileSystem, runAnalysis, type AnalysisDiagnostic, type PolicySnapshot } from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";

const DIR = "/etc/qubes/policy.d";
const RULES = [
  "svc.A * work vault allow",
  "svc.A * @anyvm vault deny",
  "svc.A +x @anyvm @anyvm ask",
  "svc.B * work @anyvm ask",
  "svc.B * @tag:gpg-client @default ask default_target=work",
  "svc.C * @anyvm @anyvm deny",
  "svc.C * work vault allow target=work",
  "* * @anyvm @dispvm allow",
  "* * dom0 @adminvm allow",
  "svc.A * @dispvm:default-dvm work allow",
  // Lines with per-line warnings (unknown qube, tag and template, legacy token, service case, missing redirect).
  "svc.A * nosuchqube vault allow",
  "qubes.filecopy * work @tag:nosuchtag ask",
  "svc.B * $anyvm @dispvm:nosuchdvm allow target=missing",
];
const FRAGMENTS = ["\n", "\r\n", "\r", " ", "x", "#", "allow", "deny", "+x", "*", "!include include/common\n", "!include include/missing\n", ...RULES.map((r) => r + "\n")];
const NAMES = ["10-a.policy", "30-user.policy", "40-user.policy", "50-b.policy", "Bad.policy", "include/common"];

type Files = Record<string, string>;

const initial = fc.record({
  "10-a.policy": fc.array(fc.constantFrom(...RULES), { maxLength: 6 }).map((l) => l.join("\n") + "\n"),
  "30-user.policy": fc.array(fc.constantFrom(...RULES, "!include include/common", "# c", ""), { maxLength: 10 }).map((l) => l.join("\n") + "\n"),
  "50-b.policy": fc.array(fc.constantFrom(...RULES), { maxLength: 6 }).map((l) => l.join("\n") + "\n"),
  "include/common": fc.array(fc.constantFrom(...RULES), { maxLength: 4 }).map((l) => l.join("\n") + "\n"),
});

const edit = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("type" as const), file: fc.constantFrom(...NAMES), at: fc.double({ min: 0, max: 1, noNaN: true }), remove: fc.nat(6), insert: fc.constantFrom(...FRAGMENTS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("rename" as const), file: fc.constantFrom(...NAMES), to: fc.constantFrom(...NAMES) }) },
);

function apply(files: Files, e: { kind: "type"; file: string; at: number; remove: number; insert: string } | { kind: "rename"; file: string; to: string }): Files {
  const next = { ...files };
  if (e.kind === "rename") {
    if (next[e.file] === undefined || e.file === e.to) return next;
    next[e.to] = next[e.file]!;
    delete next[e.file];
    return next;
  }
  const t = next[e.file] ?? "";
  const i = Math.floor(e.at * t.length);
  next[e.file] = t.slice(0, i) + e.insert + t.slice(Math.min(t.length, i + e.remove));
  return next;
}

function fsOf(files: Files) {
  const map: Record<string, string> = {};
  for (const [name, text] of Object.entries(files)) map[`${DIR}/${name}`] = text;
  return createMemoryFileSystem(map, [DIR, `${DIR}/include`]);
}

const shown = (d: AnalysisDiagnostic) => ({ code: d.code, severity: d.severity, message: d.message, span: d.span, line: d.line, help: d.help, related: d.related, data: d.data });

/** Everything a client sees of a snapshot. */
function view(s: PolicySnapshot) {
  const diagnostics = [...s.diagnostics.entries()]
    .filter(([, list]) => list.length)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([path, list]) => [path, list.map(shown)]);
  const rules = s.rules.map((r) => `${r.index} ${r.origin.path}:${r.origin.line} ${r.service} ${r.argument} ${r.source.text} ${r.target.text} ${r.action} ${JSON.stringify(r.via)}`);
  const services = [...s.services].map(([k, v]) => [k, [...v]]);
  return { rules, diagnostics, services, policy: s.policyDiagnostics.map((d) => d.message) };
}

/** The whole-policy warnings computed by the plain whole-list pass (no caches, no runs of files). */
function wholeList(s: PolicySnapshot) {
  const documents = [...s.files.keys()].flatMap((path) => {
    const document = s.document(path);
    return document ? [{ path, document }] : [];
  });
  const found = runAnalysis({ rules: s.rules, documents, system: s.system, listedDirs: [s.policyDir, ...(s.runtimeDir ? [s.runtimeDir] : [])] });
  return [...found.entries()]
    .map(([path, list]) => [path, list.filter((d) => d.code === "shadowed-rule" || d.code === "ask-without-targets").map(shown).sort((a, b) => a.span.start - b.span.start)] as const)
    .filter(([, list]) => list.length)
    .sort(([a], [b]) => (a < b ? -1 : 1));
}
function policyWide(s: PolicySnapshot) {
  return [...s.diagnostics.entries()]
    .map(([path, list]) => [path, list.filter((d) => d.code === "shadowed-rule" || d.code === "ask-without-targets").map(shown)] as const)
    .filter(([, list]) => list.length)
    .sort(([a], [b]) => (a < b ? -1 : 1));
}

describe("incremental analysis under typing", () => {
  const system = demoSystem();

  test("equals a from-scratch analysis after random character edits, includes and renames", () => {
    fc.assert(
      fc.property(initial, fc.array(edit, { minLength: 1, maxLength: 14 }), (start, edits) => {
        let files: Files = start;
        let snapshot = analyzeWorkspace(fsOf(files), { system });
        for (const e of edits) {
          files = apply(files, e);
          const next = analyzeWorkspace(fsOf(files), { system, previous: snapshot });
          const scratch = analyzeWorkspace(fsOf(files), { system });
          expect(view(next)).toEqual(view(scratch));
          expect(policyWide(next)).toEqual(wholeList(scratch));
          snapshot = next;
        }
      }),
      { numRuns: 150 },
    );
  });

  test("an edit in one file leaves the other files' warnings as the same objects", () => {
    const many = Array.from({ length: 40 }, (_, i) => RULES[i % RULES.length]).join("\n") + "\n";
    const files: Files = { "10-a.policy": many, "30-user.policy": many, "50-b.policy": many };
    const first = analyzeWorkspace(fsOf(files), { system });
    const t = files["50-b.policy"]!;
    const second = analyzeWorkspace(fsOf({ ...files, "50-b.policy": t.slice(0, 10) + "x" + t.slice(10) }), { system, previous: first });
    expect(second.diagnostics.get(`${DIR}/10-a.policy`)).toBe(first.diagnostics.get(`${DIR}/10-a.policy`));
    expect(second.diagnostics.get(`${DIR}/30-user.policy`)).toBe(first.diagnostics.get(`${DIR}/30-user.policy`));
    expect(second.diagnostics.get(`${DIR}/50-b.policy`)).not.toBe(first.diagnostics.get(`${DIR}/50-b.policy`));
    expect(view(second)).toEqual(view(analyzeWorkspace(fsOf({ ...files, "50-b.policy": t.slice(0, 10) + "x" + t.slice(10) }), { system })));
  });
});
