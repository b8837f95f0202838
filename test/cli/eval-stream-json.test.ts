/**
 * `qkit policy eval --requests` writes, byte for byte, what `qkit policy eval
 * --json` prints for each request alone (a fresh process, a policy loaded for
 * that one service): property-based, on random policies and system models
 * large enough for long `ask` lists, split rule groups and repeated requests
 * (what the stream caches and shares must never show). With `--echo`, each
 * line is the API's decision plus the request as read.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMemoryFileSystem, decisionToJson, evaluate, loadPolicy, prepareSystemInfo, type RawSystemInfo } from "@qubes-kit/language";
import { ruleLineArb, systemInfoArb, uuidOf } from "../helpers/policy-arbs.js";
import { runQkit } from "../helpers/qkit.js";

const QUBES = Array.from({ length: 24 }, (_, i) => `q${String(i).padStart(2, "0")}`);
// Now and then a key is missing: the engine then crashes in places, and so must the stream.
const systemArb = systemInfoArb({
  qubes: QUBES,
  defaultDispvms: [null, "q01", "q02", "ghost"],
  drop: { qubes: QUBES, keys: ["tags", "type", "template_for_dispvms", "power_state", "uuid", "default_dispvm"], freq: 5 },
});

const FEW = ["q00", "q01", "q02", "q03"];
const ruleArb = ruleLineArb({
  serviceArgs: [
    ["qubes.A", "*"],
    ["qubes.A", "+x"],
    ["qubes.B", "*"],
    ["*", "*"],
  ],
  // Few sources, so groups of one source key in one bucket grow past the size the index splits by target.
  sources: ["@anyvm", "@anyvm", "@anyvm", "@anyvm", "@anyvm", "@anyvm", "*", "@tag:t1", "@type:AppVM", "@adminvm", "dom0", ...FEW, `uuid:${uuidOf(1)}`],
  targets: ["@anyvm", "*", "@tag:t2", "@type:AppVM", "@default", "@dispvm", "@dispvm:q01", "@dispvm:@tag:t1", "@adminvm", "dom0", ...FEW, "ghost"],
  redirects: ["@adminvm", "@dispvm", "@dispvm:q01", "dom0", "q02", "ghost", `uuid:${uuidOf(3)}`],
  autostart: true,
});

interface Req {
  service: string;
  argument: string;
  source: string;
  target: string;
}
const requestArb: fc.Arbitrary<Req> = fc.record({
  service: fc.constantFrom("qubes.A", "qubes.B", "qubes.C"),
  argument: fc.constantFrom("+", "+x"),
  source: fc.constantFrom(...QUBES, "dom0", "ghost", `uuid:${uuidOf(1)}`),
  target: fc.constantFrom(...FEW, "q17", "", "@default", "@dispvm", "@dispvm:q01", "@adminvm", "ghost", "@tag:t1", `uuid:${uuidOf(2)}`),
});

function setup(rules: string[], raw: RawSystemInfo, requests: Req[]): string {
  const dir = mkdtempSync(join(tmpdir(), "qkit-stream-json-"));
  mkdirSync(join(dir, "policy.d"));
  writeFileSync(join(dir, "policy.d", "30-user.policy"), rules.join("\n") + "\n");
  writeFileSync(join(dir, "system.json"), JSON.stringify(raw));
  writeFileSync(join(dir, "requests.jsonl"), requests.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return dir;
}

const evalArgs = (dir: string) => ["policy", "eval", "--policy-dir", join(dir, "policy.d"), "--system", join(dir, "system.json")];

describe("qkit policy eval --requests", () => {
  it("writes exactly what `qkit policy eval --json` prints for each request alone, repeated requests included", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(ruleArb, { minLength: 1, maxLength: 70 }), systemArb, fc.array(requestArb, { minLength: 1, maxLength: 8 }), async (rules, raw, reqs) => {
        // Every request twice: the second time, whatever the stream cached answers.
        const requests = [...reqs, ...reqs];
        const dir = setup(rules, raw, requests);
        try {
          const stream = await runQkit([...evalArgs(dir), "--requests", join(dir, "requests.jsonl")], { cwd: dir });
          expect(stream.code).toBe(0);
          const lines = stream.out.split("\n");
          expect(lines.pop()).toBe("");
          expect(lines.length).toBe(requests.length);
          for (let i = 0; i < reqs.length; i++) {
            const r = reqs[i]!;
            const one = await runQkit([...evalArgs(dir), r.service + (r.argument === "+" ? "" : r.argument), r.source, r.target, "--json"], { cwd: dir });
            expect(lines[i]).toBe(one.out.replace(/\n$/, ""));
            expect(lines[i + reqs.length]).toBe(lines[i]);
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 60 },
    );
  });

  it("with --echo, writes each decision with the request as read", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(ruleArb, { minLength: 1, maxLength: 40 }), systemArb, fc.array(requestArb, { minLength: 1, maxLength: 8 }), async (rules, raw, reqs) => {
        const dir = setup(rules, raw, reqs);
        try {
          const stream = await runQkit([...evalArgs(dir), "--requests", join(dir, "requests.jsonl"), "--echo"], { cwd: dir });
          const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": rules.join("\n") + "\n" }));
          expect(loaded.ok).toBe(true);
          if (!loaded.ok) return;
          const system = prepareSystemInfo(raw);
          const want = reqs.map((r) => JSON.stringify({ ...decisionToJson(evaluate(loaded.policy, r, system)), request: r }));
          expect(stream.out.split("\n").slice(0, -1)).toEqual(want);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 40 },
    );
  });

  it("answers a malformed line and a line of a policy that does not load in the same shape, echo included", async () => {
    const dir = setup(["qubes.A * @anyvm @anyvm allow target=q01"], { domains: {} }, []);
    try {
      writeFileSync(join(dir, "requests.jsonl"), '{"service":"qubes.A","argument":"+","source":"q00","target":""}\nnot json\n[1]\n');
      const ok = await runQkit([...evalArgs(dir), "--requests", join(dir, "requests.jsonl"), "--echo"], { cwd: dir });
      expect(ok.code).toBe(2);
      const lines = ok.out.split("\n").slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((l) => [l["error"] === "UsageError", l["request"]])).toEqual([
        [false, { service: "qubes.A", argument: "+", source: "q00", target: "" }],
        [true, "not json"],
        [true, [1]],
      ]);
      writeFileSync(join(dir, "policy.d", "30-user.policy"), "qubes.A * @anyvm\n");
      const broken = await runQkit([...evalArgs(dir), "--requests", join(dir, "requests.jsonl")], { cwd: dir });
      const first = broken.out.split("\n")[0]!;
      const loaded = loadPolicy(createMemoryFileSystem({ "30-user.policy": "qubes.A * @anyvm\n" }));
      expect(loaded.ok).toBe(false);
      if (loaded.ok) return;
      expect(first).toBe(JSON.stringify(decisionToJson({ ...loaded.error, ok: false, stage: "load" })));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
