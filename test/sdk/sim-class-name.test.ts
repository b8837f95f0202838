/**
 * One name for one thing: the SDK's objects call the qube's class `class`
 * (as the CLI and templates do), through the public entry against the
 * simulator. `klass` remains only qubesd's property name. The type-level side
 * (`klass` does not compile) is `test/types/sdk-class.ts`, checked by `tsc -b`.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Qubes, QubesCache, UnixSocketTransport, calls, systemInfo } from "@qubes-kit/sdk";
import { startSimulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { FIXTURES, tmpDir } from "./sim-helpers.js";

const dir = tmpDir();
const socket = join(dir, "qubesd.sock");
let server: SimulatorServer;
const qubes = () => new Qubes({ transport: new UnixSocketTransport({ path: socket, servicesOverSocket: true }) });

beforeAll(async () => {
  server = await startSimulator({ socket, system: JSON.parse(readFileSync(join(FIXTURES, "sim/demo-system.json"), "utf8")) });
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the qube's class is `class` on the SDK surface", () => {
  it("list entries, info(), class(), the cache and the snapshot carry `class`, never `klass`", async () => {
    const q = qubes();
    const list = await q.list();
    expect(list.length).toBeGreaterThan(1);
    for (const e of list) {
      expect(Object.keys(e)).toContain("class");
      expect(Object.keys(e)).not.toContain("klass");
      expect(e.class).toBe(await q.qube(e.name).class());
      // The qubesd property keeps its real name and agrees.
      expect(await q.qube(e.name).get("klass")).toBe(e.class);
    }
    expect(list.find((e) => e.name === "dom0")!.class).toBe("AdminVM");
    const cache = new QubesCache(q.client, { eager: false });
    await cache.load();
    for (const [name, c] of cache.qubes) {
      expect(Object.keys(c)).not.toContain("klass");
      expect(c.class).toBe(list.find((e) => e.name === name)!.class);
    }
    const snap = await systemInfo(q);
    for (const e of list) expect(snap.domains[e.name]!.type).toBe(e.class);
  });

  it("createQube and cloneQube take `class`", async () => {
    const q = qubes();
    const tpl = (await q.list()).find((e) => e.class === "TemplateVM")!.name;
    expect(calls.create({ class: "AppVM", name: "x", label: "red" }).method).toBe("admin.vm.Create.AppVM");
    const made = await q.createQube({ class: "AppVM", name: "class-made", label: "green", template: tpl });
    expect(await made.class()).toBe("AppVM");
    const clone = await q.cloneQube("class-made", "class-clone", { class: "AppVM", ignoreVolumes: true });
    expect((await clone.info()).class).toBe("AppVM");
    await clone.remove();
    await made.remove();
  });
});
