/**
 * Connection options shared by the `qkit` commands that talk to qubesd:
 * `--socket PATH` (or `$QUBESD_SOCKET`), `--qrexec` (from a management qube,
 * through `qrexec-client-vm`), `--timeout MS`. Like the Python client, the
 * default is dom0's `/var/run/qubesd.sock`.
 */
import { existsSync } from "node:fs";
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

/** The usage text of the connection options. */
export const CONNECTION_USAGE = `connection:
  --socket PATH   qubesd socket (default: $QUBESD_SOCKET, else ${DEFAULT_QUBESD_SOCKET});
                  with an explicit socket the policy admin api goes over it too
                  (the qubes-kit simulator serves it), otherwise in dom0 it runs
                  /usr/bin/qubes-policy-admin
  --qrexec        call through qrexec-client-vm (from a management qube; the
                  default when /var/run/qubesd.sock is absent and
                  /usr/bin/qrexec-client-vm exists, as in qubesadmin)
  --timeout MS    per-call timeout in milliseconds (default 120000, 0 = none)`;

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
        flags.set(name, v);
      } else if (booleans.includes(name) && eq < 0) {
        flags.set(name, true);
      } else {
        throw new UsageError(`unknown option \`${a}\``);
      }
      continue;
    }
    positionals.push(a);
  }
  return { positionals, flags };
}

/** The options every connecting command accepts. */
export const CONNECTION_VALUE_FLAGS = ["--socket", "--timeout"];
export const CONNECTION_BOOLEAN_FLAGS = ["--qrexec"];

/** Builds the transport from the parsed connection options and the environment. */
export function connectionTransport(flags: Map<string, string | true>, env: NodeJS.ProcessEnv): Transport {
  const socket = flags.get("--socket");
  if (flags.has("--qrexec")) {
    if (socket !== undefined) throw new UsageError("--socket and --qrexec exclude each other");
    return new QrexecClientVmTransport();
  }
  const explicit = typeof socket === "string" ? socket : env["QUBESD_SOCKET"];
  if (explicit !== undefined && explicit !== "") return new UnixSocketTransport({ path: explicit, servicesOverSocket: true });
  // Like qubesadmin: the dom0 socket when it exists, else qrexec from a qube.
  if (!existsSync(DEFAULT_QUBESD_SOCKET) && existsSync("/usr/bin/qrexec-client-vm")) return new QrexecClientVmTransport();
  return withServiceTransport(new UnixSocketTransport({ path: DEFAULT_QUBESD_SOCKET }), new PolicyAdminExecTransport());
}

/** The `Qubes` and `PolicyAdmin` clients for the parsed connection options. */
export function connect(flags: Map<string, string | true>, env: NodeJS.ProcessEnv): { qubes: Qubes; policy: PolicyAdmin } {
  const transport = connectionTransport(flags, env);
  const t = flags.get("--timeout");
  let timeout: number | undefined;
  if (typeof t === "string") {
    if (!/^[0-9]+$/.test(t)) throw new UsageError(`--timeout needs a number of milliseconds, got \`${t}\``);
    timeout = Number(t);
  }
  const qubes = new Qubes(timeout === undefined ? { transport } : { transport, timeout });
  return { qubes, policy: new PolicyAdmin(transport) };
}
