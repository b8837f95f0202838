/**
 * How the commands that talk to qubesd report a failure: one line, the
 * operating system's or the server's wording, no raw control characters,
 * what to do next, and a stable code.
 */
import { QubesEmptyReplyError, QubesException, QubesTransportError } from "../errors.js";
import type { CliIO } from "./command.js";
import type { ConnectionInfo } from "./connect.js";
import { DEFAULT_SOCKET_PATH, oneLine, osMessage } from "./text.js";

/** What to try when qubesd cannot be reached, for where the command connected. */
function reachHint(conn: ConnectionInfo): string {
  switch (conn.via) {
    case "option":
      return `is qubesd (or \`qkit sim serve --socket ${conn.socket}\`) running? check --socket`;
    case "env":
      return `is qubesd (or \`qkit sim serve --socket ${conn.socket}\`) running? check QUBESD_SOCKET`;
    case "qrexec":
      return "check that qrexec-client-vm works and that the policy lets this qube call the Admin API";
    case "default":
      return `in dom0 start qubesd; elsewhere pass --socket PATH (or set QUBESD_SOCKET) to a qubesd socket, e.g. one served by \`qkit sim serve --socket PATH\`, or use --qrexec from a management qube`;
  }
}

/** The one-line message (with its code) of a failure, or `undefined` for an error that is not a Qubes one. */
export function describeFailure(err: unknown, conn: ConnectionInfo | undefined): { message: string; code: string } | undefined {
  if (!(err instanceof QubesException)) return undefined;
  const where = conn?.socket ?? DEFAULT_SOCKET_PATH;
  if (err instanceof QubesTransportError && err.code === "connect-failed" && conn && conn.via !== "qrexec") {
    return { message: `cannot connect to qubesd at \`${where}\`: ${osMessage(err.cause)}; ${reachHint(conn)}`, code: err.code };
  }
  if (err instanceof QubesTransportError && err.code === "spawn-failed") {
    // A program of dom0 (the policy admin tools) that is not here: nothing was ever connected.
    return { message: `${oneLine(err.message.split("\n")[0]!)}; run qkit where it is installed (dom0), or give a copy of the policy with --policy-dir DIR (\`qkit policy pull\` makes one)`, code: err.code };
  }
  if (err instanceof QubesTransportError && err.cause !== undefined && conn && conn.via !== "qrexec") {
    return { message: `lost the connection to qubesd at \`${where}\`: ${osMessage(err.cause)}`, code: err.code };
  }
  if (err instanceof QubesEmptyReplyError && conn && (conn.via === "option" || conn.via === "env")) {
    return {
      message: `\`${where}\` closed the connection without a reply (qubesd refused or failed on the call); if it is \`qkit sim serve\`, the simulator's log (its standard error) says why; for qubesd see \`journalctl -u qubesd -e\` in dom0`,
      code: err.code,
    };
  }
  return { message: oneLine(err.message.split("\n")[0]!), code: err.code };
}

/**
 * Runs `fn`, reporting a typed Qubes error as one line with its code (exit
 * 1). `fn` receives the connection record to hand to `connect`, so the
 * message names the socket as the user gave it.
 */
export async function reportErrors(path: string, io: CliIO, fn: (conn: ConnectionInfo) => Promise<number>): Promise<number> {
  // Filled in by `connect` (a command that fails before connecting leaves it empty).
  const conn = {} as ConnectionInfo;
  try {
    return await fn(conn);
  } catch (err) {
    const f = describeFailure(err, conn.via === undefined ? undefined : conn);
    if (!f) throw err;
    io.stderr.write(`qkit ${path}: ${f.message} [${f.code}]\n`);
    return 1;
  }
}
