/**
 * The language server reads policy files from the disk as the daemon does: a
 * file whose bytes are not UTF-8 is an error on the byte (the daemon's read
 * fails, so every call is denied); once the editor opens it, its text is the
 * editor's, and the error goes away with the document's own text. The same
 * for the files of a stack that the open stack file reaches (an `include:`
 * file, a bundle): their errors are shown at the path that reaches them.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { startClient } from "./helpers/client.js";

describe("a policy file on disk that is not UTF-8", () => {
  test("is an error where the byte is, until the editor's text replaces it", async () => {
    const c = await startClient({ "policy.d/30-user.policy": "qubes.Gpg * work vault allow\n", "policy.d/40-latin.policy": "# placeholder\n" });
    try {
      writeFileSync(join(c.root, "policy.d", "40-latin.policy"), Buffer.concat([Buffer.from("qubes.Gpg * work personal allow\n# caf"), Buffer.from([0xe9]), Buffer.from("\n")]));
      await c.rpc.sendNotification("workspace/didChangeWatchedFiles", { changes: [{ uri: c.uri("policy.d/40-latin.policy"), type: 2 }] });
      await c.settle();
      await c.open("policy.d/30-user.policy");
      const latin = c.diagnostics.get(c.uri("policy.d/40-latin.policy")) ?? [];
      expect(latin.map((d) => [d.range.start.line, d.range.start.character, d.code, d.message])).toEqual([
        [1, 5, "not-utf8", "40-latin.policy is not UTF-8 text: byte 0xe9 at offset 37 (invalid continuation byte); the engine fails to read it (UnicodeDecodeError), so every call is denied"],
      ]);
      await c.open("policy.d/40-latin.policy", "qubes.Gpg * work personal allow\n# café\n");
      expect((c.diagnostics.get(c.uri("policy.d/40-latin.policy")) ?? []).map((d) => d.code)).toEqual([]);
    } finally {
      c.close();
    }
  });
});

describe("a stack file's include on disk that is not UTF-8", () => {
  const entry = "qkit: 1\nstack: home\ninclude:\n  - net.qubes.yaml\nqubes:\n  work:\n    class: AppVM\n    label: blue\n";
  const latin = Buffer.concat([Buffer.from("qkit: 1\nqubes:\n  vault:\n    class: AppVM\n    label: black\n    notes: caf"), Buffer.from([0xe9]), Buffer.from("\n")]);
  test("is an error at the include path of the open file, with the byte, until the editor opens the include", async () => {
    const c = await startClient({ "home.qubes.yaml": entry, "net.qubes.yaml": "qkit: 1\n" });
    try {
      writeFileSync(join(c.root, "net.qubes.yaml"), latin);
      await c.rpc.sendNotification("workspace/didChangeWatchedFiles", { changes: [{ uri: c.uri("net.qubes.yaml"), type: 2 }] });
      await c.settle();
      await c.open("home.qubes.yaml");
      const got = c.diagnostics.get(c.uri("home.qubes.yaml")) ?? [];
      expect(got.map((d) => [d.range.start.line, d.range.start.character, d.code, d.severity])).toEqual([[3, 4, "included-file-errors", 1]]);
      expect(got[0]!.message).toBe(
        "included file net.qubes.yaml has an error, so the stack does not check; at line 6: the file is not UTF-8 text: byte 0xe9 at offset 72 (invalid continuation byte); its text would be read, and applied, with U+FFFD in place of such bytes [not-utf8]",
      );
      expect(got[0]!.relatedInformation?.map((r) => [r.location.uri, r.location.range.start.line, r.location.range.start.character])).toEqual([[c.uri("net.qubes.yaml"), 5, 14]]);
      // Opened, the include is the editor's text: no byte to complain about, and nothing at the path.
      await c.open("net.qubes.yaml", "qkit: 1\nqubes:\n  vault:\n    class: AppVM\n    label: black\n    notes: café\n");
      expect((c.diagnostics.get(c.uri("home.qubes.yaml")) ?? []).map((d) => d.code)).toEqual([]);
      // (A fragment opened alone lacks its `stack:`: that is all.)
      expect((c.diagnostics.get(c.uri("net.qubes.yaml")) ?? []).map((d) => d.code)).toEqual(["missing-key"]);
    } finally {
      c.close();
    }
  });

  test("other errors of a closed include or bundle are counted at its path, the first named", async () => {
    const c = await startClient({
      "home.qubes.yaml": "qkit: 1\nstack: home\ninclude:\n  - sub/a.qubes.yaml\nuse:\n  - bundle: b.qubes.yaml\n    as: gpg\nqubes:\n  work:\n    class: AppVM\n    label: blue\n",
      "sub/a.qubes.yaml": "qkit: 1\ninclude:\n  - c.qubes.yaml\n",
      "sub/c.qubes.yaml": "qkit: 1\nqubes:\n  mail:\n    class: AppVM\n    label: nope\n    colour: red\n",
      "b.qubes.yaml": "qkit: 1\nbundle: gpg\nqubes:\n  ${as}-keys:\n    class: AppVM\n    label: black\n",
    });
    try {
      await c.open("home.qubes.yaml");
      const got = c.diagnostics.get(c.uri("home.qubes.yaml")) ?? [];
      expect(got.map((d) => [d.range.start.line, d.range.start.character, d.code])).toEqual([
        [3, 4, "included-file-errors"],
        [5, 12, "included-file-errors"],
      ]);
      expect(got.map((d) => d.message)).toEqual([
        "included file sub/a.qubes.yaml has 2 errors, so the stack does not check; the first at sub/c.qubes.yaml line 5: no such label: nope (QubesLabelNotFoundError) [unknown-label]",
        "bundle b.qubes.yaml has 2 errors, so the stack does not check; the first at line 4: unknown parameter: as [unknown-param]",
      ]);
      expect(got[0]!.relatedInformation?.map((r) => [r.location.uri, r.location.range.start.line])).toEqual([
        [c.uri("sub/c.qubes.yaml"), 4],
        [c.uri("sub/c.qubes.yaml"), 5],
      ]);
    } finally {
      c.close();
    }
  });
});
