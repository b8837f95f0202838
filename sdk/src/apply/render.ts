/**
 * The plan as text, Terraform's way: one block per object (`+` create,
 * `~` change, `-` destroy), one line per setting with `before → after` and
 * when it takes effect, then the summary line.
 */
import type { Plan, PlanStep, SideEffect } from "./types.js";
import { isMoveMark } from "./keys.js";

const SIGN: Partial<Record<PlanStep["kind"], string>> = {
  "create-label": "+",
  create: "+",
  "add-tag": "+",
  "assign-device": "+",
  "remove-feature": "-",
  "remove-tag": "-",
  "unassign-device": "-",
  "remove-policy": "-",
  "remove-label": "-",
  remove: "-",
};

function sign(s: PlanStep): string {
  if (s.before === null || ((s.kind === "set-feature" || s.kind === "assign-device") && s.before === "absent")) return "+";
  if (s.kind === "write-policy" && s.before === null) return "+";
  return SIGN[s.kind] ?? "~";
}

function effect(s: PlanStep, running: Set<string>): string {
  if (s.deferred) return "deferred ⏸";
  const parts: string[] = [];
  if (s.effect === "needs-halt" && running.has(s.object)) parts.push("needs halt");
  else if (s.effect === "next-start" && running.has(s.object)) parts.push("next start ↻");
  else if (s.effect === "live" && running.has(s.object)) parts.push("live");
  if (s.risk === "grants-access") parts.push("⚠ grants access");
  if (s.risk === "revokes-access") parts.push("revokes access");
  if (s.risk === "data-loss") parts.push("⚠ data loss");
  if (s.takeOverFrom !== undefined) parts.push(`⚠ take over from stack '${s.takeOverFrom}'`);
  return parts.join(" · ");
}

/** A value for one line of output: a multi-line one (firewall rules, a policy file) as its count of rules. */
export function oneLine(v: string | null): string {
  if (v === null) return "";
  const lines = v.split("\n");
  return lines.length > 1 ? `${lines.length} rules` : v;
}

const DIFF_LINES = 20;

/** How a value that goes back to its default because the stack no longer declares it ends (`action=accept (no longer declared)`). */
const NO_LONGER_DECLARED = / \(no longer declared\)$/;

/**
 * The lines removed (`- `) and added (`+ `) between two multi-line values
 * (firewall rules, a policy file), in order, at most {@link DIFF_LINES}
 * shown; a change too large to align says how many lines it touches. A line
 * that is only moved (removed at one place and added, the same text, at
 * another: the order of rules decides) is one entry where it is added,
 * `~ LINE (moved from N to M)`, with its 1-based places before and after.
 */
export function lineDiff(before: string, after: string): string[] {
  const a = before === "" ? [] : before.split("\n");
  const b = after === "" ? [] : after.split("\n");
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const x = a.slice(start, endA);
  const y = b.slice(start, endB);
  if (x.length * y.length > 1_000_000) return [`(${x.length} lines removed, ${y.length} added)`];
  // Longest common subsequence of the middle parts.
  const n = x.length;
  const m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i]![j] = x[i] === y[j] ? L[i + 1]![j + 1]! + 1 : Math.max(L[i + 1]![j]!, L[i]![j + 1]!);
  const ops: Array<{ sign: "-" | "+"; text: string; at: number }> = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) {
      i++;
      j++;
    } else if (i < n && (j === m || L[i + 1]![j]! >= L[i]![j + 1]!)) ops.push({ sign: "-", text: x[i]!, at: start + ++i });
    else ops.push({ sign: "+", text: y[j]!, at: start + ++j });
  }
  // Moves: each added line paired with the first unpaired removal of the same text.
  const removals = new Map<string, number[]>();
  ops.forEach((o, k) => o.sign === "-" && (removals.get(o.text) ?? removals.set(o.text, []).get(o.text)!).push(k));
  const movedFrom = new Map<number, number>();
  const paired = new Set<number>();
  ops.forEach((o, k) => {
    const r = o.sign === "+" ? removals.get(o.text)?.shift() : undefined;
    if (r === undefined) return;
    movedFrom.set(k, ops[r]!.at);
    paired.add(r);
  });
  const out: string[] = [];
  ops.forEach((o, k) => {
    if (paired.has(k)) return;
    const from = movedFrom.get(k);
    out.push(from === undefined ? `${o.sign} ${o.text}` : `~ ${o.text} (moved from ${from} to ${o.at})`);
  });
  return out.length > DIFF_LINES ? [...out.slice(0, DIFF_LINES), `(${out.length - DIFF_LINES} more changed lines)`] : out;
}

/**
 * Renders a plan (errors first, then blocks per object, then the summary).
 * `whatif` is the command that lists the plan's decision changes (said after their count).
 */
export function renderPlan(plan: Plan, options: { running?: Iterable<string>; header?: string; whatif?: string } = {}): string {
  const out: string[] = [];
  const running = new Set(options.running ?? []);
  if (options.header) out.push(options.header, "");
  for (const e of plan.errors) out.push(`${e.at ? `${e.at}: ` : ""}error[${e.code}]: ${e.message}`);
  for (const w of plan.warnings ?? []) out.push(`${w.at ? `${w.at}: ` : ""}warning[${w.code}]: ${w.message}`);
  if (plan.errors.length || plan.warnings?.length) out.push("");
  const blocks = new Map<string, PlanStep[]>();
  for (const s of plan.steps) {
    const k = s.target;
    blocks.set(k, [...(blocks.get(k) ?? []), s]);
  }
  const width = Math.max(14, ...plan.steps.filter((s) => !isMoveMark(s)).map((s) => (s.key || "").length + 2));
  const nameWidth = Math.max(0, ...plan.steps.filter((s) => s.target.startsWith("qube ") || s.target.startsWith("label ")).map((s) => s.target.length - s.target.indexOf(" ") - 1));
  for (const [target, steps] of blocks) {
    // Bookkeeping only (the ownership records): no block, counted apart below.
    if (steps.every((s) => s.kind === "record-keys" || isMoveMark(s))) continue;
    // A qube replaced (class change): its removal and its creation are one block, `-/+`.
    const replacing = steps.find((s) => s.kind === "remove" && s.replace);
    const head = (replacing && steps.find((s) => s.kind === "create")) ?? steps.find((s) => s.key === "" || s.kind === "adopt");
    const sp = target.indexOf(" ");
    const kind = sp < 0 ? target : target.slice(0, sp);
    const name = sp < 0 ? "" : target.slice(sp + 1);
    let mark = "~";
    if (replacing) mark = "-/+";
    else if (head?.kind === "create" || head?.kind === "create-label") mark = "+";
    else if (head?.kind === "remove" || head?.kind === "remove-policy" || head?.kind === "remove-label") mark = "-";
    else if (head?.kind === "write-policy" && head.before === null) mark = "+";
    const what = head?.kind === "create" ? (head.after ?? "").split(" · ")[0]! : kind;
    const detail = head?.kind === "create-label" ? (head.after ?? "") : head?.kind === "remove-label" ? `destroy${head.before ? ` (${head.before})` : ""}` : head?.kind === "create" ? (head.after ?? "").split(" · ").slice(1).join(" · ") : head?.kind === "adopt" ? (head.before ? `take over from stack '${head.before}' ⚠` : "adopt") : head?.kind === "remove" ? (head.movedTo ? `moved to ${head.movedTo}: removed once its clone is made and its users use the new name (its volumes' older revisions are not kept)` : `destroy (${head.before})`) : head && head.kind.endsWith("policy") ? `${oneLine(head.after ?? "removed")}${head.before === null ? " (new)" : ""}` : "";
    const headRisk = replacing
      ? `    ⚠ replaces the ${replacing.before}: its volumes and their data are lost`
      : head && head.kind.endsWith("policy")
        ? head.risk === "grants-access"
          ? "    ⚠ grants access"
          : head.risk === "revokes-access"
            ? "    revokes access"
            : ""
        : "";
    out.push(`  ${mark} ${what.padEnd(10)} ${detail ? `${name.padEnd(nameWidth)}  ${detail}` : name}${head?.deferred ? "    deferred ⏸" : ""}${headRisk}`.trimEnd());
    for (const l of head?.diff ?? []) out.push(`          ${l}`);
    for (const s of steps) {
      // The mark of a move under way (taken off once the former qube is removed): bookkeeping, not a setting.
      if (s === head || s === replacing || s.kind === "record-keys" || isMoveMark(s)) continue;
      // An empty value is shown as "" (a kernel set to nothing, a feature set to the empty string), never as nothing.
      const shown = (v: string | null) => (v === "" ? '""' : oneLine(v));
      const change = s.before === null ? shown(s.after) : `${shown(s.before)} → ${shown(s.after)}`;
      const eff = effect(s, running);
      out.push(`      ${sign(s)} ${(s.key || s.kind).padEnd(width)} ${change}${eff ? `    ${eff}` : ""}`);
      // The rules themselves are compared: a value's "(no longer declared)" is said on the line above, not as a rule.
      if (s.before !== null && s.after !== null && (s.before.includes("\n") || s.after.includes("\n"))) for (const l of lineDiff(s.before, s.after.replace(NO_LONGER_DECLARED, ""))) out.push(`          ${l}`);
    }
  }
  const visible = plan.steps.filter((s) => s.kind !== "record-keys");
  if (!plan.steps.length && !plan.errors.length) out.push("No changes. The system matches the stack.");
  else {
    if (visible.length) out.push("");
    const s = plan.summary;
    out.push(`Plan: ${s.move ? `${s.move} to move, ` : ""}${s.create} to create, ${s.change} to change, ${s.destroy} to destroy${s.adopt ? `, ${s.adopt} to adopt` : ""}; ${s.policy} policy file${s.policy === 1 ? "" : "s"}, ${s.global} global propert${s.global === 1 ? "y" : "ies"}.`);
  }
  const books = new Set(plan.steps.filter((x) => x.kind === "record-keys").map((x) => x.target));
  if (books.size) {
    const qubes = [...books].filter((t) => t !== "global").map((t) => t.replace(/^qube /, ""));
    const parts = [...(qubes.length ? [`the ownership record${qubes.length === 1 ? "" : "s"} of ${qubes.join(", ")}`] : []), ...(books.has("global") ? ["the stack's record on dom0"] : [])];
    out.push(`Bookkeeping: ${parts.join(" and ")} (no setting changes)`);
  }
  if (plan.summary.deferred) {
    // The running qubes they wait for (when the caller says which run), else the qubes of the deferred steps.
    const objects = [...new Set(plan.steps.filter((x) => x.deferred && x.target.startsWith("qube ")).map((x) => x.object))].sort();
    const qubes = objects.some((q) => running.has(q)) ? objects.filter((q) => running.has(q)) : objects;
    // The changes that wait (a qube's own stop, which a deferred removal implies, is not one; nor a move's mark).
    const changes = plan.steps.filter((x) => x.deferred && x.kind !== "shutdown" && x.kind !== "start" && !isMoveMark(x)).length;
    out.push(`Deferred: ${changes} change${changes === 1 ? "" : "s"} (running: ${qubes.join(", ")}; use --restart=if-needed)`);
  }
  if (plan.restartToTakeEffect.length) out.push(`Restart to take effect: ${plan.restartToTakeEffect.join(", ")}`);
  if (plan.orphans.length) out.push(`Owned but no longer declared (${plan.options?.prune ? "kept: protected, or installed by the package manager" : "removed with --prune"}): ${plan.orphans.join(", ")}`);
  // Said when a decision changes, or when a policy file is written (that it changes none is news then).
  if (plan.decisionChanges && (plan.decisionChanges.total > 0 || plan.steps.some((x) => x.kind === "write-policy" || x.kind === "remove-policy"))) {
    const d = plan.decisionChanges;
    const kinds = [d.grant ? `${d.grant} grant` : "", d.revoke ? `${d.revoke} revoke` : "", d.change ? `${d.change} change` : ""].filter((k) => k !== "").join(", ");
    out.push(d.total === 0 ? "Policy: no decision changes." : `Policy: ${d.total} decision${d.total === 1 ? " changes" : "s change"} (${kinds})${options.whatif ? `; \`${options.whatif}\` lists them` : ""}.`);
  }
  // Not counted because a policy does not load: said, with the engine's error (the daemon denies every call then).
  const notLoading = plan.policyNotLoading ?? [];
  const both = notLoading.length === 2 && notLoading[0]!.message === notLoading[1]!.message;
  for (const l of both ? [{ when: "both" as const, message: notLoading[0]!.message }] : notLoading) {
    const why =
      l.when === "both"
        ? "the policy does not load, today nor after apply, so the daemon denies every call"
        : l.when === "today"
          ? "the policy on the system does not load, so the daemon denies every call today"
          : "the policy after apply would not load, so the daemon would deny every call";
    out.push(`Policy: decision changes not counted: ${why}: ${oneLine(l.message)}; \`${l.when === "future" ? "qkit template whatif" : "qkit policy check"}\` says more.`);
  }
  if (plan.expectations) {
    const e = plan.expectations;
    out.push(`What-if: ${e.total - e.failed.length}/${e.total} expectation${e.total === 1 ? " holds" : "s hold"}${e.failed.length ? `; ${e.failed.length} fail${e.failed.length === 1 ? "s" : ""}:` : ""}`);
    for (const f of e.failed) out.push(`  FAIL ${f.expect}: ${f.problem}${f.rule ? ` (deciding rule ${f.rule})` : ""}`);
  }
  if (plan.errors.length) out.push(`${plan.errors.length} error${plan.errors.length === 1 ? "" : "s"}: nothing can be applied until ${plan.errors.length === 1 ? "it is" : "they are"} fixed.`);
  return out.join("\n") + "\n";
}

/**
 * The warnings for settings of the stack that qubesd changes again as a consequence of the plan
 * (`managed` side effects): `undone-by-qubesd`, as the text shows them and `apply --json` lists them.
 */
export function undoneWarnings(effects: readonly SideEffect[]): Array<{ code: "undone-by-qubesd"; message: string }> {
  return effects
    .filter((e) => e.managed)
    .map((e) => ({
      code: "undone-by-qubesd" as const,
      message: `${e.qube === "" ? "global" : e.qube} ${e.key}: ${e.undoes ? `step ${e.undoes} sets ${e.before}` : `the stack declares ${e.before}`}, and qubesd changes it to ${e.after} as a consequence of the plan (seen in the rehearsal): the system will not match the stack after apply; declare what qubesd leaves, or change the setting that makes it do so`,
    }));
}

/**
 * What qubesd changes on its own (a rehearsal's {@link SideEffect}s), one
 * line per change with every qube it touches: `""` when there is none.
 */
export function renderSideEffects(effects: readonly SideEffect[]): string {
  const lines = undoneWarnings(effects).map((w) => `warning[${w.code}]: ${w.message}`);
  const rest = effects.filter((e) => !e.managed);
  if (!rest.length) return lines.length ? lines.join("\n") + "\n" : "";
  // One line per setting and new value, with every qube it touches (and the old value when they share it).
  const groups = new Map<string, { key: string; befores: Set<string>; after: string; qubes: string[] }>();
  for (const e of rest) {
    const k = `${e.key}\0${e.after}`;
    const g = groups.get(k) ?? { key: e.key, befores: new Set<string>(), after: e.after, qubes: [] };
    g.befores.add(e.before);
    g.qubes.push(e.qube === "" ? "global" : e.qube);
    groups.set(k, g);
  }
  const out = [...lines, `qubesd also changes, on its own (seen in the rehearsal):`];
  for (const g of groups.values())
    out.push(g.befores.size === 1 ? `  ~ ${g.key} ${[...g.befores][0]} → ${g.after}: ${g.qubes.join(", ")}` : `  ~ ${g.key} → ${g.after}: ${g.qubes.join(", ")} (each from its own value)`);
  return out.join("\n") + "\n";
}
