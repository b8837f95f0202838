/**
 * Property tests of the language core (fast-check):
 * - the parser never throws and accounts for every physical line;
 * - printing a rule and parsing it again gives the same rule;
 * - loading never throws, whatever the files;
 * - the rule index and the `ask` cache never change a decision.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkPolicy,
  runConformanceCase,
  type ConformanceCase,
  createMemoryFileSystem,
  decisionToJson,
  evaluate,
  loadPolicy,
  parseDocument,
  prepareSystemInfo,
  printRule,
  type RawSystemInfo,
  type RuleLine,
} from "@qubes-kit/language";

const SPECIAL = ["\n", "\r", "\r\n", "\t", " ", "\u00a0", "\u001c", "\u0085", "\u2028", "\ufeff", "#", "!", "$", ",", "=", "@", "*", "+", ":"];
const WORDS = ["qubes.Filecopy", "*", "+", "+arg", "@anyvm", "@tag:", "@tag:x", "@dispvm:", "@dispvm:@tag:x", "@default", "allow", "deny", "ask", "target=", "target=@dispvm", "notify=yes", "user=root", "!include", "!include-service", "!compat-4.0", "$include:x", "work", "uuid:1"];
const textArb = fc.array(fc.oneof(fc.constantFrom(...SPECIAL), fc.constantFrom(...WORDS), fc.string({ maxLength: 4 }), fc.string({ unit: "grapheme", maxLength: 3 })), { maxLength: 60 }).map((a) => a.join(""));

function physicalLines(text: string, lfOnly: boolean): number {
  return (lfOnly ? text.match(/\n/g) : text.match(/\r\n|\r|\n/g))?.length ?? 0;
}

describe("parseDocument", () => {
  it("never throws, keeps every physical line, and keeps spans inside the text", () => {
    fc.assert(
      fc.property(textArb, fc.constantFrom("policy", "service") as fc.Arbitrary<"policy" | "service">, fc.constantFrom("universal", "lf") as fc.Arbitrary<"universal" | "lf">, (text, syntax, newlines) => {
        const doc = parseDocument(text, { syntax, newlines });
        expect(doc.lines.length).toBe(physicalLines(text, newlines === "lf") + 1);
        doc.lines.forEach((l, i) => expect(l.line).toBe(i + 1));
        for (const d of doc.diagnostics) {
          expect(d.span.start).toBeGreaterThanOrEqual(0);
          expect(d.span.end).toBeLessThanOrEqual(text.length);
          expect(d.span.start).toBeLessThanOrEqual(d.span.end);
          expect(d.message).not.toMatch(/\n/);
        }
        // At most one error per line: the engine's first.
        const lines = doc.diagnostics.map((d) => d.line);
        expect(new Set(lines).size).toBe(lines.length);
      }),
      { numRuns: 2000 },
    );
  });
});

const SOURCES = ["*", "@anyvm", "@adminvm", "@type:AppVM", "@tag:t1", "@dispvm:default-dvm", "@dispvm:@tag:t1", "dom0", "work", "personal", "uuid:00000000-0000-0000-0000-000000000001", "ghost", "$anyvm"];
const TARGETS = [...SOURCES, "@default", "@dispvm"];
const REDIRECTS = ["@adminvm", "@dispvm", "@dispvm:default-dvm", "dom0", "work", "vault", "ghost", "uuid:00000000-0000-0000-0000-000000000003"];
const SERVICE_ARGS: [string, string][] = [
  ["*", "*"],
  ["qubes.A", "*"],
  ["qubes.A", "+"],
  ["qubes.A", "+x"],
  ["qubes.B", "*"],
  ["qubes.B", "+x"],
];

const ruleArb = fc
  .record({
    sa: fc.constantFrom(...SERVICE_ARGS),
    source: fc.constantFrom(...SOURCES),
    target: fc.constantFrom(...TARGETS),
    action: fc.constantFrom("allow", "deny", "ask"),
    redirect: fc.option(fc.constantFrom(...REDIRECTS), { nil: undefined }),
    defaultTarget: fc.option(fc.constantFrom(...REDIRECTS), { nil: undefined }),
    user: fc.option(fc.constantFrom("root", "user", ""), { nil: undefined }),
    notify: fc.option(fc.boolean(), { nil: undefined }),
    autostart: fc.option(fc.boolean(), { nil: undefined }),
  })
  .map((r) => {
    const params: string[] = [];
    if (r.action !== "deny") {
      if (r.redirect) params.push(`target=${r.redirect}`);
      if (r.action === "ask" && r.defaultTarget) params.push(`default_target=${r.defaultTarget}`);
      if (r.user !== undefined) params.push(`user=${r.user}`);
      if (r.autostart !== undefined) params.push(`autostart=${r.autostart ? "yes" : "no"}`);
    }
    if (r.notify !== undefined) params.push(`notify=${r.notify ? "yes" : "no"}`);
    if (r.action === "allow" && r.target === "@default" && !r.redirect) params.push("target=work");
    return [r.sa[0], r.sa[1], r.source, r.target, r.action, ...params].join("  ");
  });

describe("printRule", () => {
  it("prints rules that parse back to the same rule", () => {
    fc.assert(
      fc.property(ruleArb, (line) => {
        const first = parseDocument(line).lines[0] as RuleLine;
        expect(first.rule).not.toBeNull();
        const printed = printRule(first.rule!);
        const again = parseDocument(printed).lines[0] as RuleLine;
        expect(again.rule).toEqual(first.rule);
      }),
      { numRuns: 1000 },
    );
  });
});

const NAMES = ["dom0", "work", "personal", "vault", "default-dvm", "sys-net", "disp7"];
const systemArb: fc.Arbitrary<RawSystemInfo> = fc
  .record({
    present: fc.subarray(NAMES.slice(1), { minLength: 1 }),
    tags: fc.array(fc.subarray(["t1", "t2"]), { minLength: NAMES.length, maxLength: NAMES.length }),
    types: fc.array(fc.constantFrom("AppVM", "TemplateVM", "DispVM", "StandaloneVM"), { minLength: NAMES.length, maxLength: NAMES.length }),
    dvm: fc.array(fc.boolean(), { minLength: NAMES.length, maxLength: NAMES.length }),
    defaults: fc.array(fc.constantFrom(null, "default-dvm", "work", "ghost"), { minLength: NAMES.length, maxLength: NAMES.length }),
    running: fc.array(fc.boolean(), { minLength: NAMES.length, maxLength: NAMES.length }),
    internal: fc.array(fc.constantFrom(null, "1"), { minLength: NAMES.length, maxLength: NAMES.length }),
    // Now and then a key is missing, as in the corpus: the engine then crashes in places.
    drop: fc.option(fc.record({ qube: fc.constantFrom(...NAMES), key: fc.constantFrom("tags", "type", "template_for_dispvms", "power_state", "uuid") }), { nil: undefined, freq: 4 }),
  })
  .map((s) => {
    const domains: RawSystemInfo["domains"] = {};
    NAMES.forEach((n, i) => {
      if (n !== "dom0" && !s.present.includes(n)) return;
      domains[n] = {
        internal: s.internal[i]!,
        tags: s.tags[i]!,
        type: n === "dom0" ? "AdminVM" : s.types[i]!,
        template_for_dispvms: n !== "dom0" && s.dvm[i]!,
        default_dispvm: s.defaults[i]!,
        power_state: s.running[i] ? "Running" : "Halted",
        uuid: `00000000-0000-0000-0000-0000000000${i.toString(16).padStart(2, "0")}`,
        guivm: "dom0",
        relayvm: null,
        transport_rpc: null,
        icon: "appvm-red",
        label: "0xcc0000",
      };
    });
    if (s.drop && domains[s.drop.qube]) delete (domains[s.drop.qube] as Record<string, unknown>)[s.drop.key];
    return { domains };
  });

const requestArb = fc.record({
  service: fc.constantFrom("qubes.A", "qubes.B", "qubes.C"),
  argument: fc.constantFrom("+", "+x", "+y"),
  source: fc.constantFrom(...NAMES, "ghost", "uuid:00000000-0000-0000-0000-000000000001", "uuid:00000000-0000-0000-0000-000000000000"),
  target: fc.constantFrom(...NAMES, "", "@default", "@dispvm", "@dispvm:default-dvm", "@adminvm", "ghost", "uuid:00000000-0000-0000-0000-000000000002", "@tag:t1"),
});

/** A decision as the corpus judges it: when the real engine would crash, only that fact counts, not which crash comes first. */
function judged(d: ReturnType<typeof evaluate>): Record<string, unknown> {
  const j = decisionToJson(d);
  return j["error"] === "EngineError" ? { ok: false, error: "EngineError", stage: j["stage"] } : j;
}

describe("the rule index", () => {
  it("never changes a decision (indexed vs. linear scan, like the engine)", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 25 }), systemArb, fc.array(requestArb, { minLength: 1, maxLength: 20 }), (rules, raw, requests) => {
        const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": rules.join("\n") + "\n" }));
        expect(loaded.ok).toBe(true);
        if (!loaded.ok) return;
        const system = prepareSystemInfo(raw);
        for (const r of requests) {
          const indexed = judged(evaluate(loaded.policy, r, system));
          const linear = judged(evaluate(loaded.policy, r, system, { linear: true }));
          expect(indexed).toEqual(linear);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe("ask target collection", () => {
  // One service, mostly asks for no particular target: every rule takes part in the collection.
  const askRuleArb = fc
    .record({
      source: fc.constantFrom("@anyvm", "*", "work", "@tag:t1", "@type:AppVM", "uuid:00000000-0000-0000-0000-000000000001"),
      target: fc.constantFrom(...TARGETS),
      action: fc.constantFrom("allow", "deny", "ask", "ask"),
      redirect: fc.option(fc.constantFrom(...REDIRECTS), { nil: undefined, freq: 4 }),
    })
    .map((r) => {
      const params = r.action !== "deny" && r.redirect ? [`target=${r.redirect}`] : [];
      if (r.action === "allow" && r.target === "@default" && !r.redirect) params.push("target=work");
      return ["qubes.A", "*", r.source, r.target, r.action, ...params].join(" ");
    });
  it("offers exactly what the engine's reverse scan offers", () => {
    fc.assert(
      fc.property(fc.array(askRuleArb, { minLength: 1, maxLength: 30 }), systemArb, fc.constantFrom("work", "personal", "vault", "uuid:00000000-0000-0000-0000-000000000001"), (rules, raw, source) => {
        const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": rules.join("\n") + "\n" }));
        expect(loaded.ok).toBe(true);
        if (!loaded.ok) return;
        const system = prepareSystemInfo(raw);
        for (const target of ["", "vault", "@dispvm"]) {
          const r = { service: "qubes.A", argument: "+", source, target };
          expect(judged(evaluate(loaded.policy, r, system))).toEqual(judged(evaluate(loaded.policy, r, system, { linear: true })));
        }
      }),
      { numRuns: 1500 },
    );
  });
});

describe("loadPolicy", () => {
  const LINES = ["!include include/a", "!include include/b", "!include-service qubes.A * include/s", "!include-dir include", "!compat-4.0", "!include /etc/qubes-rpc/x", "qubes.A * @anyvm @anyvm allow", "bad line", "$include:include/s", "@anyvm @anyvm allow", "", "# c"];
  const FILES = ["30-a.policy", "40-b.policy", "include/a", "include/b", "include/s", "include/10-c.policy", "/run/qubes/policy.d/30-a.policy", "/etc/qubes-rpc/policy/qubes.A", "/etc/qubes-rpc/policy/qubes.A+x", "/etc/qubes-rpc/x", "30-Bad.policy"];
  it("never throws, and a failure always says why", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...FILES), fc.array(fc.constantFrom(...LINES), { maxLength: 6 }).map((l) => l.join("\n"))), fc.boolean(), (files, collectAll) => {
        const r = loadPolicy(createMemoryFileSystem(files), { collectAll });
        if (!r.ok) {
          expect(r.error.message.length).toBeGreaterThan(0);
          expect(r.error.message).not.toMatch(/\n/);
        }
        if (collectAll && !r.ok && r.error.error === "PolicySyntaxError") expect(r.diagnostics.some((d) => d.severity === "error")).toBe(true);
      }),
      { numRuns: 1500 },
    );
  });
});

describe("runConformanceCase", () => {
  const caseArb = fc.oneof(
    fc.jsonValue(),
    fc.record(
      {
        id: fc.string(),
        mode: fc.constantFrom("eval", "parse", "lint", "bogus"),
        loader: fc.constantFrom("file", "string"),
        files: fc.oneof(fc.dictionary(fc.constantFrom("30-a.policy", "__main__", "include/x", "/run/qubes/policy.d/1.policy"), fc.oneof(textArb, fc.constant(null), fc.integer())), fc.jsonValue()),
        system: fc.oneof(fc.jsonValue(), systemArb),
        request: fc.oneof(requestArb, fc.jsonValue()),
        requests: fc.oneof(fc.array(requestArb, { maxLength: 3 }), fc.jsonValue()),
      },
      { requiredKeys: [] },
    ),
  );
  it("never throws, whatever the case, and always answers with `ok`", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const out = runConformanceCase(c as ConformanceCase);
        expect(typeof out["ok"]).toBe("boolean");
      }),
      { numRuns: 1500 },
    );
  });
});

describe("checkPolicy and parseDocument", () => {
  const lineArb = fc.oneof(
    ruleArb,
    textArb.map((t) => t.replace(/[\r\n]/g, " ")),
    fc.record({ rule: ruleArb, noise: fc.constantFrom(" notify=yes", " notify=maybe", " target=", " target=*", " user=a user=b", " x", " #c", " default_target=@anyvm", "\u00a0allow", ",x") }).map((r) => r.rule + r.noise),
    ruleArb.map((l) => l.replace(/^\S+/, (s) => (s === "*" ? "qubes/A" : s + "$"))),
  );
  it("finds exactly what the strict loader finds (its fast path never accepts an invalid line)", () => {
    fc.assert(
      fc.property(fc.array(lineArb, { maxLength: 12 }), (lines) => {
        const fs = createMemoryFileSystem({ "30-a.policy": lines.join("\n") + "\n" });
        const checked = checkPolicy(fs);
        const loaded = loadPolicy(fs, { collectAll: true });
        expect(checked.diagnostics).toEqual(loaded.diagnostics);
        expect(checked.ok).toBe(loaded.ok);
        // The editor's parse (the Chevrotain document grammar) finds the same line errors.
        const key = (d: { line: number; code: string; message: string; span: unknown }) => [d.line, d.code, d.message, d.span];
        const FILE_LEVEL = new Set(["not-a-file", "not-a-directory", "include-cycle", "invalid-filename", "failed-to-load", "compat-transitional"]);
        expect(parseDocument(lines.join("\n") + "\n").diagnostics.map(key)).toEqual(loaded.diagnostics.filter((d) => !FILE_LEVEL.has(d.code)).map(key));
        if (loaded.ok) expect(checked.rules).toBe(loaded.policy.rules.length);
      }),
      { numRuns: 3000 },
    );
  });
});
