/**
 * The shape of a `qkit` subcommand. Each command module exports a list of
 * these; `main.ts` dispatches on the longest matching path.
 */
import { fstatSync } from "node:fs";
import type { Readable, Writable } from "node:stream";

/** Where a command reads and writes; tests pass their own. */
export interface CliIO {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** One `qkit` subcommand, e.g. `["policy", "check"]`. */
export interface Command {
  path: string[];
  /** One line for `qkit --help`. */
  summary: string;
  /** The full usage text for `qkit <path> --help`. */
  usage: string;
  /** Runs the command; resolves to the process exit code (0 ok, 1 failure/diagnostics, 2 usage error). */
  run(args: string[], io: CliIO): Promise<number>;
}

/** Thrown by argument parsing for a usage error (exit code 2); `code` is printed after the message (default `usage`). */
export class UsageError extends Error {
  override name = "UsageError";
  constructor(
    message: string,
    readonly code: string = "usage",
  ) {
    super(message);
  }
}

/**
 * Standard input to read from (`-` given for a file). A directory redirected to it (`< DIR`) is
 * refused as `cat` refuses it (Node would read it as an empty stream, so the command would answer
 * as if given nothing).
 */
export function stdinToRead(io: CliIO, what: string): Readable {
  let directory = false;
  if (io.stdin === process.stdin) {
    try {
      directory = fstatSync(0).isDirectory();
    } catch {
      // No descriptor 0 (closed): the stream itself says so when read.
    }
  }
  if (directory) throw new UsageError(`cannot read ${what} from standard input: Is a directory; redirect a file to it (\`< FILE\`), or give the file's path`, "cannot-read");
  return io.stdin;
}
