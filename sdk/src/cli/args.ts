/**
 * A small, strict argument parser for `qkit` commands: `--name value`,
 * `--name=value`, boolean flags, and positionals. Unknown options are usage
 * errors (exit code 2).
 */
import { UsageError } from "./command.js";
import { didYouMean } from "./text.js";

/** The options a command accepts: `true` for a flag, `"value"` for an option with a value, `"values"` for a repeatable one. */
export type OptionSpec = Record<string, true | "value" | "values">;

/** Parsed arguments. */
export interface ParsedArgs {
  flags: Set<string>;
  values: Map<string, string>;
  lists: Map<string, string[]>;
  positionals: string[];
}

/**
 * Parses `args` against `spec`; `short` maps one-letter options (`-s`) to
 * their long name (`show-line`). Throws {@link UsageError} (with a "did you
 * mean" for a near miss).
 */
export function parseArgs(args: readonly string[], spec: OptionSpec, short: Record<string, string> = {}): ParsedArgs {
  const unknown = (given: string) =>
    new UsageError(`unknown option \`${given}\`${didYouMean(given.replace(/=.*/s, ""), [...Object.keys(spec).map((k) => `--${k}`), ...Object.keys(short)])}`);
  const out: ParsedArgs = { flags: new Set(), values: new Map(), lists: new Map(), positionals: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      out.positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith("--") && a.length > 2) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const kind = spec[name];
      if (kind === undefined) throw unknown(`--${name}`);
      if (kind === true) {
        if (eq >= 0) throw new UsageError(`option \`--${name}\` takes no value`);
        out.flags.add(name);
        continue;
      }
      let value: string;
      if (eq >= 0) value = a.slice(eq + 1);
      else {
        if (i + 1 >= args.length) throw new UsageError(`option \`--${name}\` needs a value`);
        // The next word is one of the command's own options: the value was left out (`--output --json`).
        const next = args[i + 1]!;
        if (next.startsWith("--") && spec[next.slice(2).replace(/=.*/s, "")] !== undefined)
          throw new UsageError(`option \`--${name}\` needs a value, and \`${next}\` is an option; give the value (\`--${name}=${next}\` if it really is that)`);
        value = args[++i]!;
      }
      if (kind === "values") out.lists.set(name, [...(out.lists.get(name) ?? []), value]);
      else {
        // An option of one value given twice: which was meant is not for us to guess.
        const before = out.values.get(name);
        if (before !== undefined && before !== value) throw new UsageError(`option \`--${name}\` was given twice (\`${before}\`, then \`${value}\`); give it once`);
        out.values.set(name, value);
      }
      continue;
    }
    if (a.startsWith("-") && a !== "-") {
      const long = short[a];
      if (long === undefined) throw unknown(a);
      args = [...args.slice(0, i), `--${long}`, ...args.slice(i + 1)];
      i--;
      continue;
    }
    out.positionals.push(a);
  }
  return out;
}
