/**
 * Quick fixes and code lenses.
 */
import { describe, expect, test } from "vitest";
import { applyEdits, codeActions, codeLenses } from "@qubes-kit/language";
import { docOf, parseFixture, snapshotOf } from "../lsp/helpers/fixture.js";

/** Applies the action with the given title to the fixture's cursor file and returns the new text. */
function fix(fixture: string, title: string): string {
  const fx = parseFixture(fixture);
  const snapshot = snapshotOf(fx);
  const path = fx.cursor!.path;
  const doc = docOf(snapshot, path);
  const actions = codeActions(doc, path, { start: fx.cursor!.offset, end: fx.cursor!.offset }, snapshot.diagnostics.get(path) ?? [], { snapshot });
  const a = actions.find((x) => x.title === title);
  expect(a, `action "${title}" among ${JSON.stringify(actions.map((x) => x.title))}`).toBeDefined();
  return applyEdits(doc.text, a!.edits![path]!);
}

function titles(fixture: string): string[] {
  const fx = parseFixture(fixture);
  const snapshot = snapshotOf(fx);
  const path = fx.cursor!.path;
  return codeActions(docOf(snapshot, path), path, { start: fx.cursor!.offset, end: fx.cursor!.offset }, snapshot.diagnostics.get(path) ?? [], { snapshot }).map((a) => a.title);
}

describe("quick fixes", () => {
  test("legacy `$` token to new syntax", () => {
    expect(fix("#- 30-user.policy\nqubes.A * $any$0vm vault deny\n", "convert legacy `$anyvm` to new syntax")).toBe("qubes.A * @anyvm vault deny\n");
  });
  test("legacy comma action to new syntax", () => {
    expect(fix("#- 30-user.policy\nqubes.A * work vault al$0low,target=dom0\n", "convert legacy `allow,target=dom0` to new syntax")).toBe("qubes.A * work vault allow target=dom0\n");
  });
  test("add target= to an @default allow", () => {
    expect(fix("#! system\n#- 30-user.policy\nqubes.OpenURL * @anyvm @default al$0low\n", "add target=@dispvm:default-dvm")).toBe("qubes.OpenURL * @anyvm @default allow target=@dispvm:default-dvm\n");
  });
  test("or make it ask", () => {
    expect(fix("#- 30-user.policy\nqubes.OpenURL * @anyvm @default al$0low\n", "change the action to ask")).toBe("qubes.OpenURL * @anyvm @default ask\n");
  });
  test("remove a shadowed rule", () => {
    expect(fix("#- 30-user.policy\nqubes.A * @anyvm vault deny\nqubes.A * wo$0rk vault allow\nqubes.B * a b deny\n", "remove the shadowed rule")).toBe("qubes.A * @anyvm vault deny\nqubes.B * a b deny\n");
  });
  test("no removal when the rule still feeds ask prompts", () => {
    expect(titles("#- 30-user.policy\nqubes.A * @anyvm vault deny\nqubes.A * wo$0rk vault allow\nqubes.A * @anyvm @anyvm ask\n")).not.toContain("remove the shadowed rule");
  });
  test("typo in an action", () => {
    expect(fix("#- 30-user.policy\nqubes.A * work vault al$0ow\n", "replace with `allow`")).toBe("qubes.A * work vault allow\n");
  });
  test("unknown qube: did you mean", () => {
    expect(fix("#! system\n#- 30-user.policy\nqubes.A * wo$0rkk vault allow\n", "replace with `work`")).toBe("qubes.A * work vault allow\n");
  });
  test("unknown tag: did you mean", () => {
    expect(fix("#! system\n#- 30-user.policy\nqubes.A * @tag:gpg-clien$0 vault allow\n", "replace with `@tag:gpg-client`")).toBe("qubes.A * @tag:gpg-client vault allow\n");
  });
  test("no rename onto a file that exists", () => {
    const fx = parseFixture("#- 30-My_Rules.policy\nqubes.A * work vault a$0llow\n#- 30-my_rules.policy\nqubes.B * work vault deny\n");
    const snapshot = snapshotOf(fx);
    const path = fx.cursor!.path;
    const actions = codeActions(docOf(snapshot, path), path, { start: 0, end: 0 }, snapshot.diagnostics.get(path) ?? [], { snapshot });
    expect(actions.find((a) => a.rename)).toBeUndefined();
  });
  test("rename a bad file name", () => {
    const fx = parseFixture("#- 30-My_Rules.policy\nqubes.A * work vault a$0llow\n");
    const snapshot = snapshotOf(fx);
    const path = fx.cursor!.path;
    const actions = codeActions(docOf(snapshot, path), path, { start: 0, end: 0 }, snapshot.diagnostics.get(path) ?? [], { snapshot });
    expect(actions.find((a) => a.rename)?.rename).toEqual({ from: "/etc/qubes/policy.d/30-My_Rules.policy", to: "/etc/qubes/policy.d/30-my_rules.policy" });
  });
});

describe("code lenses", () => {
  test("one per rule, saying what it decides and flagging shadowed rules", () => {
    const fx = parseFixture("#! system\n#- 30-user.policy\n# c\nqubes.A * @anyvm vault deny\nqubes.A * work vault allow\n$0");
    const snapshot = snapshotOf(fx);
    const path = fx.cursor!.path;
    expect(codeLenses(docOf(snapshot, path), { snapshot, path }).map((l) => `${l.line}: ${l.title}`)).toEqual([
      "2: denies qubes.A from any qube except dom0 to vault · 9 source qubes",
      "3: never decides (shadowed) · allows qubes.A from work to vault",
    ]);
  });
});

describe("refactorings", () => {
  test("an !include-service file inlined as new-format rules", () => {
    const text = fix(
      "#- 30-user.policy\n!include-service admin.vm.List * inc$0lude/admin-list\nqubes.A * a b deny\n#- include/admin-list\n# legacy\n$tag:net  $adminvm  allow,target=dom0\n\n$anyvm $anyvm deny\n",
      "convert `include/admin-list` to new syntax here",
    );
    expect(text).toBe(
      "# converted from include/admin-list (legacy R4.0 syntax)\n# legacy\nadmin.vm.List  *  @tag:net  @adminvm  allow  target=dom0\n\nadmin.vm.List  *  @anyvm  @anyvm  deny\nqubes.A * a b deny\n",
    );
    // The same rules, in the same order.
    const shape = (t: string, extra: Record<string, string>) =>
      snapshotOf(parseFixture(`#- 30-user.policy\n${t}` + Object.entries(extra).map(([k, v]) => `#- ${k}\n${v}`).join(""))).rules.map((r) => [r.service, r.argument, r.source.text, r.target.text, r.action, r.rawParams]);
    expect(shape(text, {})).toEqual(shape("!include-service admin.vm.List * include/admin-list\nqubes.A * a b deny\n", { "include/admin-list": "# legacy\n$tag:net  $adminvm  allow,target=dom0\n\n$anyvm $anyvm deny\n" }));
  });
});
