/**
 * What `qkit policy eval` and `explain` share about the calls they
 * decide: the policy as loaded for them, the decision line of a policy that
 * does not load, and the warnings about a request (names that are not qubes
 * of the system model, with a "did you mean", and an argument without its
 * `+`), computed once a name for a stream of requests.
 */
import { decisionToJson, loadPolicy, requestNamesKnown, type CompiledPolicy, type LoadResult, type PolicyError, type PolicyRequest, type SystemInfo } from "@qubes-kit/language/engine";
import { didYouMean } from "./text.js";
import type { PolicySource } from "./policy.js";

/** A policy loaded for deciding calls, and where it was read. */
export interface Loaded {
  policy: CompiledPolicy;
  src: PolicySource;
}

/**
 * Loads the policy. With `service` (one request to decide), only the rules
 * that can decide a call to it are built; the whole policy is still
 * validated, so a broken policy denies exactly as before.
 */
export function loadForEval(src: PolicySource, service?: string): Loaded | { error: LoadResult & { ok: false }; src: PolicySource } {
  const r = loadPolicy(src.fs, service === undefined ? {} : { service });
  if (!r.ok) return { error: r, src };
  return { policy: r.policy, src };
}

/** A load failure as a decision line, in the corpus format (as `--cases` prints it). */
export function loadErrorJson(e: PolicyError): Record<string, unknown> {
  return decisionToJson({ ...e, ok: false, stage: "load" });
}

/** The warnings about a request: names that are not qubes of the system, an argument without `+`. */
export function requestWarnings(req: PolicyRequest, system: SystemInfo | undefined, systemFile: string | undefined, near?: NearQubes): string[] {
  const out: string[] = [];
  if (req.argument !== undefined && req.argument !== "" && !req.argument.startsWith("+")) {
    out.push(`argument \`${req.argument}\` has no leading \`+\`: the daemon always passes it as \`+${req.argument}\`, and the engine fails on it as given; did you mean \`+${req.argument}\`? [argument-without-plus]`);
  }
  if (!system || systemFile === undefined) return out;
  const known = (n: string) => system.domains.has(n);
  // A call always comes from a qube by its name: \`@anyvm\`, \`@tag:…\` and the like are never a source either.
  if (!known(req.source)) out.push(unknownQube("source", req.source, system, systemFile, near));
  const t = req.target ?? "";
  if (t !== "" && !t.startsWith("@") && !known(t)) out.push(unknownQube("target", t, system, systemFile, near));
  else if (unknownDispvmBase(t, system)) out.push(unknownQube("dispvm", t, system, systemFile, near));
  return out;
}

/** Whether `target` is `@dispvm:X` with X a name that is no qube of the system (the engine refuses the call). */
function unknownDispvmBase(target: string, system: SystemInfo): boolean {
  if (!target.startsWith("@dispvm:")) return false;
  const base = target.slice("@dispvm:".length);
  return base !== "" && !base.startsWith("@") && !system.domains.has(base);
}

/** The warning about a source or target that is not a qube of the system (kept in `near` for a stream: names repeat). */
function unknownQube(role: "source" | "target" | "dispvm", name: string, system: SystemInfo, systemFile: string, near?: NearQubes): string {
  const key = role === "source" ? "s" + name : "t" + name;
  let w = near?.said.get(key);
  if (w === undefined) {
    if (role === "dispvm") {
      const base = name.slice("@dispvm:".length);
      w = `target \`${name}\`: \`${base}\` is not a qube of the system in \`${systemFile}\`, so the engine refuses the call; check the name${nearQube(base, system, near)} [unknown-qube]`;
    } else {
      const what = role === "source" ? "the daemon never receives a call from it; check the name" : "the daemon treats it as @default";
      w = `${role} \`${name}\` is not a qube of the system in \`${systemFile}\`: ${what}${nearQube(name, system, near)} [unknown-qube]`;
    }
    if (near) {
      // Bounded: a memo for repeated names, not a store of every name ever seen.
      if (near.said.size >= 4096) near.said.clear();
      near.said.set(key, w);
    }
  }
  return w;
}

/**
 * Whether {@link requestWarnings} has nothing to say (the common case of a
 * stream, checked without allocating), asked right after the request is
 * decided: whether its source and target are qubes of the system comes
 * from the evaluator, which has just looked both up (`requestNamesKnown`).
 */
export function quiet(req: PolicyRequest, system: SystemInfo | undefined, systemFile: string | undefined): boolean {
  const arg = req.argument;
  if (arg !== undefined && arg !== "" && arg.charCodeAt(0) !== 43) return false;
  if (!system || systemFile === undefined) return true;
  const known = requestNamesKnown(req, system);
  if ((known & 1) === 0) return false;
  const t = req.target ?? "";
  if (t === "") return true;
  if (t.charCodeAt(0) === 64) return !unknownDispvmBase(t, system);
  return (known & 2) !== 0;
}

/** For a stream: the "did you mean" of each unknown name, and the names it picks from (listed once, with their lower-cased lengths). */
export interface NearQubes {
  names: QubeNames | undefined;
  memo: Map<string, string>;
  /** The warnings about unknown names, by role and name (see `unknownQube`). */
  said: Map<string, string>;
}

/** The "did you mean" of an unknown qube name; `near` keeps them for a stream of requests (they repeat). */
function nearQube(name: string, system: SystemInfo, near?: NearQubes): string {
  let s = near?.memo.get(name);
  if (s === undefined) {
    s = didYouMean(name, near ? plausible(name, (near.names ??= qubeNamesIndex(qubeNames(system)))) : qubeNames(system));
    // Bounded: a memo for repeated names, not a store of every name ever seen.
    if (near) {
      if (near.memo.size >= 4096) near.memo.clear();
      near.memo.set(name, s);
    }
  }
  return s;
}

/**
 * The qube names {@link plausible} picks from: in their order, and indexed
 * so that a word's candidates are found without reading every name (a
 * stream can have a thousand unknown names, each read against every qube:
 * on a stream's first lines, before that loop is optimised, that cost more
 * than deciding the requests).
 */
interface QubeNames {
  names: string[];
  /** Per lower-cased length: the indices of the names of that length, ascending. */
  byLength: Map<number, number[]>;
  /** The indices in the order of the names' code units: the names that start with a word are one run of it. */
  sorted: number[];
}

function qubeNamesIndex(names: string[]): QubeNames {
  const byLength = new Map<number, number[]>();
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!.toLowerCase().length;
    const ids = byLength.get(n);
    if (ids === undefined) byLength.set(n, [i]);
    else ids.push(i);
  }
  const sorted = names.map((_, i) => i).sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
  return { names, byLength, sorted };
}

/**
 * The names `suggest` (cli/text.ts) could propose for `word`, in order: it
 * proposes a name within an edit distance of a third of the word's length
 * (at least 1), which needs lower-cased lengths that close, or a name that
 * starts with the word. The others are left out before it measures any
 * distance (the answer is the same, reached without them): the names of
 * each length close enough, and the run of names that start with the word.
 */
function plausible(word: string, q: QubeNames): string[] {
  const limit = Math.max(1, Math.floor(word.length / 3));
  const w = word.toLowerCase().length;
  const { names, sorted } = q;
  const picked: number[] = [];
  for (let n = Math.max(0, w - limit); n <= w + limit; n++) {
    const ids = q.byLength.get(n);
    if (ids !== undefined) for (const i of ids) picked.push(i);
  }
  // The first name not before `word`: where the names that start with it begin.
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[sorted[mid]!]! < word) lo = mid + 1;
    else hi = mid;
  }
  for (let k = lo; k < sorted.length && names[sorted[k]!]!.startsWith(word); k++) picked.push(sorted[k]!);
  picked.sort((a, b) => a - b);
  const out: string[] = [];
  for (let k = 0; k < picked.length; k++) if (k === 0 || picked[k] !== picked[k - 1]) out.push(names[picked[k]!]!);
  return out;
}

function qubeNames(system: SystemInfo): string[] {
  return [...system.domains.keys()].filter((k) => !k.startsWith("uuid:"));
}
