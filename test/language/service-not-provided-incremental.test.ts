/**
 * `service-not-provided` computed incrementally (per service, per file, in steps that may be
 * dropped half-way, as the language server does) gives exactly what a from-scratch analysis gives,
 * under random character edits, whole-rule edits (`*`-service rules included), includes and
 * renames; and the verdicts equal a one-shot computation on the generated benchmark's shapes.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  analyzeWorkspace,
  analyzeWorkspaceSteps,
  createMemoryFileSystem,
  prepareSystemInfo,
  type AnalysisDiagnostic,
  type PolicySnapshot,
  type RawSystemInfo,
} from "@qubes-kit/language";

const DIR = "/etc/qubes/policy.d";
const BASE_SYSTEM = JSON.parse(readFileSync(new URL("../fixtures/lsp/system.json", import.meta.url), "utf8")) as RawSystemInfo;

/** What each qube advertises (dom0 and sys-net unknown). */
const ADVERTISED: Record<string, string[]> = {
  work: ["svc.A"],
  personal: ["svc.B"],
  untrusted: [],
  vault: ["svc.A", "svc.C"],
  "fedora-41": [],
  "default-dvm": ["svc.B"],
  "default-mgmt-dvm": ["svc.A", "svc.B", "svc.C"],
  disp1234: ["svc.B"],
};

function raw(): RawSystemInfo {
  const r = structuredClone(BASE_SYSTEM);
  for (const [name, info] of Object.entries(r.domains)) {
    const s = ADVERTISED[name];
    if (s) (info as Record<string, unknown>)["supported_rpc"] = [...s].sort();
  }
  return r;
}

const RULES = [
  "svc.A * work personal allow",
  "svc.A * @anyvm untrusted allow",
  "svc.A * work @default ask default_target=personal",
  "svc.A +x @anyvm @anyvm ask",
  "svc.A * personal @anyvm ask",
  "svc.A * work vault allow",
  "svc.A * @anyvm @anyvm deny",
  "svc.B * work @anyvm ask",
  "svc.B * @tag:gpg-client @default ask default_target=untrusted",
  "svc.B * work untrusted allow",
  "svc.B * untrusted @dispvm allow",
  "svc.B * work @dispvm ask",
  "svc.C * work @dispvm:default-dvm allow",
  "svc.C * work @anyvm ask target=personal",
  "svc.C +y work @anyvm ask",
  "svc.C * personal @dispvm:@tag:nosuch ask",
  "svc.C * personal nosuchqube ask",
  "svc.D * @anyvm dom0 allow",
  "svc.D * work personal allow",
  "* * @anyvm untrusted allow",
  "* * work vault allow",
  "* * personal @dispvm:default-dvm allow",
  "* +x work personal ask",
  "* * @anyvm @anyvm deny",
];
const FRAGMENTS = ["\n", " ", "x", "#", "allow", "deny", "ask", "+x", "*", "!include include/common\n", ...RULES.map((r) => r + "\n")];
const NAMES = ["10-a.policy", "30-user.policy", "50-b.policy", "include/common"];

type Files = Record<string, string>;

const lines = (n: number, extra: string[] = []) => fc.array(fc.constantFrom(...RULES, ...extra), { maxLength: n }).map((l) => l.join("\n") + "\n");
const initial = fc.record({
  "10-a.policy": lines(6),
  "30-user.policy": lines(8, ["!include include/common", "# c", ""]),
  "50-b.policy": lines(6),
  "include/common": lines(4),
});

type Edit = { kind: "type"; file: string; at: number; remove: number; insert: string } | { kind: "rename"; file: string; to: string };
const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("type" as const), file: fc.constantFrom(...NAMES), at: fc.double({ min: 0, max: 1, noNaN: true }), remove: fc.nat(8), insert: fc.constantFrom(...FRAGMENTS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("rename" as const), file: fc.constantFrom(...NAMES), to: fc.constantFrom(...NAMES, "60-c.policy") }) },
);

function apply(files: Files, e: Edit): Files {
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

const fsOf = (files: Files) => createMemoryFileSystem(Object.fromEntries(Object.entries(files).map(([k, v]) => [`${DIR}/${k}`, v])));

/** The `service-not-provided` findings, whole (place, message, help, data, severity), by path. */
function view(s: PolicySnapshot): string[] {
  const out: string[] = [];
  for (const [path, list] of s.diagnostics) for (const d of list as AnalysisDiagnostic[]) if (d.code === "service-not-provided") out.push(`${path} ${JSON.stringify(d)}`);
  return out.sort();
}

describe("service-not-provided: incremental equals from scratch", () => {
  test("after random edits, each analysed from the previous snapshot, some runs dropped half-way", () => {
    fc.assert(
      fc.property(initial, fc.array(fc.tuple(edit, fc.nat(40)), { minLength: 1, maxLength: 12 }), (start, edits) => {
        const system = prepareSystemInfo(raw());
        let files: Files = start;
        let snapshot = analyzeWorkspace(fsOf(files), { system });
        expect(view(snapshot)).toEqual(view(analyzeWorkspace(fsOf(files), { system: prepareSystemInfo(raw()) })));
        for (const [e, drop] of edits) {
          files = apply(files, e);
          // A run the server drops when the next key arrives: it shares the caches with the next one.
          if (drop % 3 === 0) {
            const steps = analyzeWorkspaceSteps(fsOf(files), { system, previous: snapshot });
            for (let k = 0; k < drop && !steps.next().done; k++);
          }
          snapshot = analyzeWorkspace(fsOf(files), { system, previous: snapshot });
          const scratch = analyzeWorkspace(fsOf(files), { system: prepareSystemInfo(raw()) });
          expect(view(snapshot), JSON.stringify(files)).toEqual(view(scratch));
        }
      }),
      { numRuns: 150 },
    );
  });

  test("an edit of a `*`-service rule changes the findings of every service, and undoing it restores them", () => {
    const files: Files = {
      "30-user.policy": "svc.A * work @default ask default_target=personal\nsvc.A * work personal allow\nsvc.B * work @default ask default_target=untrusted\nsvc.B * work untrusted allow\n",
      "50-b.policy": "svc.C * work vault allow\n",
    };
    const system = prepareSystemInfo(raw());
    const first = analyzeWorkspace(fsOf(files), { system });
    const found = (s: PolicySnapshot) => view(s).map((l) => l.replace(/ \{.*"line":(\d+).*/, ":$1")).sort();
    expect(found(first)).toEqual([`${DIR}/30-user.policy:1`, `${DIR}/30-user.policy:2`, `${DIR}/30-user.policy:3`, `${DIR}/30-user.policy:4`]);
    // Every service's offers from work now include vault, which advertises svc.A (and svc.C), not svc.B.
    const star = { ...files, "10-a.policy": "* * work vault allow\n" };
    const second = analyzeWorkspace(fsOf(star), { system, previous: first });
    expect(found(second)).toEqual([`${DIR}/30-user.policy:2`, `${DIR}/30-user.policy:3`, `${DIR}/30-user.policy:4`]);
    expect(view(second)).toEqual(view(analyzeWorkspace(fsOf(star), { system: prepareSystemInfo(raw()) })));
    const third = analyzeWorkspace(fsOf(files), { system, previous: second });
    expect(view(third)).toEqual(view(first));
  });

  // The strict loader's rules (a policy with `!compat-4.0`) are cut into runs by path: a file
  // included twice in a row is one run holding each line twice, which is reported once.
  test("a file included twice in a row, in a policy the strict loader reads, is reported once after edits", () => {
    let files: Files = {
      "10-a.policy": "!include include/common\n!include include/common\n!compat-4.0\n",
      "include/common": "svc.A * work personal allow\nsvc.B * work untrusted allow\nsvc.C * work personal allow\n",
      "30-user.policy": "svc.B * work @default ask default_target=untrusted\n",
    };
    const system = prepareSystemInfo(raw());
    let snapshot = analyzeWorkspace(fsOf(files), { system });
    expect(view(snapshot).filter((l) => l.includes("include/common")).length).toBeGreaterThan(0);
    for (const next of ["svc.B * work @default ask default_target=untrusted\nsvc.B * work personal allow\n", "svc.B * work @default ask default_target=untrusted\n", "svc.A * work personal allow\n"]) {
      files = { ...files, "30-user.policy": next };
      snapshot = analyzeWorkspace(fsOf(files), { system, previous: snapshot });
      expect(view(snapshot)).toEqual(view(analyzeWorkspace(fsOf(files), { system: prepareSystemInfo(raw()) })));
    }
    // A key typed into the included file itself.
    files = { ...files, "include/common": "svc.A * work personal allow\nsvc.B * work untrusted allow \nsvc.C * work personal allow\n" };
    snapshot = analyzeWorkspace(fsOf(files), { system, previous: snapshot });
    expect(view(snapshot)).toEqual(view(analyzeWorkspace(fsOf(files), { system: prepareSystemInfo(raw()) })));
  });

  test("an unchanged file keeps the same list of findings (the server sends nothing for it)", () => {
    const files: Files = { "30-user.policy": "svc.A * work personal allow\nsvc.B * work untrusted allow\n", "50-b.policy": "svc.C * work personal allow\n" };
    const system = prepareSystemInfo(raw());
    const first = analyzeWorkspace(fsOf(files), { system });
    const next = { ...files, "50-b.policy": "svc.C * work personal allow\nsvc.C * work untrusted allow\n" };
    const second = analyzeWorkspace(fsOf(next), { system, previous: first });
    expect(second.diagnostics.get(`${DIR}/30-user.policy`)).toBe(first.diagnostics.get(`${DIR}/30-user.policy`));
    expect(second.diagnostics.get(`${DIR}/50-b.policy`)!.filter((d) => d.code === "service-not-provided").map((d) => d.line)).toEqual([1, 2]);
  });
});

describe("service-not-provided: offers shared by argument and source", () => {
  test("a rule whose target column matches no qube is not reported, though an offer of the same caller is", () => {
    const files: Files = {
      "30-user.policy": "svc.C * personal untrusted allow\nsvc.C * personal @default ask default_target=untrusted\nsvc.C * personal nosuchqube ask\nsvc.C * personal @dispvm:@tag:nosuch ask\nsvc.C * personal @dispvm:vault ask\n",
    };
    const found = view(analyzeWorkspace(fsOf(files), { system: prepareSystemInfo(raw()) })).map((l) => Number(/"line":(\d+)/.exec(l)![1]));
    expect(found.sort()).toEqual([1, 2]);
  });
});
