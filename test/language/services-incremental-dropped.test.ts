/**
 * A run dropped after it changed some services' cached analyses, followed by runs made from the
 * last finished snapshot on other texts: what the server does when a key arrives while the
 * analysis of the previous key is under way (`lsp/src/project.ts` restarts from the last finished
 * snapshot). The per-service fast paths must not trust entries the dropped run left behind
 * (found by review: the `*` rule's ask findings read a stale entry). Data-driven: each case is a
 * sequence of texts, the dropped run's text and how far it got; every finished run must equal a
 * from-scratch analysis of its text.
 */
import { describe, expect, test } from "vitest";
import { analyzeWorkspace, analyzeWorkspaceSteps, type PolicySnapshot } from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";
import { fsOf, view, type Files } from "../helpers/policy-workspace.js";

const R1 = ["svc.X * work vault allow", "svc.Y * work vault deny", "svc.Z * work vault deny", "* * work @default ask"];
const padding = Array.from({ length: 30 }, (_, i) => `svc.P${i} * work vault deny`);

interface Case {
  name: string;
  first: string[];
  /** The text whose run is dropped after `steps` steps, made from the first snapshot. */
  dropped: string[];
  steps: number;
  /** Texts finished one after the other, the first from the first snapshot. */
  then: string[][];
}

const CASES: Case[] = [
  {
    name: "the same text again (kept by position), then another service's rule changed",
    first: R1,
    dropped: ["svc.X * work vault allowx", ...R1.slice(1)],
    steps: 7,
    then: [R1, [R1[0]!, R1[1]!, "svc.Z * personal vault deny", R1[3]!]],
  },
  {
    name: "a rule's action changed in a dropped run, then another service's rule changed",
    first: [...R1, ...padding],
    dropped: ["svc.X * work vault deny", ...R1.slice(1), ...padding],
    steps: 7,
    then: [[R1[0]!, "svc.Y * personal vault deny", ...R1.slice(2), ...padding]],
  },
];

function scratch(files: Files): ReturnType<typeof view> {
  return view(analyzeWorkspace(fsOf(files), { system: demoSystem() }));
}

describe("a dropped run leaves no stale per-service analysis behind", () => {
  for (const c of CASES) {
    for (let steps = 1; steps <= c.steps + 8; steps++) {
      test(`${c.name} (dropped after ${steps} steps)`, () => {
        const system = demoSystem();
        const files = (lines: string[]): Files => ({ "10-a.policy": lines });
        const first = analyzeWorkspace(fsOf(files(c.first)), { system });
        const dropped = analyzeWorkspaceSteps(fsOf(files(c.dropped)), { system, previous: first });
        for (let k = 0; k < steps; k++) if (dropped.next().done) break;
        let previous: PolicySnapshot = first;
        for (const text of c.then) {
          const steps = analyzeWorkspaceSteps(fsOf(files(text)), { system, previous });
          let s = steps.next();
          while (!s.done) s = steps.next();
          previous = s.value;
          expect(view(previous)).toEqual(scratch(files(text)));
        }
      });
    }
  }
});
