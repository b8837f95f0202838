/**
 * What-if's decision diff against brute force: on small random systems and
 * policies, the grouped computation (one representative per class of
 * interchangeable qubes) reports exactly the changes that deciding every
 * request today and after gives; and the effect of writing one policy file,
 * diffed over the services whose rules it changes only, counts what the
 * diff of every service counts.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createMemoryFileSystem, evaluate, loadPolicy, prepareSystemInfo, type CompiledPolicy, type DomainInfo, type RawSystemInfo } from "@qubes-kit/language";
import { decisionChanges, futureSystem, outcomeOf, policyEffects, servicesThatDiffer, type DiffStats } from "@qubes-kit/sdk";

const NAMES = ["a", "b", "c", "d", "e", "f"];
const TAGS = ["t1", "t2"];

function dom(type: string, tags: string[], tfd: boolean, dd: string | null, power: string, internal: string | null, uuid: string): DomainInfo {
  return { internal, tags: [...tags].sort(), type, template_for_dispvms: tfd, default_dispvm: dd, icon: "appvm-red", label: "0xcc0000", guivm: "dom0", relayvm: null, transport_rpc: null, power_state: power, uuid };
}

const DOM0 = dom("AdminVM", [], false, null, "Running", null, "00000000-0000-0000-0000-000000000000");

const qubeArb = fc.record({
  present: fc.boolean(),
  type: fc.constantFrom("AppVM", "AppVM", "TemplateVM", "DispVM"),
  tags: fc.subarray(TAGS),
  tfd: fc.boolean(),
  dd: fc.constantFrom<string | null>(null, "a", "b"),
  power: fc.constantFrom("Running", "Halted"),
  internal: fc.constantFrom<string | null>(null, null, "1"),
});

function system(qs: fc.RecordValue<typeof qubeArb>[]): RawSystemInfo {
  const domains: Record<string, DomainInfo> = { dom0: { ...DOM0 } };
  qs.forEach((q, i) => {
    if (!q.present) return;
    domains[NAMES[i]!] = dom(q.type, q.tags, q.tfd && q.type === "AppVM", q.dd, q.power, q.internal, `00000000-0000-4000-8000-00000000000${i}`);
  });
  // default_dispvm must name a disposable template of the system, or none.
  for (const d of Object.values(domains)) if (d.default_dispvm && !domains[d.default_dispvm]?.template_for_dispvms) d.default_dispvm = null;
  return { domains };
}

const SOURCES = ["@anyvm", "*", "a", "b", "c", "@tag:t1", "@type:AppVM", "dom0", "@adminvm"];
const TARGETS = ["@anyvm", "*", "@default", "a", "b", "@dispvm", "@dispvm:a", "@tag:t2", "@type:TemplateVM", "@adminvm", "dom0", "@dispvm:@tag:t1"];
const ruleArb = fc
  .record({
    service: fc.constantFrom("s1", "s2", "*"),
    arg: fc.constantFrom("*", "+x"),
    source: fc.constantFrom(...SOURCES),
    target: fc.constantFrom(...TARGETS),
    action: fc.constantFrom("allow", "deny", "ask", "ask"),
    redirect: fc.constantFrom("", "", "a", "b", "@dispvm", "dom0"),
  })
  .map((r) => {
    let line = `${r.service} ${r.service === "*" ? "*" : r.arg} ${r.source} ${r.target} ${r.action}`;
    if (r.action !== "deny" && r.redirect) line += ` target=${r.redirect}`;
    if (r.action === "ask" && !r.redirect && r.target === "@default") line += " default_target=b";
    return line;
  });

function load(lines: string[]): CompiledPolicy | undefined {
  const r = loadPolicy(createMemoryFileSystem({ "50-test.policy": lines.join("\n") + "\n" }));
  return r.ok ? r.policy : undefined;
}

/** Every request of the universe, decided both ways. */
function bruteForce(pT: CompiledPolicy, sT: RawSystemInfo, pF: CompiledPolicy, sF: RawSystemInfo): string[] {
  const rules = [...pT.rules, ...pF.rules];
  const services = [...new Set(rules.filter((r) => r.service !== null).map((r) => r.service!))].sort();
  const shown = services.map((s) => [s, s]);
  if (rules.some((r) => r.service === null)) shown.push(["qkit.AnyOtherService", "*"]);
  const names = [...new Set([...Object.keys(sT.domains), ...Object.keys(sF.domains)])].sort();
  const disp = names.filter((n) => sT.domains[n]?.template_for_dispvms || sF.domains[n]?.template_for_dispvms).sort();
  const targets = ["@default", ...names, "@dispvm", ...disp.map((d) => `@dispvm:${d}`), "@adminvm"];
  const pt = prepareSystemInfo(sT);
  const pf = prepareSystemInfo(sF);
  const out: string[] = [];
  for (const [svc, svcShown] of shown) {
    const args = new Set(rules.filter((r) => r.argument !== null && (r.service === svc || r.service === null)).map((r) => r.argument!));
    const argList = [...[...args].map((a) => [a, a]), ["+", "*"]];
    for (const [arg, argShown] of argList)
      for (const s of names)
        for (const t of targets) {
          const req = { service: svc!, argument: arg!, source: s, target: t };
          const gone = (sys: RawSystemInfo) => !(s in sys.domains) || (!t.replace(/^@dispvm:/, "").startsWith("@") && !(t.replace(/^@dispvm:/, "") in sys.domains));
          const b = gone(sT) ? { action: "deny" as const, reason: "" } : outcomeOf(evaluate(pT, req, pt));
          const a = gone(sF) ? { action: "deny" as const, reason: "" } : outcomeOf(evaluate(pF, req, pf));
          const strip = (o: typeof b) => (o.action === "deny" ? { action: "deny" } : o);
          if (JSON.stringify(strip(b)) === JSON.stringify(strip(a))) continue;
          if (b.action === "ask" && a.action === "ask") {
            const added = a.targets!.filter((x) => !b.targets!.includes(x));
            const removed = b.targets!.filter((x) => !a.targets!.includes(x));
            const bare = (o: typeof b & { action: "ask" }) => ({ action: "ask", default: o.default, user: o.user });
            out.push(JSON.stringify([svcShown, argShown, s, t, bare(b), bare(a), added.length ? added : null, removed.length ? removed : null]));
          } else out.push(JSON.stringify([svcShown, argShown, s, t, strip(b), strip(a), null, null]));
        }
  }
  return out.sort();
}

function grouped(pT: CompiledPolicy, sT: RawSystemInfo, pF: CompiledPolicy, sF: RawSystemInfo, stats?: DiffStats): string[] {
  const strip = (o: { action: string }) => (o.action === "deny" ? { action: "deny" } : o);
  return decisionChanges({ policy: pT, system: sT }, { policy: pF, system: sF }, stats)
    .flatMap((s) => s.changes.map((c) => JSON.stringify([c.service, c.argument, c.source, c.target, strip(c.before), strip(c.after), c.added ?? null, c.removed ?? null])))
    .sort();
}

describe("what-if decision diff", () => {
  it("equals brute force on random small systems and policies", () => {
    let compared = 0;
    fc.assert(
      fc.property(
        fc.array(qubeArb, { minLength: NAMES.length, maxLength: NAMES.length }),
        fc.array(qubeArb, { minLength: NAMES.length, maxLength: NAMES.length }),
        fc.array(ruleArb, { minLength: 1, maxLength: 6 }),
        fc.array(ruleArb, { minLength: 0, maxLength: 4 }),
        fc.boolean(),
        fc.constantFrom("same", "changed", "changed"),
        (today, changed, rules, extra, keepMost, policyChange) => {
          const sT = system(today);
          // The future: mostly today's qubes, some changed, added or removed.
          const sF = system(keepMost ? today.map((q, i) => (i < 2 ? changed[i]! : q)) : changed);
          const pT = load(rules);
          // Sometimes the same policy (only the system changes), else another one.
          const pF = load(policyChange === "same" ? rules : [...extra, ...rules.slice(1)]);
          if (!pT || !pF) return;
          compared++;
          expect(grouped(pT, sT, pF, sF)).toEqual(bruteForce(pT, sT, pF, sF));
        },
      ),
      { numRuns: 400, seed: 7 },
    );
    expect(compared).toBeGreaterThan(100);
  });

  it("evaluates one representative per class of interchangeable qubes", () => {
    const domains: Record<string, DomainInfo> = { dom0: { ...DOM0 } };
    for (let i = 0; i < 40; i++) domains[`q${i}`] = dom("AppVM", i % 2 ? ["t1"] : [], false, null, "Halted", null, `u${i}`);
    const sT = { domains };
    const sF = { domains: { ...domains, q0: dom("AppVM", ["t2"], false, null, "Halted", null, "u0") } };
    const pT = load(["s1 * @tag:t1 @anyvm ask", "s1 * @anyvm @anyvm deny"])!;
    const pF = load(["s1 * @tag:t2 @anyvm allow target=dom0", "s1 * @tag:t1 @anyvm ask", "s1 * @anyvm @anyvm deny"])!;
    const stats: DiffStats = { services: 0, requests: 0, evaluated: 0, classes: 0 };
    const g = grouped(pT, sT, pF, sF, stats);
    expect(g).toEqual(bruteForce(pT, sT, pF, sF));
    expect(stats.classes).toBe(4); // dom0, q0, the tagged ones, the others
    expect(stats.evaluated).toBeLessThan(stats.requests / 20);
    // q0 gains allow → dom0 everywhere; every t1 source's ask now offers q0's new tag? no: targets of @anyvm always listed q0
    expect(g.some((l) => l.startsWith('["s1","*","q0","q1"'))).toBe(true);
  });

  it("renames the representative's answer for each member (ask lists exclude the source itself)", () => {
    const domains: Record<string, DomainInfo> = { dom0: { ...DOM0 } };
    for (let i = 0; i < 6; i++) domains[`q${i}`] = dom("AppVM", [], false, null, "Halted", null, `u${i}`);
    const sT = { domains };
    const sF = { domains: { ...domains, fresh: dom("AppVM", [], false, null, "Halted", null, "u9") } };
    const p = load(["s1 * @anyvm @anyvm ask", "s2 * @anyvm @default ask default_target=q0"])!;
    const g = grouped(p, sT, p, sF);
    expect(g).toEqual(bruteForce(p, sT, p, sF));
    expect(g.length).toBeGreaterThan(30);
  });
});

describe("the effect of writing one policy file", () => {
  const stack = { format: 1, stack: "s", global: {}, labels: {}, qubes: [], policy: [], expect: [], options: { prune: false, restart: "never", policy_priority: 40, adopt: false } } as unknown as Parameters<typeof policyEffects>[2];
  const text = (lines: string[]) => lines.join("\n") + "\n";
  it("counts what the diff of every service counts (only the services whose rules change are diffed)", () => {
    let compared = 0;
    let narrowed = 0;
    fc.assert(
      fc.property(
        fc.array(qubeArb, { minLength: NAMES.length, maxLength: NAMES.length }),
        fc.array(ruleArb, { minLength: 0, maxLength: 5 }),
        fc.array(ruleArb, { minLength: 0, maxLength: 4 }),
        fc.array(ruleArb, { minLength: 0, maxLength: 4 }),
        fc.boolean(),
        (qs, base, before, after, absent) => {
          const sys = system(qs);
          const texts: Record<string, string> = { "30-base.policy": text(base), ...(absent ? {} : { "50-test.policy": text(before) }) };
          const a = loadPolicy(createMemoryFileSystem(texts));
          const b = loadPolicy(createMemoryFileSystem({ ...texts, "50-test.policy": text(after) }));
          if (!a.ok || !b.ok) return;
          compared++;
          const only = servicesThatDiffer(a.policy.rules, b.policy.rules);
          if (only !== undefined) narrowed++;
          const future = futureSystem(sys, stack);
          const all = { grant: 0, revoke: 0, change: 0 };
          for (const s of decisionChanges({ policy: a.policy, system: future }, { policy: b.policy, system: future })) for (const c of s.changes) all[c.kind]++;
          expect(policyEffects(sys, texts, stack)("50-test", absent ? undefined : text(before), text(after))).toEqual(all);
          // Stopped at the first grant or change (what a plan needs): the same mark, and exact counts when there is none.
          const quick = policyEffects(sys, texts, stack, { untilGrant: true })("50-test", absent ? undefined : text(before), text(after))!;
          const grants = (e: typeof all) => e.grant > 0 || e.change > 0;
          expect(grants(quick)).toBe(grants(all));
          if (!grants(all)) expect(quick).toEqual(all);
          else expect(quick.grant + quick.change).toBe(1);
        },
      ),
      { numRuns: 300, seed: 11 },
    );
    expect(compared).toBeGreaterThan(100);
    expect(narrowed).toBeGreaterThan(30);
  });

  it("a file that changes no service's rules (a comment, a rule moved across another service's) is not diffed", () => {
    const a = loadPolicy(createMemoryFileSystem({ "50-a.policy": "s1 * a b allow\ns2 * a b deny\n" }));
    const b = loadPolicy(createMemoryFileSystem({ "50-a.policy": "# moved\ns2 * a b deny\ns1 * a b allow\n" }));
    const c = loadPolicy(createMemoryFileSystem({ "50-a.policy": "s2 * a b deny\n* * a b deny\ns1 * a b allow\n" }));
    if (!a.ok || !b.ok || !c.ok) throw new Error("does not load");
    expect(servicesThatDiffer(a.policy.rules, b.policy.rules)).toEqual(new Set());
    // A `*` rule added: every service may change.
    expect(servicesThatDiffer(a.policy.rules, c.policy.rules)).toBeUndefined();
    // The same rules, one moved across a `*` rule: that service's decisions change.
    const d = loadPolicy(createMemoryFileSystem({ "50-a.policy": "s1 * a b allow\n* * a b deny\n" }));
    const e = loadPolicy(createMemoryFileSystem({ "50-a.policy": "* * a b deny\ns1 * a b allow\n" }));
    if (!d.ok || !e.ok) throw new Error("does not load");
    expect(servicesThatDiffer(d.policy.rules, e.policy.rules)).toEqual(new Set(["s1"]));
    const sys = system(NAMES.map(() => ({ present: true, type: "AppVM", tags: [], tfd: false, dd: null, power: "Halted", internal: null })));
    expect(policyEffects(sys, { "50-a.policy": "s1 * a b allow\n* * a b deny\n" }, stack)("50-a", "s1 * a b allow\n* * a b deny\n", "* * a b deny\ns1 * a b allow\n")).toEqual({ grant: 0, revoke: 1, change: 0 });
  });
});
