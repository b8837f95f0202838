/**
 * `flipDecision` and the journal replay through the package entry point.
 * Flip: on random policies and calls, every suggestion is applied again here
 * (independently of the implementation), the edited policy loaded and the
 * call decided: the decision must differ from the original and equal the
 * one reported; an allowed or asked call always has a suggestion (a deny
 * rule added before the deciding rule). Replay: log lines written in every
 * journalctl format parse back to the calls they log; arbitrary text never
 * throws and never yields a call that was not written.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  createMemoryFileSystem,
  decisionToJson,
  decisionsDiffer,
  evaluate,
  flipDecision,
  loadPolicy,
  parseQrexecJournal,
  prepareSystemInfo,
  replayCalls,
  requestSpace,
  type CompiledPolicy,
  type RawSystemInfo,
} from "@qubes-kit/language";
import { ruleLineArb } from "../helpers/policy-arbs.js";

const SOURCES = ["@anyvm", "@adminvm", "dom0", "work", "vault", "@tag:t1", "@type:AppVM"];
const TARGETS = ["@anyvm", "@adminvm", "@default", "@dispvm", "dom0", "work", "vault", "@tag:t1", "@dispvm:dvm"];
const REDIRECTS = ["@adminvm", "@dispvm", "@dispvm:dvm", "work", "vault"];
const SERVICE_ARGS: [string, string][] = [
  ["*", "*"],
  ["qubes.A", "*"],
  ["qubes.A", "+x"],
  ["qubes.B", "*"],
];

const ruleArb = ruleLineArb({ serviceArgs: SERVICE_ARGS, sources: SOURCES, targets: TARGETS, redirects: REDIRECTS });

const SYSTEM: RawSystemInfo = {
  domains: Object.fromEntries(
    ["dom0", "work", "vault", "dvm", "q1"].map((n, i) => [
      n,
      {
        internal: null,
        tags: n === "q1" || n === "work" ? ["t1"] : [],
        type: n === "dom0" ? "AdminVM" : "AppVM",
        template_for_dispvms: n === "dvm",
        default_dispvm: n === "dom0" ? null : "dvm",
        power_state: "Running",
        uuid: `00000000-0000-0000-0000-00000000000${i}`,
        relayvm: null,
        transport_rpc: null,
        label: "0xcc0000",
        icon: "appvm-red",
        guivm: null,
      },
    ]),
  ),
};
const system = prepareSystemInfo(SYSTEM);
const FILE = "/etc/qubes/policy.d/30-user.policy";

function load(text: string): CompiledPolicy | undefined {
  const r = loadPolicy(createMemoryFileSystem({ [FILE]: text }));
  return r.ok ? r.policy : undefined;
}

describe("flipDecision", () => {
  it("every suggestion, applied independently, loads and changes the decision to the one reported", () => {
    const space = requestSpace([], system);
    fc.assert(
      fc.property(
        fc.array(ruleArb, { minLength: 1, maxLength: 7 }),
        fc.constantFrom("qubes.A", "qubes.B", "qubes.C"),
        fc.constantFrom("+", "+x"),
        fc.constantFrom(...space.qubes),
        fc.constantFrom(...space.targets),
        (lines, service, argument, source, target) => {
          const text = lines.join("\n") + "\n";
          const policy = load(text);
          fc.pre(policy !== undefined);
          const request = { service, argument, source, target };
          const r = flipDecision(policy!, { fs: createMemoryFileSystem({ [FILE]: text }) }, request, system);
          const before = evaluate(policy!, request, system);
          expect(decisionToJson(r.before)).toEqual(decisionToJson(before));
          for (const s of r.suggestions) {
            const ls = text.split("\n");
            const i = s.edit.line - 1;
            if (s.edit.kind === "remove") ls.splice(i, 1);
            else if (s.edit.kind === "change-action") ls[i] = s.edit.newRule;
            else ls.splice(i, 0, s.edit.newRule);
            const edited = load(ls.join("\n"));
            expect(edited).toBeDefined();
            const after = evaluate(edited!, request, system);
            expect(decisionsDiffer(before, after)).toBe(true);
            expect(decisionToJson(s.after)).toEqual(decisionToJson(after));
          }
          if (before.ok && before.action !== "deny") expect(r.suggestions.some((s) => s.edit.kind === "add" && / deny$/.test(s.edit.newRule))).toBe(true);
          expect(r.tried).toBe(r.suggestions.length + r.rejected.length);
        },
      ),
      { numRuns: 150 },
    );
  });
});

const callArb = fc.record({
  service: fc.constantFrom("qubes.Filecopy", "qubes.OpenURL", "my.Service"),
  argument: fc.constantFrom("+", "+x", "+a.b"),
  source: fc.constantFrom("work", "vault", "q1"),
  target: fc.constantFrom("work", "vault", "@default", "@dispvm", "@dispvm:dvm", "dom0"),
  outcome: fc.oneof(
    fc.record({ kind: fc.constant("allowed" as const), target: fc.constantFrom("work", "vault", "@dispvm:dvm", "dom0") }),
    fc.record({ kind: fc.constant("denied" as const), message: fc.constantFrom("denied by policy /etc/qubes/policy.d/30-user.policy:3", "denied by the user /etc/qubes/policy.d/30-user.policy:7", "policy define 'allow' action at x:1 but no target is specified by caller or policy") }),
    fc.record({ kind: fc.constant("error" as const), message: fc.constantFrom("/etc/qubes/policy.d/30-user.policy:1: invalid action: alow") }),
  ),
  format: fc.constantFrom("short", "short-iso", "cat", "json"),
});

function logLine(c: fc.RecordValue<typeof callArb extends fc.Arbitrary<infer T> ? T : never>): string {
  const svc = c.service + (c.argument === "+" && c.outcome.kind !== "allowed" ? "" : c.argument);
  const tail = c.outcome.kind === "allowed" ? `allowed to ${c.outcome.target}` : c.outcome.kind === "denied" ? `denied: ${c.outcome.message}` : `error loading policy: ${c.outcome.message}`;
  const msg = `qrexec: ${svc}: ${c.source} -> ${c.target}: ${tail}`;
  if (c.format === "short") return `Dec 05 09:12:01 dom0 qrexec-policy-daemon[811]: ${msg}`;
  if (c.format === "short-iso") return `2026-12-05T09:12:01+0000 dom0 qrexec-policy-daemon[811]: ${msg}`;
  if (c.format === "json") return JSON.stringify({ MESSAGE: msg, __REALTIME_TIMESTAMP: "1796461321000000", SYSLOG_IDENTIFIER: "qrexec-policy-daemon" });
  return msg;
}

describe("parseQrexecJournal", () => {
  it("reads back every call written in any journalctl format, among other lines", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(callArb, fc.constantFrom("-- Boot 0123 --", "Dec 05 09:00:00 dom0 systemd[1]: Started x.", "")), { maxLength: 12 }), (items) => {
        const text = items.map((x) => (typeof x === "string" ? x : logLine(x))).join("\n");
        const j = parseQrexecJournal(text);
        const written = items.flatMap((x, i) => (typeof x === "string" ? [] : [{ x, line: i + 1 }]));
        expect(j.malformed).toEqual([]);
        expect(j.calls.map((c) => c.line)).toEqual(written.map((w) => w.line));
        j.calls.forEach((c, k) => {
          const w = written[k]!.x;
          expect(c.request).toEqual({ service: w.service, argument: w.argument, source: w.source, target: w.target });
          if (w.outcome.kind === "denied") expect(c.outcome).toEqual({ kind: "denied", message: w.outcome.message, byUser: w.outcome.message.startsWith("denied by the user") });
          else expect(c.outcome).toEqual(w.outcome);
        });
      }),
      { numRuns: 200 },
    );
  });

  it("never throws on any text, and every line is a call, malformed or ignored", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string(), fc.string().map((s) => "qrexec: " + s), fc.string().map((s) => `{"MESSAGE":${JSON.stringify("qrexec: " + s)}}`), fc.string().map((s) => `Dec 05 h p[1]: qrexec: ${s}`)), { maxLength: 10 }), (lines) => {
        const text = lines.join("\n");
        const j = parseQrexecJournal(text);
        const count = text.split(/\r\n|\n/).length - (text.endsWith("\n") ? 1 : 0);
        expect(j.calls.length + j.malformed.length + j.ignored).toBe(text === "" ? 0 : count);
      }),
      { numRuns: 300 },
    );
  });
});

describe("replayCalls", () => {
  const policy = load("qubes.Filecopy * work vault ask default_target=vault\nqubes.Filecopy * work @anyvm allow target=vault\n* * @anyvm @anyvm deny\n")!;
  const rows = replayCalls(
    policy,
    system,
    parseQrexecJournal(
      [
        "qrexec: qubes.Filecopy+: work -> vault: allowed to vault", // now asks, vault offered: same if confirmed
        "qrexec: qubes.Filecopy+: work -> q1: allowed to q1", // now allowed to vault: different
        "qrexec: qubes.Filecopy+: work -> dvm: allowed to vault", // same (target= sends it to vault)
        "qrexec: qubes.Filecopy: vault -> work: denied: denied by policy x:1", // same
        "qrexec: qubes.Filecopy: work -> vault: denied: denied by the user x:1", // asks now: same
        "qrexec: qubes.Filecopy: work -> q1: denied: denied by policy x:1", // now allowed: different
        "qrexec: qubes.OpenURL+: work -> q1: error loading policy: x:1: invalid action", // deny: same
      ].join("\n"),
    ).calls,
  );
  it("compares each past outcome with the draft's decision", () => {
    expect(rows.map((r) => r.verdict)).toEqual(["asks", "different", "same", "same", "same", "different", "same"]);
    expect(rows[1]!.text).toBe("was allowed to q1, now allow to vault (30-user.policy:2)");
  });
});
