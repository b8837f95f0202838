/**
 * `qkit policy pull DIR` / `qkit policy push DIR`: copy the live qrexec
 * policy to a directory and back through the policy admin API, with its
 * optimistic-concurrency tokens. A push never overwrites a file someone else
 * changed since the pull: that file is reported as a conflict.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createMemoryFileSystem, loadPolicy } from "@qubes-kit/language";
import { QubesException } from "../errors.js";
import { PolicyAdminTokenException, PolicyValidationError, policyErrors, policyToken, type PolicyAdmin, type PolicyToken } from "../policy-admin.js";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { CONNECTION_BOOLEAN_FLAGS, CONNECTION_USAGE, CONNECTION_VALUE_FLAGS, connect, parseArgs } from "./connect.js";
import { reportErrors } from "./qube.js";

/** The file in a pulled directory that remembers the token of every file. */
export const TOKENS_FILE = ".qkit-policy-tokens.json";

interface Tokens {
  main: Record<string, PolicyToken>;
  include: Record<string, PolicyToken>;
}

function readTokens(dir: string, shown = dir): Tokens | undefined {
  const p = join(dir, TOKENS_FILE);
  if (!existsSync(p)) return undefined;
  try {
    const t = JSON.parse(readFileSync(p, "utf8")) as Partial<Tokens>;
    return { main: t.main ?? {}, include: t.include ?? {} };
  } catch {
    throw new UsageError(`\`${join(shown, TOKENS_FILE)}\` is not valid JSON; pull again (with --force) to rewrite it`);
  }
}

function writeTokens(dir: string, t: Tokens): void {
  writeFileSync(join(dir, TOKENS_FILE), JSON.stringify(t, null, 2) + "\n");
}

const NAME = /^[A-Za-z0-9_-]+$/;

/** The policy files of a local directory: `NAME.policy` and `include/NAME`. */
function localFiles(dir: string): { main: Map<string, string>; include: Map<string, string> } {
  const main = new Map<string, string>();
  const include = new Map<string, string>();
  for (const f of readdirSync(dir)) {
    if (!f.endsWith(".policy")) continue;
    const name = f.slice(0, -".policy".length);
    if (NAME.test(name) && statSync(join(dir, f)).isFile()) main.set(name, readFileSync(join(dir, f), "utf8"));
  }
  const inc = join(dir, "include");
  if (existsSync(inc) && statSync(inc).isDirectory()) {
    for (const f of readdirSync(inc)) {
      if (NAME.test(f) && statSync(join(inc, f)).isFile()) include.set(f, readFileSync(join(inc, f), "utf8"));
    }
  }
  return { main, include };
}

const label = (name: string, include: boolean) => (include ? `include/${name}` : `${name}.policy`);

/**
 * Pulls into `dir` (`shown` is the directory as the user named it). A file
 * that is there and differs from what the last pull wrote (or that no pull
 * wrote) is a local change: without `force` nothing is written and each such
 * file is reported.
 */
async function pull(policy: PolicyAdmin, dir: string, shown: string, io: CliIO, force: boolean, json: boolean): Promise<number> {
  const snap = await policy.snapshot();
  const old = readTokens(dir, shown);
  const tokens: Tokens = { main: {}, include: {} };
  const pathOf = (name: string, include: boolean) => (include ? join(dir, "include", name) : join(dir, `${name}.policy`));
  const shownOf = (name: string, include: boolean) => (include ? join(shown, "include", name) : join(shown, `${name}.policy`));
  /** Whether the file on disk holds something the last pull did not write (and `incoming` would lose it). */
  const localChange = (name: string, include: boolean, incoming: string | undefined): boolean => {
    const p = pathOf(name, include);
    let text: string;
    try {
      if (!statSync(p).isFile()) return true;
      text = readFileSync(p, "utf8");
    } catch {
      return false; // not there: nothing to lose
    }
    if (incoming !== undefined && text === incoming) return false;
    const recorded = (include ? old?.include : old?.main)?.[name];
    return recorded === undefined || recorded !== policyToken(text);
  };
  const conflicts: string[] = [];
  for (const f of snap.files) if (localChange(f.name, f.include, f.text)) conflicts.push(shownOf(f.name, f.include));
  // Files pulled before that are gone from the server go here too (unless changed here).
  const gone: { name: string; include: boolean }[] = [];
  for (const kind of ["main", "include"] as const) {
    for (const name of Object.keys(old?.[kind] ?? {})) {
      const include = kind === "include";
      if (snap.files.some((f) => f.name === name && f.include === include)) continue;
      if (localChange(name, include, undefined)) conflicts.push(shownOf(name, include));
      gone.push({ name, include });
    }
  }
  if (conflicts.length && !force) {
    for (const c of conflicts) {
      io.stderr.write(`qkit policy pull: \`${c}\` has changes the last pull did not write; not overwritten (push them first, move the file away, or pull with --force) [local-change]\n`);
    }
    io.stderr.write(`qkit policy pull: nothing was written [local-change]\n`);
    if (json) io.stdout.write(JSON.stringify({ ok: false, dir: shown, pulled: [], removed: [], overwritten: [], local_changes: conflicts, skipped: [] }) + "\n");
    return 1;
  }
  mkdirSync(join(dir, "include"), { recursive: true });
  for (const f of snap.files) {
    writeFileSync(pathOf(f.name, f.include), f.text);
    (f.include ? tokens.include : tokens.main)[f.name] = f.token;
  }
  for (const g of gone) {
    const p = pathOf(g.name, g.include);
    if (existsSync(p)) unlinkSync(p);
  }
  writeTokens(dir, tokens);
  for (const s of snap.skipped) {
    io.stderr.write(`qkit policy pull: skipped ${label(s.name, s.include)}: ${s.reason} [unreadable-policy-file]\n`);
  }
  if (json) {
    io.stdout.write(
      JSON.stringify({
        ok: true,
        dir: shown,
        pulled: snap.files.map((f) => shownOf(f.name, f.include)),
        removed: gone.map((g) => shownOf(g.name, g.include)),
        overwritten: force ? conflicts : [],
        local_changes: [],
        skipped: snap.skipped.map((k) => ({ file: label(k.name, k.include), reason: k.reason })),
      }) + "\n",
    );
  } else io.stdout.write(`pulled ${snap.files.length} file${snap.files.length === 1 ? "" : "s"} into ${shown}${force && conflicts.length ? ` (--force: overwrote ${conflicts.length} changed file${conflicts.length === 1 ? "" : "s"})` : ""}\n`);
  return 0;
}

interface Change {
  name: string;
  include: boolean;
  kind: "replace" | "remove";
  text?: string;
  token: PolicyToken;
}

/**
 * The whole policy as it will be after the push, loaded as the daemon loads
 * it: a file name the daemon refuses, or an `!include` of a missing file,
 * would make it deny every call even though each file is valid on its own.
 * Files on the server that this tree does not hold (unreadable through the
 * API) take part as empty files: they exist, and the push leaves them alone.
 * Returns the number of errors printed.
 */
async function checkWholePolicy(policy: PolicyAdmin, dir: string, local: { main: Map<string, string>; include: Map<string, string> }, t: Tokens, io: CliIO, found: PushError[]): Promise<number> {
  const texts: Record<string, string> = {};
  for (const [name, text] of local.main) texts[`${name}.policy`] = text;
  for (const [name, text] of local.include) texts[`include/${name}`] = text;
  for (const name of await policy.list()) if (!local.main.has(name) && !(name in t.main)) texts[`${name}.policy`] = "";
  for (const name of await policy.list({ include: true })) if (!local.include.has(name) && !(name in t.include)) texts[`include/${name}`] = "";
  const result = loadPolicy(createMemoryFileSystem(texts), { collectAll: true, runtimeDir: null });
  let errors = 0;
  for (const d of result.diagnostics) {
    if (d.severity !== "error") continue;
    const where = d.file ? join(dir, d.file.endsWith(".policy") || d.file.startsWith("include/") ? d.file : "") : dir;
    io.stderr.write(`${where}:${d.line}: ${d.message} [${d.code}]${d.code === "invalid-filename" ? " (the daemon would deny every call)" : ""}\n`);
    found.push({ file: where, line: d.line ?? null, code: d.code, message: d.message });
    errors++;
  }
  return errors;
}

/** A problem `push --json` reports: an error in a file to send (nothing is then sent). */
interface PushError {
  file: string;
  line: number | null;
  code: string;
  message: string;
}

/** One change of `push --json`: what it does to which file, and whether it was done (or the error that refused it). */
interface PushChange {
  file: string;
  action: "create" | "replace" | "remove";
  done: boolean;
  error?: { code: string; message: string };
}

async function push(policy: PolicyAdmin, dir: string, io: CliIO, opts: { force: boolean; dryRun: boolean; serviceIncludes: Set<string>; shown: string; json: boolean }): Promise<number> {
  const errors: PushError[] = [];
  const done: PushChange[] = [];
  const report = (ok: boolean) => {
    if (opts.json) io.stdout.write(JSON.stringify({ ok, dry_run: opts.dryRun, changes: done, errors }) + "\n");
  };
  const tokens = readTokens(dir, opts.shown);
  if (!tokens && !opts.force) throw new UsageError(`\`${opts.shown}\` has no ${TOKENS_FILE}: pull first, or push with --force`);
  const t: Tokens = tokens ?? { main: {}, include: {} };
  const local = localFiles(dir);
  const changes: Change[] = [];
  for (const include of [true, false]) {
    const files = include ? local.include : local.main;
    const known = include ? t.include : t.main;
    for (const [name, text] of files) {
      const token = known[name];
      if (token !== undefined && token === policyToken(text)) continue;
      changes.push({ name, include, kind: "replace", text, token: opts.force ? "any" : (token ?? "new") });
    }
  }
  for (const include of [false, true]) {
    const files = include ? local.include : local.main;
    for (const [name, token] of Object.entries(include ? t.include : t.main)) {
      if (!files.has(name)) changes.push({ name, include, kind: "remove", token: opts.force ? "any" : token });
    }
  }
  // Check every changed file before sending anything.
  let invalid = 0;
  for (const c of changes) {
    if (c.kind !== "replace") continue;
    const file = label(c.name, c.include);
    const syntax = c.include && opts.serviceIncludes.has(c.name) ? "service" : "policy";
    for (const d of policyErrors(c.text!, file, syntax)) {
      const where = join(opts.shown, c.include ? "include" : "", c.include ? c.name : `${c.name}.policy`);
      io.stderr.write(`${where}:${d.line}: ${d.message} [${d.code}]\n`);
      errors.push({ file: where, line: d.line ?? null, code: d.code, message: d.message });
      invalid++;
    }
  }
  if (invalid === 0 && changes.length > 0) invalid += await checkWholePolicy(policy, opts.shown, local, t, io, errors);
  if (invalid > 0) {
    io.stderr.write(`qkit policy push: ${invalid} error${invalid === 1 ? "" : "s"}; nothing was sent [invalid-policy]\n`);
    report(false);
    return 1;
  }
  if (changes.length === 0) {
    if (opts.json) report(true);
    else io.stdout.write("nothing to push\n");
    return 0;
  }
  let failed = 0;
  for (const c of changes) {
    const file = label(c.name, c.include);
    const action = c.kind === "remove" ? "remove" : c.token === "new" ? "create" : "replace";
    if (opts.dryRun) {
      if (opts.json) done.push({ file, action, done: false });
      else io.stdout.write(`would ${action} ${file}\n`);
      continue;
    }
    const known = c.include ? t.include : t.main;
    try {
      if (c.kind === "replace") {
        const syntax = c.include && opts.serviceIncludes.has(c.name) ? "service" : "policy";
        await policy.replace(c.name, c.text!, c.token, { include: c.include, syntax });
        known[c.name] = policyToken(c.text!);
      } else {
        await policy.remove(c.name, c.token, { include: c.include });
        delete known[c.name];
      }
      if (opts.json) done.push({ file, action, done: true });
      else io.stdout.write(`${c.kind === "replace" ? (c.token === "new" ? "created" : "replaced") : "removed"} ${file}\n`);
    } catch (err) {
      failed++;
      if (err instanceof PolicyAdminTokenException) {
        io.stderr.write(`qkit policy push: conflict: ${file} changed on the server since it was pulled (${err.message}); pull again and redo the change [policy-conflict]\n`);
        done.push({ file, action, done: false, error: { code: "policy-conflict", message: err.message.split("\n")[0]! } });
      } else if (err instanceof PolicyValidationError || err instanceof QubesException) {
        io.stderr.write(`qkit policy push: ${file}: ${err.message.split("\n")[0]} [${err.code}]\n`);
        done.push({ file, action, done: false, error: { code: err.code, message: err.message.split("\n")[0]! } });
      } else {
        // The API failed part-way (a lost connection): the files already sent keep their new tokens, so
        // the next push sends only the rest instead of calling each of them a conflict.
        if (!opts.dryRun) writeTokens(dir, t);
        report(false);
        throw err;
      }
    }
  }
  if (!opts.dryRun) writeTokens(dir, t);
  report(failed === 0);
  return failed > 0 ? 1 : 0;
}

const pullCommand: Command = {
  path: ["policy", "pull"],
  summary: "copy the live qrexec policy into a directory (policy admin api)",
  usage: `usage: qkit policy pull DIR [--force] [--json] [connection options]

Writes every file of /etc/qubes/policy.d as DIR/NAME.policy and every include
file as DIR/include/NAME, and remembers their tokens (sha256 of what it wrote)
in DIR/${TOKENS_FILE} for \`qkit policy push\`.

A file in DIR that changed since the last pull, or that no pull wrote, is
never overwritten (nor removed): the pull reports it, writes nothing and
exits 1. Push the change first, move the file away, or use --force.

options:
  --force   overwrite (and remove) local changes
  --json    one JSON document: {"ok","dir","pulled","removed","overwritten",
            "local_changes","skipped":[{"file","reason"}]} (files as shown above)

${CONNECTION_USAGE}
exit status: 0 pulled, 1 local changes left alone (nothing written) or the policy
admin api failed (its message and code on standard error), 2 usage error`,
  run: (rest, io) =>
    reportErrors("policy pull", io, async (conn) => {
      const a = parseArgs(rest, CONNECTION_VALUE_FLAGS, [...CONNECTION_BOOLEAN_FLAGS, "--force", "--json"]);
      const [dir, extra] = a.positionals;
      if (!dir) throw new UsageError("missing directory");
      if (extra !== undefined) throw new UsageError(`unexpected argument \`${extra}\``);
      const { policy } = connect(a.flags, io, conn);
      return pull(policy, resolve(io.cwd, dir), dir, io, a.flags.has("--force"), a.flags.has("--json"));
    }),
};

const pushCommand: Command = {
  path: ["policy", "push"],
  summary: "send the changed files of a pulled directory back (policy admin api, with conflict checks)",
  usage: `usage: qkit policy push DIR [--dry-run] [--force] [--service-include NAME]... [--json] [connection options]

Sends every file of DIR that changed since \`qkit policy pull\`: new files are
created (token \`new\`), changed files replaced and deleted files removed with
the token of the version pulled, so a file someone else changed in between is
reported as a conflict and left alone (exit 1). Every changed file is checked
first; with any error nothing is sent. Include files are checked as policy
files unless named with --service-include (files used by !include-service).
--force writes with token \`any\` (overwrites).

options:
  --dry-run               say what would be sent, send nothing
  --force                 write with token \`any\`
  --service-include NAME  check include/NAME as a file of !include-service (repeatable)
  --json                  one JSON document: {"ok","dry_run","changes":[{"file","action"
                          (create, replace or remove),"done","error"?:{"code","message"}}],
                          "errors":[{"file","line","code","message"}]} (errors: nothing sent)

${CONNECTION_USAGE}
exit status: 0 sent (or nothing to send), 1 an error in a file (nothing sent), a conflict
or a file the server refused (the others are sent), or the policy admin api failed,
2 usage error`,
  run: (rest, io) =>
    reportErrors("policy push", io, async (conn) => {
      // --service-include may repeat: collect it by hand.
      const serviceIncludes = new Set<string>();
      const filtered: string[] = [];
      for (let i = 0; i < rest.length; i++) {
        if (rest[i] === "--service-include") {
          const v = rest[++i];
          if (v === undefined) throw new UsageError("option --service-include needs a value");
          serviceIncludes.add(v);
        } else filtered.push(rest[i]!);
      }
      const b = parseArgs(filtered, [...CONNECTION_VALUE_FLAGS], [...CONNECTION_BOOLEAN_FLAGS, "--dry-run", "--force", "--json"]);
      const [dir, extra] = b.positionals;
      if (!dir) throw new UsageError("missing directory");
      if (extra !== undefined) throw new UsageError(`unexpected argument \`${extra}\``);
      const full = resolve(io.cwd, dir);
      if (!existsSync(full)) throw new UsageError(`\`${dir}\`: No such file or directory`);
      const { policy } = connect(b.flags, io, conn);
      return push(policy, full, io, { force: b.flags.has("--force"), dryRun: b.flags.has("--dry-run"), serviceIncludes, shown: dir, json: b.flags.has("--json") });
    }),
};

/** The `qkit policy pull|push` commands. */
export const commands: Command[] = [pullCommand, pushCommand];
