/**
 * The simulator under load: 200 connections at once and several event
 * listeners; no reply is lost and every listener sees every event, in the
 * same order, with each pre-event right before its event.
 */
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Simulator, type SimulatorServer } from "@qubes-kit/sdk/sim";
import { call, openStream, tmpDir, type Stream } from "./sim-helpers.js";

const req = (header: string, payload = "") => Buffer.from(`${header}\0${payload}`, "latin1");

describe("simulator with concurrent clients", () => {
  let server: SimulatorServer;
  let socket: string;
  beforeAll(async () => {
    socket = path.join(tmpDir(), "qubesd.sock");
    server = await new Simulator().listen(socket);
    for (const r of [
      req("admin.vm.Create.TemplateVM+ dom0 name dom0", "name=tpl label=black"),
      req("admin.property.Set+default_template dom0 name dom0", "tpl"),
      req("admin.vm.Create.AppVM+ dom0 name dom0", "name=work label=blue"),
      req("admin.vm.Create.AppVM+ dom0 name dom0", "name=other label=red"),
    ])
      expect((await call(socket, r)).toString("latin1")).toBe("0\0");
  });
  afterAll(async () => {
    await server?.close();
  });

  it("answers 200 simultaneous calls and delivers every event to every listener in one order", async () => {
    const listeners: Stream[] = await Promise.all([
      openStream(socket, req("admin.Events+ dom0 name dom0")),
      openStream(socket, req("admin.Events+ dom0 name dom0")),
      openStream(socket, req("admin.Events+ dom0 keyword adminvm")),
      openStream(socket, req("admin.Events+ dom0 name work")),
    ]);
    const N = 200;
    const replies = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        i % 4 === 3
          ? call(socket, req("admin.vm.property.Get+label dom0 name work"))
          : call(socket, req(`admin.vm.feature.Set+f${i} dom0 name ${i % 2 ? "work" : "other"}`, String(i))),
      ),
    );
    for (const [i, r] of replies.entries()) expect(r.toString("latin1"), `call ${i}`).toBe(i % 4 === 3 ? "0\0default=False type=label blue" : "0\0");
    const sets = Array.from({ length: N }, (_, i) => i).filter((i) => i % 4 !== 3);
    const onWork = sets.filter((i) => i % 2 === 1);
    const all = await Promise.all(listeners.slice(0, 3).map((l) => l.waitFor(1 + 2 * sets.length)));
    const workOnly = await listeners[3]!.waitFor(1 + 2 * onWork.length);
    for (const l of listeners) l.close();
    const names = (fs: { subject: string; event: string }[]) => fs.map((f) => `${f.subject} ${f.event}`);
    // Same order for the three global listeners.
    expect(names(all[1]!)).toEqual(names(all[0]!));
    expect(names(all[2]!)).toEqual(names(all[0]!));
    const frames = all[0]!;
    expect(frames[0]!.event).toBe("connection-established");
    expect(frames).toHaveLength(1 + 2 * sets.length);
    for (let k = 1; k < frames.length; k += 2) {
      const f = frames[k]!.event.split(":")[1];
      expect(frames[k]!.event).toBe(`domain-feature-pre-set:${f}`);
      expect(frames[k + 1]!.event).toBe(`domain-feature-set:${f}`);
    }
    expect(new Set(frames.slice(1).map((f) => f.event.split(":")[1])).size).toBe(sets.length);
    // The per-qube listener sees exactly that qube's events, in the same relative order.
    expect(names(workOnly)).toEqual(["" + " connection-established", ...names(frames.slice(1)).filter((n) => n.startsWith("work "))]);
  });

  it("holds 200 connections open at once, then answers every one", async () => {
    const N = 200;
    // Every client connects and sends its request, but none half-closes yet:
    // the server must hold all of them at the same time.
    const clients = await Promise.all(
      Array.from(
        { length: N },
        (_, i) =>
          new Promise<{ socket: net.Socket; reply: Promise<Buffer> }>((resolve, reject) => {
            const conn = net.connect(socket);
            const chunks: Buffer[] = [];
            const reply = new Promise<Buffer>((done, fail) => {
              conn.on("data", (d: Buffer) => chunks.push(d));
              conn.on("end", () => done(Buffer.concat(chunks)));
              conn.on("error", fail);
            });
            conn.once("connect", () => {
              conn.write(req(`admin.vm.property.Get+label dom0 name ${i % 2 ? "work" : "other"}`));
              resolve({ socket: conn, reply });
            });
            conn.once("error", reject);
          }),
      ),
    );
    expect(clients.filter((c) => !c.socket.destroyed)).toHaveLength(N);
    for (const c of clients) c.socket.end();
    const replies = await Promise.all(clients.map((c) => c.reply));
    expect(replies.map((r) => r.toString("latin1").startsWith("0\0default="))).toEqual(Array(N).fill(true));
  });

  it("closes without a byte on a framing error and on an over-long request", async () => {
    expect((await call(socket, Buffer.from("admin.vm.List+ dom0 name dom0", "latin1"))).length).toBe(0);
    expect((await call(socket, req("admin.vm.feature.Set+big dom0 name work", "x".repeat(70000)))).length).toBe(0);
    expect((await call(socket, req("admin.vm.List+ dom0 name work"))).toString("latin1")).toMatch(/^0\0work class=AppVM state=Halted uuid=/);
  });
});
