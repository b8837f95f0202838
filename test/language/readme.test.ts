/**
 * The example of `language/README.md`, run as written (so the README stays true).
 */
import { describe, expect, it } from "vitest";
import { createMemoryFileSystem, evaluate, explain, loadPolicy, prepareSystemInfo } from "@qubes-kit/language";

describe("language/README.md example", () => {
  it("runs and says what the README says", () => {
    const fs = createMemoryFileSystem({
      "30-user.policy": "qubes.Filecopy  *  @anyvm  vault  deny notify=no\nqubes.Filecopy  *  work  @anyvm  ask\n",
    });
    const loaded = loadPolicy(fs);
    if (!loaded.ok) throw new Error(loaded.error.message);
    const qube = (uuid: string) => ({ type: "AppVM", tags: [], template_for_dispvms: false, default_dispvm: null, power_state: "Running", uuid, internal: null });
    const system = prepareSystemInfo({ domains: { work: qube("…01"), personal: qube("…02"), vault: qube("…03") } });
    const decision = evaluate(loaded.policy, { service: "qubes.Filecopy", source: "work", target: "vault" }, system);
    expect(decision).toMatchObject({ ok: true, action: "deny", notify: false, rule: { file: "30-user.policy", line: 1 } });
    const why = explain(loaded.policy, { service: "qubes.Filecopy", source: "work", target: "personal" }, system);
    expect(why.decision).toMatchObject({ ok: true, action: "ask", targetsForAsk: ["personal"] });
    expect(why.askContributions?.map((c) => [c.effect, c.targets])).toEqual([
      ["remove", ["vault"]],
      ["add", ["@dispvm", "personal", "work"]],
    ]);
    expect(why.askNotes).toEqual(["`@dispvm` is dropped: `work` has no default disposable template", "the source `work` itself is never offered"]);
    const bad = loadPolicy(createMemoryFileSystem({ "30-user.policy": "qubes.Filecopy * work vault alow\n" }));
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.message).toBe("/etc/qubes/policy.d/30-user.policy:1: invalid action: alow");
  });
});
