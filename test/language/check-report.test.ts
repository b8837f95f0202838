/**
 * The report formats of `qkit policy check` through the package entry
 * (`@qubes-kit/language`): the SARIF 2.1.0 shape (checked by the schema
 * rules below, no network), GitHub workflow-command escaping, the text
 * format's carets and colour, all on random policies (fast-check), and the
 * colour decision (`NO_COLOR`, `FORCE_COLOR`, terminals).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  analyzeWorkspace,
  createMemoryFileSystem,
  escapeGithubData,
  escapeGithubProperty,
  formatCheckText,
  formatDiagnostic,
  formatGithub,
  checkReportJson,
  knownCodes,
  prepareSystemInfo,
  reportFromSnapshot,
  toSarif,
  wantsColor,
  type CheckReport,
} from "@qubes-kit/language";

// ---------------------------------------------------------------------------
// SARIF 2.1.0: the parts of the OASIS schema (sarif-schema-2.1.0.json) that our
// documents use, as checks: required members, types, enumerations, the members
// each object may have, and the cross-references (ruleIndex ↔ rules).

type Json = unknown;
const problems: string[] = [];
function fail(where: string, what: string): void {
  problems.push(`${where}: ${what}`);
}
function isObj(v: Json): v is Record<string, Json> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function only(where: string, o: Record<string, Json>, allowed: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(where, `unexpected member \`${k}\``);
}
function int(where: string, v: Json, min: number): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) fail(where, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
}
function str(where: string, v: Json): void {
  if (typeof v !== "string") fail(where, `must be a string, got ${JSON.stringify(v)}`);
}
function message(where: string, v: Json): void {
  if (!isObj(v)) return fail(where, "must be a message object");
  only(where, v, ["text", "markdown", "id", "arguments", "properties"]);
  if (v["text"] === undefined && v["id"] === undefined) fail(where, "needs `text` or `id`");
  if (v["text"] !== undefined) str(`${where}.text`, v["text"]);
}
/** A URI reference (RFC 3986): no spaces or characters that must be percent-encoded. */
function uriReference(where: string, v: Json): void {
  str(where, v);
  if (typeof v === "string" && /[\s"<>\\^`{|}%]/.test(v.replace(/%[0-9A-Fa-f]{2}/g, ""))) fail(where, `not a URI reference: ${v}`);
}
function physicalLocation(where: string, v: Json): void {
  if (!isObj(v)) return fail(where, "must be an object");
  only(where, v, ["artifactLocation", "region", "contextRegion", "address", "properties"]);
  const a = v["artifactLocation"];
  if (!isObj(a)) fail(`${where}.artifactLocation`, "required object");
  else {
    only(`${where}.artifactLocation`, a, ["uri", "uriBaseId", "index", "description", "properties"]);
    uriReference(`${where}.artifactLocation.uri`, a["uri"]);
    if (a["uriBaseId"] !== undefined) str(`${where}.artifactLocation.uriBaseId`, a["uriBaseId"]);
  }
  const r = v["region"];
  if (r !== undefined) {
    if (!isObj(r)) return fail(`${where}.region`, "must be an object");
    only(`${where}.region`, r, ["startLine", "startColumn", "endLine", "endColumn", "charOffset", "charLength", "byteOffset", "byteLength", "snippet", "message", "sourceLanguage", "properties"]);
    int(`${where}.region.startLine`, r["startLine"], 1);
    int(`${where}.region.startColumn`, r["startColumn"], 1);
    int(`${where}.region.endLine`, r["endLine"], 1);
    int(`${where}.region.endColumn`, r["endColumn"], 1);
    if ((r["endLine"] as number) < (r["startLine"] as number)) fail(`${where}.region`, "endLine before startLine");
    if (r["endLine"] === r["startLine"] && (r["endColumn"] as number) < (r["startColumn"] as number)) fail(`${where}.region`, "endColumn before startColumn");
    if (r["snippet"] !== undefined) {
      if (!isObj(r["snippet"])) fail(`${where}.region.snippet`, "must be an artifactContent object");
      else str(`${where}.region.snippet.text`, r["snippet"]["text"]);
    }
  }
}
const LEVELS = ["none", "note", "warning", "error"];

/** Every problem of a SARIF log (empty when it conforms to the parts of the schema checked here). */
function sarifProblems(log: Json): string[] {
  problems.length = 0;
  if (!isObj(log)) return ["the log must be an object"];
  only("log", log, ["$schema", "version", "runs", "inlineExternalProperties", "properties"]);
  if (log["version"] !== "2.1.0") fail("log.version", "must be \"2.1.0\"");
  if (log["$schema"] !== undefined) uriReference("log.$schema", log["$schema"]);
  const runs = log["runs"];
  if (!Array.isArray(runs)) return [...problems, "log.runs must be an array"];
  runs.forEach((run: Json, ri) => {
    const w = `runs[${ri}]`;
    if (!isObj(run)) return fail(w, "must be an object");
    only(w, run, ["tool", "results", "columnKind", "originalUriBaseIds", "invocations", "artifacts", "automationDetails", "properties"]);
    const tool = run["tool"];
    if (!isObj(tool) || !isObj(tool["driver"])) return fail(`${w}.tool.driver`, "required object");
    only(`${w}.tool`, tool, ["driver", "extensions", "properties"]);
    const driver = tool["driver"];
    only(`${w}.tool.driver`, driver, ["name", "version", "semanticVersion", "informationUri", "rules", "fullName", "organization", "properties"]);
    str(`${w}.tool.driver.name`, driver["name"]);
    if (driver["informationUri"] !== undefined) uriReference(`${w}.tool.driver.informationUri`, driver["informationUri"]);
    const rules = (driver["rules"] ?? []) as Json[];
    if (!Array.isArray(rules)) fail(`${w}.tool.driver.rules`, "must be an array");
    const ids = new Set<string>();
    rules.forEach((rule, i) => {
      const rw = `${w}.tool.driver.rules[${i}]`;
      if (!isObj(rule)) return fail(rw, "must be an object");
      only(rw, rule, ["id", "name", "shortDescription", "fullDescription", "help", "helpUri", "defaultConfiguration", "properties"]);
      str(`${rw}.id`, rule["id"]);
      if (ids.has(rule["id"] as string)) fail(rw, `duplicate rule id ${String(rule["id"])}`);
      ids.add(rule["id"] as string);
      for (const k of ["shortDescription", "fullDescription", "help"]) if (rule[k] !== undefined) message(`${rw}.${k}`, rule[k]);
      const dc = rule["defaultConfiguration"];
      if (dc !== undefined) {
        if (!isObj(dc)) fail(`${rw}.defaultConfiguration`, "must be an object");
        else if (!LEVELS.includes(dc["level"] as string)) fail(`${rw}.defaultConfiguration.level`, `not a level: ${String(dc["level"])}`);
      }
    });
    if (run["columnKind"] !== undefined && !["utf16CodeUnits", "unicodeCodePoints"].includes(run["columnKind"] as string)) fail(`${w}.columnKind`, "not a column kind");
    const bases = run["originalUriBaseIds"];
    if (bases !== undefined) {
      if (!isObj(bases)) fail(`${w}.originalUriBaseIds`, "must be an object");
      else
        for (const [k, v] of Object.entries(bases)) {
          if (!isObj(v)) fail(`${w}.originalUriBaseIds.${k}`, "must be an artifactLocation");
          else if (typeof v["uri"] !== "string" || !/^[a-z][a-z0-9+.-]*:.*\/$/.test(v["uri"])) fail(`${w}.originalUriBaseIds.${k}.uri`, "must be an absolute URI ending in /");
        }
    }
    const results = run["results"];
    if (!Array.isArray(results)) return fail(`${w}.results`, "must be an array");
    results.forEach((r: Json, i) => {
      const rw = `${w}.results[${i}]`;
      if (!isObj(r)) return fail(rw, "must be an object");
      only(rw, r, ["ruleId", "ruleIndex", "rule", "level", "kind", "message", "locations", "relatedLocations", "properties"]);
      message(`${rw}.message`, r["message"]);
      if (r["level"] !== undefined && !LEVELS.includes(r["level"] as string)) fail(`${rw}.level`, `not a level: ${String(r["level"])}`);
      if (r["ruleIndex"] !== undefined) {
        int(`${rw}.ruleIndex`, r["ruleIndex"], -1);
        const rule = rules[r["ruleIndex"] as number];
        if (!isObj(rule) || rule["id"] !== r["ruleId"]) fail(`${rw}.ruleIndex`, `does not point at the rule ${String(r["ruleId"])}`);
      }
      for (const key of ["locations", "relatedLocations"]) {
        const list = r[key];
        if (list === undefined) continue;
        if (!Array.isArray(list)) {
          fail(`${rw}.${key}`, "must be an array");
          continue;
        }
        list.forEach((l: Json, j) => {
          const lw = `${rw}.${key}[${j}]`;
          if (!isObj(l)) return fail(lw, "must be an object");
          only(lw, l, ["id", "physicalLocation", "logicalLocations", "message", "annotations", "relationships", "properties"]);
          if (l["id"] !== undefined) int(`${lw}.id`, l["id"], -1);
          if (l["message"] !== undefined) message(`${lw}.message`, l["message"]);
          if (l["physicalLocation"] !== undefined) physicalLocation(`${lw}.physicalLocation`, l["physicalLocation"]);
        });
      }
    });
  });
  return [...problems];
}

// ---------------------------------------------------------------------------
// Random policies: lines from fragments that the engine accepts, rejects, and
// that the analysis warns about; file names with characters to escape.

const SYSTEM = prepareSystemInfo({
  domains: {
    dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: "dvm", icon: "x", label: "0x0", guivm: null, relayvm: null, transport_rpc: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000000", internal: null },
    work: { type: "AppVM", tags: ["t"], template_for_dispvms: false, default_dispvm: "dvm", icon: "x", label: "0x0", guivm: null, relayvm: null, transport_rpc: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000001", internal: null },
    dvm: { type: "AppVM", tags: [], template_for_dispvms: true, default_dispvm: "dvm", icon: "x", label: "0x0", guivm: null, relayvm: null, transport_rpc: null, power_state: "Running", uuid: "00000000-0000-0000-0000-000000000002", internal: null },
  } as never,
});

const service = fc.constantFrom("qubes.Filecopy", "qubes.gpg", "*", "bad$svc", "qubes.A");
const argument = fc.constantFrom("*", "+x", "x", "+100%");
const qube = fc.constantFrom("work", "wrok", "@anyvm", "$anyvm", "@tag:t", "@tag:", "@type:AppVm", "@dispvm:dvm", "@dispvm:work", "@default", "naïve", "a\tb");
const action = fc.constantFrom("allow", "deny", "ask", "alow", "ask default_target=work", "allow target=nowhere");
const ruleLine = fc.tuple(service, argument, qube, qube, action).map((p) => p.join(" "));
const line = fc.oneof({ weight: 6, arbitrary: ruleLine }, { weight: 1, arbitrary: fc.constantFrom("# comment", "", "!include nowhere", "work", "\t", "x\u001b[31my") });
const fileName = fc.constantFrom("30-user.policy", "40-x.policy", "50-Bad,Name:x.policy", "60 space.policy", "70-%.policy");
const policy = fc.dictionary(fileName, fc.array(line, { maxLength: 8 }).map((l) => l.join("\n") + "\n"), { minKeys: 1, maxKeys: 3 });

function reportOf(files: Record<string, string>, system: boolean): CheckReport {
  const snapshot = analyzeWorkspace(createMemoryFileSystem(files), { system: system ? SYSTEM : null });
  return reportFromSnapshot(snapshot, { shownPath: (p) => p.replace("/etc/qubes/policy.d/", "policy.d/"), policyLabel: "policy.d" });
}

const TOOL = { tool: { name: "qkit", version: "0.1.0", informationUri: "https://github.com/qubes-kit/qubes-kit" }, baseUri: "file:///home/user/my%20repo/" };

describe("SARIF 2.1.0", () => {
  it("the schema checks catch what they should", () => {
    expect(sarifProblems({ version: "2.1.0", runs: [{ tool: { driver: { name: "x" } }, results: [] }] })).toEqual([]);
    expect(sarifProblems({ version: "2.0.0", runs: [] })).toEqual(['log.version: must be "2.1.0"']);
    const bad = { version: "2.1.0", runs: [{ tool: { driver: { name: "x", rules: [{ id: "a" }] } }, results: [{ ruleId: "b", ruleIndex: 0, level: "warn", message: {}, locations: [{ physicalLocation: { artifactLocation: { uri: "a b" }, region: { startLine: 0, startColumn: 1, endLine: 1, endColumn: 1 } } }] }] }] };
    expect(sarifProblems(bad)).toEqual([
      "runs[0].results[0].message: needs `text` or `id`",
      "runs[0].results[0].level: not a level: warn",
      "runs[0].results[0].ruleIndex: does not point at the rule b",
      "runs[0].results[0].locations[0].physicalLocation.artifactLocation.uri: not a URI reference: a b",
      "runs[0].results[0].locations[0].physicalLocation.region.startLine: must be an integer >= 1, got 0",
    ]);
  });

  it("every report is a valid log with one result per diagnostic, as the text format locates it", () => {
    fc.assert(
      fc.property(policy, fc.boolean(), (files, system) => {
        const report = reportOf(files, system);
        const log = toSarif(report, TOOL);
        expect(sarifProblems(JSON.parse(JSON.stringify(log)))).toEqual([]);
        const results = (log["runs"] as Array<{ results: Array<Record<string, unknown>> }>)[0]!.results;
        expect(results.length).toBe(report.diagnostics.length + (report.engineError !== undefined && report.errors === 0 ? 1 : 0));
        report.diagnostics.forEach((d, i) => {
          const r = results[i] as { ruleId: string; level: string; message: { text: string }; locations: Array<{ physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number; startColumn: number } } }> };
          expect(r.ruleId).toBe(d.code);
          expect(r.level).toBe(d.severity === "error" ? "error" : d.severity === "warning" ? "warning" : "note");
          expect(r.message.text).toBe(d.message);
          expect(decodeURIComponent(r.locations[0]!.physicalLocation.artifactLocation.uri)).toBe(d.file);
          expect(r.locations[0]!.physicalLocation.region.startLine).toBe(d.line);
          expect(r.locations[0]!.physicalLocation.region.startColumn).toBe(d.column);
        });
      }),
      { numRuns: 150 },
    );
  });

  it("describes every known code once, with help and a default level", () => {
    const codes = knownCodes();
    expect(new Set(codes.map((c) => c.code)).size).toBe(codes.length);
    for (const c of ["shadowed-rule", "unknown-qube", "invalid-action", "invalid-filename", "legacy-token-in-new-format", "include-cycle"]) {
      const info = codes.find((x) => x.code === c);
      expect(info?.summary, c).toBeTruthy();
      expect(info?.help, c).toBeTruthy();
    }
  });
});

describe("GitHub workflow commands", () => {
  it("escape so that the runner reads back exactly the text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        const data = escapeGithubData(s);
        const prop = escapeGithubProperty(s);
        expect(data).not.toMatch(/[\r\n]/);
        expect(prop).not.toMatch(/[\r\n:,]/);
        const unData = (x: string) => x.replace(/%0A/g, "\n").replace(/%0D/g, "\r").replace(/%25/g, "%");
        expect(unData(data)).toBe(s);
        expect(unData(prop.replace(/%3A/g, ":").replace(/%2C/g, ","))).toBe(s);
      }),
    );
  });

  it("one command line per diagnostic, whatever the policy", () => {
    fc.assert(
      fc.property(policy, (files) => {
        const report = reportOf(files, true);
        const lines = formatGithub(report).split("\n").filter(Boolean);
        expect(lines.length).toBe(report.diagnostics.length + (report.engineError !== undefined && report.errors === 0 ? 1 : 0));
        for (const l of lines) expect(l).toMatch(/^::(error|warning|notice) (file=[^,:]*,line=\d+,col=\d+,(endLine=\d+,)?endColumn=\d+,)?title=[^,:]+::/);
      }),
      { numRuns: 100 },
    );
  });
});

describe("text format", () => {
  it("a header line per diagnostic, the source line, carets under the span, never a control character from the input", () => {
    fc.assert(
      fc.property(policy, fc.boolean(), (files, color) => {
        const report = reportOf(files, true);
        const { stdout, stderr } = formatCheckText(report, { color });
        const all = stdout + stderr;
        const plain = all.replace(/\x1b\[[0-9;]*m/g, "");
        if (!color) expect(all).toBe(plain);
        // Only our own colour sequences: no other escape or control character reaches the terminal.
        expect(plain).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
        const lines = plain.split("\n");
        const headers = lines.filter((l) => /^\S.*:\d+:\d+: (error|warning|info|hint)\[[a-z0-9-]+\]: /.test(l));
        expect(headers.length).toBe(report.diagnostics.length);
        for (const d of report.diagnostics) {
          if (d.sourceLine === undefined || d.endLine !== d.line) continue;
          const i = lines.findIndex((l) => l.startsWith(`${d.file.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)}:${d.line}:${d.column}: ${d.severity}[${d.code}]`));
          expect(i).toBeGreaterThanOrEqual(0);
          const carets = lines[i + 2]!;
          expect(carets).toMatch(/^ +\| +\^+$/);
          // Plain ASCII without tabs: one caret per UTF-16 unit of the span (at least one).
          if (/^[\x20-\x7e]*$/.test(d.sourceLine)) {
            const n = (carets.match(/\^+$/)?.[0] ?? "").length;
            expect(n).toBe(Math.max(1, d.endColumn - d.column));
            expect(carets.indexOf("^") - carets.indexOf("|") - 2).toBe(d.column - 1);
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  it("shows a tab as four spaces in the source line and under the caret", () => {
    const report = reportOf({ "30-user.policy": "qubes.A\t*\twork\tvault\talow\n" }, false);
    const { stdout } = formatCheckText(report);
    expect(stdout).toBe(
      "policy.d/30-user.policy:1:22: error[invalid-action]: invalid action: alow\n" +
        "1 | qubes.A    *    work    vault    alow\n" +
        `  | ${" ".repeat("qubes.A    *    work    vault    ".length)}^^^^\n` +
        "  = help: the action is one of `allow`, `deny`, `ask`\n",
    );
  });

  // The caret sits under the span whatever comes before it on the line: a tab and a control
  // character are 4 columns on screen, a character outside the BMP (two UTF-16 units) one.
  it.each([
    ["a tab", "qubes.A\t*\twork\tvault\talow\n", "qubes.A    *    work    vault    ", "alow"],
    ["an emoji before the span", "qubes.A * w\u{1F600}rk vault alow\n", "qubes.A * w\u{1F600}rk vault ", "alow"],
    ["an emoji in the span", "qubes.A * work vault al\u{1F600}w\n", "qubes.A * work vault ", "al\u{1F600}w"],
    ["a control character", "qubes.A * w\u0001rk vault alow\n", "qubes.A * w\\x01rk vault ", "alow"],
  ])("places the caret under the span with %s before or in it", (_what, text, shownBefore, span) => {
    const report = reportOf({ "30-user.policy": text }, false);
    const lines = formatCheckText(report).stdout.split("\n");
    const src = lines.findIndex((l) => l.startsWith("1 | "));
    expect(src).toBeGreaterThan(0);
    expect(lines[src]!.startsWith(`1 | ${shownBefore}`)).toBe(true);
    // Columns on screen: a surrogate pair is one.
    const columns = (s: string) => [...s].length;
    expect(lines[src + 1]).toBe(`  | ${" ".repeat(columns(shownBefore))}${"^".repeat(columns(span))}`);
  });

  it("colours severities, carets and help only when asked", () => {
    const report = reportOf({ "30-user.policy": "qubes.A * work vault alow\n" }, false);
    const { stdout } = formatCheckText(report, { color: true });
    expect(stdout).toContain("\x1b[1;31merror[invalid-action]\x1b[0m");
    expect(stdout).toContain("\x1b[1;31m^^^^\x1b[0m");
    expect(formatCheckText(report).stdout).not.toContain("\x1b");
  });

  it("the JSON keeps the shape scripts use", () => {
    const report = reportOf({ "30-user.policy": "qubes.A * work vault alow\n" }, false);
    expect(checkReportJson(report)).toEqual({
      ok: false,
      rules: 0,
      errors: 1,
      warnings: 0,
      notes: 0,
      diagnostics: [{ file: "policy.d/30-user.policy", line: 1, column: 22, endLine: 1, endColumn: 26, severity: "error", code: "invalid-action", message: "invalid action: alow", help: "the action is one of `allow`, `deny`, `ask`" }],
    });
  });
});

describe("colour decision", () => {
  it.each([
    [{}, true, true],
    [{}, false, false],
    [{ TERM: "dumb" }, true, false],
    [{ NO_COLOR: "1" }, true, false],
    [{ NO_COLOR: "" }, true, true],
    [{ FORCE_COLOR: "1" }, false, true],
    [{ FORCE_COLOR: "" }, false, true],
    [{ FORCE_COLOR: "0" }, true, false],
    [{ FORCE_COLOR: "false" }, true, false],
    [{ FORCE_COLOR: "1", NO_COLOR: "1" }, false, true],
    [{ FORCE_COLOR: "2", TERM: "dumb" }, false, true],
  ])("%j on a terminal: %s → %s", (env, tty, want) => {
    expect(wantsColor(env as Record<string, string>, tty)).toBe(want);
  });
});

describe("the text format's source line", () => {
  // A tab-separated line is shown with each tab as four columns; the carets stay under the span.
  // The tabs-only path must show exactly what the general path (any other control character) shows:
  // a control character after the span changes nothing but its own escape at the end of the line.
  it("shows a line with tabs as the general path does", () => {
    const piece = fc.constantFrom("\t", "a", " ", "é", "@anyvm", "\t\t", "x=1");
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 12 }).map((a) => a.join("")), fc.nat(40), fc.nat(40), fc.boolean(), (line, a, b, color) => {
        const from = Math.min(a, b, line.length);
        const to = Math.min(Math.max(a, b), line.length);
        const d = { file: "f", line: 3, column: from + 1, endLine: 3, endColumn: to + 1, severity: "warning" as const, code: "shadowed-rule", message: "m", sourceLine: line };
        const tabsOnly = formatDiagnostic(d, { color });
        const general = formatDiagnostic({ ...d, sourceLine: line + "\x01" }, { color });
        // Row 1 is the source line (it ends with the line's text), row 2 the carets.
        const rows = tabsOnly.split("\n");
        const generalRows = general.split("\n");
        expect(rows[1]!.endsWith(` ${line.replaceAll("\t", "    ")}`)).toBe(true);
        expect(generalRows).toEqual([rows[0], rows[1] + "\\x01", ...rows.slice(2)]);
      }),
      { numRuns: 1000 },
    );
  });
});
