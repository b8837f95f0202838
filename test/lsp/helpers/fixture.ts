/**
 * Fixture helpers for the editor-service tests (style guide P6).
 *
 * A fixture is text with files separated by `#- NAME` lines (relative names
 * go under /etc/qubes/policy.d) and options in `#! …` lines before the first
 * file (`#! system` loads test/fixtures/lsp/system.json). `$0` marks the
 * cursor. A comment line `#   ^^^ severity[code]` (optionally `: message`)
 * labels the columns of the nearest line above that is not an annotation;
 * in `#^^^` (no space) the `#` itself marks column 0.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  analyzeWorkspace,
  createMemoryFileSystem,
  prepareSystemInfo,
  type PolicyDocument,
  type PolicySnapshot,
  type RawSystemInfo,
  type Span,
  type SystemInfo,
} from "@qubes-kit/language";

export const FIXTURES = fileURLToPath(new URL("../../fixtures/lsp/", import.meta.url));

/** The demo system model (10 qubes) used by the fixtures. */
export function demoSystem(): SystemInfo {
  return prepareSystemInfo(JSON.parse(readFileSync(FIXTURES + "system.json", "utf8")) as RawSystemInfo);
}

export interface Fixture {
  files: Record<string, string>;
  options: string[];
  /** The absolute path and offset of the `$0` cursor, when there is one. */
  cursor?: { path: string; offset: number };
}

export function absolute(name: string): string {
  return name.startsWith("/") ? name : `/etc/qubes/policy.d/${name}`;
}

/** Splits fixture text into files; removes the `$0` marker. */
export function parseFixture(text: string): Fixture {
  const files: Record<string, string> = {};
  const options: string[] = [];
  let current: string | undefined;
  let cursor: Fixture["cursor"];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const m = /^#- (\S+)\s*$/.exec(line);
    if (m) {
      current = absolute(m[1]!);
      files[current] = "";
      continue;
    }
    if (current === undefined) {
      if (line.startsWith("#! ")) options.push(line.slice(3).trim());
      continue;
    }
    files[current] += line + (i < lines.length - 1 ? "\n" : "");
  }
  for (const [path, body] of Object.entries(files)) {
    const at = body.indexOf("$0");
    if (at >= 0) {
      files[path] = body.slice(0, at) + body.slice(at + 2);
      cursor = { path, offset: at };
    }
  }
  return { files, options, ...(cursor ? { cursor } : {}) };
}

/** Loads a fixture's files into a snapshot (with the demo system when `#! system` is set). */
export function snapshotOf(fx: Fixture): PolicySnapshot {
  const system = fx.options.includes("system") ? demoSystem() : null;
  return analyzeWorkspace(createMemoryFileSystem(fx.files), { system, extraDocuments: Object.keys(fx.files) });
}

/** The document at a fixture path. */
export function docOf(snapshot: PolicySnapshot, path: string): PolicyDocument {
  const d = snapshot.document(path);
  if (!d) throw new Error(`no document ${path}`);
  return d;
}

const ANNOTATION = /^#(\s*)(\^+)\s+(error|warning|info|hint)\[([a-z0-9-]+)\](?::\s(.*))?$/;

/** One expected or actual diagnostic, rendered for comparison. */
export interface Labelled {
  key: string;
  message?: string;
}

/** The annotations of a file, as `L<line>:<from>-<to> severity[code]`. */
export function expectedLabels(text: string): Labelled[] {
  const lines = text.split(/\r\n|\r|\n/);
  const out: Labelled[] = [];
  let target = 0;
  lines.forEach((l, i) => {
    const m = ANNOTATION.exec(l);
    if (!m) {
      target = i + 1;
      return;
    }
    // `#^^^` starts at column 0: the `#` itself stands for the first column.
    const from = m[1]!.length === 0 ? 0 : 1 + m[1]!.length;
    const to = 1 + m[1]!.length + m[2]!.length;
    out.push({ key: `L${target}:${from}-${to} ${m[3]}[${m[4]}]`, ...(m[5] !== undefined ? { message: m[5] } : {}) });
  });
  return out;
}

/** The position of a span in a document, as `L<line>:<from>-<to>` (a zero-width span counts one column). */
export function spanLabel(doc: PolicyDocument, span: Span): string {
  const line = doc.lines.find((l) => span.start >= l.lineSpan.start && span.start <= l.lineSpan.end) ?? doc.lines[0];
  const base = line ? line.lineSpan.start : 0;
  const from = span.start - base;
  const to = Math.max(span.end - base, from + 1);
  return `L${line ? line.line : 1}:${from}-${to}`;
}
