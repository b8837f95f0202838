/**
 * Random policy rules for property tests (diff, flow, flip): one rule line from
 * the given columns, with parameters that keep it loadable (`target=` on an
 * allow to `@default`, `default_target=` only on ask, none on deny).
 */
import fc from "fast-check";

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
