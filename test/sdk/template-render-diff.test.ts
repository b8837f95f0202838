/**
 * The plan's line diff of multi-line values (firewall rules, policy files):
 * a shortest edit, removals before additions, a line only moved said once as a move, against an
 * independent longest-common-subsequence count (property test), and through the CLI.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { lineDiff, renderSideEffects } from "@qubes-kit/sdk";

function lcs(a: string[], b: string[]): number {
  const memo = new Map<string, number>();
  const go = (i: number, j: number): number => {
    if (i === a.length || j === b.length) return 0;
    const k = `${i},${j}`;
    let v = memo.get(k);
    if (v === undefined) {
      v = a[i] === b[j] ? 1 + go(i + 1, j + 1) : Math.max(go(i + 1, j), go(i, j + 1));
      memo.set(k, v);
    }
    return v;
  };
  return go(0, 0);
}

function isSubsequence(sub: string[], of: string[]): boolean {
  let i = 0;
  for (const x of of) if (i < sub.length && sub[i] === x) i++;
  return i === sub.length;
}

describe("lineDiff", () => {
  it("removes and adds exactly what the longest common subsequence leaves (property test)", () => {
    const lines = fc.array(fc.constantFrom("a", "b", "c", "action=drop"), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(lines, lines, (a, b) => {
        const d = lineDiff(a.join("\n"), b.join("\n"));
        const removed = d.filter((l) => l.startsWith("- ")).map((l) => l.slice(2));
        const added = d.filter((l) => l.startsWith("+ ")).map((l) => l.slice(2));
        // A moved line: removed at its place before, added (the same text) at its place after.
        const moved = d.flatMap((l) => {
          const m = /^~ (.*) \(moved from (\d+) to (\d+)\)$/.exec(l);
          return m ? [{ text: m[1]!, from: Number(m[2]), to: Number(m[3]) }] : [];
        });
        expect(removed.length + added.length + moved.length).toBe(d.length);
        for (const mv of moved) expect([a[mv.from - 1], b[mv.to - 1]]).toEqual([mv.text, mv.text]);
        const keep = lcs(a, b);
        expect([a.length - removed.length - moved.length, b.length - added.length - moved.length]).toEqual([keep, keep]);
        expect(isSubsequence(removed, a) && isSubsequence(added, b)).toBe(true);
        // Every line both removed and added is shown as a move.
        expect(removed.filter((r) => added.includes(r))).toEqual([]);
        expect(d.length === 0).toBe(a.join("\n") === b.join("\n"));
      }),
    );
  });

  it("shows a replaced rule as its removal, then its addition, and cuts long diffs", () => {
    expect(lineDiff("action=accept proto=tcp dstports=993-993\naction=drop", "action=accept proto=tcp dstports=465-465\naction=drop")).toEqual([
      "- action=accept proto=tcp dstports=993-993",
      "+ action=accept proto=tcp dstports=465-465",
    ]);
    // Rules in another order: the order decides, so a moved rule is said, once, where it goes.
    expect(lineDiff("action=accept dsthost=a.example\naction=accept dsthost=b.example\naction=drop", "action=accept dsthost=b.example\naction=accept dsthost=a.example\naction=drop")).toEqual([
      "~ action=accept dsthost=a.example (moved from 1 to 2)",
    ]);
    const many = Array.from({ length: 30 }, (_, i) => `rule ${i}`).join("\n");
    const d = lineDiff("", many);
    expect(d.length).toBe(21);
    expect(d.at(-1)).toBe("(10 more changed lines)");
  });
});

describe("renderSideEffects", () => {
  it("one line per setting and new value; the old value when the qubes share it; warnings first for settings the stack declares", () => {
    expect(renderSideEffects([])).toBe("");
    const text = renderSideEffects([
      { qube: "a", key: "ip", before: "default (10.137.0.5)", after: "default ()" },
      { qube: "a", key: "netvm", before: "default (sys-firewall)", after: "default (none)" },
      { qube: "b", key: "ip", before: "default (10.137.0.6)", after: "default ()" },
      { qube: "b", key: "netvm", before: "default (sys-firewall)", after: "default (none)" },
      { qube: "c", key: "feature service.clocksync", before: '"1"', after: "absent", managed: true },
    ]);
    expect(text.split("\n")).toEqual([
      expect.stringMatching(/^warning\[undone-by-qubesd\]: c feature service\.clocksync: the stack declares "1", and qubesd changes it to absent as a consequence of the plan/),
      "qubesd also changes, on its own (seen in the rehearsal):",
      "  ~ ip → default (): a, b (each from its own value)",
      "  ~ netvm default (sys-firewall) → default (none): a, b",
      "",
    ]);
  });
});

