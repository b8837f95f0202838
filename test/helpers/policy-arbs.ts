/**
 * Random policy rules for property tests (diff, flow, flip): one rule line from
 * the given columns, with parameters that keep it loadable (`target=` on an
 * allow to `@default`, `default_target=` only on ask, none on deny).
 */
import fc from "fast-check";
import type { RawSystemInfo } from "@qubes-kit/language";

export interface RuleColumns {
  serviceArgs: [string, string][];
  sources: string[];
  targets: string[];
  /** Values of `target=` and `default_target=`. */
  redirects: string[];
  /** Also draw `autostart=yes|no` on allow and ask. */
  autostart?: boolean;
}

/** An arbitrary rule line over {@link RuleColumns}. */
export function ruleLineArb(c: RuleColumns): fc.Arbitrary<string> {
  return fc
    .record({
      sa: fc.constantFrom(...c.serviceArgs),
      source: fc.constantFrom(...c.sources),
      target: fc.constantFrom(...c.targets),
      action: fc.constantFrom("allow", "deny", "ask"),
      redirect: fc.option(fc.constantFrom(...c.redirects), { nil: undefined, freq: 3 }),
      defaultTarget: fc.option(fc.constantFrom(...c.redirects), { nil: undefined, freq: 3 }),
      ...(c.autostart ? { autostart: fc.option(fc.boolean(), { nil: undefined, freq: 3 }) } : {}),
    })
    .map((r) => {
      const params: string[] = [];
      if (r.action !== "deny") {
        if (r.redirect) params.push(`target=${r.redirect}`);
        if (r.action === "ask" && r.defaultTarget) params.push(`default_target=${r.defaultTarget}`);
        const autostart = (r as { autostart?: boolean }).autostart;
        if (autostart !== undefined) params.push(`autostart=${autostart ? "yes" : "no"}`);
      }
      if (r.action === "allow" && r.target === "@default" && !r.redirect) params.push("target=work");
      return [r.sa[0], r.sa[1], r.source, r.target, r.action, ...params].join(" ");
    });
}

/** What {@link systemInfoArb} draws. */
export interface SystemColumns {
  /** The qubes that may exist (`q00`…), each with uuid `…<index>`. */
  qubes: string[];
  /** Values of `default_dispvm` (a name no qube has included, to reach the engine's crashes). */
  defaultDispvms: (string | null)[];
  /** Now and then a key is missing from one of these qubes (the engine then crashes in places). */
  drop: { qubes: string[]; keys: string[]; freq: number };
}

/** The uuid of the `i`-th qube of {@link systemInfoArb} (dom0 is 999). */
export const uuidOf = (i: number) => `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`;

/** An arbitrary `GetSystemInfo` answer over {@link SystemColumns}: tags, types, disposable templates, power states. */
export function systemInfoArb(c: SystemColumns): fc.Arbitrary<RawSystemInfo> {
  return fc
    .record({
      present: fc.subarray(c.qubes, { minLength: 1 }),
      props: fc.array(
        fc.record({
          tags: fc.subarray(["t1", "t2", "t3"]),
          type: fc.constantFrom("AppVM", "TemplateVM", "DispVM", "StandaloneVM"),
          dvm: fc.boolean(),
          def: fc.constantFrom(...c.defaultDispvms),
          running: fc.boolean(),
          internal: fc.constantFrom(null, null, null, "1"),
        }),
        { minLength: c.qubes.length, maxLength: c.qubes.length },
      ),
      drop: fc.option(fc.record({ qube: fc.constantFrom(...c.drop.qubes), key: fc.constantFrom(...c.drop.keys) }), { nil: undefined, freq: c.drop.freq }),
    })
    .map((s) => {
      const domains: RawSystemInfo["domains"] = {
        dom0: { type: "AdminVM", tags: [], template_for_dispvms: false, default_dispvm: "q01", power_state: "Running", uuid: uuidOf(999), internal: null, icon: "", label: "" },
      };
      c.qubes.forEach((n, i) => {
        if (!s.present.includes(n)) return;
        const p = s.props[i]!;
        domains[n] = { type: p.type, tags: p.tags, template_for_dispvms: p.dvm, default_dispvm: p.def, power_state: p.running ? "Running" : "Halted", uuid: uuidOf(i), internal: p.internal, icon: "", label: "" };
      });
      if (s.drop && domains[s.drop.qube]) delete (domains[s.drop.qube] as Record<string, unknown>)[s.drop.key];
      return { domains };
    });
}
