/**
 * Rename a qube or a tag across every file of the policy: the name is checked
 * with the engine's own rules (`qubes.vm.validate_name`, the tag characters
 * qubesd accepts), and a rename onto a qube that already exists is refused
 * with qubesd's wording. Stack files (`*.qubes.yaml`) add their own
 * occurrences through `template/services/rename.ts`.
 */
import type { Span } from "../diagnostics.js";
import { qubeNameError, TAG_PATTERN } from "../qubes/properties.js";
import type { PolicyDocument } from "../syntax/tree.js";
import type { TextEdit } from "./format.js";
import { findReferences, symbolAt, type FileLocation } from "./navigation.js";
import type { PolicySnapshot } from "./workspace.js";

/** What a rename can change. */
export interface RenameTarget {
  kind: "qube" | "tag";
  name: string;
  /** The span of the name under the cursor (without `@tag:` or `@dispvm:`). */
  span: Span;
}

/** A refusal: a stable code and a one-line message. */
export interface RenameRefusal {
  code: "rename-not-a-name" | "rename-builtin" | "invalid-qube-name" | "invalid-tag-name" | "qube-exists" | "name-in-use" | "rename-unchanged";
  message: string;
}

/** The name under the cursor that can be renamed, or why nothing can be. */
export function prepareRename(
  doc: PolicyDocument,
  offset: number,
  ctx: { snapshot?: PolicySnapshot; path?: string } = {},
): RenameTarget | RenameRefusal {
  const at = symbolAt(doc, offset, ctx);
  if (!at) return { code: "rename-not-a-name", message: "only a qube name or a tag can be renamed here; put the cursor on one" };
  return renameTargetOf(at.ref.kind, at.ref.kind === "file" ? "" : at.ref.name, at.span, doc.text.slice(at.span.start, at.span.end));
}

/** The rename target of a symbol (any source: policy or stack file). */
export function renameTargetOf(kind: string, name: string, span: Span, written: string): RenameTarget | RenameRefusal {
  if (kind === "type") return { code: "rename-builtin", message: `\`@type:${name}\` names a qube class of Qubes OS; classes cannot be renamed` };
  if (kind === "service") return { code: "rename-not-a-name", message: `\`${name}\` is a service; only qube names and tags can be renamed` };
  if (kind !== "qube" && kind !== "tag") return { code: "rename-not-a-name", message: "only a qube name or a tag can be renamed here; put the cursor on one" };
  // dom0 is spelled in several ways (`dom0`, `@adminvm`) and cannot be renamed on a Qubes system.
  if (kind === "qube" && (name === "dom0" || written !== name)) {
    return { code: "rename-builtin", message: "dom0 (the admin qube) cannot be renamed" };
  }
  return { kind, name, span };
}

/** True when `r` is a refusal. */
export function isRenameRefusal(r: RenameTarget | RenameRefusal): r is RenameRefusal {
  return "code" in r;
}

/**
 * Why `newName` cannot replace the target, or `undefined` when it can.
 * `existing` lists qube names that already exist (the system model, the
 * qubes a stack declares); `inPolicy` says whether the new name already
 * occurs in the policy (a rename onto it would merge two names).
 */
export function renameError(
  target: Pick<RenameTarget, "kind" | "name">,
  newName: string,
  ctx: { existing?: Iterable<string>; inPolicy?: boolean } = {},
): RenameRefusal | undefined {
  if (newName === target.name) return { code: "rename-unchanged", message: `the new name is the same as the old one (\`${newName}\`)` };
  if (target.kind === "qube") {
    const err = qubeNameError(newName);
    if (err) return { code: "invalid-qube-name", message: `${err} (\`${newName}\`): choose another name` };
    for (const q of ctx.existing ?? []) {
      if (q === newName) return { code: "qube-exists", message: `Qube already exists: ${newName} (choose a name no qube has)` };
    }
    if (ctx.inPolicy) return { code: "name-in-use", message: `\`${newName}\` is already named in the policy; renaming onto it would merge two qubes` };
    return undefined;
  }
  if (!TAG_PATTERN.test(newName)) return { code: "invalid-tag-name", message: `Invalid character in tag (\`${newName}\`): use letters, digits, \`-\` and \`_\`` };
  return undefined;
}

/**
 * The policy's part of a rename: an edit at every occurrence of the name in
 * the policy's files (plus `extra`, usually the open document). Edits are
 * grouped by path and sorted.
 */
export function renameEdits(
  target: Pick<RenameTarget, "kind" | "name">,
  newName: string,
  snapshot: PolicySnapshot,
  extra?: { path: string; document: PolicyDocument },
): Record<string, TextEdit[]> {
  return groupEdits(findReferences({ kind: target.kind, name: target.name }, snapshot, extra), newName);
}

/** Edits replacing each location with `newText`, grouped by path, without duplicates. */
export function groupEdits(locations: readonly FileLocation[], newText: string): Record<string, TextEdit[]> {
  const out: Record<string, TextEdit[]> = {};
  for (const l of locations) {
    const list = (out[l.path] ??= []);
    if (list.some((e) => e.span.start === l.span.start)) continue;
    list.push({ span: l.span, newText });
  }
  for (const list of Object.values(out)) list.sort((a, b) => a.span.start - b.span.start);
  return out;
}
