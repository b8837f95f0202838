/**
 * `--output FILE` for the auditor's commands that print their answer as
 * they go (diff, who-can, what-can, flip, replay): the command runs with its
 * standard output collected, and the document is written to FILE at the end
 * (through `writeOutput`: one behaviour for every command, `[cannot-write]`
 * and exit 2 when it cannot be written). Nothing is written when the command
 * fails before printing anything (a usage or input error).
 */
import { Writable } from "node:stream";
import type { CliIO } from "./command.js";
import { UsageError } from "./command.js";
import { takeRepeated } from "./connect.js";
import { writeOutput } from "./output.js";

/** The usage line of the option. */
export const OUTPUT_USAGE = "  --output FILE         write the answer there instead of standard output";

/** Takes `--output FILE` / `--output=FILE` out of `args` (before `--`); the last one given wins. */
function takeOutput(args: string[]): { file: string | undefined; rest: string[] } {
  const { values, rest } = takeRepeated(args, "--output", "option --output needs a value");
  const file = values.at(-1);
  if (file === "") throw new UsageError("--output needs the name of a file");
  return { file, rest };
}

/** `run` with `--output FILE`: its standard output goes to FILE. */
export function withOutputOption(command: string, run: (args: string[], io: CliIO) => Promise<number>): (args: string[], io: CliIO) => Promise<number> {
  return async (args, io) => {
    const { file, rest } = takeOutput(args);
    if (file === undefined) return run(rest, io);
    const chunks: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        chunks.push(typeof chunk === "string" ? chunk : chunk.toString("utf8"));
        cb();
      },
    });
    const code = await run(rest, { ...io, stdout: sink });
    const text = chunks.join("");
    // An error before any answer leaves no file behind.
    if (code === 2 && text === "") return code;
    return writeOutput(io, command, file, text) ? code : 2;
  };
}
