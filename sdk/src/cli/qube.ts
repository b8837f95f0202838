/**
 * `qkit qube …`: list qubes and read or change their properties, features
 * and tags through the Admin API.
 */
import { QubesException } from "../errors.js";
import { reportErrors } from "./failure.js";
import { escapeControls } from "./text.js";
import type { PropertyValue } from "../values.js";
import type { CliIO, Command } from "./command.js";
import { UsageError } from "./command.js";
import { CONNECTION_BOOLEAN_FLAGS, CONNECTION_USAGE, CONNECTION_VALUE_FLAGS, connect, parseArgs } from "./connect.js";

/** Re-exported for the command modules that import it from here. */
export { reportErrors };

function args(rest: string[], extraValue: string[] = [], extraBool: string[] = []) {
  return parseArgs(rest, [...CONNECTION_VALUE_FLAGS, ...extraValue], [...CONNECTION_BOOLEAN_FLAGS, ...extraBool]);
}

/** How `qvm-prefs` shows a value: empty for None/unset. */
function show(v: PropertyValue): string {
  return escapeControls(v.raw);
}

const ls: Command = {
  path: ["qube", "ls"],
  summary: "list qubes with their class, power state, label, template and netvm",
  usage: `usage: qkit qube ls [--json] [connection options]

Lists the qubes admin.vm.List shows (from a management qube: the ones its
policy lets it see), as qvm-ls does: NAME, CLASS, STATE, LABEL, TEMPLATE and
NETVM (\`-\` where a qube has none, e.g. dom0's template). --json prints an
array of {name, class, state, label, template, netvm, uuid} (null for none).

options:
  --json   print JSON

${CONNECTION_USAGE}
exit status: 0 done, 1 the Admin API refused or failed (its message and code on
standard error: a qube that does not exist, qubesd not reachable, ...), 2 usage error`,
  run: (rest, io) =>
    reportErrors("qube ls", io, async (conn) => {
      const a = args(rest, [], ["--json"]);
      if (a.positionals.length > 0) throw new UsageError(`unexpected argument \`${a.positionals[0]}\``);
      const { qubes } = connect(a.flags, io, conn);
      const list = await qubes.list();
      // One property.GetAll a qube (as qvm-ls does); a qube the policy hides them for shows `-`.
      const rows = await Promise.all(
        list.map(async (e) => {
          let props: Map<string, PropertyValue> | undefined;
          try {
            props = await qubes.qube(e.name).properties();
          } catch (err) {
            if (!(err instanceof QubesException)) throw err;
          }
          const p = (k: string) => {
            const v = props?.get(k);
            return v === undefined || v.raw === "" ? null : v.raw;
          };
          return { name: e.name, class: e.class, state: e.state, label: p("label"), template: p("template"), netvm: p("netvm"), uuid: e.uuid ?? null };
        }),
      );
      if (a.flags.has("--json")) {
        io.stdout.write(JSON.stringify(rows, null, 2) + "\n");
        return 0;
      }
      const cols = ["name", "class", "state", "label", "template", "netvm"] as const;
      const cells = rows.map((r) => cols.map((c) => escapeControls(r[c] ?? "-")));
      const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
      const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join("  ") + "\n";
      io.stdout.write(line(cols.map((c) => c.toUpperCase())));
      for (const row of cells) io.stdout.write(line(row));
      return 0;
    }),
};

const prefs: Command = {
  path: ["qube", "prefs"],
  summary: "show or change the properties of a qube",
  usage: `usage: qkit qube prefs NAME [PROPERTY [VALUE]] [--default|-D] [--json] [connection options]

Without PROPERTY, lists every property: name, \`D\` when it has its default
value (\`-\` when set), and the value. With PROPERTY, prints its value (empty
for none). With VALUE, sets it (an empty VALUE sets a qube reference to none);
--default resets it instead. NAME may be \`dom0\` or \`uuid:…\`.

${CONNECTION_USAGE}
exit status: 0 done, 1 the Admin API refused or failed (its message and code on
standard error: a qube that does not exist, qubesd not reachable, ...), 2 usage error`,
  run: (rest, io) =>
    reportErrors("qube prefs", io, async (conn) => {
      const a = args(rest, [], ["--default", "-D", "--json"]);
      const [name, prop, value, extra] = a.positionals;
      if (!name) throw new UsageError("missing qube name");
      if (extra !== undefined) throw new UsageError(`unexpected argument \`${extra}\``);
      const reset = a.flags.has("--default") || a.flags.has("-D");
      const { qubes } = connect(a.flags, io, conn);
      const q = qubes.qube(name);
      if (prop === undefined) {
        if (reset) throw new UsageError("--default needs a property");
        const all = await q.properties();
        if (a.flags.has("--json")) {
          const out: Record<string, { default: boolean; type: string; value: unknown }> = {};
          for (const [k, v] of all) out[k] = { default: v.isDefault, type: v.type, value: v.value ?? null };
          io.stdout.write(JSON.stringify(out, null, 2) + "\n");
          return 0;
        }
        const w = Math.max(...[...all.keys()].map((k) => k.length));
        for (const [k, v] of [...all].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
          io.stdout.write(`${k.padEnd(w)}  ${v.isDefault ? "D" : "-"}  ${show(v)}\n`);
        }
        return 0;
      }
      if (reset) {
        if (value !== undefined) throw new UsageError("--default takes no value");
        await q.resetProperty(prop);
        return 0;
      }
      if (value !== undefined) {
        await q.setProperty(prop, value);
        return 0;
      }
      const v = await q.getProperty(prop);
      if (a.flags.has("--json")) io.stdout.write(JSON.stringify({ default: v.isDefault, type: v.type, value: v.value ?? null }) + "\n");
      else io.stdout.write(`${show(v)}\n`);
      return 0;
    }),
};

const features: Command = {
  path: ["qube", "features"],
  summary: "show or change the features of a qube",
  usage: `usage: qkit qube features NAME [FEATURE [VALUE]] [--unset|-D] [--json] [connection options]

Without FEATURE, lists every feature and its value. With FEATURE, prints its
value (exit 1 when not set). With VALUE, sets it (\`''\` is false by
convention); --unset removes it. --json prints the list as one JSON object.

${CONNECTION_USAGE}
exit status: 0 done, 1 the Admin API refused or failed (its message and code on
standard error: a qube that does not exist, qubesd not reachable, ...), 2 usage error`,
  run: (rest, io) =>
    reportErrors("qube features", io, async (conn) => {
      const a = args(rest, [], ["--unset", "-D", "--json"]);
      const [name, feature, value, extra] = a.positionals;
      if (!name) throw new UsageError("missing qube name");
      if (extra !== undefined) throw new UsageError(`unexpected argument \`${extra}\``);
      const unset = a.flags.has("--unset") || a.flags.has("-D");
      const { qubes } = connect(a.flags, io, conn);
      const q = qubes.qube(name);
      if (feature === undefined) {
        if (unset) throw new UsageError("--unset needs a feature");
        const all = await q.features.all();
        if (a.flags.has("--json")) {
          io.stdout.write(JSON.stringify(Object.fromEntries(all), null, 2) + "\n");
          return 0;
        }
        const w = Math.max(0, ...[...all.keys()].map((k) => k.length));
        for (const [k, v] of all) io.stdout.write(`${escapeControls(k.padEnd(w))}  ${escapeControls(v)}\n`);
        return 0;
      }
      if (unset) {
        if (value !== undefined) throw new UsageError("--unset takes no value");
        await q.features.remove(feature);
        return 0;
      }
      if (value !== undefined) {
        await q.features.set(feature, value);
        return 0;
      }
      io.stdout.write(`${escapeControls(await q.features.getOrThrow(feature))}\n`);
      return 0;
    }),
};

const tags: Command = {
  path: ["qube", "tags"],
  summary: "list, add or remove the tags of a qube",
  usage: `usage: qkit qube tags NAME [add|remove TAG...] [--json] [connection options]

Without an action, lists the tags. \`add\` and \`remove\` change them;
removing a tag that is not set fails (QubesTagNotFoundError). --json prints
the list as a JSON array.

${CONNECTION_USAGE}
exit status: 0 done, 1 the Admin API refused or failed (its message and code on
standard error: a qube that does not exist, qubesd not reachable, ...), 2 usage error`,
  run: (rest, io) =>
    reportErrors("qube tags", io, async (conn) => {
      const a = args(rest, [], ["--json"]);
      const [name, action, ...tagsArg] = a.positionals;
      if (!name) throw new UsageError("missing qube name");
      const { qubes } = connect(a.flags, io, conn);
      const q = qubes.qube(name);
      if (action === undefined) {
        const list = await q.tags.list();
        io.stdout.write(a.flags.has("--json") ? JSON.stringify(list) + "\n" : list.map((t) => `${escapeControls(t)}\n`).join(""));
        return 0;
      }
      if (action !== "add" && action !== "remove" && action !== "del") throw new UsageError(`unknown action \`${action}\` (use add or remove)`);
      if (tagsArg.length === 0) throw new UsageError(`${action} needs at least one tag`);
      for (const t of tagsArg) {
        if (action === "add") await q.tags.add(t);
        else await q.tags.remove(t);
      }
      return 0;
    }),
};

/** The `qkit qube …` commands. */
export const commands: Command[] = [ls, prefs, features, tags];
