/**
 * Completion: every token valid at the cursor's column (`$0` marks the cursor).
 */
import { describe, expect, test } from "vitest";
import { complete, completionData } from "@qubes-kit/language";
import { docOf, parseFixture, snapshotOf } from "../lsp/helpers/fixture.js";

function check(fixture: string, want: { has?: string[]; lacks?: string[]; exactly?: string[] }): void {
  const fx = parseFixture(fixture);
  const snapshot = snapshotOf(fx);
  const cursor = fx.cursor!;
  const doc = docOf(snapshot, cursor.path);
  const items = complete(doc, cursor.offset, { snapshot });
  // The same answer from the snapshot's plain data, after a structured clone (as a language server's
  // other thread gets it).
  expect(complete(doc, cursor.offset, { data: structuredClone(completionData(snapshot)) })).toEqual(items);
  const labels = items.map((i) => i.label);
  if (want.exactly) expect(labels.sort()).toEqual([...want.exactly].sort());
  for (const l of want.has ?? []) expect(labels, `should offer ${l}`).toContain(l);
  for (const l of want.lacks ?? []) expect(labels, `should not offer ${l}`).not.toContain(l);
}

const cases: Array<[string, string, Parameters<typeof check>[1]]> = [
  ["services and directives at line start", "#- 30-user.policy\n$0", { has: ["qubes.Filecopy", "qubes.OpenURL", "admin.vm.List", "*", "!include", "!compat-4.0"] }],
  ["services seen in the workspace", "#- 30-user.policy\nmy.Custom * @anyvm @anyvm deny\nmy$0", { has: ["my.Custom"] }],
  ["arguments", "#- 30-user.policy\nqubes.StartApp +xterm @anyvm @anyvm deny\nqubes.StartApp $0", { has: ["*", "+", "+xterm", "+firefox"] }],
  [
    "source tokens with a system",
    "#! system\n#- 30-user.policy\nqubes.Filecopy * $0",
    { has: ["@anyvm", "@adminvm", "*", "@tag:", "@type:", "work", "vault", "dom0"], lacks: ["@default", "@dispvm", "@dispvm:default-dvm"] },
  ],
  ["target tokens", "#! system\n#- 30-user.policy\nqubes.Filecopy * work $0", { has: ["@default", "@dispvm", "@dispvm:default-dvm", "@anyvm", "vault"], lacks: ["default-mgmt-dvm"] }],
  ["internal qubes are not offered as names", "#! system\n#- 30-user.policy\nqubes.Filecopy * $0", { has: ["work"], lacks: ["default-mgmt-dvm"] }],
  ["tags after @tag:", "#! system\n#- 30-user.policy\nqubes.Gpg * @tag:$0", { exactly: ["@tag:dvm-ok", "@tag:gpg-client", "@tag:gpg-server", "@tag:net"] }],
  ["types after @type:", "#! system\n#- 30-user.policy\nqubes.Gpg * @type:$0", { has: ["@type:AppVM", "@type:TemplateVM", "@type:DispVM", "@type:AdminVM"] }],
  ["dispvm templates (not internal ones)", "#! system\n#- 30-user.policy\nqubes.OpenInVM * work @dispvm:$0", { has: ["@dispvm:default-dvm", "@dispvm:@tag:"], lacks: ["@dispvm:work", "@dispvm:default-mgmt-dvm"] }],
  ["internal dispvm templates are not offered in the target column", "#! system\n#- 30-user.policy\nqubes.OpenInVM * work $0", { has: ["@dispvm:default-dvm"], lacks: ["@dispvm:default-mgmt-dvm"] }],
  ["internal dispvm templates are not offered in target=@dispvm:", "#! system\n#- 30-user.policy\nqubes.OpenURL * work @default allow target=@dispvm:$0", { has: ["@dispvm:default-dvm"], lacks: ["@dispvm:default-mgmt-dvm"] }],
  ["internal dispvm templates are not offered in default_target=", "#! system\n#- 30-user.policy\nqubes.OpenURL * work @default ask default_target=$0", { has: ["@dispvm:default-dvm"], lacks: ["@dispvm:default-mgmt-dvm"] }],
  ["actions", "#- 30-user.policy\nqubes.Filecopy * work vault $0", { exactly: ["allow", "deny", "ask"] }],
  ["parameters of allow", "#- 30-user.policy\nqubes.Filecopy * work vault allow $0", { exactly: ["target=", "user=", "notify=", "autostart="] }],
  ["parameters of ask without used ones", "#- 30-user.policy\nqubes.Filecopy * work vault ask user=root $0", { exactly: ["target=", "default_target=", "notify=", "autostart="] }],
  ["parameters of deny", "#- 30-user.policy\nqubes.Filecopy * work vault deny $0", { exactly: ["notify="] }],
  ["yes/no values", "#- 30-user.policy\nqubes.Filecopy * work vault allow notify=$0", { exactly: ["yes", "no"] }],
  ["redirect values", "#! system\n#- 30-user.policy\nqubes.OpenURL * work @default allow target=$0", { has: ["@dispvm", "@adminvm", "work", "@dispvm:default-dvm"], lacks: ["@anyvm", "@default", "*"] }],
  ["nothing in comments", "#- 30-user.policy\n# qubes.$0", { exactly: [] }],
  ["include paths", "#- 30-user.policy\n!include $0\n#- include/common\n", { has: ["include/common"] }],
  ["include paths below the top level only", "#- 30-user.policy\n!include $0\n#- include/common\n#- include/deep/more\n", { has: ["include/common", "include/deep/more"], lacks: ["30-user.policy", "include"] }],
  ["directories for !include-dir", "#- 30-user.policy\n!include-dir $0\n#- include/common\n#- include/deep/more\n", { exactly: ["include", "include/deep"] }],
  ["legacy syntax starts with the source", "#- 30-user.policy\n!include-service qubes.X * include/legacy\n#- include/legacy\n$0", { has: ["@anyvm", "!include"], lacks: ["qubes.Filecopy"] }],
  ["qube names seen in the policy without a system", "#- 30-user.policy\nqubes.Filecopy * mywork vault deny\nqubes.Filecopy * $0", { has: ["mywork", "vault"] }],
];

describe("completion", () => {
  for (const [name, fixture, want] of cases) test(name, () => check(fixture, want));

  test("the replaced span is the word under the cursor", () => {
    const fx = parseFixture("#! system\n#- 30-user.policy\nqubes.Filecopy * wo$0rk vault allow");
    const snapshot = snapshotOf(fx);
    const item = complete(docOf(snapshot, fx.cursor!.path), fx.cursor!.offset, { snapshot }).find((i) => i.label === "work")!;
    const text = fx.files[fx.cursor!.path]!;
    expect(text.slice(item.span.start, item.span.end)).toBe("work");
  });
});

describe("completion of a parameter key inside a written word", () => {
  test("replaces only the key and its `=`, never the value", () => {
    const fx = parseFixture("#- 30-user.policy\nqubes.OpenURL * work @default allow ta$0rget=@dispvm:default-dvm\n");
    const snapshot = snapshotOf(fx);
    const doc = docOf(snapshot, fx.cursor!.path);
    const item = complete(doc, fx.cursor!.offset, { snapshot }).find((i) => i.label === "target=");
    expect(item).toBeDefined();
    expect(doc.text.slice(item!.span.start, item!.span.end)).toBe("target=");
  });
});
