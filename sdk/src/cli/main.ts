/**
 * `qkit`: the command-line front end of qubes-kit.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
// The policy commands load with the CLI itself (they are the common case and
// a dynamic import costs a round trip through the module loader); the rest
// (Admin API client, simulator) loads on demand.
import * as policyModule from "./policy.js";

/**
 * Every command, with the module that implements it. Modules load on
 * demand: `qkit policy check` never loads the Admin API client or the
 * simulator, which keeps start-up small (it counts in every run).
 */
interface Entry {
  path: string[];
  summary: string;
  load: () => Promise<{ commands: Command[] }>;
}

const ENTRIES: Entry[] = [
  { path: ["policy", "check"], summary: "validate a policy.d directory or policy files", load: async () => policyModule },
  { path: ["policy", "eval"], summary: "decide qrexec calls as the policy daemon does", load: async () => policyModule },
  { path: ["policy", "explain"], summary: "decide one call and explain which rule decided it and why", load: async () => policyModule },
  { path: ["policy", "test"], summary: "run policy test files (expected decisions), with coverage", load: () => import("./policy-audit.js") },
  { path: ["policy", "diff"], summary: "every request whose decision differs between two policies", load: () => import("./policy-audit.js") },
  { path: ["policy", "who-can"], summary: "which sources may call a service (on a target), and how", load: () => import("./policy-audit.js") },
  { path: ["policy", "what-can"], summary: "every call a source qube may make, and how it is decided", load: () => import("./policy-audit.js") },
  { path: ["policy", "table"], summary: "the decision table of a service: sources × targets (text, csv, markdown, html)", load: () => import("./policy-audit.js") },
  { path: ["policy", "pull"], summary: "download the policy through the policy admin API", load: () => import("./policy-remote.js") },
  { path: ["policy", "push"], summary: "upload policy changes, refusing to overwrite someone else's", load: () => import("./policy-remote.js") },
  { path: ["qube", "ls"], summary: "list the qubes", load: () => import("./qube.js") },
  { path: ["qube", "prefs"], summary: "show or set properties of a qube", load: () => import("./qube.js") },
  { path: ["qube", "features"], summary: "show or set features of a qube", load: () => import("./qube.js") },
  { path: ["qube", "tags"], summary: "show, add or remove tags of a qube", load: () => import("./qube.js") },
  { path: ["system", "snapshot"], summary: "print the system model (internal.GetSystemInfo JSON)", load: () => import("./system.js") },
  { path: ["events"], summary: "follow the Admin API event stream", load: () => import("./events.js") },
  { path: ["template", "plan"], summary: "show what applying a stack would change on the system", load: () => import("./template.js") },
  { path: ["template", "apply"], summary: "apply a stack (or a saved plan) to the system, after a rehearsal", load: () => import("./template.js") },
  { path: ["template", "drift"], summary: "list managed settings changed on the system since the last apply", load: () => import("./template.js") },
  { path: ["sim", "serve"], summary: "serve an offline Admin API simulator on a Unix socket", load: () => import("./sim.js") },
  { path: ["demo"], summary: "validate the bundled demo policy and decide typical calls", load: () => import("./demo.js") },
  { path: ["template", "check"], summary: "check stack files (*.qubes.yaml) without touching the system", load: () => import("./template-tools.js") },
  { path: ["template", "schema"], summary: "print the JSON Schema of stack files, for editors without qkit-lsp", load: () => import("./template-tools.js") },
  { path: ["template", "whatif"], summary: "decide qrexec calls as they will be once a stack is applied", load: () => import("./template-tools.js") },
  { path: ["template", "export"], summary: "write a stack file from the live system", load: () => import("./template-tools.js") },
];

function help(io: CliIO): void {
  const width = Math.max(...ENTRIES.map((c) => c.path.join(" ").length));
  io.stdout.write("usage: qkit <command> [options]\n\ncommands:\n");
  for (const c of ENTRIES) io.stdout.write(`  ${c.path.join(" ").padEnd(width)}  ${c.summary}\n`);
  io.stdout.write("\nrun `qkit <command> --help` for the options of a command\n");
}

/** Runs `qkit` with the given arguments; resolves to the exit code. */
export async function main(argv: string[], io: CliIO): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    help(io);
    return argv.length === 0 ? 2 : 0;
  }
  let entry: Entry | undefined;
  for (const c of ENTRIES) {
    if (c.path.every((p, i) => argv[i] === p) && (!entry || c.path.length > entry.path.length)) entry = c;
  }
  const best = entry && (await entry.load()).commands.find((c) => c.path.join(" ") === entry!.path.join(" "));
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

// The CLI runs when this file is the program, whatever name it is started by (a symlink
// such as `node_modules/.bin/qkit` included); imported (by tests), it only exports `main`.
const isEntry = (() => {
  if (typeof process === "undefined" || process.argv[1] === undefined) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();
if (isEntry) {
  // `qkit … | head`: a closed pipe ends the command quietly instead of crashing.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
    throw err;
  });
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
