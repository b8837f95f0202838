/**
 * The navigation and help services of the language core, through its public
 * entry point: rename checks (the engine's wording), the proof behind "move
 * the shadowed rule" (property: only the moved rule's calls change), "add a
 * rule for this call" (property: the call is then decided as asked, by the
 * new rule), signature help, document links and inlay hints.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  addRuleForCall,
  analyzeWorkspace,
  codeActions,
  createMemoryFileSystem,
  documentLinks,
  evaluate,
  evaluateRequest,
  inlayHints,
  loadPolicy,
  prepareRename,
  renameEdits,
  renameError,
  signatureHelp,
  workspaceSymbols,
  type PolicyDocument,
  type PolicySnapshot,
  type TextEdit,
} from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";

const DIR = "/etc/qubes/policy.d";
const applyEdits = (text: string, edits: readonly TextEdit[]) =>
  [...edits].sort((a, b) => b.span.start - a.span.start).reduce((t, e) => t.slice(0, e.span.start) + e.newText + t.slice(e.span.end), text);
const snapshotOf = (files: Record<string, string>, system = true): PolicySnapshot =>
  analyzeWorkspace(createMemoryFileSystem(files), { system: system ? demoSystem() : null });
const docOf = (s: PolicySnapshot, name: string): PolicyDocument => s.document(`${DIR}/${name}`)!;

describe("rename", () => {
  const cases: Array<[string, "qube" | "tag", string, string | undefined]> = [
    ["a valid qube name", "qube", "office", undefined],
    ["too long", "qube", "a".repeat(32), "invalid-qube-name: VM name must be shorter than 32 characters"],
    ["a leading digit", "qube", "1work", "invalid-qube-name: VM name cannot start with hyphen, underscore, dot or numbers"],
    ["a space", "qube", "my work", "invalid-qube-name: VM name contains illegal characters"],
    ["Domain-0", "qube", "Domain-0", "invalid-qube-name: VM name cannot be 'Domain-0'"],
    ["default", "qube", "default", "invalid-qube-name: VM name cannot be 'none' nor 'default'"],
    ["-dm", "qube", "work-dm", "invalid-qube-name: VM name cannot end with -dm"],
    ["an existing qube", "qube", "vault", "qube-exists: Qube already exists: vault"],
    ["the same name", "qube", "work", "rename-unchanged: the new name"],
    ["a valid tag", "tag", "gpg-users", undefined],
    ["a tag with a colon", "tag", "a:b", "invalid-tag-name: Invalid character in tag"],
  ];
  test.each(cases)("%s", (_n, kind, newName, expected) => {
    const err = renameError({ kind, name: kind === "qube" ? "work" : "gpg-client" }, newName, { existing: ["vault", "dom0"] });
    if (expected === undefined) expect(err).toBeUndefined();
    else expect(`${err?.code}: ${err?.message}`.startsWith(expected), `${err?.code}: ${err?.message}`).toBe(true);
  });

  test("every spelling of the name in every file, legacy `$tag:` included; dom0 and types refused", () => {
    const files = {
      "30-user.policy": "qubes.A  *  work  @dispvm:work  allow target=work\n!include-service qubes.B * legacy\nqubes.C * @tag:t @tag:t allow\n",
      "legacy": "$tag:t  work  allow,target=work\n",
    };
    const s = snapshotOf(files);
    const doc = docOf(s, "30-user.policy");
    const t = prepareRename(doc, 13, { snapshot: s, path: `${DIR}/30-user.policy` });
    expect(t).toMatchObject({ kind: "qube", name: "work" });
    const edits = renameEdits({ kind: "qube", name: "work" }, "office", s);
    expect(applyEdits(files["30-user.policy"], edits[`${DIR}/30-user.policy`]!)).toBe("qubes.A  *  office  @dispvm:office  allow target=office\n!include-service qubes.B * legacy\nqubes.C * @tag:t @tag:t allow\n");
    expect(applyEdits(files.legacy, edits[`${DIR}/legacy`]!)).toBe("$tag:t  office  allow,target=office\n");
    const tags = renameEdits({ kind: "tag", name: "t" }, "u", s);
    expect(applyEdits(files.legacy, tags[`${DIR}/legacy`]!)).toBe("$tag:u  work  allow,target=work\n");
    const dom0 = snapshotOf({ "30-user.policy": "qubes.A * dom0 @adminvm allow\nqubes.A * @type:AppVM dom0 allow\n" });
    const d = docOf(dom0, "30-user.policy");
    expect(prepareRename(d, 11)).toMatchObject({ code: "rename-builtin" });
    expect(prepareRename(d, 17)).toMatchObject({ code: "rename-builtin" });
    expect(prepareRename(d, 48)).toMatchObject({ code: "rename-builtin", message: expect.stringContaining("@type:AppVM") });
  });
});

describe("move the shadowed rule above the broader one", () => {
  const system = demoSystem();
  const SOURCES = ["@anyvm", "work", "vault", "personal", "@tag:gpg-client", "@type:AppVM"];
  const TARGETS = ["@anyvm", "work", "vault", "personal", "@default", "@tag:gpg-server", "@dispvm"];
  const rule = fc
    .tuple(fc.constantFrom("a", "b"), fc.constantFrom("*", "+x"), fc.constantFrom(...SOURCES), fc.constantFrom(...TARGETS), fc.constantFrom("allow target=dom0", "deny", "allow target=vault", "ask target=vault"))
    .map(([s, a, src, tgt, act]) => `${s} ${a} ${src} ${tgt} ${act}`);
  const requests: Array<{ service: string; argument: string; source: string; target: string }> = [];
  for (const service of ["a", "b"])
    for (const argument of ["+x", "+y"])
      for (const source of ["work", "vault", "personal", "sys-net"])
        for (const target of ["", "work", "vault", "personal", "sys-net", "@dispvm"]) requests.push({ service, argument, source, target });
  /** The decision without what a move renumbers (the deciding rule is named by its text instead of its line). */
  const decide = (policy: ReturnType<typeof loadPolicy>, text: string, r: (typeof requests)[number]) => {
    if (!policy.ok) throw new Error("no policy");
    const d = evaluate(policy.policy, r, system);
    const by = "rule" in d && d.rule ? text.split("\n")[d.rule.line! - 1] : null;
    return JSON.stringify({ ...d, rule: by }, (k, v) => (k === "message" ? undefined : v));
  };

  test("only the calls the moved rule matches change, and the lines are the same lines", () => {
    let offered = 0;
    fc.assert(
      fc.property(fc.array(rule, { minLength: 2, maxLength: 8 }), (lines) => {
        const text = lines.join("\n") + "\n";
        const s = snapshotOf({ "30-user.policy": text });
        const path = `${DIR}/30-user.policy`;
        const doc = docOf(s, "30-user.policy");
        const diags = s.diagnostics.get(path) ?? [];
        for (const d of diags.filter((x) => x.code === "shadowed-rule")) {
          const move = codeActions(doc, path, d.span, [d], { snapshot: s }).find((a) => a.title.startsWith("move"));
          if (!move) {
            // Never offered while an `ask` of the service could see the change.
            continue;
          }
          offered++;
          const moved = applyEdits(text, move.edits![path]!);
          expect(moved.split("\n").sort()).toEqual(text.split("\n").sort());
          const before = loadPolicy(createMemoryFileSystem({ "30-user.policy": text }));
          const after = loadPolicy(createMemoryFileSystem({ "30-user.policy": moved }));
          const alone = loadPolicy(createMemoryFileSystem({ "30-user.policy": lines[d.line - 1] + "\n" }));
          const service = lines[d.line - 1]!.split(" ")[0];
          expect(s.rules.some((r) => r.action === "ask" && (r.service === null || r.service === service))).toBe(false);
          for (const r of requests) {
            if (decide(before, text, r) === decide(after, moved, r)) continue;
            // A changed decision: the moved rule matches the call (alone, it decides it).
            const own = alone.ok ? evaluate(alone.policy, r, system) : undefined;
            expect(own && "rule" in own && own.rule?.line === 1, `${JSON.stringify(r)} changed but the moved rule does not match it\n${text}---\n${moved}`).toBe(true);
          }
        }
      }),
      { numRuns: 200 },
    );
    expect(offered).toBeGreaterThan(0);
  });
});

describe("add a rule for this call", () => {
  const system = demoSystem();
  const rule = fc
    .tuple(fc.constantFrom("qubes.A", "qubes.B", "*"), fc.constantFrom("work", "@anyvm", "vault", "@tag:gpg-client"), fc.constantFrom("vault", "@anyvm", "@default", "personal"), fc.constantFrom("allow", "deny", "ask"))
    .map(([s, src, tgt, act]) => `${s} * ${src} ${tgt} ${act}${act === "allow" && tgt === "@default" ? " target=vault" : ""}`);
  test("after the edit the call is decided as asked, by the new rule", () => {
    fc.assert(
      fc.property(
        fc.array(rule, { maxLength: 6 }),
        fc.constantFrom("qubes.A", "qubes.B"),
        fc.constantFrom("work", "personal", "vault"),
        fc.constantFrom("vault", "personal", "sys-net"),
        fc.constantFrom("allow" as const, "deny" as const, "ask" as const),
        (lines, service, source, target, action) => {
          if (source === target) return;
          const files = { "30-user.policy": lines.join("\n") + (lines.length ? "\n" : ""), "90-default.policy": "* * @anyvm @anyvm deny\n" };
          const s = snapshotOf(files);
          if (s.policy === null) return;
          const request = { service, argument: "+", source, target };
          const add = addRuleForCall(s, request, action, { system });
          if (!add.ok) throw new Error(`refused: ${add.reason}`);
          const name = add.path.slice(DIR.length + 1) as keyof typeof files;
          const next = { ...files, [name]: applyEdits(files[name], [add.edit]) };
          const after = evaluateRequest(snapshotOf(next), request, system);
          expect(after, JSON.stringify(next)).toMatchObject({ ok: true, action, rule: { file: name, line: add.line } });
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("signature help, links, inlay hints, workspace symbols", () => {
  const sig: Array<[string, number, number | undefined]> = [
    ["qubes.A * work vault allow |", 0, 0],
    ["qubes.A * work vault allow target=vault |", 0, 1],
    ["qubes.A * work vault allow us|", 0, 1],
    ["qubes.A * work vault ask default_t|", 0, 1],
    ["qubes.A * work vault deny not|", 0, 0],
    ["qubes.A * work vault al|", 0, undefined],
    ["qubes.A * wo|rk vault allow", 0, undefined],
    ["qubes.A * work vault alow |", 0, undefined],
    ["work vault allow,target=|", 0, 0],
  ];
  test.each(sig)("signature help in %j", (written, _l, active) => {
    const at = written.indexOf("|");
    const text = written.replace("|", "") + "\n";
    const name = written.startsWith("work") ? "legacy" : "30-user.policy";
    const files: Record<string, string> = name === "legacy" ? { "30-user.policy": "!include-service qubes.A * legacy\n", legacy: text } : { "30-user.policy": text };
    const s = snapshotOf(files);
    const h = signatureHelp(docOf(s, name), at);
    if (active === undefined) expect(h).toBeUndefined();
    else expect(h?.activeParameter).toBe(active);
  });

  test("links resolve include paths the daemon's way and skip missing ones", () => {
    const s = snapshotOf({ "30-user.policy": "!include include/x\n!include-dir include\n!include missing\n!include-service a * include/x\n", "include/x": "a * @anyvm @anyvm deny\n" });
    expect(documentLinks(docOf(s, "30-user.policy"), `${DIR}/30-user.policy`, s).map((l) => [l.target, l.kind])).toEqual([
      [`${DIR}/include/x`, "file"],
      [`${DIR}/include`, "dir"],
      [`${DIR}/include/x`, "file"],
    ]);
  });

  test("inlay hints name @dispvm's template per source and the shadowing rule", () => {
    const s = snapshotOf({ "30-user.policy": "a * work @dispvm allow\na * @anyvm @anyvm deny\na * work vault allow\nb * untrusted @default allow target=@dispvm\nb * vault @dispvm allow\n" });
    const hints = inlayHints(docOf(s, "30-user.policy"), { snapshot: s, path: `${DIR}/30-user.policy` });
    expect(hints.map((h) => h.label)).toEqual([": default-dvm", "shadowed by 30-user.policy:2", ": (none)", ": (none)"]);
    expect(inlayHints(docOf(snapshotOf({ "30-user.policy": "a * work @dispvm allow\n" }, false), "30-user.policy"), { snapshot: snapshotOf({ "30-user.policy": "a * work @dispvm allow\n" }, false) })).toEqual([]);
  });

  test("inlay hints name what an ask to @default offers", () => {
    const s = snapshotOf({ "30-user.policy": "a * work @default ask default_target=vault\na * work vault allow\na * work personal ask\nb * vault @default ask\n" });
    const hints = inlayHints(docOf(s, "30-user.policy"), { snapshot: s, path: `${DIR}/30-user.policy` });
    expect(hints.map((h) => [h.label, h.tooltip])).toEqual([
      [": offers personal, vault", "for a call from work, the dialog offers personal, vault, vault preselected"],
    ]);
    // An ask with nothing to offer is refused by the engine (and reported by the analysis): no hint.
  });

  test("workspace symbols: every file, by line text, file name or service characters", () => {
    const s = snapshotOf({ "10-a.policy": "qubes.Gpg * work vault allow\n", "30-b.policy": "qubes.Filecopy * work vault deny\n!include-dir include\n" });
    const docs = [...s.files.keys()].map((p) => [p, s.document(p)!] as [string, PolicyDocument]);
    expect(workspaceSymbols(docs, "").map((x) => x.name)).toEqual(["qubes.Gpg *", "qubes.Filecopy *", "!include-dir include"]);
    expect(workspaceSymbols(docs, "qfcp").map((x) => x.name)).toEqual(["qubes.Filecopy *"]);
    expect(workspaceSymbols(docs, "30-b").map((x) => x.container)).toEqual(["30-b.policy", "30-b.policy"]);
    expect(workspaceSymbols(docs, "", 1)).toHaveLength(1);
  });
});
