/**
 * Stack files (`*.qubes.yaml`) through the built server over stdio, driven by the real
 * `vscode-languageserver-protocol` client: diagnostics of the embedded policy at the YAML
 * line and column, completion of keys and of values filtered by position, hover with the
 * property table's help, definition and references across the stack, its bundles and the
 * workspace `policy.d`, and the plan / what-if code lenses.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CodeActionRequest,
  CodeLensRequest,
  CompletionRequest,
  DocumentFormattingRequest,
  DefinitionRequest,
  DidChangeTextDocumentNotification,
  HoverRequest,
  ReferencesRequest,
  SemanticTokensRequest,
  TextDocument,
  type CompletionItem,
  type CompletionList,
  type Location,
} from "vscode-languageserver-protocol/node.js";
import { formatDocument, parseDocument } from "@qubes-kit/language";
import { repoPath, startServer, type ServerSession } from "./e2e-support.js";

const WS = repoPath("test/lsp/template-fixtures/ws");
const STACK = `${WS}/laptop.qubes.yaml`;
const BUNDLE = `${WS}/bundles/split-gpg.qubes.yaml`;
const USER_POLICY = `${WS}/etc/qubes/policy.d/30-user.policy`;
const stackText = readFileSync(STACK, "utf8");

let server: ServerSession;
beforeAll(async () => {
  server = await startServer(WS, { system: { source: "file", file: `${WS}/system-info.json` } });
});
afterAll(async () => {
  await server?.close();
});

/** The position of the `n`-th occurrence of `needle` in `text`, `delta` characters in. */
function at(text: string, needle: string, delta = 0, n = 1): { line: number; character: number } {
  let i = -1;
  for (let k = 0; k < n; k++) {
    i = text.indexOf(needle, i + 1);
    if (i < 0) throw new Error(`\`${needle}\` (#${n}) is not in the text`);
  }
  const offset = i + delta;
  const before = text.slice(0, offset);
  return { line: before.split("\n").length - 1, character: offset - (before.lastIndexOf("\n") + 1) };
}

function labels(result: CompletionItem[] | CompletionList | null): string[] {
  const items = Array.isArray(result) ? result : (result?.items ?? []);
  return items.map((i) => i.label);
}

let scratch = 0;
/** Opens an unsaved variant of the stack next to it (same folder, so its bundle resolves). */
function openVariant(text: string): { uri: string; text: string } {
  scratch += 1;
  return { uri: server.open(`${WS}/scratch-${scratch}.qubes.yaml`, text, "qubes-template"), text };
}

/** Splits a `$0` cursor marker out of a text. */
function cursor(marked: string): { text: string; position: { line: number; character: number } } {
  const i = marked.indexOf("$0");
  const text = marked.slice(0, i) + marked.slice(i + 2);
  const before = text.slice(0, i);
  return { text, position: { line: before.split("\n").length - 1, character: i - (before.lastIndexOf("\n") + 1) } };
}

async function completeAt(marked: string): Promise<{ items: CompletionItem[]; text: string; uri: string }> {
  const { text, position } = cursor(marked);
  const { uri } = openVariant(text);
  const result = await server.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position });
  const items = Array.isArray(result) ? result : (result?.items ?? []);
  return { items, text, uri };
}

describe("diagnostics", () => {
  it("reports policy errors inside `rules: |` at the YAML line and column, and nothing else", async () => {
    const uri = server.open(STACK, undefined, "qubes-template");
    const diagnostics = await server.waitForDiagnostics(uri, (d) => d.length > 0);
    const doc = TextDocument.create(uri, "qubes-template", 1, stackText);
    const seen = diagnostics.map((d) => ({ code: d.code, message: d.message, text: doc.getText(d.range), start: d.range.start }));
    expect(seen).toContainEqual({ code: "invalid-action", message: "invalid action: alow", text: "alow", start: at(stackText, "alow") });
    // The YAML itself is not read as a policy file (no `wrong number of fields` on `qkit: 1`).
    expect(diagnostics.filter((d) => d.range.start.line < at(stackText, "rules: |").line).map((d) => d.message)).toEqual([]);
  });

  it("follows edits: fixing the action clears the error", async () => {
    const { uri } = openVariant(stackText.replace("alow", "allow"));
    const diagnostics = await server.waitForDiagnostics(uri, () => true);
    expect(diagnostics.filter((d) => d.code === "invalid-action")).toEqual([]);
  });

  const head = "qkit: 1\nstack: s\nqubes:\n  tpl:\n    class: TemplateVM\n    label: black\n";
  it.each([
    ["a key of the wrong class", `${head}  d:\n    class: DispVM\n    template: default-dvm\n    label: red\n    template_for_dispvms: true\n`, "property-not-for-class", "template_for_dispvms"],
    ["an unknown key", `${head}  w:\n    class: AppVM\n    template: tpl\n    label: red\n    memroy: 400\n`, "unknown-key", "memroy"],
    ["a template of the wrong class", `${head}  w:\n    class: AppVM\n    template: personal\n    label: red\n`, "template-wrong-class", "personal"],
    ["a qube the machine does not have", `${head}  w:\n    class: AppVM\n    template: tpl\n    label: red\n    netvm: sys-nope\n`, "unknown-qube", "sys-nope"],
    ["a policy rule naming a qube that will not exist", `${head}policy:\n  - file: p\n    rules: |\n      qubes.Filecopy * tpl ghost allow\n`, "unknown-qube", "ghost"],
  ])("reports %s at its place", async (_name, text, code, word) => {
    const { uri } = openVariant(text);
    const diagnostics = await server.waitForDiagnostics(uri, (d) => d.some((x) => x.code === code));
    const doc = TextDocument.create(uri, "qubes-template", 1, text);
    const d = diagnostics.find((x) => x.code === code)!;
    expect(doc.getText(d.range)).toBe(word);
    expect(d.range.start).toEqual(at(text, word, 0, text.split(word).length - 1));
  });

  it("points at the other declaration of a qube declared twice", async () => {
    const text = `${head}  w:\n    class: AppVM\n    template: tpl\n    label: red\n  w:\n    class: AppVM\n    template: tpl\n    label: red\n`;
    const { uri } = openVariant(text);
    const diagnostics = await server.waitForDiagnostics(uri, (d) => d.some((x) => x.relatedInformation?.length));
    const d = diagnostics.find((x) => x.relatedInformation?.length)!;
    expect(d.relatedInformation![0]!.location.uri).toBe(uri);
    expect([d.range.start.line, d.relatedInformation![0]!.location.range.start.line].sort((x, y) => x - y)).toEqual([6, 10]);
  });

  it("reports a YAML syntax error where it is", async () => {
    const text = "qkit: 1\nstack: x\nqubes:\n  work: [unclosed\n";
    const { uri } = openVariant(text);
    const diagnostics = await server.waitForDiagnostics(uri, (d) => d.length > 0);
    expect(diagnostics[0]!.severity).toBe(1);
    expect(diagnostics[0]!.range.start.line).toBeGreaterThanOrEqual(3);
  });
});

describe("completion", () => {
  const base = `qkit: 1
stack: laptop
qubes:
  debian-13-minimal:
    class: TemplateVM
  dvm-sys:
    class: AppVM
    template_for_dispvms: true
  sys-firewall:
    class: DispVM
    provides_network: true
`;

  it.each([
    ["an AppVM's template: TemplateVMs, declared and live", `${base}  work:\n    class: AppVM\n    template: $0\n`, ["debian-13-minimal", "fedora-42-xfce"], ["dvm-sys", "sys-firewall", "personal", "work"]],
    ["a DispVM's template: disposable templates", `${base}  disp:\n    class: DispVM\n    template: $0\n`, ["dvm-sys", "default-dvm"], ["debian-13-minimal", "personal", "sys-firewall"]],
    // The model records provides_network (sys-net's): its qubes without it are no providers, and not offered.
    ["netvm: providers, none and default", `${base}  work:\n    class: AppVM\n    netvm: $0\n`, ["none", "default", "sys-firewall", "sys-net"], ["debian-13-minimal", "dvm-sys", "work", "personal", "default-dvm", "fedora-42-xfce", "dom0"]],
    ["default_dispvm: disposable templates", `${base}  work:\n    class: AppVM\n    default_dispvm: $0\n`, ["none", "dvm-sys", "default-dvm"], ["personal"]],
    ["class", `${base}  work:\n    class: $0\n`, ["AppVM", "TemplateVM", "StandaloneVM", "DispVM"], ["AdminVM"]],
    ["label: names, never default (cannot-reset)", `${base}  work:\n    label: $0\n`, ["red", "black", "blue"], ["default"]],
    ["template: never default (cannot-reset)", `${base}  work:\n    class: AppVM\n    template: $0\n`, ["debian-13-minimal"], ["default", "none"]],
    ["virt_mode", `${base}  work:\n    virt_mode: $0\n`, ["hvm", "pv", "pvh"], []],
    ["tags: declared, live and policy tags", `${base}  work:\n    tags: [gpg-client]\n  other:\n    tags:\n      - $0\n`, ["gpg-client", "backup"], []],
    ["keys of an AppVM", `${base}  work:\n    class: AppVM\n    $0\n`, ["template", "memory", "netvm", "features", "services", "tags", "firewall", "template_for_dispvms", "moved_from"], ["class", "source", "auto_cleanup", "qid", "name"]],
    ["keys of a DispVM", `${base}  disp:\n    class: DispVM\n    $0\n`, ["template", "auto_cleanup"], ["template_for_dispvms"]],
    ["keys of a TemplateVM", `${base}  tpl:\n    class: TemplateVM\n    $0\n`, ["source", "appvm_default_bootmode"], ["template"]],
    ["top-level keys", `qkit: 1\n$0\n`, ["stack", "qubes", "policy", "expect", "global"], ["qkit", "bundle"]],
    ["global properties", `${base}global:\n  $0\n`, ["default_netvm", "default_template", "clockvm"], ["maxmem", "no_cpus"]],
    ["features", `${base}  work:\n    features:\n      $0\n`, ["servicevm", "appmenus-dispvm"], []],
    ["services in a flow mapping, not meminfo-writer (refused by check)", `${base}  work:\n    services: { cups: false, $0 }\n`, ["network-manager", "qubes-updates-proxy"], ["meminfo-writer"]],
    ["policy entry keys", `${base}policy:\n  - file: x\n    $0\n`, ["priority", "rules"], ["file"]],
    ["expect decisions", `${base}expect:\n  - call: qubes.Gpg work -> vault\n    decision: $0\n`, ["allow", "ask", "deny"], []],
    ["device modes", `${base}  work:\n    devices:\n      usb:\n        - port: 2-1\n          mode: $0\n`, ["required", "auto-attach", "ask-to-attach"], []],
    ["bundle parameters of a use: entry", `qkit: 1\nstack: s\nuse:\n  - bundle: ./bundles/split-gpg.qubes.yaml\n    as: gpg\n    with:\n      $0\n`, ["server", "template"], []],
  ])("%s", async (_name, marked, present, absent) => {
    const { items } = await completeAt(marked);
    const got = items.map((i) => i.label);
    for (const p of present) expect(got).toContain(p);
    for (const a of absent) expect(got).not.toContain(a);
  });

  it("completes bundle and include paths relative to the file", async () => {
    const top = await completeAt("qkit: 1\nstack: s\nuse:\n  - bundle: $0\n");
    expect(top.items.map((i) => i.label)).toContain("./bundles/");
    const inside = await completeAt("qkit: 1\nstack: s\nuse:\n  - bundle: ./bundles/$0\n");
    expect(inside.items.map((i) => i.label)).toContain("./bundles/split-gpg.qubes.yaml");
    const include = await completeAt("qkit: 1\nstack: s\ninclude:\n  - $0\n");
    const labels = include.items.map((i) => i.label);
    expect(labels).toContain("./laptop.qubes.yaml");
    expect(labels).not.toContain("./system-info.json");
  });

  it("follows an edit of a bundle open in the editor (only there, not on disk)", async () => {
    const bundle = `${WS}/bundles/unsaved-b.qubes.yaml`;
    const bundleUri = server.open(bundle, "qkit: 1\nbundle: b\nparams:\n  first: { type: qube }\n", "qubes-template");
    const marked = "qkit: 1\nstack: s\nuse:\n  - bundle: ./bundles/unsaved-b.qubes.yaml\n    as: b\n    with:\n      $0\n";
    expect((await completeAt(marked)).items.map((i) => i.label)).toEqual(["first"]);
    await server.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri: bundleUri, version: 2 },
      contentChanges: [{ text: "qkit: 1\nbundle: b\nparams:\n  first: { type: qube }\n  second: { type: tag }\n" }],
    });
    expect((await completeAt(marked)).items.map((i) => i.label).sort()).toEqual(["first", "second"]);
  });

  it("completes policy tokens inside `rules: |` with ranges in the YAML file", async () => {
    const { items, text } = await completeAt(`${base}policy:\n  - file: x\n    rules: |\n      qubes.Filecopy * sys-firewall @dis$0\n`);
    const dispvm = items.find((i) => i.label === "@dispvm");
    expect(dispvm).toBeDefined();
    const edit = dispvm!.textEdit as { range: { start: { line: number; character: number }; end: { line: number; character: number } } };
    expect(edit.range.start).toEqual(at(text, "@dis"));
    expect(edit.range.end).toEqual(at(text, "@dis", 4));
    // Qube names come from the future system: the stack's own qubes are known to the policy.
    const names = (await completeAt(`${base}policy:\n  - file: x\n    rules: |\n      qubes.Filecopy * $0\n`)).items.map((i) => i.label);
    expect(names).toContain("dvm-sys");
    expect(names).toContain("personal");
  });

  it("completes device ports from what the backend offers on the machine", async () => {
    const { items } = await completeAt(`${base}  sys-usb:\n    class: AppVM\n    devices:\n      pci:\n        - port: $0\n          options: { no-strict-reset: true }\n`);
    const port = items.find((i) => i.label === "00_14.0");
    expect(port?.detail).toBe("dom0 · Intel Corporation Cannon Lake PCH USB 3.1 xHCI Host Controller");
    expect(items.map((i) => i.label)).toContain("00_1c.0-00_00.0");
    // A backend that does not exist on the machine offers nothing (and the failure is only logged).
    const none = await completeAt(`${base}  w:\n    class: AppVM\n    devices:\n      usb:\n        - backend: sys-nothing\n          port: $0\n`);
    expect(none.items).toEqual([]);
  });

  it("answers nothing (and does not fail) in a comment", async () => {
    const { items } = await completeAt(`qkit: 1\n# a comment $0\n`);
    expect(items).toEqual([]);
  });
});

describe("hover", () => {
  it("shows a property's help text, type, default and effect", async () => {
    const uri = server.open(STACK, undefined, "qubes-template");
    const hover = await server.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position: at(stackText, "memory: 800", 2) });
    const value = (hover?.contents as { value: string }).value;
    expect(value).toContain("Memory currently available for this VM");
    expect(value).toContain("- type: int");
    expect(value).toContain("- default: the template's, else 400");
    expect(value).toContain("next start");
  });

  it("explains a qube name and the policy inside `rules: |`", async () => {
    const uri = server.open(STACK, undefined, "qubes-template");
    const onName = await server.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position: at(stackText, "netvm: sys-firewall", 9) });
    expect((onName?.contents as { value: string }).value).toContain("DispVM declared in this file");
    const onAction = await server.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position: at(stackText, "alow", 1) });
    expect((onAction?.contents as { value: string }).value).toContain("not an action");
    expect(onAction?.range?.start).toEqual(at(stackText, "alow"));
  });
});

describe("definition and references", () => {
  const stackUri = pathToFileURL(STACK).href;

  it("goes from a template value to the qube's declaration", async () => {
    server.open(STACK, undefined, "qubes-template");
    const result = (await server.connection.sendRequest(DefinitionRequest.type, { textDocument: { uri: stackUri }, position: at(stackText, "template: dvm-sys", 12) })) as Location[];
    expect(result).toEqual([{ uri: stackUri, range: { start: at(stackText, "  dvm-sys:", 2), end: at(stackText, "  dvm-sys:", 9) } }]);
  });

  it("goes from a qube in a policy rule to its declaration", async () => {
    const result = (await server.connection.sendRequest(DefinitionRequest.type, { textDocument: { uri: stackUri }, position: at(stackText, "work  @dispvm", 1) })) as Location[];
    expect(result.map((l) => l.range.start)).toEqual([at(stackText, "  work:", 2)]);
  });

  it("finds a qube's references in the stack, its policy and the workspace policy.d", async () => {
    const result = (await server.connection.sendRequest(ReferencesRequest.type, {
      textDocument: { uri: stackUri },
      position: at(stackText, "  work:", 3),
      context: { includeDeclaration: true },
    })) as Location[];
    const inStack = result.filter((l) => l.uri === stackUri).map((l) => l.range.start);
    // The declaration, the rules block and the `expect:` call (rename edits the same places).
    expect(inStack).toEqual([at(stackText, "  work:", 2), at(stackText, "work  @dispvm"), at(stackText, "work  vault"), at(stackText, "Filecopy work ->", 9)]);
    expect(result.filter((l) => l.uri === pathToFileURL(USER_POLICY).href)).toHaveLength(1);
  });

  it("finds a template's uses in a bundle of the stack", async () => {
    const result = (await server.connection.sendRequest(ReferencesRequest.type, {
      textDocument: { uri: stackUri },
      position: at(stackText, "  debian-13-minimal:", 3),
      context: { includeDeclaration: false },
    })) as Location[];
    // The bundle references it through its `template` parameter, not by name: only the stacks' own uses
    // (this stack's, and those of the unsaved variants other tests opened: rename would edit them too).
    expect(result.some((l) => l.uri === pathToFileURL(BUNDLE).href)).toBe(false);
    expect(result.filter((l) => l.uri === stackUri).length).toBe(3);
    expect(BUNDLE.endsWith(".qubes.yaml")).toBe(true);
  });
});

describe("code lenses and semantic tokens", () => {
  it("offers plan and what-if on the stack line and what-if on each policy entry", async () => {
    const uri = server.open(STACK, undefined, "qubes-template");
    const lenses = await server.connection.sendRequest(CodeLensRequest.type, { textDocument: { uri } });
    const seen = (lenses ?? []).map((l) => ({ line: l.range.start.line, command: l.command?.command, args: l.command?.arguments }));
    expect(seen).toContainEqual({ line: at(stackText, "stack: laptop").line, command: "qubesTemplate.plan", args: [uri] });
    expect(seen).toContainEqual({ line: at(stackText, "stack: laptop").line, command: "qubesTemplate.whatif", args: [uri] });
    expect(seen).toContainEqual({ line: at(stackText, "  - file: machine").line, command: "qubesTemplate.whatif", args: [uri] });
  });

  it("colours the policy inside `rules: |` only", async () => {
    const uri = server.open(STACK, undefined, "qubes-template");
    const tokens = await server.connection.sendRequest(SemanticTokensRequest.type, { textDocument: { uri } });
    // Decode the first token: relative encoding, first line is absolute.
    const data = tokens?.data ?? [];
    expect(data.length).toBeGreaterThan(0);
    expect(data[0]).toBeGreaterThanOrEqual(at(stackText, "rules: |").line + 1);
  });
});

describe("quick fixes", () => {
  it("offers the policy's fix inside a rules block, as an edit of the YAML file", async () => {
    const uri = server.open(STACK, undefined, "qubes-template");
    const start = at(stackText, "alow");
    const actions = (await server.connection.sendRequest(CodeActionRequest.type, {
      textDocument: { uri },
      range: { start, end: start },
      context: { diagnostics: [] },
    })) as Array<{ title: string; edit?: { changes?: Record<string, Array<{ range: unknown; newText: string }>> } }>;
    const fix = actions.find((a) => /allow/.test(a.title));
    expect(fix).toBeDefined();
    expect(fix!.edit!.changes![uri]).toEqual([{ range: { start, end: at(stackText, "alow", 4) }, newText: "allow" }]);
  });
});

describe("formatting", () => {
  it("formats the policy of rules blocks as the policy formatter does, and leaves the YAML alone", async () => {
    const text = "qkit: 1\nstack: s\npolicy:\n  - file: f\n    rules: |\n      qubes.Gpg * work @default allow\n      qubes.Filecopy   *  work   vault deny\n    priority:   40\n";
    const { uri } = openVariant(text);
    const edits = (await server.connection.sendRequest(DocumentFormattingRequest.type, { textDocument: { uri }, options: { tabSize: 2, insertSpaces: true } })) ?? [];
    expect(edits.length).toBeGreaterThan(0);
    const formatted = TextDocument.applyEdits(TextDocument.create(uri, "qubes-template", 1, text), edits);
    const lines = formatted.split("\n");
    expect(lines.length).toBe(text.split("\n").length);
    expect(lines.slice(0, 5)).toEqual(text.split("\n").slice(0, 5));
    expect(lines[7]).toBe("    priority:   40");
    // The block's lines are what the policy formatter makes of the block, at the block's indentation.
    const block = "qubes.Gpg * work @default allow\nqubes.Filecopy   *  work   vault deny\n";
    const policy = TextDocument.create("file:///p.policy", "qrexecpolicy", 1, block);
    const expected = TextDocument.applyEdits(policy, formatDocument(parseDocument(block)).map((e) => ({ range: { start: policy.positionAt(e.span.start), end: policy.positionAt(e.span.end) }, newText: e.newText })));
    expect(lines.slice(5, 7)).toEqual(expected.split("\n").slice(0, 2).map((l) => `      ${l}`));
    expect(lines[6]).not.toBe(text.split("\n")[6]);
  });
});

describe("robustness", () => {
  it("survives arbitrary text in a stack file", async () => {
    const texts = ["", ":", "- - -\n  ? x\n", "qubes:\n  a: &x {b: *x}\n", "policy:\n  - rules: |\n", "policy:\n  - rules: |\n\t\tbad\n", "\u0000\uffff"];
    for (const t of texts) {
      const { uri } = openVariant(t);
      for (const position of [{ line: 0, character: 0 }, { line: 1, character: 3 }, { line: 5, character: 0 }]) {
        await server.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position });
        await server.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position });
      }
    }
    expect(server.exited()).toBe(false);
    expect(server.log.join("")).not.toMatch(/failed:/);
  });
});

describe("plan (qubes/templatePlan) against the simulator seeded from the system snapshot", () => {
  const clean = `qkit: 1
stack: demo
qubes:
  work:
    class: AppVM
    template: fedora-42-xfce
    label: blue
    netvm: sys-net
    memory: 800
  personal:
    class: AppVM
    template: fedora-42-xfce
    label: yellow
policy:
  - file: demo
    rules: |
      qubes.Filecopy  *  work  personal  ask
`;

  it("plans the stack: creation, properties, the policy file, ownership errors", async () => {
    const { uri } = openVariant(clean);
    const result = (await server.connection.sendRequest("qubes/templatePlan", { uri })) as import("@qubes-kit/lsp").TemplatePlanResult;
    expect(result.error).toBeUndefined();
    expect(result.connection).toContain("simulator seeded from system-info.json");
    const steps = result.plan!.steps.map((s) => `${s.kind} ${s.target} ${s.key}`.trim());
    expect(steps).toContain("create qube work");
    expect(steps).toContain("write-policy policy 40-qkit-demo-demo.policy");
    // `personal` exists on the machine and no stack owns it: taking it over needs --adopt.
    expect(result.plan!.errors.map((e) => e.message).join("\n")).toContain("personal");
  });

  it("marks policy writes and tags by their decision changes, as `qkit template plan` does", async () => {
    // A tag no policy file names changes no decision; one the stack's rule names grants.
    const tagged = clean.replace("    memory: 800\n", "    memory: 800\n    tags: [nowhere-named, lsp-copier]\n").replace("qubes.Filecopy  *  work  personal  ask", "qubes.Filecopy  *  @tag:lsp-copier  personal  ask");
    const { uri } = openVariant(tagged);
    const result = (await server.connection.sendRequest("qubes/templatePlan", { uri })) as import("@qubes-kit/lsp").TemplatePlanResult;
    const risks = Object.fromEntries(result.plan!.steps.filter((s) => s.kind === "add-tag").map((s) => [s.key, s.risk]));
    expect(risks).toEqual({ "tag nowhere-named": "none", "tag lsp-copier": "grants-access" });
  });

  it("answers the stack's errors instead of a plan", async () => {
    const { uri } = openVariant(clean.replace("label: blue", "label: blu"));
    const result = (await server.connection.sendRequest("qubes/templatePlan", { uri })) as import("@qubes-kit/lsp").TemplatePlanResult;
    expect(result.plan).toBeUndefined();
    expect(result.error).toMatch(/^1 error in the stack/);
    expect(result.problems?.map((p) => p.code)).toEqual(["unknown-label"]);
  });

  it("refuses a request that does not name a stack file", async () => {
    await expect(server.connection.sendRequest("qubes/templatePlan", { uri: pathToFileURL(USER_POLICY).href })).rejects.toThrow(/stack file/);
    await expect(server.connection.sendRequest("qubes/templatePlan", {})).rejects.toThrow(/uri/);
  });
});

describe("what-if (qubes/templateWhatif) against the simulator seeded from the system snapshot", () => {
  const stack = `qkit: 1
stack: demo
qubes:
  work:
    class: AppVM
    template: fedora-42-xfce
    label: blue
policy:
  - file: demo
    rules: |
      qubes.Filecopy  *  work  personal  ask default_target=personal
expect:
  - call: qubes.Filecopy work -> personal
    decision: ask
  - call: qubes.Filecopy personal -> work
    decision: allow
`;

  it("checks the expectations and lists the decisions that change", async () => {
    const { uri } = openVariant(stack);
    const result = (await server.connection.sendRequest("qubes/templateWhatif", { uri })) as import("@qubes-kit/lsp").TemplateWhatifResult;
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(false);
    expect(result.expectations?.map((e) => e.ok)).toEqual([true, false]);
    expect(result.expectations?.[1]?.problem).toBeTruthy();
    const change = result.changes?.find((c) => c.service === "qubes.Filecopy" && c.source === "work" && c.target === "personal");
    expect(change).toMatchObject({ kind: "grant", after: expect.stringContaining("ask") });
  });

  it("answers for a stack file on disk that is not open", async () => {
    // A closed file is read from disk; its positions come from a mapper of the disk text.
    const dir = mkdtempSync(path.join(WS, "closed-"));
    try {
      const file = path.join(dir, "closed.qubes.yaml");
      writeFileSync(file, stack);
      const result = (await server.connection.sendRequest("qubes/templateWhatif", { uri: pathToFileURL(file).href })) as import("@qubes-kit/lsp").TemplateWhatifResult;
      expect(result.error).toBeUndefined();
      expect(result.expectations?.map((e) => e.ok)).toEqual([true, false]);
      const plan = (await server.connection.sendRequest("qubes/templatePlan", { uri: pathToFileURL(file).href })) as { error?: string };
      expect(plan.error).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("answers the stack's errors instead of a report", async () => {
    const { uri } = openVariant(stack.replace("class: AppVM", "class: AppVMM"));
    const result = (await server.connection.sendRequest("qubes/templateWhatif", { uri })) as import("@qubes-kit/lsp").TemplateWhatifResult;
    expect(result.changes).toBeUndefined();
    expect(result.problems?.map((p) => p.code)).toContain("invalid-class");
  });
});

describe("without a system model", () => {
  let bare: ServerSession;
  beforeAll(async () => {
    bare = await startServer(WS, {});
  });
  afterAll(async () => {
    await bare?.close();
  });

  it("takes qubes the stack does not declare as notes, in YAML and in rules blocks", async () => {
    const text = "qkit: 1\nstack: s\nqubes:\n  w:\n    class: AppVM\n    template: tpl-elsewhere\n    label: red\npolicy:\n  - file: p\n    rules: |\n      qubes.Filecopy * w ghost allow\n";
    const uri = bare.open(`${WS}/bare-1.qubes.yaml`, text, "qubes-template");
    const diagnostics = await bare.waitForDiagnostics(uri, (d) => d.length >= 2);
    const doc = TextDocument.create(uri, "qubes-template", 1, text);
    const seen = diagnostics.map((d) => ({ severity: d.severity, text: doc.getText(d.range) }));
    expect(seen).toContainEqual({ severity: 3, text: "tpl-elsewhere" });
    expect(seen).toContainEqual({ severity: 3, text: "ghost" });
    expect(diagnostics.filter((d) => d.severity === 1 || d.severity === 2)).toEqual([]);
  });

  it("does not lint a bundle's policy on its raw `${param}` text", async () => {
    const text = "qkit: 1\nbundle: b\nparams:\n  server: { type: name }\n  client_tag: { type: tag }\nqubes:\n  ${server}:\n    class: AppVM\n    template: tpl\n    label: black\npolicy:\n  - file: p\n    rules: |\n      qubes.Gpg2 * @tag:${client_tag} @default ask target=${server} default_target=${server}\n";
    const uri = bare.open(`${WS}/bare-bundle.qubes.yaml`, text, "qubes-template");
    const diagnostics = await bare.waitForDiagnostics(uri, () => true);
    const doc = TextDocument.create(uri, "qubes-template", 1, text);
    expect(diagnostics.filter((d) => doc.getText(d.range).includes("${"))).toEqual([]);
  });
});
