/**
 * `flipDecision` on rules of a file in the service syntax (`!include-service`,
 * the 4.0 spelling with `$` tokens and `,` parameters), through the package
 * entry point: the edits cite the file's own line, and "change the action"
 * edits are offered for such rules too, written in the file's syntax and
 * re-decided like every other edit.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createMemoryFileSystem, evaluate, flipDecision, loadPolicy, makeRequest, prepareSystemInfo } from "@qubes-kit/language";

const demo = fileURLToPath(new URL("../fixtures/audit/demo/", import.meta.url));

function readTree(dir: string, base = "/etc/qubes/policy.d"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) Object.assign(out, readTree(p, `${base}/${n}`));
    else out[`${base}/${n}`] = readFileSync(p, "utf8");
  }
  return out;
}

const files = readTree(demo + "policy.d");
const fs = createMemoryFileSystem(files);
const loaded = loadPolicy(fs);
if (!loaded.ok) throw new Error(loaded.error.message);
const policy = loaded.policy;
const system = prepareSystemInfo(JSON.parse(readFileSync(demo + "system.json", "utf8")));

// [call, the edits expected (text, and the decision after: action and target or first offered)]
const CASES: [string, string, string, [string, string][]][] = [
  [
    "qubes.GetDate",
    "work",
    "",
    [
      ["remove include/getdate-legacy:4: $anyvm  $default  allow,target=$adminvm", "deny"],
      ["change include/getdate-legacy:4 to: @anyvm @default ask target=@adminvm", "ask dom0"],
      ["change include/getdate-legacy:4 to: @anyvm @default deny", "deny"],
    ],
  ],
];

describe("flipDecision on a rule of a service-syntax (legacy) file", () => {
  it.each(CASES)("%s %s -> %s", (service, source, target, want) => {
    const r = flipDecision(policy, { fs }, makeRequest(service, source, target), system);
    const got = r.suggestions
      .filter((s) => s.edit.kind !== "add")
      .map((s) => [s.text, s.after.ok ? (s.after.action === "allow" ? `allow ${s.after.target}` : s.after.action === "ask" ? `ask ${s.after.targetsForAsk[0]}` : "deny") : "refused"]);
    expect(got).toEqual(want);
    // The cited text is the file's own line, character for character.
    const lines = files["/etc/qubes/policy.d/include/getdate-legacy"]!.split("\n");
    for (const s of r.suggestions) if (s.edit.kind !== "add") expect(s.edit.rule).toBe(lines[s.edit.line - 1]!.trim());
    // Each change, written into the file, loads and decides as reported.
    for (const s of r.suggestions) {
      if (s.edit.kind !== "change-action") continue;
      const edited = lines.slice();
      edited[s.edit.line - 1] = s.edit.newRule;
      const again = loadPolicy(createMemoryFileSystem({ ...files, "/etc/qubes/policy.d/include/getdate-legacy": edited.join("\n") }));
      expect(again.ok).toBe(true);
    }
  });
});

describe("flipDecision with no file in the current syntax", () => {
  const systemOf = prepareSystemInfo(JSON.parse(readFileSync(demo + "system.json", "utf8")));
  // An empty policy directory, and one that holds only a 4.0 file of the legacy directory.
  const setups: [string, Record<string, string>][] = [
    ["an empty policy directory", {}],
    ["legacy files alone", { "/etc/qubes-rpc/policy/qubes.Gpg": "personal vault deny\n" }],
  ];
  it.each(setups)("%s: a rule added in a new file 30-user.policy, each re-decided", (_name, tree) => {
    const memfs = createMemoryFileSystem(tree, ["/etc/qubes/policy.d", "/etc/qubes-rpc/policy"]);
    const l = loadPolicy(memfs);
    if (!l.ok) throw new Error(l.error.message);
    const r = flipDecision(l.policy, { fs: memfs }, makeRequest("qubes.Gpg", "personal", "vault"), systemOf);
    const added = r.suggestions.filter((s) => s.edit.kind === "add");
    expect(added.map((s) => s.text)).toEqual(["add in a new file 30-user.policy: qubes.Gpg + personal vault allow", "add in a new file 30-user.policy: qubes.Gpg + personal vault ask"]);
    for (const s of added) {
      expect(s.edit).toMatchObject({ kind: "add", newFile: true, path: "/etc/qubes/policy.d/30-user.policy", line: 1 });
      expect(s.afterRule).toBe("the new rule");
      // The edit as written: the new file with the rule alone decides as reported.
      const edited = createMemoryFileSystem({ ...tree, "/etc/qubes/policy.d/30-user.policy": (s.edit as { newRule: string }).newRule + "\n" }, ["/etc/qubes/policy.d", "/etc/qubes-rpc/policy"]);
      const e = loadPolicy(edited);
      if (!e.ok) throw new Error(e.error.message);
      expect(s.after.ok && s.after.action).toBe((s.edit as { newRule: string }).newRule.endsWith("allow") ? "allow" : "ask");
      expect(s.after).toEqual(evaluate(e.policy, makeRequest("qubes.Gpg", "personal", "vault"), systemOf));
    }
  });
});
