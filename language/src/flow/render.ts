/**
 * Flow answers as text, JSON, Graphviz dot, Mermaid and a self-contained
 * HTML page. Pure functions over the results of `paths.ts`.
 */
import type { FlowEdge } from "./graph.js";
import type { FlowHop, FlowPath, PathsResult, Reached } from "./paths.js";

/**
 * A name as the text answers show it: a control or invisible formatting
 * character (a line break in a hand-made model's qube name) escaped, so
 * that each line of the answer stays one line.
 */
function nm(name: string): string {
  return name.replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}

/** One line of evidence for an edge. */
export function edgeText(e: FlowEdge): string {
  const ev = e.evidence;
  if (ev.kind === "qrexec") {
    const rule = `${ev.rule.file}:${ev.rule.line ?? "None"}`;
    const req = `${nm(ev.call)}: ${nm(ev.request.source)} -> ${nm(ev.request.target ?? "")}`;
    const what = ev.action === "ask" ? `ask, ${nm(ev.reverse ? e.from : e.to)} offered (the user chooses)` : "allow";
    return `qrexec ${req}: ${what} (${rule})${ev.reverse ? `; data comes back from ${nm(e.from)}` : ""}${ev.control ? "; the caller controls the target" : ""}`;
  }
  return `${e.via} ${nm(ev.note)}`;
}

const PROPERTY_LABEL = { netvm: "netvm", firewall: "network (firewall accepts)", provides_network: "network devices", dom0: "dom0 administers" } as const;

/** A short label for a hop (its first edge, and how many more). */
export function hopLabel(h: FlowHop): string {
  const e = h.edges[0]!;
  const ev = e.evidence;
  const first =
    ev.kind === "qrexec"
      ? `${ev.call} ${ev.action} ${ev.rule.file}:${ev.rule.line ?? "None"}`
      : ev.kind === "device"
        ? `${ev.devclass} device ${ev.backend}:${ev.port}`
        : ev.property === "firewall" && ev.label !== undefined
          ? `network (firewall: ${ev.label})`
          : PROPERTY_LABEL[ev.property];
  const more = h.edges.length - 1 + h.more;
  return more > 0 ? `${first} (+${more}${h.moreAtLeast ? " or more" : ""})` : first;
}

/** An edge as JSON: its kind, ends, and evidence. */
export function edgeJson(e: FlowEdge): unknown {
  return { from: e.from, to: e.to, via: e.via, ask: e.ask, text: edgeText(e), evidence: e.evidence };
}

/** A hop's JSON, made once per hop (paths from one node share their first hops). */
const hopJsons = new WeakMap<FlowHop, unknown>();

function hopJson(h: FlowHop): unknown {
  let j = hopJsons.get(h);
  if (j === undefined) hopJsons.set(h, (j = { from: h.from, to: h.to, ask: h.ask, edges: h.edges.map(edgeJson), more: h.more, ...(h.moreAtLeast ? { more_at_least: true } : {}) }));
  return j;
}

/** A path as JSON (a hop's JSON is made once and shared by the paths through it: do not change it). */
export function pathJson(p: FlowPath): unknown {
  return { nodes: p.nodes, ask: p.ask, hops: p.hops.map(hopJson) };
}

/** Options of the text renderers. */
export interface FlowTextOptions {
  /** Edges listed per hop (default 5; 0 for all). */
  edgesPerHop?: number;
  maxHops?: number;
}

function hopLines(h: FlowHop, limit: number): string[] {
  const lines = [`  ${nm(h.from)} → ${nm(h.to)}${h.ask ? "   (the user must confirm)" : ""}`];
  const shown = limit > 0 ? h.edges.slice(0, limit) : h.edges;
  for (const e of shown) lines.push(`      ${edgeText(e)}`);
  const more = h.edges.length - shown.length + h.more;
  if (more > 0) lines.push(`      … and ${h.moreAtLeast ? "at least " : ""}${more} more way${more === 1 ? "" : "s"} (--all-edges lists them all)`);
  return lines;
}

function countText(n: number): string {
  return Number.isSafeInteger(n) ? n.toLocaleString("en") : `about ${n.toExponential(2)}`;
}

/** `qkit flow A B` as text. */
export function pathsText(r: PathsResult, options: FlowTextOptions = {}): string {
  const limit = options.edgesPerHop ?? 5;
  const maxHops = options.maxHops ?? 6;
  const out: string[] = [];
  if (!r.paths.length) {
    if (r.shortest === null) out.push(`no flow from ${nm(r.from)} to ${nm(r.to)}: no path at all`);
    else if (r.from === r.to) out.push(`${nm(r.from)} and ${nm(r.to)} are the same`);
    else out.push(`no flow from ${nm(r.from)} to ${nm(r.to)} within ${maxHops} hop${maxHops === 1 ? "" : "s"} (the shortest path has ${r.shortest}; raise --max-hops)`);
    return out.join("\n") + "\n";
  }
  const auto = r.paths.filter((p) => !p.ask).length;
  out.push(
    `${nm(r.from)} → ${nm(r.to)}: ${r.paths.length}${r.truncated ? "+" : ""} path${r.paths.length === 1 ? "" : "s"} of at most ${maxHops} hops, ${auto} without the user, ${r.paths.length - auto} with the user in the loop${r.truncated ? ` (more not listed${r.count && r.count.paths > r.paths.length ? `: ${countText(r.count.paths)} path${r.count.paths === 1 ? "" : "s"} of ${r.count.hops} hop${r.count.hops === 1 ? "" : "s"} alone` : ""}; raise --max-paths)` : ""}`,
  );
  r.paths.forEach((p, i) => {
    out.push("");
    out.push(`path ${i + 1}: ${p.nodes.map(nm).join(" → ")}${p.ask ? "   [user in the loop]" : ""}`);
    for (const h of p.hops) out.push(...hopLines(h, limit));
  });
  return out.join("\n") + "\n";
}

/** `qkit flow --from A` as text. */
export function reachedText(from: string, reached: readonly Reached[], options: FlowTextOptions = {}): string {
  const limit = options.edgesPerHop ?? 5;
  if (!reached.length) return `nothing is reachable from ${nm(from)}\n`;
  const auto = reached.filter((r) => r.automatic).length;
  const out = [`from ${nm(from)}: ${reached.length} reachable, ${auto} without the user, ${reached.length - auto} only with the user in the loop`];
  for (const r of reached) {
    const p = r.automatic ?? r.path;
    out.push("");
    out.push(`${nm(r.node)}: ${p.nodes.map(nm).join(" → ")}${r.automatic ? "" : "   [user in the loop]"}`);
    for (const h of p.hops) out.push(...hopLines(h, limit));
  }
  return out.join("\n") + "\n";
}

function uniqueHops(paths: readonly FlowPath[]): FlowHop[] {
  const out = new Map<string, FlowHop>();
  for (const p of paths) for (const h of p.hops) out.set(`${h.from}\0${h.to}`, h);
  return [...out.values()];
}

function dotId(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => "\\" + c).replace(/\n/g, "\\n")}"`;
}

/** The hops of some paths as a Graphviz digraph (dashed: the user must confirm). */
export function flowDot(title: string, paths: readonly FlowPath[], start?: string): string {
  const hops = uniqueHops(paths);
  const nodes = new Set<string>(start !== undefined ? [start] : []);
  for (const h of hops) nodes.add(h.from).add(h.to);
  const lines = [`digraph flow {`, `  label=${dotId(title)};`, `  rankdir=LR;`, `  node [shape=box, style=rounded];`];
  for (const n of [...nodes].sort()) lines.push(`  ${dotId(n)}${n === start ? " [penwidth=2]" : n.startsWith("@") ? " [shape=ellipse]" : ""};`);
  for (const h of hops) lines.push(`  ${dotId(h.from)} -> ${dotId(h.to)} [label=${dotId(hopLabel(h))}${h.ask ? ", style=dashed" : ""}];`);
  lines.push("}");
  return lines.join("\n") + "\n";
}

function mermaidText(s: string): string {
  return s.replace(/"/g, "#quot;").replace(/[<>]/g, (c) => (c === "<" ? "#lt;" : "#gt;")).replace(/\|/g, "#124;").replace(/[\r\n]/g, " ");
}

/**
 * A string as a YAML double-quoted scalar (Mermaid's front matter is YAML):
 * JSON's escapes, which YAML reads alike, plus the characters JSON leaves
 * raw that YAML would not take as they are (C1 controls, line and paragraph
 * separators); on one line.
 */
function yamlString(s: string): string {
  return JSON.stringify(s.replace(/[\r\n]/g, " ")).replace(/[\u007f-\u009f\u2028\u2029\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The hops of some paths as a Mermaid flowchart (dotted: the user must confirm). */
export function flowMermaid(title: string, paths: readonly FlowPath[], start?: string): string {
  const hops = uniqueHops(paths);
  const nodes = new Set<string>(start !== undefined ? [start] : []);
  for (const h of hops) nodes.add(h.from).add(h.to);
  const ids = new Map([...nodes].sort().map((n, i) => [n, `n${i}`]));
  const lines = [`---`, `title: ${yamlString(title)}`, `---`, "flowchart LR"];
  for (const [n, id] of ids) lines.push(`  ${id}["${mermaidText(n)}"]`);
  for (const h of hops) lines.push(`  ${ids.get(h.from)} ${h.ask ? "-. " : "-- "}"${mermaidText(hopLabel(h))}" ${h.ask ? ".->" : "-->"} ${ids.get(h.to)}`);
  return lines.join("\n") + "\n";
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

function htmlPath(p: FlowPath, heading: string): string {
  const hops = p.hops
    .map((h) => `<li class="${h.ask ? "ask" : "auto"}"><span class="hop">${esc(h.from)} → ${esc(h.to)}</span>${h.ask ? ' <span class="badge">the user must confirm</span>' : ""}<ul>${h.edges.map((e) => `<li class="${e.via}">${esc(edgeText(e))}</li>`).join("")}</ul></li>`)
    .join("\n");
  return `<section class="path${p.ask ? " ask" : ""}"><h2>${esc(heading)}${p.ask ? ' <span class="badge">user in the loop</span>' : ""}</h2><p class="nodes">${p.nodes.map(esc).join(" → ")}</p><ol>${hops}</ol></section>`;
}

/** A self-contained HTML page (no scripts, no external resources). */
export function flowHtml(title: string, summary: string, sections: { heading: string; path: FlowPath }[]): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
h1 { font-size: 18px; } h2 { font-size: 15px; margin: 0.2em 0; }
section.path { border: 1px solid #ccc; border-left: 6px solid #3a3; border-radius: 4px; padding: 0.5em 1em; margin: 0.8em 0; }
section.path.ask { border-left-color: #d90; }
.nodes { font-family: ui-monospace, monospace; }
.badge { background: #fff1c2; border: 1px solid #d90; border-radius: 3px; font-size: 12px; padding: 0 4px; font-weight: normal; }
li.ask > .hop { color: #a60; } .hop { font-weight: 600; }
li.qrexec, li.network, li.device, li.admin { font-family: ui-monospace, monospace; font-size: 12px; }
li.network { color: #036; } li.device { color: #606; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p>${esc(summary)}</p>
${sections.map((s) => htmlPath(s.path, s.heading)).join("\n")}
<p>Each hop lists every way data moves: qrexec calls with their deciding rule, network wiring (netvm, firewall) and devices. Paths through other qubes need those qubes to pass the data on.</p>
</body>
</html>
`;
}
