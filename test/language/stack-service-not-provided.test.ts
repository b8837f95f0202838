/**
 * `service-not-provided` in stack files: the future system model (`buildFutureSystem`, through
 * `analyzeTemplate`) gives a qube whose template the stack changes the new template's services,
 * or none (unknown) when the new template is not in the model.
 */
import { describe, expect, it } from "vitest";
import { analyzeTemplate, prepareSystemInfo, type RawSystemInfo } from "@qubes-kit/language";

const LIVE: RawSystemInfo = {
  domains: {
    dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: null },
    "fedora-41": { type: "TemplateVM", tags: [], template_for_dispvms: false, default_dispvm: null, supported_rpc: ["qubes.Filecopy"] },
    "debian-12": { type: "TemplateVM", tags: [], template_for_dispvms: false, default_dispvm: null, supported_rpc: ["my.Backup", "qubes.Filecopy"] },
    "old-tpl": { type: "TemplateVM", tags: [], template_for_dispvms: false, default_dispvm: null },
    vault: { type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, template: "fedora-41", supported_rpc: ["qubes.Filecopy"] },
    work: { type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, supported_rpc: ["qubes.Filecopy"] },
  },
};

function run(vaultTemplate: string | undefined): { services: unknown; found: number[] } {
  const text = [
    "qkit: 1",
    "stack: s",
    "qubes:",
    "  vault:",
    "    class: AppVM",
    ...(vaultTemplate ? [`    template: ${vaultTemplate}`] : []),
    "policy:",
    "  - file: backup",
    "    rules: |",
    "      my.Backup * work vault allow",
    "",
  ].join("\n");
  const a = analyzeTemplate("/w/s.qubes.yaml", text, { system: prepareSystemInfo(structuredClone(LIVE)) });
  const services = a.futureSystem.domains.get("vault")?.supported_rpc;
  const snap = a.policy();
  const found = [...snap.diagnostics.values()].flat().filter((d) => d.code === "service-not-provided").map((d) => d.line);
  return { services, found };
}

describe("service-not-provided: stack files", () => {
  it.each([
    { name: "no template given: the live list stays", template: undefined, services: ["qubes.Filecopy"], found: [1] },
    { name: "the same template: the live list stays", template: "fedora-41", services: ["qubes.Filecopy"], found: [1] },
    { name: "a template that provides it: its list, no finding", template: "debian-12", services: ["my.Backup", "qubes.Filecopy"], found: [] },
    { name: "a template without a known list: unknown, no finding", template: "old-tpl", services: undefined, found: [] },
    { name: "a template the model does not have: unknown", template: "new-tpl", services: undefined, found: [] },
  ])("$name", ({ template, services, found }) => {
    const r = run(template);
    expect(r.services).toEqual(services);
    expect(r.found).toEqual(found);
  });
});
