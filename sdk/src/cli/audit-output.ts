/**
 * `--output FILE` for the auditor's commands that print their answer as
 * they go (diff, who-can, what-can, flip, replay): the command's standard
 * output goes to FILE as it is written (one behaviour for every command,
 * `[cannot-write]` and exit 2 when it cannot be written, as `writeOutput`
 * says it). Nothing is written when the command fails before printing
 * anything (a usage or input error).
 */
import { closeSync, openSync, writeSync } from "node:fs";
import * as path from "node:path";
import { Writable } from "node:stream";
import type { CliIO } from "./command.js";
import { UsageError } from "./command.js";
import { takeRepeated } from "./connect.js";
import { CANNOT_WRITE, cannotWriteMessage } from "./output.js";
import { inputClash } from "./inputs-read.js";

/** The usage line of the option. */
export const OUTPUT_USAGE = "  --output FILE         write the answer there instead of standard output";

/** Takes `--output FILE` / `--output=FILE` out of `args` (before `--`); the last one given wins. */
function takeOutput(args: string[]): { file: string | undefined; rest: string[] } {
  const { values, rest } = takeRepeated(args, "--output", "option --output needs a value");
  const file = values.at(-1);
  // One value given twice: which was meant is not for us to guess (as for every option).
  const other = values.find((v) => v !== file);
  if (other !== undefined) throw new UsageError(`option \`--output\` was given twice (\`${other}\`, then \`${file}\`); give it once`);
  if (file === "") throw new UsageError("--output needs the name of a file");
  // \`-\` is standard output, as for every Unix tool (see output.ts \`outputFile\`).
  return { file: file === "-" ? undefined : file, rest };
}

/** Where a command's answer goes as it is made: FILE, opened at the first piece. */
export interface FileSink {
  write(data: string | Uint8Array): void;
  /** Was anything written (or tried)? */
  readonly started: boolean;
  /**
   * Closes the file (creating it empty when nothing was written); false,
   * with `qkit COMMAND: cannot write … [cannot-write]` on standard error,
   * when it could not be written.
   */
  finish(): boolean;
  /** Closes the file, if open, without a word (the command failed). */
  close(): void;
}

/** A {@link FileSink} for `file` (relative to the current directory). */
export function fileSink(io: CliIO, command: string, file: string): FileSink {
  const where = path.resolve(io.cwd, file);
  let fd: number | undefined;
  let failed: unknown;
  /** The output would overwrite a file the command read (see inputs-read.ts): said instead of writing. */
  let clash: string | undefined;
  let started = false;
  const put = (data: string | Uint8Array) => {
    started = true;
    if (failed !== undefined || clash !== undefined) return;
    try {
      if (fd === undefined) {
        clash = inputClash("--output", file, io.cwd);
        if (clash !== undefined) return;
        fd = openSync(where, "w");
      }
      if (typeof data === "string") writeSync(fd, data);
      else writeSync(fd, data, 0, data.length);
    } catch (e) {
      failed = e;
    }
  };
  const close = () => {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch (e) {
        failed ??= e;
      }
      fd = undefined;
    }
  };
  return {
    write: (data) => {
      if (data.length > 0) put(data);
    },
    get started() {
      return started;
    },
    finish() {
      if (!started) put("");
      close();
      if (clash !== undefined) {
        io.stderr.write(`qkit ${command}: ${clash} [output-is-input]\n`);
        return false;
      }
      if (failed === undefined) return true;
      io.stderr.write(`qkit ${command}: ${cannotWriteMessage(file, failed)} [${CANNOT_WRITE}]\n`);
      return false;
    },
    close,
  };
}

/**
 * `run` with `--output FILE`: its standard output goes to FILE as it is
 * written (the file is opened at the first piece, so an answer of any size
 * is never held in memory). A command that fails before printing anything
 * leaves no file; one that prints nothing and succeeds writes an empty one.
 */
export function withOutputOption(command: string, run: (args: string[], io: CliIO) => Promise<number>): (args: string[], io: CliIO) => Promise<number> {
  return async (args, io) => {
    const { file, rest } = takeOutput(args);
    if (file === undefined) return run(rest, io);
    const out = fileSink(io, command, file);
    const sink = new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        out.write(chunk);
        cb();
      },
    });
    let code: number;
    try {
      code = await run(rest, { ...io, stdout: sink });
    } catch (e) {
      out.close();
      throw e;
    }
    // An error before any answer leaves no file behind.
    if (code === 2 && !out.started) return code;
    return out.finish() ? code : 2;
  };
}
