/**
 * Runs `qkit` in process (the CLI's `main`) with its own streams, as the
 * command-line tests need it.
 */
import { PassThrough } from "node:stream";
import { main } from "../../sdk/src/cli/main.js";

/** The exit code and the output of one `qkit` run. */
export interface QkitRun {
  code: number;
  out: string;
  err: string;
}

/** Runs `qkit ARGV…` in `cwd` with `env`; resolves to its exit code and output. */
export async function runQkit(argv: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<QkitRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d) => (out += d));
  stderr.on("data", (d) => (err += d));
  const code = await main(argv, { stdout, stderr, stdin: new PassThrough(), env: options.env ?? {}, cwd: options.cwd });
  return { code, out, err };
}

/**
 * Runs `qkit ARGV…` as on a terminal (standard input a TTY) and types
 * `answer` when it asks its question (`Only 'yes' is accepted`).
 */
export async function runQkitOnTerminal(answer: string, argv: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<QkitRun> {
  const stdin = Object.assign(new PassThrough(), { isTTY: true });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d) => (out += d));
  stderr.on("data", (d) => {
    err += d;
    if (String(d).includes("Only 'yes' is accepted")) stdin.write(answer);
  });
  const code = await main(argv, { stdout, stderr, stdin, env: options.env ?? {}, cwd: options.cwd });
  return { code, out, err };
}

/**
 * Starts `qkit sim serve --socket SOCKET ARGS…` in process in `cwd` and
 * waits until it listens. `done` settles when the server ends (the tests end
 * it with `process.emit("SIGTERM")`).
 */
export async function serveSim(socket: string, args: string[], cwd: string): Promise<{ done: Promise<number> }> {
  const stdout = new PassThrough();
  let out = "";
  stdout.on("data", (d) => (out += d));
  const done = main(["sim", "serve", "--socket", socket, ...args], { stdout, stderr: new PassThrough(), stdin: new PassThrough(), env: {}, cwd });
  while (!out.includes("listening")) await new Promise((r) => setTimeout(r, 10));
  return { done };
}
