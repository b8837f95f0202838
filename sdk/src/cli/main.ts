/**
 * `qkit`: the command-line front end of qubes-kit.
 */
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { commands as policyCommands } from "./policy.js";
import { commands as demoCommands } from "./demo.js";
import { commands as qubeCommands } from "./qube.js";
import { commands as simCommands } from "./sim.js";
import { commands as systemCommands } from "./system.js";
import { commands as eventsCommands } from "./events.js";
import { commands as policyRemoteCommands } from "./policy-remote.js";

const ALL: Command[] = [...policyCommands, ...demoCommands, ...qubeCommands, ...simCommands, ...systemCommands, ...eventsCommands, ...policyRemoteCommands];

function help(io: CliIO): void {
  const width = Math.max(...ALL.map((c) => c.path.join(" ").length));
  io.stdout.write("usage: qkit <command> [options]\n\ncommands:\n");
  for (const c of ALL) io.stdout.write(`  ${c.path.join(" ").padEnd(width)}  ${c.summary}\n`);
  io.stdout.write("\nrun `qkit <command> --help` for the options of a command\n");
}

/** Runs `qkit` with the given arguments; resolves to the exit code. */
export async function main(argv: string[], io: CliIO): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    help(io);
    return argv.length === 0 ? 2 : 0;
  }
  let best: Command | undefined;
  for (const c of ALL) {
    if (c.path.every((p, i) => argv[i] === p) && (!best || c.path.length > best.path.length)) best = c;
  }
  if (!best) {
    io.stderr.write(`qkit: unknown command \`${argv.slice(0, 2).join(" ")}\` [unknown-command]\n`);
    help(io);
    return 2;
  }
  const rest = argv.slice(best.path.length);
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(best.usage.endsWith("\n") ? best.usage : best.usage + "\n");
    return 0;
  }
  try {
    return await best.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`qkit ${best.path.join(" ")}: ${err.message} [usage]\n`);
      return 2;
    }
    const msg = err instanceof Error ? err.message : String(err);
    io.stderr.write(`qkit ${best.path.join(" ")}: ${msg}\n`);
    return 1;
  }
}

const isEntry = typeof process !== "undefined" && process.argv[1] !== undefined && /(?:^|[\\/])(?:cli|main)\.(?:js|ts|mjs)$|[\\/]qkit$/.test(process.argv[1]);
if (isEntry) {
  main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`qkit: internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 70;
    },
  );
}
