/**
 * `qkit template plan|apply|drift` when qubesd cannot be reached: the one
 * failure wording of the commands that talk to qubesd, with what to do for
 * where the connection went (review of issue 7, F24).
 */
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { runQkit } from "../helpers/qkit.js";

const cwd = fileURLToPath(new URL("../fixtures/template/safety/", import.meta.url));
const missing = "/nonexistent-qkit-test/qubesd.sock";

describe("template commands without qubesd", () => {
  test.each([
    ["plan", ["template", "plan", "protect.qubes.yaml", "--socket", missing], {}, "check --socket"],
    ["drift", ["template", "drift", "protect.qubes.yaml"], { QUBESD_SOCKET: missing }, "check QUBESD_SOCKET"],
    ["apply", ["template", "apply", "protect.qubes.yaml", "--yes", "--socket", missing], {}, "check --socket"],
  ])("%s: one line, the socket as given, the way out, [connect-failed], exit 1", async (name, argv, env, hint) => {
    const r = await runQkit(argv, { cwd, env });
    expect(r.code).toBe(1);
    expect(r.err).toBe(`qkit template ${name}: cannot connect to qubesd at \`${missing}\`: No such file or directory; is qubesd (or \`qkit sim serve --socket ${missing}\`) running? ${hint} [connect-failed]\n`);
  });
});
