/**
 * The command line as given, kept before `vscode-languageserver` is loaded: imported first by
 * `server.ts`. With the stdio front (`threads.ts`), `--clientProcessId` is taken off the main
 * thread's `process.argv`: the library watches that process from every thread that loads it, and
 * on the main thread it would exit with 1 after a `shutdown` it never sees. The worker gets the
 * whole command line, watches the client there, and the process exits with the worker's code.
 */
import { isMainThread } from "node:worker_threads";

/** The arguments after the script, as given. */
export const givenArgv: readonly string[] = process.argv.slice(2);

/** Whether this process serves over stdio with the front and a worker (`QKIT_LSP_THREADS=0`: one thread). */
export const frontAndWorker = isMainThread && givenArgv.includes("--stdio") && process.env.QKIT_LSP_THREADS !== "0";

if (frontAndWorker) {
  const kept: string[] = [];
  for (let i = 0; i < givenArgv.length; i++) {
    const a = givenArgv[i]!;
    if (a === "--clientProcessId") i++;
    else if (!a.startsWith("--clientProcessId=")) kept.push(a);
  }
  process.argv.splice(2, process.argv.length - 2, ...kept);
}
