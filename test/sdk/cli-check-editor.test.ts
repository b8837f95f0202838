/**
 * `qkit policy check` says what the editor says: on the directory cases of
 * `test/fixtures/check/`, the diagnostics `--json` reports for each file are
 * exactly those the language server publishes for it (code, severity,
 * message, line, column), with the same system model.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { startClient } from "../lsp/helpers/client.js";
import { runQkit } from "../helpers/qkit.js";

const ROOT = fileURLToPath(new URL("../fixtures/check/", import.meta.url));
const SEVERITY = ["", "error", "warning", "info", "hint"];

function filesOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = readFileSync(p, "utf8");
    }
  };
  walk(dir);
  return out;
}

const CASES = readdirSync(ROOT)
  .filter((name) => readFileSync(join(ROOT, name, "args"), "utf8").trim().split(/\s+/).includes("policy.d"))
  .sort();

describe("qkit policy check = the language server", () => {
  it.each(CASES)("%s", async (name) => {
    const dir = join(ROOT, name);
    const args = readFileSync(join(dir, "args"), "utf8").trim().split(/\s+/).filter((a) => a !== "--strict");
    const files = filesOf(dir);
    const withSystem = args.includes("--system");
    const client = await startClient(files, withSystem ? { system: { source: "file", file: "system.json" } } : {});
    try {
      const policyFiles = Object.keys(files).filter((f) => f.startsWith("policy.d/") && f.endsWith(".policy"));
      for (const f of policyFiles) await client.open(f);
      await client.settle();
      const check = await runQkit(["policy", "check", "--json", ...args], { cwd: dir });
      const json = JSON.parse(check.out) as { diagnostics: Array<{ file: string; line: number; column: number; severity: string; code: string; message: string }> };
      const editor: string[] = [];
      for (const [uri, list] of client.diagnostics) {
        const file = relative(client.root, fileURLToPath(uri));
        // The one intended difference: `invalid filename: PATH` names the file where the engine reads it
        // (/etc/qubes/policy.d/…) in the editor, and as the user gave it in the CLI.
        const message = (m: string) => (d: { code?: unknown }) => (String(d.code) === "invalid-filename" ? m.replace(/^invalid filename: \/etc\/qubes\/policy\.d\//, "invalid filename: policy.d/") : m);
        for (const d of list) editor.push(`${file}:${d.range.start.line + 1}:${d.range.start.character + 1}: ${SEVERITY[d.severity ?? 1]}[${String(d.code)}]: ${message(d.message)(d)}`);
      }
      // The other intended difference: the CLI notes files of the directory that the engine does not load
      // (`not-a-policy-file`, a note on a file that is no policy document, which the editor does not open as one).
      const cli = json.diagnostics.filter((d) => d.code !== "not-a-policy-file").map((d) => `${d.file}:${d.line}:${d.column}: ${d.severity}[${d.code}]: ${d.message}`);
      expect(editor.sort()).toEqual(cli.sort());
    } finally {
      client.close();
    }
  });
});
