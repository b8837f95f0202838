/**
 * The language server reads policy files from the disk as the daemon does: a
 * file whose bytes are not UTF-8 is an error on the byte (the daemon's read
 * fails, so every call is denied); once the editor opens it, its text is the
 * editor's, and the error goes away with the document's own text.
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
