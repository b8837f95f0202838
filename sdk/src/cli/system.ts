/**
 * `qkit system snapshot`: the `internal.GetSystemInfo` JSON of the live
 * system, built through the Admin API (the model the policy engine uses),
 * plus the machine's wiring that `qkit flow` reads from a system file
 * (`netvm`, `provides_network`, `firewall`, `devices`: extra keys after
 * qubesd's own, which every reader of a system model ignores).
 */
import { systemInfo } from "../system-info.js";
import type { RawSystemInfo } from "@qubes-kit/language";
import type { Qubes } from "../qubes.js";
import type { Command } from "./command.js";
import { UsageError } from "./command.js";
import { CONNECTION_BOOLEAN_FLAGS, CONNECTION_USAGE, CONNECTION_VALUE_FLAGS, connect, parseArgs } from "./connect.js";
import { reportErrors } from "./qube.js";

const snapshot: Command = {
  path: ["system", "snapshot"],
  summary: "print the system model (internal.GetSystemInfo json) built through the admin api",
  usage: `usage: qkit system snapshot [--json] [--compact] [--no-wiring] [--services] [--concurrency N] [connection options]

Prints {"domains": {name: {internal, tags, type, template_for_dispvms,
default_dispvm, icon, label, guivm, relayvm, transport_rpc, power_state,
uuid}}} as qubesd's internal.GetSystemInfo does, from admin.vm.List and, per
qube, property.GetAll, tag.List and feature.Get+internal. Each qube also
carries the wiring \`qkit flow\` needs, after those keys: \`netvm\` (a name or
null), \`provides_network\`, \`firewall\` (rules as qvm-firewall prints them)
and \`devices\` (assigned and attached: devclass, backend, port, device_id,
mode), from admin.vm.firewall.Get and admin.vm.device.*.Assigned|Attached,
and the file ends with the storage pools (\`pools\`, admin.pool.List) and the
installed kernels (\`kernels\`, the linux-kernel pool's volumes), which
\`qkit template check --system\` and the editor check \`kernel:\` and pool
names against.
With --services, each qube whose agent advertises its qrexec services also
carries \`supported_rpc\` (after qubesd's keys, before the wiring): the sorted
names whose supported-rpc.NAME feature is set and not empty, on the qube or
else on its template chain (as admin.vm.feature.CheckWithTemplate answers),
from admin.vm.feature.List and admin.vm.feature.Get; a qube without the key
(dom0, an old agent, Windows) is unknown. The policy analysis then warns about
rules for a service no qube they can call provides (service-not-provided).
Save it and pass it as \`--system FILE\` to the commands that take a system
model (\`qkit policy\`, \`qkit flow\`, \`qkit template whatif\`).

options:
  --json            the output is JSON anyway (accepted for scripts that pass it everywhere)
  --compact         one line instead of indented JSON
  --no-wiring       only what internal.GetSystemInfo answers (no netvm, firewall, devices,
                    pools, kernels: \`qkit flow\` then finds no network or device paths in
                    the file)
  --services        also read the qrexec services each qube advertises (supported_rpc; one
                    feature.List per qube and one feature.Get per supported-rpc feature)
  --concurrency N   how many qubes to read at a time

${CONNECTION_USAGE}
exit status: 0 done, 1 the Admin API refused or failed (its message and code on
standard error: a qube that does not exist, qubesd not reachable, ...), 2 usage error`,
  run: (rest, io) =>
    reportErrors("system snapshot", io, async (conn) => {
      const a = parseArgs(rest, [...CONNECTION_VALUE_FLAGS, "--concurrency"], [...CONNECTION_BOOLEAN_FLAGS, "--compact", "--json", "--no-wiring", "--services"]);
      if (a.positionals.length > 0) throw new UsageError(`unexpected argument \`${a.positionals[0]}\``);
      const c = a.flags.get("--concurrency");
      if (c !== undefined && (typeof c !== "string" || !/^[1-9][0-9]*$/.test(c))) throw new UsageError("--concurrency needs a positive number");
      const { qubes } = connect(a.flags, io, conn);
      const info = await systemInfo(qubes, { ...(c === undefined ? {} : { concurrency: Number(c) }), ...(a.flags.has("--services") ? { services: true } : {}) });
      let out: object = info;
      if (!a.flags.has("--no-wiring")) {
        await addWiring(qubes, info);
        const { liveStorage } = await import("./template-tools.js");
        out = { ...info, ...(await liveStorage(qubes)) };
      }
      io.stdout.write(JSON.stringify(out, null, a.flags.has("--compact") ? undefined : 1) + "\n");
      return 0;
    }),
};

/**
 * Appends each qube's wiring (the keys `machineFromSystemJson` reads) after
 * its GetSystemInfo keys, so the file gives `qkit flow` what `--system live`
 * reads. `uuid:` aliases are left as they are.
 */
async function addWiring(qubes: Qubes, info: RawSystemInfo): Promise<void> {
  const { readMachine } = await import("./flow-inputs.js");
  const domains = info.domains as Record<string, Record<string, unknown>>;
  const names = Object.keys(domains).filter((n) => !n.startsWith("uuid:"));
  const machine = await readMachine(qubes, names);
  for (const name of names) {
    const m = machine.qubes[name];
    const d = domains[name]!;
    if (!m) continue;
    if (m.netvm !== undefined) d["netvm"] = m.netvm;
    if (m.providesNetwork !== undefined) d["provides_network"] = m.providesNetwork;
    if (m.firewall !== undefined) d["firewall"] = m.firewall;
    d["devices"] = (m.devices ?? []).map((x) => ({ devclass: x.devclass, backend: x.backend, port: x.port, ...(x.deviceId !== undefined ? { device_id: x.deviceId } : {}), ...(x.mode !== undefined ? { mode: x.mode } : {}) }));
  }
}

/** The `qkit system …` commands. */
export const commands: Command[] = [snapshot];
