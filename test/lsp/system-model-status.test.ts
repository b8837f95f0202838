/**
 * `qubes/systemModelStatus`: after every load of the system model the server tells the client
 * whether it loaded, and why not (the VS Code extension shows that reason in a notification).
 * Driven over stdio through the built server.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DidChangeConfigurationNotification } from "vscode-languageserver-protocol/node.js";
import { startServer, TEST_SETTINGS, WORKSPACE, type ServerSession } from "./e2e-support.js";

interface Status {
  source: string;
  error?: string;
}

/** A model whose qube `vault` is `null` (the analysis would fail on every rule that reads it). */
const BAD_MODEL = join(mkdtempSync(join(tmpdir(), "qkit-bad-model-")), "system.json");
writeFileSync(BAD_MODEL, JSON.stringify({ domains: { dom0: { type: "AdminVM", tags: [], uuid: "00000000-0000-0000-0000-000000000000" }, vault: null } }));

/** A model whose `kernels` is not a list of names (as `qkit system snapshot` writes it). */
const BAD_KERNELS = join(mkdtempSync(join(tmpdir(), "qkit-bad-kernels-")), "system.json");
writeFileSync(BAD_KERNELS, JSON.stringify({ domains: { dom0: { type: "AdminVM", tags: [], uuid: "00000000-0000-0000-0000-000000000000" } }, kernels: "6.12" }));

let server: ServerSession | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Starts the server with `settings`, then asks it to reload them and returns the status it sends. */
async function statusAfterReload(settings: object): Promise<Status> {
  server = await startServer(WORKSPACE, settings);
  const status = new Promise<Status>((resolve) => server!.connection.onNotification("qubes/systemModelStatus", resolve));
  await server.connection.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
  return Promise.race([status, new Promise<Status>((_, reject) => setTimeout(() => reject(new Error("no qubes/systemModelStatus within 20 s")), 20_000))]);
}

describe("qubes/systemModelStatus", () => {
  it("has no error when the model loads", async () => {
    expect(await statusAfterReload(TEST_SETTINGS)).toEqual({ source: "file" });
  });

  it("has no error when no model is configured", async () => {
    expect(await statusAfterReload({ system: { source: "none" } })).toEqual({ source: "none" });
  });

  it.each([
    [{ system: { source: "file", file: "/nonexistent/system.json" } }, "system model file not found: /nonexistent/system.json"],
    [{ system: { source: "file" } }, "qubesPolicy.system.file is not set"],
    [{ system: { source: "socket", socket: "/nonexistent/qubesd.sock" } }, /^cannot load the system model \(socket\): .*nonexistent\/qubesd\.sock/],
    [{ system: { source: "file", file: BAD_KERNELS } }, "invalid system model: `kernels` is not a list of names; remove it or make the model again with `qkit system snapshot`"],
    [{ system: { source: "file", file: BAD_MODEL } }, `the system model \`${BAD_MODEL}\`: qube \`vault\` is null, not an object of properties (\`type\`, \`tags\`, \`template_for_dispvms\`, ...); fix the entry or make the model again with \`qkit system snapshot\` [bad-system-model]`],
  ])("says why the model did not load (%j)", async (settings, error) => {
    const status = await statusAfterReload(settings);
    expect(status.source).toBe(settings.system.source);
    if (typeof error === "string") expect(status.error).toBe(error);
    else expect(status.error).toMatch(error);
  });
});
