/**
 * `expect:` entries (what-if assertions), in both forms:
 *
 * - a string: `qubes.Gpg2 work @default => ask vault-gpg` (service with an
 *   optional `+ARG`, source, target (an optional `->` between them), `=>`, the
 *   decision, and for `allow`/`ask` optionally the target it resolves to /
 *   the default target);
 * - a mapping: `{ call: "qubes.Gpg2 work -> @default", decision: ask,
 *   target: vault-gpg, targets_include: [vault-gpg] }`.
 *
 * {@link formatExpectation} prints the string form back (when the entry has
 * no target lists), and parse(format(e)) gives `e` again.
 */
import type { Span } from "../diagnostics.js";
import type { Expectation } from "./model.js";

/** The mapping form of an expectation. */
export interface ExpectationObject {
  call: string;
  decision: string;
  target?: string;
  targets_include?: string[];
  targets_exact?: string[];
}

/** The outcome of {@link parseExpectation}: offsets are within the string (or the `call` string). */
export type ExpectationResult =
  | { ok: true; expectation: Expectation }
  | { ok: false; message: string; span: Span; key?: keyof ExpectationObject; help?: string };

const DECISIONS = ["allow", "ask", "deny"] as const;
const SERVICE = /^[A-Za-z0-9_.-]+$/;
const ARGUMENT = /^[A-Za-z0-9_.+-]*$/;
const NAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;

/** A request source: a qube name, `dom0` or `@adminvm`. */
export function expectationSourceError(token: string): string | undefined {
  if (token === "@adminvm" || NAME.test(token)) return undefined;
  return `invalid source: ${token} (a request comes from one qube: write its name)`;
}

/** A request target: a qube name, `@default`, `@adminvm`, `@dispvm` or `@dispvm:NAME`. */
export function expectationTargetError(token: string): string | undefined {
  if (token === "@default" || token === "@adminvm" || token === "@dispvm" || NAME.test(token)) return undefined;
  if (token.startsWith("@dispvm:") && NAME.test(token.slice(8))) return undefined;
  return `invalid target: ${token} (a qube name, @default, @adminvm, @dispvm or @dispvm:NAME)`;
}

interface Word {
  text: string;
  start: number;
}

function words(s: string): Word[] {
  const out: Word[] = [];
  const re = /\S+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) out.push({ text: m[0], start: m.index });
  return out;
}

const span = (w: Word | undefined, s: string): Span => (w ? { start: w.start, end: w.start + w.text.length } : { start: s.length, end: s.length });

/** Parses the call part: `SERVICE[+ARG] SOURCE [->] TARGET`. */
function parseCall(s: string, ws: Word[]): { service: string; argument: string; source: string; target: string } | { message: string; span: Span; help?: string } {
  const parts = ws.filter((w) => w.text !== "->");
  const arrows = ws.filter((w) => w.text === "->");
  if (arrows.length > 1) return { message: "more than one -> in the call", span: span(arrows[1], s) };
  if (parts.length < 3) return { message: "the call needs a service, a source and a target", span: { start: 0, end: s.length }, help: "write `SERVICE SOURCE -> TARGET`, e.g. `qubes.Filecopy work -> vault`" };
  if (parts.length > 3) return { message: `unexpected word after the target: ${parts[3]!.text}`, span: span(parts[3], s) };
  const [svc, src, tgt] = parts as [Word, Word, Word];
  const plus = svc.text.indexOf("+");
  const service = plus < 0 ? svc.text : svc.text.slice(0, plus);
  const argument = plus < 0 ? "" : svc.text.slice(plus);
  if (!SERVICE.test(service)) return { message: `invalid service name: ${service || "(empty)"}`, span: span(svc, s), help: "a request names one service (no wildcards)" };
  if (!ARGUMENT.test(argument.slice(1))) return { message: `invalid argument: ${argument}`, span: span(svc, s) };
  const se = expectationSourceError(src.text);
  if (se) return { message: se, span: span(src, s) };
  const te = expectationTargetError(tgt.text);
  if (te) return { message: te, span: span(tgt, s) };
  if (arrows.length === 1 && !(arrows[0]!.start > src.start && arrows[0]!.start < tgt.start)) return { message: "-> belongs between the source and the target", span: span(arrows[0], s) };
  return { service, argument, source: src.text, target: tgt.text };
}

/** Parses an expectation in either form. Never throws. */
export function parseExpectation(input: string | ExpectationObject): ExpectationResult {
  if (typeof input === "string") return parseString(input);
  if (input === null || typeof input !== "object") return { ok: false, message: "an expectation is a string or a mapping with call and decision", span: { start: 0, end: 0 } };
  if (typeof input.call !== "string") return { ok: false, message: "call is required: a string `SERVICE SOURCE -> TARGET`", span: { start: 0, end: 0 }, key: "call" };
  const ws = words(input.call);
  const c = parseCall(input.call, ws);
  if ("message" in c) return { ok: false, message: c.message, span: c.span, key: "call", ...(c.help ? { help: c.help } : {}) };
  const decision = input.decision;
  if (typeof decision !== "string" || !(DECISIONS as readonly string[]).includes(decision))
    return {
      ok: false,
      message: decision === undefined || decision === null ? "decision is required: allow, ask or deny" : `invalid decision: ${typeof decision === "string" ? decision : JSON.stringify(decision)} (allow, ask or deny)`,
      span: { start: 0, end: 0 },
      key: "decision",
    };
  const e: Expectation = { ...c, decision: decision as Expectation["decision"] };
  if (input.target !== undefined) {
    if (decision === "deny") return { ok: false, message: "a denied call has no target", span: { start: 0, end: 0 }, key: "target" };
    const te = typeof input.target === "string" ? expectationTargetError(input.target) : "target must be a string";
    if (te || input.target === "@default") return { ok: false, message: te ?? "the resolved target cannot be @default", span: { start: 0, end: 0 }, key: "target" };
    e.target_is = input.target;
  }
  for (const key of ["targets_include", "targets_exact"] as const) {
    const list = input[key];
    if (list === undefined) continue;
    if (decision !== "ask") return { ok: false, message: `${key} applies to ask only`, span: { start: 0, end: 0 }, key };
    if (!Array.isArray(list) || list.some((t) => typeof t !== "string" || expectationTargetError(t) !== undefined))
      return { ok: false, message: `${key} must be a list of qube names`, span: { start: 0, end: 0 }, key };
    e[key] = [...list];
  }
  return { ok: true, expectation: e };
}

function parseString(s: string): ExpectationResult {
  const ws = words(s);
  const arrowAt = ws.findIndex((w) => w.text === "=>");
  if (arrowAt < 0) return { ok: false, message: "missing => and the expected decision", span: { start: 0, end: s.length }, help: "write `SERVICE SOURCE TARGET => allow|ask|deny [TARGET]`" };
  const callWords = ws.slice(0, arrowAt);
  const callText = s;
  const c = parseCall(callText, callWords);
  if ("message" in c) return { ok: false, message: c.message, span: c.span, ...(c.help ? { help: c.help } : {}) };
  const rest = ws.slice(arrowAt + 1);
  const d = rest[0];
  if (!d || !(DECISIONS as readonly string[]).includes(d.text))
    return { ok: false, message: `invalid decision: ${d?.text ?? "(missing)"} (allow, ask or deny)`, span: span(d ?? ws[arrowAt], s) };
  const e: Expectation = { ...c, decision: d.text as Expectation["decision"] };
  const t = rest[1];
  if (t) {
    if (e.decision === "deny") return { ok: false, message: `a denied call has no target: ${t.text}`, span: span(t, s) };
    const te = expectationTargetError(t.text);
    if (te || t.text === "@default") return { ok: false, message: te ?? "the resolved target cannot be @default", span: span(t, s) };
    e.target_is = t.text;
  }
  if (rest.length > 2) return { ok: false, message: `unexpected word: ${rest[2]!.text}`, span: span(rest[2], s), help: "use the mapping form for targets_include / targets_exact" };
  return { ok: true, expectation: e };
}

/** The call part of an expectation: `SERVICE[+ARG] SOURCE -> TARGET`. */
export function formatCall(e: Pick<Expectation, "service" | "argument" | "source" | "target">): string {
  return `${e.service}${e.argument} ${e.source} -> ${e.target}`;
}

/** An expectation in the string form (target lists, which the string form cannot hold, are left out: use {@link expectationToObject}). */
export function formatExpectation(e: Expectation): string {
  return `${formatCall(e)} => ${e.decision}${e.target_is ? ` ${e.target_is}` : ""}`;
}

/** An expectation in the mapping form (keeps everything). */
export function expectationToObject(e: Expectation): ExpectationObject {
  const o: ExpectationObject = { call: formatCall(e), decision: e.decision };
  if (e.target_is !== undefined) o.target = e.target_is;
  if (e.targets_include) o.targets_include = [...e.targets_include];
  if (e.targets_exact) o.targets_exact = [...e.targets_exact];
  return o;
}
