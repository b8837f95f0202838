/**
 * The LSP's live model (`socket` source) reads the services the qubes advertise over the
 * configured socket: for qubesd's internal socket, the admin socket beside it (the simulator here);
 * without an answering admin socket the model has no `supported_rpc` and still loads.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createNodeFileSystem, loadSystemModel } from "@qubes-kit/lsp";
import { startSimulator } from "@qubes-kit/sdk/sim";

const RAW = JSON.parse(readFileSync(fileURLToPath(new URL("../fixtures/sdk/services/system.json", import.meta.url)), "utf8")) as { domains: Record<string, Record<string, unknown>> };

/** A stand-in for qubesd's internal socket: answers internal.GetSystemInfo (without services), refuses anything else. */
function internalSocket(path: string): Promise<net.Server> {
  const plain = structuredClone(RAW);
  for (const info of Object.values(plain.domains)) delete info["supported_rpc"];
  const server = net.createServer((sock) => {
    const chunks: Buffer[] = [];
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("end", () => {
      const method = Buffer.concat(chunks).toString("utf8").split(/[+ ]/)[0];
      if (method === "internal.GetSystemInfo") sock.end(Buffer.concat([Buffer.from("0\0"), Buffer.from(JSON.stringify(plain))]));
      else sock.end(Buffer.from("2\0QubesException\0\0Unknown method\0"));
    });
    sock.on("error", () => {});
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), "qkit-rpc-sock-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe("the live model's services come over the configured socket", () => {
  it("an internal socket at a custom path: the services from the admin socket beside it", async () => {
    const dir = tmp();
    const internal = await internalSocket(join(dir, "qubesd.internal.sock"));
    cleanup.push(() => new Promise<void>((r) => internal.close(() => r())));
    const sim = await startSimulator({ socket: join(dir, "qubesd.sock"), system: RAW as never });
    cleanup.push(() => sim.close());
    const r = await loadSystemModel({ system: { source: "socket", socket: join(dir, "qubesd.internal.sock") } }, undefined, createNodeFileSystem());
    expect(r.error).toBeUndefined();
    const d = r.raw!.domains;
    expect(d["vault"]!["supported_rpc"]).toContain("qubes.Gpg");
    expect(d["work"]!["supported_rpc"]).toContain("my.Backup");
    expect("supported_rpc" in d["dom0"]!).toBe(false);
  });

  it("no admin socket beside it: the model loads without the key", async () => {
    const dir = tmp();
    const internal = await internalSocket(join(dir, "qubesd.internal.sock"));
    cleanup.push(() => new Promise<void>((r) => internal.close(() => r())));
    const r = await loadSystemModel({ system: { source: "socket", socket: join(dir, "qubesd.internal.sock") } }, undefined, createNodeFileSystem());
    expect(r.error).toBeUndefined();
    expect(Object.keys(r.raw!.domains).sort()).toEqual(Object.keys(RAW.domains).sort());
    for (const info of Object.values(r.raw!.domains)) expect("supported_rpc" in info).toBe(false);
  });
});
