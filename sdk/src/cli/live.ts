/**
 * Reading the live system for the auditor's commands and `qkit policy check
 * --system live`: the connection options (`--socket`, `--qrexec`,
 * `--timeout MS`), and one wrapper that turns a failure to reach qubesd (or a
 * refused call) into an {@link InputFailure}: one line in the connection's
 * wording, what to do, a stable code (`connect-failed`, `timeout`, ...),
 * exit 2.
 */
import type { CliIO } from "./command.js";
import { UsageError } from "./command.js";
import type { ParsedArgs } from "./args.js";
import type { ConnectionInfo } from "./connect.js";

/**
 * An input the commands cannot use: the live system or policy cannot be read
 * (qubesd unreachable, a refused call; the connection's wording and what to
 * do), or a system model with no qubes or a malformed qube. One line with a
 * stable code; exit 2 (a {@link UsageError}, so every command reports it
 * alike: `qkit COMMAND: MESSAGE [code]`).
 */
export class InputFailure extends UsageError {
  override name = "InputFailure";
  constructor(message: string, code: string) {
    super(message, code);
  }
}

/** The Admin API and policy admin clients for the connection options, with the record messages name the socket by. */
export async function liveClients(
  a: ParsedArgs,
  io: CliIO,
): Promise<{ qubes: import("../qubes.js").Qubes; policy: import("../policy-admin.js").PolicyAdmin; conn: ConnectionInfo }> {
  const { connect } = await import("./connect.js");
  const flags = new Map<string, string | true>();
  for (const k of ["socket", "timeout"]) if (a.values.has(k)) flags.set(`--${k}`, a.values.get(k)!);
  if (a.flags.has("qrexec")) flags.set("--qrexec", true);
  const conn = {} as ConnectionInfo;
  return { ...connect(flags, { env: io.env, cwd: io.cwd }, conn), conn };
}

/** Runs a read of the live system, turning a Qubes failure into an {@link InputFailure}. */
export async function live<T>(conn: ConnectionInfo, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    // One line with what to do (the connection's wording), not the transport's raw text.
    const { describeFailure } = await import("./failure.js");
    const f = describeFailure(e, conn.via === undefined ? undefined : conn);
    if (f) throw new InputFailure(f.message, f.code);
    throw e;
  }
}
