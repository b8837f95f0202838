/**
 * Where a command's document goes (`--output FILE` or standard output), and
 * its `--format` (with `--json` as the alias of `--format json`): one
 * behaviour for every command. A file that cannot be written is one line in
 * the operating system's wording with the code `cannot-write`, exit 2.
 */
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import type { CliIO } from "./command.js";
import { UsageError } from "./command.js";
import type { ParsedArgs } from "./args.js";
import { oneLine, osMessage } from "./text.js";
import { inputClash } from "./inputs-read.js";

/** The message code of a file that cannot be written. */
export const CANNOT_WRITE = "cannot-write";

/** `cannot write \`FILE\`: <OS wording>; <what to do>` (no code, no command). */
export function cannotWriteMessage(file: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const todo =
    code === "ENOENT" || code === "ENOTDIR"
      ? "check that its directory exists"
      : code === "EISDIR"
        ? "give the name of a file, not a directory"
        : code === "EACCES" || code === "EPERM" || code === "EROFS"
          ? "write it somewhere you may write"
          : "check that its directory exists and is writable";
  return `cannot write \`${oneLine(file)}\`: ${osMessage(err)}; ${todo}`;
}

/**
 * The file an output option names (`--output`, `--coverage-output`), or
 * undefined for standard output: when the option is absent, and for \`-\`,
 * which means standard output as it does for every Unix tool (a file named
 * \`-\` is written as \`./-\`).
 */
export function outputFile(a: ParsedArgs, option: string): string | undefined {
  const v = a.values.get(option);
  return v === "-" ? undefined : v;
}

/**
 * Writes `text` to `file` (relative to the current directory), or to
 * standard output when `file` is undefined. On failure prints
 * `qkit COMMAND: cannot write … [cannot-write]` and returns false: the
 * command then exits 2.
 */
export function writeOutput(io: CliIO, command: string, file: string | undefined, text: string, option = "--output"): boolean {
  if (file === undefined) {
    io.stdout.write(text);
    return true;
  }
  const clash = inputClash(option, file, io.cwd);
  if (clash !== undefined) {
    io.stderr.write(`qkit ${command}: ${clash} [output-is-input]\n`);
    return false;
  }
  try {
    writeFileSync(path.resolve(io.cwd, file), text);
    return true;
  } catch (e) {
    io.stderr.write(`qkit ${command}: ${cannotWriteMessage(file, e)} [${CANNOT_WRITE}]\n`);
    return false;
  }
}

function orList(items: readonly string[]): string {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

/**
 * The `--format` of a command that also takes `--json` (the alias of
 * `--format json`): `allowed` in the order the usage lists them, the first
 * the default. Parse `json: true` and `format: "value"` for this.
 */
export function formatOption(a: ParsedArgs, allowed: readonly string[]): string {
  const given = a.values.get("format");
  if (a.flags.has("json")) {
    if (given !== undefined && given !== "json") throw new UsageError(`\`--json\` is \`--format json\`, and \`--format ${given}\` was given too: keep one`);
    return "json";
  }
  const format = given ?? allowed[0]!;
  if (!allowed.includes(format)) throw new UsageError(`--format must be ${orList(allowed)}, got \`${format}\``);
  return format;
}

/**
 * Text written in pieces and passed on in chunks of about 64 KiB, so a
 * large answer (a table of 2,000 × 2,000 cells, a million rows) goes out as
 * it is made and is never one string in memory. Standard output to a pipe
 * is asynchronous in Node: when the reader is slower than the command, the
 * sink says so (`write` returns false) and the writer's `blocked` is set;
 * loops then `await drain()`, so what waits in memory is one chunk, not the
 * answer. `end()` passes on the rest.
 */
export class ChunkedWriter {
  private parts: string[] = [];
  private size = 0;
  /** The sink asked to wait for its `drain` event. */
  blocked = false;
  constructor(private readonly sink: { write(chunk: string): unknown; once?(event: "drain", listener: () => void): unknown }) {}
  write(text: string): void {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= 65536) this.flush();
  }
  flush(): void {
    if (this.parts.length === 0) return;
    if (this.sink.write(this.parts.join("")) === false && this.sink.once) this.blocked = true;
    this.parts = [];
    this.size = 0;
  }
  /** Waits until the sink has taken what it holds, when it asked to. */
  async drain(): Promise<void> {
    if (!this.blocked) return;
    await new Promise<void>((resolve) => this.sink.once!("drain", resolve));
    this.blocked = false;
  }
  end(): void {
    this.flush();
  }
}
