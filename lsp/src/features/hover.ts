/** Hover: the word's meaning and the help of the diagnostics under the cursor, from the last snapshot. */
import { MarkupKind, type Hover, type HoverParams } from "vscode-languageserver";
import { hover } from "@qubes-kit/language";
import { toRange } from "../convert.js";
import type { ServerFeature } from "./types.js";

export const hoverFeature: ServerFeature = {
  name: "hover",
  capabilities: () => ({ hoverProvider: true }),
  requests: (ctx) => [
    {
      method: "textDocument/hover",
      fallback: null,
      params: "position",
      run(params: HoverParams): Hover | null {
        const f = ctx.featureFor(params.textDocument.uri);
        if (f) return f.hover(params);
        const c = ctx.context(params.textDocument.uri);
        if (!c) return null;
        // The last finished snapshot, at once: hover never waits for an analysis.
        const snapshot = c.project.lastSnapshot();
        const h = hover(c.doc, c.td.offsetAt(params.position), { ...(snapshot ? { snapshot } : {}), path: c.path });
        if (!h) return null;
        // Diagnostics' help text is shown with the hover of their span.
        const offset = c.td.offsetAt(params.position);
        const helps = (snapshot?.diagnostics.get(c.path) ?? []).filter((d) => d.help && d.span.start <= offset && offset <= d.span.end).map((d) => `*${d.code}*: ${d.help}`);
        return { contents: { kind: MarkupKind.Markdown, value: [h.markdown, ...helps].join("\n\n") }, range: toRange(c.td, h.span) };
      },
    },
  ],
};
