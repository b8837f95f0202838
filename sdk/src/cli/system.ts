/**
 * `qkit system snapshot`: the `internal.GetSystemInfo` JSON of the live
 * system, built through the Admin API (the model the policy engine uses).
 */
import { systemInfo } from "../system-info.js";
import type { Command } from "./command.js";
import { UsageError } from "./command.js";
import { CONNECTION_BOOLEAN_FLAGS, CONNECTION_USAGE, CONNECTION_VALUE_FLAGS, connect, parseArgs } from "./connect.js";
import { reportErrors } from "./qube.js";

const snapshot: Command = {
  path: ["system", "snapshot"],
  summary: "print the system model (internal.GetSystemInfo json) built through the admin api",
  usage: `usage: qkit system snapshot [--json] [--compact] [--concurrency N] [connection options]

Prints {"domains": {name: {internal, tags, type, template_for_dispvms,
default_dispvm, icon, label, guivm, relayvm, transport_rpc, power_state,
uuid}}} as qubesd's internal.GetSystemInfo does, from admin.vm.List and, per
qube, property.GetAll, tag.List and feature.Get+internal. Save it and pass it
to \`qkit policy\` commands that take a system model.

options:
  --json            the output is JSON anyway (accepted for scripts that pass it everywhere)
  --compact         one line instead of indented JSON
  --concurrency N   how many qubes to read at a time

${CONNECTION_USAGE}`,
  run: (rest, io) =>
    reportErrors("system snapshot", io, async (conn) => {
      const a = parseArgs(rest, [...CONNECTION_VALUE_FLAGS, "--concurrency"], [...CONNECTION_BOOLEAN_FLAGS, "--compact", "--json"]);
      if (a.positionals.length > 0) throw new UsageError(`unexpected argument \`${a.positionals[0]}\``);
      const c = a.flags.get("--concurrency");
      if (c !== undefined && (typeof c !== "string" || !/^[1-9][0-9]*$/.test(c))) throw new UsageError("--concurrency needs a positive number");
      const { qubes } = connect(a.flags, io, conn);
      const info = await systemInfo(qubes, c === undefined ? {} : { concurrency: Number(c) });
      io.stdout.write(JSON.stringify(info, null, a.flags.has("--compact") ? undefined : 1) + "\n");
      return 0;
    }),
};

/** The `qkit system …` commands. */
export const commands: Command[] = [snapshot];
