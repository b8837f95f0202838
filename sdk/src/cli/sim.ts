/**
 * `qkit sim serve`: runs the offline Admin API simulator on a Unix socket in
 * the foreground until SIGTERM/SIGINT.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Command } from "./command.js";
import { UsageError } from "./command.js";
import { Simulator } from "../sim/index.js";

const USAGE = `usage: qkit sim serve --socket PATH [--system FILE] [--policy-dir DIR]

Serves the offline Qubes Admin API simulator (qubesd's admin.* methods and the
policy admin API policy.*) on a Unix socket (mode 0600), one request per
connection, until SIGTERM or SIGINT; the socket is removed on exit.

options:
  --socket PATH      where to listen (required)
  --system FILE      a GetSystemInfo JSON snapshot to start from
                     (default: a freshly installed dom0)
  --policy-dir DIR   the qrexec policy directory served by policy.* and used
                     to filter calls from management qubes (default: empty, in memory)
`;

function parse(args: string[]): { socket: string; system?: string; policyDir?: string } {
  const out: { socket?: string; system?: string; policyDir?: string } = {};
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
    else throw new UsageError(`unknown option \`${a}\``);
  }
  if (!out.socket) throw new UsageError("--socket PATH is required");
  return out as { socket: string; system?: string; policyDir?: string };
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
        } catch {
          io.stderr.write(`qkit sim serve: cannot read system file \`${file}\` [system-unreadable]\n`);
          return 1;
        }
        try {
          system = JSON.parse(text);
        } catch (e) {
          io.stderr.write(`qkit sim serve: system file \`${file}\` is not valid json: ${(e as Error).message} [system-invalid]\n`);
          return 1;
        }
        if (!system || typeof system !== "object" || typeof system.domains !== "object") {
          io.stderr.write(`qkit sim serve: system file \`${file}\` has no \`domains\` object [system-invalid]\n`);
          return 1;
        }
      }
      if (opts.policyDir !== undefined) {
        const dir = resolve(opts.policyDir);
        if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
          io.stderr.write(`qkit sim serve: --policy-dir: not a directory: \`${opts.policyDir}\` [usage]\n`);
          return 2;
        }
      }
      const sim = new Simulator({
        system,
        policy: opts.policyDir ? resolve(opts.policyDir) : undefined,
        onAbort: (reason, request) => io.stderr.write(`qkit sim: closed \`${request}\` without a reply: ${reason}\n`),
      });
      const socket = resolve(opts.socket);
      let server;
      try {
        server = await sim.listen(socket);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        io.stderr.write(`qkit sim serve: cannot listen on \`${socket}\`: ${err.message.toLowerCase()} [${(err.code ?? "listen-failed").toLowerCase()}]\n`);
        return 1;
      }
      io.stdout.write(`qkit sim: listening on ${socket}\n`);
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
