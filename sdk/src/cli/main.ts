/**
 * `qkit`: the command-line front end of qubes-kit.
 */
import { readFileSync, realpathSync, statSync } from "node:fs";
import * as path from "node:path";
import type { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { CONNECTION_USAGE, ENVIRONMENT_USAGE, EXIT, EXIT_USAGE, didYouMean, escapeControls, oneLine, osMessage } from "./text.js";
// The policy commands load with the CLI itself (they are the common case and
// a dynamic import costs a round trip through the module loader); the rest
// (Admin API client, simulator) loads on demand.
import * as policyEvalModule from "./policy-eval.js";
import * as policyCheckModule from "./policy-check.js";
import { fileIdOf, forgetReads, realOf } from "./inputs-read.js";

/**
 * Every command, with the module that implements it. Modules load on
 * demand: `qkit policy check` never loads the Admin API client or the
 * simulator, which keeps start-up small (it counts in every run).
 */
export interface Entry {
  path: string[];
  /** One line for the help. */
  summary: string;
  load: () => Promise<{ commands: Command[] }>;
  /** The options for shell completion; default: every `--option` and `-o` the command's usage text names. */
  options?: string[];
}

export const ENTRIES: Entry[] = [
  { path: ["policy", "check"], summary: "validate a policy.d directory or policy files, with the editor's warnings", load: async () => policyCheckModule },
  { path: ["policy", "eval"], summary: "decide qrexec calls as the policy daemon does", load: async () => policyEvalModule },
  { path: ["policy", "explain"], summary: "decide one call and explain which rule decided it and why", load: async () => policyEvalModule },
  { path: ["policy", "test"], summary: "run policy test files (expected decisions), with coverage", load: () => import("./policy-audit.js") },
  { path: ["policy", "diff"], summary: "every request whose decision differs between two policies", load: () => import("./policy-audit.js") },
  { path: ["policy", "who-can"], summary: "which sources may call a service (on a target), and how", load: () => import("./policy-audit.js") },
  { path: ["policy", "what-can"], summary: "every call a source qube may make, and how it is decided", load: () => import("./policy-audit.js") },
  { path: ["policy", "table"], summary: "the decision table of a service: sources × targets (text, csv, markdown, html)", load: () => import("./policy-audit.js") },
  { path: ["policy", "flip"], summary: "the one-line policy edits that would change a call's decision, each re-decided", load: () => import("./flow.js") },
  { path: ["policy", "replay"], summary: "logged qrexec calls (the policy daemon's journal) a draft policy decides differently", load: () => import("./flow.js") },
  { path: ["policy", "pull"], summary: "download the policy through the policy admin API", load: () => import("./policy-remote.js") },
  { path: ["policy", "push"], summary: "upload policy changes, refusing to overwrite someone else's", load: () => import("./policy-remote.js") },
  { path: ["flow"], summary: "can data move from one qube to another (qrexec, network, devices)? every path, with its rules", load: () => import("./flow.js") },
  { path: ["qube", "ls"], summary: "list the qubes", load: () => import("./qube.js") },
  { path: ["qube", "prefs"], summary: "show or set properties of a qube", load: () => import("./qube.js") },
  { path: ["qube", "features"], summary: "show or set features of a qube", load: () => import("./qube.js") },
  { path: ["qube", "tags"], summary: "show, add or remove tags of a qube", load: () => import("./qube.js") },
  { path: ["system", "snapshot"], summary: "print the system model (internal.GetSystemInfo JSON)", load: () => import("./system.js") },
  { path: ["events"], summary: "follow the Admin API event stream", load: () => import("./events.js") },
  { path: ["template", "plan"], summary: "show what applying a stack would change on the system", load: () => import("./template.js") },
  { path: ["template", "apply"], summary: "apply a stack (or a saved plan) to the system, after a rehearsal", load: () => import("./template.js") },
  { path: ["template", "drift"], summary: "list managed settings whose live value differs from the stack", load: () => import("./template.js") },
  { path: ["sim", "serve"], summary: "serve an offline Admin API simulator on a Unix socket", load: () => import("./sim.js") },
  { path: ["demo"], summary: "validate the bundled demo policy and decide typical calls", load: () => import("./demo.js") },
  { path: ["template", "check"], summary: "check stack files (*.qubes.yaml) without touching the system", load: () => import("./template-tools.js") },
  { path: ["template", "schema"], summary: "print the JSON Schema of stack files, for editors without qkit-lsp", load: () => import("./template-tools.js") },
  { path: ["template", "whatif"], summary: "decide qrexec calls as they will be once a stack is applied", load: () => import("./template-tools.js") },
  { path: ["template", "export"], summary: "write a stack file from the live system", load: () => import("./template-tools.js") },
];

/** A name the CLI handles itself, with its summary (help, completion, version). */
const BUILTINS: { path: string[]; summary: string }[] = [
  { path: ["help"], summary: "print the usage of qkit, of a group (`qkit help policy`) or of a command" },
  { path: ["completion"], summary: "print a shell completion script: `qkit completion bash|zsh|fish`" },
];

/** Every path of the command table plus the built-ins, for "did you mean" and completion. */
function allPaths(): { path: string[]; summary: string }[] {
  return [...ENTRIES, ...BUILTINS];
}

/** The words that may follow `prefix` (a group's children), with a summary each. */
function children(prefix: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of allPaths()) {
    if (e.path.length <= prefix.length || !prefix.every((p, i) => e.path[i] === p)) continue;
    const word = e.path[prefix.length]!;
    if (out.has(word)) continue;
    const leaf = e.path.length === prefix.length + 1;
    out.set(word, leaf ? e.summary : `${[...prefix, word].join(" ")} commands: ${allPaths().filter((x) => x.path[prefix.length] === word && prefix.every((p, i) => x.path[i] === p)).map((x) => x.path.slice(prefix.length + 1).join(" ")).join(", ")}`);
  }
  return out;
}

function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([a]) => a.length));
  return rows.map(([a, b]) => `  ${a.padEnd(width)}  ${b}\n`).join("");
}

/** The top-level help: commands, connection options, environment, exit codes. */
export function topHelp(): string {
  return (
    "usage: qkit <command> [options]\n" +
    "       qkit help [COMMAND]    the usage of a group or a command (also `qkit COMMAND --help`)\n" +
    "       qkit completion bash|zsh|fish\n" +
    "       qkit --version\n\n" +
    "commands:\n" +
    table(allPaths().map((c) => [c.path.join(" "), c.summary])) +
    "\n" +
    CONNECTION_USAGE.replace(/^connection:/, "connection options (the commands that talk to qubesd: qube, system, events, policy pull|push):") +
    "\n\n" +
    ENVIRONMENT_USAGE +
    "\n\n" +
    EXIT_USAGE +
    "\n"
  );
}

/** The help of a group (`qkit policy`): its commands. */
export function groupHelp(prefix: string[]): string {
  const kids = children(prefix);
  const name = prefix.join(" ");
  return `usage: qkit ${name} <command> [options]\n\ncommands:\n${table([...kids].map(([w, s]) => [`${name} ${w}`, s]))}\nrun \`qkit ${name} COMMAND --help\` for the options of a command\n`;
}

/** The version of the package this CLI belongs to. */
export function version(): string {
  for (const rel of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "@qubes-kit/sdk" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // not this one
    }
  }
  return "unknown";
}

/** Loads the command of an entry. */
async function commandOf(entry: Entry): Promise<Command | undefined> {
  return (await entry.load()).commands.find((c) => c.path.join(" ") === entry.path.join(" "));
}

/** Every option a command takes: its entry's `options`, else the ones its usage text names. */
export async function optionsOf(entry: Entry): Promise<string[]> {
  if (entry.options) return [...entry.options, "--help"];
  const usage = (await commandOf(entry))?.usage ?? "";
  const found = new Set<string>();
  for (const m of usage.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])/g)) found.add(m[1]!);
  found.add("--help");
  return [...found].sort();
}

/** The command tree for completion: every path prefix with its child words and, for commands, their options. */
export async function completionTree(): Promise<{ key: string; words: [string, string][]; options: string[] }[]> {
  const keys = new Map<string, { words: [string, string][]; options: string[] }>();
  const prefixes = new Set<string>([""]);
  for (const e of allPaths()) for (let i = 1; i < e.path.length; i++) prefixes.add(e.path.slice(0, i).join(" "));
  for (const p of prefixes) keys.set(p, { words: [...children(p ? p.split(" ") : [])], options: p ? ["--help"] : ["--help", "--version"] });
  for (const e of ENTRIES) keys.set(e.path.join(" "), { words: [], options: await optionsOf(e) });
  keys.set("help", { words: [...children([])].filter(([w]) => w !== "help"), options: [] });
  keys.set("completion", { words: [["bash", "bash completion script"], ["zsh", "zsh completion script"], ["fish", "fish completion script"]], options: [] });
  return [...keys].map(([key, v]) => ({ key, ...v }));
}

/**
 * The stream with a `write` that escapes control characters (messages quote
 * names, paths and server texts that may hold them); newlines and tabs pass.
 * Writes go through at once, in order, as on the stream itself.
 */
function escaping(stream: Writable): Writable {
  return new Proxy(stream, {
    get(target, key) {
      if (key === "write") {
        return (chunk: unknown, ...rest: unknown[]) =>
          (target.write as (...a: unknown[]) => boolean)(typeof chunk === "string" ? escapeControls(chunk) : Buffer.isBuffer(chunk) ? escapeControls(chunk.toString("utf8")) : chunk, ...rest);
      }
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Runs `qkit` with the given arguments; resolves to the exit code. */
export async function main(argv: string[], io: CliIO): Promise<number> {
  io = { ...io, stderr: escaping(io.stderr) };
  const helpFlag = (a: string | undefined) => a === "--help" || a === "-h";
  if (argv.length === 0 || helpFlag(argv[0])) {
    io.stdout.write(topHelp());
    return EXIT.ok;
  }
  if (argv[0] === "--version" || argv[0] === "-V") {
    io.stdout.write(`qkit ${version()}\n`);
    return EXIT.ok;
  }
  if (argv[0] === "help") return help(argv.slice(1), io);
  if (argv[0] === "completion") return completion(argv.slice(1), io);
  let entry: Entry | undefined;
  for (const c of ENTRIES) {
    if (c.path.every((p, i) => argv[i] === p) && (!entry || c.path.length > entry.path.length)) entry = c;
  }
  if (!entry) {
    // The longest group the arguments name, then what follows it.
    let depth = 0;
    while (depth < argv.length && children(argv.slice(0, depth)).has(argv[depth]!)) depth++;
    const prefix = argv.slice(0, depth);
    const next = argv[depth];
    if (depth > 0 && (next === undefined || helpFlag(next))) {
      io.stdout.write(groupHelp(prefix));
      return EXIT.ok;
    }
    const wrong = [...prefix, next ?? ""].join(" ");
    const hint = didYouMean(next ?? "", children(prefix).keys(), (w) => [...prefix, w].join(" "));
    io.stderr.write(`qkit: unknown command \`${wrong}\`${hint || `; \`qkit ${prefix.length ? prefix.join(" ") + " " : ""}--help\` lists the commands`} [unknown-command]\n`);
    return EXIT.usage;
  }
  const best = await commandOf(entry);
  if (!best) {
    io.stderr.write(`qkit: internal error: no command \`${entry.path.join(" ")}\` in its module [internal]\n`);
    return EXIT.internal;
  }
  const rest = argv.slice(best.path.length);
  const end = rest.indexOf("--");
  if ((end < 0 ? rest : rest.slice(0, end)).some(helpFlag)) {
    io.stdout.write(best.usage.endsWith("\n") ? best.usage : best.usage + "\n");
    return EXIT.ok;
  }
  forgetReads();
  const clash = outputClash(rest, io.cwd);
  if (clash) {
    io.stderr.write(`qkit ${best.path.join(" ")}: ${clash} [output-is-input]\n`);
    return EXIT.usage;
  }
  try {
    return await best.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`qkit ${best.path.join(" ")}: ${oneLine(err.message)} [${err.code}]\n`);
      return EXIT.usage;
    }
    const msg = err instanceof Error ? err.message : String(err);
    io.stderr.write(`qkit ${best.path.join(" ")}: ${oneLine(msg.split("\n")[0]!)}\n`);
    return EXIT.failure;
  }
}

/** The options that name a file a command writes. */
const OUTPUT_OPTIONS = ["--output", "--coverage-output", "--out", "--journal"];

/**
 * Why the files a command would write must not be written (a one-line message), or undefined:
 * a file the command also reads (any other argument naming the same file), a `.policy` file or an
 * include file inside a directory it reads (it would change the policy being read), or two
 * outputs in one file. Said before anything runs: nothing the user wrote is overwritten.
 */
function outputClash(args: readonly string[], cwd: string): string | undefined {
  const real = (p: string) => realOf(path.resolve(cwd, p));
  // `id`: a file is the same file under another name too (a hard link), compared by device and inode.
  const outputs: { option: string; given: string; path: string; id: string | undefined }[] = [];
  const others: string[] = [];
  const end = args.indexOf("--");
  const list = end < 0 ? args : args.slice(0, end);
  for (let i = 0; i < list.length; i++) {
    const a = list[i]!;
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (OUTPUT_OPTIONS.includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : list[++i];
      if (v !== undefined && v !== "-" && v !== "") outputs.push({ option: name, given: v, path: real(v), id: fileIdOf(real(v)) });
    } else others.push(eq > 0 && a.startsWith("--") ? a.slice(eq + 1) : a);
  }
  if (!outputs.length) return undefined;
  if (outputs.length > 1 && (outputs[0]!.path === outputs[1]!.path || (outputs[0]!.id !== undefined && outputs[0]!.id === outputs[1]!.id))) return `${outputs[0]!.option} and ${outputs[1]!.option} name the same file \`${outputs[0]!.given}\`; give each its own file`;
  for (const o of outputs) {
    for (const arg of others) {
      if (arg === "" || arg === "-" || arg === "live") continue;
      const p = real(arg);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      // An apply's journal that is the stack or plan file has the apply's own, more precise refusal ([not-a-journal]).
      if (st.isFile() && (p === o.path || (o.id !== undefined && `${st.dev}:${st.ino}` === o.id)) && o.option !== "--journal") return `${o.option} \`${o.given}\` is also a file this command reads; write the output to another file`;
      const rel = path.relative(p, o.path);
      if (st.isDirectory() && rel && !rel.startsWith("..") && !path.isAbsolute(rel) && (o.path.endsWith(".policy") || rel.split(path.sep)[0] === "include"))
        return `${o.option} \`${o.given}\` is inside \`${arg}\`, a directory this command reads; write the output outside it`;
    }
  }
  return undefined;
}

/** `qkit help [WORDS…]`: the top-level help, a group's or a command's usage. */
async function help(words: string[], io: CliIO): Promise<number> {
  if (words.length === 0) {
    io.stdout.write(topHelp());
    return EXIT.ok;
  }
  if (words[0] === "help" || words[0] === "completion") {
    io.stdout.write(topHelp());
    return EXIT.ok;
  }
  const entry = ENTRIES.find((e) => e.path.length === words.length && e.path.every((p, i) => words[i] === p));
  if (entry) return main([...words, "--help"], io);
  if (words.length && children(words).size > 0 && (words.length === 1 ? children([]).has(words[0]!) : true)) {
    io.stdout.write(groupHelp(words));
    return EXIT.ok;
  }
  return main(words, io);
}

/** `qkit completion bash|zsh|fish`. */
async function completion(args: string[], io: CliIO): Promise<number> {
  const shell = args[0];
  const shells = ["bash", "zsh", "fish"];
  if (shell === "--help" || shell === "-h") {
    io.stdout.write(COMPLETION_USAGE);
    return EXIT.ok;
  }
  if (shell === undefined || !shells.includes(shell) || args.length > 1) {
    const bad = args.length > 1 ? `unexpected argument \`${args[1]}\`` : shell === undefined ? "which shell? bash, zsh or fish" : `unknown shell \`${shell}\`${didYouMean(shell, shells)}`;
    io.stderr.write(`qkit completion: ${bad}; \`qkit completion --help\` shows how to install it [usage]\n`);
    return EXIT.usage;
  }
  const { completionScript } = await import("./completion.js");
  io.stdout.write(completionScript(shell as "bash" | "zsh" | "fish", await completionTree()));
  return EXIT.ok;
}

const COMPLETION_USAGE = `usage: qkit completion bash|zsh|fish

Prints a completion script for the shell, generated from qkit's command table:
  bash:  source <(qkit completion bash)     (or save it in ~/.local/share/bash-completion/completions/qkit)
  zsh:   qkit completion zsh > "\${fpath[1]}/_qkit"   (then restart zsh; or: source <(qkit completion zsh))
  fish:  qkit completion fish > ~/.config/fish/completions/qkit.fish

Its output is a shell script: it has no --json.

exit status: 0 printed, 2 usage error (a shell other than bash, zsh, fish)
`;

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
/**
 * Runs `qkit` as the program: process arguments and streams, exit code in
 * `process.exitCode`. The launcher (`bin/qkit.js`) calls it.
 */
export function runAsProgram(): void {
  // `qkit … | head`: a closed pipe ends the command quietly instead of crashing.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    // A command that listens itself (\`template apply\`: it must not die between two calls) decides.
    if (process.stdout.listenerCount("error") > 1) return;
    if (err.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
    // Any other failure to write the answer (a full disk, an I/O error): one line, in the OS's words.
    process.stderr.write(`qkit: cannot write to standard output: ${osMessage(err)}; check where the output goes [cannot-write]\n`);
    process.exit(EXIT.usage);
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
      process.exitCode = EXIT.internal;
    },
  );
}

if (isEntry) runAsProgram();
