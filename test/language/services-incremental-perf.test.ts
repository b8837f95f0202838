/**
 * The incremental analysis (per service, with the caches a snapshot hands to
 * the next) gives exactly what a from-scratch analysis gives, after any
 * sequence of edits; and an edit re-analyses only the services it touches.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  analyzeWorkspace,
  analyzeWorkspaceSteps,
  askFeeders,
  createMemoryFileSystem,
  findShadowingRules,
  loadPolicy,
  serviceFindings,
  ServiceAnalysisCache,
  type PolicySnapshot,
  type SystemInfo,
} from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";
import { DIR, fsOf, view, type Files } from "../helpers/policy-workspace.js";

const SOURCES = ["*", "@anyvm", "dom0", "work", "vault", "@tag:gpg-client", "@type:AppVM", "@dispvm:default-dvm"];
const TARGETS = ["*", "@anyvm", "@default", "@dispvm", "work", "vault", "@adminvm", "@tag:gpg-client"];
const ACTIONS = ["allow", "deny", "ask", "ask target=vault", "allow target=work", "ask default_target=work", "alow"];

const ruleLine = fc
  .tuple(fc.constantFrom("svc.A", "svc.B", "svc.C", "*"), fc.constantFrom("*", "+", "+x"), fc.constantFrom(...SOURCES), fc.constantFrom(...TARGETS), fc.constantFrom(...ACTIONS))
  .map(([s, a, src, tgt, act]) => `${s} ${s === "*" ? "*" : a} ${src} ${tgt} ${act}`);
const anyLine = fc.oneof({ weight: 8, arbitrary: ruleLine }, { weight: 1, arbitrary: fc.constantFrom("", "# comment", "svc.A * work", "!include include/common") });

const FILES = ["10-a.policy", "30-user.policy", "50-b.policy", "include/common"];

const edit = fc.record({
  file: fc.constantFrom(...FILES),
  kind: fc.constantFrom("insert", "replace", "delete", "drop-file"),
  at: fc.nat(20),
  line: anyLine,
});

function apply(files: Files, e: { file: string; kind: string; at: number; line: string }): Files {
  const next: Files = { ...files };
  const lines = [...(next[e.file] ?? [])];
  const i = lines.length ? e.at % (lines.length + 1) : 0;
  if (e.kind === "insert") lines.splice(i, 0, e.line);
  else if (e.kind === "replace" && lines.length) lines[Math.min(i, lines.length - 1)] = e.line;
  else if (e.kind === "delete" && lines.length) lines.splice(Math.min(i, lines.length - 1), 1);
  if (e.kind === "drop-file") delete next[e.file];
  else next[e.file] = lines;
  return next;
}



/** Applies the edits one by one; after each, the analysis from the previous snapshot equals a fresh one. */
function replayEqualsScratch(files: Files, edits: ReadonlyArray<{ file: string; kind: string; at: number; line: string }>, system: SystemInfo): void {
  let snapshot = analyzeWorkspace(fsOf(files), { system });
  for (const e of edits) {
    files = apply(files, e);
    const next = analyzeWorkspace(fsOf(files), { system, previous: snapshot });
    expect(view(next)).toEqual(view(analyzeWorkspace(fsOf(files), { system })));
    snapshot = next;
  }
}

describe("incremental analysis", () => {
  const system = demoSystem();

  // Found by the property below (seed -687584240): lines inserted near the end of a file made the
  // re-parse double the empty last line, and later rules carried a line number one too high.
  test("lines inserted near the end of a file keep every rule's line", () => {
    const files: Files = { "30-user.policy": ["svc.A * * * allow", "svc.A * * * allow", "", ...Array(6).fill("svc.A * * * allow")] };
    const edits = [
      { file: "30-user.policy", kind: "insert", at: 0, line: "svc.A * * * allow" },
      { file: "30-user.policy", kind: "insert", at: 8, line: "svc.A * * * alow" },
      { file: "30-user.policy", kind: "insert", at: 9, line: "svc.A * * * ask" },
      { file: "30-user.policy", kind: "insert", at: 10, line: "svc.A * * * allow" },
    ];
    replayEqualsScratch(files, edits, system);
  });

  // Found by the property below: a warning in an unchanged file whose broader rule moved (lines
  // inserted or removed above it) is made again for the rule's new line, also when the rule object
  // it was made with is an older one at the same place.
  test("warnings in unchanged files follow their broader rule's line", () => {
    const files: Files = {
      "10-a.policy": ["svc.A * @type:AppVM * allow", "svc.A * * * allow", "svc.A * * * allow", "svc.A * * * allow"],
      "30-user.policy": [],
      "50-b.policy": ["svc.A * * * allow", "svc.A * work vault allow"],
      "include/common": [],
    };
    const edits = [
      { file: "10-a.policy", kind: "insert", at: 8, line: "svc.A * * @adminvm allow" },
      { file: "10-a.policy", kind: "delete", at: 0, line: "" },
      { file: "10-a.policy", kind: "insert", at: 0, line: "# a comment" },
      { file: "10-a.policy", kind: "insert", at: 0, line: "svc.B * * * allow" },
      { file: "10-a.policy", kind: "insert", at: 2, line: "" },
      { file: "10-a.policy", kind: "delete", at: 1, line: "" },
      { file: "10-a.policy", kind: "replace", at: 1, line: "svc.A * work * deny" },
    ];
    replayEqualsScratch(files, edits, system);
  });

  // Found by the property below (seed 392830026): a `*` rule inserted at the place of an unchanged file's
  // broader rule (which moved down) is the new broader rule; the warning followed the old one instead.
  test("a rule inserted at a broader rule's place becomes the broader rule of unchanged files", () => {
    const A = "svc.A * * * allow";
    const files: Files = { "10-a.policy": [A, A, A, A, A, A], "30-user.policy": [], "50-b.policy": ["svc.C * * vault allow", "* * * * allow"], "include/common": [] };
    const edits = [
      { file: "10-a.policy", kind: "insert", at: 0, line: A },
      { file: "10-a.policy", kind: "insert", at: 2, line: "* * * * allow" },
      { file: "10-a.policy", kind: "insert", at: 20, line: "* * * vault allow" },
      { file: "10-a.policy", kind: "insert", at: 0, line: A },
    ];
    replayEqualsScratch(files, edits, system);
  });

  test("equals a from-scratch analysis after random edit sequences", () => {
    const start = fc.record({
      "10-a.policy": fc.array(anyLine, { maxLength: 8 }),
      "30-user.policy": fc.array(anyLine, { maxLength: 12 }),
      "50-b.policy": fc.array(anyLine, { maxLength: 8 }),
      "include/common": fc.array(ruleLine, { maxLength: 4 }),
    });
    fc.assert(
      fc.property(start, fc.array(edit, { minLength: 1, maxLength: 12 }), fc.boolean(), (initial, edits, sliced) => {
        let files: Files = initial;
        let snapshot = analyzeWorkspace(fsOf(files), { system });
        for (const e of edits) {
          files = apply(files, e);
          let next: PolicySnapshot;
          if (sliced) {
            // The way the server runs it: step by step, sometimes abandoned half-way and started again.
            const abandoned = analyzeWorkspaceSteps(fsOf(files), { system, previous: snapshot });
            for (let k = 0; k < e.at % 4; k++) if (abandoned.next().done) break;
            next = analyzeWorkspace(fsOf(files), { system, previous: snapshot });
          } else next = analyzeWorkspace(fsOf(files), { system, previous: snapshot });
          const scratch = analyzeWorkspace(fsOf(files), { system });
          expect(view(next)).toEqual(view(scratch));
          snapshot = next;
        }
      }),
      { numRuns: 120 },
    );
  });

  test("the per-service findings equal the whole-policy shadowing after random rule lists", () => {
    fc.assert(
      fc.property(fc.array(fc.array(ruleLine, { maxLength: 14 }), { minLength: 1, maxLength: 5 }), (versions) => {
        const cache = new ServiceAnalysisCache();
        for (const lines of versions) {
          const load = loadPolicy(createMemoryFileSystem({ [`${DIR}/30-user.policy`]: lines.join("\n") + "\n" }));
          if (!load.ok) continue;
          const rules = load.policy.rules;
          const incremental = serviceFindings(rules, cache);
          expect(incremental.shadowedBy.map((r) => r?.index)).toEqual(findShadowingRules(rules).map((r) => r?.index));
          const feeds = askFeeders(rules);
          expect([...incremental.feedsAsk]).toEqual(rules.map((r) => (feeds(r) ? 1 : 0)));
          const scratch = serviceFindings(rules);
          expect([incremental.shadowedBy, incremental.feedsAsk, incremental.askWithoutTargets]).toEqual([scratch.shadowedBy, scratch.feedsAsk, scratch.askWithoutTargets]);
        }
      }),
      { numRuns: 150 },
    );
  });

  test("an edit re-analyses only the services whose rules it touches", () => {
    const files = {
      "10-a.policy": ["svc.A * work vault allow", "svc.A * @anyvm vault deny", "svc.B * work @anyvm ask"],
      "30-user.policy": ["svc.C * @anyvm @anyvm deny", "svc.B * work vault allow", "svc.C * work vault allow"],
    };
    const first = analyzeWorkspace(fsOf(files), { system });
    expect(first.serviceCache.last?.findings.recomputed.slice().sort()).toEqual([null, "svc.A", "svc.B", "svc.C"]);
    // A new line for svc.B above everything else in its file: only svc.B is analysed again.
    const second = analyzeWorkspace(fsOf({ ...files, "30-user.policy": ["# new", "svc.B * vault work deny", ...files["30-user.policy"]] }), { system, previous: first });
    expect(second.serviceCache.last?.findings.recomputed).toEqual(["svc.B"]);
    // The shadowed rules (svc.B under 10-a.policy:3, svc.C under line 1) moved two lines down: same findings, new places.
    const shadowed = (s: PolicySnapshot) => (s.diagnostics.get(`${DIR}/30-user.policy`) ?? []).filter((d) => d.code === "shadowed-rule").map((d) => d.line);
    expect(shadowed(first)).toEqual([2, 3]);
    expect(shadowed(second)).toEqual([4, 5]);
    // A comment typed into a file changes no service at all.
    const third = analyzeWorkspace(fsOf({ ...files, "30-user.policy": ["# new!", "svc.B * vault work deny", ...files["30-user.policy"]] }), { system, previous: second });
    expect(third.serviceCache.last?.findings.recomputed).toEqual([]);
    expect(view(third).diagnostics).toEqual(view(analyzeWorkspace(fsOf({ ...files, "30-user.policy": ["# new!", "svc.B * vault work deny", ...files["30-user.policy"]] }), { system })).diagnostics);
  });
});
