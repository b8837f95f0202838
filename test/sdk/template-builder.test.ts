/**
 * `defineStack` through the SDK entry: the same content written in YAML and
 * in TypeScript gives the same model; the builder's types follow the shared
 * property table; its errors carry the front end's diagnostics; and the
 * compile-time tests of `sdk/src/apply/builder.type-test.ts` fail where they
 * should once their `@ts-expect-error` markers are removed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DECLARABLE_CLASSES, checkStack, writableProperties, type StackModel } from "@qubes-kit/language";
import { BUILDER_PROPERTY_KEYS, DEFAULT, StackDefinitionError, defineStack, stackInputToYaml, withoutProvenance, type QubeInput, type StackInput } from "@qubes-kit/sdk";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The office stack in YAML (the same content as {@link OFFICE_TS}). */
const OFFICE_YAML = `qkit: 1
stack: office
description: Everything a stack can say, once.
global:
  default_netvm: sys-firewall
  default_dispvm: web-dvm
  clockvm: none
  updatevm: default
labels:
  teal: "0x008080"
qubes:
  tpl-office:
    class: TemplateVM
    source: { clone: debian-13 }
    label: black
    memory: 1024
    kernelopts: "swiotlb=2048"
  web-dvm:
    class: AppVM
    template: tpl-office
    label: red
    template_for_dispvms: true
    netvm: default
    features: { appmenus-dispvm: true, preload-dispvm-max: 2 }
  sys-firewall:
    class: AppVM
    template: tpl-office
    label: green
    provides_network: true
    netvm: none
    memory: 500
    autostart: true
    services: { qubes-updates-proxy: true, cups: false }
  desk:
    class: AppVM
    template: tpl-office
    label: teal
    netvm: sys-firewall
    memory: 800
    maxmem: 4000
    vcpus: 2
    virt_mode: pvh
    default_dispvm: default
    features: { gui-events-max-delay: 100, old-feature: null }
    tags: [office, printing]
    firewall:
      - action=accept dsthost=intranet.example.com proto=tcp dstports=443
      - action=drop
    volumes: { private: { size: 20GiB, revisions_to_keep: 2 } }
    pools: { private: vm-pool }
    notes: The office desktop.
    state: running
    ignore_changes: [memory]
  scanner:
    class: DispVM
    template: web-dvm
    label: orange
    netvm: none
    auto_cleanup: false
    devices:
      usb:
        - backend: sys-usb
          device: "0x04a9:0x190d::u000000"
          mode: ask-to-attach
      pci:
        - match: { class: usb-controller }
          options: { no-strict-reset: true }
  archive:
    class: StandaloneVM
    source: { empty: true }
    label: gray
    protect: true
  old-desk:
    class: AppVM
    absent: true
policy:
  - file: office
    rules: |
      qubes.Filecopy  *  desk  @tag:office  allow
      qubes.Filecopy  *  @anyvm  desk  ask
  - file: printing
    include: true
    rules: |
      qubes.Print  *  @tag:printing  sys-print  allow
  - file: early
    priority: 35
    rules: |
      !include include/qkit-office-printing
expect:
  - qubes.Filecopy desk @default => ask
  - call: qubes.OpenURL desk -> @dispvm
    decision: allow
    target: "@dispvm:web-dvm"
options:
  prune: false
  restart: if-needed
  policy_priority: 40
`;
const OFFICE = "/office.qubes.yaml";
const disk = { readFile: (p: string) => (fs.existsSync(p) ? fs.readFileSync(p, "utf8") : undefined) };

function fromYaml(file: string): StackModel {
  const r = checkStack(file === OFFICE ? { readFile: (p) => (p === OFFICE ? OFFICE_YAML : undefined) } : disk, file);
  expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  return withoutProvenance(r.model!);
}

/** The office stack of the fixture, in TypeScript. */
const OFFICE_TS: StackInput = {
  stack: "office",
  description: "Everything a stack can say, once.",
  global: { default_netvm: "sys-firewall", default_dispvm: "web-dvm", clockvm: null, updatevm: DEFAULT },
  labels: { teal: "0x008080" },
  qubes: {
    "tpl-office": { class: "TemplateVM", source: { clone: "debian-13" }, label: "black", memory: 1024, kernelopts: "swiotlb=2048" },
    "web-dvm": { class: "AppVM", template: "tpl-office", label: "red", template_for_dispvms: true, netvm: DEFAULT, features: { "appmenus-dispvm": true, "preload-dispvm-max": 2 } },
    "sys-firewall": { class: "AppVM", template: "tpl-office", label: "green", provides_network: true, netvm: null, memory: 500, autostart: true, services: { "qubes-updates-proxy": true, cups: false } },
    desk: {
      class: "AppVM",
      template: "tpl-office",
      label: "teal",
      netvm: "sys-firewall",
      memory: 800,
      maxmem: 4000,
      vcpus: 2,
      virt_mode: "pvh",
      default_dispvm: DEFAULT,
      features: { "gui-events-max-delay": 100, "old-feature": null },
      tags: ["office", "printing"],
      firewall: ["action=accept dsthost=intranet.example.com proto=tcp dstports=443", "action=drop"],
      volumes: { private: { size: "20GiB", revisions_to_keep: 2 } },
      pools: { private: "vm-pool" },
      notes: "The office desktop.",
      state: "running",
      ignore_changes: ["memory"],
    },
    scanner: {
      class: "DispVM",
      template: "web-dvm",
      label: "orange",
      netvm: null,
      auto_cleanup: false,
      devices: {
        usb: [{ backend: "sys-usb", device: "0x04a9:0x190d::u000000", mode: "ask-to-attach" }],
        pci: [{ match: { class: "usb-controller" }, options: { "no-strict-reset": true } }],
      },
    },
    archive: { class: "StandaloneVM", source: { empty: true }, label: "gray", protect: true },
    "old-desk": { class: "AppVM", absent: true },
  },
  policy: [
    { file: "office", rules: "qubes.Filecopy  *  desk  @tag:office  allow\nqubes.Filecopy  *  @anyvm  desk  ask\n" },
    { file: "printing", include: true, rules: "qubes.Print  *  @tag:printing  sys-print  allow\n" },
    { file: "early", priority: 35, rules: "!include include/qkit-office-printing\n" },
  ],
  expect: ["qubes.Filecopy desk @default => ask", { call: "qubes.OpenURL desk -> @dispvm", decision: "allow", target: "@dispvm:web-dvm" }],
  options: { prune: false, restart: "if-needed", policy_priority: 40 },
};

describe("defineStack", () => {
  it("gives the model the YAML front end gives for the same stack", () => {
    expect(defineStack(OFFICE_TS)).toEqual(fromYaml(OFFICE));
  });

  it("keeps a feature or a tag called provenance (only where a declaration was written is dropped)", () => {
    const built = defineStack({ stack: "p", qubes: { q: { class: "AppVM", label: "red", netvm: null, features: { provenance: "kept", rulesOffset: "1" }, tags: ["provenance"] } } });
    expect(built.qubes[0]!.features).toEqual({ provenance: "kept", rulesOffset: "1" });
    expect(built.qubes[0]!.tags).toEqual(["provenance"]);
    expect(built).not.toHaveProperty("globalProvenance");
  });

  it("reproduces the example machine's model from its content (bundles expanded)", () => {
    const yaml = fromYaml(path.join(ROOT, "examples/laptop/laptop.qubes.yaml"));
    const built = defineStack(modelToInput(yaml));
    expect(built).toEqual(yaml);
  });

  it("accepts any generated qube that the YAML front end accepts, with the same model (property test)", () => {
    const qube = fc.record(
      {
        class: fc.constantFrom("AppVM", "TemplateVM", "StandaloneVM"),
        label: fc.constantFrom("red", "blue", "black"),
        memory: fc.oneof(fc.integer({ min: 1, max: 8000 }), fc.constant(DEFAULT)),
        netvm: fc.constantFrom<string | null | typeof DEFAULT>(null, DEFAULT, "sys-net"),
        features: fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9.-]{0,8}$/), fc.oneof(fc.boolean(), fc.constant(null), fc.stringMatching(/^[ -~]{0,6}$/))),
        tags: fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9_-]{0,6}$/), { maxLength: 3 }),
        notes: fc.string({ maxLength: 20 }),
      },
      { requiredKeys: ["class", "label"] },
    );
    fc.assert(
      fc.property(fc.dictionary(fc.stringMatching(/^q[a-z0-9-]{0,6}$/), qube, { maxKeys: 4 }), (qubes) => {
        const input = { stack: "gen", qubes: { ...(qubes as Record<string, QubeInput>), "sys-net": { class: "AppVM", label: "red", provides_network: true, netvm: null } } } as StackInput;
        const file = "/gen.qubes.yaml";
        const r = checkStack({ readFile: (p) => (p === file ? stackInputToYaml(input) : undefined) }, file);
        if (!r.model) {
          expect(() => defineStack(input)).toThrow(StackDefinitionError);
          return;
        }
        expect(defineStack(input)).toEqual(withoutProvenance(r.model));
      }),
      { numRuns: 150, seed: 11 },
    );
  });

  it("throws a StackDefinitionError with the front end's diagnostics", () => {
    try {
      defineStack({ stack: "bad", qubes: { work: { class: "AppVM", memory: -5 }, loop: { class: "AppVM", netvm: "loop", provides_network: true } } });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(StackDefinitionError);
      const codes = (e as StackDefinitionError).diagnostics.filter((d) => d.severity === "error").map((d) => d.code);
      expect(codes).toContain("invalid-property-value");
      expect(codes).toContain("netvm-loop");
      expect((e as Error).message).toMatch(/^the stack definition has 2 errors: .*memory must be positive.*\[invalid-property-value\]/);
    }
  });

  it("types exactly the writable properties of each class of the shared property table", () => {
    for (const klass of DECLARABLE_CLASSES) {
      const table = writableProperties(klass).map((p) => p.name).sort();
      expect([klass, BUILDER_PROPERTY_KEYS[klass]]).toEqual([klass, table]);
    }
    expect(BUILDER_PROPERTY_KEYS["@global"]).toEqual(writableProperties("@global").map((p) => p.name).sort());
  });

  it("the type tests fail where they say once their markers are removed", () => {
    const file = path.join(ROOT, "sdk/src/apply/builder.type-test.ts");
    const text = fs.readFileSync(file, "utf8");
    const marked = text.split("\n").flatMap((l, i) => (l.trim().startsWith("// @ts-expect-error") ? [i + 2] : []));
    expect(marked.length).toBeGreaterThanOrEqual(10);
    const stripped = text.replace(/^(\s*)\/\/ @ts-expect-error/gm, "$1//");
    const options: ts.CompilerOptions = { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: [] };
    const host = ts.createCompilerHost(options);
    const read = host.readFile.bind(host);
    host.readFile = (f) => (path.resolve(f) === file ? stripped : read(f));
    const program = ts.createProgram([file], options, host);
    const errors = ts.getPreEmitDiagnostics(program).filter((d) => d.file && path.resolve(d.file.fileName) === file);
    const lines = [...new Set(errors.map((d) => d.file!.getLineAndCharacterOfPosition(d.start!).line + 1))].sort((a, b) => a - b);
    expect(lines).toEqual(marked);
  });
});

/** A model back to builder input (for the example machine: bundles expanded by the front end). */
function modelToInput(m: StackModel): StackInput {
  const qubes: Record<string, QubeInput> = {};
  for (const q of m.qubes) {
    const input: Record<string, unknown> = { class: q.class, ...q.properties };
    for (const [k, v] of Object.entries(input)) if (v === null && k !== "class") input[k] = null;
    if (q.source) input["source"] = q.source;
    if (Object.keys(q.features).length) input["features"] = q.features;
    if (q.tags) input["tags"] = q.tags;
    if (q.firewall) input["firewall"] = q.firewall;
    if (q.devices) input["devices"] = Object.fromEntries(Object.entries(q.devices).map(([c, list]) => [c, list.map((d) => ({ backend: d.backend, ...(d.port ? { port: d.port } : {}), ...(d.deviceId ? { device: d.deviceId } : {}), ...(d.match ? { match: d.match } : {}), mode: d.mode, options: d.options }))]));
    if (q.volumes) input["volumes"] = q.volumes;
    if (q.pools) input["pools"] = q.pools;
    if (q.notes !== undefined) input["notes"] = q.notes;
    if (q.state !== "any") input["state"] = q.state;
    if (q.absent) input["absent"] = true;
    if (q.protect) input["protect"] = true;
    if (q.ignore_changes.length) input["ignore_changes"] = q.ignore_changes;
    qubes[q.name] = input as unknown as QubeInput;
  }
  return {
    stack: m.stack,
    global: m.global as StackInput["global"],
    labels: m.labels,
    qubes,
    policy: m.policy.map((p) => ({ file: p.file, priority: p.priority, rules: p.rules, ...(p.include ? { include: true } : {}) })),
    expect: m.expect.map((e) => ({
      call: `${e.service}${e.argument && e.argument !== "+" ? e.argument : ""} ${e.source} -> ${e.target}`,
      decision: e.decision,
      ...(e.target_is ? { target: e.target_is } : {}),
      ...(e.targets_include ? { targets_include: e.targets_include } : {}),
      ...(e.targets_exact ? { targets_exact: e.targets_exact } : {}),
    })),
    options: m.options,
  };
}

describe("bigint values from JavaScript (review of issue 7, F23)", () => {
  it("keeps every digit of a bigint feature value and refuses one as an integer property", () => {
    const qube = (extra: Record<string, unknown>) => ({ class: "AppVM", template: "debian-12", label: "red", ...extra }) as unknown as QubeInput;
    const stack = defineStack({ stack: "x", qubes: { work: qube({ features: { big: 12345678901234567890n, neg: -5n } }) } } as unknown as StackInput);
    expect(stack.qubes[0]!.features).toEqual({ big: "12345678901234567890", neg: "-5" });
    expect(() => defineStack({ stack: "x", qubes: { work: qube({ memory: 12345678901234567890n }) } } as unknown as StackInput)).toThrow(StackDefinitionError);
    expect(() => defineStack({ stack: "x", qubes: { work: qube({ memory: 12345678901234567890n }) } } as unknown as StackInput)).toThrow(/unsafe-integer/);
  });
});
