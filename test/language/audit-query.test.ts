/**
 * who-can / what-can / decision matrices through the package entry point:
 * every row and cell is the evaluator's decision for that request, over the
 * whole request space of the demo system.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { cellText, createMemoryFileSystem, decisionMatrix, evaluate, isDenied, loadPolicy, prepareSystemInfo, requestSpace, whatCan, whatCanRows, whoCan, whoCanRows } from "@qubes-kit/language";

const demo = fileURLToPath(new URL("../fixtures/audit/demo/", import.meta.url));
function readTree(dir: string, base = "/etc/qubes/policy.d"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) Object.assign(out, readTree(p, `${base}/${n}`));
    else out[`${base}/${n}`] = readFileSync(p, "utf8");
  }
  return out;
}
const loaded = loadPolicy(createMemoryFileSystem(readTree(demo + "policy.d")));
if (!loaded.ok) throw new Error(loaded.error.message);
const policy = loaded.policy;
const system = prepareSystemInfo(JSON.parse(readFileSync(demo + "system.json", "utf8")));
const space = requestSpace([policy], system);

describe("whoCan", () => {
  it("decides every source for every target, as evaluate does", () => {
    const rows = whoCan(policy, system, { service: "qubes.Filecopy" });
    expect(rows.length).toBe(space.qubes.length * space.targets.length);
    for (const r of rows) expect(r.decision).toEqual(evaluate(policy, { service: "qubes.Filecopy", argument: "+", source: r.source, target: r.target }, system));
    const toVault = whoCan(policy, system, { service: "qubes.Filecopy", target: "vault" }).filter((r) => !isDenied(r.decision));
    expect(toVault.map((r) => `${r.source} ${cellText(r.decision, r.target)}`)).toEqual(["work ask:vault"]);
  });
});

describe("whatCan", () => {
  it("covers every service and argument of the space, `*` for the rest", () => {
    const rows = whatCan(policy, system, "work");
    const calls = new Set(rows.map((r) => `${r.service}${r.argument}`));
    expect(calls.has("qubes.StartApp+firefox")).toBe(true);
    expect(calls.has("qubes.StartApp*")).toBe(true);
    expect(calls.has("**")).toBe(true);
    expect(rows.length).toBe(space.services.reduce((n, s) => n + s.arguments.length, 0) * space.targets.length);
    for (const r of rows) expect(r.decision).toEqual(evaluate(policy, r.request, system));
    // The representative of the other services is denied everywhere (90-default.policy).
    expect(rows.filter((r) => r.service === "*").every((r) => isDenied(r.decision))).toBe(true);
  });
});

describe("decisionMatrix", () => {
  it("has a cell per source and target, each the evaluator's decision", () => {
    const t = decisionMatrix(policy, system, "qubes.OpenURL");
    expect(t.sources).toEqual(space.qubes);
    expect(t.targets).toEqual(space.targets);
    t.sources.forEach((s, i) => t.targets.forEach((target, j) => expect(t.cells[i]![j]).toEqual(evaluate(policy, { service: "qubes.OpenURL", argument: "+", source: s, target }, system))));
    const work = t.sources.indexOf("work");
    expect(cellText(t.cells[work]![t.targets.indexOf("@default")]!, "@default")).toBe("allow→@dispvm:work-dvm");
    expect(cellText(t.cells[work]![t.targets.indexOf("personal")]!, "personal")).toBe("ask:@dispvm:work-dvm");
  });
});

// The streamed rows the CLI prints (one decision grid, rows made as they are read) are whoCan's and whatCan's, row for row.
describe("whoCanRows and whatCanRows", () => {
  const calls = space.services.flatMap((s) => s.arguments.map((a) => ({ service: s.service, argument: a.argument })));
  it.each(calls)("who-can $service$argument: every target, and each target alone", ({ service, argument }) => {
    const rows = whoCanRows(policy, system, { service, argument });
    expect([...rows]).toEqual(whoCan(policy, system, { service, argument }));
    // Iterable again, with the same rows.
    expect([...rows].length).toBe(space.qubes.length * space.targets.length);
    for (const target of space.targets) expect([...whoCanRows(policy, system, { service, argument, target })]).toEqual(whoCan(policy, system, { service, argument, target }));
  });
  it.each(space.qubes)("what-can %s", (source) => {
    expect([...whatCanRows(policy, system, source)]).toEqual(whatCan(policy, system, source));
  });
});
