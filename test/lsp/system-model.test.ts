/**
 * Where the server's system model comes from: none, a snapshot file, or a
 * qubesd socket (here the SDK's simulator, which speaks the admin protocol;
 * the server then builds the snapshot through the Admin API).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { createNodeFileSystem, loadSystemModel } from "@qubes-kit/lsp";
import { startSimulator } from "@qubes-kit/sdk/sim";
import { demoSystem, FIXTURES } from "./helpers/fixture.js";
import { readFileSync } from "node:fs";

const fs = createNodeFileSystem();

describe("system model sources", () => {
  test("none", async () => {
    expect(await loadSystemModel({}, undefined, fs)).toEqual({ raw: null });
  });

  test("a snapshot file, relative to the workspace folder", async () => {
    const r = await loadSystemModel({ system: { source: "file", file: "system.json" } }, FIXTURES, fs);
    expect(Object.keys(r.raw!.domains)).toContain("work");
  });

  test("a missing or broken file is an error, not a crash", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qkit-sys-"));
    writeFileSync(join(dir, "bad.json"), "{nope");
    expect((await loadSystemModel({ system: { source: "file", file: "nope.json" } }, dir, fs)).error).toMatch(/^system model file not found: /);
    expect((await loadSystemModel({ system: { source: "file", file: "bad.json" } }, dir, fs)).error).toMatch(/^the system model `.*bad\.json` is not valid JSON \(.*bad\.json:1:2: expected a property name in double quotes\); make one with `qkit system snapshot` \[invalid-json\]$/);
    expect((await loadSystemModel({ system: { source: "file" } }, dir, fs)).error).toBe("qubesPolicy.system.file is not set");
  });

  test("a socket that does not exist is an error", async () => {
    const r = await loadSystemModel({ system: { source: "socket", socket: "/nonexistent/qubesd.sock" } }, undefined, fs);
    expect(r.raw).toBeNull();
    expect(r.error).toMatch(/^cannot load the system model \(socket\): /);
  });

  test("a qubesd admin socket (the SDK simulator) gives the same qubes", async () => {
    const raw = JSON.parse(readFileSync(FIXTURES + "system.json", "utf8"));
    const socket = join(mkdtempSync(join(tmpdir(), "qkit-sim-")), "qubesd.sock");
    const server = await startSimulator({ socket, system: raw });
    try {
      const r = await loadSystemModel({ system: { source: "socket", socket } }, undefined, fs);
      expect(r.error).toBeUndefined();
      expect(Object.keys(r.raw!.domains).sort()).toEqual([...demoSystem().domains.keys()].filter((k) => !k.startsWith("uuid:")).sort());
      expect(r.raw!.domains["work"]!.tags).toContain("gpg-client");
    } finally {
      await server.close();
    }
  });
});
