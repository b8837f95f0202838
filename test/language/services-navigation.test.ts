/**
 * Go to definition and find references across the files of a policy.
 */
import { describe, expect, test } from "vitest";
import { definition, references } from "@qubes-kit/language";
import { docOf, parseFixture, snapshotOf } from "../lsp/helpers/fixture.js";

function refs(fixture: string): string[] {
  const fx = parseFixture(fixture);
  const snapshot = snapshotOf(fx);
  const doc = docOf(snapshot, fx.cursor!.path);
  return references(doc, fx.cursor!.offset, { snapshot, path: fx.cursor!.path }).map((l) => {
    const text = snapshot.document(l.path)!.text;
    return `${l.path.replace("/etc/qubes/policy.d/", "")}:${text.slice(l.span.start, l.span.end)}@${l.span.start}`;
  });
}

const POLICY = `#- 30-user.policy
qubes.Filecopy * work vault allow
qubes.Gpg * @tag:gpg @dispvm:work allow
!include include/common
#- include/common
qubes.OpenURL * work @default allow target=work
qubes.Gpg * @anyvm @dispvm:@tag:gpg ask
#- 40-other.policy
!include include/common
qubes.Filecopy * @adminvm dom0 deny
`;

describe("references", () => {
  test("a qube name across files, in columns, redirects and @dispvm:", () => {
    expect(refs(POLICY.replace("* work vault", "* wo$0rk vault")).sort()).toEqual(
      ["30-user.policy:work@17", "30-user.policy:work@63", "include/common:work@16", "include/common:work@43"].sort(),
    );
  });
  test("dom0 and @adminvm are one qube", () => {
    expect(refs(POLICY.replace("@adminvm dom0", "@adminvm do$0m0")).sort()).toEqual(["40-other.policy:@adminvm@41", "40-other.policy:dom0@50"].sort());
  });
  test("a tag, in @tag: and @dispvm:@tag:", () => {
    expect(refs(POLICY.replace("@tag:gpg @dispvm", "@tag:g$0pg @dispvm")).sort()).toEqual(["30-user.policy:gpg@51", "include/common:gpg@80"].sort());
  });
  test.each([
    ["on the @tag: prefix", "@t$0ag:gpg @dispvm"],
    ["on the @dispvm:@tag: prefix", "@dispvm:@t$0ag:gpg"],
    ["at the word's first character", "$0@tag:gpg @dispvm"],
  ])("a tag, with the cursor %s", (_, marked) => {
    const unmarked = marked.replace("$0", "");
    expect(refs(POLICY.replace(unmarked, marked)).sort()).toEqual(["30-user.policy:gpg@51", "include/common:gpg@80"].sort());
  });
  test("a service", () => {
    expect(refs(POLICY.replace("qubes.Gpg * @tag", "qubes.G$0pg * @tag"))).toHaveLength(2);
  });
  test("an include path finds every directive including the same file", () => {
    expect(refs(POLICY.replace("!include include/common", "!include inc$0lude/common")).sort()).toEqual(["30-user.policy:include/common@83", "40-other.policy:include/common@9"].sort());
  });
});

describe("definition", () => {
  test("an include path goes to the included file", () => {
    const fx = parseFixture(POLICY.replace("!include include/common", "!include inc$0lude/common"));
    const snapshot = snapshotOf(fx);
    expect(definition(docOf(snapshot, fx.cursor!.path), fx.cursor!.offset, { snapshot, path: fx.cursor!.path })).toEqual([
      { path: "/etc/qubes/policy.d/include/common", span: { start: 0, end: 0 } },
    ]);
  });
  test("an included directory goes to its .policy files", () => {
    const fx = parseFixture("#- 30-user.policy\n!include-dir inc$0lude/d\n#- include/d/20-b.policy\n#- include/d/10-a.policy\n#- include/d/README\n");
    const snapshot = snapshotOf(fx);
    expect(definition(docOf(snapshot, fx.cursor!.path), fx.cursor!.offset, { snapshot, path: fx.cursor!.path }).map((l) => l.path)).toEqual([
      "/etc/qubes/policy.d/include/d/10-a.policy",
      "/etc/qubes/policy.d/include/d/20-b.policy",
    ]);
  });
  test("a missing include has no definition", () => {
    const fx = parseFixture("#- 30-user.policy\n!include inc$0lude/nope\n");
    const snapshot = snapshotOf(fx);
    expect(definition(docOf(snapshot, fx.cursor!.path), fx.cursor!.offset, { snapshot, path: fx.cursor!.path })).toEqual([]);
  });
});
