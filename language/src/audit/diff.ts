/**
 * The exact semantic diff of two policies over the request space of a system
 * (see `space.ts`): every request whose decision changes. A change is a
 * different action, a different allow target, or a different set of ask
 * targets; a refusal by the engine counts as deny, and a changed default
 * target alone is not a change.
 *
 * Computed per equivalence class of qubes: one representative request per
 * orbit (source class × target class, with "the source itself" and "another
 * qube of the same class" kept apart) is decided by both policies; only the
 * orbits of changed representatives are expanded, and their requests are
 * decided one by one so every reported decision is a real one. Services
 * whose applicable rules are the same in both policies (same rules in the
 * same order, positions aside) cannot change and are skipped.
 */
import { evaluate } from "../eval/evaluate.js";
import type { Decision, PolicyRequest, SystemInfo } from "../eval/types.js";
import type { CompiledPolicy } from "../loader/types.js";
import { printRule } from "../syntax/print.js";
import { pyCompare } from "../syntax/python.js";
import { qubeClasses, requestSpace, rulesFor, type RequestSpace } from "./space.js";

/** One request whose decision changes. */
export interface DecisionChange {
  /** As shown: `*` for the representative of the services (or arguments) no rule names. */
  service: string;
  argument: string;
  source: string;
  target: string;
  /** The service and argument as text: `qubes.Filecopy`, `qubes.StartApp+firefox`, `qubes.StartApp (other arguments)`, `every other service`. */
  call: string;
  /** The request as evaluated. */
  request: PolicyRequest;
  before: Decision;
  after: Decision;
}

/** The result of {@link diffPolicies}. */
export interface PolicyDiff {
  space: RequestSpace;
  /** The classes of qubes used. */
  classes: string[][];
  /** Every changed request, by service, argument, source, target. */
  changes: DecisionChange[];
  /** Representative requests decided (by each policy). */
  evaluated: number;
}

/** What counts for a difference: the action, the allow target, the set of ask targets. */
export function decisionKey(d: Decision): string {
  if (!d.ok || d.action === "deny") return "deny";
  if (d.action === "allow") return "allow\0" + d.target;
  return "ask\0" + d.targetsForAsk.join("\0");
}

/** Do two decisions differ in what the diff compares? */
export function decisionsDiffer(a: Decision, b: Decision): boolean {
  return decisionKey(a) !== decisionKey(b);
}

/** Options of {@link diffPolicies}. */
export interface DiffOptions {
  /** Decide every request of the space instead of one per class orbit (the reference; slow). */
  bruteForce?: boolean;
}

/**
 * Every request of the space of `system` whose decision differs between
 * `before` and `after`. Never throws.
 */
export function diffPolicies(before: CompiledPolicy, after: CompiledPolicy, system: SystemInfo, options: DiffOptions = {}): PolicyDiff {
  const space = requestSpace([before, after], system);
  const classes = options.bruteForce ? space.qubes.map((q) => [q]) : qubeClasses([before, after], system);
  const classOf = new Map<string, string[]>();
  for (const c of classes) for (const q of c) classOf.set(q, c);
  const templates = new Set(space.dispvmTemplates);
  const changes: DecisionChange[] = [];
  let evaluated = 0;
  for (const svc of space.services) {
    for (const arg of svc.arguments) {
      const same = sameRules(before, after, svc.service, arg.argument);
      if (same && !options.bruteForce) continue;
      const call =
        svc.display === "*" ? "every other service" : arg.display !== "*" ? svc.service + (arg.argument === "+" ? "+" : arg.argument) : svc.arguments.length === 1 ? svc.service : `${svc.service} (other arguments)`;
      const decide = (source: string, target: string) => {
        const request: PolicyRequest = { service: svc.service, argument: arg.argument, source, target };
        return { request, before: evaluate(before, request, system), after: evaluate(after, request, system) };
      };
      const record = (source: string, target: string, known?: ReturnType<typeof decide>) => {
        const r = known ?? decide(source, target);
        if (decisionsDiffer(r.before, r.after)) changes.push({ service: svc.display, argument: arg.display, call, source, target, ...r });
      };
      /** Decides the representative (s, t); when it changes, every request of its orbit. */
      const orbit = (s: string, t: string, members: () => Iterable<[string, string]>) => {
        evaluated++;
        const r = decide(s, t);
        if (!decisionsDiffer(r.before, r.after)) return;
        for (const [ms, mt] of members()) record(ms, mt, ms === s && mt === t ? r : undefined);
      };
      for (const cs of classes) {
        const s = cs[0]!;
        for (const special of ["@default", "@adminvm", "@dispvm"]) orbit(s, special, () => cs.map((q) => [q, special] as [string, string]));
        for (const ct of classes) {
          const kinds: ((q: string) => string)[] = [(q) => q];
          if (templates.has(ct[0]!)) kinds.push((q) => "@dispvm:" + q);
          for (const f of kinds) {
            if (ct !== cs) {
              orbit(s, f(ct[0]!), function* () {
                for (const a of cs) for (const b of ct) yield [a, f(b)];
              });
              continue;
            }
            orbit(s, f(s), () => cs.map((q) => [q, f(q)] as [string, string]));
            if (cs.length > 1) {
              orbit(s, f(cs[1]!), function* () {
                for (const a of cs) for (const b of cs) if (a !== b) yield [a, f(b)];
              });
            }
          }
        }
      }
    }
  }
  const order = new Map(space.targets.map((t, i) => [t, i] as const));
  const svcOrder = new Map<string, number>();
  space.services.forEach((s, i) => s.arguments.forEach((a, j) => svcOrder.set(s.service + "\0" + a.argument, i * 1e6 + j)));
  changes.sort(
    (a, b) =>
      svcOrder.get(a.request.service + "\0" + a.request.argument)! - svcOrder.get(b.request.service + "\0" + b.request.argument)! ||
      pyCompare(a.source, b.source) ||
      order.get(a.target)! - order.get(b.target)!,
  );
  return { space, classes, changes, evaluated };
}

function sameRules(a: CompiledPolicy, b: CompiledPolicy, service: string, argument: string): boolean {
  const ra = rulesFor(a, service, argument);
  const rb = rulesFor(b, service, argument);
  if (ra.length !== rb.length) return false;
  for (let i = 0; i < ra.length; i++) if (printRule(ra[i]!) !== printRule(rb[i]!)) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Grouping into statements
// ---------------------------------------------------------------------------

/** The side of a grouped change: the action, and what is the same for every request of the group. */
export interface GroupSide {
  action: "allow" | "ask" | "deny";
  /** allow: the resolved target when it is not simply the requested one. */
  target?: string;
  /** The deciding rule (`file:line`), or the engine's refusal message. */
  rule?: string;
  refusal?: string;
}

/** Changes of one kind, for a set of sources and targets. */
export interface ChangeGroup {
  kind: "grant" | "change" | "revoke";
  service: string;
  argument: string;
  call: string;
  sources: string[];
  targets: string[];
  before: GroupSide;
  after: GroupSide;
  /** For ask → ask: targets offered now and not before, and the reverse. */
  added?: string[];
  removed?: string[];
  /** The number of concrete requests. */
  requests: number;
  /** One line (`qubes.Filecopy from work: to vault: deny → allow (30-user.policy:4)`). */
  statement: string;
}

const RANK = { deny: 0, ask: 1, allow: 2 } as const;

function side(d: Decision, requested: string): GroupSide {
  if (!d.ok) return { action: "deny", refusal: d.message, ...(d.rule ? { rule: `${d.rule.file}:${d.rule.line ?? "None"}` } : {}) };
  const rule = `${d.rule.file}:${d.rule.line ?? "None"}`;
  if (d.action === "allow") return d.target === requested ? { action: "allow", rule } : { action: "allow", target: d.target, rule };
  return { action: d.action, rule };
}

function sideText(s: GroupSide): string {
  return s.action + (s.target !== undefined ? ` to ${s.target}` : "");
}

function listText(items: string[], max = 8): string {
  return items.length <= max ? items.join(", ") : `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

/**
 * Groups changes into statements: per service and argument, the requests
 * that change the same way (same actions, allow target, deciding rules, and
 * for ask → ask the same added and removed targets); sources with the same
 * changed targets are merged. Grants come first, then other changes, then
 * revocations.
 */
export function groupChanges(changes: readonly DecisionChange[], space?: RequestSpace): ChangeGroup[] {
  /** A list of qubes or targets, or "every … except" when that is shorter. */
  const phrase = (items: string[], all: readonly string[] | undefined, what: string) => {
    if (all && items.length > 8) {
      const have = new Set(items);
      const rest = all.filter((x) => !have.has(x));
      if (rest.length === 0) return `every ${what}`;
      if (rest.length <= 8 && rest.length < items.length) return `every ${what} except ${rest.join(", ")}`;
    }
    return listText(items);
  };
  const bySig = new Map<string, { g: Omit<ChangeGroup, "sources" | "targets" | "requests" | "statement">; bySource: Map<string, string[]> }>();
  for (const c of changes) {
    const before = side(c.before, c.target);
    const after = side(c.after, c.target);
    let kind: ChangeGroup["kind"];
    let added: string[] | undefined;
    let removed: string[] | undefined;
    if (RANK[after.action] > RANK[before.action]) kind = "grant";
    else if (RANK[after.action] < RANK[before.action]) kind = "revoke";
    else if (after.action === "ask" && c.before.ok && c.after.ok && c.before.action === "ask" && c.after.action === "ask") {
      const was = new Set(c.before.targetsForAsk);
      const now = new Set(c.after.targetsForAsk);
      added = c.after.targetsForAsk.filter((t) => !was.has(t));
      removed = c.before.targetsForAsk.filter((t) => !now.has(t));
      kind = removed.length === 0 ? "grant" : added.length === 0 ? "revoke" : "change";
    } else kind = "change";
    const g = { kind, service: c.service, argument: c.argument, call: c.call, before, after, ...(added ? { added, removed: removed! } : {}) };
    const key = JSON.stringify(g);
    let e = bySig.get(key);
    if (!e) bySig.set(key, (e = { g, bySource: new Map() }));
    let l = e.bySource.get(c.source);
    if (!l) e.bySource.set(c.source, (l = []));
    l.push(c.target);
  }
  const out: ChangeGroup[] = [];
  for (const { g, bySource } of bySig.values()) {
    const byTargets = new Map<string, { sources: string[]; targets: string[] }>();
    for (const [source, targets] of bySource) {
      const k = targets.join("\0");
      let m = byTargets.get(k);
      if (!m) byTargets.set(k, (m = { sources: [], targets }));
      m.sources.push(source);
    }
    for (const { sources, targets } of byTargets.values()) {
      const where = g.after.rule ?? (g.after.refusal ? "no rule" : "");
      const ask = g.added ? ` (${[g.added.length ? `now offers ${listText(g.added)}` : "", g.removed!.length ? `no longer ${listText(g.removed!)}` : ""].filter(Boolean).join("; ")})` : "";
      targets.sort(pyCompare);
      const statement = `${g.call} from ${phrase(sources, space?.qubes, "qube")}: to ${phrase(targets, space?.targets, "target")}: ${sideText(g.before)} → ${sideText(g.after)}${ask} (${where})`;
      out.push({ ...g, sources, targets, requests: sources.length * targets.length, statement });
    }
  }
  const kindOrder = { grant: 0, change: 1, revoke: 2 } as const;
  // Stable: within a kind, the order of the changes (service, argument, source, target).
  return out.map((g, i) => [g, i] as const).sort((a, b) => kindOrder[a[0].kind] - kindOrder[b[0].kind] || a[1] - b[1]).map(([g]) => g);
}
