/**
 * Large documents are analysed in short steps (the loader, the per-document findings and the
 * per-service grouping yield inside a file, not only between files), and a run dropped at any of
 * those steps leaves caches from which the next run still gives exactly what a from-scratch
 * analysis gives. The files here are long enough (thousands of lines, an `!include`d file among
 * them) to reach the steps inside a file.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { analyzeWorkspace, analyzeWorkspaceSteps, prepareSystemInfo, type PolicySnapshot, type RawSystemInfo, type SystemInfo } from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";
import { fsOf, view, type Files } from "../helpers/policy-workspace.js";

/** A system model whose qubes advertise their services (so `service-not-provided` runs); dom0 and sys-net say nothing. */
function advertisingSystem(): SystemInfo {
  const raw = JSON.parse(readFileSync(new URL("../fixtures/lsp/system.json", import.meta.url), "utf8")) as RawSystemInfo;
  const advertised: Record<string, string[]> = { work: ["svc.A"], personal: ["svc.B"], untrusted: [], vault: ["qubes.Filecopy", "svc.A", "svc.C"], "default-dvm": ["svc.B"], disp1234: ["svc.B"] };
  for (const [name, info] of Object.entries(raw.domains)) {
    const list = advertised[name];
    if (list) (info as Record<string, unknown>)["supported_rpc"] = list;
  }
  return prepareSystemInfo(raw);
}

const SERVICES = ["svc.A", "svc.B", "svc.C", "qubes.Filecopy", "*"];
const SOURCES = ["*", "@anyvm", "dom0", "work", "vault", "@tag:gpg-client", "@type:AppVM", "@dispvm:default-dvm", "nosuch"];
const TARGETS = ["*", "@anyvm", "@default", "@dispvm", "work", "vault", "@adminvm", "@tag:gpg-client"];
const ACTIONS = ["allow", "deny", "ask", "ask target=vault", "allow target=work", "ask default_target=work", "alow"];


/** A deterministic line (a rule most of the time) for position `i` of a file seeded by `seed`. */
function lineAt(seed: number, i: number): string {
  let x = (seed * 7919 + i * 104729) >>> 0;
  const pick = <T>(list: readonly T[]): T => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return list[(x >>> 8) % list.length]!;
  };
  const kind = pick([0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
  if (kind === 1) return pick(["", "# a comment", "svc.A * work"]);
  if (kind === 2) return pick(["svc.B +x work vault allow", "svc.A * @anyvm @anyvm deny"]);
  const service = pick(SERVICES);
  return `${service} ${service === "*" ? "*" : pick(["*", "+x", "+y"])} ${pick(SOURCES)} ${pick(TARGETS)} ${pick(ACTIONS)}`;
}

function makeFiles(): Files {
  const lines = (seed: number, n: number) => Array.from({ length: n }, (_, i) => lineAt(seed, i));
  return {
    "10-a.policy": lines(1, 500),
    "30-user.policy": lines(2, 2400),
    "50-b.policy": [...lines(3, 300), "!include include/common", ...lines(4, 300)],
    "include/common": lines(5, 2050),
  };
}



const FILES = ["10-a.policy", "30-user.policy", "50-b.policy", "include/common"];

/** An edit: a line inserted, replaced or deleted, or a key typed into a line (as an editor does). */
const edit = fc.record({
  file: fc.constantFrom(...FILES),
  kind: fc.constantFrom("insert", "replace", "delete", "type", "newline"),
  at: fc.nat(2400),
  column: fc.nat(40),
  text: fc.oneof(fc.constantFrom("a", " ", "x", "\t", "*", "w"), fc.nat(200).map((i) => lineAt(9, i))),
});

function apply(files: Files, e: { file: string; kind: string; at: number; column: number; text: string }): Files {
  const lines = [...files[e.file]!];
  const i = e.at % (lines.length + 1);
  const j = Math.min(i, lines.length - 1);
  if (e.kind === "insert") lines.splice(i, 0, e.text.length > 1 ? e.text : "");
  else if (e.kind === "replace") lines[j] = e.text;
  else if (e.kind === "delete") lines.splice(j, 1);
  else if (e.kind === "type") {
    const l = lines[j]!;
    const c = Math.min(e.column, l.length);
    lines[j] = l.slice(0, c) + e.text.slice(0, 1) + l.slice(c);
  } else {
    const l = lines[j]!;
    const c = Math.min(e.column, l.length);
    lines.splice(j, 1, l.slice(0, c), l.slice(c));
  }
  return { ...files, [e.file]: lines };
}

/** Runs the analysis step by step; returns the snapshot and how many steps it took. */
function stepped(files: Files, previous: PolicySnapshot, system: SystemInfo): { snapshot: PolicySnapshot; steps: number } {
  const steps = analyzeWorkspaceSteps(fsOf(files), { system, previous });
  for (let n = 1; ; n++) {
    const s = steps.next();
    if (s.done) return { snapshot: s.value, steps: n };
  }
}

// Each system model twice: the one the incremental runs share, and a fresh one for each
// from-scratch analysis (the verdicts are memoised per model).
describe.each([
  ["a model without advertised services", () => demoSystem(), false],
  ["qubes advertising their services", advertisingSystem, true],
])("incremental analysis of large documents, in steps (%s)", (_, makeSystem, advertised) => {
  const system = makeSystem();
  const base = makeFiles();
  const first = analyzeWorkspace(fsOf(base), { system });

  test("the model says what the analysis reports about services", () => {
    const notProvided = [...first.diagnostics.values()].flat().filter((d) => d.code === "service-not-provided").length;
    expect(notProvided > 100).toBe(advertised);
  });

  test.each([
    ["a key typed", { file: "30-user.policy", kind: "type", at: 1600, column: 3, text: "x" }],
    ["a line broken in two", { file: "30-user.policy", kind: "newline", at: 1500, column: 9, text: "" }],
    ["a rule inserted into the included file", { file: "include/common", kind: "insert", at: 700, column: 0, text: "svc.A * @anyvm @anyvm deny" }],
  ])("%s: a run dropped at every step, then finished, equals a from-scratch analysis", (_, e) => {
    const files = apply(base, e);
    const scratch = view(analyzeWorkspace(fsOf(files), { system: makeSystem() }));
    const { snapshot, steps } = stepped(files, first, system);
    expect(view(snapshot)).toEqual(scratch);
    for (let k = 1; k < steps; k++) {
      const abandoned = analyzeWorkspaceSteps(fsOf(files), { system, previous: first });
      for (let n = 0; n < k; n++) abandoned.next();
      expect(view(stepped(files, first, system).snapshot)).toEqual(scratch);
    }
  });

  test("runs dropped at any step, then finished, equal a from-scratch analysis", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(edit, fc.nat(60), fc.boolean()), { minLength: 1, maxLength: 3 }), (edits) => {
        let files = base;
        let snapshot = first;
        for (const [e, dropAt, twice] of edits) {
          files = apply(files, e);
          // The way the server runs it: step by step, abandoned half-way (when a newer key arrives) and started again.
          for (let round = 0; round < (twice ? 2 : 1); round++) {
            const abandoned = analyzeWorkspaceSteps(fsOf(files), { system, previous: snapshot });
            for (let k = 0; k < dropAt >> round; k++) if (abandoned.next().done) break;
          }
          const next = stepped(files, snapshot, system).snapshot;
          expect(view(next)).toEqual(view(analyzeWorkspace(fsOf(files), { system: makeSystem() })));
          snapshot = next;
        }
      }),
      { numRuns: 6 },
    );
  });
});
