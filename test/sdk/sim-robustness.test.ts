/**
 * Bad input never crashes the simulator: any request bytes give a well-formed
 * reply (`0\0…`, `2\0type\0\0message\0`, event frames) or a closed connection.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Simulator, adminMethodNames } from "@qubes-kit/sdk/sim";

function wellFormed(reply: Buffer | undefined): boolean {
  if (reply === undefined) return true;
  if (reply.length < 2 || reply[1] !== 0) return false;
  if (reply[0] === 0x30 || reply[0] === 0x31) return true;
  if (reply[0] !== 0x32) return false;
  const parts = reply.subarray(2).toString("utf8").split("\0");
  return parts.length === 4 && parts[0]!.length > 0 && parts[3] === "";
}

const methods = [...adminMethodNames(), "policy.List", "policy.Get", "policy.Replace", "policy.include.Remove", "admin.no.Such"];
const names = ["dom0", "work", "tpl", "uuid:00000000-0000-0000-0000-000000000000", "nosuch", "0bad", "", "a b", "uuid:1234"];

describe("simulator robustness", () => {
  const sim = new Simulator({ policy: { "30-user.policy": "admin.vm.List * @anyvm @adminvm allow target=dom0\n" } });
  for (const r of [
    "admin.vm.Create.TemplateVM+ dom0 name dom0\0name=tpl label=black",
    "admin.property.Set+default_template dom0 name dom0\0tpl",
    "admin.vm.Create.AppVM+ dom0 name dom0\0name=work label=blue",
  ])
    sim.handle(Buffer.from(r, "latin1"));

  it("answers any structured request with a well-formed reply or nothing", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...methods),
        fc.oneof(fc.constantFrom("", "label", "memory", "netvm", "private", "force+wait", "dom0+00_14.0", "x"), fc.string({ maxLength: 12 })),
        fc.constantFrom(...names),
        fc.constantFrom("name", "keyword", "bogus"),
        fc.constantFrom(...names, "adminvm"),
        fc.oneof(fc.constantFrom("", "1", "True", "name=x label=red", "any\nx\n", "action=accept\n"), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString("latin1"))),
        (method, arg, source, destType, dest, payload) => {
          const bytes = Buffer.from(`${method}+${arg} ${source} ${destType} ${dest}\0${payload}`, "latin1");
          expect(wellFormed(sim.handle(bytes))).toBe(true);
        },
      ),
      { numRuns: 3000, seed: 42 },
    );
  });

  it("answers random bytes with a well-formed reply or nothing", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (b) => {
        expect(wellFormed(sim.handle(b))).toBe(true);
      }),
      { numRuns: 2000, seed: 7 },
    );
  });

  it("still works afterwards", () => {
    expect(sim.handle(Buffer.from("admin.vm.List+ dom0 name work\0", "latin1"))!.toString("latin1")).toMatch(/^0\0work class=AppVM /);
  });
});
