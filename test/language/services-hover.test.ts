/**
 * Hover and rule descriptions: what a token means and what a rule decides.
 */
import { describe, expect, test } from "vitest";
import { describeRule, hover, parseDocument, type RuleLine } from "@qubes-kit/language";
import { docOf, parseFixture, snapshotOf } from "../lsp/helpers/fixture.js";

function check(fixture: string, ...contains: string[]): void {
  const fx = parseFixture(fixture);
  const snapshot = snapshotOf(fx);
  const h = hover(docOf(snapshot, fx.cursor!.path), fx.cursor!.offset, { snapshot, path: fx.cursor!.path });
  expect(h, "a hover").toBeDefined();
  for (const c of contains) expect(h!.markdown).toContain(c);
}

function describeLine(line: string): string {
  const doc = parseDocument(line, { syntax: "policy" });
  const rule = (doc.lines[0] as RuleLine).rule;
  expect(rule, `valid rule: ${line}`).not.toBeNull();
  return describeRule(rule!);
}

describe("rule descriptions", () => {
  const cases: Array<[string, string]> = [
    ["qubes.Filecopy * @tag:work vault allow", "allows qubes.Filecopy from any qube tagged work to vault"],
    ["qubes.Filecopy * @anyvm @anyvm ask", "asks before allowing qubes.Filecopy from any qube except dom0 to any qube except dom0"],
    ["* * @anyvm @anyvm deny", "denies any service from any qube except dom0 to any qube except dom0"],
    ["qubes.Filecopy * work vault deny notify=no", "denies qubes.Filecopy from work to vault without notification"],
    ["qubes.StartApp +firefox @anyvm @anyvm allow autostart=no", "allows qubes.StartApp+firefox from any qube except dom0 to any qube except dom0 only if the target is already running"],
    ["qubes.OpenURL * @anyvm @default allow target=@dispvm:default-dvm", "allows qubes.OpenURL from any qube except dom0 to the default target (the caller named none) (redirected to a new disposable based on default-dvm)"],
    ["qubes.Backup * @type:TemplateVM @adminvm allow user=root", "allows qubes.Backup from any qube of type TemplateVM to dom0 as user root"],
    ["qubes.Gpg + work @default ask default_target=vault", "asks before allowing qubes.Gpg with an empty argument from work to the default target (the caller named none) (default choice vault)"],
  ];
  for (const [line, want] of cases) test(line, () => expect(describeLine(line)).toBe(want));
});

describe("hover", () => {
  test("on a service", () => check("#- 30-user.policy\nqubes.File$0copy * work vault allow", "qubes.Filecopy", "copy files", "This rule allows qubes.Filecopy from work to vault"));
  test("on a tag lists the matching qubes", () => check("#! system\n#- 30-user.policy\nqubes.Gpg * @tag:gpg-cl$0ient vault allow", "any qube tagged gpg-client", "matches 1 qube: `work`"));
  test("on @anyvm", () => check("#! system\n#- 30-user.policy\nqubes.Gpg * @any$0vm vault allow", "any qube except dom0", "matches 9 qubes"));
  test("on an action", () => check("#- 30-user.policy\nqubes.Gpg * work vault a$0sk", "ask the user"));
  test("on a parameter", () => check("#- 30-user.policy\nqubes.Gpg * work @default ask default_tar$0get=vault", "default_target", "selected by default"));
  test("on an include path", () => check("#- 30-user.policy\n!include incl$0ude/common\n#- include/common\n", "/etc/qubes/policy.d/include/common"));
  test("on a missing include", () => check("#- 30-user.policy\n!include incl$0ude/nope\n", "does not exist"));
  test("on a directive", () => check("#- 30-user.policy\n!comp$0at-4.0\n", "legacy R4.0 files"));
  test("on an unknown qube", () => check("#! system\n#- 30-user.policy\nqubes.Gpg * wo$0rky vault allow", "not in the system model"));
  test("in a legacy file, the rule gets its service from the include", () =>
    check("#- 30-user.policy\n!include-service admin.vm.List * include/legacy\n#- include/legacy\n$tag:net $adm$0invm allow,target=dom0\n", "allows admin.vm.List from any qube tagged net to dom0"));
  test("nothing on blank lines", () => {
    const fx = parseFixture("#- 30-user.policy\n\n$0\n");
    const snapshot = snapshotOf(fx);
    expect(hover(docOf(snapshot, fx.cursor!.path), fx.cursor!.offset, { snapshot })).toBeUndefined();
  });
});
