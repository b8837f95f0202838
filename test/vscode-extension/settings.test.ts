/**
 * What the extension sends the language server (`vscode-extension/src/settings.ts`): the
 * folder's settings, with everything that reads this machine turned off in an untrusted
 * workspace; the system-model notification text; and the names of the read-only documents
 * (`documentPath` in `render.ts`). Pure modules, tested in plain Node.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { restrictedByTrust, serverSettings, systemModelMessage } from "../../vscode-extension/src/settings.js";
import { documentPath } from "../../vscode-extension/src/render.js";

describe("serverSettings", () => {
  it("passes a trusted workspace's settings through unchanged", () => {
    const raw = { system: { source: "socket", socket: "/var/run/qubesd.internal.sock" }, template: { connection: "qrexec" }, codeLens: false };
    expect(serverSettings(raw, true)).toEqual(raw);
  });

  it.each([
    // [system.source, template.connection] → [system.source, template.connection] when untrusted
    ["socket", undefined, "none", "none"],
    ["qrexec", "auto", "none", "none"],
    ["socket", "simulator", "none", "simulator"],
    ["file", "auto", "file", "auto"],
    ["file", "socket", "file", "none"],
    ["none", "qrexec", "none", "none"],
    ["none", undefined, "none", undefined],
    [undefined, undefined, undefined, undefined],
  ])("untrusted: source %s, connection %s → %s, %s", (source, connection, wantSource, wantConnection) => {
    const raw = {
      ...(source ? { system: { source, file: "/x/system.json" } } : {}),
      ...(connection ? { template: { connection, socket: "/var/run/qubesd.sock" } } : {}),
      analysis: { "unknown-qube": "off" },
    };
    const out = serverSettings(raw, false);
    expect(out.system?.source).toBe(wantSource);
    expect(out.template?.connection).toBe(wantConnection);
    // Everything else is kept.
    expect(out.analysis).toEqual({ "unknown-qube": "off" });
    if (source) expect(out.system?.file).toBe("/x/system.json");
  });

  it("gives {} for anything that is not an object", () => {
    for (const raw of [undefined, null, 3, "socket", [], true]) expect(serverSettings(raw, false)).toEqual({});
  });

  it("never reads the machine when untrusted, never throws, never changes its input (property)", () => {
    const value = fc.oneof(fc.constantFrom("none", "file", "socket", "qrexec", "auto", "simulator"), fc.string(), fc.integer(), fc.constant(null));
    const raw = fc.oneof(
      fc.anything(),
      fc.record({ system: fc.oneof(fc.record({ source: value, file: fc.string() }, { requiredKeys: [] }), fc.anything()), template: fc.oneof(fc.record({ connection: value }, { requiredKeys: [] }), fc.anything()) }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(raw, fc.boolean(), (input, trusted) => {
        const before = JSON.stringify(input);
        const out = serverSettings(input, trusted);
        expect(JSON.stringify(input)).toBe(before);
        if (!trusted) {
          expect(["socket", "qrexec"]).not.toContain(out.system?.source);
          expect(["socket", "qrexec"]).not.toContain(out.template?.connection);
          const source = out.system?.source;
          if (out.template?.connection === undefined || out.template.connection === "auto") expect(["socket", "qrexec"]).not.toContain(source);
        }
      }),
    );
  });

  it("names what trust turned off", () => {
    expect(restrictedByTrust({ system: { source: "socket" } })).toEqual(["qubesPolicy.system.source: socket", "qubesPolicy.template.connection: auto"]);
    expect(restrictedByTrust({ system: { source: "file" }, template: { connection: "qrexec" } })).toEqual(["qubesPolicy.template.connection: qrexec"]);
    expect(restrictedByTrust({ system: { source: "file" } })).toEqual([]);
  });
});

describe("systemModelMessage", () => {
  it("is silent when the model loaded or none is configured", () => {
    expect(systemModelMessage({ source: "file" })).toBeUndefined();
    expect(systemModelMessage({ source: "none" })).toBeUndefined();
  });

  it("says what failed, where, and what to check, on one line", () => {
    expect(systemModelMessage({ source: "file", error: "system model file not found: /w/missing.json" })).toBe(
      "Qubes: the system model did not load: system model file not found: /w/missing.json; check the qubesPolicy.system settings.",
    );
    expect(systemModelMessage({ source: "socket", error: "cannot load the system model (socket): connect ENOENT\n  /run/x" }, "dom0-policy")).toBe(
      "Qubes: the system model did not load (folder dom0-policy): cannot load the system model (socket): connect ENOENT /run/x; check the qubesPolicy.system settings.",
    );
  });
});

describe("documentPath", () => {
  it("names a read-only Markdown document after its title", () => {
    expect(documentPath("Qubes qubes.Filecopy from work to personal")).toBe("/Qubes qubes.Filecopy from work to personal.md");
    expect(documentPath("Plan laptop.qubes.yaml")).toBe("/Plan laptop.qubes.yaml.md");
    expect(documentPath("a/b\\c\nd")).toBe("/a b c d.md");
    expect(documentPath("   ")).toBe("/Qubes.md");
  });

  it("is always one segment of at most 80 characters plus .md (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (title) => {
        const path = documentPath(title);
        expect(path.startsWith("/")).toBe(true);
        expect(path.endsWith(".md")).toBe(true);
        const name = path.slice(1, -3);
        expect(name).not.toMatch(/[/\\\u0000-\u001f\u007f]/);
        expect(name.length).toBeGreaterThan(0);
        expect(name.length).toBeLessThanOrEqual(80);
      }),
    );
  });
});
