/**
 * What makes `qkit policy check` fast on huge policies changes nothing it
 * prints:
 * - the one-shot analysis (`analyzeWorkspace(fs, { oneShot: true })`, the
 *   whole-policy findings in one linear pass) reports exactly the diagnostics
 *   of the editor's incremental analysis, on random policies;
 * - the streamed formats (`writeCheckJson`, `writeSarif`, `writeCheckText`,
 *   `writeGithub`, in chunks of any size) are exactly the formats built whole
 *   (`JSON.stringify(checkReportJson(…))`, `JSON.stringify(toSarif(…), null, 2)`,
 *   `formatCheckText`, `formatGithub`), on random reports.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import {
  analyzeWorkspace,
  checkReportJson,
  ChunkWriter,
  collect,
  mergeReports,
  mergeReportStreams,
  reportFromSnapshot,
  streamFromSnapshot,
  createMemoryFileSystem,
  formatCheckText,
  formatGithub,
  toSarif,
  writeCheckJson,
  writeCheckText,
  writeGithub,
  writeSarif,
  type CheckReport,
  type PolicySnapshot,
  type ReportDiagnostic,
} from "@qubes-kit/language";
import { demoSystem } from "../lsp/helpers/fixture.js";

const DIR = "/etc/qubes/policy.d";
const SOURCES = ["*", "@anyvm", "dom0", "@adminvm", "work", "vault", "uuid:1", "@tag:gpg-client", "@type:AppVM", "@dispvm:default-dvm", "$anyvm"];
const TARGETS = ["*", "@anyvm", "@default", "@dispvm", "@dispvm:default-dvm", "work", "vault", "@adminvm", "@tag:gpg-client", "$anyvm"];
const ACTIONS = ["allow", "deny", "ask", "ask target=vault", "allow target=work", "ask default_target=work", "ask target=@default", "allow target=@dispvm", "alow"];

const ruleLine = fc
  .tuple(fc.constantFrom("svc.A", "svc.B", "qubes.gpg", "qubes.Filecopy", "*"), fc.constantFrom("*", "+", "+x", "+y"), fc.constantFrom(...SOURCES), fc.constantFrom(...TARGETS), fc.constantFrom(...ACTIONS))
  .map(([s, a, src, tgt, act]) => `${s} ${s === "*" ? "*" : a} ${src} ${tgt} ${act}`);
const anyLine = fc.oneof(
  { weight: 10, arbitrary: ruleLine },
  { weight: 1, arbitrary: fc.constantFrom("", "# comment", "svc.A * work", "!include include/common", "!include include/missing", "!include-service qubes.filecopy +x include/legacy", "!include-service svc.B * include/legacy") },
);
// Service syntax (read by `!include-service`): `$` tokens and comma-separated parameters.
const legacyLine = fc
  .tuple(fc.constantFrom(...SOURCES), fc.constantFrom(...TARGETS), fc.constantFrom("allow", "deny", "ask", "ask,default_target=work", "allow,target=$dispvm:default-dvm", "ask,target=vault", "$include:x"))
  .map(([src, tgt, act]) => (act.startsWith("$include") ? act : `${src} ${tgt} ${act}`));
const policy = fc.record({
  "10-a.policy": fc.array(anyLine, { maxLength: 12 }),
  "30-user.policy": fc.array(anyLine, { maxLength: 25 }),
  "50-B.policy": fc.option(fc.array(anyLine, { maxLength: 4 }), { nil: undefined, freq: 4 }),
  "include/common": fc.array(ruleLine, { maxLength: 6 }),
  "include/legacy": fc.array(legacyLine, { maxLength: 5 }),
});

function fsOf(files: Record<string, string[] | undefined>) {
  const map: Record<string, string> = {};
  for (const [name, lines] of Object.entries(files)) if (lines) map[`${DIR}/${name}`] = lines.join("\n") + "\n";
  return createMemoryFileSystem(map, [DIR, `${DIR}/include`]);
}

/** Everything a report shows of a snapshot: every diagnostic with its related places and fix data, by file. */
function view(s: PolicySnapshot) {
  return { rules: s.rules.length, policy: s.policyDiagnostics, diagnostics: [...s.diagnostics].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) };
}

describe("one-shot analysis", () => {
  test("an editor snapshot never takes a one-shot snapshot's lean nodes, not even after an edit", () => {
    const inc = `${DIR}/inc/s`;
    const before = { [`${DIR}/10-a.policy`]: "!include-service qubes.S +a inc/s\n", [inc]: "work vault allow\n" + "work vault deny\n".repeat(10) };
    const after = { ...before, [inc]: "dom0 vault allow\n" + "work vault deny\n".repeat(9) + "work  vault   deny\n" };
    const a = analyzeWorkspace(createMemoryFileSystem(before, [DIR]), { oneShot: true });
    const b = analyzeWorkspace(createMemoryFileSystem(after, [DIR]), { oneShot: true, previous: a });
    const c = analyzeWorkspace(createMemoryFileSystem(after, [DIR]), { previous: b });
    const own = (l: object) => Object.prototype.hasOwnProperty.call(l, "lineSpan");
    // The one-shot snapshots read lean nodes (spans made on demand); the editor's are plain, as a fresh editor's.
    expect(a.document(inc)!.lines.some(own)).toBe(false);
    expect(b.document(inc)!.lines.some(own)).toBe(false);
    expect(c.document(inc)!.lines.every(own)).toBe(true);
    expect(c.document(inc)).toStrictEqual(analyzeWorkspace(createMemoryFileSystem(after, [DIR])).document(inc));
    expect(view(c)).toEqual(view(analyzeWorkspace(createMemoryFileSystem(after, [DIR]))));
  });

  test("reports what the incremental analysis reports (random policies)", () => {
    fc.assert(
      fc.property(policy, (files) => {
        const fs = fsOf(files);
        const editor = analyzeWorkspace(fs);
        const once = analyzeWorkspace(fs, { oneShot: true });
        expect(view(once)).toEqual(view(editor));
      }),
      { numRuns: 150 },
    );
  });

  test("with a system model too", () => {
    const system = demoSystem();
    fc.assert(
      fc.property(policy, (files) => {
        const fs = fsOf(files);
        const editor = analyzeWorkspace(fs, { system });
        const once = analyzeWorkspace(fs, { system, oneShot: true });
        expect(view(once)).toEqual(view(editor));
      }),
      { numRuns: 60 },
    );
  });
});

// ---------------------------------------------------------------------------
// Streamed formats = formats built whole.

/** Text with what makes escaping and layout hard: quotes, backslashes, control characters, tabs, CR/LF, astral and lone surrogates, `%`, `,`, `:`. */
const text = fc.array(fc.constantFrom("a", "Z", " ", "\t", "\n", "\r", '"', "\\", "%", ",", ":", "/", "\x01", "\x1b", "\x7f", "é", "\u{1F600}", "\ud800", "\udc00", "\u2028"), { maxLength: 12 }).map((a) => a.join(""));
const place = fc.record({ file: fc.oneof(text, fc.constantFrom("policy.d/30-user.policy", "/abs/x.policy", "-")), line: fc.nat(300).map((n) => n + 1), column: fc.nat(80).map((n) => n + 1), endLine: fc.nat(300).map((n) => n + 1), endColumn: fc.nat(90).map((n) => n + 1) });
const diagnostic: fc.Arbitrary<ReportDiagnostic> = fc
  .record({
    at: place,
    severity: fc.constantFrom("error", "warning", "info", "hint") as fc.Arbitrary<ReportDiagnostic["severity"]>,
    code: fc.oneof(fc.constantFrom("shadowed-rule", "invalid-action", "unknown-qube", "engine-error"), text),
    message: text,
    help: fc.option(text, { nil: undefined }),
    sourceLine: fc.option(text, { nil: undefined }),
    related: fc.option(fc.array(fc.record({ at: place, message: text }), { maxLength: 3 }), { nil: undefined }),
  })
  .map((r) => {
    const d: ReportDiagnostic = { file: r.at.file, line: r.at.line, column: r.at.column, endLine: r.at.endLine, endColumn: r.at.endColumn, severity: r.severity, code: r.code, message: r.message };
    if (r.help !== undefined) d.help = r.help;
    if (r.sourceLine !== undefined) d.sourceLine = r.sourceLine;
    if (r.related !== undefined) d.related = r.related.map((x) => ({ file: x.at.file, line: x.at.line, column: x.at.column, endLine: x.at.endLine, endColumn: x.at.endColumn, message: x.message }));
    return d;
  });
const report: fc.Arbitrary<CheckReport> = fc
  .record({ diagnostics: fc.array(diagnostic, { maxLength: 6 }), rules: fc.nat(1000), engineError: fc.option(text, { nil: undefined }), ok: fc.boolean() })
  .map((r) => {
    const errors = r.diagnostics.filter((d) => d.severity === "error").length;
    const warnings = r.diagnostics.filter((d) => d.severity === "warning").length;
    return { ok: r.ok, rules: r.rules, errors, warnings, notes: r.diagnostics.length - errors - warnings, diagnostics: r.diagnostics, ...(r.engineError !== undefined ? { engineError: r.engineError } : {}) };
  });

/** What a streamed formatter writes through a writer of chunks of `size` code units, with every chunk's size checked. */
function streamed(size: number, write: (out: ChunkWriter) => void): string {
  const chunks: string[] = [];
  const out = new ChunkWriter((c) => chunks.push(c), size);
  write(out);
  out.flush();
  expect(chunks.every((c) => c.length > 0)).toBe(true);
  return chunks.join("");
}

const size = fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 400 }), fc.constant(1 << 20));

describe("streamed formats", () => {
  test("JSON: exactly JSON.stringify(checkReportJson(report))", () => {
    fc.assert(fc.property(report, size, (r, n) => {
        expect(streamed(n, (out) => writeCheckJson(r, out))).toBe(JSON.stringify(checkReportJson(r)));
      }), { numRuns: 400 });
  });

  test("SARIF: exactly JSON.stringify(toSarif(report), null, 2)", () => {
    const base = fc.option(fc.constantFrom("file:///work/", "file:///a%20b/"), { nil: undefined });
    fc.assert(
      fc.property(report, size, base, fc.option(fc.constant("https://example.org"), { nil: undefined }), fc.boolean(), (r, n, baseUri, informationUri, stdin) => {
        const options = { tool: { name: "qkit", version: "1.2.3", ...(informationUri ? { informationUri } : {}) }, ...(baseUri !== undefined ? { baseUri } : {}), ...(stdin ? { stdinFile: "-" } : {}) };
        const whole = toSarif(r, options);
        expect(streamed(n, (out) => writeSarif(r, options, out))).toBe(JSON.stringify(whole, null, 2));
        // Standard input is no file: no uri and no uriBaseId, a description instead.
        const locations = JSON.stringify(whole);
        if (stdin && r.diagnostics.some((d) => d.file === "-")) expect(locations).toContain('"artifactLocation":{"description":{"text":"standard input');
        if (stdin) expect(locations).not.toContain('"uri":"-"');
      }),
      { numRuns: 400 },
    );
  });

  test("text and GitHub: the streamed text is the whole text, in any chunk size", () => {
    fc.assert(
      fc.property(report, size, fc.boolean(), fc.boolean(), fc.boolean(), (r, n, color, snippets, strict) => {
        const options = { color, snippets, strict };
        const whole = formatCheckText(r, options);
        let stderr = "";
        expect(streamed(n, (out) => (stderr = writeCheckText(r, options, out)))).toBe(whole.stdout);
        expect(stderr).toBe(whole.stderr);
        expect(streamed(n, (out) => writeGithub(r, out))).toBe(formatGithub(r));
      }),
      { numRuns: 300 },
    );
  });
});

describe("a streamed report (what `qkit policy check DIR` writes from)", () => {
  const options = { shownPath: (p: string) => p.replace(`${DIR}/`, "policy.d/"), policyLabel: "policy.d" };

  test("streamFromSnapshot yields exactly reportFromSnapshot, with its counts, each time it is read", () => {
    const system = demoSystem();
    fc.assert(
      fc.property(policy, fc.boolean(), (files, withSystem) => {
        const snapshot = analyzeWorkspace(fsOf(files), { system: withSystem ? system : null, oneShot: true });
        const whole = reportFromSnapshot(snapshot, options);
        const stream = streamFromSnapshot(snapshot, options);
        const { diagnostics, codes, ...counts } = stream;
        const { diagnostics: all, ...wholeCounts } = whole;
        expect(counts).toEqual(wholeCounts);
        expect([...diagnostics]).toEqual(all);
        expect([...diagnostics]).toEqual(all);
        // The codes it knows without locating a diagnostic: those of the diagnostics, in order.
        expect(codes && [...codes]).toEqual([...new Set(all.map((d) => d.code))]);
        // The formats write the same from either.
        expect(collect((out) => writeCheckJson(stream, out))).toBe(collect((out) => writeCheckJson(whole, out)));
        const sarif = { tool: { name: "qkit", version: "1" } };
        expect(collect((out) => writeSarif(stream, sarif, out))).toBe(JSON.stringify(toSarif(whole, sarif), null, 2));
      }),
      { numRuns: 80 },
    );
  });

  test("mergeReportStreams reads the reports in turn, as mergeReports copies them", () => {
    fc.assert(
      fc.property(fc.array(report, { maxLength: 4 }), (reports) => {
        const merged = mergeReportStreams(reports);
        const { diagnostics, codes, ...counts } = merged;
        const { diagnostics: all, ...wholeCounts } = mergeReports(reports);
        expect(counts).toEqual(wholeCounts);
        expect([...diagnostics]).toEqual(all);
        expect([...diagnostics]).toEqual(all);
        if (reports.length !== 1) expect(codes && [...codes]).toEqual([...new Set(all.map((d) => d.code))]);
      }),
      { numRuns: 200 },
    );
  });
});
