/**
 * The playground's local web server (`playground/build.mjs`): it serves `playground/dist/`
 * and nothing else, to GET and HEAD only. No browser needed.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let server: Server;
let base = "";

beforeAll(async () => {
  const pg = (await import("../../../playground/build.mjs" as string)) as { servePlayground(o: { port: number }): Promise<Server> };
  server = await pg.servePlayground({ port: 0 });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

describe("the playground server", () => {
  const outside: Array<[string, number]> = [
    ["/../build.mjs", 404],
    ["/%2e%2e/build.mjs", 404],
    ["/%2e%2e%2fbuild.mjs", 404],
    ["/..%2f..%2fpackage.json", 404],
    ["/src/main.ts", 404],
    ["/%E0%A4%A", 400],
  ];
  it.each(outside)("GET %s answers %i", async (path, status) => {
    const r = await fetch(base + path);
    expect(r.status).toBe(status);
  });

  it("answers 405 to anything but GET and HEAD", async () => {
    const r = await fetch(base + "/", { method: "POST", body: "x" });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET, HEAD");
  });
});
