/**
 * `service-not-provided`: a rule for a concrete service whose calls can only end at qubes that do
 * not advertise it (`supported_rpc` in the system model). Data-driven: rules × system models
 * through `analyzeWorkspace` (the package entry), then a property test against the evaluator:
 * whenever the warning is given, every call the rule decides ends at a qube (or a disposable of a
 * template) that is known not to provide the service.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  analyzeWorkspace,
  createMemoryFileSystem,
  evaluate,
  knownCodes,
  loadPolicy,
  prepareSystemInfo,
  type AnalysisDiagnostic,
  type RawSystemInfo,
} from "@qubes-kit/language";

const BASE_SYSTEM = JSON.parse(readFileSync(new URL("../fixtures/lsp/system.json", import.meta.url), "utf8")) as RawSystemInfo;
const BASE = ["qubes.Filecopy", "qubes.OpenInVM", "qubes.OpenURL", "qubes.StartApp", "qubes.VMShell", "qubes.WaitForSession"];
/** What each qube advertises in the default model (dom0: nothing known, as in a real snapshot). */
const SERVICES: Record<string, string[] | undefined> = {
  dom0: undefined,
  work: BASE,
  personal: BASE,
  untrusted: BASE,
  vault: [...BASE, "qubes.Gpg"],
  "fedora-41": BASE,
  "default-dvm": [...BASE, "my.DispOnly"],
  "default-mgmt-dvm": [...BASE, "my.Internal"],
  disp1234: [...BASE, "my.DispOnly"],
  "sys-net": [...BASE, "qubes.UpdatesProxy"],
};

/** The fixture system with `supported_rpc` set from `services` (a value of `undefined` leaves the key out). */
function model(overrides: Record<string, unknown> = {}, base: Record<string, unknown> = SERVICES): RawSystemInfo {
  const raw = structuredClone(BASE_SYSTEM);
  const services = { ...base, ...overrides };
  for (const [name, info] of Object.entries(raw.domains)) {
    const s = services[name];
    if (s !== undefined) (info as Record<string, unknown>)["supported_rpc"] = Array.isArray(s) ? [...(s as string[])].sort() : s;
  }
  return raw;
}

interface Found {
  file: string;
  line: number;
  word: string;
  message: string;
  severity: string;
}

function findings(files: Record<string, string>, raw: RawSystemInfo | null): Found[] {
  const fs = createMemoryFileSystem(files);
  const snapshot = analyzeWorkspace(fs, { system: raw ? prepareSystemInfo(raw) : null });
  const out: Found[] = [];
  for (const [path, list] of snapshot.diagnostics) {
    for (const d of list) {
      if (d.code !== "service-not-provided") continue;
      const text = files[path.replace("/etc/qubes/policy.d/", "")] ?? "";
      out.push({ file: path.replace("/etc/qubes/policy.d/", ""), line: d.line, word: text.slice(d.span.start, d.span.end), message: d.message, severity: d.severity });
    }
  }
  return out.sort((a, b) => (a.file + a.line < b.file + b.line ? -1 : 1));
}

type Case = {
  name: string;
  /** `30-user.policy` lines, or several files. */
  policy: string[] | Record<string, string>;
  /** `supported_rpc` overrides per qube (`null` removes the key). */
  services?: Record<string, unknown>;
  /** The 1-based lines of `30-user.policy` (or `file:line`) that get the warning. */
  expect: Array<number | string>;
};

const CASES: Case[] = [
  // Named targets.
  { name: "a named target that does not advertise the service", policy: ["my.Backup * work vault allow"], expect: [1] },
  { name: "a named target that advertises it", policy: ["qubes.Gpg * work vault allow"], expect: [] },
  { name: "a concrete argument: the service name decides", policy: ["qubes.Gpg +key work vault allow", "my.Backup +daily work vault allow"], expect: [2] },
  { name: "ask with target= to a qube without it", policy: ["my.Backup * work @anyvm ask target=vault", "qubes.Gpg * work @anyvm ask target=vault"], expect: [1] },
  { name: "allow with target= goes to the redirect, not the target column", policy: ["qubes.Gpg * work @anyvm allow target=personal", "qubes.Gpg * work personal allow target=vault"], expect: [1] },
  // Token targets.
  { name: "@anyvm where one qube provides", policy: ["qubes.Gpg * work @anyvm allow"], expect: [] },
  { name: "@anyvm where none does", policy: ["my.Backup * work @anyvm allow"], expect: [1] },
  { name: "@tag: and @type:", policy: ["qubes.Gpg * work @tag:gpg-server allow", "my.Backup * work @tag:net allow", "my.Backup * work @type:TemplateVM allow"], expect: [2, 3] },
  { name: "deny rules call nothing", policy: ["my.Backup * work vault deny", "my.Backup * work @anyvm deny"], expect: [] },
  { name: "the service `*`", policy: ["* * work vault allow"], expect: [] },
  // dom0 is never advertised.
  {
    name: "targets that can be dom0",
    policy: ["my.Backup * work dom0 allow", "my.Backup * work @adminvm allow", "my.Backup * work @anyvm allow target=dom0", "my.Backup * work @type:AdminVM allow", "my.Backup * work * allow", "my.Backup * work @anyvm ask target=@adminvm"],
    expect: [],
  },
  { name: "dom0 advertising services changes nothing", policy: ["my.Backup * work dom0 allow"], services: { dom0: ["qubes.Filecopy"] }, expect: [] },
  // Unknown qubes.
  { name: "a reachable qube without the key", policy: ["my.Backup * work vault allow", "my.Backup * work @anyvm allow"], services: { vault: undefined }, expect: [] },
  { name: "one unknown qube among many", policy: ["my.Backup * work @anyvm allow", "my.Backup * work personal allow"], services: { "sys-net": "not a list" }, expect: [2] },
  { name: "a value that is not a list of names is unknown, never a crash", policy: ["my.Backup * work vault allow", "my.Backup * work personal allow", "my.Backup * work untrusted allow"], services: { vault: [1, 2], personal: null, untrusted: { a: 1 } }, expect: [] },
  { name: "an empty list is taken at its word", policy: ["my.Backup * work vault allow"], services: { vault: [] }, expect: [1] },
  { name: "a model without the key anywhere", policy: ["my.Backup * work vault allow"], services: Object.fromEntries(Object.keys(SERVICES).map((k) => [k, undefined])), expect: [] },
  // Disposables: a new disposable provides what its disposable template's chain provides.
  { name: "@dispvm through the caller's default_dispvm", policy: ["my.DispOnly * work @dispvm allow", "qubes.Gpg * work @dispvm allow"], expect: [2] },
  { name: "@dispvm from a caller without a default", policy: ["qubes.Gpg * vault @dispvm allow"], expect: [] },
  {
    name: "@dispvm:X and @dispvm:@tag:T",
    policy: ["my.DispOnly * work @dispvm:default-dvm allow", "qubes.Gpg * work @dispvm:default-dvm allow", "qubes.Gpg * work @dispvm:@tag:dvm-ok allow", "qubes.Gpg * work @default allow target=@dispvm:default-dvm"],
    expect: [2, 3, 4],
  },
  { name: "a disposable template whose services are unknown", policy: ["qubes.Gpg * work @dispvm allow", "qubes.Gpg * work @dispvm:default-dvm allow"], services: { "default-dvm": undefined }, expect: [] },
  { name: "@dispvm:X of a qube that is not a disposable template never matches", policy: ["my.Backup * work @dispvm:vault allow"], expect: [] },
  // ask without target=: what collect_targets_for_ask can offer, per caller.
  { name: "ask @anyvm offers every qube", policy: ["my.Backup * work @anyvm ask", "qubes.Gpg * work @anyvm ask"], expect: [1] },
  {
    name: "ask @default offers what the service's rules for the same caller add",
    policy: ["qubes.Gpg * personal @default ask default_target=untrusted", "qubes.Gpg * work vault allow", "qubes.Gpg * personal untrusted allow"],
    expect: [1, 3],
  },
  { name: "an ask fed by another file's rule", policy: { "30-user.policy": "qubes.Gpg * work @default ask default_target=vault\n", "40-more.policy": "qubes.Gpg * @anyvm vault allow\n" }, expect: [] },
  {
    name: "internal qubes are never offered",
    policy: ["my.Internal * work @default ask default_target=personal", "my.Internal * work default-mgmt-dvm allow", "my.Internal * work personal allow"],
    expect: [1, 3],
  },
  { name: "the caller is never offered to itself", policy: ["qubes.Gpg * vault @anyvm ask", "qubes.Gpg * @tag:gpg-server @anyvm ask", "qubes.Gpg * @anyvm @anyvm ask"], expect: [1, 2] },
  {
    name: "ask keeps a new disposable of the caller itself in the offer (only the caller's name is dropped)",
    policy: ["my.DispOnly * default-dvm @dispvm ask", "my.DispOnly * @type:AppVM vault allow"],
    expect: [2],
  },
  { name: "ask keeps @dispvm:CALLER offered by a named-disposable rule", policy: ["my.DispOnly * default-dvm @default ask default_target=vault", "my.DispOnly * default-dvm @dispvm:default-dvm allow", "my.DispOnly * default-dvm vault allow"], expect: [3] },
  {
    name: "ask from a disposable template whose offer is only itself and others without the service",
    policy: ["qubes.Gpg * default-dvm @dispvm ask", "qubes.Gpg * @type:AppVM personal allow"],
    services: { "default-dvm": BASE },
    expect: [1, 2],
  },
  { name: "a rule for every service feeds the offer", policy: ["qubes.Gpg * work @default ask default_target=vault", "* * @anyvm vault allow"], expect: [] },
  // Legacy syntax: the service comes from the include.
  {
    name: "an !include-service file",
    policy: { "30-user.policy": "!include-service my.Backup * include/backup\n!include-service qubes.Gpg * include/gpg\n", "include/backup": "$anyvm vault allow\n", "include/gpg": "$anyvm vault allow\n" },
    expect: ["include/backup:1"],
  },
  {
    name: "a legacy file included for two services: only when every copy is never provided",
    policy: { "30-user.policy": "!include-service my.Backup * include/shared\n!include-service qubes.Gpg * include/shared\n", "include/shared": "work vault allow\n" },
    expect: [],
  },
];

function filesOf(c: Case): Record<string, string> {
  return Array.isArray(c.policy) ? { "30-user.policy": c.policy.join("\n") + "\n" } : c.policy;
}

describe("service-not-provided: rules × system models", () => {
  for (const c of CASES) {
    it(c.name, () => {
      const files = filesOf(c);
      const found = findings(files, model(c.services));
      const where = (f: Found) => (f.file === "30-user.policy" ? f.line : `${f.file}:${f.line}`);
      expect(found.map(where)).toEqual(c.expect);
      for (const f of found) {
        expect(f.severity).toBe("info");
        expect(f.message).toMatch(/^no qube this rule can call provides `[^`]+`: .+ not advertise it, so the calls it lets through fail at the target$/);
        // The service word in policy.d files, the target word in legacy files.
        expect(f.word).toBe(f.file === "30-user.policy" ? files[f.file]!.split("\n")[f.line - 1]!.split(/\s+/)[0] : files[f.file]!.split("\n")[f.line - 1]!.split(/\s+/)[1]);
      }
    });
  }

  it("is silent without a system model, and off when configured off", () => {
    expect(findings({ "30-user.policy": "my.Backup * work vault allow\n" }, null)).toEqual([]);
    const snapshot = analyzeWorkspace(createMemoryFileSystem({ "30-user.policy": "my.Backup * work vault allow\n" }), { system: prepareSystemInfo(model()), analysis: { "service-not-provided": "off" } });
    expect([...snapshot.diagnostics.values()].flat().filter((d) => d.code === "service-not-provided")).toEqual([]);
  });

  it("a qube whose model entry is null is skipped, never an internal error", () => {
    const raw = model();
    (raw.domains as Record<string, unknown>)["vault"] = null;
    const fs = createMemoryFileSystem({ "30-user.policy": "my.Backup * work vault allow\nmy.Backup * @anyvm @anyvm ask\nmy.Backup * work personal allow\n" });
    const all = [...analyzeWorkspace(fs, { system: prepareSystemInfo(raw) }).diagnostics.values()].flat();
    // (Other rules' internal errors on such a model are theirs to fix.)
    expect(all.filter((d) => d.code === "internal-error" && d.message.includes("service-not-provided"))).toEqual([]);
    expect(all.filter((d) => d.code === "service-not-provided").map((d) => d.line)).toEqual([2, 3]);
  });

  it("names the qubes it looked at, at most three", () => {
    const [one] = findings({ "30-user.policy": "my.Backup * work vault allow\n" }, model());
    expect(one!.message).toBe("no qube this rule can call provides `my.Backup`: `vault` does not advertise it, so the calls it lets through fail at the target");
    const [many] = findings({ "30-user.policy": "my.Backup * work @anyvm allow\n" }, model());
    expect(many!.message).toBe("no qube this rule can call provides `my.Backup`: `default-dvm`, `default-mgmt-dvm`, `disp1234` and 6 more do not advertise it, so the calls it lets through fail at the target");
  });

  it("is documented: summary, help and severity in the code table", () => {
    const info = knownCodes().find((c) => c.code === "service-not-provided");
    expect(info?.severity).toBe("info");
    expect(info?.help).toContain("qkit system snapshot --services");
    // Services that are never advertised, and the way out.
    expect(info?.help).toContain("/run/qubes-rpc");
    expect(info?.help).toContain('"service-not-provided": "off"');
  });
});

// ---------------------------------------------------------------------------
// Soundness against the evaluator.

const NAMES = Object.keys(BASE_SYSTEM.domains);
const SVC = "my.Svc";
const TOKENS = ["work", "vault", "sys-net", "dom0", "@anyvm", "@adminvm", "@tag:gpg-server", "@type:AppVM", "@dispvm", "@dispvm:default-dvm", "@dispvm:@tag:dvm-ok", "@default", "*"];
// Disposable templates are callers too: an ask offer keeps `@dispvm:CALLER` while it drops the caller.
const SOURCES = ["work", "personal", "vault", "default-dvm", "default-mgmt-dvm", "@type:AppVM", "@anyvm", "@tag:gpg-client", "@tag:dvm-ok", "*"];
const REDIRECTS = ["vault", "work", "dom0", "@dispvm", "@dispvm:default-dvm"];
const ruleArb = fc
  .record({
    service: fc.constantFrom(SVC, SVC, "*"),
    source: fc.constantFrom(...SOURCES),
    target: fc.constantFrom(...TOKENS),
    action: fc.constantFrom("allow", "ask", "deny"),
    redirect: fc.option(fc.constantFrom(...REDIRECTS), { nil: undefined, freq: 3 }),
  })
  .map((r) => {
    const params = r.action !== "deny" && r.redirect ? [`target=${r.redirect}`] : [];
    if (r.target === "@default" && r.action === "allow" && !r.redirect) params.push("target=work");
    if (r.target === "@default" && r.action === "ask") params.push("default_target=vault");
    return [r.service, "*", r.source, r.target, r.action, ...params].join(" ");
  });
/** Per qube: unknown, or a list with or without the service. */
const servicesArb = fc.record(Object.fromEntries(NAMES.map((n) => [n, fc.constantFrom(undefined, ["other.Svc"], ["other.Svc"], ["other.Svc"], [SVC])])) as Record<string, fc.Arbitrary<string[] | undefined>>);

describe("service-not-provided: soundness", () => {
  it("a reported rule decides no call that ends at a qube advertising the service, at dom0 or at an unknown qube", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 6 }), servicesArb, (rules, services) => {
        const text = rules.join("\n") + "\n";
        const fs = createMemoryFileSystem({ "30-user.policy": text });
        const loaded = loadPolicy(fs);
        if (!loaded.ok) return;
        const raw = model({}, services);
        const system = prepareSystemInfo(raw);
        const snapshot = analyzeWorkspace(fs, { system });
        const flagged = new Set(
          [...snapshot.diagnostics.values()]
            .flat()
            .filter((d: AnalysisDiagnostic) => d.code === "service-not-provided")
            .map((d) => d.line),
        );
        if (flagged.size === 0) return;
        const provides = (target: string): boolean | undefined => {
          const name = target.startsWith("@dispvm:") ? target.slice(8) : target;
          if (name === "dom0" || name === "@adminvm") return undefined;
          const s = services[name];
          return s === undefined ? undefined : s.includes(SVC);
        };
        for (const source of NAMES) {
          for (const target of ["", ...NAMES, "@dispvm", "@dispvm:default-dvm", "@adminvm"]) {
            const d = evaluate(loaded.policy, { service: SVC, argument: "+", source, target }, system);
            if (!d.ok || d.action === "deny" || !flagged.has(d.rule.line!)) continue;
            const ends = d.action === "allow" ? [d.target] : d.targetsForAsk;
            for (const t of ends) {
              const dflt = system.domains.get(source)?.default_dispvm;
              // `@dispvm` from a caller without a default disposable template cannot be started at all.
              if (t === "@dispvm" && (typeof dflt !== "string" || dflt === "")) continue;
              const resolved = t === "@dispvm" ? `@dispvm:${dflt}` : t;
              expect(provides(resolved), `${rules.join(" | ")}: ${source} → ${target || "@default"} ends at ${t}`).toBe(false);
            }
          }
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe("service-not-provided: verdicts cached with the system model", () => {
  const lines = (snapshot: ReturnType<typeof analyzeWorkspace>) =>
    [...snapshot.diagnostics.entries()].flatMap(([p, list]) => list.filter((d) => d.code === "service-not-provided").map((d) => `${p}:${d.line}:${d.message}`)).sort();

  it("an ask rule's qubes are named as the targets it offers", () => {
    const [f] = findings({ "30-user.policy": "my.Backup * work @anyvm ask target=vault\nmy.Backup * work @default ask default_target=vault\nmy.Backup * work vault allow\n" }, model());
    expect(f!.message).toBe("no qube this rule can call provides `my.Backup`: `vault` does not advertise it, so the calls it lets through fail at the target");
    const asked = findings({ "30-user.policy": "my.Backup * work @default ask default_target=vault\nmy.Backup * work vault allow\n" }, model());
    expect(asked[0]!.message).toBe("no qube this rule can call provides `my.Backup`: `vault` (the target it offers) does not advertise it, so the calls it lets through fail at the target");
  });

  it("a run after edits over the same model finds what a run over a fresh model finds", () => {
    fc.assert(
      fc.property(fc.array(fc.array(ruleArb, { minLength: 1, maxLength: 6 }), { minLength: 2, maxLength: 4 }), servicesArb, (versions, services) => {
        const raw = model({}, services);
        const shared = prepareSystemInfo(raw);
        for (const rules of versions) {
          // Two files, so that a rule moves between runs as well as changes.
          const files = { "30-user.policy": rules.slice(0, 3).join("\n") + "\n", "40-more.policy": rules.slice(3).join("\n") + "\n" };
          const warm = lines(analyzeWorkspace(createMemoryFileSystem(files), { system: shared }));
          const cold = lines(analyzeWorkspace(createMemoryFileSystem(files), { system: prepareSystemInfo(raw) }));
          expect(warm).toEqual(cold);
        }
      }),
      { numRuns: 150 },
    );
  });
});
