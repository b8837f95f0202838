/**
 * Settings of the wrong type, as an editor may send them (a typo in a
 * Neovim config, a number for a string): the server keeps every usable value,
 * leaves the others to their defaults and says so, one line each with the
 * setting's name and code, instead of accepting them silently.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, systemDomain, until, writeWorkspace, type ServerSession } from "./e2e-support.js";

const SYSTEM = JSON.stringify({ domains: { dom0: systemDomain("AdminVM", 0), work: systemDomain("AppVM", 1), vault: systemDomain("AppVM", 2) } });
const POLICY = "qubes.Filecopy * ghost work allow\nqubes.Filecopy * ghost work deny\n";

let session: ServerSession | undefined;
let root: string | undefined;
afterEach(async () => {
  await session?.close();
  if (root) rmSync(root, { recursive: true, force: true });
  session = root = undefined;
});

const cases: Array<[string, object, string[], Array<[string, number]>]> = [
  [
    "a number for system.source (the file is then not read) and a bad severity",
    { system: { source: 42, file: "system.json" }, analysis: { "unknown-qube": "loud", "shadowed-rule": "off" } },
    ["qubesPolicy.system.source is 42, which is not one of none, file, socket, qrexec", "qubesPolicy.analysis.unknown-qube is \"loud\""],
    [],
  ],
  [
    "a misspelt key beside good ones",
    { system: { source: "file", file: "system.json" }, analysis: { "shadowed-rule": "off" }, codelens: false },
    ["qubesPolicy.codelens is not a setting of the qubes policy server"],
    [["unknown-qube", 0], ["unknown-qube", 1]],
  ],
  [
    "a string for codeLens and a list for system.file",
    { system: { source: "file", file: ["system.json"] }, codeLens: "no", analysis: { "shadowed-rule": "off" } },
    ["qubesPolicy.system.file is [\"system.json\"], which is not a string (a path)", "qubesPolicy.codeLens is \"no\", which is not true or false"],
    [],
  ],
];

describe("settings of the wrong type", () => {
  it.each(cases)("%s: usable values kept, the others reported", async (_name, settings, said, diagnostics) => {
    root = writeWorkspace("qkit-settings-", { "system.json": SYSTEM, "policy.d/30-user.policy": POLICY });
    session = await startServer(root, settings);
    const uri = session.open(join(root, "policy.d", "30-user.policy"), POLICY);
    expect(uri).toBe(pathToFileURL(join(root, "policy.d", "30-user.policy")).href);
    const got = await session.waitForDiagnostics(uri);
    expect(got.map((d) => [d.code, d.range.start.line])).toEqual(diagnostics);
    const log = await until(() => session!.log.join("\n"), (l) => said.every((s) => l.includes(s)), 5000);
    for (const s of said) expect(log).toContain(s);
    for (const line of log.split("\n").filter((l) => l.includes("setting qubesPolicy."))) expect(line).toMatch(/\[(invalid|unknown)-setting\]$/);
    expect(session.exited()).toBe(false);
  });
});
