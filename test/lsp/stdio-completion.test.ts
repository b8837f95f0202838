/**
 * Lean completion answers over stdio: to a client that resolves documentation and takes list
 * defaults (as VS Code does), items carry no documentation (`completionItem/resolve` adds it),
 * the edit range once for the list, and nothing equal to a default; once the defaults are
 * applied and every item resolved, the answer is exactly what a client without those
 * capabilities gets in full.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CompletionRequest,
  CompletionResolveRequest,
  MarkupKind,
  type CompletionItem,
  type CompletionList,
  type Range,
} from "vscode-languageserver-protocol/node.js";
import { SCRATCH_DIR, startServer, type ServerSession } from "./e2e-support.js";

/** What VS Code (vscode-languageclient 9) says about completion. */
const VSCODE_COMPLETION = {
  textDocument: {
    completion: {
      completionItem: { snippetSupport: true, documentationFormat: ["markdown", "plaintext"], resolveSupport: { properties: ["documentation", "detail", "additionalTextEdits"] } },
      completionList: { itemDefaults: ["commitCharacters", "editRange", "insertTextFormat", "insertTextMode", "data"] },
    },
  },
};

let plain: ServerSession;
let lean: ServerSession;
beforeAll(async () => {
  [plain, lean] = await Promise.all([startServer(), startServer(undefined, undefined, { capabilities: VSCODE_COMPLETION })]);
});
afterAll(async () => {
  await Promise.all([plain?.close(), lean?.close()]);
});

function cursor(marked: string): { text: string; position: { line: number; character: number } } {
  const at = marked.indexOf("$0");
  const text = marked.slice(0, at) + marked.slice(at + 2);
  const before = text.slice(0, at);
  return { text, position: { line: before.split("\n").length - 1, character: at - (before.lastIndexOf("\n") + 1) } };
}

let scratch = 0;
/** Completion at `$0` of `marked`, opened as a new unsaved file (of a policy directory not on disk). */
async function completion(server: ServerSession, marked: string): Promise<CompletionItem[] | CompletionList | null> {
  const { text, position } = cursor(marked);
  scratch += 1;
  const uri = server.open(`${SCRATCH_DIR}/26-completion-${scratch}.policy`, text + "\n");
  return server.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position });
}

/** The items a client sees once it applied the list's defaults and resolved every item, in the plain shape. */
async function expanded(server: ServerSession, answer: CompletionItem[] | CompletionList | null): Promise<CompletionItem[]> {
  const list = Array.isArray(answer) ? { items: answer } : (answer ?? { items: [] });
  const editRange = (list as CompletionList).itemDefaults?.editRange as Range | undefined;
  const out: CompletionItem[] = [];
  for (const item of list.items) {
    const resolved = item.data !== undefined ? await server.connection.sendRequest(CompletionResolveRequest.type, item) : item;
    const { data: _data, textEditText, insertTextFormat: _format, ...rest } = resolved;
    const full: CompletionItem = { ...rest, filterText: rest.filterText ?? rest.label };
    if (!full.textEdit) full.textEdit = { range: editRange!, newText: textEditText ?? rest.label };
    out.push(full);
  }
  return out;
}

// Each case: a line with the cursor `$0`, covering every column and every item kind with documentation.
const CASES: Array<[string, string]> = [
  ["service column", "qubes.$0"],
  ["empty line (services and directives)", "$0"],
  ["argument column", "qubes.StartApp  $0"],
  ["source column", "qubes.Filecopy  *  $0"],
  ["target column", "qubes.Filecopy  *  work  $0"],
  ["a tag", "qubes.Filecopy  *  @tag:$0"],
  ["action column", "qubes.Filecopy  *  work  vault  $0"],
  ["ask parameters", "qubes.Filecopy  *  work  vault  ask  $0"],
  ["a parameter key before its value", "qubes.Filecopy  *  work  vault  ask  tar$0get=@dispvm:x"],
  ["target= value", "qubes.Filecopy  *  work  @default  ask  target=$0"],
  ["notify= value", "qubes.Filecopy  *  work  vault  ask  notify=$0"],
  ["a directive", "!inc$0"],
  ["a comment", "# qubes.$0"],
];

describe("completion to a client that resolves and takes list defaults", () => {
  it("announces resolve", () => {
    expect(lean.initializeResult.capabilities.completionProvider?.resolveProvider).toBe(true);
  });

  it.each(CASES)("%s: the same items as a plain client's, once defaults are applied and items resolved", async (_name, marked) => {
    const [full, small] = await Promise.all([completion(plain, marked), completion(lean, marked)]);
    expect(Array.isArray(full)).toBe(true);
    const fullItems = (full as CompletionItem[]).map(({ insertTextFormat: _f, ...rest }) => ({ ...rest, filterText: rest.filterText ?? rest.label }));
    expect(await expanded(lean, small)).toEqual(fullItems);
    // Nothing in the lean items is the default or documentation.
    const items = Array.isArray(small) ? small : (small?.items ?? []);
    for (const item of items) {
      expect(item.documentation).toBeUndefined();
      expect(item.insertTextFormat).toBeUndefined();
      if (item.filterText !== undefined) expect(item.filterText).not.toBe(item.label);
      if (item.textEditText !== undefined) expect(item.textEditText).not.toBe(item.label);
    }
    if (items.length) {
      expect(Array.isArray(small)).toBe(false);
      expect((small as CompletionList).itemDefaults?.editRange).toBeDefined();
    }
  });

  it("resolve gives an action its documentation and keeps the detail", async () => {
    const answer = (await completion(lean, "qubes.Filecopy  *  work  vault  $0")) as CompletionList;
    const allow = answer.items.find((i) => i.label === "allow")!;
    expect(allow.detail).toBe("action");
    expect(allow.documentation).toBeUndefined();
    const resolved = await lean.connection.sendRequest(CompletionResolveRequest.type, allow);
    expect(resolved.documentation).toMatchObject({ kind: MarkupKind.Markdown });
    expect((resolved.documentation as { value: string }).value.length).toBeGreaterThan(0);
    expect(resolved).toMatchObject({ label: "allow", detail: "action" });
  });

  it("resolve of an item it does not know, or of a malformed one, answers the item as it is", async () => {
    const odd: CompletionItem[] = [
      { label: "work" },
      { label: "x", data: { doc: 1e9 } },
      { label: "x", data: { doc: -1 } },
      { label: "x", data: { doc: 1.5 } },
      { label: "x", data: "doc" },
      { label: "x", data: null },
      { label: "x", documentation: "mine", data: { doc: 0 } },
    ];
    for (const item of odd) expect(await lean.connection.sendRequest(CompletionResolveRequest.type, item)).toEqual(item);
    await expect(lean.connection.sendRequest("completionItem/resolve", 42)).rejects.toThrow(/parameters must be an object/);
    expect(lean.exited()).toBe(false);
  });
});
