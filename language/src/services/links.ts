/**
 * Document links: the paths of `!include`, `!include-dir` and
 * `!include-service` (and legacy `$include:`) resolved the way the daemon
 * resolves them, so an editor can open the included file or folder.
 */
import type { Span } from "../diagnostics.js";
import type { PolicyDocument } from "../syntax/tree.js";
import { resolveIncludePath } from "./navigation.js";
import type { PolicySnapshot } from "./workspace.js";

/** A link from a span to an absolute path. */
export interface DocumentLink {
  span: Span;
  /** The resolved absolute path. */
  target: string;
  /** `file` or `dir` as the file system says (links to a missing path are not given). */
  kind: "file" | "dir";
  /** One line for the editor's tooltip. */
  tooltip: string;
}

/** The include paths of a document that resolve to a file or a folder. Never throws. */
export function documentLinks(doc: PolicyDocument, path: string, snapshot: PolicySnapshot): DocumentLink[] {
  const out: DocumentLink[] = [];
  for (const line of doc.lines) {
    if (line.kind !== "directive" || !line.directive || line.directive === "compat-4.0") continue;
    const last = line.params[line.params.length - 1];
    if (!last || (line.directive === "include-service" && line.params.length !== 3)) continue;
    let target: string;
    let kind: ReturnType<PolicySnapshot["fs"]["stat"]>;
    try {
      target = resolveIncludePath(snapshot, path, last.text);
      kind = snapshot.fs.stat(target);
    } catch {
      continue;
    }
    if (kind !== "file" && kind !== "dir") continue;
    const what = line.directive === "include-dir" ? "the folder whose *.policy files are included" : line.directive === "include-service" ? "the legacy file included for this service" : "the included file";
    out.push({ span: last.span, target, kind, tooltip: `open ${what}: ${target}` });
  }
  return out;
}
