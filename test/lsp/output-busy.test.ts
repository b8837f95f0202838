/**
 * While the connection is still writing a message (a large diagnostics notification the client
 * reads slowly), the analysis runs in short turns (`StartOptions.outputBusy`): it must still go on
 * to the end and publish, however long the output stays busy.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startClient, type TestClient } from "./helpers/client.js";

let client: TestClient | undefined;
afterEach(() => client?.close());

describe("analysis while the output is busy", () => {
  it("finishes in short turns and publishes, the option consulted on every turn", async () => {
    let asked = 0;
    const rules = Array.from({ length: 3000 }, (_, i) => `svc${i}.Service * app-${i % 40} @anyvm allow`);
    rules.push("svc1.Service * app-1 @anyvm deny");
    const text = rules.join("\n") + "\n";
    client = await startClient({ "policy.d/30-big.policy": text }, undefined, {
      outputBusy: () => {
        asked++;
        return true;
      },
    });
    const uri = client.uri("policy.d/30-big.policy");
    await client.rpc.sendNotification("textDocument/didOpen", { textDocument: { uri, languageId: "qrexecpolicy", version: 1, text } });
    // No validateNow: the debounced, sliced path only.
    for (let i = 0; i < 400 && !(client.diagnostics.get(uri) ?? []).some((d) => d.code === "shadowed-rule"); i++) await new Promise((r) => setTimeout(r, 25));
    const found = (client.diagnostics.get(uri) ?? []).filter((d) => d.code === "shadowed-rule");
    expect(found.map((d) => d.range.start.line)).toEqual([3000]);
    expect(asked).toBeGreaterThan(1);
  });
});
