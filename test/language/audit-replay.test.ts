/**
 * Replay of journal lines (`parseQrexecJournal`, `replayCalls`) through the
 * package entry point, data-driven over the demo system: a target the daemon
 * logged as `uuid:UUID` is the qube with that UUID (and `dom0` is
 * `@adminvm`); a failure the daemon logged is said as it was logged; text
 * from the journal is printable and bounded in every row and malformed line.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMemoryFileSystem, journalText, loadPolicy, parseQrexecJournal, prepareSystemInfo, replayCalls, type CompiledPolicy } from "@qubes-kit/language";

const demo = fileURLToPath(new URL("../fixtures/audit/demo/", import.meta.url));
const system = prepareSystemInfo(JSON.parse(readFileSync(demo + "system.json", "utf8")));
const VAULT = "uuid:93b76208-f7c2-4f9f-b4a3-14cdb8dac93f";
const DOM0 = "uuid:00000000-0000-0000-0000-000000000000";

function load(text: string): CompiledPolicy {
  const r = loadPolicy(createMemoryFileSystem({ "/etc/qubes/policy.d/30-user.policy": text }));
  if (!r.ok) throw new Error(r.error.message);
  return r.policy;
}

const draft = load(
  [
    "qubes.Filecopy * work vault allow",
    "qubes.Gpg * work @default allow target=vault",
    "qubes.GetDate * work @adminvm allow",
    "qubes.Share * work @anyvm ask default_target=vault",
    "qubes.Other * work @anyvm allow target=personal",
    "* * @anyvm @anyvm deny",
  ].join("\n") + "\n",
);

// [journal line, verdict, text]
const CASES: [string, string, string][] = [
  [`qrexec: qubes.Filecopy+: work -> vault: allowed to ${VAULT}`, "same", `was allowed to ${VAULT}, now allow to vault (30-user.policy:1)`],
  [`qrexec: qubes.Filecopy+: work -> ${VAULT}: allowed to ${VAULT}`, "same", `was allowed to ${VAULT}, now allow to ${VAULT} (30-user.policy:1)`],
  [`qrexec: qubes.Filecopy+: work -> ${VAULT}: allowed to vault`, "same", `was allowed to vault, now allow to ${VAULT} (30-user.policy:1)`],
  [`qrexec: qubes.Gpg+: work -> @default: allowed to ${VAULT}`, "same", `was allowed to ${VAULT}, now allow to vault (30-user.policy:2)`],
  [`qrexec: qubes.GetDate+: work -> @adminvm: allowed to ${DOM0}`, "same", `was allowed to ${DOM0}, now allow to dom0 (30-user.policy:3)`],
  [`qrexec: qubes.GetDate+: work -> dom0: allowed to dom0`, "same", `was allowed to dom0, now allow to dom0 (30-user.policy:3)`],
  // Another qube's UUID is another qube; an unknown UUID is no qube of the system.
  [`qrexec: qubes.Filecopy+: work -> vault: allowed to uuid:b19a0a27-a101-4dd5-aa91-8186d783de93`, "different", `was allowed to uuid:b19a0a27-a101-4dd5-aa91-8186d783de93, now allow to vault (30-user.policy:1)`],
  [`qrexec: qubes.Filecopy+: work -> vault: allowed to uuid:11111111-2222-3333-4444-555555555555`, "different", `was allowed to uuid:11111111-2222-3333-4444-555555555555, now allow to vault (30-user.policy:1)`],
  // An ask offering the qube the call went to (named by UUID in the log).
  [`qrexec: qubes.Share+: work -> @default: allowed to ${VAULT}`, "asks", ""],
  // Failures the daemon logged, said as logged.
  [`qrexec: qubes.Other+: work -> @default: error getting system info: boom`, "different", "was denied (error getting system info: boom), now allow to personal (30-user.policy:5)"],
  [`qrexec: qubes.Other+: work -> @default: error loading policy: 30-user.policy:3: invalid action`, "different", "was denied (error loading policy: 30-user.policy:3: invalid action), now allow to personal (30-user.policy:5)"],
  [`qrexec: qubes.Nope+: work -> vault: error getting system info: boom`, "same", "was denied (error getting system info: boom), now deny (30-user.policy:6)"],
];

describe("replayCalls over the demo system", () => {
  it.each(CASES)("%s", (line, verdict, text) => {
    const parsed = parseQrexecJournal(line + "\n");
    expect(parsed.malformed).toEqual([]);
    const [row] = replayCalls(draft, system, parsed.calls);
    expect(row!.verdict).toBe(verdict);
    if (text) expect(row!.text).toBe(text);
  });
});

describe("calls whose names hold control characters", () => {
  // A line cut or mangled on its way (no service or qube name has such a character): malformed, never a call to a qube so named.
  it.each([
    ["the final target", "qrexec: qubes.Filecopy+: work -> vault: allowed to vault\x00\x1b[31m"],
    ["the requested target", "qrexec: qubes.Filecopy+: work -> va\x07ult: denied: denied by policy"],
    ["the source", "qrexec: qubes.Filecopy+: wo\x1brk -> vault: allowed to vault"],
    ["the service", "qrexec: qubes.File\x9bcopy+: work -> vault: allowed to vault"],
    ["the source, as a bidirectional override", "qrexec: qubes.Gpg+: wo\u202erk -> vault: allowed to vault"],
  ])("in %s: the line is malformed", (_where, line) => {
    const parsed = parseQrexecJournal(line + "\n");
    expect(parsed.calls).toEqual([]);
    expect(parsed.malformed.map((m) => m.reason)).toEqual(["a name of the call holds a control or invisible formatting character, which no service or qube name has"]);
  });
});

describe("journal text is printable and bounded", () => {
  it("escapes control characters and clips long text in rows and malformed lines", () => {
    const esc = "qrexec: qubes.Filecopy+: work -> vault: error loading policy: bad \x1b[31mred\x1b[0m \u202egnp.exe\n";
    const [row] = replayCalls(draft, system, parseQrexecJournal(esc).calls);
    expect(row!.text).toBe("was denied (error loading policy: bad \\x1b[31mred\\x1b[0m \\u202egnp.exe), now allow to vault (30-user.policy:1)");
    const long = "x".repeat(2_000_000);
    const big = parseQrexecJournal(`qrexec: ${long} \x07\n{"MESSAGE": 5}\n`);
    expect(big.malformed.map((m) => m.line)).toEqual([1, 2]);
    expect(big.malformed[0]!.text).toBe(`qrexec: ${"x".repeat(192)}… (${2_000_013 - 200} more characters)`);
    expect(journalText("a\tb\nc\x00")).toBe("a\\tb\\nc\\x00");
  });

  it("never yields a row text or malformed text with a control character or longer than a bound", () => {
    const chars = fc.constantFrom("a", " ", ":", "-", ">", "\x1b", "\x00", "\u202e", "\x85", "\t", "é", "+");
    const field = fc.array(chars, { maxLength: 300 }).map((c) => c.join(""));
    fc.assert(
      fc.property(field, field, fc.constantFrom("allowed to ", "denied: ", "error loading policy: ", "error getting system info: ", ""), field, (src, tgt, what, rest) => {
        const journal = parseQrexecJournal(`qrexec: qubes.Filecopy+: ${src} -> ${tgt}: ${what}${rest}\n`);
        for (const r of replayCalls(draft, system, journal.calls)) {
          expect(r.text).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
          expect(r.text.length).toBeLessThan(2500);
        }
        for (const m of journal.malformed) {
          expect(m.text).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
          expect(m.text.length).toBeLessThan(260);
        }
      }),
      { numRuns: 300 },
    );
  });
});
