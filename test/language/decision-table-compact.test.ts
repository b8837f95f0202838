/**
 * The compact decision table against `evaluate`, cell by cell: the grid's
 * shared decisions (`decisionGrid`, which the CLI's tables print) are
 * exactly `evaluate`'s, and the compact table (`compactGrid`, which the
 * language server sends) expands to exactly the one-object-per-cell form
 * of those decisions. Random policies (asks with redirects, default
 * targets, autostart=no, `@dispvm` forms, crashes where a qube lacks a
 * key) over random system models.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compactCell,
  compactDecisionTable,
  compactGrid,
  createMemoryFileSystem,
  decisionGrid,
  decisionToJson,
  evaluate,
  expandDecisionTable,
  gridDecision,
  loadPolicy,
  prepareSystemInfo,
  type Decision,
  type DecisionCell,
} from "@qubes-kit/language";
import { ruleLineArb, systemInfoArb, uuidOf } from "../helpers/policy-arbs.js";
import { demoSystem, parseFixture, snapshotOf } from "../lsp/helpers/fixture.js";

const QUBES = Array.from({ length: 16 }, (_, i) => `q${String(i).padStart(2, "0")}`);
const systemArb = systemInfoArb({
  qubes: QUBES,
  defaultDispvms: [null, "q01", "q02", "ghost"],
  drop: { qubes: QUBES.slice(0, 4), keys: ["tags", "type", "template_for_dispvms", "power_state", "default_dispvm", "internal"], freq: 6 },
});
const SOME = QUBES.slice(0, 6);
const ruleArb = ruleLineArb({
  serviceArgs: [
    ["qubes.A", "*"],
    ["qubes.A", "+x"],
    ["qubes.B", "*"],
    ["*", "*"],
  ],
  sources: ["@anyvm", "*", "@tag:t1", "@tag:t2", "@type:AppVM", "@adminvm", "dom0", "@dispvm:q01", ...SOME, `uuid:${uuidOf(1)}`],
  targets: ["@anyvm", "*", "@tag:t2", "@type:AppVM", "@default", "@dispvm", "@dispvm:q01", "@dispvm:@tag:t1", "@adminvm", "dom0", ...SOME, "ghost"],
  redirects: ["@adminvm", "@dispvm", "@dispvm:q01", "dom0", "q02", "ghost"],
  autostart: true,
});
const SOURCES = [...QUBES, "dom0", "ghost", `uuid:${uuidOf(1)}`];
const TARGETS = [...QUBES, "@default", "@dispvm", "@dispvm:q01", "@dispvm:q02", "@adminvm", "dom0", "ghost"];

/** The one-object-per-cell form of a decision (the table's version 1 cell). */
function cellOf(d: Decision): DecisionCell {
  const rule = "rule" in d && d.rule ? { rule: { file: d.rule.file, line: d.rule.line } } : {};
  if (!d.ok) return { action: "error", message: d.message, ...rule };
  if (d.action === "allow") return { action: "allow", target: d.target, ...rule };
  if (d.action === "ask") return { action: "ask", targets: d.targetsForAsk, ...(d.defaultTarget ? { target: d.defaultTarget } : {}), ...rule };
  return { action: "deny", message: d.message, ...rule };
}

describe("the compact decision table", () => {
  it("expands to exactly evaluate's decision in every cell", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 40 }), systemArb, fc.constantFrom("qubes.A", "qubes.B", "qubes.C"), fc.constantFrom("+", "+x"), (rules, raw, service, argument) => {
        const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": rules.join("\n") + "\n" }));
        if (!loaded.ok) return;
        const system = prepareSystemInfo(raw);
        const grid = decisionGrid(loaded.policy, service, argument, system, { sources: SOURCES, targets: TARGETS });
        const table = compactGrid(grid);
        const expanded = expandDecisionTable(table);
        expect(table.cells).toHaveLength(SOURCES.length);
        SOURCES.forEach((source, i) => {
          expect(table.cells[i]).toHaveLength(TARGETS.length);
          TARGETS.forEach((target, j) => {
            const want = evaluate(loaded.policy, { service, argument, source, target: target === "@default" ? "" : target }, system);
            expect(decisionToJson(gridDecision(grid, i, j))).toEqual(decisionToJson(want));
            expect(expanded.cells[i]![j]).toEqual(cellOf(want));
            expect(compactCell(table, i, j)).toEqual(cellOf(want));
          });
        });
        // Each offer list, rule and kind once.
        expect(new Set(table.offers.map((o) => JSON.stringify(o))).size).toBe(table.offers.length);
        expect(new Set(table.rules.map((r) => JSON.stringify(r))).size).toBe(table.rules.length);
        expect(new Set(table.kinds.map((k) => JSON.stringify(k))).size).toBe(table.kinds.length);
      }),
      { numRuns: 150 },
    );
  });

  it("sends a long offer list once, however many cells offer it", () => {
    const names = Array.from({ length: 120 }, (_, i) => `app-${String(i).padStart(3, "0")}`);
    const qube = (type: string, n: number) => ({ type, tags: [], power_state: "Running", default_dispvm: null, template_for_dispvms: false, icon: "appvm-red", uuid: uuidOf(n) });
    const raw = { domains: Object.fromEntries([["dom0", qube("AdminVM", 0)], ...names.map((n, i) => [n, qube("AppVM", i + 1)])]) };
    const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": "qubes.Filecopy * @anyvm @anyvm ask\n" }));
    if (!loaded.ok) throw new Error("does not load");
    const table = compactGrid(decisionGrid(loaded.policy, "qubes.Filecopy", "+", prepareSystemInfo(raw)));
    expect(table.sources).toHaveLength(121);
    // Every source is offered every qube but itself: one list per source, one kind per list.
    expect(table.offers).toHaveLength(120);
    expect(table.kinds.filter((k) => k.action === "ask")).toHaveLength(120);
    expect(JSON.stringify(table).length).toBeLessThan(200_000);
  });

  it("denies every cell at load when the policy does not load", () => {
    const broken = snapshotOf(parseFixture("#- 30-user.policy\nqubes.A * work vault alow\n"));
    const table = compactDecisionTable(broken, "qubes.A", undefined, demoSystem(), { sources: ["work", "personal"], targets: ["vault", "work"] });
    expect(table.kinds).toHaveLength(1);
    expect(table.kinds[0]).toMatchObject({ action: "error" });
    expect(table.cells).toEqual([
      [0, 0],
      [0, 0],
    ]);
  });
});
