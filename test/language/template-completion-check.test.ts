/**
 * Completion of qube-valued keys offers only what `checkStack` then accepts at that
 * place: for each system model (a `qkit system snapshot` with `properties`, a bare
 * GetSystemInfo answer, none) and each key, every offered value is written in and the
 * editor's diagnostics must have no reference error on it.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { analyzeTemplate, completeTemplate, prepareSystemInfo, templateDiagnostics, type TemplateEnvironment } from "@qubes-kit/language";

const laptop = JSON.parse(readFileSync(fileURLToPath(new URL("../../examples/laptop/system.json", import.meta.url)), "utf8")) as unknown;
const bare = prepareSystemInfo({
  domains: {
    dom0: { type: "AdminVM", tags: [] },
    "debian-13": { type: "TemplateVM", tags: [] },
    "sys-net": { type: "AppVM", tags: [] },
    "default-dvm": { type: "AppVM", tags: [], template_for_dispvms: true },
    vault: { type: "AppVM", tags: [] },
  },
});
const ENVS: Array<[string, TemplateEnvironment]> = [
  ["a qkit system snapshot (provides_network under properties)", { system: prepareSystemInfo(laptop as Parameters<typeof prepareSystemInfo>[0]) }],
  ["a bare GetSystemInfo answer (provides_network unknown)", { system: bare }],
  ["no system model", {}],
];

const HEAD = `qkit: 1
stack: s
qubes:
  new-plain:
    class: AppVM
    label: red
  new-prov:
    class: AppVM
    label: red
    provides_network: true
  sys-firewall:
    class: AppVM
    label: green
  untrusted:
    absent: true
  my-dvm:
    class: AppVM
    label: red
    template_for_dispvms: true
  tpl:
    class: TemplateVM
    label: black
    source: { empty: true }
`;
const KEYS: Array<[string, string]> = [
  ["netvm", "  probe:\n    class: AppVM\n    label: red\n    netvm: "],
  ["a TemplateVM's netvm", "  probe:\n    class: TemplateVM\n    label: red\n    source: { empty: true }\n    netvm: "],
  ["default_dispvm", "  probe:\n    class: AppVM\n    label: red\n    default_dispvm: "],
  ["an AppVM's template", "  probe:\n    class: AppVM\n    label: red\n    template: "],
  ["a DispVM's template", "  probe:\n    class: DispVM\n    label: red\n    template: "],
  ["global default_netvm", "global:\n  default_netvm: "],
  ["global default_dispvm", "global:\n  default_dispvm: "],
];
/** The checker's codes for a reference it refuses. */
const REFUSED = new Set(["unknown-qube", "reference-to-absent", "netvm-not-provider", "template-wrong-class", "not-a-dispvm-template", "cannot-reset", "invalid-property-value", "invalid-qube-name", "cannot-manage-dom0"]);

describe("completion offers only what check accepts", () => {
  for (const [envName, env] of ENVS) {
    describe(envName, () => {
      it.each(KEYS)("%s", (_name, tail) => {
        const text = HEAD + tail;
        const offered = completeTemplate(analyzeTemplate("/s/main.qubes.yaml", text, env), text.length).map((i) => i.label);
        expect(offered.length).toBeGreaterThan(0);
        const refused = offered.flatMap((value) => {
          const diagnostics = templateDiagnostics(analyzeTemplate("/s/main.qubes.yaml", `${text}${value}\n`, env));
          return diagnostics.filter((d) => d.span.start >= text.length && REFUSED.has(d.code)).map((d) => `${value}: ${d.code}: ${d.message}`);
        });
        expect(refused).toEqual([]);
      });
    });
  }

  it("moved_from: the machine's undeclared qubes of the same class, each accepted by check", () => {
    const text = `${HEAD}  probe:\n    class: TemplateVM\n    moved_from: `;
    const env = ENVS[0]![1];
    const offered = completeTemplate(analyzeTemplate("/s/main.qubes.yaml", text, env), text.length).map((i) => i.label);
    expect(offered.length).toBeGreaterThan(0);
    const system = env.system!;
    expect(offered.filter((n) => system.domains.get(n)?.type !== "TemplateVM")).toEqual([]);
    expect(offered).not.toContain("tpl");
    const refused = offered.flatMap((value) =>
      templateDiagnostics(analyzeTemplate("/s/main.qubes.yaml", `${text}${value}\n`, env))
        .filter((d) => d.span.start >= text.length && (REFUSED.has(d.code) || d.code === "invalid-move"))
        .map((d) => `${value}: ${d.code}`),
    );
    expect(refused).toEqual([]);
  });

  it("netvm: the providers of a qkit system snapshot, not the qubes it records as no providers", () => {
    const text = `${HEAD}  probe:\n    class: AppVM\n    label: red\n    netvm: `;
    const offered = completeTemplate(analyzeTemplate("/s/main.qubes.yaml", text, ENVS[0]![1]), text.length).map((i) => i.label);
    expect(offered.sort()).toEqual(["default", "new-prov", "none", "sys-firewall", "sys-net"]);
  });
});
