/**
 * `qkit sim serve`: runs the offline Admin API simulator on a Unix socket in
 * the foreground until SIGTERM/SIGINT.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Command } from "./command.js";
import { UsageError } from "./command.js";
import { createMemoryFileSystem, jsonErrorAt, loadPolicy } from "@qubes-kit/language";
import { Simulator } from "../sim/index.js";
import { didYouMean, errnoCode, oneLine, osMessage } from "./text.js";

/** The policy files of a directory as the simulator's store holds them: `NAME.policy` and `include/NAME`. */
function readPolicyDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const sub of ["", "include"]) {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(dir, sub));
    } catch {
      continue;
    }
    for (const n of names) {
      const p = path.join(dir, sub, n);
      try {
        if (fs.statSync(p).isFile()) out[sub ? `${sub}/${n}` : n] = fs.readFileSync(p, "utf8");
      } catch {
        // unreadable: the daemon skips it too
      }
    }
  }
  return out;
}

/** The first error of the policy as the daemon loads it, or `undefined` when it loads. */
function firstLoadError(files: Record<string, string>, dir: string): string | undefined {
  const r = loadPolicy(createMemoryFileSystem(files), { runtimeDir: null });
  if (r.ok) return undefined;
  const e = r.error;
  if (e.file === undefined || e.detail === undefined) return oneLine(e.message);
  const file = e.file.replace(/^\/etc\/qubes\/policy\.d\//, "");
  return `${file.startsWith("/") ? file : path.join(dir, file)}:${e.line ?? "None"}: ${oneLine(e.detail)}`;
}

const USAGE = `usage: qkit sim serve --socket PATH [--system FILE] [--policy-dir DIR [--read-only]]

Serves the offline Qubes Admin API simulator (qubesd's admin.* methods and the
policy admin API policy.*) on a Unix socket (mode 0600), one request per
connection, until SIGTERM or SIGINT; the socket is removed on exit.

options:
  --socket PATH      where to listen (required)
  --system FILE      a GetSystemInfo JSON snapshot to start from
                     (default: a freshly installed dom0)
  --policy-dir DIR   the qrexec policy directory served by policy.* and used
                     to filter calls from management qubes (default: empty, in
                     memory). Pushes (policy.Replace, policy.Remove, e.g. from
                     \`qkit policy push\`) are WRITTEN BACK into DIR
  --read-only        with --policy-dir: serve a copy of DIR read at start;
                     pushes change the copy only, DIR is never written

A policy directory that does not load (the daemon would deny every call) is
reported at start, with its first error; the simulator serves it anyway, as
qubesd would.

Calls the simulator closes without a reply (as qubesd does when it fails) are
logged on standard error: \`qkit sim: closed REQUEST without a reply: REASON\`.

Its output is log lines, not a document: it has no --json.

exit status: 0 stopped by SIGTERM or SIGINT, 1 it cannot start (the system
file cannot be read or is not a GetSystemInfo answer, the socket cannot be
listened on), 2 usage error
`;

interface Options {
  socket: string;
  system?: string;
  policyDir?: string;
  readOnly?: boolean;
}

function parse(args: string[]): Options {
  const out: Partial<Options> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf("=");
    const [flag, inline] = a.startsWith("--") && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === "--socket") out.socket = value();
    else if (flag === "--system") out.system = value();
    else if (flag === "--policy-dir") out.policyDir = value();
    else if (flag === "--read-only" && inline === undefined) out.readOnly = true;
    else throw new UsageError(`unknown option \`${a}\`${didYouMean(flag, ["--socket", "--system", "--policy-dir", "--read-only"])}`);
  }
  if (!out.socket) throw new UsageError("--socket PATH is required");
  if (out.readOnly && out.policyDir === undefined) throw new UsageError("--read-only goes with --policy-dir");
  return out as Options;
}

/** The `qkit sim` commands. */
export const commands: Command[] = [
  {
    path: ["sim", "serve"],
    summary: "serve the offline Admin API simulator on a Unix socket",
    usage: USAGE,
    async run(args, io) {
      const opts = parse(args);
      const resolve = (p: string) => path.resolve(io.cwd, p);
      let system;
      if (opts.system) {
        const file = resolve(opts.system);
        let text: string;
        try {
          text = fs.readFileSync(file, "utf8");
        } catch (e) {
          io.stderr.write(`qkit sim serve: cannot read the system file \`${opts.system}\`: ${osMessage(e)} [system-unreadable]\n`);
          return 1;
        }
        try {
          system = JSON.parse(text);
        } catch {
          io.stderr.write(`qkit sim serve: the system file \`${opts.system}\` is not valid JSON (${jsonErrorAt(text, opts.system)}); give a GetSystemInfo answer (\`qkit system snapshot\`) [system-invalid]\n`);
          return 1;
        }
        if (!system || typeof system !== "object" || typeof system.domains !== "object") {
          io.stderr.write(`qkit sim serve: the system file \`${opts.system}\` has no \`domains\` object; give a GetSystemInfo answer (\`qkit system snapshot\`) [system-invalid]\n`);
          return 1;
        }
      }
      let policy: string | Record<string, string> | undefined;
      if (opts.policyDir !== undefined) {
        const dir = resolve(opts.policyDir);
        if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
          io.stderr.write(`qkit sim serve: --policy-dir: \`${opts.policyDir}\`: ${fs.existsSync(dir) ? "Not a directory" : "No such file or directory"} [usage]\n`);
          return 2;
        }
        const files = readPolicyDir(dir);
        policy = opts.readOnly ? files : dir;
        const problem = firstLoadError(files, opts.policyDir);
        if (problem) {
          io.stderr.write(`qkit sim serve: warning: the policy in \`${opts.policyDir}\` does not load, so every qrexec call is denied: ${problem}; fix it (\`qkit policy check ${opts.policyDir}\`) or push a fix [policy-does-not-load]\n`);
        }
      }
      const sim = new Simulator({
        system,
        policy,
        onAbort: (reason, request) => io.stderr.write(`qkit sim: closed \`${request}\` without a reply: ${reason}\n`),
      });
      const socket = resolve(opts.socket);
      let server;
      try {
        server = await sim.listen(socket);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        io.stderr.write(`qkit sim serve: cannot listen on \`${opts.socket}\`: ${osMessage(err)}${err.code === "EADDRINUSE" ? " (another simulator, or a stale socket: remove it)" : ""} [${errnoCode(err, "listen-failed")}]\n`);
        return 1;
      }
      io.stdout.write(`qkit sim: listening on ${socket}\n`);
      if (opts.policyDir !== undefined) {
        io.stderr.write(opts.readOnly ? `qkit sim: serving a copy of ${opts.policyDir} (read-only: pushes are not written back)\n` : `qkit sim: serving ${opts.policyDir}: pushes are written back into it\n`);
      }
      await new Promise<void>((done) => {
        const stop = () => {
          process.off("SIGTERM", stop);
          process.off("SIGINT", stop);
          done();
        };
        process.on("SIGTERM", stop);
        process.on("SIGINT", stop);
      });
      await server.close();
      return 0;
    },
  },
];
