/**
 * Connection options shared by the `qkit` commands that talk to qubesd:
 * `--socket PATH` (or `$QUBESD_SOCKET`), `--qrexec` (from a management qube,
 * through `qrexec-client-vm`), `--timeout MS`. Like the Python client, the
 * default is dom0's `/var/run/qubesd.sock`.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { PolicyAdmin } from "../policy-admin.js";
import { Qubes } from "../qubes.js";
import {
  DEFAULT_QUBESD_SOCKET,
  PolicyAdminExecTransport,
  QrexecClientVmTransport,
  UnixSocketTransport,
  withServiceTransport,
  type Transport,
} from "../transport.js";
import { UsageError } from "./command.js";
import { CONNECTION_USAGE, didYouMean } from "./text.js";

export { CONNECTION_USAGE };

/** Parsed arguments: flags (with values), booleans, positionals. */
export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | true>;
}

/**
 * Parses `args`: `--name VALUE` for names in `withValue`, `--name` for
 * booleans in `booleans`, `--name=VALUE` for both; anything else starting
 * with `-` (other than `-` itself) is a usage error; `--` ends options.
 */
export function parseArgs(args: string[], withValue: string[], booleans: string[]): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith("-") && a !== "-" && !/^-[0-9]/.test(a)) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a : a.slice(0, eq);
      if (withValue.includes(name)) {
        const v = eq < 0 ? args[++i] : a.slice(eq + 1);
        if (v === undefined) throw new UsageError(`option ${name} needs a value`);
        // An option of one value given twice: which was meant is not for us to guess.
        const before = flags.get(name);
        if (typeof before === "string" && before !== v) throw new UsageError(`option \`${name}\` was given twice (\`${before}\`, then \`${v}\`); give it once`);
        flags.set(name, v);
      } else if (booleans.includes(name) && eq < 0) {
        flags.set(name, true);
      } else {
        const hint = withValue.includes(name) || booleans.includes(name) ? "" : didYouMean(name, [...withValue, ...booleans]);
        throw new UsageError(eq >= 0 && booleans.includes(name) ? `option ${name} takes no value` : `unknown option \`${a}\`${hint}`);
      }
      continue;
    }
    positionals.push(a);
  }
  return { positionals, flags };
}

/**
 * Takes every `NAME VALUE` / `NAME=VALUE` out of `args` (before `--`), in order: for an option that
 * may be given several times, or one a wrapper handles before the command parses the rest
 * ({@link parseArgs} keeps the last of an option). `missing` is the usage error for a NAME without a value.
 */
export function takeRepeated(args: string[], name: string, missing: string): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const x = args[i]!;
    if (x === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (x === name) {
      const v = args[++i];
      if (v === undefined) throw new UsageError(missing);
      values.push(v);
    } else if (x.startsWith(`${name}=`)) values.push(x.slice(name.length + 1));
    else rest.push(x);
  }
  return { values, rest };
}

/** The options every connecting command accepts. */
export const CONNECTION_VALUE_FLAGS = ["--socket", "--timeout"];
export const CONNECTION_BOOLEAN_FLAGS = ["--qrexec"];

/** Where a command connects, as the user named it (for messages). */
export interface ConnectionInfo {
  /** `option` (--socket), `env` (QUBESD_SOCKET), `default` (dom0's socket) or `qrexec`. */
  via: "option" | "env" | "default" | "qrexec";
  /** The socket path as the user gave it (or the default). */
  socket?: string;
}

/**
 * Builds the transport from the parsed connection options and the
 * environment. A relative socket path is resolved against `cwd`; `info`,
 * when given, is filled with where it connects, for messages.
 */
export function connectionTransport(flags: Map<string, string | true>, env: NodeJS.ProcessEnv, cwd?: string, info?: ConnectionInfo): Transport {
  const socket = flags.get("--socket");
  const note = (i: ConnectionInfo) => {
    if (info) Object.assign(info, i);
  };
  if (flags.has("--qrexec")) {
    if (socket !== undefined) throw new UsageError("--socket and --qrexec exclude each other");
    note({ via: "qrexec" });
    return new QrexecClientVmTransport();
  }
  const explicit = typeof socket === "string" ? socket : env["QUBESD_SOCKET"];
  if (explicit !== undefined && explicit !== "") {
    note({ via: typeof socket === "string" ? "option" : "env", socket: explicit });
    return new UnixSocketTransport({ path: cwd === undefined ? explicit : resolve(cwd, explicit), servicesOverSocket: true });
  }
  // Like qubesadmin: the dom0 socket when it exists, else qrexec from a qube.
  if (!existsSync(DEFAULT_QUBESD_SOCKET) && existsSync("/usr/bin/qrexec-client-vm")) {
    note({ via: "qrexec" });
    return new QrexecClientVmTransport();
  }
  note({ via: "default", socket: DEFAULT_QUBESD_SOCKET });
  return withServiceTransport(new UnixSocketTransport({ path: DEFAULT_QUBESD_SOCKET }), new PolicyAdminExecTransport());
}

/**
 * The `Qubes` and `PolicyAdmin` clients for the parsed connection options.
 * Pass the command's {@link CliIO}-like `{ env, cwd }` (a relative `--socket`
 * is the user's, relative to their directory) and, from
 * {@link reportErrors}, the connection record its messages use.
 */
export function connect(flags: Map<string, string | true>, io: NodeJS.ProcessEnv | { env: NodeJS.ProcessEnv; cwd: string }, info?: ConnectionInfo): { qubes: Qubes; policy: PolicyAdmin } {
  const ctx = "cwd" in io && typeof io.cwd === "string" && typeof io.env === "object" ? (io as { env: NodeJS.ProcessEnv; cwd: string }) : { env: io as NodeJS.ProcessEnv, cwd: undefined };
  const t = flags.get("--timeout");
  let timeout: number | undefined;
  if (typeof t === "string") {
    if (!/^[0-9]+$/.test(t)) throw new UsageError(`--timeout needs a number of milliseconds, got \`${t}\``);
    timeout = Number(t);
  }
  const transport = connectionTransport(flags, ctx.env, ctx.cwd, info);
  const qubes = new Qubes(timeout === undefined ? { transport } : { transport, timeout });
  return { qubes, policy: new PolicyAdmin(transport) };
}
