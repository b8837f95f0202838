/**
 * The names an editor can offer: qubes, tags, types and disposable templates
 * from the system model, plus everything the policy itself mentions.
 * Computed once per {@link PolicySnapshot} and cached.
 */
import type { PolicySnapshot } from "./workspace.js";
import { STANDARD_SERVICES, STANDARD_TYPES } from "./catalog.js";
import { dispvmTemplates, systemQubes, systemTags, systemTypes } from "./describe.js";
import { isDom0ish } from "./util.js";
import { pyTruthy } from "../syntax/python.js";
import type { PolicyDocument, QubeToken } from "../syntax/tree.js";

/** Names known to the editor, each with where it comes from. */
export interface Vocabulary {
  /** Qube name → detail (its type in the system model, or `seen in the policy`). */
  qubes: Map<string, string>;
  tags: Map<string, string>;
  types: Map<string, string>;
  dispvmTemplates: Map<string, string>;
  /** Service → arguments (with `+`). */
  services: Map<string, Set<string>>;
}

const cache = new WeakMap<PolicySnapshot, Vocabulary>();

/** Lines, tokens or arguments per step of {@link vocabularySteps}. */
const STEP = 2048;

/**
 * The qube tokens of a document's valid rules (source, target, `target=`, `default_target=`),
 * each kind and text once, in order of first appearance: what the document adds to the
 * vocabulary. Made once per parsed document, so a new snapshot pays only for edited documents.
 */
const documentTokens = new WeakMap<PolicyDocument, QubeToken[]>();
function* tokensSteps(doc: PolicyDocument): Generator<void, QubeToken[], void> {
  let out = documentTokens.get(doc);
  if (out) return out;
  const found: QubeToken[] = [];
  const seen = new Set<string>();
  // Tokens are shared within a parse (one object per kind and text), so most repeats are caught by identity.
  const seenObjects = new Set<QubeToken>();
  const add = (t: QubeToken | null) => {
    if (!t || seenObjects.has(t)) return;
    seenObjects.add(t);
    const key = `${t.kind}\u0001${t.text}`;
    if (seen.has(key)) return;
    seen.add(key);
    found.push(t);
  };
  const lines = doc.lines;
  for (let i = 0; i < lines.length; i++) {
    if (i % STEP === STEP - 1) yield;
    const line = lines[i]!;
    if (line.kind !== "rule" || !line.rule) continue;
    add(line.rule.source);
    add(line.rule.target);
    add(line.rule.redirect);
    add(line.rule.defaultTarget);
  }
  // Made meanwhile by another caller: the first one stays (they are equal).
  out = documentTokens.get(doc) ?? found;
  documentTokens.set(doc, out);
  return out;
}

/** Runs steps to their end at once. */
function finish<T>(steps: Generator<void, T, void>): T {
  for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
}

/** The vocabulary of a snapshot (cached). */
export function vocabulary(snapshot: PolicySnapshot | undefined): Vocabulary {
  return finish(vocabularySteps(snapshot));
}

/**
 * {@link vocabulary} in short steps (a few thousand lines, tokens or arguments each), for a
 * caller that spreads the work over several turns of the event loop; cached alike, and the
 * same vocabulary as `vocabulary(snapshot)`.
 */
export function* vocabularySteps(snapshot: PolicySnapshot | undefined): Generator<void, Vocabulary, void> {
  if (snapshot) {
    const hit = cache.get(snapshot);
    if (hit) return hit;
  }
  const v: Vocabulary = { qubes: new Map(), tags: new Map(), types: new Map(), dispvmTemplates: new Map(), services: new Map() };
  for (const s of STANDARD_SERVICES) v.services.set(s.name, new Set(s.arguments ?? []));
  for (const t of STANDARD_TYPES) v.types.set(t, "Qubes qube type");
  const system = snapshot?.system;
  if (system) {
    for (const name of systemQubes(system)) {
      const info = system.domains.get(name)!;
      // Internal qubes (`default-mgmt-dvm`, preloaded disposables) are never offered: the
      // engine does not let a policy call them by name through `@anyvm`, and users never mean them.
      if (pyTruthy(info.internal)) continue;
      const bits = [typeof info.type === "string" ? info.type : "qube"];
      if (Array.isArray(info.tags) && info.tags.length) bits.push(`tags: ${info.tags.join(", ")}`);
      v.qubes.set(name, bits.join(" · "));
    }
    for (const t of systemTags(system)) v.tags.set(t, "tag in the system model");
    for (const t of systemTypes(system)) v.types.set(t, "type in the system model");
    for (const t of dispvmTemplates(system)) v.dispvmTemplates.set(t, "disposable template");
    yield;
  }
  if (snapshot) {
    const seenToken = (t: QubeToken) => {
      if (t.kind === "name" && !isDom0ish(t.text) && !v.qubes.has(t.text)) v.qubes.set(t.text, "seen in the policy");
      else if (t.kind === "tag" && !v.tags.has(t.value)) v.tags.set(t.value, "seen in the policy");
      else if (t.kind === "type" && !v.types.has(t.value)) v.types.set(t.value, "seen in the policy");
      else if (t.kind === "dispvm-template" && !v.dispvmTemplates.has(t.value) && !system) v.dispvmTemplates.set(t.value, "seen in the policy");
    };
    let n = 0;
    for (const path of snapshot.files.keys()) {
      const doc = snapshot.document(path);
      if (!doc) continue;
      // The first appearance of each token decides (later ones change nothing).
      const tokens = yield* tokensSteps(doc);
      for (const t of tokens) {
        seenToken(t);
        if (++n % STEP === 0) yield;
      }
    }
    // Snapshots made by other means than `analyzeWorkspace` may lack the steps.
    const services = snapshot.servicesSteps ? yield* snapshot.servicesSteps() : snapshot.services;
    n = 0;
    for (const [svc, args] of services) {
      let set = v.services.get(svc);
      if (!set) v.services.set(svc, (set = new Set()));
      for (const a of args) set.add(a);
      n += 1 + args.size;
      if (n >= STEP) {
        n = 0;
        yield;
      }
    }
  }
  if (snapshot) {
    // Made meanwhile by another caller: the first one stays (they are equal), so callers share one.
    const made = cache.get(snapshot);
    if (made) return made;
    cache.set(snapshot, v);
  }
  return v;
}
