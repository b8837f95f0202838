/**
 * The vocabulary in steps (what the language server spreads over short turns while typing):
 * the same names, details, services and arguments as the vocabulary made at once, with or
 * without a system model, after edits (the services and tokens of unchanged files reused),
 * and a long policy is cut into many steps.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { analyzeWorkspace, createMemoryFileSystem, vocabulary, vocabularySteps, type PolicySnapshot, type Vocabulary } from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";

const DIR = "/etc/qubes/policy.d";

/** A vocabulary as plain data, in insertion order (order matters: the first appearance decides). */
const plain = (v: Vocabulary) => ({
  qubes: [...v.qubes],
  tags: [...v.tags],
  types: [...v.types],
  dispvmTemplates: [...v.dispvmTemplates],
  services: [...v.services].map(([s, args]) => [s, [...args]]),
});

/** Runs the steps one by one; returns the vocabulary and how many steps it took. */
function stepped(snapshot: PolicySnapshot): { v: Vocabulary; steps: number } {
  const it = vocabularySteps(snapshot);
  let steps = 0;
  for (;;) {
    const r = it.next();
    steps++;
    if (r.done) return { v: r.value, steps };
  }
}

const WORDS = {
  service: ["qubes.Filecopy", "qubes.Gpg", "my.Service", "*"],
  argument: ["*", "+", "+work", "+x"],
  qube: ["work", "vault", "@anyvm", "@tag:net", "@tag:mine", "@type:AppVM", "@dispvm:default-dvm", "@dispvm:mytpl", "ghost", "@default", "dom0"],
  action: ["allow", "deny", "ask default_target=vault", "allow target=@dispvm:other"],
};
const rule = fc
  .tuple(fc.constantFrom(...WORDS.service), fc.constantFrom(...WORDS.argument), fc.constantFrom(...WORDS.qube), fc.constantFrom(...WORDS.qube), fc.constantFrom(...WORDS.action))
  .map((w) => w.join(" "));
const policy = fc.dictionary(fc.constantFrom("10-a.policy", "30-b.policy", "50-c.policy", "include/x"), fc.array(fc.oneof(rule, fc.constant("# c"), fc.constant("!include include/x")), { maxLength: 30 }), {
  minKeys: 1,
});

describe("vocabularySteps", () => {
  test("gives the vocabulary made at once, with and without a system model, before and after an edit", () => {
    fc.assert(
      fc.property(policy, fc.boolean(), rule, (files, withSystem, added) => {
        const texts = Object.fromEntries(Object.entries(files).map(([p, lines]) => [`${DIR}/${p}`, lines.join("\n") + "\n"]));
        const system = withSystem ? demoSystem() : null;
        const first = analyzeWorkspace(createMemoryFileSystem(texts), { system });
        const once = analyzeWorkspace(createMemoryFileSystem(texts), { system });
        expect(plain(stepped(first).v)).toEqual(plain(vocabulary(once)));
        // The same object afterwards (cached), for steps and for the one-go call alike.
        expect(vocabulary(first)).toBe(stepped(first).v);
        const path = Object.keys(texts)[0]!;
        const edited = { ...texts, [path]: texts[path] + added + "\n" };
        const next = analyzeWorkspace(createMemoryFileSystem(edited), { system, previous: first });
        const fresh = analyzeWorkspace(createMemoryFileSystem(edited), { system });
        expect(plain(stepped(next).v)).toEqual(plain(vocabulary(fresh)));
      }),
      { numRuns: 60 },
    );
  });

  test("cuts a long policy into many steps, and the snapshot's services likewise", () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => `svc${i % 300}.Service +arg${i % 5000} q${i % 4000} @tag:t${i % 700} allow`);
    const snapshot = analyzeWorkspace(createMemoryFileSystem({ [`${DIR}/50-big.policy`]: lines.join("\n") + "\n" }), { system: null });
    const services = snapshot.servicesSteps!();
    let serviceSteps = 0;
    let r = services.next();
    for (; !r.done; r = services.next()) serviceSteps++;
    // The same map the snapshot gives (cached).
    expect(snapshot.services).toBe(r.value);
    expect(serviceSteps).toBeGreaterThanOrEqual(5);
    const { v, steps } = stepped(snapshot);
    expect(steps).toBeGreaterThanOrEqual(10);
    expect(v.qubes.size).toBe(4000);
    expect(v.tags.size).toBe(700);
    expect([...v.services.get("svc0.Service")!].sort()).toEqual([...new Set(lines.filter((l) => l.startsWith("svc0.Service ")).map((l) => l.split(" ")[1]))].sort());
  });
});
