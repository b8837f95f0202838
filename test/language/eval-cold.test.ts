/**
 * A policy loaded for one service (`LoadOptions.service`, what `qkit policy
 * eval` of one request uses) decides and explains every request for that
 * service exactly as the whole policy does, and fails to load exactly when
 * the whole policy fails.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  createMemoryFileSystem,
  decisionToJson,
  evaluate,
  explain,
  loadPolicy,
  makeRequest,
  prepareSystemInfo,
  type Explanation,
  type PolicyRule,
  type RawSystemInfo,
} from "@qubes-kit/language";

const SOURCES = ["*", "@anyvm", "@adminvm", "@type:AppVM", "@tag:t1", "@dispvm:default-dvm", "dom0", "work", "personal", "uuid:00000000-0000-0000-0000-000000000001", "ghost", "$anyvm"];
const TARGETS = [...SOURCES, "@default", "@dispvm"];
const REDIRECTS = ["@adminvm", "@dispvm", "@dispvm:default-dvm", "dom0", "work", "vault", "ghost"];
// Services that share a prefix (`qubes.A` / `qubes.AB`), `*`, and a name that only differs in case.
const SERVICE_ARGS: [string, string][] = [["*", "*"], ["qubes.A", "*"], ["qubes.A", "+"], ["qubes.A", "+x"], ["qubes.AB", "*"], ["qubes.a", "+x"], ["qubes.B", "*"]];

const ruleArb = fc
  .record({
    sa: fc.constantFrom(...SERVICE_ARGS),
    source: fc.constantFrom(...SOURCES),
    target: fc.constantFrom(...TARGETS),
    action: fc.constantFrom("allow", "deny", "ask"),
    redirect: fc.option(fc.constantFrom(...REDIRECTS), { nil: undefined }),
    sep: fc.constantFrom(" ", "\t", "  ", " \t"),
    // Now and then a line the engine rejects (in any service).
    broken: fc.integer({ min: 0, max: 79 }).map((n) => n === 0),
  })
  .map((r) => {
    const params: string[] = [];
    if (r.action !== "deny" && r.redirect) params.push(`target=${r.redirect}`);
    if (r.action === "allow" && r.target === "@default" && !r.redirect) params.push("target=work");
    if (r.broken) params.push("bogus=1");
    return [r.sa[0], r.sa[1], r.source, r.target, r.action, ...params].join(r.sep);
  });

/** Legacy lines of an `!include-service` file (source target action). */
const legacyArb = fc
  .record({ source: fc.constantFrom("$anyvm", "work", "@tag:t1"), target: fc.constantFrom("$dispvm", "vault", "@anyvm", "$default"), action: fc.constantFrom("allow", "deny", "ask") })
  .map((r) => `${r.source} ${r.target} ${r.action}${r.action !== "deny" && (r.target === "$default" || r.target === "$dispvm") ? ",target=work" : ""}`);

const NAMES = ["dom0", "work", "personal", "vault", "default-dvm"];
const systemArb: fc.Arbitrary<RawSystemInfo> = fc
  .record({
    tags: fc.array(fc.subarray(["t1", "t2"]), { minLength: NAMES.length, maxLength: NAMES.length }),
    dvm: fc.array(fc.boolean(), { minLength: NAMES.length, maxLength: NAMES.length }),
    running: fc.array(fc.boolean(), { minLength: NAMES.length, maxLength: NAMES.length }),
  })
  .map((s) => {
    const domains: RawSystemInfo["domains"] = {};
    NAMES.forEach((n, i) => {
      domains[n] = {
        tags: s.tags[i]!,
        type: n === "dom0" ? "AdminVM" : "AppVM",
        template_for_dispvms: n !== "dom0" && s.dvm[i]!,
        default_dispvm: n === "dom0" ? null : "default-dvm",
        power_state: s.running[i] ? "Running" : "Halted",
        uuid: `00000000-0000-0000-0000-0000000000${i.toString(16).padStart(2, "0")}`,
        internal: null,
        guivm: "dom0",
        relayvm: null,
        transport_rpc: null,
        icon: "appvm-red",
        label: "0xcc0000",
      };
    });
    return { domains };
  });

const requestArb = fc.record({
  service: fc.constantFrom("qubes.A", "qubes.AB", "qubes.a", "qubes.B", "qubes.C"),
  argument: fc.constantFrom("+", "+x"),
  source: fc.constantFrom(...NAMES, "ghost"),
  target: fc.constantFrom(...NAMES, "", "@dispvm", "@dispvm:default-dvm", "@adminvm", "ghost"),
});

const policyArb = fc.record({
  a: fc.array(ruleArb, { maxLength: 20 }),
  b: fc.array(ruleArb, { maxLength: 20 }),
  legacy: fc.array(legacyArb, { maxLength: 4 }),
  include: fc.array(ruleArb, { maxLength: 6 }),
});

function files(p: { a: string[]; b: string[]; legacy: string[]; include: string[] }): Record<string, string> {
  return {
    "10-a.policy": p.a.join("\n") + "\n",
    "20-b.policy": ["!include-service qubes.A +x include/legacy", ...p.b, "!include include/more"].join("\n") + "\n",
    "include/legacy": p.legacy.join("\n") + "\n",
    "include/more": p.include.join("\r\n"),
  };
}

const ref = (r: PolicyRule) => `${r.origin.file}:${r.origin.line}`;
/** An explanation with rules as `file:line` (rule objects of the two loads differ in their `index`). */
function shape(x: Explanation): unknown {
  return {
    decision: decisionToJson(x.decision),
    trace: x.trace.map((s) => [ref(s.rule), s.failed, s.reason]),
    skipped: x.skipped,
    deciding: x.decidingRule ? ref(x.decidingRule) : null,
    resolution: x.resolution,
    ask: x.askContributions?.map((c) => [ref(c.rule), c.effect, c.targets]),
    notes: x.askNotes,
    targetNote: x.targetNote,
  };
}

describe("a policy loaded for one service", () => {
  it("decides and explains its requests as the whole policy does, and loads exactly when it loads", () => {
    fc.assert(
      fc.property(policyArb, systemArb, fc.array(requestArb, { minLength: 1, maxLength: 8 }), (p, raw, requests) => {
        const fs = createMemoryFileSystem(files(p));
        const full = loadPolicy(fs);
        const system = prepareSystemInfo(raw);
        for (const r of requests) {
          const part = loadPolicy(fs, { service: r.service });
          expect(part.ok).toBe(full.ok);
          if (!full.ok || !part.ok) {
            expect(part.ok ? null : part.error).toEqual(full.ok ? null : full.error);
            expect(part.diagnostics).toEqual(full.diagnostics);
            continue;
          }
          expect(part.policy.service).toBe(r.service);
          expect(part.policy.ruleCount).toBe(full.policy.rules.length);
          expect(part.policy.rules.every((x) => x.service === null || x.service === r.service)).toBe(true);
          expect(part.policy.rules.map(ref)).toEqual(full.policy.rules.filter((x) => x.service === null || x.service === r.service).map(ref));
          expect(decisionToJson(evaluate(part.policy, r, system))).toEqual(decisionToJson(evaluate(full.policy, r, system)));
          expect(shape(explain(part.policy, r, system))).toEqual(shape(explain(full.policy, r, system)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("refuses a request for another service instead of deciding it from missing rules", () => {
    const fs = createMemoryFileSystem({ "30-user.policy": "qubes.A * work vault allow\nqubes.B * work vault allow\n" });
    const part = loadPolicy(fs, { service: "qubes.A" });
    expect(part.ok).toBe(true);
    if (!part.ok) return;
    const system = prepareSystemInfo({ domains: { dom0: { type: "AdminVM", tags: [] }, work: { type: "AppVM", tags: [] }, vault: { type: "AppVM", tags: [] } } });
    const d = evaluate(part.policy, makeRequest("qubes.B", "work", "vault"), system);
    expect(d).toMatchObject({ ok: false, error: "EngineError", code: "policy-loaded-for-another-service", stage: "request" });
    expect(d.ok ? "" : d.message).toContain("`qubes.A`");
    expect(evaluate(part.policy, makeRequest("qubes.A", "work", "vault"), system)).toMatchObject({ ok: true, action: "allow", target: "vault" });
  });
});
