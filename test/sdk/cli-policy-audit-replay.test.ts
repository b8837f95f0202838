/**
 * Every JSON line of `policy diff --expand --json`, `policy who-can --json`
 * and `policy what-can --json` is one concrete request: fed to `qkit policy
 * eval --requests`, it gets exactly the decision the line reports (`after`
 * under the new policy and `before` under the old one, for the diff). Over
 * the demo policy, a fixed edit and random edits (property test).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { runQkit } from "../helpers/qkit.js";
import { ruleLineArb } from "../helpers/policy-arbs.js";

const demo = fileURLToPath(new URL("../fixtures/audit/demo/", import.meta.url));
const system = demo + "system.json";
const dir = mkdtempSync(join(tmpdir(), "qkit-audit-replay-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Line = { service: string; argument: string; source: string; target: string; before?: unknown; after?: unknown; decision?: unknown };

/** Decides `lines` with `qkit policy eval --requests` under `policyDir`; one decision (parsed) per line. */
async function replay(policyDir: string, lines: Line[]): Promise<unknown[]> {
  if (!lines.length) return [];
  const file = join(dir, "requests.jsonl");
  writeFileSync(file, lines.map((l) => JSON.stringify({ service: l.service, argument: l.argument, source: l.source, target: l.target })).join("\n") + "\n");
  const r = await runQkit(["policy", "eval", "--policy-dir", policyDir, "--system", system, "--requests", file], { cwd: dir });
  expect(r.code).toBe(0);
  // The lines are concrete requests: no warning about an argument without `+`, an unknown source, etc.
  expect(r.err).toBe("");
  return r.out.trimEnd().split("\n").map((l) => JSON.parse(l) as unknown);
}

function parseLines(out: string): Line[] {
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

let editNo = 0;
/** A copy of the demo policy with `30-user.policy` changed by `edit`. */
function edited(edit: (lines: string[]) => void): string {
  const copy = join(dir, `edit-${editNo++}`);
  cpSync(demo + "policy.d", copy, { recursive: true });
  const f = join(copy, "30-user.policy");
  const lines = readFileSync(f, "utf8").split("\n");
  edit(lines);
  writeFileSync(f, lines.join("\n"));
  return copy;
}

async function checkDiff(after: string): Promise<Line[]> {
  const r = await runQkit(["policy", "diff", demo + "policy.d", after, "--system", system, "--expand", "--json"], { cwd: dir });
  expect(r.err).toBe("");
  const lines = parseLines(r.out);
  expect(r.code).toBe(lines.length ? 1 : 0);
  for (const l of lines) {
    expect(l.service).not.toContain("*");
    expect(l.argument.startsWith("+")).toBe(true);
    expect(l.argument).not.toContain("*");
  }
  expect(await replay(after, lines)).toEqual(lines.map((l) => l.after));
  expect(await replay(demo + "policy.d", lines)).toEqual(lines.map((l) => l.before));
  return lines;
}

const ruleLine = ruleLineArb({
  serviceArgs: [
    ["*", "*"],
    ["qubes.Filecopy", "*"],
    ["qubes.StartApp", "+firefox"],
    ["qubes.StartApp", "+xterm"],
    ["qubes.NewService", "*"],
    ["qubes.Gpg", "*"],
  ],
  sources: ["@anyvm", "work", "vault", "@tag:work", "untrusted"],
  targets: ["@anyvm", "vault", "@default", "@dispvm", "personal", "@dispvm:work-dvm", "@adminvm"],
  redirects: ["vault", "work", "@dispvm", "@dispvm:work-dvm"],
});

describe("JSON lines of the auditor's commands replay with `qkit policy eval --requests`", () => {
  it("diff --expand --json: the reviewer's edit (line 9 deny → allow)", async () => {
    const lines = await checkDiff(edited((l) => (l[8] = l[8]!.replace("deny notify=no", "allow"))));
    expect(lines.length).toBeGreaterThan(0);
  });

  it("diff --expand --json: an edit of a `*` rule gives the representative as a concrete service and argument", async () => {
    const lines = await checkDiff(edited((l) => l.splice(2, 0, "* * work @anyvm allow")));
    expect(lines.some((l) => l.service === "qkit.OtherService" && l.argument === "+")).toBe(true);
  });

  it("diff --expand --json: random edits (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(60), fc.boolean(), ruleLine, async (at, replace, rule) => {
        await checkDiff(
          edited((l) => {
            const i = at % l.length;
            l.splice(i, replace && l[i]!.trim() && !l[i]!.startsWith("#") ? 1 : 0, rule);
          }),
        );
      }),
      { numRuns: 12 },
    );
  }, 120_000);

  it.each([
    [["policy", "what-can", "work", "--all"]],
    [["policy", "what-can", "untrusted"]],
    [["policy", "who-can", "qubes.Filecopy", "--all"]],
    [["policy", "who-can", "qubes.StartApp+firefox", "--target", "@dispvm"]],
    [["policy", "who-can", "qubes.NoRuleNamesThis", "--all", "--target", "vault"]],
  ])("%j --json", async (args) => {
    const r = await runQkit([...args, "--json", "--policy-dir", demo + "policy.d", "--system", system], { cwd: dir });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const lines = parseLines(r.out);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(l.service).not.toContain("*");
      expect(l.argument).not.toContain("*");
    }
    expect(await replay(demo + "policy.d", lines)).toEqual(lines.map((l) => l.decision));
  });
});
