/**
 * "Add a rule for this call" through the language entry point, on policies
 * with `!include`, `!include-service` (legacy syntax) files, `@dispvm` and
 * unknown targets. Property: when an edit is offered, the call is then
 * decided as asked, by the new rule; when it is refused, no line of any file
 * of the new syntax would have done it (checked by trying every line).
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { addRuleForCall, addRuleRefusal, analyzeWorkspace, createMemoryFileSystem, evaluateRequest, ruleTextForCall, type PolicyRequest, type TextEdit } from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";

const DIR = "/etc/qubes/policy.d";
const system = demoSystem();
const applyEdits = (text: string, edits: readonly TextEdit[]) =>
  [...edits].sort((a, b) => b.span.start - a.span.start).reduce((t, e) => t.slice(0, e.span.start) + e.newText + t.slice(e.span.end), text);
const snapshotOf = (files: Record<string, string>) => analyzeWorkspace(createMemoryFileSystem(files), { system });

const SERVICES = ["qubes.A", "qubes.B"];
const SOURCES = ["work", "vault", "personal"];
const newRule = fc
  .tuple(fc.constantFrom("qubes.A", "qubes.B", "*"), fc.constantFrom("work", "@anyvm", "vault", "@tag:gpg-server"), fc.constantFrom("vault", "@anyvm", "@default", "personal", "@dispvm"), fc.constantFrom("allow", "deny", "ask"))
  .map(([s, src, tgt, act]) => `${s} * ${src} ${tgt} ${act}${act === "allow" && tgt === "@default" ? " target=vault" : ""}`);
const legacyRule = fc
  .tuple(fc.constantFrom("work", "$anyvm", "vault", "$tag:gpg-server"), fc.constantFrom("vault", "$anyvm", "$default", "$dispvm", "personal"), fc.constantFrom("allow", "deny", "ask"))
  .map(([src, tgt, act]) => `${src} ${tgt} ${act}${act === "allow" && tgt === "$default" ? ",target=vault" : ""}`);
const directive = fc.constantFrom("!include include/inc", "!include-service qubes.A * include/legacy-a", "!include-service qubes.B * include/legacy-b");

/** A policy: a user file mixing rules and include lines, the included files, and the catch-all. */
const policy = fc
  .record({
    user: fc.array(fc.oneof(newRule, directive), { maxLength: 6 }),
    inc: fc.array(newRule, { maxLength: 3 }),
    legacyA: fc.array(legacyRule, { maxLength: 3 }),
    legacyB: fc.array(legacyRule, { maxLength: 3 }),
    // The catch-all in an include file: then no rule of a writable file may come after it.
    catchAllIncluded: fc.boolean(),
  })
  .map(({ user, inc, legacyA, legacyB, catchAllIncluded }) => {
    const text = (lines: string[]) => lines.join("\n") + (lines.length ? "\n" : "");
    return {
      "30-user.policy": text(user),
      "90-default.policy": catchAllIncluded ? "!include include/default\n" : "* * @anyvm @anyvm deny\n",
      "include/default": "* * @anyvm @anyvm deny\n",
      "include/inc": text(inc),
      "include/legacy-a": text(legacyA),
      "include/legacy-b": text(legacyB),
    } as Record<string, string>;
  });

/** Whether inserting the rule before some line of a new-syntax file makes the call decided as asked by it. */
function somewhereWorks(files: Record<string, string>, request: PolicyRequest, action: "allow" | "deny" | "ask"): boolean {
  const rule = ruleTextForCall(request, action);
  for (const name of ["30-user.policy", "90-default.policy", "include/inc", "include/default"]) {
    const lines = files[name]!.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const next = { ...files, [name]: [...lines.slice(0, i), rule, ...lines.slice(i)].join("\n") };
      const d = evaluateRequest(snapshotOf(next), request, system);
      // An allow the daemon then refuses to run (a call to the calling qube itself) does not count.
      if (d.ok && d.action === action && d.rule.file === name && d.rule.line === i + 1 && !(d.action === "allow" && "error" in d.exec)) return true;
    }
  }
  return false;
}

describe("add a rule for this call", () => {
  test("the offered edit decides the call as asked, by the new rule; a refusal means no line would", () => {
    let offered = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        policy,
        fc.constantFrom(...SERVICES),
        fc.constantFrom(...SOURCES),
        fc.constantFrom("vault", "personal", "@dispvm", "@default", "", "nosuch", "@dispvm:work-dvm"),
        fc.constantFrom("allow" as const, "deny" as const, "ask" as const),
        (files, service, source, target, action) => {
          const s = snapshotOf(files);
          if (s.policy === null) return;
          const request = { service, argument: "+", source, target };
          const add = addRuleForCall(s, request, action, { system });
          if (add.ok) {
            offered++;
            const name = add.path.slice(DIR.length + 1);
            const next = { ...files, [name]: applyEdits(files[name]!, [add.edit]) };
            const after = evaluateRequest(snapshotOf(next), request, system);
            expect(after, JSON.stringify(next)).toMatchObject({ ok: true, action, rule: { file: name, line: add.line } });
            if (after.ok && after.action === "allow") expect("error" in after.exec).toBe(false);
            expect(add.text).toBe(ruleTextForCall(request, action));
          } else {
            refused++;
            expect(add.reason).not.toMatch(/\n/);
            expect(add.code).toMatch(/^[a-z]+(-[a-z]+)*$/);
            if (addRuleRefusal(request, action, system) === undefined) {
              expect(somewhereWorks(files, request, action), `refused (${add.reason}) but a line works\n${JSON.stringify(files)}\n${JSON.stringify(request)} ${action}`).toBe(false);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
    expect(offered).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(5);
  });

  test("a call decided by an !include-service legacy file gets its rule above the include line", () => {
    const files = {
      "30-user.policy": "qubes.B * work vault allow\n!include-service qubes.A * include/legacy\n",
      "90-default.policy": "* * @anyvm @anyvm deny\n",
      "include/legacy": "work $default allow,target=vault\n",
    } as Record<string, string>;
    const s = snapshotOf(files);
    const request = { service: "qubes.A", argument: "+", source: "work", target: "" };
    expect(evaluateRequest(s, request, system)).toMatchObject({ action: "allow", rule: { file: "include/legacy", line: 1 } });
    const add = addRuleForCall(s, request, "ask", { system });
    expect(add).toMatchObject({ ok: true, path: `${DIR}/30-user.policy`, line: 2, text: "qubes.A  +  work  @default  ask" });
    // Not writable: refused with one line, not put after the catch-all.
    const none = addRuleForCall(s, request, "ask", { system, canWrite: (p) => !p.endsWith("30-user.policy") });
    expect(none).toMatchObject({ ok: false, code: "no-place-for-rule" });
    expect((none as { reason: string }).reason).toMatch(/decided `allow` by include\/legacy:1/);
  });

  const bad: Array<[string, Partial<PolicyRequest>, "allow" | "deny" | "ask", string, RegExp]> = [
    ["an argument without +", { argument: "firefox" }, "deny", "argument-without-plus", /argument `firefox` has no leading `\+`.*did you mean `\+firefox`\?/],
    ["the service *", { service: "*", argument: "+x" }, "allow", "invalid-service", /a call names one service/],
    ["a space in the service", { service: "qubes.X y" }, "allow", "invalid-service", /service 'qubes.X y' contains invalid characters: \(' ',\)/],
    ["a + in the service with an argument", { service: "qubes.X+a", argument: "+b" }, "allow", "invalid-service", /invalid characters: \('\+',\)/],
    ["a newline in the source", { source: "work\nqubes.Y * @anyvm @anyvm" }, "allow", "invalid-source", /is not a qube name \(VM name contains illegal characters\)/],
    ["a rule token as the source", { source: "@anyvm" }, "allow", "invalid-source", /rule token, not a qube/],
    ["a space in the target", { target: "va ult" }, "allow", "invalid-target", /not a qube name/],
    ["a bad target token", { target: "@anyvm" }, "allow", "invalid-target", /invalid intendedtarget token: '@anyvm'/],
    ["an unknown target", { target: "nosuch" }, "allow", "unknown-qube", /target `nosuch` is not a qube of the system: the daemon treats it as @default/],
    ["an unknown source", { source: "wrok" }, "deny", "unknown-qube", /source `wrok` is not a qube of the system.*did you mean `work`\?/],
    ["allow to @default", { target: "@default" }, "allow", "allow-without-target", /needs a named target/],
    ["allow to the empty target", { target: "" }, "allow", "allow-without-target", /needs a named target/],
  ];
  test.each(bad)("refuses %s with the parser's or the CLI's wording", (_name, change, action, code, message) => {
    const s = snapshotOf({ "30-user.policy": "qubes.X * work vault allow\n", "90-default.policy": "* * @anyvm @anyvm deny\n" });
    const request = { service: "qubes.X", argument: "+", source: "work", target: "vault", ...change };
    const add = addRuleForCall(s, request, action, { system });
    expect(add).toMatchObject({ ok: false, code });
    expect((add as { reason: string }).reason).toMatch(message);
    expect((add as { reason: string }).reason).not.toMatch(/\n/);
  });

  test("@dispvm from a qube without a default disposable template is refused with the engine's reason", () => {
    const s = snapshotOf({ "30-user.policy": "", "90-default.policy": "* * @anyvm @anyvm deny\n" });
    const add = addRuleForCall(s, { service: "qubes.X", argument: "+", source: "vault", target: "@dispvm" }, "allow", { system });
    expect(add).toMatchObject({ ok: false, code: "rule-would-not-decide" });
    expect((add as { reason: string }).reason).toMatch(/the engine refuses it/);
    const ok = addRuleForCall(s, { service: "qubes.X", argument: "+", source: "work", target: "@dispvm" }, "allow", { system });
    expect(ok).toMatchObject({ ok: true, text: "qubes.X  +  work  @dispvm  allow" });
  });
});
