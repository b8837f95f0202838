/**
 * Signature help for an action's parameters: once the action word of a rule
 * is written, the parameters that action accepts (`target=`, `default_target=`,
 * `user=`, `notify=`, `autostart=`) with the spec's meaning, the one under the
 * cursor active.
 */
import type { PolicyDocument, ActionName } from "../syntax/tree.js";
import { ACTIONS, paramsFor } from "./catalog.js";
import { lineAt } from "./util.js";

/** One parameter of the signature: its label's offsets inside the signature label. */
export interface SignatureParameter {
  label: [number, number];
  documentation: string;
}

/** The signature of the action at the cursor. */
export interface SignatureHelp {
  label: string;
  documentation: string;
  parameters: SignatureParameter[];
  /** The index of the parameter under the cursor (or the next one to write); `-1` when none. */
  activeParameter: number;
}

const VALUE: Record<string, string> = { target: "QUBE", default_target: "QUBE", user: "USER" };

/** The signature help at `offset`, when it is in a rule's parameters (after its action). Never throws. */
export function signatureHelp(doc: PolicyDocument, offset: number): SignatureHelp | undefined {
  const line = lineAt(doc, offset);
  if (!line || line.kind !== "rule" || !line.actionWord) return undefined;
  const actionWord = line.actionWord;
  // Legacy syntax joins the parameters to the action with commas: `allow,target=x`.
  const actionText = actionWord.text.split(",")[0]!;
  if (actionText !== "allow" && actionText !== "deny" && actionText !== "ask") return undefined;
  const action: ActionName = actionText;
  // In the parameters: after the action's own word (past its end), or inside a legacy `allow,…` word after the comma.
  const inLegacyWord = actionWord.text.includes(",") && offset > actionWord.span.start + actionText.length;
  if (offset <= actionWord.span.end && !inLegacyWord) return undefined;
  if (offset > line.span.end && doc.text.slice(line.span.end, offset).includes("#")) return undefined;
  const params = paramsFor(action);
  let label = action;
  const parameters: SignatureParameter[] = [];
  for (const p of params) {
    label += " ";
    const text = `${p.key}=${p.values ? p.values.join("|") : (VALUE[p.key] ?? "VALUE")}`;
    parameters.push({ label: [label.length, label.length + text.length], documentation: `\`${p.key}=\`: ${p.description}` });
    label += text;
  }
  // The word under the cursor (its key, possibly half typed), else the first parameter not written yet.
  const text = doc.text;
  let s = offset;
  while (s > line.span.start && !/[\s,]/.test(text[s - 1]!)) s--;
  const typed = text.slice(s, offset);
  const key = typed.includes("=") ? typed.slice(0, typed.indexOf("=")) : typed;
  let active = -1;
  if (key) active = params.findIndex((p) => (typed.includes("=") ? p.key === key : p.key.startsWith(key)));
  if (active < 0 && !key) {
    const written = new Set(line.params.map((p) => p.key));
    active = params.findIndex((p) => !written.has(p.key));
  }
  return { label, documentation: ACTIONS[action], parameters, activeParameter: active };
}
