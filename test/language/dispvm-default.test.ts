/**
 * `dispvm-without-default` resolves the source token against the system
 * model: property, on random system models, that the rule warns exactly when
 * the engine refuses `@dispvm` from every qube the source matches (and it
 * matches one), through the language entry point.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { analyzeWorkspace, createMemoryFileSystem, evaluateRequest, prepareSystemInfo, type RawSystemInfo } from "@qubes-kit/language";
import { readFileSync } from "node:fs";
import { FIXTURES } from "../lsp/helpers/fixture.js";

const RAW = JSON.parse(readFileSync(FIXTURES + "system.json", "utf8")) as RawSystemInfo;
const NAMES = Object.keys(RAW.domains);
const SOURCES = ["vault", "work", "@tag:gpg-server", "@tag:work", "@tag:gpg-client", "@type:AppVM", "@type:TemplateVM", "@anyvm", "*", "nosuch", "@tag:nosuch"];

describe("dispvm-without-default", () => {
  test("warns exactly when @dispvm is refused from every qube the source matches", () => {
    let warned = 0;
    fc.assert(
      fc.property(fc.constantFrom(...SOURCES), fc.subarray(NAMES), fc.constantFrom("@dispvm allow", "@dispvm ask", "@default allow target=@dispvm"), (source, without, rest) => {
        const raw: RawSystemInfo = { domains: {} };
        for (const n of NAMES) raw.domains[n] = { ...RAW.domains[n]!, ...(without.includes(n) ? { default_dispvm: null } : {}) };
        const system = prepareSystemInfo(raw);
        const text = `qubes.VMExec * ${source} ${rest}\n`;
        const s = analyzeWorkspace(createMemoryFileSystem({ "30-user.policy": text }), { system });
        const diags = [...s.diagnostics.values()].flat().filter((d) => d.code === "dispvm-without-default");
        // The qubes whose call the rule decides (to @dispvm, or to @default for a `target=@dispvm` rule), and those the engine refuses.
        const target = rest.startsWith("@dispvm") ? "@dispvm" : "";
        const decide = (q: string) => evaluateRequest(s, { service: "qubes.VMExec", argument: "+", source: q, target }, system);
        const matched = NAMES.filter((q) => {
          const d = decide(q);
          return "rule" in d && d.rule?.line === 1;
        });
        const refused = matched.filter((q) => !decide(q).ok);
        const expected = matched.length > 0 && refused.length === matched.length;
        expect(diags.length === 1, `${text} without ${without.join(",")}: matched ${matched.join(",")}, refused ${refused.join(",")}`).toBe(expected);
        if (diags.length) {
          warned++;
          expect(diags[0]!.message).toMatch(/has no default disposable template, so `@dispvm` from it is always refused$/);
        }
      }),
      { numRuns: 300 },
    );
    expect(warned).toBeGreaterThan(10);
  });

  test("the reviewer's case: @tag:gpg-server (vault alone, no default) is reported", () => {
    const system = prepareSystemInfo(RAW);
    const s = analyzeWorkspace(createMemoryFileSystem({ "30-user.policy": "qubes.VMExec * @tag:gpg-server @dispvm allow\n" }), { system });
    const d = [...s.diagnostics.values()].flat().find((x) => x.code === "dispvm-without-default");
    expect(d?.message).toBe("every qube `@tag:gpg-server` matches (`vault`) has no default disposable template, so `@dispvm` from it is always refused");
  });
});
