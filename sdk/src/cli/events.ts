/**
 * `qkit events`: follow `admin.Events` (or `admin.vm.Stats`), reconnecting
 * like the Python client.
 */
import type { QubesEvent } from "../protocol.js";
import type { Command } from "./command.js";
import { UsageError } from "./command.js";
import { CONNECTION_BOOLEAN_FLAGS, CONNECTION_USAGE, CONNECTION_VALUE_FLAGS, connect, parseArgs } from "./connect.js";
import { reportErrors } from "./qube.js";
import { oneLine } from "./text.js";

function line(e: QubesEvent): string {
  const kv = Object.entries(e.kwargs).map(([k, v]) => ` ${k}=${/[\s'"]/.test(v) || v === "" ? JSON.stringify(v) : v}`);
  return `${e.subject ?? "-"} ${e.event}${kv.join("")}\n`;
}

const events: Command = {
  path: ["events"],
  summary: "follow admin.Events (or admin.vm.Stats with --stats)",
  usage: `usage: qkit events [QUBE] [--stats] [--json] [--count N] [--no-reconnect] [connection options]

Prints one line per event: subject (\`-\` for the system), event name and
key=value pairs; --json prints one JSON object per line. Every connection
starts with connection-established. Reconnects after 1 s when the stream
ends, unless --no-reconnect. --count N stops after N events.

When the first connection fails (nothing listens on the socket, access
denied), it exits 1 at once: only a stream that was running is retried.

options:
  --stats          follow admin.vm.Stats (vm-stats events) instead
  --json           one JSON object a line
  --count N        stop after N events
  --no-reconnect   stop when the stream ends

exit status: 0 stopped (--count reached, the stream ended with
--no-reconnect, or SIGINT), 1 the first connection failed or qubesd refused
the call, 2 usage error

${CONNECTION_USAGE}`,
  run: (rest, io) =>
    reportErrors("events", io, async (conn) => {
      const a = parseArgs(rest, [...CONNECTION_VALUE_FLAGS, "--count"], [...CONNECTION_BOOLEAN_FLAGS, "--stats", "--json", "--no-reconnect"]);
      if (a.positionals.length > 1) throw new UsageError(`unexpected argument \`${a.positionals[1]}\``);
      const c = a.flags.get("--count");
      if (c !== undefined && (typeof c !== "string" || !/^[1-9][0-9]*$/.test(c))) throw new UsageError("--count needs a positive number");
      const limit = c === undefined ? Infinity : Number(c);
      const { qubes } = connect(a.flags, io, conn);
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once("SIGINT", stop);
      let n = 0;
      try {
        for await (const e of qubes.events({
          dest: a.positionals[0] ?? "dom0",
          method: a.flags.has("--stats") ? "admin.vm.Stats" : "admin.Events",
          reconnect: !a.flags.has("--no-reconnect"),
          signal: ac.signal,
          onDisconnect: (err) => {
            // Never connected: the socket is wrong or qubesd is down; retrying would hide it.
            if (n === 0 && err !== undefined) throw err;
            io.stderr.write(`qkit events: connection lost${err instanceof Error ? `: ${oneLine(err.message.split("\n")[0]!)}` : ""}; reconnecting\n`);
          },
        })) {
          io.stdout.write(a.flags.has("--json") ? JSON.stringify(e) + "\n" : line(e));
          if (++n >= limit) break;
        }
      } finally {
        process.removeListener("SIGINT", stop);
      }
      return 0;
    }),
};

/** The `qkit events` command. */
export const commands: Command[] = [events];
