/**
 * The plan's line diff of multi-line values (firewall rules, policy files):
 * a shortest edit, removals before additions, against an independent
 * longest-common-subsequence count (property test), and through the CLI.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { lineDiff } from "@qubes-kit/sdk";

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
        expect(removed.length + added.length).toBe(d.length);
        const keep = lcs(a, b);
        expect([a.length - removed.length, b.length - added.length]).toEqual([keep, keep]);
        expect(isSubsequence(removed, a) && isSubsequence(added, b)).toBe(true);
        expect(d.length === 0).toBe(a.join("\n") === b.join("\n"));
      }),
    );
  });

  it("shows a replaced rule as its removal, then its addition, and cuts long diffs", () => {
    expect(lineDiff("action=accept proto=tcp dstports=993-993\naction=drop", "action=accept proto=tcp dstports=465-465\naction=drop")).toEqual([
      "- action=accept proto=tcp dstports=993-993",
      "+ action=accept proto=tcp dstports=465-465",
    ]);
    const many = Array.from({ length: 30 }, (_, i) => `rule ${i}`).join("\n");
    const d = lineDiff("", many);
    expect(d.length).toBe(21);
    expect(d.at(-1)).toBe("(10 more changed lines)");
  });
});
